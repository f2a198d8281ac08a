#include "flowork/router/key_store.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/config_loader.h"
#include "flowork/testing/fake_clock.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::RouterConfig Config(const std::string& extra) {
  v1::RouterConfig config;
  const std::string yaml = absl::StrCat(
      "providers: [{name: p, kind: openai, base_url: \"http://127.0.0.1:9/v1\", zone: local}]\n"
      "models: [{name: m, provider: p, capabilities: [chat]},"
      " {name: other, provider: p, capabilities: [chat]}]\n",
      extra);
  absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed;
  return config;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

v1::CreateKeyRequest Request(const std::string& name) {
  v1::CreateKeyRequest request;
  request.set_name(name);
  request.set_tenant("t");
  return request;
}

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    auto policy =
        PolicyEngine::Create(Config("keys: [{name: configured, sha256: \"" +
                                    KeyRing::Sha256Hex("config-secret") + "\", tenant: c}]\n"),
                             clock_);
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *std::move(policy);
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto store = KeyStore::Open({.path = path(), .clock = &clock_}, *policy_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string path() const { return dir_ + "/keys.db"; }

  v1::CreateKeyResponse MustCreate(const v1::CreateKeyRequest& request) {
    absl::StatusOr<v1::CreateKeyResponse> created = store_->Create(request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : v1::CreateKeyResponse();
  }

  testing::FakeClock clock_;
  std::string dir_;
  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<KeyStore> store_;
};

TEST_F(KeyStoreTest, CreatedKeyIdentifiesItsCallerByBearerAndXApiKey) {
  v1::CreateKeyRequest request = Request("team-a");
  request.add_allow("m");
  const v1::CreateKeyResponse created = MustCreate(request);
  EXPECT_TRUE(absl::StartsWith(created.plaintext(), "fk-")) << created.plaintext();
  EXPECT_EQ(created.plaintext().size(), 3u + 43u);
  EXPECT_EQ(created.key().source(), "admin");
  auto bearer = store_->Identify("Bearer " + created.plaintext(), "");
  ASSERT_TRUE(bearer.ok()) << bearer.status();
  EXPECT_EQ((*bearer)->name(), "team-a");
  EXPECT_EQ((*bearer)->tenant(), "t");
  EXPECT_TRUE(KeyStore::CheckAllowed(bearer->get(), "m").ok());
  EXPECT_EQ(KeyStore::CheckAllowed(bearer->get(), "other").code(),
            absl::StatusCode::kPermissionDenied);
  auto anthropic = store_->Identify("", created.plaintext());
  ASSERT_TRUE(anthropic.ok()) << anthropic.status();
  EXPECT_EQ((*anthropic)->name(), "team-a");
}

TEST_F(KeyStoreTest, ConfiguredKeysStillIdentifyAndUnknownOnesAreRefused) {
  auto configured = store_->Identify("Bearer config-secret", "");
  ASSERT_TRUE(configured.ok()) << configured.status();
  EXPECT_EQ((*configured)->name(), "configured");
  EXPECT_EQ(store_->Identify("Bearer nope", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(store_->Identify("", "").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(KeyStoreTest, PlaintextIsNeverStoredOnlyItsHash) {
  const v1::CreateKeyResponse created = MustCreate(Request("secretive"));
  store_.reset();  // Closes the file, checkpointing the WAL into it.
  std::string bytes = ReadBytes(path());
  bytes += ReadBytes(path() + "-wal");
  ASSERT_THAT(bytes, HasSubstr("secretive"));  // The file is what we think it is.
  EXPECT_THAT(bytes, HasSubstr(KeyRing::Sha256Hex(created.plaintext())));
  EXPECT_FALSE(absl::StrContains(bytes, created.plaintext()));
  EXPECT_FALSE(absl::StrContains(bytes, created.plaintext().substr(3)));
  Reopen();
  const std::vector<v1::KeyInfo> keys = store_->List();
  for (const v1::KeyInfo& info : keys) {
    EXPECT_FALSE(absl::StrContains(info.DebugString(), created.plaintext()));
  }
}

TEST_F(KeyStoreTest, RevokedKeyIsRefusedAtOnceAndStaysRevokedAfterReopen) {
  const v1::CreateKeyResponse created = MustCreate(Request("leaked"));
  absl::StatusOr<v1::KeyInfo> revoked = store_->Revoke("leaked");
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_TRUE(revoked->revoked());
  auto refused = store_->Identify("Bearer " + created.plaintext(), "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(refused.status().message(), HasSubstr("revoked"));
  EXPECT_TRUE(store_->Revoke("leaked").ok());  // Again: still OK.
  Reopen();
  EXPECT_EQ(store_->Identify("Bearer " + created.plaintext(), "").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(KeyStoreTest, CreatedKeysSurviveReopening) {
  const v1::CreateKeyResponse created = MustCreate(Request("durable"));
  Reopen();
  auto again = store_->Identify("Bearer " + created.plaintext(), "");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->name(), "durable");
  std::vector<std::string> names;
  const std::vector<v1::KeyInfo> keys = store_->List();
  for (const v1::KeyInfo& info : keys) names.push_back(info.name() + "/" + info.source());
  EXPECT_THAT(names, ElementsAre("configured/config", "durable/admin"));
}

TEST_F(KeyStoreTest, KeyWithTtlExpiresOnTheClock) {
  v1::CreateKeyRequest request = Request("short-lived");
  *request.mutable_ttl() = google::protobuf::util::TimeUtil::SecondsToDuration(60);
  const v1::CreateKeyResponse created = MustCreate(request);
  EXPECT_TRUE(created.key().has_expire_time());
  clock_.Advance(absl::Seconds(59));
  EXPECT_TRUE(store_->Identify("Bearer " + created.plaintext(), "").ok());
  clock_.Advance(absl::Seconds(1));
  auto expired = store_->Identify("Bearer " + created.plaintext(), "");
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));
}

TEST_F(KeyStoreTest, NamesAreUniqueAcrossConfiguredAndCreatedKeys) {
  EXPECT_EQ(store_->Create(Request("configured")).status().code(),
            absl::StatusCode::kAlreadyExists);
  MustCreate(Request("mine"));
  EXPECT_EQ(store_->Create(Request("mine")).status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->Revoke("mine").ok());
  EXPECT_EQ(store_->Create(Request("mine")).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(KeyStoreTest, ConfiguredKeysCannotBeRevokedThroughTheApi) {
  absl::StatusOr<v1::KeyInfo> refused = store_->Revoke("configured");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("configuration file"));
  EXPECT_EQ(store_->Revoke("nobody").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KeyStoreTest, BadRequestsAreRefusedNamingTheField) {
  EXPECT_EQ(store_->Create(Request("")).status().code(), absl::StatusCode::kInvalidArgument);
  v1::CreateKeyRequest request = Request("k");
  request.add_allow("no-such-model");
  absl::StatusOr<v1::CreateKeyResponse> refused = store_->Create(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("allow[0]"));
  EXPECT_TRUE(store_->List().size() == 1u);  // Nothing was stored.
}

TEST_F(KeyStoreTest, ConfiguredKeysFollowAReload) {
  ASSERT_TRUE(policy_
                  ->ApplyConfig(Config("keys: [{name: rotated, sha256: \"" +
                                       KeyRing::Sha256Hex("new-secret") + "\"}]\n"))
                  .ok());
  EXPECT_EQ(store_->Identify("Bearer config-secret", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  auto rotated = store_->Identify("Bearer new-secret", "");
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ((*rotated)->name(), "rotated");
}

TEST_F(KeyStoreTest, AuthNoneLetsEveryoneInAnonymously) {
  ASSERT_TRUE(policy_->ApplyConfig(Config("auth: {mode: none}\n")).ok());
  auto anyone = store_->Identify("", "");
  ASSERT_TRUE(anyone.ok()) << anyone.status();
  EXPECT_EQ(*anyone, nullptr);
}

}  // namespace
}  // namespace flowork::router
