#include "flowork/agent/tool_registry.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "flowork/agent/json_schema.h"
#include "flowork/core/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(10);
constexpr char kAgent[] = "weather-bot";

google::protobuf::Value Json(const std::string& text) {
  absl::StatusOr<google::protobuf::Value> value = ParseJsonValue(text);
  EXPECT_TRUE(value.ok()) << value.status() << " in " << text;
  return value.ok() ? *value : google::protobuf::Value();
}

// The runtime's side of one effect: cancellable by the test.
class TestCall final : public EffectCall {
 public:
  TestCall() { task_.set_agent(kAgent); }
  const v1::Task& task() const override { return task_; }
  absl::Time deadline() const override { return absl::Now() + absl::Minutes(1); }
  bool cancelled() const override {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  void OnCancel(absl::AnyInvocable<void() &&> on_cancel) override {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        on_cancel_.push_back(std::move(on_cancel));
        return;
      }
    }
    std::move(on_cancel)();
  }
  void Heartbeat() override { heartbeats_.fetch_add(1); }

  void Cancel() {
    std::vector<absl::AnyInvocable<void() &&>> callbacks;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      callbacks.swap(on_cancel_);
    }
    for (auto& callback : callbacks) std::move(callback)();
  }
  int heartbeats() const { return heartbeats_.load(); }

 private:
  v1::Task task_;
  mutable absl::Mutex mu_;
  bool cancelled_ = false;
  std::vector<absl::AnyInvocable<void() &&>> on_cancel_;
  std::atomic<int> heartbeats_{0};
};

// What Perform answered, once it did.
class Outcome {
 public:
  void Set(absl::StatusOr<v1::EffectResult> result) {
    absl::MutexLock lock(&mu_);
    ++answers_;
    result_ = std::move(result);
  }
  // Waits for the answer.
  absl::StatusOr<v1::EffectResult> Get() {
    absl::MutexLock lock(&mu_);
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(
                                         +[](int* n) { return *n > 0; }, &answers_),
                                     kWait))
        << "no answer";
    return result_;
  }
  int answers() {
    absl::MutexLock lock(&mu_);
    return answers_;
  }

 private:
  absl::Mutex mu_;
  int answers_ = 0;
  absl::StatusOr<v1::EffectResult> result_ = absl::UnknownError("no answer");
};

struct Call {
  std::string id;
  std::string name;
  std::string arguments_json;
};

v1::Effect ToolsEffect(const std::vector<Call>& calls) {
  v1::Effect effect;
  v1::ToolCalls* tools = effect.mutable_tools();
  for (const Call& c : calls) {
    v1::ToolCall* call = tools->add_calls();
    call->set_id(c.id);
    call->set_name(c.name);
    *call->mutable_arguments() = Json(c.arguments_json);
  }
  return effect;
}

std::shared_ptr<Outcome> Perform(ToolRegistry& registry, const std::vector<Call>& calls,
                                 std::shared_ptr<TestCall> call = std::make_shared<TestCall>()) {
  auto outcome = std::make_shared<Outcome>();
  registry.Perform(ToolsEffect(calls), call,
                   [outcome](absl::StatusOr<v1::EffectResult> r) { outcome->Set(std::move(r)); });
  return outcome;
}

// The one result of a single-call effect.
v1::ToolResult Only(const std::shared_ptr<Outcome>& outcome) {
  absl::StatusOr<v1::EffectResult> result = outcome->Get();
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok() || result->tools().results_size() != 1) return v1::ToolResult();
  return result->tools().results(0);
}

constexpr char kCitySchema[] = R"({
  "type": "object",
  "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
  "required": ["city"],
  "additionalProperties": false
})";

std::unique_ptr<ToolRegistry> NewRegistry(ToolRegistryOptions options = {}) {
  absl::StatusOr<std::unique_ptr<ToolRegistry>> registry = ToolRegistry::Create(options);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return registry.ok() ? *std::move(registry) : nullptr;
}

