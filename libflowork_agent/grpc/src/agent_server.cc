#include "flowork/agent/grpc/agent_server.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent_service_impl.h"
#include "api_keys.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/agent_spec_store.h"
#include "flowork/agent/grpc/grpc_llm_client.h"
#include "flowork/agent/llm_client.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/grpc/api_server.h"
#include "flowork/core/http_client.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/logging.h"
#include "flowork/router/router_stack.h"
#include "watched_task_store.h"

namespace flowork::agent {
namespace {

constexpr char kDefaultStorePath[] = "./flowork-agent.db";

class AgentServerImpl final : public AgentServer {
 public:
  ~AgentServerImpl() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Init(const v1::AgentConfig& config);
  // llm_ (and router_ when embedded) as `connection` asks.
  absl::Status ConnectRouter(const v1::RouterConnection& connection);

  std::string http_address() const override { return server_->http_address(); }
  std::string grpc_address() const override { return server_->grpc_address(); }

  void Shutdown(absl::Duration grace) override {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    if (server_ != nullptr) server_->Shutdown(grace);
    if (runtime_ != nullptr) runtime_->Shutdown();
  }

 private:
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  // Destroyed bottom-up: the server before what it serves.
  std::unique_ptr<core::EventLoops> loops_;
  std::unique_ptr<core::HttpClient> http_;
  std::unique_ptr<router::RouterStack> router_;
  std::unique_ptr<LlmClient> llm_;
  std::unique_ptr<EffectHandler> models_;
  std::unique_ptr<internal::WatchedTaskStore> store_;
  std::unique_ptr<AgentSpecStore> specs_;
  std::unique_ptr<internal::ApiKeys> keys_;
  std::unique_ptr<AgentRuntime> runtime_;
  std::unique_ptr<internal::AgentServiceImpl> service_;
  std::unique_ptr<core::ApiServer> server_;
};

absl::Status AgentServerImpl::Init(const v1::AgentConfig& config) {
  FLOWORK_ASSIGN_OR_RETURN(internal::ApiKeys keys, internal::ApiKeys::Create(config));
  keys_ = std::make_unique<internal::ApiKeys>(std::move(keys));
  FLOWORK_ASSIGN_OR_RETURN(
      core::ApiServerOptions options,
      core::ApiServerOptionsFromConfig(config.listen(), config.http_limits(),
                                       /*allow_non_loopback=*/!keys_->anonymous()));

  const std::string path =
      config.store().path().empty() ? kDefaultStorePath : config.store().path();
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<TaskStore> tasks, CreateSqliteTaskStore({.path = path}));
  store_ = std::make_unique<internal::WatchedTaskStore>(std::move(tasks));
  FLOWORK_ASSIGN_OR_RETURN(specs_, CreateSqliteAgentSpecStore(path));

  FLOWORK_ASSIGN_OR_RETURN(
      loops_, core::EventLoops::Create(static_cast<int>(config.http_limits().threads())));
  options.http.loops = loops_.get();
  FLOWORK_ASSIGN_OR_RETURN(http_, core::HttpClient::Create({.loops = loops_.get()}));
  FLOWORK_RETURN_IF_ERROR(ConnectRouter(config.router()));
  models_ = CreateModelEffectHandler(*llm_);

  AgentRuntimeOptions runtime_options;
  runtime_options.models = models_.get();
  FLOWORK_ASSIGN_OR_RETURN(runtime_, AgentRuntime::Create(runtime_options, *store_));
  service_ = std::make_unique<internal::AgentServiceImpl>(*runtime_, *store_, *specs_, *keys_);
  for (int i = 0; i < config.agents_size(); ++i) {
    FLOWORK_RETURN_IF_ERROR(
        service_->AddAgent("", config.agents(i), absl::StrCat("agents[", i, "]")));
  }
  FLOWORK_ASSIGN_OR_RETURN(std::vector<StoredAgent> stored, specs_->List());
  for (StoredAgent& agent : stored) {
    const std::string name = agent.spec.name();
    absl::Status added = service_->AddAgent(agent.tenant, std::move(agent.spec), "stored agent");
    if (!added.ok()) {
      core::Log(core::LogLevel::kWarning, "stored agent not registered",
                {{"agent", name}, {"error", added.message()}});
    }
  }
  FLOWORK_RETURN_IF_ERROR(runtime_->Start());
  FLOWORK_ASSIGN_OR_RETURN(
      server_,
      core::ApiServer::Create(options, {{service_.get(), "flowork.agent.v1.AgentService"}}));
  return absl::OkStatus();
}

absl::Status AgentServerImpl::ConnectRouter(const v1::RouterConnection& connection) {
  const int modes = (connection.target().empty() ? 0 : 1) + (connection.http().empty() ? 0 : 1) +
                    (connection.has_embedded() ? 1 : 0);
  if (modes > 1) {
    return absl::InvalidArgumentError(
        "router: set one of target (gRPC), http and embedded, not several");
  }
  std::string api_key;
  if (!connection.api_key_env().empty()) {
    const char* key = std::getenv(connection.api_key_env().c_str());
    if (key == nullptr || *key == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat("router.api_key_env: $", connection.api_key_env(), " is not set"));
    }
    api_key = key;
  }
  if (!connection.target().empty()) {
    FLOWORK_ASSIGN_OR_RETURN(
        llm_, CreateGrpcLlmClient({.target = connection.target(), .api_key = api_key}));
    return absl::OkStatus();
  }
  if (connection.has_embedded()) {
    absl::StatusOr<std::unique_ptr<router::RouterStack>> stack = router::RouterStack::Create(
        connection.embedded(), {.loops = loops_.get(), .default_key_store = ""});
    if (!stack.ok()) {
      return absl::Status(stack.status().code(),
                          absl::StrCat("router.embedded: ", stack.status().message()));
    }
    router_ = *std::move(stack);
    llm_ = CreateInProcessLlmClient(router_->gateway(), api_key);
    return absl::OkStatus();
  }
  HttpLlmClientOptions llm;
  if (!connection.http().empty()) llm.base_url = connection.http();
  llm.api_key = std::move(api_key);
  FLOWORK_ASSIGN_OR_RETURN(llm_, CreateHttpLlmClient(llm, *http_));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Create(const v1::AgentConfig& config) {
  auto server = std::make_unique<AgentServerImpl>();
  FLOWORK_RETURN_IF_ERROR(server->Init(config));
  return server;
}

}  // namespace flowork::agent
