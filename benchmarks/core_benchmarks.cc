// Core building blocks on the request path: HTTP round trips through the
// server, path-template matching, and config parsing.
#include <thread>

#include "benchmark/benchmark.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "flowork/core/config_loader.h"
#include "flowork/core/http_server.h"
#include "flowork/router/v1/config.pb.h"
#include "path_template.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

class Ok final : public flowork::core::HttpHandler {
 public:
  void Handle(flowork::core::HttpRequest,
              std::unique_ptr<flowork::core::HttpResponseWriter> writer) override {
    writer->Send({.status = 200, .headers = {{"Content-Type", "text/plain"}}, .body = "ok\n"});
  }
};

// One keep-alive connection, one request at a time: the server's per-request
// latency on loopback, client included.
void BM_HttpServer_KeepAliveRoundTrip(benchmark::State& state) {
  Ok handler;
  auto server =
      flowork::core::HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, handler);
  if (!server.ok()) return state.SkipWithError("server did not start");
  asio::io_context ctx;
  beast::tcp_stream stream(ctx);
  stream.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>((*server)->port())});
  stream.socket().set_option(asio::ip::tcp::no_delay(true));
  http::request<http::empty_body> request(http::verb::get, "/healthz", 11);
  request.set(http::field::host, "127.0.0.1");
  beast::flat_buffer buffer;
  for (auto _ : state) {
    http::write(stream, request);
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    benchmark::DoNotOptimize(response);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpServer_KeepAliveRoundTrip)->UseRealTime();

// The floor under the one above: a blocking thread answering a canned
// response on a raw socket, no HTTP parsing. The difference is the server.
void BM_Loopback_RawSocketRoundTrip(benchmark::State& state) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  std::thread echo([&acceptor] {
    asio::ip::tcp::socket peer = acceptor.accept();
    peer.set_option(asio::ip::tcp::no_delay(true));
    static constexpr char kResponse[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    char buffer[4096];
    beast::error_code ec;
    while (peer.read_some(asio::buffer(buffer), ec) > 0 && !ec) {
      asio::write(peer, asio::buffer(kResponse, sizeof(kResponse) - 1), ec);
    }
  });
  asio::ip::tcp::socket client(ctx);
  client.connect(acceptor.local_endpoint());
  client.set_option(asio::ip::tcp::no_delay(true));
  static constexpr char kRequest[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  char buffer[4096];
  for (auto _ : state) {
    asio::write(client, asio::buffer(kRequest, sizeof(kRequest) - 1));
    benchmark::DoNotOptimize(client.read_some(asio::buffer(buffer)));
  }
  client.close();
  echo.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Loopback_RawSocketRoundTrip)->UseRealTime();

void BM_PathTemplate_Match(benchmark::State& state) {
  auto path = flowork::core::PathTemplate::Parse("/v1/{parent=shelves/*}/books/{book}:publish");
  for (auto _ : state) {
    auto bindings = path->Match("/v1/shelves/s-1/books/b-42:publish");
    benchmark::DoNotOptimize(bindings);
  }
}
BENCHMARK(BM_PathTemplate_Match);

constexpr char kRouterYaml[] = R"yaml(
listen: {http: 127.0.0.1:2402, grpc: 127.0.0.1:2403}
providers:
  - {name: local-vllm, kind: openai, base_url: "http://127.0.0.1:8000/v1", zone: local,
     timeouts: {connect: 2s, first_byte: 30s, idle: 60s, total: 600s}}
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", zone: remote}
models:
  - {name: llama-3.1-8b, provider: local-vllm, context_window: 131072,
     capabilities: [chat, tools, json, prefill], price: {input_per_mtok: 0, output_per_mtok: 0}}
  - {name: gpt-4o-mini, provider: openai, context_window: 128000,
     capabilities: [chat, tools, json, vision],
     price: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}}
routes:
  - {name: chat, candidates: [llama-3.1-8b, gpt-4o-mini], objective: least_latency,
     retry: {same_endpoint: 1, backoff: 250ms, max_wait: 5s}, fallback: {max_attempts: 3}}
)yaml";

void BM_ConfigLoader_ParseRouterConfig(benchmark::State& state) {
  for (auto _ : state) {
    flowork::router::v1::RouterConfig config;
    absl::Status status = flowork::core::ParseConfigText(kRouterYaml, "router.yaml", &config);
    if (!status.ok()) return state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(config);
  }
}
BENCHMARK(BM_ConfigLoader_ParseRouterConfig);

}  // namespace
