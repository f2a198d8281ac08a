#include "flowork/agent/mcp_client.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every wait in these tests is bounded by this.
constexpr absl::Duration kPatience = absl::Seconds(30);

McpServerOptions Fixture(const std::string& mode = "normal") {
  McpServerOptions options;
  options.command = FLOWORK_PYTHON3;
  options.args = {FLOWORK_MCP_ECHO_SERVER, "--mode", mode};
  options.startup_timeout = kPatience;
  options.call_timeout = kPatience;
  return options;
}

std::unique_ptr<McpClient> StartFixture(McpServerOptions options = Fixture()) {
  absl::StatusOr<std::unique_ptr<McpClient>> client = McpClient::Start(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// Receives a callback's one value.
template <typename T>
class Outcome {
 public:
  // The callback; runs once (Notification would die on a second run).
  auto Callback() {
    return [this](T value) {
      {
        absl::MutexLock lock(&mu_);
        value_.emplace(std::move(value));
      }
      done_.Notify();
    };
  }
  T Wait() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(kPatience)) << "no callback";
    absl::MutexLock lock(&mu_);
    return value_.value_or(T(absl::InternalError("no callback")));
  }
  bool Done() const { return done_.HasBeenNotified(); }

 private:
  absl::Notification done_;
  absl::Mutex mu_;
  std::optional<T> value_ ABSL_GUARDED_BY(mu_);
};

using CallOutcome = Outcome<absl::StatusOr<v1::ToolResult>>;

google::protobuf::Value Object(std::initializer_list<std::pair<std::string, std::string>> fields) {
  google::protobuf::Value value;
  auto* out = value.mutable_struct_value()->mutable_fields();
  for (const auto& [key, text] : fields) (*out)[key].set_string_value(text);
  return value;
}

absl::StatusOr<v1::ToolResult> Call(McpClient& client, const std::string& name,
                                    google::protobuf::Value arguments = {},
                                    absl::Duration timeout = kPatience) {
  CallOutcome outcome;
  client.CallTool(name, std::move(arguments), timeout, outcome.Callback());
  return outcome.Wait();
}

// The text output of a successful call, or the status as text.
std::string Text(const absl::StatusOr<v1::ToolResult>& result) {
  if (!result.ok()) return result.status().ToString();
  if (!result->error().empty()) return absl::StrCat("error: ", result->error());
  return result->output().string_value();
}

int Occurrences(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

pid_t ServerPid(McpClient& client) {
  int pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(Text(Call(client, "pid")), &pid));
  return pid;
}

// True when `pid` is neither running nor a zombie of ours.
bool Reaped(pid_t pid) {
  const bool not_our_child = ::waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD;
  const bool gone = ::kill(pid, 0) == -1 && errno == ESRCH;
  return not_our_child && gone;
}

TEST(McpClientTest, HandshakeReportsTheServer) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->server_info().name, "mcp-echo-fixture");
  EXPECT_EQ(client->server_info().version, "1.2.3");
  EXPECT_EQ(client->server_info().protocol_version, "2025-03-26");
  EXPECT_EQ(client->server_info().instructions, "Use echo to echo.");
  // The fixture refuses tools/* before notifications/initialized.
  EXPECT_EQ(Text(Call(*client, "echo", Object({{"text", "hi"}}))), "hi");
}

TEST(McpClientTest, OffersTheConfiguredProtocolRevision) {
  McpServerOptions options = Fixture();
  options.protocol_version = "2024-11-05";
  std::unique_ptr<McpClient> client = StartFixture(options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->server_info().protocol_version, "2024-11-05");
}

TEST(McpClientTest, ListToolsFollowsCursorsAcrossPages) {
  McpServerOptions options = Fixture();
  options.args.insert(options.args.end(), {"--page-size", "5"});
  std::unique_ptr<McpClient> client = StartFixture(options);
  ASSERT_NE(client, nullptr);
  Outcome<absl::StatusOr<std::vector<McpTool>>> outcome;
  client->ListTools(outcome.Callback());
  absl::StatusOr<std::vector<McpTool>> tools = outcome.Wait();
  ASSERT_TRUE(tools.ok()) << tools.status();
  std::vector<std::string> names;
  for (const McpTool& tool : *tools) names.push_back(tool.name);
  // 12 tools in pages of 5: three pages, in order.
  EXPECT_THAT(names, ElementsAre("echo", "multi", "structured", "fail", "hang", "cancellations",
                                 "crash", "ping_client", "garbage", "pid", "env", "cwd"));
  EXPECT_EQ(tools->front().description, "Returns its text argument.");
  EXPECT_THAT(tools->front().input_schema, HasSubstr(R"("required":["text"])"));
}

TEST(McpClientTest, CallToolReturnsTheTextContent) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<v1::ToolResult> result = Call(*client, "echo", Object({{"text", "hello"}}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output().string_value(), "hello");
  EXPECT_EQ(result->error(), "");
}

TEST(McpClientTest, ContentItemsAreJoinedByLines) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(Text(Call(*client, "multi")), "line one\nline two\n[image image/png]");
}

