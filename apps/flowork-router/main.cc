// flowork-router: flags -> config -> library objects -> serve -> drain.
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/grpc/api_server.h"
#include "flowork/core/http_client.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"
#include "flowork/router/gateway.h"
#include "flowork/router/grpc/router_service.h"
#include "flowork/router/policy.h"
#include "flowork/router/router_config.h"

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

// SIGHUP: re-read the config file and swap the routing snapshot in; requests
// in flight finish on the old one. Listeners stay where they are.
void Reload(flowork::router::PolicyEngine& policy,
            const flowork::router::v1::RouterConfig& running) {
  absl::StatusOr<flowork::router::v1::RouterConfig> config =
      flowork::router::LoadRouterConfig(absl::GetFlag(FLAGS_config));
  absl::Status applied = config.ok() ? policy.ApplyConfig(*config) : config.status();
  if (!applied.ok()) {
    Log(LogLevel::kError, "reload refused; keeping the running configuration",
        {{"error", applied.message()}});
    return;
  }
  if (config->listen().http() != running.listen().http() ||
      config->listen().grpc() != running.listen().grpc()) {
    Log(LogLevel::kWarning, "listen addresses change only on restart");
  }
  Log(LogLevel::kInfo, "configuration reloaded");
}

}  // namespace

int main(int argc, char** argv) {
  flowork::core::BlockServerSignals();
  flowork::core::TuneServerProcess();
  absl::SetProgramUsageMessage("Flow Router: one OpenAI/Anthropic/gRPC endpoint for your models.");
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<flowork::router::v1::RouterConfig> config =
      flowork::router::LoadRouterConfig(absl::GetFlag(FLAGS_config));
  if (!config.ok()) return Fail("invalid configuration", config.status());
  if (!absl::GetFlag(FLAGS_http).empty())
    config->mutable_listen()->set_http(absl::GetFlag(FLAGS_http));
  if (!absl::GetFlag(FLAGS_grpc).empty())
    config->mutable_listen()->set_grpc(absl::GetFlag(FLAGS_grpc));
  absl::StatusOr<LogLevel> level = flowork::core::ParseLogLevel(config->log().level());
  if (!level.ok()) return Fail("invalid configuration", level.status());
  flowork::core::SetLogLevel(*level);

  absl::StatusOr<flowork::core::ApiServerOptions> options =
      flowork::core::ApiServerOptionsFromConfig(config->listen(), config->http_limits(),
                                                /*allow_non_loopback=*/false);
  if (!options.ok()) return Fail("invalid configuration", options.status());

  auto policy = flowork::router::PolicyEngine::Create(*config, flowork::core::Clock::Real());
  if (!policy.ok()) return Fail("invalid configuration", policy.status());
  // One set of event loops for the listener and the upstream pools: a request
  // stays on the thread that accepted it.
  auto loops = flowork::core::EventLoops::Create(static_cast<int>(config->http_limits().threads()));
  if (!loops.ok()) return Fail("invalid configuration", loops.status());
  options->http.loops = loops->get();
  auto upstreams = flowork::core::HttpClient::Create({.loops = loops->get()});
  if (!upstreams.ok()) return Fail("cannot start", upstreams.status());
  auto gateway = flowork::router::Gateway::Create(**policy, **upstreams, loops->get());
  if (!gateway.ok()) return Fail("cannot start", gateway.status());
  for (const std::string& route : flowork::router::Gateway::Routes()) {
    options->extra_routes.emplace_back(route, gateway->get());
  }
  flowork::router::RouterServiceImpl router_service(**policy, **gateway);
  auto server = flowork::core::ApiServer::Create(
      *options, {{&router_service, "flowork.router.v1.RouterService"}});
  if (!server.ok()) return Fail("cannot start", server.status());
  Log(LogLevel::kInfo, "flowork-router serving",
      {{"http", (*server)->http_address()}, {"grpc", (*server)->grpc_address()}});

  int signal;
  while ((signal = flowork::core::WaitForServerSignal()) == SIGHUP) Reload(**policy, *config);
  Log(LogLevel::kInfo, "flowork-router draining", {{"signal", absl::StrCat(signal)}});
  (*server)->Shutdown(absl::Seconds(4));
  Log(LogLevel::kInfo, "flowork-router stopped");
  return 0;
}
