#include "flowork/agent/agent_spec_store.h"

#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "sqlite_db.h"

namespace flowork::agent {
namespace {

using internal::SqliteDb;
using internal::SqliteQuery;

class InMemoryAgentSpecStore final : public AgentSpecStore {
 public:
  absl::Status Put(const StoredAgent& agent) override {
    absl::MutexLock lock(&mu_);
    agents_[agent.spec.name()] = agent;
    return absl::OkStatus();
  }
  absl::Status Delete(std::string_view name) override {
    absl::MutexLock lock(&mu_);
    agents_.erase(std::string(name));
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<StoredAgent>> List() const override {
    absl::MutexLock lock(&mu_);
    std::vector<StoredAgent> out;
    for (const auto& [name, agent] : agents_) out.push_back(agent);
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, StoredAgent> agents_ ABSL_GUARDED_BY(mu_);
};

// One row per agent: rare writes on a connection of its own.
class SqliteAgentSpecStore final : public AgentSpecStore {
 public:
  explicit SqliteAgentSpecStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::Status Put(const StoredAgent& agent) override {
    const std::string spec = agent.spec.SerializeAsString();
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(
        SqliteQuery query,
        db_->Prepare("INSERT INTO agent_specs (name, tenant, spec) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT(name) DO UPDATE SET tenant = ?2, spec = ?3"));
    return query.BindText(1, agent.spec.name()).BindText(2, agent.tenant).BindBlob(3, spec).Run();
  }

  absl::Status Delete(std::string_view name) override {
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                             db_->Prepare("DELETE FROM agent_specs WHERE name = ?1"));
    return query.BindText(1, name).Run();
  }

  absl::StatusOr<std::vector<StoredAgent>> List() const override {
    absl::MutexLock lock(&mu_);
    FLOWORK_ASSIGN_OR_RETURN(SqliteQuery query,
                             db_->Prepare("SELECT tenant, spec FROM agent_specs ORDER BY name"));
    std::vector<StoredAgent> out;
    for (;;) {
      FLOWORK_ASSIGN_OR_RETURN(bool row, query.Step());
      if (!row) break;
      StoredAgent agent;
      agent.tenant = std::string(query.Text(0));
      const std::string_view blob = query.Blob(1);
      if (!agent.spec.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        return absl::DataLossError(
            absl::StrCat("sqlite \"", db_->path(), "\": an unreadable agent spec"));
      }
      out.push_back(std::move(agent));
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<AgentSpecStore>> CreateSqliteAgentSpecStore(
    const std::string& path) {
  if (path.empty() || path == ":memory:") return CreateInMemoryAgentSpecStore();
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  // The task store's writer may hold the file's write lock for a moment.
  FLOWORK_RETURN_IF_ERROR(db->Exec("PRAGMA busy_timeout = 5000"));
  FLOWORK_RETURN_IF_ERROR(
      db->Exec("CREATE TABLE IF NOT EXISTS agent_specs ("
               "name TEXT PRIMARY KEY, tenant TEXT NOT NULL, spec BLOB NOT NULL)"));
  return std::make_unique<SqliteAgentSpecStore>(std::move(db));
}

std::unique_ptr<AgentSpecStore> CreateInMemoryAgentSpecStore() {
  return std::make_unique<InMemoryAgentSpecStore>();
}

}  // namespace flowork::agent
