// The agent server's sessions, tools and approvals over real processes:
// flowork-agent in front of flowork-router in front of flowork-mockllm, with
// an HTTP tool (declared in the agent's config) aimed at a loopback server in
// this test. The mock scripts tool calls with `call:<tool>` markers.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/agent/v1/agent_service.pb.h"
#include "flowork/core/http_server.h"
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
using ::testing::Not;

// SHA-256 of "key-acme" and "key-beta".
constexpr char kAcmeKey[] = "key-acme";
constexpr char kBetaKey[] = "key-beta";
constexpr char kAcmeHash[] = "6371cb7a907cc8f10740229732c4b6164b285169494b85304468313513427878";
constexpr char kBetaHash[] = "8fd493b2a681a4810d9fd40526a9de960deb255e7bfbb1c4d509d06d6da6ff5b";

std::vector<std::pair<std::string, std::string>> As(const char* key) {
  return {{"authorization", absl::StrCat("Bearer ", key)}};
}

template <typename Message>
Message Parse(const std::string& json) {
  Message message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok()) << json;
  return message;
}

// The HTTP tool's target: answers every request with a fixed text and
// remembers the targets it was asked for.
class ToolTarget final : public core::HttpHandler {
 public:
  void Handle(core::HttpRequest request,
              std::unique_ptr<core::HttpResponseWriter> writer) override {
    {
      absl::MutexLock lock(&mu_);
      targets_.push_back(request.target);
    }
    writer->Send({.status = 200,
                  .headers = {{"Content-Type", "text/plain"}},
                  .body = "the stock is 42 crates"});
  }

