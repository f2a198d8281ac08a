// Starts the real server binaries and talks to them the way users do: JSON
// over HTTP, gRPC, health checks, reflection, signals.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "flowork/agent/v1/agent_service.grpc.pb.h"
#include "flowork/router/v1/router.grpc.pb.h"
#include "flowork/test/reflection/reflection.pb.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::HttpCall;
using ::flowork::testing::ServerProcess;
using ::testing::HasSubstr;

constexpr char kRouterConfig[] = R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
auth: {mode: none}
providers:
  - {name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1", zone: local}
models:
  - {name: llama-3.1-8b, provider: local, context_window: 131072, capabilities: [chat, tools]}
  - {name: nomic-embed, provider: local, capabilities: [embeddings]}
routes:
  - {name: chat, candidates: [llama-3.1-8b], objective: least_latency, require: {capabilities: [chat]}}
)yaml";

constexpr char kAgentConfig[] = R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
agents:
  - {name: writer, kind: llm, model: chat, system_prompt: "You write.", tools: [recall]}
)yaml";

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
  return json;
}

ServerProcess StartServer(const std::string& binary, const std::string& config) {
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(dir + "/config.yaml", config);
  std::vector<std::string> args = {"--config", dir + "/config.yaml"};
  if (binary == FLOWORK_AGENT_BIN) args.insert(args.end(), {"--store", dir + "/agent.db"});
  absl::StatusOr<ServerProcess> server = ServerProcess::Start(binary, args);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  return *std::move(server);
}

TEST(RouterServerTest, ListModelsOverHttpEqualsGrpc) {
  ServerProcess server = StartServer(FLOWORK_ROUTER_BIN, kRouterConfig);
  auto http = HttpCall(server.http_port(), "GET", "/v1/router/models?capabilities=chat");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->status, 200);

  auto stub = router::v1::RouterService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  router::v1::ListModelsRequest request;
  request.add_capabilities("chat");
  router::v1::ListModelsResponse response;
  ASSERT_TRUE(stub->ListModels(&context, request, &response).ok());
  ASSERT_EQ(response.models_size(), 2);
  EXPECT_EQ(response.models(0).id(), "llama-3.1-8b");
  EXPECT_EQ(response.models(1).id(), "chat");
  EXPECT_EQ(http->body, ToJson(response));
}

TEST(RouterServerTest, ExplainsARouteOverHttpWithEveryVerdict) {
  ServerProcess server = StartServer(FLOWORK_ROUTER_BIN, kRouterConfig);
  auto http = HttpCall(server.http_port(), "POST", "/v1/router/explain",
                       R"({"model":"chat","estimatedPromptTokens":100,"seed":"7"})");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->status, 200) << http->body;
  EXPECT_EQ(http->body,
            R"({"target":"chat","objective":"least_latency","seed":"7",)"
            R"("attempts":["llama-3.1-8b@local"],)"
            R"("candidates":[{"model":"llama-3.1-8b","provider":"local","zone":"local",)"
            R"("kept":true,"reason":"kept"}]})");
  auto unknown = HttpCall(server.http_port(), "POST", "/v1/router/explain", R"({"model":"gpt-x"})");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(unknown->body,
            R"({"code":5,"message":"no model or route named \"gpt-x\"","details":[]})");
}

