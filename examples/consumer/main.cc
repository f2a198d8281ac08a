// Links Flowork as an installed package: parses a router config, serves the
// router's gRPC/JSON API on a free loopback port, calls it once over HTTP,
// and shuts down.
#include <cstdio>

#include "flowork/agent/agent_registry.h"
#include "flowork/core/config_loader.h"
#include "flowork/core/grpc/api_server.h"
#include "flowork/core/http_client.h"
#include "flowork/router/catalog.h"
#include "flowork/router/gateway.h"
#include "flowork/router/grpc/router_service.h"
#include "flowork/router/policy.h"

int main() {
  flowork::router::v1::RouterConfig config;
  absl::Status parsed = flowork::core::ParseConfigText(R"yaml(
providers: [{name: local, kind: openai, base_url: "http://127.0.0.1:8000/v1"}]
models: [{name: small, provider: local, capabilities: [chat]}]
)yaml",
                                                       "inline.yaml", &config);
  if (!parsed.ok()) {
    std::fprintf(stderr, "config: %s\n", std::string(parsed.message()).c_str());
    return 1;
  }
  auto policy = flowork::router::PolicyEngine::Create(config, flowork::core::Clock::Real());
  if (!policy.ok()) {
    std::fprintf(stderr, "policy: %s\n", std::string(policy.status().message()).c_str());
    return 1;
  }
  auto upstreams = flowork::core::HttpClient::Create({});
  if (!upstreams.ok()) {
    std::fprintf(stderr, "client: %s\n", std::string(upstreams.status().message()).c_str());
    return 1;
  }
  auto gateway = flowork::router::Gateway::Create(**policy, **upstreams);
  if (!gateway.ok()) {
    std::fprintf(stderr, "gateway: %s\n", std::string(gateway.status().message()).c_str());
    return 1;
  }
  flowork::router::RouterServiceImpl service(**policy, **gateway);
  flowork::core::ApiServerOptions options;
  options.http.address = "127.0.0.1:0";
  options.http.threads = 1;
  auto server =
      flowork::core::ApiServer::Create(options, {{&service, "flowork.router.v1.RouterService"}});
  if (!server.ok()) {
    std::fprintf(stderr, "server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  auto agents = flowork::agent::AgentRegistry::Create({});
  std::printf("consumer: %d models, %zu agents, http=%s grpc=%s\n",
              (*policy)->Current()->catalog().List({}).models_size(), (*agents)->List({}).size(),
              (*server)->http_address().c_str(), (*server)->grpc_address().c_str());
  (*server)->Shutdown(absl::Seconds(1));
  std::printf("consumer: ok\n");
  return 0;
}
