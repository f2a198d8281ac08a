// flowork-router's admin API, keys and reloads, process against process:
// the router in front of a slow-streaming flowork-mockllm.
#include <signal.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "flowork/router/key_ring.h"
#include "flowork/testing/http_client.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::router::KeyRing;
using ::flowork::testing::ClientResponse;
using ::flowork::testing::HttpCall;
using ::flowork::testing::ServerProcess;
using ::flowork::testing::StartOrAbort;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kClientKey[] = "client-secret";
constexpr char kAdminKey[] = "admin-secret";

std::string Chat(const std::string& model, bool stream) {
  return absl::StrCat(R"({"model":")", model, R"(","stream":)", stream ? "true" : "false",
                      R"(,"messages":[{"role":"user","content":"hi"}]})");
}

// The value of the first `"name":"..."` in a JSON body, or "".
std::string JsonString(const std::string& body, const std::string& name) {
  const std::string open = absl::StrCat("\"", name, "\":\"");
  size_t start = body.find(open);
  if (start == std::string::npos) return "";
  start += open.size();
  return body.substr(start, body.find('"', start) - start);
}

class AdminProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Streams of 20 deltas, 150 ms apart: long enough to reconfigure mid-way.
    mock_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--chunks", "20",
                                                     "--chunk_interval_ms", "150"}));
    dir_ = testing::MakeTempDir();
  }

  // The router's config serving `models` (all on the mock), as YAML.
  std::string Yaml(const std::vector<std::string>& models, const std::string& extra = "") const {
    std::string yaml = absl::StrCat(
        "listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\n"
        "providers:\n"
        "  - {name: mock, kind: mock, base_url: \"http://127.0.0.1:",
        mock_->http_port(), "/v1\", zone: local}\n", "models:\n");
    for (const std::string& m : models) {
      absl::StrAppend(&yaml, "  - {name: ", m,
                      ", provider: mock, upstream_model: mock-1, capabilities: [chat]}\n");
    }
    absl::StrAppend(&yaml, "keys: [{name: client, sha256: \"", KeyRing::Sha256Hex(kClientKey),
                    "\"}]\n", "admin_keys: [{name: ops, sha256: \"", KeyRing::Sha256Hex(kAdminKey),
                    "\"}]\n", "key_store: ", dir_, "/keys.db\n", extra);
    return yaml;
  }

  // The same configuration as ApplyConfig's JSON body.
  std::string ApplyBody(const std::vector<std::string>& models) const {
    std::vector<std::string> model_json;
    for (const std::string& m : models) {
      model_json.push_back(absl::StrCat(R"({"name":")", m,
                                        R"(","provider":"mock","upstream_model":"mock-1",)",
                                        R"("capabilities":["chat"]})"));
    }
    return absl::StrCat(
        R"({"config":{"listen":{"http":"127.0.0.1:0","grpc":"127.0.0.1:0"},)",
        R"("providers":[{"name":"mock","kind":"KIND_MOCK","base_url":"http://127.0.0.1:)",
        mock_->http_port(), R"(/v1","zone":"local"}],"models":[)", absl::StrJoin(model_json, ","),
        R"(],"keys":[{"name":"client","sha256":")", KeyRing::Sha256Hex(kClientKey),
        R"("}],"admin_keys":[{"name":"ops","sha256":")", KeyRing::Sha256Hex(kAdminKey),
        R"("}],"key_store":")", dir_, R"(/keys.db"}})");
  }

  void StartRouter(const std::string& yaml) {
    testing::WriteFile(config_path(), yaml);
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", config_path()}));
  }

  std::string config_path() const { return dir_ + "/router.yaml"; }

  ClientResponse Call(const std::string& method, const std::string& target, const std::string& body,
                      const std::string& key) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key.empty()) headers.emplace_back("Authorization", "Bearer " + key);
    absl::StatusOr<ClientResponse> r =
        HttpCall(router_->http_port(), method, target, body, headers, 30'000);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ClientResponse{};
  }

  // Polls GET /v1/admin/config until it reports `version`; false after 10 s.
  bool WaitForVersion(int version) {
    const std::string want = absl::StrCat("\"version\":\"", version, "\"");
    for (absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(20))) {
      if (absl::StrContains(Call("GET", "/v1/admin/config", "", kAdminKey).body, want)) {
        return true;
      }
    }
    return false;
  }

  std::optional<ServerProcess> mock_;
  std::optional<ServerProcess> router_;
  std::string dir_;
};