TEST(RouterServerTest, RefusesAConfigThatFailsValidationNamingEveryProblem) {
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(dir + "/router.yaml", R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
providers: [{name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1"}]
models: [{name: a, provider: nowhere}]
routes: [{name: chat, candidates: [a, gpt-x]}]
)yaml");
  absl::StatusOr<ServerProcess> server =
      ServerProcess::Start(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("models[0].provider: unknown provider \\\"nowhere\\\""));
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("routes[0].candidates[1]"));
}

TEST(RouterServerTest, ReloadsItsConfigOnSighupAndKeepsItWhenTheNewOneIsInvalid) {
  const std::string dir = testing::MakeTempDir();
  const std::string path = dir + "/router.yaml";
  testing::WriteFile(path, kRouterConfig);
  absl::StatusOr<ServerProcess> started =
      ServerProcess::Start(FLOWORK_ROUTER_BIN, {"--config", path});
  ASSERT_TRUE(started.ok()) << started.status();
  ServerProcess& server = *started;

  testing::WriteFile(
      path, std::string(kRouterConfig) + "  - {name: chat-2, candidates: [llama-3.1-8b]}\n");
  server.SendSignal(SIGHUP);
  ASSERT_TRUE(server.WaitForLog("configuration reloaded")) << server.log();
  auto models = HttpCall(server.http_port(), "GET", "/v1/router/models");
  EXPECT_THAT(models->body, HasSubstr(R"("id":"chat-2")"));

  testing::WriteFile(path,
                     std::string(kRouterConfig) + "  - {name: broken, candidates: [gpt-x]}\n");
  server.SendSignal(SIGHUP);
  ASSERT_TRUE(server.WaitForLog("reload refused")) << server.log();
  EXPECT_THAT(server.log(), HasSubstr("routes[1].candidates[0]"));
  models = HttpCall(server.http_port(), "GET", "/v1/router/models");
  EXPECT_THAT(models->body, HasSubstr(R"("id":"chat-2")"));
  EXPECT_THAT(models->body, ::testing::Not(HasSubstr("broken")));
  EXPECT_EQ(server.Stop(SIGTERM, absl::Seconds(5)).value_or(-2), 0);
}

TEST(AgentServerTest, GetAgentOverHttpEqualsGrpc) {
  ServerProcess server = StartServer(FLOWORK_AGENT_BIN, kAgentConfig);
  auto http = HttpCall(server.http_port(), "GET", "/v1/agents/writer");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->status, 200);

  auto stub = agent::v1::AgentService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  agent::v1::GetAgentRequest request;
  request.set_name("writer");
  agent::v1::AgentSpec spec;
  ASSERT_TRUE(stub->GetAgent(&context, request, &spec).ok());
  EXPECT_EQ(spec.system_prompt(), "You write.");
  EXPECT_EQ(spec.kind(), agent::v1::AgentSpec::KIND_LLM);
  EXPECT_EQ(http->body, ToJson(spec));
}

TEST(AgentServerTest, AgentCreatedOverHttpIsVisibleOverGrpc) {
  ServerProcess server = StartServer(FLOWORK_AGENT_BIN, kAgentConfig);
  auto created = HttpCall(server.http_port(), "POST", "/v1/agents",
                          R"({"name":"reviewer","kind":"KIND_LLM","model":"chat"})");
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->status, 200) << created->body;
  EXPECT_EQ(created->body, R"({"name":"reviewer","version":"1","kind":"KIND_LLM","model":"chat"})");

  auto stub = agent::v1::AgentService::NewStub(
      grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  agent::v1::ListAgentsResponse list;
  ASSERT_TRUE(stub->ListAgents(&context, agent::v1::ListAgentsRequest(), &list).ok());
  ASSERT_EQ(list.agents_size(), 2);
  EXPECT_EQ(list.agents(0).name(), "reviewer");

  auto again =
      HttpCall(server.http_port(), "POST", "/v1/agents", R"({"name":"reviewer","model":"chat"})");
  EXPECT_EQ(again->status, 409);
  EXPECT_EQ(again->body,
            R"({"code":6,"message":"agent \"reviewer\" already exists","details":[]})");
}

TEST(AgentServerTest, BadRequestsGetClearErrors) {
  ServerProcess server = StartServer(FLOWORK_AGENT_BIN, kAgentConfig);
  auto bad_json = HttpCall(server.http_port(), "POST", "/v1/agents", R"({"name": "x",)");
  EXPECT_EQ(bad_json->status, 400);
  EXPECT_THAT(bad_json->body, HasSubstr(R"("code":3)"));

  auto unknown_field = HttpCall(server.http_port(), "POST", "/v1/agents", R"({"nmae":"x"})");
  EXPECT_EQ(unknown_field->status, 400);
  EXPECT_THAT(unknown_field->body, HasSubstr("nmae"));

  auto wrong_type = HttpCall(server.http_port(), "POST", "/v1/agents", R"({"name":["x"]})");
  EXPECT_EQ(wrong_type->status, 400);
  EXPECT_THAT(wrong_type->body, HasSubstr("name"));

  auto bad_name = HttpCall(server.http_port(), "POST", "/v1/agents", R"({"name":"Bad Name"})");
  EXPECT_EQ(bad_name->status, 400);
  EXPECT_THAT(bad_name->body, HasSubstr("agent.name"));

  auto missing = HttpCall(server.http_port(), "GET", "/v1/agents/ghost");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, R"({"code":5,"message":"agent \"ghost\" not found","details":[]})");

  auto no_route = HttpCall(server.http_port(), "GET", "/v1/nowhere");
  EXPECT_EQ(no_route->status, 404);
  EXPECT_EQ(no_route->body, R"({"code":5,"message":"no route for GET /v1/nowhere","details":[]})");
}

