#include "flowork/router/config_history.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "flowork/core/config_loader.h"
#include "flowork/router/config_file_watcher.h"
#include "flowork/testing/fake_clock.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A valid configuration serving `models` (each on provider p).
v1::RouterConfig Config(const std::vector<std::string>& models, const std::string& extra = "") {
  std::string yaml =
      "providers: [{name: p, kind: openai, base_url: \"http://127.0.0.1:9/v1\", zone: local}]\n"
      "models:\n";
  for (const std::string& m : models) {
    absl::StrAppend(&yaml, "  - {name: ", m, ", provider: p, capabilities: [chat]}\n");
  }
  absl::StrAppend(&yaml, extra);
  v1::RouterConfig config;
  absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed << "\n" << yaml;
  return config;
}

bool Serves(const PolicyEngine& policy, const std::string& model) {
  for (const v1::Model& m : policy.Current()->config().models()) {
    if (m.name() == model) return true;
  }
  return false;
}

class ConfigHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto policy = PolicyEngine::Create(Config({"a"}), clock_);
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *std::move(policy);
    history_ = std::make_unique<ConfigHistory>(*policy_, Config({"a"}), /*keep=*/3);
  }

  testing::FakeClock clock_;
  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<ConfigHistory> history_;
};

TEST_F(ConfigHistoryTest, StartsAtVersionOneAndCountsEachApply) {
  EXPECT_EQ(history_->Current().version, 1u);
  EXPECT_EQ(*history_->Apply(Config({"a", "b"})), 2u);
  EXPECT_TRUE(Serves(*policy_, "b"));
  EXPECT_EQ(*history_->Apply(Config({"c"})), 3u);
  EXPECT_FALSE(Serves(*policy_, "a"));
  EXPECT_EQ(history_->Current().version, 3u);
  EXPECT_EQ(history_->Current().config->models(0).name(), "c");
}

TEST_F(ConfigHistoryTest, InvalidConfigChangesNothingAndSaysWhy) {
  v1::RouterConfig bad = Config({"b"}, "routes: [{name: chat, candidates: [gpt-x]}]\n");
  absl::StatusOr<uint64_t> refused = history_->Apply(bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("routes[0].candidates[0]"));
  EXPECT_THAT(refused.status().message(), HasSubstr("gpt-x"));
  EXPECT_EQ(history_->Current().version, 1u);
  EXPECT_TRUE(Serves(*policy_, "a"));
  EXPECT_FALSE(Serves(*policy_, "b"));
  EXPECT_THAT(history_->Validate(bad), ElementsAre(HasSubstr("routes[0].candidates[0]")));
  EXPECT_THAT(history_->Validate(Config({"b"})), IsEmpty());
}

TEST_F(ConfigHistoryTest, AuthNoneIsRefusedOnANonLoopbackListener) {
  absl::StatusOr<uint64_t> refused =
      history_->Apply(Config({"a"}, "auth: {mode: none}\nlisten: {http: \"0.0.0.0:2402\"}\n"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("auth.mode"));
  EXPECT_EQ(history_->Current().version, 1u);
  EXPECT_TRUE(history_->Apply(Config({"a"}, "auth: {mode: none}\n")).ok());  // Loopback default.
}

TEST_F(ConfigHistoryTest, ExpectedVersionGuardsAgainstConcurrentEdits) {
  EXPECT_EQ(*history_->Apply(Config({"b"}), /*expected_version=*/1), 2u);
  absl::StatusOr<uint64_t> stale = history_->Apply(Config({"c"}), /*expected_version=*/1);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(), HasSubstr("version 2 is running"));
  EXPECT_TRUE(Serves(*policy_, "b"));
}

TEST_F(ConfigHistoryTest, RollbackReappliesAnEarlierVersionAsANewOne) {
  ASSERT_TRUE(history_->Apply(Config({"b"})).ok());  // 2
  ASSERT_TRUE(history_->Apply(Config({"c"})).ok());  // 3
  EXPECT_EQ(*history_->Rollback(), 4u);              // Back to 2's content.
  EXPECT_TRUE(Serves(*policy_, "b"));
  absl::StatusOr<uint64_t> again = history_->Rollback(3);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 5u);
  EXPECT_TRUE(Serves(*policy_, "c"));
  EXPECT_FALSE(Serves(*policy_, "b"));
}

TEST_F(ConfigHistoryTest, KeepsOnlyTheLastVersions) {
  for (const char* m : {"b", "c", "d"}) ASSERT_TRUE(history_->Apply(Config({m})).ok());
  EXPECT_THAT(history_->Versions(), ElementsAre(2, 3, 4));
  absl::StatusOr<uint64_t> gone = history_->Rollback(1);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Serves(*policy_, "d"));
}

TEST_F(ConfigHistoryTest, NothingToRollBackToAtFirst) {
  EXPECT_EQ(history_->Rollback().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigHistoryTest, RedactedHashesKeepTheRunningKeysHash) {
  const std::string hash(64, 'a');
  ASSERT_TRUE(history_->Apply(Config({"a"}), 0).ok());
  ASSERT_TRUE(history_->Apply(Config({"a"}, "keys: [{name: k, sha256: \"" + hash + "\"}]\n")).ok());
  v1::RouterConfig redacted = Config({"a", "b"}, "keys: [{name: k, sha256: \"[REDACTED]\"}]\n");
  ASSERT_TRUE(history_->Apply(redacted).ok());
  EXPECT_EQ(history_->Current().config->keys(0).sha256(), hash);
  absl::StatusOr<uint64_t> unknown =
      history_->Apply(Config({"a"}, "keys: [{name: new, sha256: \"[REDACTED]\"}]\n"));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("keys[0].sha256"));
}

}  // namespace
}  // namespace flowork::router

namespace flowork::router {
namespace {

TEST(ConfigFileWatcherTest, CallsBackWhenTheContentChanges) {
  const std::string path = testing::MakeTempDir() + "/router.yaml";
  testing::WriteFile(path, "models: []\n");
  absl::Notification changed;
  ConfigFileWatcher watcher(path, absl::Milliseconds(10), [&] {
    if (!changed.HasBeenNotified()) changed.Notify();
  });
  testing::WriteFile(path, "models: [] # edited\n");
  EXPECT_TRUE(changed.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace flowork::router
