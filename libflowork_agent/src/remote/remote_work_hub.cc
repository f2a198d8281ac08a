#include "flowork/agent/remote_work_hub.h"

#include <algorithm>
#include <deque>
#include <list>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"

namespace flowork::agent {
namespace {

using EffectDone = absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&>;

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return out;
}

std::string Quoted(std::string_view s) { return absl::StrCat("\"", std::string(s), "\""); }

// One piece of work: queued, or leased by one worker.
struct Work {
  std::string lease_id;
  std::string agent;
  std::string tenant;
  std::string task_id;
  google::protobuf::Value input;
  uint32_t attempt = 1;
  std::shared_ptr<EffectCall> call;
  EffectDone done;
  // The newest lease's token (0 before the first lease).
  uint64_t token = 0;
  bool leased = false;
  absl::Time expires;
  absl::Time expired_at;  // When the last lease expired.
  std::string worker_id;
  uint32_t leases = 0;
};

// What is left of work that ended while leased, so its holder gets a clear
// answer: the task was cancelled, or its Complete was already accepted.
struct Ended {
  std::string tenant;
  std::string task_id;
  uint64_t token = 0;
  bool cancelled = false;
  absl::Time forget_at;
};

struct Waiter {
  uint64_t id = 0;
  RemoteWorkHub::LeaseQuery query;
  absl::Time until;
  RemoteWorkHub::LeaseDone done;
};

bool Matches(const RemoteWorkHub::LeaseQuery& query, const Work& work) {
  return query.tenant == work.tenant &&
         std::find(query.agents.begin(), query.agents.end(), work.agent) != query.agents.end();
}

class RemoteWorkHubImpl final : public RemoteWorkHub {
 public:
  explicit RemoteWorkHubImpl(const RemoteWorkHubOptions& options)
      : options_(options),
        clock_(options.clock != nullptr ? *options.clock : core::Clock::Real()),
        next_token_(options.fencing_token_base != 0
                        ? options.fencing_token_base
                        : static_cast<uint64_t>(absl::ToUnixMicros(clock_.Now()))),
        lease_prefix_(absl::StrCat("w", next_token_, "-")) {
    if (options_.sweep_interval > absl::ZeroDuration()) {
      sweeper_ = std::thread([this] { SweepLoop(); });
    }
  }

