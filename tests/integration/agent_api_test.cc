// The agent server's API over real processes: flowork-agent in front of
// flowork-router in front of flowork-mockllm, called over HTTP/JSON the way a
// user's curl would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// SHA-256 of "key-acme" and "key-beta".
constexpr char kAcmeKey[] = "key-acme";
constexpr char kBetaKey[] = "key-beta";
constexpr char kAcmeHash[] = "6371cb7a907cc8f10740229732c4b6164b285169494b85304468313513427878";
constexpr char kBetaHash[] = "8fd493b2a681a4810d9fd40526a9de960deb255e7bfbb1c4d509d06d6da6ff5b";

std::vector<std::pair<std::string, std::string>> As(const char* key) {
  return {{"authorization", absl::StrCat("Bearer ", key)}};
}

agent::v1::Task ParseTask(const std::string& json) {
  agent::v1::Task task;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &task).ok()) << json;
  return task;
}

// The `data:` payloads of an SSE body, as events. An `event: error` fails.
std::vector<agent::v1::TaskEvent> ParseEvents(const std::string& body) {
  std::vector<agent::v1::TaskEvent> events;
  for (absl::string_view block : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    EXPECT_FALSE(absl::StartsWith(block, "event: error")) << block;
    if (!absl::StartsWith(block, "data: ")) continue;
    agent::v1::TaskEvent event;
    const std::string json(block.substr(6));
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &event).ok()) << json;
    events.push_back(std::move(event));
  }
  return events;
}

std::vector<std::string> Ids(const std::vector<agent::v1::TaskEvent>& events) {
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.id());
  return ids;
}

