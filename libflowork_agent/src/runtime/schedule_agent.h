#ifndef FLOWORK_AGENT_SRC_RUNTIME_SCHEDULE_AGENT_H_
#define FLOWORK_AGENT_SRC_RUNTIME_SCHEDULE_AGENT_H_

#include "flowork/agent/agent.h"

namespace flowork::agent::internal {

// The agent that runs cron schedules, one task per schedule (input_bytes: a
// v1::Schedule). Its journal alternates a timer until the next fire time and
// a detached spawn of the schedule's task. After downtime the pending timer
// is already due: it fires once, and the next timer is computed from now, so
// missed runs never pile up.
class ScheduleAgent final : public Agent {
 public:
  static constexpr char kName[] = "flowork-cron";
  absl::StatusOr<v1::Effect> Step(const StepContext& context) override;
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_RUNTIME_SCHEDULE_AGENT_H_