// Answers `{"city": <city>}` and counts its calls.
struct CityTool {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  NativeTool Function() const {
    return [calls = calls](const google::protobuf::Value& arguments, ToolContext&) -> ToolOutput {
      calls->fetch_add(1);
      google::protobuf::Value out;
      (*out.mutable_struct_value()->mutable_fields())["city"] =
          arguments.struct_value().fields().at("city");
      return out;
    };
  }
};

TEST(ToolRegistryTest, RunsCallsInParallelAndAnswersInCallOrder) {
  auto registry = NewRegistry();
  // Each call waits until both have started: they finish only when run at once.
  auto mu = std::make_shared<absl::Mutex>();
  auto started = std::make_shared<int>(0);
  ASSERT_TRUE(
      registry
          ->RegisterNative(
              {.name = "rendezvous"},
              [mu, started](const google::protobuf::Value& arguments, ToolContext&) -> ToolOutput {
                absl::MutexLock lock(mu.get());
                ++*started;
                if (!mu->AwaitWithTimeout(absl::Condition(
                                              +[](int* n) { return *n >= 2; }, started.get()),
                                          kWait)) {
                  return absl::DeadlineExceededError("ran alone");
                }
                return arguments;
              })
          .ok());
  CityTool city;
  ASSERT_TRUE(registry->RegisterNative({.name = "city"}, city.Function()).ok());
  registry->SetAgentTools(kAgent, {"rendezvous", "city"});

  auto call = std::make_shared<TestCall>();
  auto outcome = Perform(*registry,
                         {{"a", "rendezvous", R"({"n": 1})"},
                          {"b", "city", R"({"city": "Lima"})"},
                          {"c", "rendezvous", R"({"n": 2})"}},
                         call);
  absl::StatusOr<v1::EffectResult> result = outcome->Get();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->tools().results_size(), 3);
  std::vector<std::string> ids;
  for (const v1::ToolResult& r : result->tools().results()) {
    ids.push_back(r.id());
    EXPECT_EQ(r.error(), "") << r.id();
  }
  EXPECT_THAT(ids, ElementsAre("a", "b", "c"));
  EXPECT_EQ(result->tools().results(0).output().struct_value().fields().at("n").number_value(), 1);
  EXPECT_EQ(result->tools().results(1).output().struct_value().fields().at("city").string_value(),
            "Lima");
  EXPECT_EQ(result->tools().results(2).output().struct_value().fields().at("n").number_value(), 2);
  EXPECT_GE(call->heartbeats(), 3);
  EXPECT_EQ(outcome->answers(), 1);
}

TEST(ToolRegistryTest, NoCallsAnswersAnEmptyResult) {
  auto registry = NewRegistry();
  absl::StatusOr<v1::EffectResult> result = Perform(*registry, {})->Get();
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->has_tools());
  EXPECT_EQ(result->tools().results_size(), 0);
}

TEST(ToolRegistryTest, UnknownToolIsAnErrorResultNotAFailedEffect) {
  auto registry = NewRegistry();
  CityTool city;
  ASSERT_TRUE(registry->RegisterNative({.name = "city"}, city.Function()).ok());
  registry->SetAgentTools(kAgent, {"city", "ghost"});
  absl::StatusOr<v1::EffectResult> result =
      Perform(*registry, {{"1", "ghost", "{}"}, {"2", "city", R"({"city": "Oslo"})"}})->Get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tools().results(0).error(), "unknown tool ghost");
  EXPECT_EQ(result->tools().results(1).error(), "");
}

TEST(ToolRegistryTest, ToolNotListedForTheAgentIsRefused) {
  auto registry = NewRegistry();
  CityTool city;
  ASSERT_TRUE(registry->RegisterNative({.name = "city"}, city.Function()).ok());
  ASSERT_TRUE(registry->RegisterNative({.name = "delete_everything"}, city.Function()).ok());
  registry->SetAgentTools(kAgent, {"city"});
  v1::ToolResult result = Only(Perform(*registry, {{"1", "delete_everything", "{}"}}));
  EXPECT_EQ(result.error(), "tool delete_everything is not allowed for agent weather-bot");
  EXPECT_EQ(city.calls->load(), 0);
  // An agent with no list at all may use nothing.
  registry->SetAgentTools(kAgent, {});
  EXPECT_EQ(Only(Perform(*registry, {{"1", "city", R"({"city": "Oslo"})"}})).error(),
            "tool city is not allowed for agent weather-bot");
}