TEST(McpClientTest, StructuredContentBecomesTheOutput) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  google::protobuf::Value arguments = Object({{"name", "x"}});
  auto* fields = arguments.mutable_struct_value()->mutable_fields();
  (*fields)["count"].set_number_value(3);
  (*fields)["ratio"].set_number_value(0.5);
  google::protobuf::ListValue* list = (*fields)["list"].mutable_list_value();
  list->add_values()->set_bool_value(true);
  list->add_values()->set_null_value(google::protobuf::NULL_VALUE);

  absl::StatusOr<v1::ToolResult> result = Call(*client, "structured", arguments);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->output().has_struct_value()) << result->output().DebugString();
  const auto& out = result->output().struct_value().fields();
  // What the server parsed: whole numbers arrive as integers.
  EXPECT_EQ(out.at("json").string_value(),
            R"({"count": 3, "list": [true, null], "name": "x", "ratio": 0.5})");
  const auto& received = out.at("received").struct_value().fields();
  EXPECT_EQ(received.at("count").number_value(), 3);
  EXPECT_EQ(received.at("name").string_value(), "x");
  EXPECT_EQ(received.at("list").list_value().values(1).kind_case(),
            google::protobuf::Value::kNullValue);
}

TEST(McpClientTest, ToolErrorIsAResultWithError) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<v1::ToolResult> result = Call(*client, "fail");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), "disk full");
  EXPECT_FALSE(result->has_output());
}

TEST(McpClientTest, UnknownToolIsInvalidArgument) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<v1::ToolResult> result = Call(*client, "no_such_tool");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("Unknown tool: no_such_tool"));
  EXPECT_THAT(result.status().message(), HasSubstr("tools/call \"no_such_tool\""));
}

TEST(McpClientTest, ArgumentsMustBeAnObjectAndTimeoutPositive) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  google::protobuf::Value text;
  text.set_string_value("not an object");
  EXPECT_EQ(Call(*client, "echo", text).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Call(*client, "echo", Object({{"text", "x"}}), absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Text(Call(*client, "echo", Object({{"text", "still fine"}}))), "still fine");
}

TEST(McpClientTest, SlowToolTimesOutAndTheServerIsToldToCancel) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::ToolResult> result = Call(*client, "hang", {}, absl::Milliseconds(200));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(),
              HasSubstr("tools/call \"hang\" got no answer within 200ms"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  // The notification went out before the next request.
  EXPECT_THAT(Text(Call(*client, "cancellations")), HasSubstr("\"timed out\""));
  EXPECT_EQ(Text(Call(*client, "echo", Object({{"text", "alive"}}))), "alive");
}

TEST(McpClientTest, CancelCompletesWithCancelledAndTellsTheServer) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  CallOutcome outcome;
  std::shared_ptr<McpToolCall> call = client->CallTool("hang", {}, outcome.Callback());
  call->Cancel();
  call->Cancel();  // Once is enough; the callback still runs once.
  absl::StatusOr<v1::ToolResult> result = outcome.Wait();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(Text(Call(*client, "cancellations")), HasSubstr("\"cancelled by the client\""));

  // Cancelling a finished call changes nothing.
  CallOutcome finished;
  std::shared_ptr<McpToolCall> echo =
      client->CallTool("echo", Object({{"text", "done"}}), finished.Callback());
  EXPECT_EQ(Text(finished.Wait()), "done");
  echo->Cancel();
  const std::string cancellations = Text(Call(*client, "cancellations"));
  EXPECT_EQ(Occurrences(cancellations, "cancelled by the client"), 1) << cancellations;
}

TEST(McpClientTest, ServerCrashFailsPendingCallsWithItsStderr) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  CallOutcome hanging;
  client->CallTool("hang", {}, hanging.Callback());
  absl::StatusOr<v1::ToolResult> crashed = Call(*client, "crash");
  for (const absl::Status& status : {crashed.status(), hanging.Wait().status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(status.message(), HasSubstr("exited with status 3"));
    EXPECT_THAT(status.message(), HasSubstr("fixture: fatal error in tool crash"));
  }
  // Later calls fail at once, the same way.
  absl::StatusOr<v1::ToolResult> later = Call(*client, "echo", Object({{"text", "x"}}));
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(later.status().message(), HasSubstr("fatal error in tool crash"));
  Outcome<absl::StatusOr<std::vector<McpTool>>> tools;
  client->ListTools(tools.Callback());
  EXPECT_EQ(tools.Wait().status().code(), absl::StatusCode::kUnavailable);
}

TEST(McpClientTest, AnswersTheServersPingAndRefusesWhatItDoesNotOffer) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(Text(Call(*client, "ping_client")), "ping ok; sampling -32601");
}

TEST(McpClientTest, MalformedLinesAndStrayMessagesAreSkipped) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(Text(Call(*client, "garbage")), "after garbage");
  EXPECT_EQ(Text(Call(*client, "echo", Object({{"text", "next"}}))), "next");
}