TEST(ServersTest, ServeHealthReadinessMetricsAndGrpcHealth) {
  for (const auto& [binary, config] :
       {std::pair{FLOWORK_ROUTER_BIN, kRouterConfig}, std::pair{FLOWORK_AGENT_BIN, kAgentConfig}}) {
    SCOPED_TRACE(binary);
    ServerProcess server = StartServer(binary, config);
    EXPECT_EQ(HttpCall(server.http_port(), "GET", "/healthz")->status, 200);
    EXPECT_EQ(HttpCall(server.http_port(), "GET", "/readyz")->status, 200);
    auto metrics = HttpCall(server.http_port(), "GET", "/metrics");
    EXPECT_THAT(metrics->body, HasSubstr("flowork_http_requests_total{code=\"200\"} 2"));

    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(server.grpc_target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, grpc::health::v1::HealthCheckRequest(), &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

// Lists services through gRPC server reflection, as grpcurl would.
std::vector<std::string> ReflectedServices(const std::string& target) {
  grpc::GenericStub stub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  auto step = [&](int id) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, reinterpret_cast<void*>(id));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step(1)) return {};
  test::reflection::ServerReflectionRequest request;
  request.set_list_services("*");
  grpc::ByteBuffer out;
  bool own;
  grpc::SerializationTraits<google::protobuf::Message>::Serialize(request, &out, &own);
  call->WriteLast(out, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  step(2);
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  std::vector<std::string> names;
  if (step(3)) {
    test::reflection::ServerReflectionResponse response;
    grpc::SerializationTraits<google::protobuf::Message>::Deserialize(&in, &response);
    for (const auto& service : response.list_services_response().service()) {
      names.push_back(service.name());
    }
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  step(4);
  return names;
}

TEST(ServersTest, ListTheirServicesThroughReflection) {
  ServerProcess router = StartServer(FLOWORK_ROUTER_BIN, kRouterConfig);
  EXPECT_THAT(
      ReflectedServices(router.grpc_target()),
      ::testing::IsSupersetOf({"flowork.router.v1.RouterService", "grpc.health.v1.Health"}));
  ServerProcess agent = StartServer(FLOWORK_AGENT_BIN, kAgentConfig);
  EXPECT_THAT(ReflectedServices(agent.grpc_target()),
              ::testing::IsSupersetOf({"flowork.agent.v1.AgentService", "grpc.health.v1.Health"}));
}

TEST(ServersTest, StopCleanlyOnSigtermAndSigintWithinFiveSeconds) {
  for (int signal : {SIGTERM, SIGINT}) {
    for (const auto& [binary, config] : {std::pair{FLOWORK_ROUTER_BIN, kRouterConfig},
                                         std::pair{FLOWORK_AGENT_BIN, kAgentConfig}}) {
      SCOPED_TRACE(absl::StrCat(binary, " signal ", signal));
      ServerProcess server = StartServer(binary, config);
      absl::StatusOr<int> exit_code = server.Stop(signal, absl::Seconds(5));
      ASSERT_TRUE(exit_code.ok()) << exit_code.status() << "\n" << server.log();
      EXPECT_EQ(*exit_code, 0) << server.log();
      EXPECT_THAT(server.log(), HasSubstr("stopped"));
    }
  }
}

TEST(ServersTest, RefuseInvalidConfigWithFileLineAndField) {
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(
      dir + "/router.yaml",
      "listen: {http: 127.0.0.1:0}\nroutes:\n  - name: chat\n    objective: fastest\n");
  absl::StatusOr<ServerProcess> server =
      ServerProcess::Start(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("router.yaml:4: routes[0].objective: unknown value \\\"fastest\\\""));
}

TEST(RouterServerTest, ServesTheShippedDemoConfig) {
  absl::StatusOr<ServerProcess> server = ServerProcess::Start(
      FLOWORK_ROUTER_BIN, {"--config", std::string(FLOWORK_SOURCE_DIR) + "/configs/router.yaml",
                           "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto models = HttpCall(server->http_port(), "GET", "/v1/models");
  EXPECT_THAT(models->body, HasSubstr(R"("id":"chat")"));
}

TEST(ServersTest, RefuseNonLoopbackListenersWithoutAuth) {
  absl::StatusOr<ServerProcess> server =
      ServerProcess::Start(FLOWORK_AGENT_BIN, {"--http", "0.0.0.0:0", "--grpc", "127.0.0.1:0"});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("refusing to listen on non-loopback address"));
  // The router's shipped config runs with `auth: none`: the same refusal.
  absl::StatusOr<ServerProcess> router = ServerProcess::Start(
      FLOWORK_ROUTER_BIN, {"--config", std::string(FLOWORK_SOURCE_DIR) + "/configs/router.yaml",
                           "--http", "0.0.0.0:0", "--grpc", "127.0.0.1:0"});
  ASSERT_FALSE(router.ok());
  EXPECT_THAT(std::string(router.status().message()), HasSubstr("non-loopback"));
}

}  // namespace
}  // namespace flowork
