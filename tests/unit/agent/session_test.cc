// Sessions, pinned memory blocks and retrieved memory: the stores, and the
// LLM agent through the runtime against a fake model that records every
// request it receives.
#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/context_assembler.h"
#include "flowork/agent/in_memory_memory_store.h"
#include "flowork/agent/in_memory_task_store.h"
#include "flowork/agent/llm_agent.h"
#include "flowork/agent/pinned_memory_store.h"
#include "flowork/agent/session_store.h"
#include "flowork/agent/sqlite_session_store.h"
#include "flowork/agent/token_counter.h"
#include "flowork/agent/tool_registry.h"
#include "flowork/agent/tool_sources.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::ChatMessage Message(const std::string& role, const std::string& content) {
  v1::ChatMessage m;
  m.set_role(role);
  m.set_content(content);
  return m;
}

// ---------------------------------------------------------------- stores

enum class Backend { kInMemory, kSqlite };

class SessionStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kInMemory) {
      store_ = CreateInMemorySessionStore();
    } else {
      auto store = CreateSqliteSessionStore({.path = ":memory:"});
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = *std::move(store);
    }
  }
  v1::Session NewSession(const std::string& tenant = "t", const std::string& agent = "a") {
    v1::Session s;
    s.set_tenant(tenant);
    s.set_agent(agent);
    auto created = store_->Create(s);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : v1::Session();
  }
  std::unique_ptr<SessionStore> store_;
};

TEST_P(SessionStoreTest, CreatesGetsAndListsSessionsPerTenantAndAgent) {
  v1::Session a = NewSession("t", "a");
  v1::Session b = NewSession("t", "b");
  NewSession("other", "a");
  EXPECT_FALSE(a.id().empty());
  EXPECT_NE(a.id(), b.id());
  auto got = store_->Get(a.id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->agent(), "a");
  EXPECT_EQ(got->message_count(), 0u);

  auto all = store_->List("t", "");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id(), a.id());  // Oldest first.
  auto only_b = store_->List("t", "b");
  ASSERT_TRUE(only_b.ok());
  ASSERT_EQ(only_b->size(), 1u);
  auto page = store_->List("t", "", 1, a.id());
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].id(), b.id());

  v1::Session named;
  named.set_id("chat-1");
  named.set_agent("a");
  ASSERT_TRUE(store_->Create(named).ok());
  EXPECT_EQ(store_->Create(named).status().code(), absl::StatusCode::kAlreadyExists);
  named.set_id("bad id!");
  EXPECT_EQ(store_->Create(named).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(SessionStoreTest, AppendIsAppliedOncePerTaskAndStepAndListsInPages) {
  v1::Session s = NewSession();
  SessionAppend turn{.task_id = "task-1", .step_seq = 3};
  turn.messages = {Message("user", "hi"), Message("assistant", "hello")};
  auto first = store_->Append(s.id(), turn);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  auto again = store_->Append(s.id(), turn);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);  // Already applied: nothing changes.
  SessionAppend next{.task_id = "task-2", .step_seq = 1};
  next.messages = {Message("user", "and you?")};
  next.summary = "they greeted";
  next.summarized_through = 1;
  ASSERT_TRUE(store_->Append(s.id(), next).ok());

  auto got = store_->Get(s.id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->message_count(), 3u);
  EXPECT_EQ(got->summary(), "they greeted");
  EXPECT_EQ(got->summarized_through(), 1u);

  auto page = store_->ListMessages(s.id(), 0, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].seq(), 1u);
  EXPECT_EQ((*page)[1].message().content(), "hello");
  EXPECT_EQ((*page)[1].task_id(), "task-1");
  auto rest = store_->ListMessages(s.id(), 2, 2);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].seq(), 3u);

  // The history a resumed task-2 sees leaves its own message (and the
  // summary covering it... here the summary covers only task-1's) out.
  auto history = LoadSessionHistory(*store_, s.id(), "task-2");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->messages_size(), 2);
  EXPECT_EQ(history->summary(), "they greeted");

  SessionAppend bad;
  bad.messages = {Message("robot", "x")};
  EXPECT_EQ(store_->Append(s.id(), bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Append("nope", turn).status().code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Backends, SessionStoreTest,
                         ::testing::Values(Backend::kInMemory, Backend::kSqlite));

TEST(SqliteSessionStoreTest, SessionsAndPinnedBlocksSurviveReopening) {
  const std::string path =
      (std::filesystem::temp_directory_path() /
       absl::StrCat("flowork_session_test_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                    getpid(), ".db"))
          .string();
  std::string id;
  {
    auto store = CreateSqliteSessionStore({.path = path});
    ASSERT_TRUE(store.ok()) << store.status();
    v1::Session s;
    s.set_agent("a");
    auto created = (*store)->Create(s);
    ASSERT_TRUE(created.ok());
    id = created->id();
    SessionAppend turn{.task_id = "t1", .step_seq = 2};
    turn.messages = {Message("user", "remember me")};
    ASSERT_TRUE((*store)->Append(id, turn).ok());
    auto pinned = CreateSqlitePinnedMemoryStore({.path = path});
    ASSERT_TRUE(pinned.ok()) << pinned.status();
    ASSERT_TRUE((*pinned)->Edit({.agent = "a"}, {.name = "user", .text = "Ada"}).ok());
  }
  auto store = CreateSqliteSessionStore({.path = path});
  ASSERT_TRUE(store.ok());
  auto messages = (*store)->ListMessages(id);
  ASSERT_TRUE(messages.ok());
  ASSERT_EQ(messages->size(), 1u);
  EXPECT_EQ((*messages)[0].message().content(), "remember me");
  SessionAppend turn{.task_id = "t1", .step_seq = 2};
  turn.messages = {Message("user", "remember me")};
  auto again = (*store)->Append(id, turn);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  auto pinned = CreateSqlitePinnedMemoryStore({.path = path});
  ASSERT_TRUE(pinned.ok());
  auto blocks = (*pinned)->List({.agent = "a"});
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 1u);
  EXPECT_EQ((*blocks)[0].text(), "Ada");
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
}

class PinnedMemoryStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kInMemory) {
      store_ = CreateInMemoryPinnedMemoryStore();
    } else {
      auto store = CreateSqlitePinnedMemoryStore({.path = ":memory:"});
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = *std::move(store);
    }
  }
  std::unique_ptr<PinnedMemoryStore> store_;
};

