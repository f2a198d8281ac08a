#include "group_commit_store.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent::internal {
namespace {

using core::internal::ToAbsl;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
// Tasks deleted per transaction by PruneFinished, so other writes get a turn.
constexpr int64_t kPruneChunk = 500;
constexpr absl::string_view kPageTokenPrefix = "after:";

std::string EncodePageToken(int64_t after_key) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, after_key));
}

absl::StatusOr<int64_t> DecodePageToken(const std::string& token) {
  if (token.empty()) return 0;
  std::string decoded;
  int64_t key = 0;
  absl::string_view rest;
  if (absl::WebSafeBase64Unescape(token, &decoded)) {
    rest = decoded;
    if (absl::ConsumePrefix(&rest, kPageTokenPrefix) && absl::SimpleAtoi(rest, &key) && key > 0) {
      return key;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("filter.page_token: \"", token, "\" is not a page token of this store"));
}

}  // namespace

class GroupCommitTaskStore::SubmitOp final : public WriteOp {
 public:
  SubmitOp(GroupCommitTaskStore& store, v1::Task task,
           absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done)
      : store_(store), task_(std::move(task)), done_(std::move(done)) {}

  absl::Status Run(TaskTxn& txn) override {
    absl::StatusOr<SubmitResult> result = SubmitTask(txn, std::move(task_), store_.clock_.Now(),
                                                     [this] { return store_.NewTaskId(); });
    if (!result.ok()) return result.status();
    result_ = *std::move(result);
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
    } else {
      std::move(done_)(std::move(result_));
    }
  }

 private:
  GroupCommitTaskStore& store_;
  v1::Task task_;
  SubmitResult result_;
  absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done_;
};

class GroupCommitTaskStore::ApplyOp final : public WriteOp {
 public:
  ApplyOp(GroupCommitTaskStore& store, TaskUpdate update,
          absl::AnyInvocable<void(absl::Status) &&> done)
      : store_(store), update_(std::move(update)), done_(std::move(done)) {}

  absl::Status Run(TaskTxn& txn) override {
    return ApplyTaskUpdate(txn, update_, store_.clock_.Now());
  }

  void Finish(absl::Status status) && override { std::move(done_)(std::move(status)); }

 private:
  GroupCommitTaskStore& store_;
  TaskUpdate update_;
  absl::AnyInvocable<void(absl::Status) &&> done_;
};

class GroupCommitTaskStore::PruneOp final : public WriteOp {
 public:
  PruneOp(std::optional<absl::Time> finished_before, std::optional<int64_t> keep_newest,
          absl::AnyInvocable<void(absl::StatusOr<int64_t>) &&> done)
      : finished_before_(finished_before), keep_newest_(keep_newest), done_(std::move(done)) {}

  absl::Status Run(TaskTxn& txn) override {
    FLOWORK_ASSIGN_OR_RETURN(deleted_,
                             txn.PruneFinished(finished_before_, keep_newest_, kPruneChunk));
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
    } else {
      std::move(done_)(deleted_);
    }
  }

 private:
  const std::optional<absl::Time> finished_before_;
  const std::optional<int64_t> keep_newest_;
  int64_t deleted_ = 0;
  absl::AnyInvocable<void(absl::StatusOr<int64_t>) &&> done_;
};

GroupCommitTaskStore::GroupCommitTaskStore(std::unique_ptr<StoreBackend> backend,
                                           const core::Clock& clock, int max_batch)
    : backend_(std::move(backend)),
      clock_(clock),
      max_batch_(static_cast<size_t>(std::max(1, max_batch))),
      writer_([this] { WriterLoop(); }) {}

GroupCommitTaskStore::~GroupCommitTaskStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
}

void GroupCommitTaskStore::Enqueue(std::unique_ptr<WriteOp> op) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(op));
}

bool GroupCommitTaskStore::HasWorkOrStopping() const { return !queue_.empty() || stopping_; }

void GroupCommitTaskStore::WriterLoop() {
  std::vector<std::unique_ptr<WriteOp>> batch;
  std::vector<absl::Status> results;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &GroupCommitTaskStore::HasWorkOrStopping));
      // Stopping drains the queue first, callbacks' new writes included.
      if (queue_.empty()) return;
      const size_t n = std::min(queue_.size(), max_batch_);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    results.assign(batch.size(), absl::OkStatus());
    backend_->RunBatch(batch, absl::MakeSpan(results));
    for (size_t i = 0; i < batch.size(); ++i) std::move(*batch[i]).Finish(std::move(results[i]));
    batch.clear();
  }
}

absl::Status GroupCommitTaskStore::CheckNotWriterThread(std::string_view method) const {
  if (std::this_thread::get_id() != writer_.get_id()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("TaskStore::", ToAbsl(method),
                   " called from a store callback would deadlock; use the Async form"));
}