// Opens an SSE stream on a raw socket, reads until `events` events arrived,
// then drops the connection: a client that went away mid-stream.
std::vector<agent::v1::TaskEvent> ReadEventsThenDisconnect(int port, const std::string& target,
                                                           const char* key, size_t events) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const std::string request = absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                           "authorization: Bearer ", key, "\r\n\r\n");
  EXPECT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string received;
  std::vector<agent::v1::TaskEvent> parsed;
  char buffer[4096];
  while (parsed.size() < events) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    received.append(buffer, static_cast<size_t>(n));
    // Chunked framing aside, each event is one "data: {...}\n\n" line.
    parsed.clear();
    for (absl::string_view line : absl::StrSplit(received, '\n')) {
      if (!absl::StartsWith(line, "data: ")) continue;
      agent::v1::TaskEvent event;
      if (google::protobuf::util::JsonStringToMessage(std::string(line.substr(6)), &event).ok()) {
        parsed.push_back(std::move(event));
      }
    }
  }
  close(fd);
  EXPECT_GE(parsed.size(), events) << received;
  return parsed;
}

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--tokens", "6"}));
    hanging_mock_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--hang"}));
    trickling_mock_.emplace(
        StartOrAbort(FLOWORK_MOCKLLM_BIN,
                     {"--http", "127.0.0.1:0", "--ttft_ms", "400", "--chunk_interval_ms", "100"}));
    const std::string dir = testing::MakeTempDir();
    testing::WriteFile(dir + "/router.yaml", absl::StrCat(R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
auth: {mode: none}
providers:
  - {name: mock, kind: openai, base_url: "http://127.0.0.1:)yaml",
                                                          mock_->http_port(), R"yaml(/v1"}
  - {name: stuck, kind: openai, base_url: "http://127.0.0.1:)yaml",
                                                          hanging_mock_->http_port(), R"yaml(/v1",
     timeouts: {first_byte: 300s}}
  - {name: trickle, kind: openai, base_url: "http://127.0.0.1:)yaml",
                                                          trickling_mock_->http_port(), R"yaml(/v1"}
models:
  - {name: m1, provider: mock, upstream_model: mock-1, capabilities: [chat]}
  - {name: m2, provider: stuck, upstream_model: mock-1, capabilities: [chat]}
  - {name: m3, provider: trickle, upstream_model: mock-1, capabilities: [chat]}
routes:
  - {name: chat, candidates: [m1]}
  - {name: slow, candidates: [m2]}
  - {name: trickling, candidates: [m3]}
)yaml"));
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
    testing::WriteFile(dir + "/agent.yaml", absl::StrCat(R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
store: {path: ")yaml",
                                                         dir, R"yaml(/agent.db"}
router: {http: "http://127.0.0.1:)yaml",
                                                         router_->http_port(), R"yaml(/v1"}
keys:
  - {name: acme, sha256: )yaml",
                                                         kAcmeHash, R"yaml(, tenant: acme}
  - {name: beta, sha256: )yaml",
                                                         kBetaHash, R"yaml(, tenant: beta}
agents:
  - {name: helper, kind: KIND_LLM, model: chat, system_prompt: "You help."}
  - {name: sleeper, kind: KIND_LLM, model: slow}
  - {name: streamer, kind: KIND_LLM, model: trickling}
)yaml"));
    agent_config_ = dir + "/agent.yaml";
    agent_.emplace(StartOrAbort(FLOWORK_AGENT_BIN, {"--config", agent_config_}));
  }

  int port() const { return agent_->http_port(); }

  agent::v1::Task Submit(const std::string& body, const char* key = kAcmeKey) {
    absl::StatusOr<ClientResponse> r = HttpCall(port(), "POST", "/v1/tasks", body, As(key));
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body << agent_->log();
    return ParseTask(r->body);
  }

  // Reads the task's whole event stream: it ends once the task is final.
  std::vector<agent::v1::TaskEvent> Events(const std::string& id, uint64_t after = 0) {
    absl::StatusOr<ClientResponse> r =
        HttpCall(port(), "GET", absl::StrCat("/v1/tasks/", id, "/events?after=", after), "",
                 As(kAcmeKey), 30'000);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->Header("Content-Type"), "text/event-stream");
    return ParseEvents(r->body);
  }

  std::optional<ServerProcess> mock_;
  std::optional<ServerProcess> hanging_mock_;
  std::optional<ServerProcess> trickling_mock_;
  std::optional<ServerProcess> router_;
  std::optional<ServerProcess> agent_;
  std::string agent_config_;
};

TEST_F(AgentApiTest, SubmittedTaskStreamsItsEventsAndSucceedsThroughRouterAndMock) {
  agent::v1::Task task = Submit(R"({"agent":"helper","input":"hello there"})");
  ASSERT_FALSE(task.id().empty());
  EXPECT_EQ(task.tenant(), "acme");

  std::vector<agent::v1::TaskEvent> events = Events(task.id());
  ASSERT_GE(events.size(), 3u) << agent_->log();
  EXPECT_EQ(events.front().type(), "dev.flowork.task.created");
  EXPECT_EQ(events.front().id(), "1");
  for (const agent::v1::TaskEvent& event : events) {
    EXPECT_EQ(event.specversion(), "1.0");
    EXPECT_EQ(event.subject(), task.id());
    EXPECT_EQ(event.source(), absl::StrCat("/v1/tasks/", task.id()));
    EXPECT_EQ(event.datacontenttype(), "application/json");
  }
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e.type());
  EXPECT_THAT(types, ::testing::Contains("dev.flowork.task.step.started"));
  EXPECT_THAT(types, ::testing::Contains("dev.flowork.task.step.completed"));
  const agent::v1::TaskEvent& last = events.back();
  EXPECT_EQ(last.type(), "dev.flowork.task.finished");
  EXPECT_EQ(last.data().struct_value().fields().at("state").string_value(), "TASK_STATE_SUCCEEDED")
      << last.DebugString();
  std::string output;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(
                  last.data().struct_value().fields().at("output"), &output)
                  .ok());
  EXPECT_THAT(output, HasSubstr("Mock answer to: hello there"));

  auto got = HttpCall(port(), "GET", absl::StrCat("/v1/tasks/", task.id()), "", As(kAcmeKey));
  EXPECT_EQ(ParseTask(got->body).state(), agent::v1::TASK_STATE_SUCCEEDED);
}

TEST_F(AgentApiTest, EventStreamResumesAfterAnyIdWithoutLossOrRepeat) {
  agent::v1::Task task = Submit(R"({"agent":"helper","input":"resume me"})");
  // The journal's events: live token events (if the stream caught the model
  // call) are not replayed.
  std::vector<agent::v1::TaskEvent> all;
  for (agent::v1::TaskEvent& e : Events(task.id())) {
    if (e.type() != "dev.flowork.task.token") all.push_back(std::move(e));
  }
  ASSERT_GE(all.size(), 3u);
  for (size_t cut = 0; cut < all.size(); ++cut) {
    uint64_t after = 0;
    ASSERT_TRUE(absl::SimpleAtoi(all[cut].id(), &after));
    std::vector<std::string> expected;
    for (size_t i = cut + 1; i < all.size(); ++i) expected.push_back(all[i].id());
    EXPECT_EQ(Ids(Events(task.id(), after)), expected) << "after=" << after;
  }
}

