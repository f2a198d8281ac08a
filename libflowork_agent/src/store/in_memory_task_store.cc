#include "flowork/agent/in_memory_task_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/task_state.h"
#include "flowork/core/internal/strings.h"
#include "group_commit_store.h"
#include "task_txn.h"

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;
using internal::KeyedTask;
using internal::TaskRow;

// Tasks in maps under one mutex. A batch holds the mutex throughout; the
// shared update logic checks everything before it writes, and nothing here
// fails once writing started, so no undo is needed.
class InMemoryBackend final : public internal::StoreBackend, private internal::TaskTxn {
 public:
  void RunBatch(absl::Span<const std::unique_ptr<internal::WriteOp>> ops,
                absl::Span<absl::Status> results) override {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < ops.size(); ++i) results[i] = ops[i]->Run(*this);
  }

  absl::StatusOr<v1::Task> Get(std::string_view id) override {
    absl::MutexLock lock(&mu_);
    const Entry* entry = Find(id);
    if (entry == nullptr) return internal::TaskNotFound(id);
    return entry->task;
  }

  absl::StatusOr<std::vector<KeyedTask>> List(const TaskFilter& filter, int64_t after_key,
                                              int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<KeyedTask> result;
    for (auto it = tasks_.upper_bound(after_key);
         it != tasks_.end() && result.size() < static_cast<size_t>(limit); ++it) {
      const v1::Task& task = it->second.task;
      if (!filter.agent.empty() && task.agent() != filter.agent) continue;
      if (!filter.tenant.empty() && task.tenant() != filter.tenant) continue;
      if (!filter.states.empty() && std::find(filter.states.begin(), filter.states.end(),
                                              task.state()) == filter.states.end()) {
        continue;
      }
      result.push_back({it->first, task});
    }
    return result;
  }

  absl::StatusOr<std::vector<v1::StepRecord>> Journal(std::string_view task_id,
                                                      uint64_t after_seq) override {
    absl::MutexLock lock(&mu_);
    const Entry* entry = Find(task_id);
    if (entry == nullptr) return internal::TaskNotFound(task_id);
    std::vector<v1::StepRecord> steps;
    for (uint64_t index = after_seq; index < entry->steps.size(); ++index) {
      steps.push_back(entry->steps[index]);
    }
    return steps;
  }

  absl::StatusOr<std::vector<v1::Task>> ListUnfinished() override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Task> result;
    for (const auto& [key, entry] : tasks_) {
      if (!IsFinal(entry.task.state())) result.push_back(entry.task);
    }
    return result;
  }

  absl::StatusOr<std::vector<std::string>> Children(std::string_view parent_id) override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> result;
    auto it = children_.find(parent_id);
    if (it == children_.end()) return result;
    for (int64_t key : it->second) result.push_back(tasks_.at(key).task.id());
    return result;
  }

 private:
  struct Entry {
    v1::Task task;
    std::vector<v1::StepRecord> steps;  // steps[i] has seq i + 1.
  };

  const Entry* Find(std::string_view id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = by_id_.find(ToAbsl(id));
    return it == by_id_.end() ? nullptr : &tasks_.at(it->second);
  }

  // TaskTxn; called by RunBatch with mu_ held.
  absl::StatusOr<TaskRow> LoadTask(std::string_view id) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto it = by_id_.find(ToAbsl(id));
    if (it == by_id_.end()) return internal::TaskNotFound(id);
    const v1::Task& task = tasks_.at(it->second).task;
    TaskRow row;
    row.key = it->second;
    row.id = task.id();
    row.state = task.state();
    row.step_count = task.step_count();
    row.attempt = task.attempt();
    row.cancel_requested = task.cancel_requested();
    if (task.has_not_before()) row.not_before = internal::FromTimestamp(task.not_before());
    row.error = task.error();
    row.update_time = internal::FromTimestamp(task.update_time());
    return row;
  }

  absl::Status StoreTask(const TaskRow& row, const google::protobuf::Value* output) override
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    v1::Task& task = tasks_.at(row.key).task;
    task.set_state(row.state);
    task.set_step_count(row.step_count);
    task.set_attempt(row.attempt);
    task.set_cancel_requested(row.cancel_requested);
    if (row.not_before) {
      *task.mutable_not_before() = internal::ToTimestamp(*row.not_before);
    } else {
      task.clear_not_before();
    }
    task.set_error(row.error);
    *task.mutable_update_time() = internal::ToTimestamp(row.update_time);
    if (output != nullptr) *task.mutable_output() = *output;
    return absl::OkStatus();
  }

  absl::StatusOr<v1::StepRecord> LoadStep(int64_t task_key,
                                          uint64_t seq) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return tasks_.at(task_key).steps.at(seq - 1);
  }

  absl::Status InsertStep(int64_t task_key,
                          const v1::StepRecord& step) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    tasks_.at(task_key).steps.push_back(step);
    return absl::OkStatus();
  }

  absl::Status UpdateStep(int64_t task_key,
                          const v1::StepRecord& step) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    tasks_.at(task_key).steps.at(step.seq() - 1) = step;
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<v1::Task>> FindByIdempotencyKey(
      std::string_view tenant, std::string_view key) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto it = by_idempotency_key_.find(std::make_pair(std::string(tenant), std::string(key)));
    if (it == by_idempotency_key_.end()) return std::nullopt;
    return tasks_.at(it->second).task;
  }

  absl::StatusOr<bool> TaskExists(std::string_view id) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return by_id_.contains(ToAbsl(id));
  }

  absl::Status InsertTask(const v1::Task& task) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const int64_t key = ++last_key_;
    tasks_[key].task = task;
    by_id_[task.id()] = key;
    if (!task.idempotency_key().empty()) {
      by_idempotency_key_[{task.tenant(), task.idempotency_key()}] = key;
    }
    if (!task.parent_id().empty()) children_[task.parent_id()].insert(key);
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> PruneFinished(std::optional<absl::Time> finished_before,
                                        std::optional<int64_t> keep_newest,
                                        int64_t limit) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // Finished tasks, most recently finished first.
    std::vector<std::pair<absl::Time, int64_t>> finished;
    for (const auto& [key, entry] : tasks_) {
      if (IsFinal(entry.task.state())) {
        finished.emplace_back(internal::FromTimestamp(entry.task.update_time()), key);
      }
    }
    std::sort(finished.begin(), finished.end(), std::greater<>());
    std::vector<int64_t> doomed;
    for (size_t rank = 0; rank < finished.size(); ++rank) {
      if (static_cast<int64_t>(doomed.size()) == limit) break;
      const auto& [finish_time, key] = finished[rank];
      if ((finished_before && finish_time < *finished_before) ||
          (keep_newest && static_cast<int64_t>(rank) >= *keep_newest)) {
        doomed.push_back(key);
      }
    }
    for (int64_t key : doomed) {
      const v1::Task& task = tasks_.at(key).task;
      by_id_.erase(task.id());
      if (!task.idempotency_key().empty()) {
        by_idempotency_key_.erase({task.tenant(), task.idempotency_key()});
      }
      if (!task.parent_id().empty()) {
        auto it = children_.find(task.parent_id());
        it->second.erase(key);
        if (it->second.empty()) children_.erase(it);
      }
      tasks_.erase(key);
    }
    return static_cast<int64_t>(doomed.size());
  }

  absl::Mutex mu_;
  int64_t last_key_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, Entry> tasks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> by_id_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, int64_t> by_idempotency_key_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<int64_t>, std::less<>> children_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<TaskStore> CreateInMemoryTaskStore(const core::Clock& clock) {
  return std::make_unique<internal::GroupCommitTaskStore>(std::make_unique<InMemoryBackend>(),
                                                          clock, /*max_batch=*/256);
}

}  // namespace flowork::agent
