// The agent runtime's task store: durable one-step tasks per second. Each task
// is Submit, Apply(ADMITTED), Apply(RUNNING + step 1 STARTED with its input),
// Apply(SUCCEEDED + output + step 1 COMPLETED with its output), each write
// issued from the previous one's callback, with N tasks in flight at once.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "benchmark/benchmark.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/sqlite_task_store.h"

namespace {

using flowork::agent::SqliteTaskStoreOptions;
using flowork::agent::SubmitResult;
using flowork::agent::TaskStore;
using flowork::agent::TaskUpdate;
namespace v1 = flowork::agent::v1;

constexpr int kTasksPerIteration = 2000;

// Drives `total` tasks through the store with `in_flight` of them at a time.
class OneStepTasks {
 public:
  OneStepTasks(TaskStore& store, int in_flight, int total)
      : store_(store), in_flight_(in_flight), total_(total) {}

  // Blocks until every task succeeded, or, after a failure, until no write
  // is in flight any more; false with `error()` on any failure.
  bool Run() {
    chains_ = in_flight_;
    for (int i = 0; i < in_flight_; ++i) StartTask();
    done_.WaitForNotification();
    return !failed_.load();
  }
  const std::string& error() const { return error_; }

 private:
  // Each of the `in_flight` chains runs tasks one after another until all
  // were started or one failed.
  void StartTask() {
    if (failed_.load() || started_.fetch_add(1) >= total_) return EndChain();
    v1::Task task;
    task.set_agent("writer");
    task.set_tenant("acme");
    task.set_priority(v1::PRIORITY_STANDARD);
    task.mutable_input()->set_string_value("Summarise the quarterly report in three bullets.");
    store_.SubmitAsync(std::move(task), [this](absl::StatusOr<SubmitResult> submitted) {
      if (!submitted.ok()) return Fail(submitted.status());
      Admit(submitted->task.id());
    });
  }

  void Admit(std::string id) {
    store_.ApplyAsync(Move(id, v1::TASK_STATE_PENDING, v1::TASK_STATE_ADMITTED),
                      [this, id](absl::Status status) mutable {
                        if (!status.ok()) return Fail(status);
                        StartStep(std::move(id));
                      });
  }

  void StartStep(std::string id) {
    TaskUpdate update = Move(id, v1::TASK_STATE_ADMITTED, v1::TASK_STATE_RUNNING);
    v1::StepRecord& step = update.steps.emplace_back();
    step.set_seq(1);
    step.set_kind("llm");
    step.set_status(v1::StepRecord::STATUS_STARTED);
    step.set_input(std::string(256, 'i'));
    store_.ApplyAsync(std::move(update), [this, id](absl::Status status) mutable {
      if (!status.ok()) return Fail(status);
      Finish(std::move(id));
    });
  }

  void Finish(std::string id) {
    TaskUpdate update = Move(id, v1::TASK_STATE_RUNNING, v1::TASK_STATE_SUCCEEDED);
    update.output.emplace().set_string_value("- revenue up\n- costs flat\n- outlook good");
    v1::StepRecord& step = update.steps.emplace_back();
    step.set_seq(1);
    step.set_status(v1::StepRecord::STATUS_COMPLETED);
    step.set_output(std::string(256, 'o'));
    store_.ApplyAsync(std::move(update), [this](absl::Status status) {
      if (!status.ok()) return Fail(status);
      StartTask();
    });
  }

  void EndChain() {
    if (chains_.fetch_sub(1) == 1) done_.Notify();
  }

  static TaskUpdate Move(const std::string& id, v1::TaskState from, v1::TaskState to) {
    TaskUpdate update;
    update.task_id = id;
    update.expect_state = from;
    update.state = to;
    return update;
  }

  void Fail(const absl::Status& status) {
    // Callbacks run on the store's one writer thread: no race on error_.
    if (!failed_.exchange(true)) error_ = status.ToString();
    EndChain();
  }

  TaskStore& store_;
  const int in_flight_;
  const int total_;
  std::atomic<int> started_{0};
  std::atomic<int> chains_{0};
  std::atomic<bool> failed_{false};
  std::string error_;
  absl::Notification done_;
};

// A directory under $TMPDIR (or /tmp), removed with its database afterwards.
class TempDir {
 public:
  TempDir() {
    const char* tmp = getenv("TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/flowork_store_bm_XXXXXX");
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void RunTasks(benchmark::State& state, TaskStore& store) {
  const int in_flight = static_cast<int>(state.range(0));
  for (auto _ : state) {
    OneStepTasks tasks(store, in_flight, kTasksPerIteration);
    if (!tasks.Run()) return state.SkipWithError(tasks.error().c_str());
  }
  state.SetItemsProcessed(state.iterations() * kTasksPerIteration);
}

void RunSqlite(benchmark::State& state, SqliteTaskStoreOptions::Sync sync) {
  TempDir dir;
  if (dir.path().empty()) return state.SkipWithError("mkdtemp failed");
  SqliteTaskStoreOptions options;
  options.path = dir.path() + "/tasks.db";
  options.sync = sync;
  absl::StatusOr<std::unique_ptr<TaskStore>> store = flowork::agent::CreateSqliteTaskStore(options);
  if (!store.ok()) return state.SkipWithError(store.status().ToString().c_str());
  RunTasks(state, **store);
}

// Durable against a crash of the process (WAL, synchronous=NORMAL): the default.
void BM_SqliteTaskStore_SubmitComplete(benchmark::State& state) {
  RunSqlite(state, SqliteTaskStoreOptions::Sync::kNormal);
}
BENCHMARK(BM_SqliteTaskStore_SubmitComplete)
    ->Arg(1)
    ->Arg(8)
    ->Arg(64)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Durable against power loss (WAL, synchronous=FULL: an fsync per batch).
void BM_SqliteTaskStore_SubmitCompleteFullSync(benchmark::State& state) {
  RunSqlite(state, SqliteTaskStoreOptions::Sync::kFull);
}
BENCHMARK(BM_SqliteTaskStore_SubmitCompleteFullSync)
    ->Arg(1)
    ->Arg(64)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The same work without storage: the queue, the checks and the callbacks.
void BM_InMemoryTaskStore_SubmitComplete(benchmark::State& state) {
  std::unique_ptr<TaskStore> store = flowork::agent::CreateInMemoryTaskStore();
  RunTasks(state, *store);
}
BENCHMARK(BM_InMemoryTaskStore_SubmitComplete)
    ->Arg(1)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
