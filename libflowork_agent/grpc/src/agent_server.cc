#include "flowork/agent/grpc/agent_server.h"

#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent_service_impl.h"
#include "agent_tooling.h"
#include "api_keys.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/agent_spec_store.h"
#include "flowork/agent/grpc/grpc_llm_client.h"
#include "flowork/agent/llm_client.h"
#include "flowork/agent/mcp_client.h"
#include "flowork/agent/remote_work_hub.h"
#include "flowork/agent/sqlite_memory_store.h"
#include "flowork/agent/sqlite_session_store.h"
#include "flowork/agent/sqlite_task_store.h"
#include "flowork/agent/tool_sources.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/grpc/api_server.h"
#include "flowork/core/http_client.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/logging.h"
#include "flowork/router/router_stack.h"
#include "watched_task_store.h"
#include "worker_service_impl.h"

namespace flowork::agent {
namespace {

constexpr char kDefaultStorePath[] = "./flowork-agent.db";

class AgentServerImpl final : public AgentServer {
 public:
  ~AgentServerImpl() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Init(const v1::AgentConfig& config);
  // The session, memory and pinned stores (in the task store's file `path`)
  // and the tool registry with the memory tools and the configured ones.
  absl::Status InitTooling(const v1::AgentConfig& config, const std::string& path);
  // llm_ (and router_ when embedded) as `connection` asks.
  // `store_path`: the task store's file; an embedded router's default audit
  // trail goes next to it.
  absl::Status ConnectRouter(const v1::RouterConnection& connection, const std::string& store_path);

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
  // Served on /metrics: the HTTP server's series and an embedded router's.
  std::unique_ptr<core::MetricsRegistry> metrics_ = core::MetricsRegistry::Create();
  std::unique_ptr<core::EventLoops> loops_;
  std::unique_ptr<core::HttpClient> http_;
  std::unique_ptr<router::RouterStack> router_;
  std::unique_ptr<LlmClient> llm_;
  // Model answers as they stream, for live event streams.
  TaskProgress progress_;
  std::unique_ptr<EffectHandler> models_;
  std::unique_ptr<RemoteWorkHub> remote_;
  std::unique_ptr<internal::WatchedTaskStore> store_;
  std::unique_ptr<AgentSpecStore> specs_;
  std::unique_ptr<internal::ApiKeys> keys_;
  // Tools, memory and sessions (see InitTooling); the MCP servers before the
  // registry calling them.
  std::unique_ptr<SessionStore> sessions_;
  std::unique_ptr<PinnedMemoryStore> pinned_;
  std::unique_ptr<MemoryStore> memory_;
  std::vector<std::unique_ptr<McpClient>> mcp_;
  std::unique_ptr<ToolRegistry> tools_;
  internal::SpecPolicies policies_;
  std::unique_ptr<AgentRuntime> runtime_;
  std::unique_ptr<internal::AgentServiceImpl> service_;
  std::unique_ptr<internal::WorkerServiceImpl> workers_;
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
  options.metrics = metrics_.get();
  FLOWORK_ASSIGN_OR_RETURN(http_, core::HttpClient::Create({.loops = loops_.get()}));
  FLOWORK_RETURN_IF_ERROR(ConnectRouter(config.router(), path));
  models_ = CreateModelEffectHandler(*llm_, &progress_);

  FLOWORK_RETURN_IF_ERROR(InitTooling(config, path));

  RemoteWorkHubOptions remote;
  const auto duration = [](const google::protobuf::Duration& d, absl::Duration fallback) {
    const absl::Duration value = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
    return value == absl::ZeroDuration() ? fallback : value;
  };
  remote.lease_ttl = duration(config.workers().lease_ttl(), remote.lease_ttl);
  remote.max_lease_wait = duration(config.workers().max_lease_wait(), remote.max_lease_wait);
  if (remote.lease_ttl < absl::ZeroDuration() || remote.max_lease_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("workers: lease_ttl and max_lease_wait must be positive");
  }
  FLOWORK_ASSIGN_OR_RETURN(remote_, RemoteWorkHub::Create(remote));