TEST_P(PinnedMemoryStoreTest, EditsAreSizeLimitedScopedAndAppliedOncePerKey) {
  const PinnedScope scope{.tenant = "t", .agent = "a"};
  PinnedEdit append{.name = "notes", .kind = PinnedEdit::Kind::kAppend, .text = "one"};
  append.initial_text = "start";
  append.max_bytes = 20;
  append.edit_key = "task/c1";
  auto block = store_->Edit(scope, append);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ(block->text(), "start\none");
  block = store_->Edit(scope, append);  // The same call again: not applied twice.
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(block->text(), "start\none");

  PinnedEdit too_long{
      .name = "notes", .kind = PinnedEdit::Kind::kAppend, .text = "a much longer line"};
  too_long.max_bytes = 20;
  auto refused = store_->Edit(scope, too_long);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("over the block's limit of 20"));

  PinnedEdit replace{
      .name = "notes", .kind = PinnedEdit::Kind::kReplace, .text = "two", .old_text = "one"};
  block = store_->Edit(scope, replace);
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(block->text(), "start\ntwo");
  replace.old_text = "missing";
  EXPECT_EQ(store_->Edit(scope, replace).status().code(), absl::StatusCode::kInvalidArgument);

  auto listed = store_->List(scope);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].text(), "start\ntwo");
  auto other = store_->List({.tenant = "t", .agent = "b"});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
  EXPECT_EQ(store_->Edit(scope, {.name = "Bad Name"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, PinnedMemoryStoreTest,
                         ::testing::Values(Backend::kInMemory, Backend::kSqlite));

// ------------------------------------------------- agent through the runtime

std::string ToJson(const google::protobuf::Value& value) {
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(value, &out).ok());
  return out;
}

std::string Answer(const std::string& text) {
  return absl::StrCat(R"({"choices":[{"message":{"role":"assistant","content":")", text,
                      R"("}}],"usage":{"prompt_tokens":1,"completion_tokens":1}})");
}

