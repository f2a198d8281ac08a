#include "flowork/router/grpc/admin_service.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "flowork/core/config_loader.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::RouterConfig Config(const std::string& extra) {
  v1::RouterConfig config;
  const std::string yaml = absl::StrCat(
      "providers: [{name: p, kind: openai, base_url: \"http://127.0.0.1:9/v1\", zone: local}]\n"
      "models: [{name: m, provider: p, capabilities: [chat]}]\n",
      extra);
  absl::Status parsed = core::ParseConfigText(yaml, "router.yaml", &config);
  EXPECT_TRUE(parsed.ok()) << parsed << "\n" << yaml;
  return config;
}

const std::string kKeys = absl::StrCat(
    "keys: [{name: client, sha256: \"", KeyRing::Sha256Hex("client-secret"), "\"}]\n",
    "admin_keys: [{name: ops, sha256: \"", KeyRing::Sha256Hex("admin-secret"), "\"}]\n");

// Answers from memory; enough to see the service delegate.
class FakeAuditLog final : public AuditLog {
 public:
  bool Append(v1::AuditEntry) override { return true; }
  bool Full() const override { return false; }
  absl::Status Flush() override { return absl::OkStatus(); }
  AuditLogStats stats() const override { return {}; }
  absl::StatusOr<v1::QueryAuditResponse> Query(const v1::QueryAuditRequest&) override {
    v1::QueryAuditResponse response;
    response.add_entries()->set_seq(7);
    return response;
  }
  absl::StatusOr<v1::GetUsageResponse> Usage(const v1::GetUsageRequest&) override {
    return v1::GetUsageResponse();
  }
  absl::StatusOr<v1::VerifyAuditResponse> Verify() override {
    v1::VerifyAuditResponse response;
    response.set_ok(true);
    return response;
  }
};

class AdminServiceTest : public ::testing::Test {
 protected:
  void Serve(const std::string& extra, AuditLog* audit) {
    const v1::RouterConfig config = Config(extra);
    auto policy = PolicyEngine::Create(config, clock_);
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *std::move(policy);
    history_ = std::make_unique<ConfigHistory>(*policy_, config);
    auto keys = KeyStore::Open({.clock = &clock_}, *policy_);
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
    service_ = std::make_unique<RouterAdminServiceImpl>(*history_, *policy_, *keys_, audit);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::RouterAdminService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // A context carrying `key` as a bearer token ("" = none).
  static std::unique_ptr<grpc::ClientContext> As(const std::string& key) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!key.empty()) context->AddMetadata("authorization", "Bearer " + key);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  // Every method of the service, called with `key`, by name.
  std::vector<std::pair<std::string, grpc::Status>> CallEveryMethod(const std::string& key) {
    std::vector<std::pair<std::string, std::function<grpc::Status(grpc::ClientContext*)>>> calls = {
        {"GetConfig",
         [&](grpc::ClientContext* c) {
           v1::GetConfigResponse r;
           return stub_->GetConfig(c, {}, &r);
         }},
        {"ValidateConfig",
         [&](grpc::ClientContext* c) {
           v1::ValidateConfigResponse r;
           return stub_->ValidateConfig(c, {}, &r);
         }},
        {"ApplyConfig",
         [&](grpc::ClientContext* c) {
           v1::ApplyConfigRequest q;
           *q.mutable_config() = *history_->Current().config;
           v1::ApplyConfigResponse r;
           return stub_->ApplyConfig(c, q, &r);
         }},
        {"RollbackConfig",
         [&](grpc::ClientContext* c) {
           v1::ApplyConfigResponse r;
           return stub_->RollbackConfig(c, {}, &r);
         }},
        {"ListEndpoints",
         [&](grpc::ClientContext* c) {
           v1::ListEndpointsResponse r;
           return stub_->ListEndpoints(c, {}, &r);
         }},
        {"GetUsage",
         [&](grpc::ClientContext* c) {
           v1::GetUsageResponse r;
           return stub_->GetUsage(c, {}, &r);
         }},
        {"QueryAudit",
         [&](grpc::ClientContext* c) {
           v1::QueryAuditResponse r;
           return stub_->QueryAudit(c, {}, &r);
         }},
        {"VerifyAudit",
         [&](grpc::ClientContext* c) {
           v1::VerifyAuditResponse r;
           return stub_->VerifyAudit(c, {}, &r);
         }},
        {"CreateKey",
         [&](grpc::ClientContext* c) {
           v1::CreateKeyRequest q;
           q.set_name(absl::StrCat("k", ++created_));
           v1::CreateKeyResponse r;
           return stub_->CreateKey(c, q, &r);
         }},
        {"RevokeKey",
         [&](grpc::ClientContext* c) {
           v1::RevokeKeyRequest q;
           q.set_name("nobody");
           v1::RevokeKeyResponse r;
           return stub_->RevokeKey(c, q, &r);
         }},
        {"ListKeys",
         [&](grpc::ClientContext* c) {
           v1::ListKeysResponse r;
           return stub_->ListKeys(c, {}, &r);
         }},
    };
    // A method added to the service must be added here too.
    EXPECT_EQ(calls.size(),
              static_cast<size_t>(google::protobuf::DescriptorPool::generated_pool()
                                      ->FindServiceByName("flowork.router.v1.RouterAdminService")
                                      ->method_count()));
    std::vector<std::pair<std::string, grpc::Status>> results;
    for (auto& [name, call] : calls) results.emplace_back(name, call(As(key).get()));
    return results;
  }

