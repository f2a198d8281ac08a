#include "flowork/agent/memory_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "flowork/agent/in_memory_memory_store.h"
#include "flowork/agent/memory_tools.h"
#include "flowork/agent/sqlite_memory_store.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "flowork_memory_store_XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<std::string> Texts(const std::vector<ScoredMemory>& hits) {
  std::vector<std::string> texts;
  for (const ScoredMemory& hit : hits) texts.push_back(hit.memory.text());
  return texts;
}

std::vector<std::string> Texts(const std::vector<v1::Memory>& memories) {
  std::vector<std::string> texts;
  for (const v1::Memory& memory : memories) texts.push_back(memory.text());
  return texts;
}

const MemoryScope kAlice{"acme", "alice"};
const MemoryScope kBob{"acme", "bob"};
const MemoryScope kAcme{"acme", ""};
const MemoryScope kOtherAlice{"globex", "alice"};

// Tests every MemoryStore must pass, over each implementation.
class MemoryStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "InMemory") {
      store_ = CreateInMemoryMemoryStore(clock_);
    } else {
      auto store = CreateSqliteMemoryStore({.path = ":memory:"}, clock_);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = *std::move(store);
    }
  }

  v1::Memory Remember(const MemoryScope& scope, const std::string& text,
                      std::map<std::string, std::string> tags = {}) {
    auto memory = store_->Remember(scope, text, std::move(tags));
    EXPECT_TRUE(memory.ok()) << memory.status();
    clock_.Advance(absl::Seconds(1));
    return memory.value_or(v1::Memory());
  }

  std::vector<std::string> Recall(const MemoryScope& scope, std::string_view query, int limit = 5) {
    auto hits = store_->Recall(scope, query, limit);
    EXPECT_TRUE(hits.ok()) << hits.status();
    return hits.ok() ? Texts(*hits) : std::vector<std::string>{"<error>"};
  }

  std::vector<std::string> List(const MemoryScope& scope, int limit = 100,
                                std::string_view before_id = {}) {
    auto memories = store_->List(scope, limit, before_id);
    EXPECT_TRUE(memories.ok()) << memories.status();
    return memories.ok() ? Texts(*memories) : std::vector<std::string>{"<error>"};
  }

  testing::FakeClock clock_;
  std::unique_ptr<MemoryStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, MemoryStoreTest, ::testing::Values("InMemory", "Sqlite"),
                         [](const auto& info) { return info.param; });

TEST_P(MemoryStoreTest, RememberReturnsTheMemoryAsStored) {
  const absl::Time now = clock_.Now();
  auto memory = store_->Remember(kAlice, "The user prefers tea", {{"source", "chat"}});
  ASSERT_TRUE(memory.ok()) << memory.status();
  EXPECT_THAT(memory->id(), ::testing::StartsWith("m"));
  EXPECT_EQ(memory->tenant(), "acme");
  EXPECT_EQ(memory->agent(), "alice");
  EXPECT_EQ(memory->text(), "The user prefers tea");
  EXPECT_EQ(memory->tags().at("source"), "chat");
  EXPECT_EQ(memory->create_time().seconds(), absl::ToUnixSeconds(now));

  auto listed = store_->List(kAlice);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].SerializeAsString(), memory->SerializeAsString());
}

TEST_P(MemoryStoreTest, IdsAreUniqueAndIncreaseWhileTheClockStandsStill) {
  std::string previous;
  for (int i = 0; i < 50; ++i) {
    auto memory = store_->Remember(kAlice, absl::StrCat("fact ", i));
    ASSERT_TRUE(memory.ok()) << memory.status();
    EXPECT_GT(memory->id(), previous);
    previous = memory->id();
  }
}