std::string GroupCommitTaskStore::NewTaskId() {
  char bytes[16];
  const uint64_t high = absl::Uniform<uint64_t>(bitgen_);
  const uint64_t low = absl::Uniform<uint64_t>(bitgen_);
  std::memcpy(bytes, &high, sizeof(high));
  std::memcpy(bytes + sizeof(high), &low, sizeof(low));
  return absl::WebSafeBase64Escape(absl::string_view(bytes, sizeof(bytes)));
}

absl::StatusOr<SubmitResult> GroupCommitTaskStore::Submit(v1::Task task) {
  FLOWORK_RETURN_IF_ERROR(CheckNotWriterThread("Submit"));
  absl::Notification done;
  absl::StatusOr<SubmitResult> result;
  SubmitAsync(std::move(task), [&](absl::StatusOr<SubmitResult> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

void GroupCommitTaskStore::SubmitAsync(
    v1::Task task, absl::AnyInvocable<void(absl::StatusOr<SubmitResult>) &&> done) {
  Enqueue(std::make_unique<SubmitOp>(*this, std::move(task), std::move(done)));
}

absl::Status GroupCommitTaskStore::Apply(TaskUpdate update) {
  FLOWORK_RETURN_IF_ERROR(CheckNotWriterThread("Apply"));
  absl::Notification done;
  absl::Status result;
  ApplyAsync(std::move(update), [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

void GroupCommitTaskStore::ApplyAsync(TaskUpdate update,
                                      absl::AnyInvocable<void(absl::Status) &&> done) {
  Enqueue(std::make_unique<ApplyOp>(*this, std::move(update), std::move(done)));
}

absl::StatusOr<int64_t> GroupCommitTaskStore::PruneFinished(const RetentionPolicy& policy) {
  FLOWORK_RETURN_IF_ERROR(CheckNotWriterThread("PruneFinished"));
  if (policy.max_age && *policy.max_age < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("policy.max_age: negative");
  }
  if (policy.max_count && *policy.max_count < 0) {
    return absl::InvalidArgumentError("policy.max_count: negative");
  }
  if (!policy.max_age && !policy.max_count) return 0;
  std::optional<absl::Time> finished_before;
  if (policy.max_age) finished_before = clock_.Now() - *policy.max_age;
  int64_t total = 0;
  while (true) {
    absl::Notification done;
    absl::StatusOr<int64_t> deleted;
    Enqueue(std::make_unique<PruneOp>(finished_before, policy.max_count,
                                      [&](absl::StatusOr<int64_t> r) {
                                        deleted = std::move(r);
                                        done.Notify();
                                      }));
    done.WaitForNotification();
    if (!deleted.ok()) return deleted.status();
    total += *deleted;
    if (*deleted < kPruneChunk) return total;
  }
}

absl::StatusOr<v1::Task> GroupCommitTaskStore::Get(std::string_view id) const {
  return backend_->Get(id);
}

absl::StatusOr<TaskPage> GroupCommitTaskStore::List(const TaskFilter& filter) const {
  if (filter.page_size < 0 || filter.page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter.page_size: ", filter.page_size, " is not in 0..", kMaxPageSize));
  }
  for (size_t i = 0; i < filter.states.size(); ++i) {
    if (!v1::TaskState_IsValid(filter.states[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "filter.states[", i, "]: ", static_cast<int>(filter.states[i]), " is not a task state"));
    }
  }
  FLOWORK_ASSIGN_OR_RETURN(int64_t after_key, DecodePageToken(filter.page_token));
  const int page_size = filter.page_size == 0 ? kDefaultPageSize : filter.page_size;
  // One more than a page tells whether another page follows.
  FLOWORK_ASSIGN_OR_RETURN(std::vector<KeyedTask> rows,
                           backend_->List(filter, after_key, page_size + 1));
  TaskPage page;
  const bool more = rows.size() > static_cast<size_t>(page_size);
  if (more) rows.resize(page_size);
  page.tasks.reserve(rows.size());
  for (KeyedTask& row : rows) page.tasks.push_back(std::move(row.task));
  if (more) page.next_page_token = EncodePageToken(rows.back().key);
  return page;
}

absl::StatusOr<std::vector<v1::StepRecord>> GroupCommitTaskStore::Journal(
    std::string_view task_id, uint64_t after_seq) const {
  return backend_->Journal(task_id, after_seq);
}

absl::StatusOr<std::vector<v1::Task>> GroupCommitTaskStore::ListUnfinished() const {
  return backend_->ListUnfinished();
}

absl::StatusOr<std::vector<std::string>> GroupCommitTaskStore::Children(
    std::string_view parent_id) const {
  return backend_->Children(parent_id);
}

}  // namespace flowork::agent::internal
