#ifndef FLOWORK_CORE_HTTP_CLIENT_H_
#define FLOWORK_CORE_HTTP_CLIENT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/http_server.h"

namespace flowork::core {

// One outgoing request. A plain value.
struct HttpClientRequest {
  std::string method = "POST";
  // http://host[:port]/path[?query] or https://...
  std::string url;
  // Host, Content-Length and Connection are set by the client.
  HttpHeaders headers;
  std::string body;
  // When not empty, connect to these IP addresses (tried in order) instead of
  // resolving the URL's host; the Host header, TLS server name and
  // certificate check still use the URL's host. Lets a caller vet the
  // addresses it resolved itself (SSRF protection) with no DNS-rebinding
  // gap. Pooled connections are kept apart per address list. Default empty.
  std::vector<std::string> connect_addresses;
  // Until the connection (and TLS handshake) is up.
  absl::Duration connect_timeout = absl::Seconds(2);
  // From the request written to the response's status line and headers.
  absl::Duration first_byte_timeout = absl::Seconds(30);
  // Between two pieces of the response body.
  absl::Duration idle_timeout = absl::Seconds(60);
  // The whole exchange.
  absl::Duration total_timeout = absl::Seconds(600);
};

// How an exchange ended.
enum class HttpCallFailure {
  kNone,     // The whole response arrived.
  kConnect,  // Refused, unreachable, DNS, TLS handshake or verification.
  kConnectTimeout,
  kFirstByteTimeout,  // Connected and sent, but no response head in time.
  kIdleTimeout,       // The body stalled.
  kTotalTimeout,
  kReset,      // The connection broke (before or during the body).
  kProtocol,   // Not valid HTTP/1.1.
  kCancelled,  // HttpCall::Cancel().
};

// "connect", "first_byte_timeout", ...
const char* HttpCallFailureName(HttpCallFailure failure);

struct HttpCallOutcome {
  HttpCallFailure failure = HttpCallFailure::kNone;
  std::string message;  // What happened, for logs and errors.
  bool ok() const { return failure == HttpCallFailure::kNone; }
};

// Receives one response as it arrives. Calls come from the client's I/O
// thread, in order, never at once: OnHead at most once, OnBody zero or more
// times (bodies decoded from chunked framing), then OnDone exactly once.
// They must not block.
class HttpResponseObserver {
 public:
  virtual ~HttpResponseObserver() = default;
  virtual void OnHead(int status, const HttpHeaders& headers) = 0;
  virtual void OnBody(std::string_view piece) = 0;
  virtual void OnDone(const HttpCallOutcome& outcome) = 0;
};

// An exchange in flight. Thread-safe.
class HttpCall {
 public:
  virtual ~HttpCall() = default;
  // Aborts the exchange (closing its connection); OnDone reports kCancelled
  // unless it already ran. Idempotent.
  virtual void Cancel() = 0;
};

// Options of an HttpClient. Every field documents its default.
struct HttpClientOptions {
  // I/O threads. Default 1. Ignored when `loops` is given.
  int threads = 1;
  // Event loops to run on, typically the HttpServer's: a request started on
  // one of them runs entirely on it, with that loop's connection pool. Not
  // owned; must outlive the client. Null: the client runs its own.
  EventLoops* loops = nullptr;
  // Idle keep-alive connections kept per origin. Default 64.
  std::size_t max_idle_per_origin = 64;
  // An idle pooled connection older than this is closed. Default 30 s.
  absl::Duration idle_connection_timeout = absl::Seconds(30);
  // Verify HTTPS certificates against the system store. Default true; turn
  // off only in tests.
  bool verify_certificates = true;
  // Extra CA certificates (PEM file) to trust besides the system's.
  std::string ca_file;
};

// An HTTP/1.1 client with keep-alive connection pools per origin, HTTP and
// HTTPS (OpenSSL, certificates and host names verified), TCP_NODELAY,
// separate connect / first-byte / idle / total timeouts and streaming
// bodies. A pooled connection is checked before reuse (one the server closed
// is dropped), and a request whose write fails on a reused connection is
// retried once on a fresh one; a request that was written is never sent
// twice. No observer call (OnDone included) runs inside Start. Thread-safe.
// The destructor cancels exchanges still in flight and waits for their
// OnDone; it must not run on one of the client's loops.
class HttpClient {
 public:
  virtual ~HttpClient() = default;

  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(const HttpClientOptions& options);

  // Starts an exchange. A malformed URL is reported through OnDone
  // (kProtocol). The observer is kept until OnDone returns.
  virtual std::shared_ptr<HttpCall> Start(HttpClientRequest request,
                                          std::shared_ptr<HttpResponseObserver> observer) = 0;
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_HTTP_CLIENT_H_