TEST_P(MemoryStoreTest, RejectsBadTextAndTagsAndStoresNothing) {
  const std::string too_long(kMaxMemoryTextBytes + 1, 'a');
  for (const std::string& text :
       {std::string(), std::string(" \n\t"), too_long, std::string("bad \xff utf-8")}) {
    auto memory = store_->Remember(kAlice, text);
    EXPECT_EQ(memory.status().code(), absl::StatusCode::kInvalidArgument) << text.size();
    EXPECT_THAT(memory.status().message(), HasSubstr("text"));
  }
  auto empty_key = store_->Remember(kAlice, "fine", {{"", "v"}});
  EXPECT_EQ(empty_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty_key.status().message(), HasSubstr("tags"));
  auto huge_tags = store_->Remember(kAlice, "fine", {{"k", std::string(kMaxMemoryTagBytes, 'v')}});
  EXPECT_EQ(huge_tags.status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_scope = store_->Remember({"acme", std::string(kMaxMemoryScopeBytes + 1, 'x')}, "fine");
  EXPECT_EQ(bad_scope.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_scope.status().message(), HasSubstr("scope.agent"));
  EXPECT_THAT(List(kAlice), IsEmpty());

  EXPECT_TRUE(store_->Remember(kAlice, std::string(kMaxMemoryTextBytes, 'a')).ok());
}

TEST_P(MemoryStoreTest, RecallRanksAMemoryWithMoreOfTheQueryWordsFirst) {
  Remember(kAlice, "apple pie with cream");
  Remember(kAlice, "a banana and apple smoothie");
  Remember(kAlice, "cherry tart");
  EXPECT_THAT(Recall(kAlice, "banana apple"),
              ElementsAre("a banana and apple smoothie", "apple pie with cream"));
}

TEST_P(MemoryStoreTest, ScoresArePositiveAndBestFirst) {
  Remember(kAlice, "deploy the billing service on friday");
  Remember(kAlice, "the billing service owner is dana");
  Remember(kAlice, "billing");
  auto hits = store_->Recall(kAlice, "billing service friday", 5);
  ASSERT_TRUE(hits.ok()) << hits.status();
  ASSERT_THAT(*hits, SizeIs(3));
  EXPECT_EQ((*hits)[0].memory.text(), "deploy the billing service on friday");
  for (size_t i = 0; i < hits->size(); ++i) {
    EXPECT_GT((*hits)[i].score, 0);
    if (i > 0) {
      EXPECT_GE((*hits)[i - 1].score, (*hits)[i].score);
    }
  }
}

TEST_P(MemoryStoreTest, QueryWithoutWordsReturnsNothing) {
  Remember(kAlice, "something to find");
  for (std::string_view query : {"", "   ", "!!! ??? ...", "\"", "*", "()"}) {
    EXPECT_THAT(Recall(kAlice, query), IsEmpty()) << query;
  }
}

TEST_P(MemoryStoreTest, RecallHonoursLimitAndRejectsABadOne) {
  for (int i = 0; i < 8; ++i) Remember(kAlice, absl::StrCat("note number ", i));
  EXPECT_THAT(Recall(kAlice, "note", 3), SizeIs(3));
  EXPECT_THAT(Recall(kAlice, "note", kMaxRecallLimit), SizeIs(8));
  for (int limit : {0, -1, kMaxRecallLimit + 1}) {
    auto hits = store_->Recall(kAlice, "note", limit);
    EXPECT_EQ(hits.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(hits.status().message(), HasSubstr("limit"));
  }
}

TEST_P(MemoryStoreTest, AnotherTenantNeverSeesAMemory) {
  const v1::Memory shared = Remember(kAcme, "the wifi password is hunter2");
  const v1::Memory own = Remember(kAlice, "alice keeps the wifi password");
  EXPECT_THAT(Recall(kOtherAlice, "wifi password"), IsEmpty());
  EXPECT_THAT(Recall({"globex", ""}, "wifi password"), IsEmpty());
  EXPECT_THAT(List(kOtherAlice), IsEmpty());
  EXPECT_EQ(store_->Forget(kOtherAlice, own.id()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Forget({"globex", ""}, shared.id()).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(List(kAlice), SizeIs(2));
}

TEST_P(MemoryStoreTest, AnAgentSeesItsOwnAndTenantWideMemoriesButNotAnotherAgents) {
  Remember(kAcme, "office wifi is on floor two");
  Remember(kAlice, "alice found the wifi slow");
  Remember(kBob, "bob reset the wifi router");
  EXPECT_THAT(
      Recall(kAlice, "wifi", 10),
      ::testing::UnorderedElementsAre("office wifi is on floor two", "alice found the wifi slow"));
  EXPECT_THAT(List(kBob), ElementsAre("bob reset the wifi router", "office wifi is on floor two"));
  // The tenant's own scope is the tenant-wide memory only.
  EXPECT_THAT(Recall(kAcme, "wifi", 10), ElementsAre("office wifi is on floor two"));
  EXPECT_THAT(List(kAcme), ElementsAre("office wifi is on floor two"));
}

TEST_P(MemoryStoreTest, HostileQueriesAreSearchedAsText) {
  Remember(kAlice, "the boat is moored near the river bank");
  Remember(kAlice, "an unrelated note");
  for (std::string_view query :
       {"river\"", "\"river", "river*", "-river", "NOT river", "river AND", "river OR",
        "NEAR(river bank)", "NEAR(river", "river)", "text:river", "{text}: river", "^river",
        "river + +", "'river'", "river\\", "(river OR", "river NOT AND OR NEAR"}) {
    EXPECT_THAT(Recall(kAlice, query), ElementsAre("the boat is moored near the river bank"))
        << query;
  }
}

TEST_P(MemoryStoreTest, HostileQueriesWithoutMatchesNeverFail) {
  Remember(kAlice, "plain memory");
  for (std::string_view query : std::vector<std::string_view>{"\"",
                                                              "\"\"\"",
                                                              "*",
                                                              "a OR",
                                                              "OR",
                                                              "AND",
                                                              "NOT",
                                                              "NEAR(a b)",
                                                              "NEAR(",
                                                              "-x",
                                                              "x -y",
                                                              ")(",
                                                              "\"unterminated",
                                                              "col:x",
                                                              "^",
                                                              "\x01\x02",
                                                              "\xff\xfe\xfd",
                                                              "日本語",
                                                              "😀 emoji",
                                                              "Ünïcödé ÄND",
                                                              "'; DROP TABLE memories; --",
                                                              std::string_view("a\0b", 3)}) {
    auto hits = store_->Recall(kAlice, query, 5);
    EXPECT_TRUE(hits.ok()) << query << ": " << hits.status();
  }
  EXPECT_THAT(List(kAlice), ElementsAre("plain memory"));
}

TEST_P(MemoryStoreTest, NonAsciiWordsAreFound) {
  Remember(kAlice, "Der Kunde bevorzugt Überweisung");
  Remember(kAlice, "東京 office");
  EXPECT_THAT(Recall(kAlice, "Überweisung"), ElementsAre("Der Kunde bevorzugt Überweisung"));
  EXPECT_THAT(Recall(kAlice, "東京"), ElementsAre("東京 office"));
}

TEST_P(MemoryStoreTest, ForgetRemovesTheMemoryFromRecallAndList) {
  const v1::Memory keep = Remember(kAlice, "keep the zebra notes");
  const v1::Memory drop = Remember(kAlice, "forget the zebra secret");
  ASSERT_TRUE(store_->Forget(kAlice, drop.id()).ok());
  EXPECT_THAT(Recall(kAlice, "zebra secret"), ElementsAre("keep the zebra notes"));
  EXPECT_THAT(Recall(kAlice, "secret"), IsEmpty());
  EXPECT_THAT(List(kAlice), ElementsAre("keep the zebra notes"));
  EXPECT_EQ(store_->Forget(kAlice, drop.id()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Forget(kAlice, "no-such-id").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Forget(kAlice, "").code(), absl::StatusCode::kNotFound);
}

TEST_P(MemoryStoreTest, OnlyTheOwningScopeForgets) {
  const v1::Memory shared = Remember(kAcme, "shared fact");
  const v1::Memory alices = Remember(kAlice, "alice fact");
  // Another agent, and an agent over the tenant-wide memory it can read.
  EXPECT_EQ(store_->Forget(kBob, alices.id()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Forget(kAlice, shared.id()).code(), absl::StatusCode::kNotFound);
  // The tenant scope does not own an agent's memory either.
  EXPECT_EQ(store_->Forget(kAcme, alices.id()).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(List(kAlice), SizeIs(2));
  EXPECT_TRUE(store_->Forget(kAcme, shared.id()).ok());
  EXPECT_TRUE(store_->Forget(kAlice, alices.id()).ok());
  EXPECT_THAT(List(kAlice), IsEmpty());
}

TEST_P(MemoryStoreTest, ListPagesNewestFirstEvenAfterTheCursorIsForgotten) {
  std::vector<v1::Memory> memories;
  for (int i = 0; i < 5; ++i) memories.push_back(Remember(kAlice, absl::StrCat("note ", i)));
  EXPECT_THAT(List(kAlice, 2), ElementsAre("note 4", "note 3"));
  ASSERT_TRUE(store_->Forget(kAlice, memories[3].id()).ok());
  EXPECT_THAT(List(kAlice, 2, memories[3].id()), ElementsAre("note 2", "note 1"));
  EXPECT_THAT(List(kAlice, 2, memories[1].id()), ElementsAre("note 0"));
  EXPECT_THAT(List(kAlice, 2, memories[0].id()), IsEmpty());
  for (int limit : {0, kMaxListLimit + 1}) {
    EXPECT_EQ(store_->List(kAlice, limit).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST_P(MemoryStoreTest, ConcurrentCallsAreSafe) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(store_->Remember(kAlice, absl::StrCat("thread ", t, " fact ", i)).ok());
        EXPECT_TRUE(store_->Recall(kAlice, "fact", 3).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  auto all = store_->List(kAlice, kMaxListLimit);
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> ids;
  for (const v1::Memory& memory : *all) ids.insert(memory.id());
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
}

// What only the SQLite store promises: BM25, stemming, durability.
class SqliteMemoryStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<MemoryStore> Open(const std::string& path) {
    auto store = CreateSqliteMemoryStore({.path = path}, clock_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::vector<std::string> Recall(const MemoryStore& store, std::string_view query) {
    auto hits = store.Recall(kAlice, query, 10);
    EXPECT_TRUE(hits.ok()) << hits.status();
    return hits.ok() ? Texts(*hits) : std::vector<std::string>{"<error>"};
  }

  testing::FakeClock clock_;
  TempDir dir_;
};

TEST_F(SqliteMemoryStoreTest, Bm25RanksMoreHitsOfAWordAbove) {
  auto store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Remember(kAlice, "kafka consumer group rebalance").ok());
  ASSERT_TRUE(store->Remember(kAlice, "kafka kafka kafka consumer").ok());
  ASSERT_TRUE(store->Remember(kAlice, "postgres vacuum settings").ok());
  EXPECT_THAT(Recall(*store, "kafka"),
              ElementsAre("kafka kafka kafka consumer", "kafka consumer group rebalance"));
}

TEST_F(SqliteMemoryStoreTest, Bm25RanksTheRarerWordAbove) {
  auto store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store->Remember(kAlice, absl::StrCat("server log line ", i)).ok());
  }
  ASSERT_TRUE(store->Remember(kAlice, "the server crashed").ok());
  ASSERT_TRUE(store->Remember(kAlice, "a segfault happened").ok());
  auto hits = store->Recall(kAlice, "server segfault", 2);
  ASSERT_TRUE(hits.ok()) << hits.status();
  ASSERT_THAT(*hits, SizeIs(2));
  EXPECT_EQ((*hits)[0].memory.text(), "a segfault happened");
}

TEST_F(SqliteMemoryStoreTest, WordsAreStemmedAndFoldedForSearch) {
  auto store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Remember(kAlice, "I was running late to the meetings").ok());
  ASSERT_TRUE(store->Remember(kAlice, "Lunch at the CAFÉ").ok());
  EXPECT_THAT(Recall(*store, "run"), ElementsAre("I was running late to the meetings"));
  EXPECT_THAT(Recall(*store, "runs meeting"), ElementsAre("I was running late to the meetings"));
  EXPECT_THAT(Recall(*store, "cafe"), ElementsAre("Lunch at the CAFÉ"));
}

TEST_F(SqliteMemoryStoreTest, MemoriesSurviveReopeningAndNewIdsSortAfterOldOnes) {
  const std::string path = dir_.File("memory.db");
  std::string old_id;
  {
    auto store = Open(path);
    ASSERT_NE(store, nullptr);
    auto memory = store->Remember(kAlice, "the deploy key rotates monthly", {{"kind", "ops"}});
    ASSERT_TRUE(memory.ok()) << memory.status();
    old_id = memory->id();
  }
  clock_.Advance(-absl::Hours(1));  // Ids must still increase.
  auto store = Open(path);
  ASSERT_NE(store, nullptr);
  auto hits = store->Recall(kAlice, "deploy key", 5);
  ASSERT_TRUE(hits.ok()) << hits.status();
  ASSERT_THAT(*hits, SizeIs(1));
  EXPECT_EQ((*hits)[0].memory.id(), old_id);
  EXPECT_EQ((*hits)[0].memory.tags().at("kind"), "ops");
  auto newer = store->Remember(kAlice, "another fact");
  ASSERT_TRUE(newer.ok()) << newer.status();
  EXPECT_GT(newer->id(), old_id);
}

TEST_F(SqliteMemoryStoreTest, IndexStaysConsistentAfterForget) {
  const std::string path = dir_.File("memory.db");
  {
    auto store = Open(path);
    ASSERT_NE(store, nullptr);
    auto secret = store->Remember(kAlice, "the zebra launch codes");
    ASSERT_TRUE(secret.ok()) << secret.status();
    ASSERT_TRUE(store->Remember(kAlice, "a horse in the field").ok());
    ASSERT_TRUE(store->Forget(kAlice, secret->id()).ok());
    EXPECT_THAT(Recall(*store, "zebra launch codes"), IsEmpty());
    EXPECT_THAT(Recall(*store, "horse"), ElementsAre("a horse in the field"));
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'zebra'",
                         -1, &stmt, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(SqliteMemoryStoreTest, RefusesATableWrittenByANewerVersion) {
  const std::string path = dir_.File("memory.db");
  ASSERT_NE(Open(path), nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "UPDATE memory_schema_version SET version = 99", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto store = CreateSqliteMemoryStore({.path = path}, clock_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteMemoryStoreTest, SharesAFileWithTheTaskStore) {
  const std::string path = dir_.File("agent.db");
  auto tasks = CreateSqliteTaskStore({.path = path}, clock_);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  auto memory = Open(path);
  ASSERT_NE(memory, nullptr);
  ASSERT_TRUE(memory->Remember(kAlice, "shared database").ok());
  EXPECT_THAT(Recall(*memory, "database"), ElementsAre("shared database"));
}

TEST_F(SqliteMemoryStoreTest, RejectsBadOptions) {
  EXPECT_EQ(CreateSqliteMemoryStore({.path = ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateSqliteMemoryStore({.path = ":memory:", .busy_timeout = -absl::Seconds(1)})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateSqliteMemoryStore({.path = dir_.File("no/such/dir/memory.db")}).status().code(),
            absl::StatusCode::kUnavailable);
}

// The remember and recall tools.
class MemoryToolsTest : public ::testing::Test {
 protected:
  static google::protobuf::Value Json(const std::string& json) {
    google::protobuf::Value value;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &value).ok()) << json;
    return value;
  }

  v1::ToolResult Call(const MemoryScope& scope, const std::string& name,
                      const std::string& arguments_json) {
    v1::ToolCall call;
    call.set_id("call-1");
    call.set_name(name);
    *call.mutable_arguments() = Json(arguments_json);
    auto result = tools_.Call(scope, call);
    EXPECT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->id(), "call-1");
    return result.value_or(v1::ToolResult());
  }

  static std::string ToJson(const google::protobuf::Value& value) {
    std::string json;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(value, &json).ok());
    return json;
  }

  testing::FakeClock clock_;
  std::unique_ptr<MemoryStore> store_ = CreateInMemoryMemoryStore(clock_);
  MemoryTools tools_{*store_};
};

TEST_F(MemoryToolsTest, RememberThenRecallRoundTrips) {
  const v1::ToolResult stored =
      Call(kAlice, "remember",
           R"({"text": "The user's favourite colour is green", "tags": {"source": "chat"}})");
  ASSERT_EQ(stored.error(), "");
  const std::string id = stored.output().struct_value().fields().at("id").string_value();
  EXPECT_FALSE(id.empty());
  Call(kAcme, "remember", R"({"text": "Everyone at acme likes green tea"})");

  const v1::ToolResult recalled =
      Call(kAlice, "recall", R"({"query": "favourite colour", "limit": 3})");
  ASSERT_EQ(recalled.error(), "");
  const auto& memories = recalled.output().struct_value().fields().at("memories").list_value();
  ASSERT_EQ(memories.values_size(), 1) << ToJson(recalled.output());
  const auto& hit = memories.values(0).struct_value().fields();
  EXPECT_EQ(hit.at("id").string_value(), id);
  EXPECT_EQ(hit.at("text").string_value(), "The user's favourite colour is green");
  EXPECT_EQ(hit.at("tags").struct_value().fields().at("source").string_value(), "chat");
  EXPECT_GT(hit.at("score").number_value(), 0);
  EXPECT_FALSE(hit.at("shared").bool_value());
  EXPECT_THAT(hit.at("create_time").string_value(), HasSubstr("2027-"));

  const v1::ToolResult green = Call(kAlice, "recall", R"({"query": "green tea"})");
  const auto& both = green.output().struct_value().fields().at("memories").list_value();
  ASSERT_EQ(both.values_size(), 2) << ToJson(green.output());
  EXPECT_TRUE(both.values(0).struct_value().fields().at("shared").bool_value());
}

TEST_F(MemoryToolsTest, AcceptsArgumentsAsAJsonString) {
  v1::ToolCall call;
  call.set_id("c");
  call.set_name("remember");
  call.mutable_arguments()->set_string_value(R"({"text": "from a string"})");
  auto result = tools_.Call(kAlice, call);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), "");
  call.set_name("recall");
  call.mutable_arguments()->set_string_value(R"({"query": "string"})");
  result = tools_.Call(kAlice, call);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(ToJson(result->output()), HasSubstr("from a string"));
}

TEST_F(MemoryToolsTest, BadArgumentsComeBackAsErrorsNamingTheField) {
  const struct {
    std::string tool;
    std::string arguments;
    std::string field;
  } cases[] = {
      {"remember", R"({})", "text"},
      {"remember", R"({"text": 5})", "text"},
      {"remember", R"({"text": ""})", "text"},
      {"remember", absl::StrCat(R"({"text": ")", std::string(kMaxMemoryTextBytes + 1, 'a'), "\"}"),
       "text"},
      {"remember", R"({"text": "x", "tags": [1]})", "tags"},
      {"remember", R"({"text": "x", "tags": {"kind": 1}})", "tags.kind"},
      {"remember", R"({"text": "x", "colour": "red"})", "colour"},
      {"remember", R"([1, 2])", "arguments"},
      {"remember", R"("not json {")", "arguments"},
      {"recall", R"({})", "query"},
      {"recall", R"({"query": ["a"]})", "query"},
      {"recall", R"({"query": "a", "limit": 0})", "limit"},
      {"recall", R"({"query": "a", "limit": 2.5})", "limit"},
      {"recall", R"({"query": "a", "limit": "5"})", "limit"},
      {"recall", R"({"query": "a", "limit": 1000})", "limit"},
  };
  for (const auto& c : cases) {
    const v1::ToolResult result = Call(kAlice, c.tool, c.arguments);
    EXPECT_THAT(result.error(), HasSubstr(c.field)) << c.tool << " " << c.arguments.substr(0, 80);
    EXPECT_FALSE(result.has_output()) << c.arguments.substr(0, 80);
  }
  auto stored = store_->List(kAlice);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_THAT(*stored, IsEmpty());
}

TEST_F(MemoryToolsTest, UnknownToolAndBadScopeAreCallerErrors) {
  v1::ToolCall call;
  call.set_name("forget_everything");
  EXPECT_EQ(tools_.Call(kAlice, call).status().code(), absl::StatusCode::kNotFound);
  call.set_name("recall");
  *call.mutable_arguments() = Json(R"({"query": "x"})");
  EXPECT_EQ(tools_.Call({std::string(kMaxMemoryScopeBytes + 1, 't'), ""}, call).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MemoryToolsTest, DefinitionsDescribeBothTools) {
  const std::vector<MemoryToolDefinition> definitions = MemoryTools::Definitions();
  ASSERT_THAT(definitions, SizeIs(2));
  EXPECT_EQ(definitions[0].name, "remember");
  EXPECT_EQ(definitions[1].name, "recall");
  for (const MemoryToolDefinition& definition : definitions) {
    EXPECT_FALSE(definition.description.empty());
    const auto& fields = definition.parameters.fields();
    ASSERT_TRUE(fields.contains("properties")) << definition.name;
    EXPECT_EQ(fields.at("type").string_value(), "object");
  }
  EXPECT_TRUE(
      definitions[0].parameters.fields().at("properties").struct_value().fields().contains("text"));
  EXPECT_TRUE(definitions[1]
                  .parameters.fields()
                  .at("properties")
                  .struct_value()
                  .fields()
                  .contains("query"));
}

}  // namespace
}  // namespace flowork::agent
