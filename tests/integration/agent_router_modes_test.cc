// How flowork-agent reaches the router, over real processes: gRPC to
// flowork-router (`router: {target: ...}`), and a router embedded in the
// agent (`router: {embedded: ...}`) with only flowork-mockllm beside it.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "flowork/agent/v1/agent_service.pb.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::ClientResponse;
using ::flowork::testing::HttpCall;
using ::flowork::testing::ServerProcess;
using ::flowork::testing::StartOrAbort;
using ::testing::HasSubstr;

// The router's catalog ("chat" -> m1 on the mock at `port`), YAML lines
// indented by `indent`.
std::string Catalog(int port, const std::string& indent) {
  return absl::StrCat(indent, "auth: {mode: none}\n", indent, "audit: {disabled: true}\n", indent,
                      "providers:\n", indent,
                      "  - {name: mock, kind: openai, base_url: \"http://127.0.0.1:", port,
                      "/v1\"}\n", indent, "models:\n", indent,
                      "  - {name: m1, provider: mock, upstream_model: mock-1, capabilities: "
                      "[chat]}\n",
                      indent, "routes:\n", indent, "  - {name: chat, candidates: [m1]}\n");
}

// An agent config with `router` (YAML lines) and one LLM agent "helper".
std::string AgentYaml(const std::string& dir, const std::string& router) {
  return absl::StrCat("listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\n", "store: {path: \"", dir,
                      "/agent.db\"}\n", router,
                      "agents:\n  - {name: helper, kind: KIND_LLM, model: chat}\n");
}

// Submits a task to `agent` and polls it to its end (bounded).
agent::v1::Task RunTask(const ServerProcess& agent, const std::string& input) {
  absl::StatusOr<ClientResponse> submitted =
      HttpCall(agent.http_port(), "POST", "/v1/tasks",
               absl::StrCat(R"({"agent":"helper","input":")", input, R"("})"), {});
  EXPECT_TRUE(submitted.ok()) << submitted.status();
  agent::v1::Task task;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(submitted->body, &task).ok())
      << submitted->body;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (absl::Now() < give_up) {
    absl::StatusOr<ClientResponse> got =
        HttpCall(agent.http_port(), "GET", absl::StrCat("/v1/tasks/", task.id()), "", {});
    if (got.ok() && google::protobuf::util::JsonStringToMessage(got->body, &task).ok() &&
        (task.state() == agent::v1::TASK_STATE_SUCCEEDED ||
         task.state() == agent::v1::TASK_STATE_FAILED)) {
      break;
    }
    absl::SleepFor(
        absl::Milliseconds(20));  // Polling the API; the event stream is tested elsewhere.
  }
  return task;
}

TEST(AgentRouterModesTest, AnAgentReachesFloworkRouterOverGrpc) {
  ServerProcess mock =
      StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--tokens", "6"});
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(
      dir + "/router.yaml",
      absl::StrCat("listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\n", "key_store: \"", dir,
                   "/keys.db\"\n", Catalog(mock.http_port(), "")));
  ServerProcess router = StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"});
  testing::WriteFile(
      dir + "/agent.yaml",
      AgentYaml(dir, absl::StrCat("router: {target: \"", router.grpc_target(), "\"}\n")));
  ServerProcess agent = StartOrAbort(FLOWORK_AGENT_BIN, {"--config", dir + "/agent.yaml"});
  agent::v1::Task task = RunTask(agent, "hello over grpc");
  ASSERT_EQ(task.state(), agent::v1::TASK_STATE_SUCCEEDED) << task.error() << agent.log();
  EXPECT_THAT(task.output().string_value(), HasSubstr("Mock answer to: hello over grpc"));
}

TEST(AgentRouterModesTest, AnAgentWithAnEmbeddedRouterNeedsNoRouterProcess) {
  ServerProcess mock =
      StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--tokens", "6"});
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(
      dir + "/agent.yaml",
      AgentYaml(dir, absl::StrCat("router:\n  embedded:\n", Catalog(mock.http_port(), "    "))));
  ServerProcess agent = StartOrAbort(FLOWORK_AGENT_BIN, {"--config", dir + "/agent.yaml"});
  agent::v1::Task task = RunTask(agent, "hello in process");
  ASSERT_EQ(task.state(), agent::v1::TASK_STATE_SUCCEEDED) << task.error() << agent.log();
  EXPECT_THAT(task.output().string_value(), HasSubstr("Mock answer to: hello in process"));
  // The embedded router's series are on the agent's /metrics, next to its own.
  absl::StatusOr<ClientResponse> metrics = HttpCall(agent.http_port(), "GET", "/metrics", "", {});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(metrics->body, HasSubstr("flowork_router_requests_total{"));
  EXPECT_THAT(metrics->body, HasSubstr("model=\"chat\""));
  EXPECT_THAT(metrics->body, HasSubstr("flowork_http_requests_total{"));
}

TEST(AgentRouterModesTest, TwoWaysToTheRouterAreAConfigError) {
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(
      dir + "/agent.yaml",
      AgentYaml(dir, "router: {target: \"127.0.0.1:2403\", http: \"http://127.0.0.1:2402/v1\"}\n"));
  absl::StatusOr<ServerProcess> agent =
      ServerProcess::Start(FLOWORK_AGENT_BIN, {"--config", dir + "/agent.yaml"}, absl::Seconds(10));
  EXPECT_FALSE(agent.ok());
  EXPECT_THAT(std::string(agent.status().message()), HasSubstr("router: set one of"));
}

}  // namespace
}  // namespace flowork
