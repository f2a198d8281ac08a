// flowork-router: flags -> config -> library objects -> serve -> drain.
#include <signal.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/grpc/api_server.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"
#include "flowork/router/config_file_watcher.h"
#include "flowork/router/config_history.h"
#include "flowork/router/gateway.h"
#include "flowork/router/grpc/admin_service.h"
#include "flowork/router/grpc/router_service.h"
#include "flowork/router/router_config.h"
#include "flowork/router/router_stack.h"

ABSL_FLAG(std::string, config, "", "YAML or JSON config file; empty = embedded defaults");
ABSL_FLAG(std::string, http, "", "HTTP listen address host:port (overrides listen.http)");
ABSL_FLAG(std::string, grpc, "", "gRPC listen address host:port (overrides listen.grpc)");

namespace {

using flowork::core::Log;
using flowork::core::LogLevel;

int Fail(std::string_view what, const absl::Status& status) {
  Log(LogLevel::kError, what, {{"error", status.message()}});
  return 2;
}

// The config file with the command line's overrides.
absl::StatusOr<flowork::router::v1::RouterConfig> LoadConfig() {
  absl::StatusOr<flowork::router::v1::RouterConfig> config =
      flowork::router::LoadRouterConfig(absl::GetFlag(FLAGS_config));
  if (config.ok() && !absl::GetFlag(FLAGS_http).empty())
    config->mutable_listen()->set_http(absl::GetFlag(FLAGS_http));
  if (config.ok() && !absl::GetFlag(FLAGS_grpc).empty())
    config->mutable_listen()->set_grpc(absl::GetFlag(FLAGS_grpc));
  return config;
}

// SIGHUP or a watched file: re-read the config file and apply it as the next
// version; requests in flight finish on the old snapshot.
void Reload(flowork::router::ConfigHistory& history) {
  absl::StatusOr<flowork::router::v1::RouterConfig> config = LoadConfig();
  absl::StatusOr<uint64_t> version = config.ok() ? history.Apply(*config) : config.status();
  if (!version.ok()) {
    Log(LogLevel::kError, "reload refused; keeping the running configuration",
        {{"error", version.status().message()}});
    return;
  }
  Log(LogLevel::kInfo, "configuration reloaded", {{"version", absl::StrCat(*version)}});
}

// `--verify-audit PATH` (or `=PATH`): checks the audit file's hash chain
// instead of serving. Exit 0 intact, 1 broken (naming the first broken entry),
// 2 unreadable. Read before absl parses the flags: a flag name has no dash.
std::optional<int> VerifyAuditIfAsked(int argc, char** argv) {
  constexpr std::string_view kFlag = "--verify-audit";
  std::optional<std::string> path;
  for (int i = 1; i < argc && !path; ++i) {
    const std::string_view arg = argv[i];
    if (arg == kFlag) path = i + 1 < argc ? argv[i + 1] : "";
    if (arg.substr(0, kFlag.size() + 1) == "--verify-audit=") path = arg.substr(kFlag.size() + 1);
  }
  if (!path) return std::nullopt;
  absl::StatusOr<flowork::router::v1::VerifyAuditResponse> result =
      path->empty() ? absl::InvalidArgumentError("--verify-audit needs a file")
                    : flowork::router::VerifyAuditFile(*path);
  if (!result.ok()) {
    std::fprintf(stderr, "cannot verify %s: %s\n", path->c_str(),
                 result.status().ToString().c_str());
    return 2;
  }
  if (!result->ok()) {
    std::printf("audit trail %s is BROKEN: %s (first broken entry %llu)\n", path->c_str(),
                result->reason().c_str(),
                static_cast<unsigned long long>(result->first_broken_seq()));
    return 1;
  }
  std::printf("audit trail %s is intact: %llu entries, last entry %llu, hash %s\n", path->c_str(),
              static_cast<unsigned long long>(result->entries_checked()),
              static_cast<unsigned long long>(result->last_seq()), result->last_hash().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::optional<int> verified = VerifyAuditIfAsked(argc, argv)) return *verified;
  flowork::core::BlockServerSignals();
  flowork::core::TuneServerProcess();
  absl::SetProgramUsageMessage("Flow Router: one OpenAI/Anthropic/gRPC endpoint for your models.");
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<flowork::router::v1::RouterConfig> config = LoadConfig();
  if (!config.ok()) return Fail("invalid configuration", config.status());
  absl::StatusOr<LogLevel> level = flowork::core::ParseLogLevel(config->log().level());
  if (!level.ok()) return Fail("invalid configuration", level.status());
  flowork::core::SetLogLevel(*level);

  // Every API authenticates its callers once auth is on (client keys for
  // inference, admin keys for admin): only then may the router face a network.
  const bool authenticated = config->auth().mode() != flowork::router::v1::AuthConfig::MODE_NONE;
  absl::StatusOr<flowork::core::ApiServerOptions> options =
      flowork::core::ApiServerOptionsFromConfig(config->listen(), config->http_limits(),
                                                /*allow_non_loopback=*/authenticated);
  if (!options.ok()) return Fail("invalid configuration", options.status());

  // The router itself: policy, keys, upstreams, audit trail, limits and
  // budgets (this month's spend read back from the trail), metrics, gateway.
  auto stack = flowork::router::RouterStack::Create(*config);
  if (!stack.ok()) {
    return Fail(stack.status().code() == absl::StatusCode::kInvalidArgument
                    ? "invalid configuration"
                    : "cannot start",
                stack.status());
  }
  flowork::router::RouterStack& router = **stack;
  std::optional<flowork::router::ConfigFileWatcher> watcher;
  if (config->reload().watch_file() && !absl::GetFlag(FLAGS_config).empty()) {
    const int64_t poll_ms = config->reload().poll_interval().seconds() * 1000 +
                            config->reload().poll_interval().nanos() / 1'000'000;
    watcher.emplace(absl::GetFlag(FLAGS_config),
                    poll_ms > 0 ? absl::Milliseconds(poll_ms) : absl::Seconds(1),
                    [&router] { Reload(router.history()); });
  }
  // One set of event loops for the listener and the upstream pools: a request
  // stays on the thread that accepted it.
  options->http.loops = &router.loops();
  options->metrics = &router.metrics();
  for (const std::string& route : flowork::router::Gateway::Routes()) {
    options->extra_routes.emplace_back(route, &router.gateway());
  }
  flowork::router::RouterServiceImpl router_service(router.policy(), router.gateway(),
                                                    &router.keys());
  flowork::router::RouterAdminServiceImpl admin_service(router.history(), router.policy(),
                                                        router.keys(), router.audit());
  auto server = flowork::core::ApiServer::Create(
      *options, {{&router_service, "flowork.router.v1.RouterService"},
                 {&admin_service, "flowork.router.v1.RouterAdminService"}});
  if (!server.ok()) return Fail("cannot start", server.status());
  Log(LogLevel::kInfo, "flowork-router serving",
      {{"http", (*server)->http_address()}, {"grpc", (*server)->grpc_address()}});

  int signal;
  while ((signal = flowork::core::WaitForServerSignal()) == SIGHUP) Reload(router.history());
  watcher.reset();
  Log(LogLevel::kInfo, "flowork-router draining", {{"signal", absl::StrCat(signal)}});
  (*server)->Shutdown(absl::Seconds(4));
  Log(LogLevel::kInfo, "flowork-router stopped");
  return 0;
}