TEST_F(AdminProcessTest, InFlightStreamFinishesOnTheOldConfigWhileItsModelIsRemoved) {
  StartRouter(Yaml({"m1", "m2"}));
  std::atomic<bool> done{false};
  ClientResponse stream;
  std::thread streaming([&] {
    stream = Call("POST", "/v1/chat/completions", Chat("m1", true), kClientKey);
    done = true;
  });
  // The stream is in flight once its endpoint counts it.
  bool in_flight = false;
  for (absl::Time end = absl::Now() + absl::Seconds(10); !in_flight && absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(20))) {
    in_flight = absl::StrContains(Call("GET", "/v1/admin/endpoints", "", kAdminKey).body,
                                  R"("endpoint":"m1@mock","provider":"mock","model":"m1",)"
                                  R"("zone":"local","circuit":"closed","healthy":true,)"
                                  R"("inFlight":1)");
  }
  ASSERT_TRUE(in_flight) << router_->log();
  ClientResponse applied = Call("POST", "/v1/admin/config:apply", ApplyBody({"m2"}), kAdminKey);
  EXPECT_EQ(applied.status, 200) << applied.body;
  EXPECT_THAT(applied.body, HasSubstr(R"("version":"2")"));
  EXPECT_FALSE(done) << "the stream ended before the new config was applied; lengthen it";
  ClientResponse removed = Call("POST", "/v1/chat/completions", Chat("m1", false), kClientKey);
  EXPECT_EQ(removed.status, 404) << removed.body;
  streaming.join();
  EXPECT_EQ(stream.status, 200) << stream.body;
  EXPECT_EQ(stream.Header("x-flowork-endpoint"), "m1@mock");
  EXPECT_THAT(stream.body, HasSubstr("data: [DONE]"));
  EXPECT_THAT(stream.body, Not(HasSubstr("error")));
}

TEST_F(AdminProcessTest, SighupReloadsTheFileAsTheNextVersion) {
  StartRouter(Yaml({"m1", "m2"}));
  testing::WriteFile(config_path(), Yaml({"m2"}));
  router_->SendSignal(SIGHUP);
  ASSERT_TRUE(router_->WaitForLog("configuration reloaded")) << router_->log();
  EXPECT_TRUE(WaitForVersion(2));
  EXPECT_EQ(Call("POST", "/v1/chat/completions", Chat("m1", false), kClientKey).status, 404);
  // An invalid file is refused and changes nothing.
  testing::WriteFile(config_path(), Yaml({"m2"}, "routes: [{name: r, candidates: [nope]}]\n"));
  router_->SendSignal(SIGHUP);
  ASSERT_TRUE(router_->WaitForLog("reload refused")) << router_->log();
  EXPECT_TRUE(WaitForVersion(2));
}

TEST_F(AdminProcessTest, WatchedFileIsReloadedWhenItChanges) {
  const std::string watch = "reload: {watch_file: true, poll_interval: 50ms}\n";
  StartRouter(Yaml({"m1"}, watch));
  testing::WriteFile(config_path(), Yaml({"m1", "m2"}, watch));
  ASSERT_TRUE(WaitForVersion(2)) << router_->log();
  ClientResponse added = Call("POST", "/v1/chat/completions", Chat("m2", false), kClientKey);
  EXPECT_EQ(added.status, 200) << added.body;
}

TEST_F(AdminProcessTest, AdminCreatedKeyWorksUntilRevokedAndClientKeysStayOut) {
  StartRouter(Yaml({"m1"}));
  ClientResponse denied = Call("GET", "/v1/admin/config", "", kClientKey);
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_EQ(Call("GET", "/v1/admin/config", "", "").status, 401);
  ClientResponse config = Call("GET", "/v1/admin/config", "", kAdminKey);
  EXPECT_EQ(config.status, 200) << config.body;
  EXPECT_THAT(config.body, Not(HasSubstr(KeyRing::Sha256Hex(kClientKey))));
  EXPECT_THAT(config.body, HasSubstr("[REDACTED]"));

  ClientResponse created = Call("POST", "/v1/admin/keys", R"({"name":"ci"})", kAdminKey);
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string key = JsonString(created.body, "plaintext");
  ASSERT_TRUE(absl::StartsWith(key, "fk-")) << created.body;
  EXPECT_EQ(Call("POST", "/v1/chat/completions", Chat("m1", false), key).status, 200);
  EXPECT_EQ(Call("GET", "/v1/admin/keys", "", key).status, 403);
  ClientResponse revoked = Call("DELETE", "/v1/admin/keys/ci", "", kAdminKey);
  EXPECT_EQ(revoked.status, 200) << revoked.body;
  ClientResponse refused = Call("POST", "/v1/chat/completions", Chat("m1", false), key);
  EXPECT_EQ(refused.status, 401) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("revoked"));
}

}  // namespace
}  // namespace flowork