TEST(McpClientTest, EnvironmentAndWorkingDirectoryReachTheServer) {
  McpServerOptions options = Fixture();
  ::setenv("FLOWORK_MCP_TEST_INHERITED", "inherited", 1);
  ::setenv("FLOWORK_MCP_TEST_OVERRIDDEN", "parent", 1);
  options.env["FLOWORK_MCP_TEST_VALUE"] = "forty two";
  options.env["FLOWORK_MCP_TEST_OVERRIDDEN"] = "options";
  char dir_template[] = "/tmp/mcp_client_test_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  options.working_dir = dir_template;
  std::unique_ptr<McpClient> client = StartFixture(options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(Text(Call(*client, "env", Object({{"name", "FLOWORK_MCP_TEST_VALUE"}}))), "forty two");
  EXPECT_EQ(Text(Call(*client, "env", Object({{"name", "FLOWORK_MCP_TEST_INHERITED"}}))),
            "inherited");
  EXPECT_EQ(Text(Call(*client, "env", Object({{"name", "FLOWORK_MCP_TEST_OVERRIDDEN"}}))),
            "options");
  EXPECT_EQ(Text(Call(*client, "cwd")), dir_template);
  client.reset();
  ::rmdir(dir_template);
}

TEST(McpClientTest, ConcurrentCallsFromManyThreadsEachGetTheirAnswer) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string text = absl::StrCat("t", t, "-", i);
        if (Text(Call(*client, "echo", Object({{"text", text}}))) != text) wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(McpClientTest, DestructionReapsTheServer) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  const pid_t pid = ServerPid(*client);
  ASSERT_GT(pid, 0);
  client.reset();
  EXPECT_TRUE(Reaped(pid));
}

TEST(McpClientTest, DestructionKillsAServerThatIgnoresStdinEofAndSigterm) {
  McpServerOptions options = Fixture("stubborn");
  options.shutdown_grace = absl::Milliseconds(100);
  std::unique_ptr<McpClient> client = StartFixture(options);
  ASSERT_NE(client, nullptr);
  const pid_t pid = ServerPid(*client);
  ASSERT_GT(pid, 0);
  const absl::Time start = absl::Now();
  client.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(Reaped(pid));
}

TEST(McpClientTest, DestructionCancelsCallsInFlight) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  CallOutcome hanging;
  std::shared_ptr<McpToolCall> call = client->CallTool("hang", {}, hanging.Callback());
  client.reset();
  EXPECT_EQ(hanging.Wait().status().code(), absl::StatusCode::kCancelled);
  call->Cancel();  // The handle outlives the client harmlessly.
}

TEST(McpClientTest, ACallbackMayDestroyTheClient) {
  std::unique_ptr<McpClient> client = StartFixture();
  ASSERT_NE(client, nullptr);
  const pid_t pid = ServerPid(*client);
  absl::Notification destroyed;
  McpClient* raw = client.release();
  raw->CallTool("echo", Object({{"text", "bye"}}),
                [raw, &destroyed](absl::StatusOr<v1::ToolResult> result) {
                  delete raw;
                  destroyed.Notify();
                });
  ASSERT_TRUE(destroyed.WaitForNotificationWithTimeout(kPatience));
  EXPECT_TRUE(Reaped(pid));
}

TEST(McpClientTest, MissingBinaryIsNotFound) {
  McpServerOptions options = Fixture();
  options.command = "/nonexistent/bin/mcp-server";
  absl::StatusOr<std::unique_ptr<McpClient>> client = McpClient::Start(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(client.status().message(), HasSubstr("\"/nonexistent/bin/mcp-server\""));
  EXPECT_THAT(client.status().message(), HasSubstr("No such file or directory"));

  options.command = "flowork-no-such-mcp-server";  // Searched on PATH.
  EXPECT_EQ(McpClient::Start(options).status().code(), absl::StatusCode::kNotFound);

  options = Fixture();
  options.working_dir = "/nonexistent/dir";
  EXPECT_EQ(McpClient::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(McpClientTest, ServerExitingAtStartupIsUnavailableWithItsStderr) {
  absl::StatusOr<std::unique_ptr<McpClient>> client = McpClient::Start(Fixture("exit-at-start"));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(client.status().message(), HasSubstr("exited with status 2"));
  EXPECT_THAT(client.status().message(),
              HasSubstr("fixture: missing configuration file /etc/fixture.conf"));
}

TEST(McpClientTest, ServerSilentAtStartupIsUnavailable) {
  McpServerOptions options = Fixture("no-answer");
  options.startup_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<McpClient>> client = McpClient::Start(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(client.status().message(), HasSubstr("did not answer initialize within 300ms"));
}

TEST(McpClientTest, UnknownProtocolRevisionIsRefused) {
  absl::StatusOr<std::unique_ptr<McpClient>> client = McpClient::Start(Fixture("bad-version"));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(client.status().message(), HasSubstr("\"1999-01-01\""));
}

TEST(McpClientTest, BadOptionsAreInvalidArgument) {
  McpServerOptions options = Fixture();
  options.command.clear();
  EXPECT_EQ(McpClient::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = Fixture();
  options.protocol_version = "2023-01-01";
  EXPECT_EQ(McpClient::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowork::agent
