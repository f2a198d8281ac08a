// Private to libflowork_agent: the SQLite layer now lives in libflowork_core
// (shared with the router's audit trail); these names keep the agent's code as
// it was.
#ifndef FLOWORK_AGENT_SRC_STORE_SQLITE_DB_H_
#define FLOWORK_AGENT_SRC_STORE_SQLITE_DB_H_

#include "flowork/core/internal/sqlite_db.h"

namespace flowork::agent::internal {
using core::internal::SqliteDb;
using core::internal::SqliteQuery;
}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_SRC_STORE_SQLITE_DB_H_
