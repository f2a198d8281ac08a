#ifndef FLOWORK_ROUTER_ROUTER_STACK_H_
#define FLOWORK_ROUTER_ROUTER_STACK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "flowork/core/clock.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/http_client.h"
#include "flowork/core/metrics.h"
#include "flowork/router/audit_log.h"
#include "flowork/router/config_history.h"
#include "flowork/router/gateway.h"
#include "flowork/router/key_store.h"
#include "flowork/router/policy.h"
#include "flowork/router/usage_governor.h"
#include "flowork/router/v1/config.pb.h"

namespace flowork::router {

// Options of a RouterStack. Every field documents its default.
struct RouterStackOptions {
  // Time source of the policy and the usage governor. Default (null): real.
  core::Clock* clock = nullptr;
  // Event loops for the upstream connections (and, in flowork-router, the
  // listener). Not owned; must outlive the stack. Default (null): the stack
  // creates http_limits.threads loops of its own.
  core::EventLoops* loops = nullptr;
  // The key store file when the config names none (`key_store`). Default
  // flowork-router's "flowork-keys.db"; "" keeps runtime keys in memory
  // (what an embedded router without the admin API wants).
  std::string default_key_store = "flowork-keys.db";
  // The audit trail file when the config names none (`audit.path`). Default
  // "": the audit config's own default, ./flowork-audit.db. An embedding
  // process names one of its own, so it never shares a trail with a
  // flowork-router started in the same directory (the file takes one writer).
  std::string default_audit_path;
  // Where the router's series go. Not owned; must outlive the stack. Default
  // (null): a registry of the stack's own. An embedding process passes the
  // one its /metrics serves.
  core::MetricsRegistry* metrics = nullptr;
};

// A whole router, listeners aside, from its configuration: the policy
// engine and its config history, the key store, the upstream HTTP client,
// the audit trail (unless `audit.disabled`; this month's spend read back
// from it into the usage governor), the metrics registry and the Gateway
// that ties them together. flowork-router serves it over HTTP and gRPC; an
// embedding process (flowork-agent with `router: {embedded: ...}`) hands
// requests straight to gateway(). Accessors are thread-safe as the objects
// they return; everything lives as long as the stack, which destroys the
// gateway first and its dependencies after.
class RouterStack {
 public:
  // kInvalidArgument naming the field of an invalid configuration;
  // kUnavailable (or the store's error) when the key store or the audit
  // trail cannot be opened or read.
  static absl::StatusOr<std::unique_ptr<RouterStack>> Create(
      const v1::RouterConfig& config, const RouterStackOptions& options = {});

  RouterStack(const RouterStack&) = delete;
  RouterStack& operator=(const RouterStack&) = delete;
  ~RouterStack();

  PolicyEngine& policy() const { return *policy_; }
  // Every configuration change goes through it (reloads, the admin API).
  ConfigHistory& history() const { return *history_; }
  KeyStore& keys() const { return *keys_; }
  // The event loops in use: the options' or the stack's own.
  core::EventLoops& loops() const { return *loops_; }
  core::HttpClient& upstreams() const { return *upstreams_; }
  // Null with `audit: {disabled: true}`.
  AuditLog* audit() const { return audit_.get(); }
  UsageGovernor& usage() const { return *usage_; }
  // The registry in use: the options' or the stack's own.
  core::MetricsRegistry& metrics() const { return *metrics_; }
  // The OpenAI-compatible HTTP handler (Gateway::Routes()).
  Gateway& gateway() const { return *gateway_; }

 private:
  RouterStack() = default;

  // Declared in the order they are built; destroyed in reverse.
  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<ConfigHistory> history_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<core::EventLoops> own_loops_;
  core::EventLoops* loops_ = nullptr;
  std::unique_ptr<core::HttpClient> upstreams_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<UsageGovernor> usage_;
  std::unique_ptr<core::MetricsRegistry> own_metrics_;
  core::MetricsRegistry* metrics_ = nullptr;
  std::unique_ptr<Gateway> gateway_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_ROUTER_STACK_H_