  testing::FakeClock clock_;
  std::unique_ptr<PolicyEngine> policy_;
  std::unique_ptr<ConfigHistory> history_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<RouterAdminServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::RouterAdminService::Stub> stub_;
  int created_ = 0;
};

TEST_F(AdminServiceTest, ClientKeyIsRefusedOnEveryMethod) {
  Serve(kKeys, nullptr);
  for (const auto& [method, status] : CallEveryMethod("client-secret")) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_THAT(status.error_message(), HasSubstr("client key")) << method;
  }
  EXPECT_EQ(history_->Current().version, 1u);
  EXPECT_EQ(keys_->List().size(), 1u);  // Only the configured client key.
}

TEST_F(AdminServiceTest, MissingOrUnknownKeyIsUnauthenticatedOnEveryMethod) {
  Serve(kKeys, nullptr);
  for (const std::string key : {"", "guess"}) {
    for (const auto& [method, status] : CallEveryMethod(key)) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method << " " << key;
    }
  }
}

TEST_F(AdminServiceTest, AdminKeyIsAcceptedOnEveryMethod) {
  FakeAuditLog audit;
  Serve(kKeys, &audit);
  for (const auto& [method, status] : CallEveryMethod("admin-secret")) {
    // What is left is the method's own verdict, not authentication's.
    EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
  }
}

TEST_F(AdminServiceTest, WithoutAdminKeysTheApiIsClosedUnlessAuthIsNone) {
  Serve("keys: []\n", nullptr);
  v1::GetConfigResponse config;
  grpc::Status closed = stub_->GetConfig(As("").get(), {}, &config);
  EXPECT_EQ(closed.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(closed.error_message(), HasSubstr("admin_keys"));
  server_->Shutdown();
  Serve("auth: {mode: none}\n", nullptr);
  EXPECT_TRUE(stub_->GetConfig(As("").get(), {}, &config).ok());
}

TEST_F(AdminServiceTest, GetConfigRedactsEveryKeyHash) {
  Serve(kKeys, nullptr);
  v1::GetConfigResponse response;
  ASSERT_TRUE(stub_->GetConfig(As("admin-secret").get(), {}, &response).ok());
  EXPECT_EQ(response.version(), 1u);
  ASSERT_EQ(response.config().keys_size(), 1);
  EXPECT_EQ(response.config().keys(0).sha256(), "[REDACTED]");
  ASSERT_EQ(response.config().admin_keys_size(), 1);
  EXPECT_EQ(response.config().admin_keys(0).sha256(), "[REDACTED]");
  const std::string text = response.DebugString();
  EXPECT_THAT(text, Not(HasSubstr(KeyRing::Sha256Hex("client-secret"))));
  EXPECT_THAT(text, Not(HasSubstr(KeyRing::Sha256Hex("admin-secret"))));
  // What GetConfig shows can be applied back unchanged: the keys keep working.
  v1::ApplyConfigRequest apply;
  *apply.mutable_config() = response.config();
  apply.set_expected_version(1);
  v1::ApplyConfigResponse applied;
  grpc::Status status = stub_->ApplyConfig(As("admin-secret").get(), apply, &applied);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(applied.version(), 2u);
  EXPECT_TRUE(keys_->Identify("Bearer client-secret", "").ok());
  EXPECT_TRUE(stub_->GetConfig(As("admin-secret").get(), {}, &response).ok());
}

TEST_F(AdminServiceTest, InvalidConfigIsRefusedWithTheReasonAndChangesNothing) {
  Serve(kKeys, nullptr);
  v1::ApplyConfigRequest apply;
  *apply.mutable_config() = *history_->Current().config;
  apply.mutable_config()->add_routes()->set_name("chat");
  apply.mutable_config()->mutable_routes(0)->add_candidates("gpt-x");
  v1::ApplyConfigResponse applied;
  grpc::Status refused = stub_->ApplyConfig(As("admin-secret").get(), apply, &applied);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("gpt-x"));
  EXPECT_EQ(history_->Current().version, 1u);
  v1::ValidateConfigRequest validate;
  *validate.mutable_config() = apply.config();
  v1::ValidateConfigResponse verdict;
  ASSERT_TRUE(stub_->ValidateConfig(As("admin-secret").get(), validate, &verdict).ok());
  EXPECT_FALSE(verdict.valid());
  ASSERT_EQ(verdict.problems_size(), 1);
  EXPECT_THAT(verdict.problems(0), HasSubstr("routes[0].candidates[0]"));
}

