#ifndef FLOWORK_AGENT_IN_MEMORY_TASK_STORE_H_
#define FLOWORK_AGENT_IN_MEMORY_TASK_STORE_H_

#include <memory>

#include "flowork/agent/task_store.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// A TaskStore held in memory, for tests and benchmarks: everything is gone
// when it is destroyed. Same behaviour as the durable stores (same checks,
// same errors, callbacks on its own writer thread). `clock` stamps times and
// measures ages; it must outlive the store.
std::unique_ptr<TaskStore> CreateInMemoryTaskStore(const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_IN_MEMORY_TASK_STORE_H_