  AgentRuntimeOptions runtime_options;
  runtime_options.models = models_.get();
  runtime_options.tools = tools_.get();
  runtime_options.approvals = &policies_;
  runtime_options.sessions = sessions_.get();
  runtime_options.remote = remote_.get();
  FLOWORK_ASSIGN_OR_RETURN(runtime_, AgentRuntime::Create(runtime_options, *store_));
  service_ = std::make_unique<internal::AgentServiceImpl>(
      *runtime_, *store_, *specs_, *keys_,
      internal::AgentTooling{.tools = tools_.get(),
                             .policies = &policies_,
                             .pinned = pinned_.get(),
                             .memory = memory_.get(),
                             .sessions = sessions_.get()},
      &progress_);
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
  workers_ = std::make_unique<internal::WorkerServiceImpl>(*remote_, *keys_);
  FLOWORK_ASSIGN_OR_RETURN(
      server_,
      core::ApiServer::Create(options, {{service_.get(), "flowork.agent.v1.AgentService"},
                                        {workers_.get(), "flowork.agent.v1.WorkerService"}}));
  return absl::OkStatus();
}

absl::Status AgentServerImpl::InitTooling(const v1::AgentConfig& config, const std::string& path) {
  FLOWORK_ASSIGN_OR_RETURN(sessions_, CreateSqliteSessionStore({.path = path}));
  FLOWORK_ASSIGN_OR_RETURN(pinned_, CreateSqlitePinnedMemoryStore({.path = path}));
  FLOWORK_ASSIGN_OR_RETURN(memory_, CreateSqliteMemoryStore({.path = path}));
  FLOWORK_ASSIGN_OR_RETURN(tools_, ToolRegistry::Create({.http_client = http_.get()}));
  FLOWORK_RETURN_IF_ERROR(RegisterMemoryTools(*tools_, *memory_));
  FLOWORK_RETURN_IF_ERROR(RegisterPinnedMemoryTools(
      *tools_, *pinned_, [this](std::string_view agent) { return policies_.Memory(agent); }));
  const v1::ToolsConfig& tools = config.tools();
  for (int i = 0; i < tools.http_size(); ++i) {
    absl::Status registered = tools_->RegisterHttp(tools.http(i));
    if (!registered.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tools.http[", i, "]: ", registered.message()));
    }
  }
  for (int i = 0; i < tools.mcp_size(); ++i) {
    const v1::McpServerConfig& server = tools.mcp(i);
    const std::string where = absl::StrCat("tools.mcp[", i, "]");
    if (server.name().empty() || server.command().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": name and command are required"));
    }
    McpServerOptions options;
    options.command = server.command();
    options.args.assign(server.args().begin(), server.args().end());
    for (const auto& [name, value] : server.env()) options.env[name] = value;
    absl::StatusOr<std::unique_ptr<McpClient>> client = McpClient::Start(options);
    if (!client.ok()) {
      return absl::Status(client.status().code(), absl::StrCat(where, " (", server.name(),
                                                               "): ", client.status().message()));
    }
    mcp_.push_back(*std::move(client));
    absl::Status registered = RegisterMcpTools(*tools_, *mcp_.back(), server.name());
    if (!registered.ok()) {
      return absl::Status(registered.code(),
                          absl::StrCat(where, " (", server.name(), "): ", registered.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status AgentServerImpl::ConnectRouter(const v1::RouterConnection& connection,
                                            const std::string& store_path) {
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
    // The embedded router's audit trail sits next to the task store
    // (agent.db -> agent-router-audit.db), never in a file a flowork-router
    // started in the same directory would also write.
    // (A store with no file of its own, ":memory:", leaves the router's default.)
    absl::string_view base = store_path;
    absl::ConsumeSuffix(&base, ".db");
    const bool has_file = !store_path.empty() && store_path[0] != ':';
    absl::StatusOr<std::unique_ptr<router::RouterStack>> stack = router::RouterStack::Create(
        connection.embedded(),
        {.loops = loops_.get(),
         .default_key_store = "",
         .default_audit_path = has_file ? absl::StrCat(base, "-router-audit.db") : "",
         .metrics = metrics_.get()});
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