// A tool call answer; `arguments` is a JSON object, sent as a string.
std::string ToolCallAnswer(const std::string& id, const std::string& name,
                           const std::string& arguments) {
  google::protobuf::Value args;
  args.set_string_value(arguments);
  return absl::StrCat(
      R"({"choices":[{"message":{"role":"assistant","content":"","tool_calls":[{"id":")", id,
      R"(","type":"function","function":{"name":")", name, R"(","arguments":)", ToJson(args),
      R"(}}]}}],"usage":{"prompt_tokens":1,"completion_tokens":1}})");
}

// The model: records each request body (and its task), answers with
// `script(request, index)`. With `hold`, answers only when Release() is
// called, one call at a time.
class RecordingModel final : public EffectHandler {
 public:
  using Script = std::function<std::string(const std::string& request, int index)>;
  explicit RecordingModel(Script script, bool hold = false)
      : script_(std::move(script)), hold_(hold) {}

  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&> done) override {
    const std::string request = ToJson(effect.model().request());
    int index;
    {
      absl::MutexLock lock(&mu_);
      index = static_cast<int>(requests_.size());
      requests_.push_back(request);
      tasks_.push_back(call->task().id());
      max_in_flight_ = std::max(max_in_flight_, static_cast<int>(held_.size()) + 1);
    }
    v1::EffectResult result;
    EXPECT_TRUE(
        google::protobuf::util::JsonStringToMessage(script_(request, index), result.mutable_model())
            .ok());
    if (!hold_) return std::move(done)(std::move(result));
    absl::MutexLock lock(&mu_);
    held_.push_back([done = std::move(done), result = std::move(result)]() mutable {
      std::move(done)(std::move(result));
    });
  }

  // Waits (bounded) until a held call exists and answers the oldest.
  bool ReleaseOne() {
    absl::AnyInvocable<void() &&> next;
    {
      absl::MutexLock lock(&mu_);
      auto some = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !held_.empty(); };
      if (!mu_.AwaitWithTimeout(absl::Condition(&some), absl::Seconds(20))) return false;
      next = std::move(held_.front());
      held_.erase(held_.begin());
    }
    std::move(next)();
    return true;
  }

  std::vector<std::string> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<std::string> tasks() const {
    absl::MutexLock lock(&mu_);
    return tasks_;
  }
  int max_in_flight() const {
    absl::MutexLock lock(&mu_);
    return max_in_flight_;
  }

 private:
  const Script script_;
  const bool hold_;
  mutable absl::Mutex mu_;
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void() &&>> held_ ABSL_GUARDED_BY(mu_);
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

// Fails the first append after applying it, as if the process died between
// the session write and the task's final write; later appends pass.
class CrashingSessionStore final : public SessionStore {
 public:
  explicit CrashingSessionStore(SessionStore& inner) : inner_(inner) {}
  absl::StatusOr<v1::Session> Create(v1::Session s) override { return inner_.Create(s); }
  absl::StatusOr<v1::Session> Get(std::string_view id) const override { return inner_.Get(id); }
  absl::StatusOr<std::vector<v1::Session>> List(std::string_view t, std::string_view a, int l,
                                                std::string_view after) const override {
    return inner_.List(t, a, l, after);
  }
  absl::StatusOr<bool> Append(std::string_view id, const SessionAppend& append) override {
    auto applied = inner_.Append(id, append);
    if (!applied.ok() || crashed_.exchange(true)) return applied;
    return absl::UnavailableError("the process died here");
  }
  absl::StatusOr<std::vector<v1::SessionMessage>> ListMessages(std::string_view id, uint64_t a,
                                                               int l) const override {
    return inner_.ListMessages(id, a, l);
  }
  bool crashed() const { return crashed_.load(); }

 private:
  SessionStore& inner_;
  std::atomic<bool> crashed_{false};
};

bool IsFinalState(v1::TaskState s) {
  return s == v1::TASK_STATE_SUCCEEDED || s == v1::TASK_STATE_FAILED ||
         s == v1::TASK_STATE_CANCELLED || s == v1::TASK_STATE_TIMED_OUT;
}

class SessionAgentTest : public ::testing::Test {
 protected:
  void StartRuntime(EffectHandler& model, SessionStore& sessions, EffectHandler* tools = nullptr) {
    AgentRuntimeOptions options;
    options.models = &model;
    options.tools = tools;
    options.sessions = &sessions;
    options.threads = 2;
    options.watchdog_interval = absl::Milliseconds(20);
    auto runtime = AgentRuntime::Create(options, *tasks_);
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = *std::move(runtime);
  }