  ~RemoteWorkHubImpl() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (sweeper_.joinable()) sweeper_.join();
    std::list<Waiter> waiters;
    std::map<std::string, std::shared_ptr<Work>> work;
    {
      absl::MutexLock lock(&mu_);
      waiters.swap(waiters_);
      work.swap(work_);
      queue_.clear();
    }
    for (Waiter& w : waiters) std::move(w.done)(absl::UnavailableError("the server is stopping"));
    for (auto& [id, item] : work) {
      if (item->done) std::move(item->done)(absl::UnavailableError("the server is stopping"));
    }
  }

  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               EffectDone done) override {
    if (!effect.has_remote()) {
      return std::move(done)(absl::InvalidArgumentError("not a remote effect"));
    }
    auto work = std::make_shared<Work>();
    work->agent = effect.remote().agent();
    work->input = effect.remote().input();
    work->tenant = call->task().tenant();
    work->task_id = call->task().id();
    work->attempt = std::max<uint32_t>(1, call->task().attempt());
    work->call = call;
    work->done = std::move(done);
    {
      absl::MutexLock lock(&mu_);
      work->lease_id = absl::StrCat(lease_prefix_, ++next_work_);
      work_[work->lease_id] = work;
      queue_.push_back(work->lease_id);
    }
    // Registered after queuing: a call abandoned already drops it at once.
    call->OnCancel([this, id = work->lease_id] { Drop(id); });
    Offer();
  }

  uint64_t Lease(LeaseQuery query, LeaseDone done) override {
    if (query.agents.empty()) {
      std::move(done)(absl::InvalidArgumentError("agents: name at least one remote agent"));
      return 0;
    }
    std::optional<v1::WorkItem> item;
    uint64_t id = 0;
    {
      absl::MutexLock lock(&mu_);
      item = TakeLocked(query);
      if (!item && query.wait > absl::ZeroDuration() && !stopping_) {
        id = ++next_waiter_;
        const absl::Time until = clock_.Now() + std::min(query.wait, options_.max_lease_wait);
        waiters_.push_back(Waiter{id, std::move(query), until, std::move(done)});
        wake_.Signal();
        return id;
      }
    }
    std::move(done)(std::move(item));
    return 0;
  }

  bool CancelLease(uint64_t wait_id) override {
    std::optional<Waiter> waiter;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->id == wait_id) {
          waiter = std::move(*it);
          waiters_.erase(it);
          break;
        }
      }
    }
    if (!waiter) return false;
    std::move(waiter->done)(absl::CancelledError("the lease call was cancelled"));
    return true;
  }

  absl::StatusOr<HeartbeatAnswer> Heartbeat(std::string_view tenant, std::string_view lease_id,
                                            uint64_t fencing_token) override {
    std::shared_ptr<EffectCall> call;
    HeartbeatAnswer answer;
    {
      absl::MutexLock lock(&mu_);
      if (const Ended* ended = FindEnded(tenant, lease_id, fencing_token)) {
        if (!ended->cancelled) {
          return absl::FailedPreconditionError(
              absl::StrCat("lease ", Quoted(lease_id), " was completed already"));
        }
        answer.cancelled = true;
        answer.lease_expire_time = ended->forget_at;
        return answer;
      }
      FLOWORK_RETURN_IF_ERROR(StaleLocked(tenant, lease_id, fencing_token));
      absl::StatusOr<Work*> work = HeldLocked(tenant, lease_id, fencing_token);
      if (!work.ok()) return work.status();
      (*work)->expires = clock_.Now() + options_.lease_ttl;
      answer.lease_expire_time = (*work)->expires;
      call = (*work)->call;
    }
    call->Heartbeat();  // Progress for the runtime's heartbeat watchdog.
    return answer;
  }

  absl::Status Complete(std::string_view tenant, std::string_view lease_id, uint64_t fencing_token,
                        google::protobuf::Value output) override {
    v1::EffectResult result;
    *result.mutable_remote()->mutable_output() = std::move(output);
    return End(tenant, lease_id, fencing_token, std::move(result));
  }

  absl::Status Fail(std::string_view tenant, std::string_view lease_id, uint64_t fencing_token,
                    std::string error, bool retryable) override {
    if (retryable) {
      return End(tenant, lease_id, fencing_token,
                 absl::UnavailableError(absl::StrCat("remote worker failed: ", error)));
    }
    v1::EffectResult result;
    result.mutable_remote()->set_error(error.empty() ? "the remote worker failed" : error);
    return End(tenant, lease_id, fencing_token, std::move(result));
  }

  void Sweep() override {
    std::vector<Waiter> timed_out;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = clock_.Now();
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->until <= now) {
          timed_out.push_back(std::move(*it));
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
      // Expired leases go back to the front: they were queued first.
      std::vector<std::string> requeue;
      for (auto& [id, work] : work_) {
        if (work->leased && work->expires <= now) {
          work->leased = false;
          work->expired_at = now;
          requeue.push_back(id);
        }
      }
      queue_.insert(queue_.begin(), requeue.begin(), requeue.end());
      for (auto it = ended_.begin(); it != ended_.end();) {
        it = it->second.forget_at <= now ? ended_.erase(it) : std::next(it);
      }
    }
    for (Waiter& w : timed_out) std::move(w.done)(std::nullopt);
    Offer();
  }

  int queued() const override {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(queue_.size());
  }
  int leased() const override {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(work_.size() - queue_.size());
  }

 private:
  // Hands queued work to waiting Lease calls, oldest first.
  void Offer() {
    std::vector<std::pair<LeaseDone, v1::WorkItem>> handed;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = waiters_.begin(); it != waiters_.end() && !queue_.empty();) {
        std::optional<v1::WorkItem> item = TakeLocked(it->query);
        if (!item) {
          ++it;
          continue;
        }
        handed.emplace_back(std::move(it->done), *std::move(item));
        it = waiters_.erase(it);
      }
    }
    for (auto& [done, item] : handed) std::move(done)(std::move(item));
  }

  // Leases the oldest queued work matching `query`.
  std::optional<v1::WorkItem> TakeLocked(const LeaseQuery& query)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      Work& work = *work_.at(*it);
      if (!Matches(query, work)) continue;
      queue_.erase(it);
      work.leased = true;
      work.token = ++next_token_;
      work.expires = clock_.Now() + options_.lease_ttl;
      work.worker_id = query.worker_id;
      v1::WorkItem item;
      item.set_lease_id(work.lease_id);
      item.set_fencing_token(work.token);
      item.set_task_id(work.task_id);
      item.set_agent(work.agent);
      item.set_tenant(work.tenant);
      *item.mutable_input() = work.input;
      item.set_attempt(work.attempt);
      *item.mutable_lease_expire_time() = ToProto(work.expires);
      item.set_previous_leases(work.leases++);
      return item;
    }
    return std::nullopt;
  }

  // The live lease `lease_id` held with `token`, or why it is not.
  absl::StatusOr<Work*> HeldLocked(std::string_view tenant, std::string_view lease_id,
                                   uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = work_.find(std::string(lease_id));
    if (it == work_.end() || it->second->tenant != tenant) {
      return absl::AbortedError(absl::StrCat("lease ", Quoted(lease_id),
                                             " is unknown: it ended, expired long ago, or the "
                                             "server restarted; drop the work"));
    }
    Work& work = *it->second;
    if (token != work.token) {
      return absl::AbortedError(absl::StrCat("lease ", Quoted(lease_id), ": fencing token ", token,
                                             " is stale (the work was leased ", "again with token ",
                                             work.token, "); drop the work"));
    }
    if (!work.leased || work.expires <= clock_.Now()) {
      return absl::AbortedError(absl::StrCat("lease ", Quoted(lease_id), " (token ", token,
                                             ") expired; the work is queued for another worker"));
    }
    return &work;
  }

  // Work that ended while leased with `token`.
  const Ended* FindEnded(std::string_view tenant, std::string_view lease_id, uint64_t token) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Ended* ended = EndedLocked(tenant, lease_id);
    return ended != nullptr && ended->token == token ? ended : nullptr;
  }
  const Ended* EndedLocked(std::string_view tenant, std::string_view lease_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = ended_.find(std::string(lease_id));
    return it == ended_.end() || it->second.tenant != tenant ? nullptr : &it->second;
  }
  // kAborted when the work ended under a later lease than `token`'s.
  absl::Status StaleLocked(std::string_view tenant, std::string_view lease_id, uint64_t token) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Ended* ended = EndedLocked(tenant, lease_id);
    if (ended == nullptr) return absl::OkStatus();
    return absl::AbortedError(
        absl::StrCat("lease ", Quoted(lease_id), ": fencing token ", token,
                     " is stale (the work was leased again with token ", ended->token, " and ",
                     ended->cancelled ? "its task cancelled" : "completed", "); drop the work"));
  }
  // How long ended work is remembered, so late callers get a clear answer.
  absl::Time ForgetAt() const {
    return clock_.Now() + std::max(10 * options_.lease_ttl, absl::Minutes(1));
  }

  absl::Status End(std::string_view tenant, std::string_view lease_id, uint64_t token,
                   absl::StatusOr<v1::EffectResult> result) {
    EffectDone done;
    {
      absl::MutexLock lock(&mu_);
      if (const Ended* ended = FindEnded(tenant, lease_id, token)) {
        if (ended->cancelled) {
          return absl::FailedPreconditionError(
              absl::StrCat("task ", Quoted(ended->task_id), " was cancelled"));
        }
        return absl::OkStatus();  // A repeat of the accepted completion.
      }
      FLOWORK_RETURN_IF_ERROR(StaleLocked(tenant, lease_id, token));
      absl::StatusOr<Work*> held = HeldLocked(tenant, lease_id, token);
      if (!held.ok()) return held.status();
      Work& work = **held;
      if (result.ok()) {
        result->mutable_remote()->set_worker_id(work.worker_id);
        result->mutable_remote()->set_fencing_token(token);
      }
      done = std::move(work.done);
      ended_[work.lease_id] = Ended{work.tenant, work.task_id, token, false, ForgetAt()};
      work_.erase(work.lease_id);
    }
    std::move(done)(std::move(result));
    return absl::OkStatus();
  }

  // The task was cancelled or its step abandoned: the work goes.
  void Drop(const std::string& lease_id) {
    EffectDone done;
    {
      absl::MutexLock lock(&mu_);
      auto it = work_.find(lease_id);
      if (it == work_.end()) return;
      Work& work = *it->second;
      if (work.leased) {
        ended_[lease_id] = Ended{work.tenant, work.task_id, work.token, true, ForgetAt()};
      } else {
        queue_.erase(std::find(queue_.begin(), queue_.end(), lease_id));
      }
      done = std::move(work.done);
      work_.erase(it);
    }
    if (done) std::move(done)(absl::CancelledError("the task's remote work was abandoned"));
  }

  void SweepLoop() {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        wake_.WaitWithTimeout(&mu_, options_.sweep_interval);
        if (stopping_) return;
      }
      Sweep();
    }
  }

  const RemoteWorkHubOptions options_;
  const core::Clock& clock_;
  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  uint64_t next_token_ ABSL_GUARDED_BY(mu_);
  const std::string lease_prefix_;
  uint64_t next_work_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_waiter_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // By lease id; those not leased are in queue_, oldest first.
  std::map<std::string, std::shared_ptr<Work>> work_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Ended> ended_ ABSL_GUARDED_BY(mu_);
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::thread sweeper_;
};

