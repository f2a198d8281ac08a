#include "runtime/schedule_agent.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "flowork/agent/cron_schedule.h"

namespace flowork::agent::internal {
namespace {

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}
google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return out;
}

}  // namespace

absl::StatusOr<v1::Effect> ScheduleAgent::Step(const StepContext& context) {
  v1::Effect effect;
  v1::Schedule schedule;
  if (!schedule.ParseFromString(context.task.input_bytes())) {
    effect.mutable_fail()->set_error(
        "the schedule task's input is not a flowork.agent.v1.Schedule");
    return effect;
  }
  absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(schedule.cron(), schedule.time_zone());
  if (!cron.ok()) {
    effect.mutable_fail()->set_error(std::string(cron.status().message()));
    return effect;
  }
  // The last fire time: the last timer's.
  absl::Time last_fire = absl::InfinitePast();
  bool fire_now = false;
  for (const v1::StepRecord& step : context.journal) {
    v1::Effect past;
    if (!past.ParseFromString(step.input())) continue;
    fire_now = past.has_timer();
    if (past.has_timer()) last_fire = ToTime(past.timer().until());
  }
  if (fire_now) {
    v1::SpawnChildren* spawn = effect.mutable_children();
    spawn->set_detach(true);
    v1::Task* task = spawn->add_tasks();
    *task = schedule.task();
    (*task->mutable_labels())["flowork-schedule"] = schedule.name();
    (*task->mutable_labels())["flowork-fire-time"] =
        absl::FormatTime(last_fire, absl::UTCTimeZone());
    return effect;
  }
  // From now, not from the last fire: a long downtime costs one run, not a storm.
  const absl::Time next = cron->NextAfter(std::max(context.now, last_fire));
  *effect.mutable_timer()->mutable_until() = ToProto(next);
  return effect;
}

}  // namespace flowork::agent::internal