TEST_F(AgentApiTest, StreamDroppedMidTaskResumesWithTheRestAndCancelEndsAHangingModelCallPromptly) {
  agent::v1::Task task = Submit(R"({"agent":"sleeper","input":"never answered"})");
  // Created, then the model call's step started: the mock hangs on it.
  std::vector<agent::v1::TaskEvent> first = ReadEventsThenDisconnect(
      port(), absl::StrCat("/v1/tasks/", task.id(), "/events"), kAcmeKey, 2);
  ASSERT_EQ(Ids(first), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(first[1].type(), "dev.flowork.task.step.started");
  // The step is journaled before its model call goes out: give the call time
  // to reach the router, whose side of the cancellation is checked below. (A
  // cancel that wins the race aborts the call before it is sent, and the
  // router then has nothing to book.)
  absl::SleepFor(absl::Milliseconds(300));

  const absl::Time start = absl::Now();
  auto cancelled =
      HttpCall(port(), "POST", absl::StrCat("/v1/tasks/", task.id(), ":cancel"), "", As(kAcmeKey));
  ASSERT_EQ(cancelled->status, 200) << cancelled->body;
  std::vector<agent::v1::TaskEvent> rest = Events(task.id(), 2);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ASSERT_FALSE(rest.empty());
  for (const auto& e : rest) EXPECT_GT(std::stoull(e.id()), 2u);
  EXPECT_EQ(rest.back().type(), "dev.flowork.task.finished");
  EXPECT_EQ(rest.back().data().struct_value().fields().at("state").string_value(),
            "TASK_STATE_CANCELLED");
  // The mock never answers and the router would wait 300 s for it: only the
  // cancellation ended the task.
  auto got = HttpCall(port(), "GET", absl::StrCat("/v1/tasks/", task.id()), "", As(kAcmeKey));
  EXPECT_EQ(ParseTask(got->body).state(), agent::v1::TASK_STATE_CANCELLED);
  // The model call itself was aborted: the router saw its caller go away
  // (it books such a request as 499) long before its 300 s upstream timeout.
  const std::string aborted =
      R"(flowork_router_requests_total{code="499",endpoint="",model="slow"} 1)";
  std::string metrics;
  for (int i = 0; i < 100 && !absl::StrContains(metrics, aborted); ++i) {
    if (i > 0) absl::SleepFor(absl::Milliseconds(100));
    auto scraped = HttpCall(router_->http_port(), "GET", "/metrics");
    if (scraped.ok()) metrics = scraped->body;
  }
  EXPECT_THAT(metrics, HasSubstr(aborted));
}

TEST_F(AgentApiTest, LiveStreamCarriesTheModelsTokensAsTheyArrive) {
  agent::v1::Task task = Submit(R"({"agent":"streamer","input":"stream me"})");
  std::vector<agent::v1::TaskEvent> events = Events(task.id());
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().type(), "dev.flowork.task.finished");
  const std::string output =
      events.back().data().struct_value().fields().at("output").string_value();
  std::string streamed;
  int tokens = 0;
  for (const agent::v1::TaskEvent& e : events) {
    if (e.type() != "dev.flowork.task.token") continue;
    ++tokens;
    // Between the model step's start (2) and its end (3), never replayed ids.
    EXPECT_EQ(e.id(), absl::StrCat("2.", tokens));
    streamed += e.data().struct_value().fields().at("text").string_value();
  }
  EXPECT_GE(tokens, 2);
  EXPECT_EQ(streamed, output);
  // A replay from the journal has the answer, not the tokens.
  for (const agent::v1::TaskEvent& e : Events(task.id(), 2)) {
    EXPECT_NE(e.type(), "dev.flowork.task.token");
  }
}

