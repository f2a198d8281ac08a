// Private to flowork::agent_grpc: a task's event sequence, derived from the
// task and its step journal (see TaskEvent in agent_service.proto).
#ifndef FLOWORK_AGENT_GRPC_SRC_TASK_EVENTS_H_
#define FLOWORK_AGENT_GRPC_SRC_TASK_EVENTS_H_

#include <cstdint>
#include <vector>

#include "flowork/agent/v1/agent_service.pb.h"
#include "flowork/agent/v1/task.pb.h"

namespace flowork::agent::internal {

// The journal seq to read steps after so that every event with an id greater
// than `after` is among them.
uint64_t JournalSeqFor(uint64_t after);

// The events with ids greater than `after`, in id order, from `task` (read
// before `steps`) and `steps` (its journal from JournalSeqFor(after) on).
// The finished event comes only once the task is final. Pure.
std::vector<v1::TaskEvent> TaskEvents(const v1::Task& task,
                                      const std::vector<v1::StepRecord>& steps, uint64_t after);

// The id of the finished event of a final task.
uint64_t FinishedEventId(const v1::Task& task);

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_GRPC_SRC_TASK_EVENTS_H_
