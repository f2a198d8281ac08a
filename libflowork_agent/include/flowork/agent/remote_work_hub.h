#ifndef FLOWORK_AGENT_REMOTE_WORK_HUB_H_
#define FLOWORK_AGENT_REMOTE_WORK_HUB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/agent.h"
#include "flowork/agent/v1/agent.pb.h"
#include "flowork/agent/v1/worker_service.pb.h"
#include "flowork/core/clock.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

// Options of a RemoteWorkHub. Every field documents its default.
struct RemoteWorkHubOptions {
  // A lease not renewed by Heartbeat within this long expires; its work is
  // queued again for the next worker. Default 10 s.
  absl::Duration lease_ttl = absl::Seconds(10);
  // The longest a Lease call waits for work. Default 30 s.
  absl::Duration max_lease_wait = absl::Seconds(30);
  // How often a background thread expires leases and ends Lease calls whose
  // wait is over. Zero: no thread; the owner calls Sweep(). Default 100 ms.
  absl::Duration sweep_interval = absl::Milliseconds(100);
  // Fencing tokens count up from this + 1. 0: the clock's Unix time in
  // microseconds at Create, so tokens keep increasing across restarts.
  uint64_t fencing_token_base = 0;
  // Not owned; must outlive the hub. Default: the real clock.
  const core::Clock* clock = nullptr;
};

// Performs the `remote` effects of KIND_REMOTE agents' tasks (see
// CreateRemoteAgent) by handing them to remote workers in any language: the
// work waits in a queue until a worker leases it, and the worker's Complete
// (or Fail) becomes the effect's result. A lease lasts `lease_ttl` unless
// renewed by Heartbeat; an expired lease's work is queued again and its next
// lease carries a higher fencing token, so the old holder can neither renew
// nor complete it: each piece of work is completed at most once, by the
// current lease holder. A task cancelled (or its step timed out) drops its
// work; the holder's Heartbeat then reports `cancelled`. Workers see only
// the work of their own tenant's tasks. Thread-safe. Must outlive the
// runtime it serves (the runtime holds it as a plain EffectHandler*).
class RemoteWorkHub : public EffectHandler {
 public:
  static absl::StatusOr<std::unique_ptr<RemoteWorkHub>> Create(const RemoteWorkHubOptions& options);
  // Ends every waiting Lease call (kUnavailable) and every queued or leased
  // piece of work (its `done` gets kUnavailable).
  ~RemoteWorkHub() override = default;

  // What a worker asks for.
  struct LeaseQuery {
    std::string worker_id;
    // Only work of tasks of this tenant.
    std::string tenant;
    // Only work of these agents. Must not be empty.
    std::vector<std::string> agents;
    // Wait up to this long (cut to max_lease_wait) for work to arrive.
    absl::Duration wait = absl::ZeroDuration();
  };
  // nullopt: no work came within the wait.
  using LeaseDone = absl::AnyInvocable<void(absl::StatusOr<std::optional<v1::WorkItem>>) &&>;

  // Leases the oldest queued work matching `query`, or waits for some.
  // `done` runs exactly once, possibly inside Lease: with the work, with
  // nullopt when the wait ended without any, with kCancelled after
  // CancelLease, kInvalidArgument for a query without agents. Returns an id
  // for CancelLease; 0 when `done` already ran.
  virtual uint64_t Lease(LeaseQuery query, LeaseDone done) = 0;
  // Ends a waiting Lease call (its `done` gets kCancelled), e.g. when the
  // caller went away. False when it had already ended.
  virtual bool CancelLease(uint64_t wait_id) = 0;

  struct HeartbeatAnswer {
    absl::Time lease_expire_time;
    // The task was cancelled: the worker should stop.
    bool cancelled = false;
  };
  // Renews a lease for another lease_ttl. kAborted: the lease expired, its
  // fencing token is stale (the work was leased again) or the lease is
  // unknown (e.g. the server restarted, or another tenant's).
  virtual absl::StatusOr<HeartbeatAnswer> Heartbeat(std::string_view tenant,
                                                    std::string_view lease_id,
                                                    uint64_t fencing_token) = 0;
  // Ends leased work with its output: the effect's result. Repeating an
  // accepted Complete with the same token is OK and changes nothing.
  // kAborted as for Heartbeat; kFailedPrecondition: the task was cancelled.
  virtual absl::Status Complete(std::string_view tenant, std::string_view lease_id,
                                uint64_t fencing_token, google::protobuf::Value output) = 0;
  // Ends leased work with an error: `retryable` fails the effect's attempt
  // (retried by the agent's retry policy), else the result carries `error`
  // and the task fails with it. Refusals as for Complete.
  virtual absl::Status Fail(std::string_view tenant, std::string_view lease_id,
                            uint64_t fencing_token, std::string error, bool retryable) = 0;

  // Expires leases past their time (their work queued again) and ends Lease
  // calls whose wait is over. Run by the hub's thread, or by the owner when
  // sweep_interval is zero.
  virtual void Sweep() = 0;

  // Work waiting for a worker, and work leased now.
  virtual int queued() const = 0;
  virtual int leased() const = 0;
};

// A KIND_REMOTE agent named `spec.name`: its first step asks for a
// RemoteWork effect with the task's input (performed by a RemoteWorkHub);
// the next one finishes the task with the worker's output, or fails it with
// the worker's error. Thread-safe.
std::shared_ptr<Agent> CreateRemoteAgent(const v1::AgentSpec& spec);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_REMOTE_WORK_HUB_H_
