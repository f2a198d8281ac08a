#ifndef FLOWORK_AGENT_IN_MEMORY_MEMORY_STORE_H_
#define FLOWORK_AGENT_IN_MEMORY_MEMORY_STORE_H_

#include <memory>

#include "flowork/agent/memory_store.h"
#include "flowork/core/clock.h"

namespace flowork::agent {

// A MemoryStore held in memory, for tests of code that uses memory: gone when
// destroyed, same checks and errors as the durable store. Recall scores by
// term overlap: words are runs of ASCII letters and digits (ASCII case folded)
// or of non-ASCII characters, with no stemming; a memory's score is the
// fraction of the query's distinct words it contains, in (0, 1]. Every call
// scans all memories of the scope. `clock` stamps `create_time`; it must
// outlive the store.
std::unique_ptr<MemoryStore> CreateInMemoryMemoryStore(
    const core::Clock& clock = core::Clock::Real());

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_IN_MEMORY_MEMORY_STORE_H_
