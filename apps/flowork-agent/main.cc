// flowork-agent: flags -> config -> library objects -> serve -> drain.
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "flowork/agent/agent_config.h"
#include "flowork/agent/agent_registry.h"
#include "flowork/agent/grpc/agent_service.h"
#include "flowork/core/grpc/api_server.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"

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

}  // namespace

int main(int argc, char** argv) {
  flowork::core::BlockServerSignals();
  flowork::core::TuneServerProcess();
  absl::SetProgramUsageMessage("Flowork Agent: durable agents, tasks and tools.");
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<flowork::agent::v1::AgentConfig> config =
      flowork::agent::LoadAgentConfig(absl::GetFlag(FLAGS_config));
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

  auto registry =
      flowork::agent::AgentRegistry::Create({config->agents().begin(), config->agents().end()});
  if (!registry.ok()) return Fail("invalid configuration", registry.status());
  flowork::agent::AgentServiceImpl agent_service(**registry);
  auto server = flowork::core::ApiServer::Create(
      *options, {{&agent_service, "flowork.agent.v1.AgentService"}});
  if (!server.ok()) return Fail("cannot start", server.status());
  Log(LogLevel::kInfo, "flowork-agent serving",
      {{"http", (*server)->http_address()}, {"grpc", (*server)->grpc_address()}});

  int signal;
  while ((signal = flowork::core::WaitForServerSignal()) == SIGHUP) {
    Log(LogLevel::kInfo, "flowork-agent has nothing to reload on SIGHUP");
  }
  Log(LogLevel::kInfo, "flowork-agent draining", {{"signal", absl::StrCat(signal)}});
  (*server)->Shutdown(absl::Seconds(4));
  Log(LogLevel::kInfo, "flowork-agent stopped");
  return 0;
}
