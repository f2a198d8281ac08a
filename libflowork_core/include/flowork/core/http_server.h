#ifndef FLOWORK_CORE_HTTP_SERVER_H_
#define FLOWORK_CORE_HTTP_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/metrics.h"

namespace flowork::core {

// Header name/value pairs in order. Names compare case-insensitively.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One parsed HTTP/1.1 request. A plain value; the handler owns it.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // Path and query as sent: "/v1/x?a=b".
  HttpHeaders headers;
  std::string body;
  std::string remote_address;  // "127.0.0.1:51234"

  // The target before '?'.
  std::string_view path() const;
  // The target after '?', or "".
  std::string_view query() const;
  // The first header of that name (case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
};

// A whole response.
struct HttpResponse {
  int status = 200;
  HttpHeaders headers;  // Content-Length and Connection are set by the server.
  std::string body;
};

// Answers one request, either whole (Send) or streamed (StartStream, Write...,
// Finish). Thread-safe: any thread may call it; the connection's own thread
// does the I/O. Exactly one of Send / StartStream is called, once. Destroying
// the writer before the response is complete answers 500 (nothing sent yet)
// or cuts the connection (stream started) so a client never takes a partial
// stream for a whole one.
class HttpResponseWriter {
 public:
  virtual ~HttpResponseWriter() = default;

  // Sends a complete response.
  virtual void Send(HttpResponse response) = 0;

  // Sends status and headers now and the body as chunks
  // (Transfer-Encoding: chunked), each Write flushed as it comes.
  virtual void StartStream(int status, HttpHeaders headers) = 0;

  // Queues one chunk of a started stream. Returns false once the client is
  // gone (the chunk is dropped): stop producing.
  virtual bool Write(std::string chunk) = 0;

  // Like Write, then calls `on_written` once, on the connection's thread:
  // true when the chunk has been handed to the socket, false when it was
  // dropped because the client is gone. A producer that waits for it before
  // making the next chunk never lets a slow client pile data up in memory.
  virtual void WriteAndNotify(std::string chunk, absl::AnyInvocable<void(bool) &&> on_written) = 0;

  // Ends a started stream.
  virtual void Finish() = 0;

  // Called at most once, on the connection's thread, when the client goes
  // away (or the server shuts down) before the response completed. Set it
  // before starting work that should be aborted then.
  virtual void OnCancel(absl::AnyInvocable<void() &&> callback) = 0;
};

// Serves requests. Handle runs on an I/O thread and must not block: long work
// hands the writer to another thread or an asynchronous call and returns.
// Implementations must be thread-safe (every I/O thread calls Handle).
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) = 0;
};

// Routes exact (method, path) pairs to handlers and everything else to a
// fallback (404 JSON error when none). HEAD is served by the GET route when
// it has none of its own (the server sends no body for HEAD). Configure before serving; Handle is
// then read-only and thread-safe. Handlers are not owned and must outlive it.
class HttpRouter final : public HttpHandler {
 public:
  void Add(std::string_view method, std::string_view path, HttpHandler& handler);
  void SetFallback(HttpHandler& handler);
  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override;

 private:
  absl::flat_hash_map<std::string, HttpHandler*> routes_;  // "GET /healthz"
  HttpHandler* fallback_ = nullptr;
};

// Options of an HttpServer. Every field documents its default.
struct HttpServerOptions {
  // "host:port" to listen on; port 0 picks a free port. Default loopback.
  std::string address = "127.0.0.1:0";
  // I/O threads, each with its own event loop and SO_REUSEPORT acceptor.
  // 0 = the number of cores. Ignored when `loops` is given.
  int threads = 0;
  // Event loops to run on, one acceptor each, shared with an HttpClient so
  // proxied requests stay on one thread. Not owned: must outlive the server
  // and every writer it handed out. Null: the server runs its own loops.
  EventLoops* loops = nullptr;
  // Largest header block accepted (431 beyond). Default 16 KiB.
  std::size_t max_header_bytes = 16 * 1024;
  // Largest body accepted (413 beyond). Default 8 MiB.
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  // How long a connection may wait for (the rest of) a request, or for the
  // client to take written bytes, before it is closed. Default 60 s.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Where request counts go (flowork_http_requests_total{code}); may be null.
  // Not owned; must outlive the server.
  MetricsRegistry* metrics = nullptr;
};

// An HTTP/1.1 server on Boost.Beast: keep-alive, TCP_NODELAY, bounded
// headers/bodies, idle timeouts, chunked streaming, graceful drain. A client
// that closes its connection (or, as nginx also reads it, half-closes) while
// a handler is still working cancels the request (OnCancel). Thread-safe.
class HttpServer {
 public:
  virtual ~HttpServer() = default;

  // Binds and starts serving on background threads. `handler` is not owned
  // and must outlive the server. kInvalidArgument for a bad address,
  // kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(const HttpServerOptions& options,
                                                            HttpHandler& handler);

  // The port actually bound (useful with port 0).
  virtual int port() const = 0;

  // Stops accepting, closes idle connections, lets responses in progress
  // finish for up to `grace`, then closes the rest and joins the threads.
  // Idempotent: a concurrent second call waits for the first. Must not be
  // called from a handler (an I/O thread). The destructor calls it with a
  // zero grace.
  virtual void Shutdown(absl::Duration grace) = 0;
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_HTTP_SERVER_H_