class RemoteAgent final : public Agent {
 public:
  explicit RemoteAgent(std::string name) : name_(std::move(name)) {}

  absl::StatusOr<v1::Effect> Step(const StepContext& context) override {
    v1::Effect effect;
    if (!context.journal.empty() && context.journal.back().kind() == "remote") {
      v1::EffectResult result;
      if (!result.ParseFromString(context.journal.back().output()) || !result.has_remote()) {
        return absl::DataLossError("the journal holds an unreadable remote result");
      }
      if (!result.remote().error().empty()) {
        effect.mutable_fail()->set_error(result.remote().error());
      } else {
        *effect.mutable_finish()->mutable_output() = result.remote().output();
      }
      return effect;
    }
    effect.mutable_remote()->set_agent(name_);
    *effect.mutable_remote()->mutable_input() = context.task.input();
    return effect;
  }

 private:
  const std::string name_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteWorkHub>> RemoteWorkHub::Create(
    const RemoteWorkHubOptions& options) {
  if (options.lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease_ttl: must be positive");
  }
  if (options.max_lease_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_lease_wait: must not be negative");
  }
  return std::make_unique<RemoteWorkHubImpl>(options);
}

std::shared_ptr<Agent> CreateRemoteAgent(const v1::AgentSpec& spec) {
  return std::make_shared<RemoteAgent>(spec.name());
}

}  // namespace flowork::agent
