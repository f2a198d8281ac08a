// flowork-agent: flags -> config -> AgentServer -> serve -> drain.
#include <signal.h>

#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "flowork/agent/agent_config.h"
#include "flowork/agent/grpc/agent_server.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"

ABSL_FLAG(std::string, config, "", "YAML or JSON config file; empty = embedded defaults");
ABSL_FLAG(std::string, http, "", "HTTP listen address host:port (overrides listen.http)");
ABSL_FLAG(std::string, grpc, "", "gRPC listen address host:port (overrides listen.grpc)");
ABSL_FLAG(std::string, store, "", "SQLite task store file (overrides store.path)");

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
  if (!absl::GetFlag(FLAGS_store).empty())
    config->mutable_store()->set_path(absl::GetFlag(FLAGS_store));
  absl::StatusOr<LogLevel> level = flowork::core::ParseLogLevel(config->log().level());
  if (!level.ok()) return Fail("invalid configuration", level.status());
  flowork::core::SetLogLevel(*level);

  auto server = flowork::agent::AgentServer::Create(*config);
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
