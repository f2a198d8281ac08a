#include "flowork/router/key_ring.h"

#include "flowork/core/config_loader.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

v1::RouterConfig Config(const std::string& yaml) {
  v1::RouterConfig config;
  absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed;
  return config;
}

TEST(KeyRingTest, HashesLikeSha256sum) {
  // printf %s secret | sha256sum
  EXPECT_EQ(KeyRing::Sha256Hex("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
}

TEST(KeyRingTest, IdentifiesBearerAndXApiKeyCallersByHash) {
  const v1::RouterConfig config = Config("keys: [{name: team-a, sha256: \"" +
                                         KeyRing::Sha256Hex("secret") + "\", tenant: a}]\n");
  KeyRing ring(config);
  absl::StatusOr<const v1::ApiKey*> bearer = ring.Identify("Bearer secret", "");
  ASSERT_TRUE(bearer.ok()) << bearer.status();
  EXPECT_EQ((*bearer)->name(), "team-a");
  absl::StatusOr<const v1::ApiKey*> anthropic = ring.Identify("", "secret");
  ASSERT_TRUE(anthropic.ok());
  EXPECT_EQ((*anthropic)->tenant(), "a");
}

TEST(KeyRingTest, RefusesMissingAndUnknownKeys) {
  const v1::RouterConfig config =
      Config("keys: [{name: k, sha256: \"" + KeyRing::Sha256Hex("secret") + "\"}]\n");
  KeyRing ring(config);
  EXPECT_EQ(ring.Identify("", "").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ring.Identify("Bearer wrong", "").status().message(), "unknown API key");
  EXPECT_EQ(ring.Identify("Basic secret", "").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(KeyRingTest, AuthNoneLetsEveryoneInAnonymously) {
  const v1::RouterConfig config = Config("auth: {mode: none}\n");
  KeyRing ring(config);
  absl::StatusOr<const v1::ApiKey*> anyone = ring.Identify("", "");
  ASSERT_TRUE(anyone.ok());
  EXPECT_EQ(*anyone, nullptr);
}

TEST(KeyRingTest, AllowListNamesWhatAKeyMayUse) {
  const v1::RouterConfig config = Config("keys: [{name: team-a, sha256: \"" +
                                         KeyRing::Sha256Hex("s") + "\", allow: [chat]}]\n");
  const v1::ApiKey& key = config.keys(0);
  EXPECT_TRUE(KeyRing::CheckAllowed(&key, "chat").ok());
  EXPECT_EQ(KeyRing::CheckAllowed(&key, "gpt-4o").message(), "key team-a may not use `gpt-4o`");
  EXPECT_TRUE(KeyRing::CheckAllowed(nullptr, "gpt-4o").ok());
}

}  // namespace
}  // namespace flowork::router
