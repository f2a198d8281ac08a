#include "flowork/testing/http_client.h"

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace flowork::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string ClientResponse::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

absl::StatusOr<ClientResponse> HttpCall(int port, const std::string& method,
                                        const std::string& target, const std::string& body,
                                        std::vector<std::pair<std::string, std::string>> headers,
                                        int timeout_ms) {
  asio::io_context ctx;
  beast::tcp_stream stream(ctx);
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  beast::error_code ec;
  stream.connect(
      asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)),
      ec);
  if (ec) return absl::UnavailableError("connect: " + ec.message());
  http::request<http::string_body> request(http::string_to_verb(method), target, 11);
  request.set(http::field::host, "127.0.0.1");
  for (auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    request.prepare_payload();
  }
  // Beast's synchronous calls ignore tcp_stream's timer; use async + run_for.
  ClientResponse result;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::async_write(stream, request, [&](beast::error_code e, size_t) {
    if (e) {
      ec = e;
      return;
    }
    http::async_read(stream, buffer, parser, [&](beast::error_code e2, size_t) { ec = e2; });
  });
  ctx.run_for(std::chrono::milliseconds(timeout_ms));
  if (!ctx.stopped()) return absl::DeadlineExceededError("no response in time");
  if (ec) return absl::UnavailableError("http: " + ec.message());
  auto& response = parser.get();
  result.status = response.result_int();
  for (const auto& field : response) {
    result.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  result.body = response.body();
  return result;
}

}  // namespace flowork::testing