  std::vector<std::string> targets() const {
    absl::MutexLock lock(&mu_);
    return targets_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> targets_;
};

class AgentToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<core::HttpServer>> target =
        core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, tool_target_);
    ASSERT_TRUE(target.ok()) << target.status();
    target_server_ = *std::move(target);
    mock_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--tokens", "6"}));
    const std::string dir = testing::MakeTempDir();
    testing::WriteFile(dir + "/router.yaml", absl::StrCat(R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
auth: {mode: none}
providers:
  - {name: mock, kind: openai, base_url: "http://127.0.0.1:)yaml",
                                                          mock_->http_port(), R"yaml(/v1"}
models:
  - {name: m1, provider: mock, upstream_model: mock-1, capabilities: [chat, tools]}
routes:
  - {name: chat, candidates: [m1]}
)yaml"));
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
    testing::WriteFile(
        dir + "/agent.yaml",
        absl::StrCat(R"yaml(
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
tools:
  http:
    - name: stock
      description: Looks up the stock of an item.
      method: GET
      url_template: "http://127.0.0.1:)yaml",
                     target_server_->port(), R"yaml(/stock?item={query}"
      allowed_hosts: ["127.0.0.1"]
      allow_private_addresses: true
  mcp:
    - {name: fx, command: ")yaml",
                     FLOWORK_PYTHON3, R"yaml(", args: [")yaml", FLOWORK_MCP_ECHO_SERVER, R"yaml("]}
agents:
  - {name: helper, kind: KIND_LLM, model: chat, system_prompt: "You help."}
  - name: clerk
    model: chat
    tools: [stock, remember]
    approval: {tools: [stock], reason: "reads the warehouse"}
  - {name: prober, model: chat, tools: [fx_structured]}
)yaml"));
    agent_.emplace(StartOrAbort(FLOWORK_AGENT_BIN, {"--config", dir + "/agent.yaml"}));
  }

  void TearDown() override {
    if (target_server_ != nullptr) target_server_->Shutdown(absl::ZeroDuration());
  }

  int port() const { return agent_->http_port(); }

  ClientResponse Call(const std::string& method, const std::string& path,
                      const std::string& body = "", const char* key = kAcmeKey) {
    absl::StatusOr<ClientResponse> r = HttpCall(port(), method, path, body, As(key), 30'000);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ClientResponse{};
  }

  agent::v1::Task Submit(const std::string& body) {
    ClientResponse r = Call("POST", "/v1/tasks", body);
    EXPECT_EQ(r.status, 200) << r.body << agent_->log();
    return Parse<agent::v1::Task>(r.body);
  }

  // The task's whole event stream as text: it ends once the task is final.
  std::string EventsUntilFinal(const std::string& id) {
    ClientResponse r = Call("GET", absl::StrCat("/v1/tasks/", id, "/events"));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_THAT(r.body, HasSubstr("dev.flowork.task.finished")) << r.body << agent_->log();
    return r.body;
  }

  agent::v1::Task GetTask(const std::string& id) {
    ClientResponse r = Call("GET", absl::StrCat("/v1/tasks/", id));
    EXPECT_EQ(r.status, 200) << r.body;
    return Parse<agent::v1::Task>(r.body);
  }

  // Polls the pending approvals (bounded) until one of task `id` shows.
  std::optional<agent::v1::Approval> AwaitApproval(const std::string& id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      ClientResponse r = Call("GET", "/v1/approvals?state=pending");
      EXPECT_EQ(r.status, 200) << r.body;
      auto list = Parse<agent::v1::ListApprovalsResponse>(r.body);
      for (const agent::v1::Approval& approval : list.approvals()) {
        if (approval.pending().task_id() == id) return approval;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "no approval for task " << id << "\n" << agent_->log();
    return std::nullopt;
  }

  ToolTarget tool_target_;
  std::unique_ptr<core::HttpServer> target_server_;
  std::optional<ServerProcess> mock_;
  std::optional<ServerProcess> router_;
  std::optional<ServerProcess> agent_;
};

TEST_F(AgentToolsTest, TasksOnOneSessionContinueItInOrder) {
  ClientResponse created =
      Call("POST", "/v1/sessions", R"({"agent":"helper","labels":{"user":"ann"}})");
  ASSERT_EQ(created.status, 200) << created.body << agent_->log();
  const auto session = Parse<agent::v1::Session>(created.body);
  ASSERT_FALSE(session.id().empty());
  EXPECT_EQ(session.tenant(), "acme");
  EXPECT_EQ(session.labels().at("user"), "ann");

  const agent::v1::Task first = Submit(
      absl::StrCat(R"({"agent":"helper","input":"first question about apples","session_id":")",
                   session.id(), R"("})"));
  const agent::v1::Task second = Submit(absl::StrCat(
      R"({"agent":"helper","input":"second question","session_id":")", session.id(), R"("})"));
  EXPECT_EQ(first.session_id(), session.id());
  EventsUntilFinal(first.id());
  // The second task's model request (journaled in its step events) carries
  // the first task's turn.
  const std::string second_events = EventsUntilFinal(second.id());
  EXPECT_THAT(second_events, HasSubstr("first question about apples"));
  EXPECT_EQ(GetTask(first.id()).state(), agent::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(GetTask(second.id()).state(), agent::v1::TASK_STATE_SUCCEEDED);
  // A task without the session does not see it.
  const agent::v1::Task alone = Submit(R"({"agent":"helper","input":"second question"})");
  EXPECT_THAT(EventsUntilFinal(alone.id()), Not(HasSubstr("first question about apples")));

  ClientResponse got = Call("GET", absl::StrCat("/v1/sessions/", session.id()));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Parse<agent::v1::Session>(got.body).message_count(), 4u) << got.body;

  ClientResponse listed = Call("GET", absl::StrCat("/v1/sessions/", session.id(), "/messages"));
  ASSERT_EQ(listed.status, 200) << listed.body;
  const auto messages = Parse<agent::v1::ListSessionMessagesResponse>(listed.body);
  ASSERT_EQ(messages.messages_size(), 4) << listed.body;
  const std::vector<std::pair<std::string, std::string>> expected = {{"user", first.id()},
                                                                     {"assistant", first.id()},
                                                                     {"user", second.id()},
                                                                     {"assistant", second.id()}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(messages.messages(i).seq(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(messages.messages(i).message().role(), expected[i].first) << i;
    EXPECT_EQ(messages.messages(i).task_id(), expected[i].second) << i;
  }
  EXPECT_THAT(messages.messages(0).message().content(), HasSubstr("first question about apples"));
  EXPECT_THAT(messages.messages(2).message().content(), HasSubstr("second question"));
  EXPECT_THAT(messages.messages(3).message().content(), HasSubstr("Mock answer to"));

  ClientResponse page =
      Call("GET", absl::StrCat("/v1/sessions/", session.id(), "/messages?after=2&limit=1"));
  ASSERT_EQ(page.status, 200) << page.body;
  const auto paged = Parse<agent::v1::ListSessionMessagesResponse>(page.body);
  ASSERT_EQ(paged.messages_size(), 1);
  EXPECT_EQ(paged.messages(0).seq(), 3u);

  ClientResponse all = Call("GET", "/v1/sessions?agent=helper");
  ASSERT_EQ(all.status, 200) << all.body;
  const auto sessions = Parse<agent::v1::ListSessionsResponse>(all.body);
  ASSERT_EQ(sessions.sessions_size(), 1);
  EXPECT_EQ(sessions.sessions(0).id(), session.id());
}

TEST_F(AgentToolsTest, SessionsAreTenantScoped) {
  ClientResponse created = Call("POST", "/v1/sessions", R"({"agent":"helper"})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = Parse<agent::v1::Session>(created.body).id();
  const std::string path = absl::StrCat("/v1/sessions/", id);

  EXPECT_EQ(Call("GET", path, "", kBetaKey).status, 404);
  EXPECT_EQ(Call("GET", path + "/messages", "", kBetaKey).status, 404);
  ClientResponse foreign =
      Call("POST", "/v1/tasks",
           absl::StrCat(R"({"agent":"helper","input":"x","session_id":")", id, R"("})"), kBetaKey);
  EXPECT_EQ(foreign.status, 404) << foreign.body;
  EXPECT_THAT(foreign.body, HasSubstr("session_id"));
  ClientResponse beta_list = Call("GET", "/v1/sessions", "", kBetaKey);
  ASSERT_EQ(beta_list.status, 200);
  EXPECT_EQ(Parse<agent::v1::ListSessionsResponse>(beta_list.body).sessions_size(), 0);

  EXPECT_EQ(Call("GET", "/v1/sessions/no-such-session").status, 404);
  EXPECT_EQ(Call("POST", "/v1/sessions", R"({"agent":"nobody"})").status, 404);
  // A session belongs to one agent.
  ClientResponse other_agent =
      Call("POST", "/v1/tasks",
           absl::StrCat(R"({"agent":"clerk","input":"x","session_id":")", id, R"("})"));
  EXPECT_EQ(other_agent.status, 400) << other_agent.body;
}

TEST_F(AgentToolsTest, ToolCallWaitsForApprovalAndRunsOnceApproved) {
  const agent::v1::Task task =
      Submit(R"({"agent":"clerk","input":"call:stock apples","idempotency_key":"a1"})");
  std::optional<agent::v1::Approval> approval = AwaitApproval(task.id());
  ASSERT_TRUE(approval.has_value());
  EXPECT_EQ(GetTask(task.id()).state(), agent::v1::TASK_STATE_WAITING_APPROVAL);
  EXPECT_EQ(approval->pending().call().name(), "stock");
  EXPECT_EQ(approval->pending().reason(), "reads the warehouse");
  EXPECT_EQ(approval->pending().agent(), "clerk");
  EXPECT_TRUE(tool_target_.targets().empty());  // Not before the decision.
  // Another tenant neither sees nor decides it.
  ClientResponse beta = Call("GET", "/v1/approvals?state=pending", "", kBetaKey);
  EXPECT_EQ(Parse<agent::v1::ListApprovalsResponse>(beta.body).approvals_size(), 0);
  EXPECT_EQ(Call("POST", absl::StrCat("/v1/approvals/", approval->id(), ":approve"), "{}", kBetaKey)
                .status,
            404);

  ClientResponse approved = Call("POST", absl::StrCat("/v1/approvals/", approval->id(), ":approve"),
                                 R"({"who":"ops@acme","comment":"fine"})");
  ASSERT_EQ(approved.status, 200) << approved.body;
  const std::string events = EventsUntilFinal(task.id());
  const agent::v1::Task done = GetTask(task.id());
  EXPECT_EQ(done.state(), agent::v1::TASK_STATE_SUCCEEDED) << done.error() << events;
  EXPECT_THAT(events, HasSubstr("the stock is 42 crates"));
  EXPECT_THAT(tool_target_.targets(), ::testing::ElementsAre("/stock?item=apples"));
  EXPECT_EQ(
      Parse<agent::v1::ListApprovalsResponse>(Call("GET", "/v1/approvals").body).approvals_size(),
      0);
}

TEST_F(AgentToolsTest, DeniedToolCallIsReportedToTheModelAndTheTaskFinishes) {
  const agent::v1::Task task = Submit(R"({"agent":"clerk","input":"call:stock pears"})");
  std::optional<agent::v1::Approval> approval = AwaitApproval(task.id());
  ASSERT_TRUE(approval.has_value());
  ClientResponse denied = Call("POST", absl::StrCat("/v1/approvals/", approval->id(), ":deny"),
                               R"({"who":"ops@acme","comment":"not now"})");
  ASSERT_EQ(denied.status, 200) << denied.body;
  const std::string events = EventsUntilFinal(task.id());
  EXPECT_EQ(GetTask(task.id()).state(), agent::v1::TASK_STATE_SUCCEEDED) << events;
  EXPECT_THAT(events, HasSubstr("denied by ops@acme: not now"));
  EXPECT_TRUE(tool_target_.targets().empty());
  // Deciding again: nothing is waiting any more.
  EXPECT_EQ(Call("POST", absl::StrCat("/v1/approvals/", approval->id(), ":approve"), "{}").status,
            404);
}

TEST_F(AgentToolsTest, McpServerToolsFromTheConfigAreCalled) {
  const agent::v1::Task task =
      Submit(R"({"agent":"prober","input":"call:fx_structured hello-mcp"})");
  const std::string events = EventsUntilFinal(task.id());
  EXPECT_EQ(GetTask(task.id()).state(), agent::v1::TASK_STATE_SUCCEEDED) << events;
  // The fixture answers its arguments back as structured content.
  bool answered = false;
  for (absl::string_view line : absl::StrSplit(events, '\n')) {
    answered |= absl::StrContains(line, "dev.flowork.task.tool_calls.completed") &&
                absl::StrContains(line, "received") && absl::StrContains(line, "hello-mcp");
  }
  EXPECT_TRUE(answered) << events;
}

TEST_F(AgentToolsTest, ToolsOfAnAgentMustBeRegistered) {
  ClientResponse bad =
      Call("POST", "/v1/agents", R"({"name":"rogue","model":"chat","tools":["no_such_tool"]})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_THAT(bad.body, HasSubstr("no_such_tool"));
  ClientResponse unlisted =
      Call("POST", "/v1/agents",
           R"({"name":"rogue","model":"chat","tools":["recall"],"approval":{"tools":["stock"]}})");
  EXPECT_EQ(unlisted.status, 400) << unlisted.body;
  EXPECT_THAT(unlisted.body, HasSubstr("approval.tools"));
  ClientResponse good =
      Call("POST", "/v1/agents", R"({"name":"archivist","model":"chat","tools":["recall"]})");
  EXPECT_EQ(good.status, 200) << good.body;
}

}  // namespace
}  // namespace flowork