  void Register(v1::AgentSpec spec, LlmAgentOptions options = {}) {
    spec.set_name("assistant");
    spec.set_kind(v1::AgentSpec::KIND_LLM);
    spec.set_model("mock-1");
    if (spec.system_prompt().empty()) spec.set_system_prompt("You are terse.");
    spec.mutable_retry()->mutable_initial_backoff()->set_nanos(10'000'000);
    auto agent = CreateLlmAgent(spec, std::move(options));
    ASSERT_TRUE(agent.ok()) << agent.status();
    ASSERT_TRUE(runtime_->RegisterAgent(spec, *agent).ok());
    ASSERT_TRUE(runtime_->Start().ok());
  }

  std::string NewSession() {
    v1::Session s;
    s.set_agent("assistant");
    auto created = sessions_->Create(s);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->id() : "";
  }

  std::string Submit(const std::string& input, const std::string& session = "") {
    v1::Task task;
    task.set_agent("assistant");
    task.set_session_id(session);
    task.mutable_input()->set_string_value(input);
    auto submitted = runtime_->Submit(task);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->task.id() : "";
  }

  v1::Task WaitFinal(const std::string& id) {
    const absl::Time end = absl::Now() + absl::Seconds(20);
    absl::StatusOr<v1::Task> task = tasks_->Get(id);
    while (absl::Now() < end) {
      task = tasks_->Get(id);
      if (task.ok() && IsFinalState(task->state())) return *task;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "task " << id << " did not end";
    return task.ok() ? *task : v1::Task();
  }

  std::vector<std::string> Contents(const std::string& session) {
    std::vector<std::string> out;
    auto messages = sessions_->ListMessages(session, 0, 1000);
    EXPECT_TRUE(messages.ok());
    if (messages.ok()) {
      for (const v1::SessionMessage& m : *messages) {
        out.push_back(absl::StrCat(m.message().role(), ": ", m.message().content()));
      }
    }
    return out;
  }

  void TearDown() override {
    if (runtime_) runtime_->Shutdown();
  }

  std::unique_ptr<TaskStore> tasks_ = CreateInMemoryTaskStore();
  std::unique_ptr<SessionStore> sessions_ = CreateInMemorySessionStore();
  std::unique_ptr<AgentRuntime> runtime_;
};

TEST_F(SessionAgentTest, TheSecondTaskOfASessionSeesTheFirstTasksTurns) {
  RecordingModel model([](const std::string&, int index) {
    return Answer(index == 0 ? "Hello Ada." : "Your name is Ada.");
  });
  StartRuntime(model, *sessions_);
  Register(v1::AgentSpec());
  const std::string session = NewSession();

  const std::string first = Submit("My name is Ada.", session);
  EXPECT_EQ(WaitFinal(first).state(), v1::TASK_STATE_SUCCEEDED);
  const std::string second = Submit("What is my name?", session);
  v1::Task done = WaitFinal(second);
  EXPECT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();

  std::vector<std::string> requests = model.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[0], Not(HasSubstr("Hello Ada.")));
  // The second request carries the first task's question and answer, then
  // its own question, in that order.
  const size_t q1 = requests[1].find("My name is Ada.");
  const size_t a1 = requests[1].find("Hello Ada.");
  const size_t q2 = requests[1].find("What is my name?");
  ASSERT_NE(q1, std::string::npos);
  ASSERT_NE(a1, std::string::npos);
  ASSERT_NE(q2, std::string::npos);
  EXPECT_LT(q1, a1);
  EXPECT_LT(a1, q2);
  EXPECT_THAT(Contents(session),
              ::testing::ElementsAre("user: My name is Ada.", "assistant: Hello Ada.",
                                     "user: What is my name?", "assistant: Your name is Ada."));
  // A task without a session appends nowhere and sees no history.
  const std::string alone = Submit("Who am I?");
  EXPECT_EQ(WaitFinal(alone).state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_THAT(model.requests().back(), Not(HasSubstr("Ada")));
}

TEST_F(SessionAgentTest, TasksOfOneSessionRunOneAtATimeInSubmissionOrder) {
  RecordingModel model(
      [](const std::string&, int index) { return Answer(absl::StrCat("a", index)); },
      /*hold=*/true);
  StartRuntime(model, *sessions_);
  Register(v1::AgentSpec());
  const std::string session = NewSession();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit(absl::StrCat("q", i), session));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(model.ReleaseOne()) << "call " << i << " never came";
  for (const std::string& id : ids) EXPECT_EQ(WaitFinal(id).state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(model.tasks(), ids);
  EXPECT_EQ(model.max_in_flight(), 1);
  EXPECT_THAT(Contents(session),
              ::testing::ElementsAre("user: q0", "assistant: a0", "user: q1", "assistant: a1",
                                     "user: q2", "assistant: a2"));
  // Each later task saw every earlier turn.
  EXPECT_THAT(model.requests()[2], HasSubstr("\"a1\""));
}

TEST_F(SessionAgentTest, ACancelledTaskReleasesTheNextTaskOfItsSession) {
  RecordingModel model([](const std::string&, int) { return Answer("ok"); }, /*hold=*/true);
  StartRuntime(model, *sessions_);
  Register(v1::AgentSpec());
  const std::string session = NewSession();
  const std::string first = Submit("first", session);
  const std::string second = Submit("second", session);
  const std::string third = Submit("third", session);
  ASSERT_TRUE(runtime_->Cancel(second).ok());  // Waiting behind the first.
  ASSERT_TRUE(model.ReleaseOne());
  EXPECT_EQ(WaitFinal(first).state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(WaitFinal(second).state(), v1::TASK_STATE_CANCELLED);
  ASSERT_TRUE(model.ReleaseOne());
  EXPECT_EQ(WaitFinal(third).state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(model.tasks(), (std::vector<std::string>{first, third}));
  EXPECT_THAT(Contents(session), ::testing::ElementsAre("user: first", "assistant: ok",
                                                        "user: third", "assistant: ok"));
}

TEST_F(SessionAgentTest, AResumedTaskDoesNotAppendItsTurnTwice) {
  RecordingModel model([](const std::string&, int) { return Answer("Noted."); });
  CrashingSessionStore crashing(*sessions_);
  StartRuntime(model, crashing);
  v1::AgentSpec spec;
  // The failed append is retried only after a long backoff: the "crash"
  // (Shutdown) comes first.
  spec.mutable_retry()->mutable_initial_backoff()->set_seconds(30);
  spec.mutable_retry()->mutable_max_backoff()->set_seconds(30);
  Register(spec);
  const std::string session = NewSession();
  const std::string id = Submit("Remember the milk.", session);
  const absl::Time end = absl::Now() + absl::Seconds(20);
  while (!crashing.crashed() && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(crashing.crashed());
  runtime_->Shutdown();
  runtime_.reset();
  ASSERT_EQ(Contents(session).size(), 2u);  // Applied before the "crash".
  auto before = tasks_->Get(id);
  ASSERT_TRUE(before.ok());
  ASSERT_FALSE(IsFinalState(before->state()));

  // A new runtime over the same stores resumes the task from its journal.
  StartRuntime(model, *sessions_);
  Register(spec);
  v1::Task done = WaitFinal(id);
  EXPECT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  EXPECT_THAT(Contents(session),
              ::testing::ElementsAre("user: Remember the milk.", "assistant: Noted."));
  EXPECT_EQ(model.requests().size(), 1u);  // The model call was not repeated.
}

TEST_F(SessionAgentTest, SubmitRefusesAnUnknownOrForeignSession) {
  RecordingModel model([](const std::string&, int) { return Answer("ok"); });
  StartRuntime(model, *sessions_);
  Register(v1::AgentSpec());
  v1::Task task;
  task.set_agent("assistant");
  task.set_session_id("nope");
  EXPECT_EQ(runtime_->Submit(task).status().code(), absl::StatusCode::kNotFound);
  v1::Session foreign;
  foreign.set_tenant("other");
  foreign.set_agent("assistant");
  auto created = sessions_->Create(foreign);
  ASSERT_TRUE(created.ok());
  task.set_session_id(created->id());
  EXPECT_EQ(runtime_->Submit(task).status().code(), absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------- pinned and retrieved memory

class MemoryContextTest : public SessionAgentTest {
 protected:
  v1::AgentSpec PinnedSpec(uint32_t max_bytes) {
    v1::AgentSpec spec;
    v1::PinnedBlockSpec* block = spec.mutable_memory()->add_pinned_blocks();
    block->set_name("user");
    block->set_initial_text("nothing known yet");
    block->set_max_bytes(max_bytes);
    return spec;
  }

  void StartWithPinTools(RecordingModel& model, const v1::AgentSpec& spec) {
    auto registry = ToolRegistry::Create({});
    ASSERT_TRUE(registry.ok());
    registry_ = *std::move(registry);
    ASSERT_TRUE(
        RegisterPinnedMemoryTools(
            *registry_, *pinned_,
            [spec](std::string_view) -> absl::StatusOr<v1::MemorySpec> { return spec.memory(); })
            .ok());
    registry_->SetAgentTools("assistant", {"memory_pin_set", "memory_pin_append"});
    StartRuntime(model, *sessions_, registry_.get());
    auto tools = registry_->OpenAiToolsJson("assistant");
    ASSERT_TRUE(tools.ok()) << tools.status();
    Register(spec, {.tools_json = *tools, .pinned = pinned_.get()});
  }

  std::unique_ptr<PinnedMemoryStore> pinned_ = CreateInMemoryPinnedMemoryStore();
  std::unique_ptr<ToolRegistry> registry_;
};

TEST_F(MemoryContextTest, APinnedBlockEditedByAToolCallIsInTheNextRequest) {
  RecordingModel model([](const std::string&, int index) {
    return index == 0 ? ToolCallAnswer("c1", "memory_pin_set",
                                       R"({"block":"user","text":"Ada drinks tea"})")
                      : Answer("Noted.");
  });
  StartWithPinTools(model, PinnedSpec(64));
  const std::string id = Submit("I am Ada and I drink tea.");
  v1::Task done = WaitFinal(id);
  ASSERT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  std::vector<std::string> requests = model.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[0], HasSubstr("## user\\nnothing known yet"));
  EXPECT_THAT(requests[1], HasSubstr("## user\\nAda drinks tea"));
  // The section follows the system prompt, in the system message.
  EXPECT_LT(requests[1].find("You are terse."), requests[1].find("## user"));
  auto blocks = pinned_->List({.agent = "assistant"});
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 1u);
  EXPECT_EQ((*blocks)[0].text(), "Ada drinks tea");
}

TEST_F(MemoryContextTest, AnEditOverTheBlocksLimitIsAToolErrorTheModelSees) {
  RecordingModel model([](const std::string&, int index) {
    return index == 0 ? ToolCallAnswer("c1", "memory_pin_append",
                                       R"({"block":"user","text":"a line far too long for it"})")
                      : Answer("Sorry.");
  });
  StartWithPinTools(model, PinnedSpec(24));
  v1::Task done = WaitFinal(Submit("Remember a lot."));
  ASSERT_EQ(done.state(), v1::TASK_STATE_SUCCEEDED) << done.error();
  std::vector<std::string> requests = model.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[1], HasSubstr("over the block's limit of 24"));
  EXPECT_THAT(requests[1], HasSubstr("## user\\nnothing known yet"));  // Unchanged.
  auto blocks = pinned_->List({.agent = "assistant"});
  ASSERT_TRUE(blocks.ok());
  EXPECT_TRUE(blocks->empty());
}

TEST_F(MemoryContextTest, RetrievedMemoriesMatchingTheUserMessageAreInTheRequest) {
  auto memory = CreateInMemoryMemoryStore();
  ASSERT_TRUE(memory->Remember({.agent = "assistant"}, "Ada prefers window seats").ok());
  ASSERT_TRUE(memory->Remember({.agent = "assistant"}, "The office is in Lyon").ok());
  ASSERT_TRUE(memory->Remember({.agent = "someone-else"}, "Ada hates window seats").ok());
  RecordingModel model([](const std::string&, int) { return Answer("Booked."); });
  StartRuntime(model, *sessions_);
  v1::AgentSpec spec;
  spec.mutable_memory()->set_retrieve(true);
  spec.mutable_memory()->set_retrieve_top_k(1);
  Register(spec, {.memory = memory.get()});
  ASSERT_EQ(WaitFinal(Submit("Book a window seat for Ada")).state(), v1::TASK_STATE_SUCCEEDED);
  std::vector<std::string> requests = model.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(requests[0], HasSubstr("## Relevant memories"));
  EXPECT_THAT(requests[0], HasSubstr("Ada prefers window seats"));
  EXPECT_THAT(requests[0], Not(HasSubstr("Lyon")));   // Not a match (and top 1).
  EXPECT_THAT(requests[0], Not(HasSubstr("hates")));  // Another agent's.
}

TEST_F(MemoryContextTest, ATinyWindowDropsRetrievedMemoryThenPinnedBlocksAndStillAsks) {
  const TokenCounter& counter = TokenCounterFor("mock-1");
  std::string pinned_text, memory_text;
  for (int i = 0; i < 60; ++i) absl::StrAppend(&pinned_text, "pinned fact ", i, ". ");
  for (int i = 0; i < 60; ++i) absl::StrAppend(&memory_text, "ada seat memory ", i, ". ");
  const int64_t pinned_tokens = counter.CountText(pinned_text);
  const int64_t memory_tokens = counter.CountText(memory_text);
  ASSERT_GT(memory_tokens, 100);
  ASSERT_GT(pinned_tokens, 100);

  auto memory = CreateInMemoryMemoryStore();
  ASSERT_TRUE(memory->Remember({.agent = "assistant"}, memory_text).ok());
  RecordingModel model([](const std::string&, int) { return Answer("ok"); });
  StartRuntime(model, *sessions_);
  v1::AgentSpec spec = PinnedSpec(4096);
  spec.mutable_memory()->mutable_pinned_blocks(0)->set_initial_text(pinned_text);
  spec.mutable_memory()->set_retrieve(true);
  // Room for the prompt, the question and the pinned block, not the memory.
  constexpr int64_t kReserved = 16;
  constexpr int64_t kSlack = 60;
  const int64_t window = kReserved + pinned_tokens + kSlack;
  ASSERT_LT(kSlack, memory_tokens);
  Register(spec, {.context_window = window,
                  .reserved_output_tokens = kReserved,
                  .compaction = false,
                  .memory = memory.get()});
  ASSERT_EQ(WaitFinal(Submit("Which seat for Ada?")).state(), v1::TASK_STATE_SUCCEEDED);
  ASSERT_EQ(model.requests().size(), 1u);
  EXPECT_THAT(model.requests()[0], HasSubstr("pinned fact 59"));
  EXPECT_THAT(model.requests()[0], Not(HasSubstr("ada seat memory")));
  EXPECT_THAT(model.requests()[0], HasSubstr("Which seat for Ada?"));

  // Smaller still: the pinned block goes too; the question is still asked.
  runtime_->Shutdown();
  runtime_.reset();
  tasks_ = CreateInMemoryTaskStore();
  RecordingModel small_model([](const std::string&, int) { return Answer("ok"); });
  StartRuntime(small_model, *sessions_);
  Register(spec, {.context_window = kReserved + kSlack,
                  .reserved_output_tokens = kReserved,
                  .compaction = false,
                  .memory = memory.get()});
  ASSERT_EQ(WaitFinal(Submit("Which seat for Ada?")).state(), v1::TASK_STATE_SUCCEEDED);
  ASSERT_EQ(small_model.requests().size(), 1u);
  EXPECT_THAT(small_model.requests()[0], Not(HasSubstr("pinned fact")));
  EXPECT_THAT(small_model.requests()[0], Not(HasSubstr("ada seat memory")));
  EXPECT_THAT(small_model.requests()[0], HasSubstr("Which seat for Ada?"));
  EXPECT_THAT(small_model.requests()[0], HasSubstr("You are terse."));
}

TEST(LlmAgentMemorySpecTest, BadOrDuplicatePinnedBlockNamesAreRefused) {
  v1::AgentSpec spec;
  spec.set_name("assistant");
  spec.set_model("mock-1");
  spec.mutable_memory()->add_pinned_blocks()->set_name("user");
  EXPECT_TRUE(CreateLlmAgent(spec).ok());
  spec.mutable_memory()->add_pinned_blocks()->set_name("user");
  auto duplicate = CreateLlmAgent(spec);
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(duplicate.status().message(), HasSubstr("memory.pinned_blocks[1].name"));
  spec.mutable_memory()->mutable_pinned_blocks(1)->set_name("Not OK");
  EXPECT_EQ(CreateLlmAgent(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowork::agent