TEST(ToolRegistryTest, AgentToolsComeFromTheLookup) {
  std::atomic<bool> store_down{false};
  ToolRegistryOptions options;
  options.agent_tools =
      [&store_down](std::string_view agent) -> absl::StatusOr<std::vector<std::string>> {
    if (store_down) return absl::UnavailableError("agent store down");
    if (agent == kAgent) return std::vector<std::string>{"city"};
    return absl::NotFoundError("no agent");
  };
  auto registry = NewRegistry(options);
  CityTool city;
  ASSERT_TRUE(registry->RegisterNative({.name = "city"}, city.Function()).ok());
  EXPECT_EQ(Only(Perform(*registry, {{"1", "city", R"({"city": "Oslo"})"}})).error(), "");

  // Infrastructure trouble fails the effect (retried by the runtime).
  store_down = true;
  absl::StatusOr<v1::EffectResult> failed =
      Perform(*registry, {{"1", "city", R"({"city": "Oslo"})"}})->Get();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.status().message(), HasSubstr("agent store down"));
}

TEST(ToolRegistryTest, ArgumentsAreValidatedAgainstTheSchemaBeforeTheCall) {
  auto registry = NewRegistry();
  CityTool city;
  ASSERT_TRUE(
      registry
          ->RegisterNative({.name = "city", .parameters_json_schema = kCitySchema}, city.Function())
          .ok());
  registry->SetAgentTools(kAgent, {"city"});
  EXPECT_EQ(Only(Perform(*registry, {{"1", "city", R"({"city": 3})"}})).error(),
            "invalid arguments: arguments.city: expected string, got integer");
  EXPECT_EQ(Only(Perform(*registry, {{"1", "city", R"({"days": 0})"}})).error(),
            "invalid arguments: arguments.city: missing required property; "
            "arguments.days: must be >= 1, got 0");
  EXPECT_THAT(Only(Perform(*registry, {{"1", "city", R"({"city": "Oslo", "x": 1})"}})).error(),
              HasSubstr("arguments.x: unknown property"));
  EXPECT_EQ(city.calls->load(), 0);
  // OpenAI sends arguments as a JSON string: it is parsed.
  v1::ToolResult ok = Only(Perform(*registry, {{"1", "city", R"("{\"city\": \"Oslo\"}")"}}));
  EXPECT_EQ(ok.error(), "");
  EXPECT_EQ(ok.output().struct_value().fields().at("city").string_value(), "Oslo");
}

TEST(ToolRegistryTest, SchemaMayBeAStruct) {
  auto registry = NewRegistry();
  ToolDefinition definition{.name = "city"};
  definition.parameters = Json(kCitySchema).struct_value();
  CityTool city;
  ASSERT_TRUE(registry->RegisterNative(definition, city.Function()).ok());
  registry->SetAgentTools(kAgent, {"city"});
  EXPECT_THAT(Only(Perform(*registry, {{"1", "city", "{}"}})).error(),
              HasSubstr("arguments.city: missing required property"));
}

TEST(ToolRegistryTest, BadDefinitionsAreRefused) {
  auto registry = NewRegistry();
  CityTool city;
  EXPECT_EQ(registry->RegisterNative({.name = "no spaces"}, city.Function()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry->RegisterNative({.name = std::string(65, 'a')}, city.Function()).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status bad_schema = registry->RegisterNative(
      {.name = "x", .parameters_json_schema = R"({"properties": {"a": {"type": "strng"}}})"},
      city.Function());
  EXPECT_EQ(bad_schema.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_schema.message(), HasSubstr(R"(schema.properties.a.type: unknown type "strng")"));
  ASSERT_TRUE(registry->RegisterNative({.name = "Get_City-2"}, city.Function()).ok());
  EXPECT_EQ(registry->RegisterNative({.name = "Get_City-2"}, city.Function()).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(ToolRegistryTest, NativeToolErrorIsAnErrorResult) {
  auto registry = NewRegistry();
  ASSERT_TRUE(registry
                  ->RegisterNative({.name = "city"},
                                   [](const google::protobuf::Value&, ToolContext&) -> ToolOutput {
                                     return absl::NotFoundError("no such city: Atlantis");
                                   })
                  .ok());
  ASSERT_TRUE(registry
                  ->RegisterNativeAsync({.name = "async_city"},
                                        [](const google::protobuf::Value&,
                                           std::shared_ptr<ToolContext>, ToolDone done) {
                                          std::move(done)(absl::UnavailableError("backend down"));
                                        })
                  .ok());
  registry->SetAgentTools(kAgent, {"city", "async_city"});
  absl::StatusOr<v1::EffectResult> result =
      Perform(*registry, {{"1", "city", "{}"}, {"2", "async_city", "{}"}})->Get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tools().results(0).error(), "no such city: Atlantis");
  EXPECT_EQ(result->tools().results(1).error(), "backend down");
}

TEST(ToolRegistryTest, SyncToolSeesItsContext) {
  auto registry = NewRegistry();
  ASSERT_TRUE(
      registry
          ->RegisterNative({.name = "whoami"},
                           [](const google::protobuf::Value&, ToolContext& context) -> ToolOutput {
                             google::protobuf::Value out;
                             out.set_string_value(
                                 absl::StrCat(context.task().agent(), "/", context.call_id()));
                             return out;
                           })
          .ok());
  registry->SetAgentTools(kAgent, {"whoami"});
  EXPECT_EQ(Only(Perform(*registry, {{"call-7", "whoami", "{}"}})).output().string_value(),
            "weather-bot/call-7");
}

TEST(ToolRegistryTest, CancellationAbortsASlowAsyncTool) {
  auto registry = NewRegistry();
  auto aborted = std::make_shared<absl::Notification>();
  ASSERT_TRUE(
      registry
          ->RegisterNativeAsync({.name = "slow"},
                                [aborted](const google::protobuf::Value&,
                                          std::shared_ptr<ToolContext> context, ToolDone done) {
                                  // Never answers by itself; gives up when cancelled.
                                  auto shared = std::make_shared<ToolDone>(std::move(done));
                                  context->OnCancel([aborted, shared] {
                                    aborted->Notify();
                                    std::move (*shared)(absl::CancelledError("stopped"));
                                  });
                                })
          .ok());
  registry->SetAgentTools(kAgent, {"slow"});
  auto call = std::make_shared<TestCall>();
  auto outcome = Perform(*registry, {{"1", "slow", "{}"}}, call);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(outcome->answers(), 0);
  call->Cancel();
  EXPECT_EQ(outcome->Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(aborted->WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(outcome->answers(), 1);
}

TEST(ToolRegistryTest, CancelledBeforeTheSyncToolRanSkipsIt) {
  ToolRegistryOptions options;
  options.threads = 1;
  auto registry = NewRegistry(options);
  absl::Notification release;
  std::atomic<int> runs{0};
  ASSERT_TRUE(registry
                  ->RegisterNative({.name = "block"},
                                   [&](const google::protobuf::Value& arguments,
                                       ToolContext& context) -> ToolOutput {
                                     runs.fetch_add(1);
                                     // Blocks the only thread until released.
                                     release.WaitForNotificationWithTimeout(kWait);
                                     if (context.cancelled()) {
                                       return absl::CancelledError("noticed");
                                     }
                                     return arguments;
                                   })
                  .ok());
  registry->SetAgentTools(kAgent, {"block"});
  auto call = std::make_shared<TestCall>();
  auto outcome = Perform(*registry, {{"1", "block", "{}"}, {"2", "block", "{}"}}, call);
  for (int i = 0; i < 1000 && runs.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(runs.load(), 1);
  call->Cancel();
  EXPECT_EQ(outcome->Get().status().code(), absl::StatusCode::kCancelled);
  release.Notify();
  registry.reset();  // Drains the pool.
  EXPECT_EQ(runs.load(), 1);
}

// A local HTTP service: /weather/... answers JSON and records the request,
// /echo answers 401 with the Authorization header in the body, /hang never
// answers (and counts the clients that gave up).
class WeatherService final : public core::HttpHandler {
 public:
  void Handle(core::HttpRequest request,
              std::unique_ptr<core::HttpResponseWriter> writer) override {
    absl::MutexLock lock(&mu_);
    ++requests_;
    target_ = request.target;
    body_ = request.body;
    const std::string* auth = request.FindHeader("authorization");
    authorization_ = auth ? *auth : "";
    const std::string* type = request.FindHeader("content-type");
    content_type_ = type ? *type : "";
    const std::string path(request.path());
    if (path == "/hang") {
      writer->OnCancel([this] {
        absl::MutexLock lock(&mu_);
        ++abandoned_;
      });
      parked_.push_back(std::move(writer));
      return;
    }
    if (path == "/echo") {
      writer->Send({.status = 401, .body = absl::StrCat("bad token: ", authorization_)});
      return;
    }
    if (path == "/text") {
      // The secret straddles the 1000-byte limit.
      writer->Send({.status = 200, .body = std::string(990, 'x') + authorization_});
      return;
    }
    writer->Send({.status = 200,
                  .headers = {{"Content-Type", "application/json"}},
                  .body = R"({"temp": 21, "sky": "clear"})"});
  }

  int requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::string target() {
    absl::MutexLock lock(&mu_);
    return target_;
  }
  std::string body() {
    absl::MutexLock lock(&mu_);
    return body_;
  }
  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }
  std::string content_type() {
    absl::MutexLock lock(&mu_);
    return content_type_;
  }
  bool WaitForAbandoned() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](int* n) { return *n > 0; }, &abandoned_),
                                kWait);
  }

 private:
  absl::Mutex mu_;
  int requests_ = 0;
  int abandoned_ = 0;
  std::string target_, body_, authorization_, content_type_;
  std::vector<std::unique_ptr<core::HttpResponseWriter>> parked_;
};

class HttpToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("FLOWORK_TOOL_TEST_TOKEN", "s3cret-token", 1);
    auto server = core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, service_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ToolRegistryOptions options;
    options.max_http_response_bytes = 1000;
    registry_ = NewRegistry(options);
  }
  void TearDown() override {
    registry_.reset();
    server_->Shutdown(absl::ZeroDuration());
  }

  // A tool on the local service, allowed to reach loopback.
  v1::HttpTool LocalTool(const std::string& name, const std::string& path_template) {
    v1::HttpTool tool;
    tool.set_name(name);
    tool.set_description("Weather for a city.");
    tool.set_url_template(absl::StrCat("http://127.0.0.1:", server_->port(), path_template));
    tool.add_allowed_hosts("127.0.0.1");
    tool.set_allow_private_addresses(true);
    (*tool.mutable_headers())["Authorization"] = "Bearer ${env:FLOWORK_TOOL_TEST_TOKEN}";
    return tool;
  }

  v1::ToolResult CallTool(const v1::HttpTool& tool, const std::string& arguments) {
    absl::Status registered = registry_->RegisterHttp(tool);
    EXPECT_TRUE(registered.ok()) << registered;
    registry_->SetAgentTools(kAgent, {tool.name()});
    return Only(Perform(*registry_, {{"1", tool.name(), arguments}}));
  }

  WeatherService service_;
  std::unique_ptr<core::HttpServer> server_;
  std::unique_ptr<ToolRegistry> registry_;
};

TEST_F(HttpToolTest, FillsTheUrlTemplateAndSendsResolvedSecrets) {
  v1::HttpTool tool = LocalTool("weather", "/weather/{city}?units={units}&days={days}");
  tool.set_parameters_json_schema(R"({"type": "object", "required": ["city"],
      "properties": {"city": {"type": "string"}, "units": {"type": "string"},
                     "days": {"type": "integer"}}})");
  v1::ToolResult result =
      CallTool(tool, R"({"city": "São Paulo/Centro", "units": "a&b=c", "days": 3})");
  ASSERT_EQ(result.error(), "");
  EXPECT_EQ(service_.target(), "/weather/S%C3%A3o%20Paulo%2FCentro?units=a%26b%3Dc&days=3");
  EXPECT_EQ(service_.authorization(), "Bearer s3cret-token");
  const auto& output = result.output().struct_value().fields();
  EXPECT_EQ(output.at("status").number_value(), 200);
  EXPECT_EQ(output.at("body").struct_value().fields().at("temp").number_value(), 21);
  EXPECT_EQ(output.at("body").struct_value().fields().at("sky").string_value(), "clear");
}

TEST_F(HttpToolTest, SendsTheBodyTemplate) {
  v1::HttpTool tool = LocalTool("search", "/search");
  tool.set_method("POST");
  tool.set_body_template(R"({"query": "{q}", "limit": "{n}", "note": "q={q}"})");
  ASSERT_EQ(CallTool(tool, R"({"q": "rain", "n": 3})").error(), "");
  EXPECT_EQ(Json(service_.body()).DebugString(),
            Json(R"({"query": "rain", "limit": 3, "note": "q=rain"})").DebugString());
  EXPECT_EQ(service_.content_type(), "application/json");
}

TEST_F(HttpToolTest, ErrorStatusIsAnErrorResultWithoutTheSecret) {
  v1::ToolResult result = CallTool(LocalTool("echo", "/echo"), "{}");
  EXPECT_THAT(result.error(), HasSubstr("HTTP 401"));
  EXPECT_THAT(result.error(), HasSubstr("[redacted]"));
  EXPECT_THAT(result.error(), Not(HasSubstr("s3cret-token")));
  EXPECT_EQ(service_.authorization(), "Bearer s3cret-token");  // It was sent.
}

TEST_F(HttpToolTest, MissingSecretNamesTheReferenceNotAValue) {
  v1::HttpTool tool = LocalTool("weather", "/weather");
  (*tool.mutable_headers())["X-Key"] = "${env:FLOWORK_TOOL_TEST_UNSET}";
  unsetenv("FLOWORK_TOOL_TEST_UNSET");
  v1::ToolResult result = CallTool(tool, "{}");
  EXPECT_EQ(result.error(), "headers.X-Key: secret ${env:FLOWORK_TOOL_TEST_UNSET} is not set");
  EXPECT_EQ(service_.requests(), 0);
}

TEST_F(HttpToolTest, LargeResponsesAreCutOff) {
  v1::ToolResult result = CallTool(LocalTool("text", "/text"), "{}");
  ASSERT_EQ(result.error(), "");
  const auto& output = result.output().struct_value().fields();
  // "Bearer s3cret-token" is cut after "s3c": that part of the secret goes too.
  EXPECT_EQ(output.at("body").string_value(), std::string(990, 'x') + "Bearer ");
  EXPECT_TRUE(output.at("truncated").bool_value());
}

TEST_F(HttpToolTest, CancellationAbortsTheRequest) {
  ASSERT_TRUE(registry_->RegisterHttp(LocalTool("hang", "/hang")).ok());
  registry_->SetAgentTools(kAgent, {"hang"});
  auto call = std::make_shared<TestCall>();
  auto outcome = Perform(*registry_, {{"1", "hang", "{}"}}, call);
  for (int i = 0; i < 1000 && service_.requests() == 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(service_.requests(), 1);
  call->Cancel();
  EXPECT_EQ(outcome->Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(service_.WaitForAbandoned());  // The connection was closed.
}

TEST_F(HttpToolTest, HostNotInAllowedHostsIsRefused) {
  v1::HttpTool tool = LocalTool("weather", "/weather");
  tool.set_url_template("https://evil.example.net/steal");
  tool.clear_allowed_hosts();
  tool.add_allowed_hosts("*.example.com");
  absl::Status status = registry_->RegisterHttp(tool);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(R"(host "evil.example.net" is not in allowed_hosts)"));
  // The wildcard matches subdomains only.
  tool.set_url_template("https://example.com/x");
  EXPECT_EQ(registry_->RegisterHttp(tool).code(), absl::StatusCode::kInvalidArgument);
  tool.set_url_template("https://api.eu.example.com/x");
  EXPECT_TRUE(registry_->RegisterHttp(tool).ok());
  // No placeholders in the host, no other schemes.
  tool.set_name("other");
  tool.set_url_template("https://{sub}.example.com/x");
  EXPECT_EQ(registry_->RegisterHttp(tool).code(), absl::StatusCode::kInvalidArgument);
  tool.set_url_template("file:///etc/passwd");
  EXPECT_EQ(registry_->RegisterHttp(tool).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(HttpToolTest, AllowedHostResolvingToLoopbackIsRefused) {
  v1::HttpTool tool = LocalTool("weather", "/weather");
  tool.set_url_template(absl::StrCat("http://localhost:", server_->port(), "/weather"));
  tool.clear_allowed_hosts();
  tool.add_allowed_hosts("localhost");
  tool.set_allow_private_addresses(false);
  v1::ToolResult result = CallTool(tool, "{}");
  EXPECT_THAT(result.error(), HasSubstr("loopback"));
  EXPECT_THAT(result.error(), HasSubstr(R"(host "localhost" resolves to)"));
  EXPECT_EQ(service_.requests(), 0);
}

TEST_F(HttpToolTest, CloudMetadataAddressIsRefused) {
  v1::HttpTool tool;
  tool.set_name("metadata");
  tool.set_url_template("http://169.254.169.254/latest/meta-data/");
  tool.add_allowed_hosts("169.254.169.254");
  v1::ToolResult result = CallTool(tool, "{}");
  EXPECT_THAT(result.error(), HasSubstr("169.254.169.254, a link-local"));
}

TEST_F(HttpToolTest, PrivateAndMappedAddressesAreRefused) {
  for (const std::string host : {"10.1.2.3", "192.168.0.1", "172.20.0.1", "100.64.1.1", "0.0.0.0",
                                 "[::1]", "[fd00::1]", "[::ffff:127.0.0.1]"}) {
    v1::HttpTool tool;
    tool.set_name("private");
    tool.set_url_template(absl::StrCat("http://", host, "/x"));
    std::string bare = host;
    if (bare.front() == '[') bare = bare.substr(1, bare.size() - 2);
    tool.add_allowed_hosts(bare);
    auto registry = NewRegistry();
    ASSERT_TRUE(registry->RegisterHttp(tool).ok());
    registry->SetAgentTools(kAgent, {"private"});
    EXPECT_THAT(Only(Perform(*registry, {{"1", "private", "{}"}})).error(),
                HasSubstr("this tool may reach public addresses only"))
        << host;
  }
  EXPECT_EQ(service_.requests(), 0);
}

TEST(ToolRegistryTest, ListsAnAgentsToolsInOpenAiFormat) {
  auto registry = NewRegistry();
  CityTool city;
  ASSERT_TRUE(registry
                  ->RegisterNative({.name = "get_weather",
                                    .description = "Weather for a city.",
                                    .parameters_json_schema = kCitySchema},
                                   city.Function())
                  .ok());
  ASSERT_TRUE(
      registry->RegisterNative({.name = "now", .description = "The time."}, city.Function()).ok());
  ASSERT_TRUE(registry->RegisterNative({.name = "hidden"}, city.Function()).ok());
  registry->SetAgentTools(kAgent, {"now", "get_weather"});

  absl::StatusOr<std::string> json = registry->OpenAiToolsJson(kAgent);
  ASSERT_TRUE(json.ok()) << json.status();
  google::protobuf::Value tools = Json(*json);
  ASSERT_EQ(tools.list_value().values_size(), 2) << *json;
  const auto& first = tools.list_value().values(0).struct_value().fields();
  EXPECT_EQ(first.at("type").string_value(), "function");
  const auto& now = first.at("function").struct_value().fields();
  EXPECT_EQ(now.at("name").string_value(), "now");
  EXPECT_EQ(now.at("description").string_value(), "The time.");
  EXPECT_EQ(now.at("parameters").struct_value().fields().at("type").string_value(), "object");
  const auto& weather =
      tools.list_value().values(1).struct_value().fields().at("function").struct_value().fields();
  EXPECT_EQ(weather.at("name").string_value(), "get_weather");
  EXPECT_EQ(weather.at("parameters").DebugString(), Json(kCitySchema).DebugString());

  EXPECT_EQ(registry->OpenAiToolsJson("nobody").value_or("?"), "[]");
  EXPECT_EQ(registry->OpenAiToolsJsonOf({"get_weather", "missing"}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace flowork::agent