TEST_F(AgentApiTest, SameIdempotencyKeyOverHttpGivesTheSameTaskOnce) {
  const std::string body = R"({"agent":"helper","input":"once","idempotencyKey":"order-42"})";
  agent::v1::Task first = Submit(body);
  agent::v1::Task second = Submit(body);
  EXPECT_EQ(first.id(), second.id());
  auto list = HttpCall(port(), "GET", "/v1/tasks?agent=helper", "", As(kAcmeKey));
  ASSERT_EQ(list->status, 200) << list->body;
  agent::v1::ListTasksResponse tasks;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(list->body, &tasks).ok());
  ASSERT_EQ(tasks.tasks_size(), 1);
  EXPECT_EQ(tasks.tasks(0).id(), first.id());
}

TEST_F(AgentApiTest, AnotherTenantsTaskIsNotFoundAndCallsWithoutAKeyAreRefused) {
  agent::v1::Task task = Submit(R"({"agent":"helper","input":"private"})", kAcmeKey);
  const std::string path = absl::StrCat("/v1/tasks/", task.id());
  EXPECT_EQ(HttpCall(port(), "GET", path, "", As(kAcmeKey))->status, 200);

  auto foreign = HttpCall(port(), "GET", path, "", As(kBetaKey));
  EXPECT_EQ(foreign->status, 404);
  EXPECT_EQ(foreign->body, absl::StrCat(R"({"code":5,"message":"task \")", task.id(),
                                        R"(\" not found","details":[]})"));
  EXPECT_EQ(HttpCall(port(), "POST", path + ":cancel", "", As(kBetaKey))->status, 404);
  EXPECT_EQ(HttpCall(port(), "GET", path + "/events", "", As(kBetaKey))->status, 404);
  auto beta_list = HttpCall(port(), "GET", "/v1/tasks", "", As(kBetaKey));
  EXPECT_EQ(beta_list->body, "{}");

  EXPECT_EQ(HttpCall(port(), "GET", path)->status, 401);
  EXPECT_EQ(HttpCall(port(), "GET", path, "", As("wrong-key"))->status, 401);
  auto x_api_key = HttpCall(port(), "GET", path, "", {{"x-api-key", kAcmeKey}});
  EXPECT_EQ(x_api_key->status, 200);
}

TEST_F(AgentApiTest, AgentsCreatedOverHttpAreTheTenantsOwnAndSurviveARestart) {
  auto created =
      HttpCall(port(), "POST", "/v1/agents",
               R"({"name":"reviewer","model":"chat","systemPrompt":"Review."})", As(kAcmeKey));
  ASSERT_EQ(created->status, 200) << created->body;
  EXPECT_EQ(created->body, R"({"name":"reviewer","version":"1","kind":"KIND_LLM","model":"chat",)"
                           R"("systemPrompt":"Review."})");
  EXPECT_EQ(HttpCall(port(), "GET", "/v1/agents/reviewer", "", As(kBetaKey))->status, 404);
  auto updated = HttpCall(port(), "PUT", "/v1/agents/reviewer",
                          R"({"model":"chat","systemPrompt":"Review harder."})", As(kAcmeKey));
  ASSERT_EQ(updated->status, 200) << updated->body;
  EXPECT_THAT(updated->body, HasSubstr(R"("version":"2")"));
  EXPECT_EQ(
      HttpCall(port(), "PUT", "/v1/agents/helper", R"({"model":"chat"})", As(kAcmeKey))->status,
      400);  // Shared: FAILED_PRECONDITION.

  ASSERT_EQ(agent_->Stop(SIGTERM, absl::Seconds(10)).value_or(-1), 0) << agent_->log();
  agent_.reset();
  agent_.emplace(StartOrAbort(FLOWORK_AGENT_BIN, {"--config", agent_config_}));
  auto after = HttpCall(port(), "GET", "/v1/agents/reviewer", "", As(kAcmeKey));
  ASSERT_EQ(after->status, 200) << after->body;
  EXPECT_THAT(after->body, HasSubstr(R"("systemPrompt":"Review harder.")"));
  EXPECT_THAT(after->body, HasSubstr(R"("version":"2")"));
  agent::v1::Task task = Submit(R"({"agent":"reviewer","input":"my diff"})");
  EXPECT_EQ(Events(task.id()).back().data().struct_value().fields().at("state").string_value(),
            "TASK_STATE_SUCCEEDED");
}

}  // namespace
}  // namespace flowork