TEST_F(AdminServiceTest, CreatedKeyWorksUntilRevoked) {
  Serve(kKeys, nullptr);
  v1::CreateKeyRequest create;
  create.set_name("ci");
  v1::CreateKeyResponse created;
  ASSERT_TRUE(stub_->CreateKey(As("admin-secret").get(), create, &created).ok());
  EXPECT_TRUE(keys_->Identify("Bearer " + created.plaintext(), "").ok());
  v1::ListKeysResponse listed;
  ASSERT_TRUE(stub_->ListKeys(As("admin-secret").get(), {}, &listed).ok());
  EXPECT_EQ(listed.keys_size(), 2);
  EXPECT_THAT(listed.DebugString(), Not(HasSubstr(created.plaintext())));
  v1::RevokeKeyRequest revoke;
  revoke.set_name("ci");
  v1::RevokeKeyResponse revoked;
  ASSERT_TRUE(stub_->RevokeKey(As("admin-secret").get(), revoke, &revoked).ok());
  EXPECT_TRUE(revoked.key().revoked());
  EXPECT_EQ(keys_->Identify("Bearer " + created.plaintext(), "").status().code(),
            absl::StatusCode::kUnauthenticated);
  revoke.set_name("client");
  grpc::Status refused = stub_->RevokeKey(As("admin-secret").get(), revoke, &revoked);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(AdminServiceTest, AuditMethodsDelegateOrSayAuditIsDisabled) {
  FakeAuditLog audit;
  Serve(kKeys, &audit);
  v1::QueryAuditResponse entries;
  ASSERT_TRUE(stub_->QueryAudit(As("admin-secret").get(), {}, &entries).ok());
  ASSERT_EQ(entries.entries_size(), 1);
  EXPECT_EQ(entries.entries(0).seq(), 7u);
  v1::VerifyAuditResponse verdict;
  ASSERT_TRUE(stub_->VerifyAudit(As("admin-secret").get(), {}, &verdict).ok());
  EXPECT_TRUE(verdict.ok());
  server_->Shutdown();
  Serve(kKeys, nullptr);
  grpc::Status disabled = stub_->VerifyAudit(As("admin-secret").get(), {}, &verdict);
  EXPECT_EQ(disabled.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(disabled.error_message(), HasSubstr("audit is disabled"));
}

TEST_F(AdminServiceTest, RollbackGoesBackAVersion) {
  Serve(kKeys, nullptr);
  v1::ApplyConfigRequest apply;
  *apply.mutable_config() = *history_->Current().config;
  apply.mutable_config()->mutable_models(0)->set_name("renamed");
  v1::ApplyConfigResponse applied;
  ASSERT_TRUE(stub_->ApplyConfig(As("admin-secret").get(), apply, &applied).ok());
  ASSERT_TRUE(stub_->RollbackConfig(As("admin-secret").get(), {}, &applied).ok());
  EXPECT_EQ(applied.version(), 3u);
  EXPECT_EQ(policy_->Current()->config().models(0).name(), "m");
  v1::ListEndpointsResponse endpoints;
  ASSERT_TRUE(stub_->ListEndpoints(As("admin-secret").get(), {}, &endpoints).ok());
  ASSERT_EQ(endpoints.endpoints_size(), 1);
  EXPECT_EQ(endpoints.endpoints(0).endpoint(), "m@p");
  EXPECT_EQ(endpoints.endpoints(0).zone(), "local");
  EXPECT_EQ(endpoints.endpoints(0).circuit(), "closed");
}

}  // namespace
}  // namespace flowork::router
