// HTTP/1.1 server. One io_context per thread, each with its own SO_REUSEPORT
// acceptor (see DESIGN.md, "Performance notes"); a connection lives on the
// thread that accepted it. Response heads are written by hand in one gathered
// write instead of through Beast's serializer.

#include "flowork/core/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "flowork/core/internal/event_loops.h"
#include "flowork/core/internal/http_head.h"
#include "flowork/core/internal/http_parse.h"
#include "flowork/core/internal/steady_deadline.h"
#include "flowork/core/internal/strings.h"
#include "flowork/core/logging.h"
#include "flowork/core/status_http.h"

namespace flowork::core {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using internal::ToAbsl;
// Concrete executor types: asio's type-erased any_io_executor costs a copy
// and destroy per asynchronous operation on the request path.
using LoopExecutor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, LoopExecutor>;
using Acceptor = asio::basic_socket_acceptor<tcp, LoopExecutor>;
using Stream = beast::basic_stream<tcp, LoopExecutor>;
using Timer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, LoopExecutor>;

std::string_view HttpRequest::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view HttpRequest::query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

const std::string* HttpRequest::FindHeader(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    // Lengths first: most fields differ in length, and the compare is a call.
    if (key.size() == name.size() && absl::EqualsIgnoreCase(key, ToAbsl(name))) return &value;
  }
  return nullptr;
}

void HttpRouter::Add(std::string_view method, std::string_view path, HttpHandler& handler) {
  routes_[absl::StrCat(ToAbsl(method), " ", ToAbsl(path))] = &handler;
}

void HttpRouter::SetFallback(HttpHandler& handler) { fallback_ = &handler; }

void HttpRouter::Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) {
  // "METHOD /path", built in a buffer each thread reuses: no allocation per request.
  thread_local std::string key;
  key.assign(request.method).append(" ").append(request.path());
  auto it = routes_.find(key);
  if (it == routes_.end() && request.method == "HEAD") {
    key.assign("GET ").append(request.path());
    it = routes_.find(key);
  }
  if (it != routes_.end()) return it->second->Handle(std::move(request), std::move(writer));
  if (fallback_ != nullptr) return fallback_->Handle(std::move(request), std::move(writer));
  HttpResponse response;
  response.status = 404;
  response.headers = {{"Content-Type", "application/json"}};
  response.body = StatusToJson(absl::NotFoundError(
      absl::StrCat("no route for ", request.method, " ", ToAbsl(request.path()))));
  writer->Send(std::move(response));
}

namespace {

class ServerImpl;
class Connection;

// One event loop, its thread and its acceptor.
class Worker {
 public:
  // `keepalive` holds loops the server made itself, so the io_context lives
  // as long as any connection of this worker.
  Worker(ServerImpl& server, asio::io_context& ctx, std::shared_ptr<EventLoops> keepalive)
      : keepalive_(std::move(keepalive)), ctx_(ctx), server_(server) {}

  asio::io_context& context() { return ctx_; }
  ServerImpl& server() { return server_; }

  // Runs `fn` on this loop: inline when already on it, else posted. Dropped,
  // returning false, once the server has shut down.
  template <typename F>
  bool Run(F&& fn) {
    if (ctx_.get_executor().running_in_this_thread()) {
      fn();
      return true;
    }
    absl::MutexLock lock(&mu_);
    if (stopped_) return false;
    asio::post(ctx_, std::forward<F>(fn));
    return true;
  }

  // Refuses further posts.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }

 private:
  const std::shared_ptr<EventLoops> keepalive_;
  asio::io_context& ctx_;

 public:
  std::optional<Acceptor> acceptor;
  std::optional<Timer> accept_retry;  // Backs off when out of descriptors.
  // Connections of this loop; touched only on its thread.
  absl::flat_hash_set<std::shared_ptr<Connection>> connections;
  bool draining = false;  // On this loop's thread only.
  // Requests whose handler is still at work, by connection and sequence:
  // they start watching for the client leaving on the next tick of
  // `watch_timer` (DeferWatch). On this loop's thread only.
  std::vector<std::pair<std::weak_ptr<Connection>, uint64_t>> watch_queue;
  std::vector<std::pair<std::weak_ptr<Connection>, uint64_t>> watch_due;
  std::optional<Timer> watch_timer;
  bool watch_armed = false;

 private:
  ServerImpl& server_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

class ServerImpl final : public HttpServer {
 public:
  ServerImpl(const HttpServerOptions& options, HttpHandler& handler)
      : options_(options), handler_(handler) {}
  ~ServerImpl() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Start(const tcp::endpoint& endpoint, EventLoops* loops);
  int port() const override { return port_; }
  void Shutdown(absl::Duration grace) override;

  const HttpServerOptions& options() const { return options_; }
  HttpHandler& handler() { return handler_; }

  void ConnectionOpened() {
    absl::MutexLock lock(&mu_);
    ++open_connections_;
  }
  void ConnectionClosed() {
    absl::MutexLock lock(&mu_);
    --open_connections_;
  }
  void CountResponse(int status);

 private:
  void Accept(const std::shared_ptr<Worker>& worker);

  const HttpServerOptions options_;
  // The response counter of each status code, looked up once: the registry
  // lookup takes a lock and builds a label map, too much for every response.
  std::array<std::atomic<Counter*>, 600> response_counters_{};
  HttpHandler& handler_;
  int port_ = 0;
  bool started_ = false;
  std::shared_ptr<EventLoops> own_loops_;  // When the options gave none.
  std::vector<std::shared_ptr<Worker>> workers_;
  absl::Mutex shutdown_mu_;
  absl::Mutex mu_;
  int open_connections_ ABSL_GUARDED_BY(mu_) = 0;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

std::string ResponseHead(int status, const HttpHeaders& headers, bool keep_alive,
                         std::optional<size_t> content_length) {
  std::string_view reason = http::obsolete_reason(http::int_to_status(status));
  if (reason == "<unknown-status>") reason = "Unknown";
  using namespace std::string_view_literals;
  constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n\r\n"sv;
  constexpr std::string_view kClose = "Connection: close\r\n\r\n"sv;
  constexpr std::string_view kChunked = "Transfer-Encoding: chunked\r\n"sv;
  constexpr std::string_view kLength = "Content-Length: "sv;
  std::string head;
  // Status line, the fields, framing and connection: one allocation.
  internal::HeadWriter out(head, "HTTP/1.1 "sv.size() + internal::HeadWriter::kMaxDecimal + 1 +
                                     reason.size() + 2 + internal::FieldLinesSize(headers) +
                                     kLength.size() + internal::HeadWriter::kMaxDecimal + 2 +
                                     kKeepAlive.size());
  out.Add("HTTP/1.1 "sv)
      .Decimal(static_cast<uint64_t>(status))
      .Add(" "sv)
      .Add(reason)
      .Add("\r\n"sv);
  for (const auto& [name, value] : headers) {
    if (!internal::IsFramingField(name)) out.Field(name, value);
  }
  if (content_length.has_value()) {
    out.Add(kLength).Decimal(*content_length).Add("\r\n"sv);
  } else {
    out.Add(kChunked);
  }
  out.Add(keep_alive ? kKeepAlive : kClose);
  out.Finish();
  return head;
}

// Reads a request into an HttpRequest: framing, limits and keep_alive() are
// internal::HttpParser's; the head's strings are moved, not copied.
class RequestParser {
 public:
  RequestParser(size_t header_limit, uint64_t body_limit)
      : parser_(internal::HttpParser::Kind::kRequest) {
    parser_.set_header_limit(header_limit);
    parser_.set_body_limit(body_limit);
  }

  HttpRequest& request() { return request_; }
  bool head_request() const { return request_.method == "HEAD"; }
  bool is_done() const { return parser_.is_done(); }
  bool keep_alive() const { return parser_.keep_alive(); }
  internal::HttpParser& framing() { return parser_; }

  // Feeds what `buffer` holds to the parser until the head (`header_only`)
  // or the whole request is in: no error then, need_more when the buffer ran
  // out first, else the parser's error.
  beast::error_code Parse(beast::flat_buffer& buffer, bool header_only) {
    if (!parser_.is_header_done()) {
      if (beast::error_code ec = internal::ParseHead(parser_, buffer)) return ec;
      request_.method = std::move(parser_.method());
      request_.target = std::move(parser_.target());
      request_.headers = std::move(parser_.fields());
      if (const std::optional<uint64_t> length = parser_.content_length()) {
        request_.body.reserve(*length);  // Within the body limit: checked.
      }
    }
    beast::error_code ec;
    while (!header_only && !parser_.is_done()) {
      std::string_view body;
      const size_t used = parser_.Put(internal::BufferedBytes(buffer), body, ec);
      request_.body.append(body);
      buffer.consume(used);
      if (ec) return ec;
    }
    return ec;
  }

 private:
  internal::HttpParser parser_;
  HttpRequest request_;
};

class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Socket socket, std::shared_ptr<Worker> worker)
      : worker_(std::move(worker)),
        server_(worker_->server()),
        stream_(std::move(socket)),
        read_timer_(stream_.socket().get_executor()) {
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    // Writes are tried at once (Flush); a full socket must say so, not block.
    stream_.socket().non_blocking(true, ec);
    auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_address_ = absl::StrCat(remote.address().to_string(), ":", remote.port());
  }

  Worker& worker() { return *worker_; }

  void Start() {
    server_.ConnectionOpened();
    ReadHeader();
  }

  // Server drain: close now when idle, else after the current response.
  void Drain() {
    keep_alive_ = false;
    if (state_ == State::kReading) Close();
  }

  void Close() {
    if (state_ == State::kClosed) return;
    const bool response_pending = state_ == State::kResponding;
    state_ = State::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    read_timer_.cancel();
    server_.ConnectionClosed();
    auto self = shared_from_this();
    worker_->connections.erase(self);
    if (response_pending && on_cancel_) {
      if (on_cancel_closed_) on_cancel_closed_->store(true, std::memory_order_relaxed);
      std::move(on_cancel_)();
    }
    on_cancel_ = nullptr;
    on_cancel_closed_ = nullptr;
    NotifyWritten(outbox_callbacks_, false);
    NotifyWritten(writing_callbacks_, false);
  }

  // The writer's operations, run on this connection's loop. `seq` names the
  // request they belong to; anything for an earlier request is ignored.
  void Send(uint64_t seq, HttpResponse response) {
    if (!Current(seq) || response_started_) return;
    response_started_ = true;
    server_.CountResponse(response.status);
    outbox_.push_back(
        ResponseHead(response.status, response.headers, keep_alive_, response.body.size()));
    if (!response.body.empty() && !head_request_) outbox_.push_back(std::move(response.body));
    response_complete_ = true;
    Flush();
  }

  void StartStream(uint64_t seq, int status, const HttpHeaders& headers) {
    if (!Current(seq) || response_started_) return;
    response_started_ = true;
    server_.CountResponse(status);
    outbox_.push_back(ResponseHead(status, headers, keep_alive_, std::nullopt));
    Flush();
  }

  // `on_written` (may be empty) learns whether the chunk reached the socket.
  void Write(uint64_t seq, std::string chunk, absl::AnyInvocable<void(bool) &&> on_written) {
    if (!Current(seq) || !response_started_ || response_complete_) {
      if (on_written) std::move(on_written)(false);
      return;
    }
    if (!chunk.empty() && !head_request_) {
      outbox_.push_back(absl::StrCat(absl::Hex(chunk.size()), "\r\n"));
      chunk.append("\r\n");
      outbox_.push_back(std::move(chunk));
    }
    if (on_written) outbox_callbacks_.push_back(std::move(on_written));
    Flush();
  }

  void Finish(uint64_t seq) {
    if (!Current(seq) || !response_started_ || response_complete_) return;
    if (!head_request_) outbox_.push_back("0\r\n\r\n");
    response_complete_ = true;
    Flush();
  }

  // The writer was destroyed; complete whatever it left undone.
  void Abandon(uint64_t seq) {
    if (!Current(seq) || response_complete_) return;
    if (!response_started_) {
      Send(seq, {.status = 500,
                 .headers = {{"Content-Type", "application/json"}},
                 .body = StatusToJson(absl::InternalError("the handler gave no response"))});
      return;
    }
    // Cut, after what was already written reaches the client: a client must
    // never take a partial stream for a whole one.
    cut_when_flushed_ = true;
    Flush();
  }

  // `closed` (the writer's flag) is set before `callback` runs. Kept apart
  // from the callback rather than wrapped with it: no closure to allocate.
  void SetOnCancel(uint64_t seq, std::shared_ptr<std::atomic<bool>> closed,
                   absl::AnyInvocable<void() &&> callback) {
    if (seq != seq_) return;
    if (state_ == State::kClosed) {
      closed->store(true, std::memory_order_relaxed);
      std::move(callback)();
      return;
    }
    if (state_ == State::kResponding && !response_complete_) {
      on_cancel_closed_ = std::move(closed);
      on_cancel_ = std::move(callback);
    }
  }

  bool IsOpen(uint64_t seq) const { return seq == seq_ && state_ != State::kClosed; }

  // Request `seq` has been waiting for its handler since the last tick.
  void StartWatch(uint64_t seq) {
    if (Current(seq) && !response_complete_) WatchForDisconnect();
  }

 private:
  enum class State { kReading, kResponding, kClosed };

  bool Current(uint64_t seq) const { return seq == seq_ && state_ == State::kResponding; }

  // Queues request `seq` for a disconnect watch on the worker's next tick.
  void DeferWatch(const std::shared_ptr<Worker>& worker, uint64_t seq);

  // Reads the next request: its head within idle_timeout, with its body.
  // The parser is fed by hand from single socket reads: Beast's composed
  // read operations cost several layers of handlers (and a timer) per read.
  void ReadHeader() {
    state_ = State::kReading;
    parser_.emplace(server_.options().max_header_bytes, server_.options().max_body_bytes);
    SetReadDeadline();
    ContinueHeader();
  }

  void ContinueHeader() {
    const beast::error_code ec = parser_->Parse(buffer_, /*header_only=*/true);
    if (ec != http::error::need_more) return OnHeader(ec);
    ReadMore(&Connection::ContinueHeader);
  }

  void ContinueBody() {
    const beast::error_code ec = parser_->Parse(buffer_, /*header_only=*/false);
    if (ec == http::error::need_more) return ReadMore(&Connection::ContinueBody);
    if (ec) return OnReadError(ec);
    OnRequest();
  }

  // One read from the socket into `buffer_`, then `next` (which parses);
  // end of stream and errors go to OnReadError, as Beast's read reports them.
  void ReadMore(void (Connection::*next)()) {
    stream_.socket().async_read_some(
        buffer_.prepare(internal::ReadRoom(buffer_)),
        [self = shared_from_this(), next](beast::error_code ec, size_t n) {
          if (self->state_ == State::kClosed) return;
          self->buffer_.commit(n);
          if (ec) ec = internal::ReadError(self->parser_->framing(), ec);
          if (ec) return self->OnReadError(ec);
          ((*self).*next)();
        });
  }

  // The request must be read by now + idle_timeout. One timer per connection,
  // not re-armed per request: armed for an earlier request's deadline, it
  // fires early and waits again for the deadline of the read then pending.
  void SetReadDeadline() {
    read_deadline_ =
        internal::SteadyDeadline(internal::SteadyClock::now(), server_.options().idle_timeout);
    if (!read_timer_armed_ && read_deadline_ != internal::SteadyTime::max()) ArmReadTimer();
  }

  void ArmReadTimer() {
    read_timer_armed_ = true;
    read_timer_.expires_at(read_deadline_);
    read_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->read_timer_armed_ = false;
      // Not reading (responding): the next request's read arms it again.
      if (ec || self->state_ != State::kReading) return;
      if (internal::SteadyClock::now() < self->read_deadline_) return self->ArmReadTimer();
      // Timed out: closed, like Beast's stream timeout, so no later read or
      // write on it can outlive the deadline (the read may be between two
      // operations now).
      self->Close();
    });
  }

  void OnHeader(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    const std::string* expect = parser_->request().FindHeader("expect");
    if (!parser_->is_done() && expect != nullptr &&
        absl::EqualsIgnoreCase(*expect, "100-continue")) {
      // Answer 100 Continue so clients (curl) send the body without waiting.
      auto continue_line = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*continue_line),
                        [self = shared_from_this(), continue_line](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (state_ == State::kClosed) return;
    // A small request usually arrives whole, its body read along with its
    // head: ContinueBody parses it without another read.
    ContinueBody();
  }

  void OnReadError(beast::error_code ec) {
    int status = 0;
    std::string message;
    if (ec == http::error::header_limit) {
      status = 431;
      message =
          absl::StrCat("request header larger than ", server_.options().max_header_bytes, " bytes");
    } else if (ec == http::error::body_limit) {
      status = 413;
      message =
          absl::StrCat("request body larger than ", server_.options().max_body_bytes, " bytes");
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      status = 400;
      message = absl::StrCat("malformed HTTP request: ", ec.message());
    }
    if (status == 0) return Close();  // EOF, reset, timeout: nothing to answer.
    keep_alive_ = false;
    BeginResponse();
    Send(seq_, {.status = status,
                .headers = {{"Content-Type", "application/json"}},
                .body = StatusToJson(absl::Status(status == 413 || status == 431
                                                      ? absl::StatusCode::kResourceExhausted
                                                      : absl::StatusCode::kInvalidArgument,
                                                  message))});
  }

  void BeginResponse() {
    cut_when_flushed_ = false;
    state_ = State::kResponding;
    ++seq_;
    response_started_ = false;
    response_complete_ = false;
  }

  void OnRequest();

  // While the handler works, a pending read notices the client leaving (EOF,
  // reset) so OnCancel can abort the work. Bytes that arrive meanwhile (a
  // pipelined request) are kept for the next parse; past a header's worth the
  // watch stops.
  void WatchForDisconnect() {
    if (watching_ || state_ != State::kResponding) return;
    if (buffer_.size() >= server_.options().max_header_bytes) return;
    watching_ = true;
    // No deadline: the watch may start while a write (with its own) is in
    // flight, and must not inherit that one.
    stream_.expires_never();
    stream_.async_read_some(
        buffer_.prepare(1024),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnWatch(ec, n); });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watching_ = false;
    if (state_ == State::kClosed) return;
    if (!ec) buffer_.commit(n);
    if (read_after_watch_) {  // The response finished meanwhile.
      read_after_watch_ = false;
      return ReadHeader();
    }
    // EOF or reset: the client left. A client that only half-closed after
    // sending looks the same; like nginx, treat it as gone (fires OnCancel).
    if (ec) return Close();
    WatchForDisconnect();
  }

  static void NotifyWritten(std::vector<absl::AnyInvocable<void(bool) &&>>& callbacks, bool ok) {
    auto pending = std::move(callbacks);
    callbacks.clear();
    for (auto& callback : pending) std::move(callback)(ok);
  }

  void Flush() {
    if (state_ == State::kClosed || write_in_flight_) return;
    if (outbox_.empty()) {
      NotifyWritten(outbox_callbacks_, true);  // Nothing to send (HEAD).
      if (cut_when_flushed_) return Close();
      if (response_complete_ && state_ == State::kResponding) OnResponseDone();
      return;
    }
    writing_.clear();
    std::swap(writing_, outbox_);
    writing_callbacks_ = std::move(outbox_callbacks_);
    outbox_callbacks_.clear();
    buffers_.clear();
    for (const std::string& piece : writing_) buffers_.push_back(asio::buffer(piece));
    write_in_flight_ = true;
    if (writing_callbacks_.empty()) {
      // Most responses fit the socket's buffer: write them now, and skip the
      // round through the event queue an asynchronous write costs. (Not
      // when callbacks wait on the write: they must not run inside Write.)
      beast::error_code ec;
      const size_t total = asio::buffer_size(buffers_);
      const size_t written = stream_.socket().write_some(buffers_, ec);
      if (!ec && written == total) return Written(ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        return Written(ec);
      }
      DropFront(buffers_, ec ? 0 : written);  // The rest goes the usual way.
    }
    stream_.expires_after(absl::ToChronoNanoseconds(server_.options().idle_timeout));
    asio::async_write(stream_, buffers_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->Written(ec);
    });
  }

  // The bytes of `writing_` are out (or the write failed).
  void Written(beast::error_code ec) {
    write_in_flight_ = false;
    if (state_ == State::kClosed) return;
    if (ec) return Close();
    // The write's timeout must not fire on the watch read
    // while the handler takes its time.
    stream_.expires_never();
    NotifyWritten(writing_callbacks_, true);
    if (state_ == State::kClosed) return;  // A callback closed it.
    Flush();
  }

  // Drops the first `n` bytes of `buffers`.
  static void DropFront(std::vector<asio::const_buffer>& buffers, size_t n) {
    size_t first = 0;
    while (first < buffers.size() && n >= buffers[first].size()) n -= buffers[first++].size();
    buffers.erase(buffers.begin(), buffers.begin() + first);
    if (!buffers.empty() && n > 0) buffers.front() += n;
  }

  void OnResponseDone() {
    on_cancel_ = nullptr;
    on_cancel_closed_ = nullptr;
    if (keep_alive_ && !worker_->draining) {
      if (!watching_ && buffer_.size() > 0) {
        // A pipelined request is already here: handle it from the event
        // loop, not inside this response's Send (where the handler that
        // answered may hold a lock, and a long pipeline would recurse).
        asio::post(stream_.get_executor(), [self = shared_from_this()] {
          if (self->state_ != State::kClosed) self->ReadHeader();
        });
        return;
      }
      if (!watching_) return ReadHeader();
      read_after_watch_ = true;  // OnWatch reads on once the watch is cancelled.
      beast::error_code ec;
      stream_.socket().cancel(ec);
      return;
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    Close();
  }

  std::shared_ptr<Worker> worker_;  // Keeps the io_context alive.
  ServerImpl& server_;
  Stream stream_;
  // The read deadline (see SetReadDeadline).
  Timer read_timer_;
  internal::SteadyTime read_deadline_;
  bool read_timer_armed_ = false;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::string remote_address_;
  State state_ = State::kReading;
  bool keep_alive_ = true;
  uint64_t seq_ = 0;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool write_in_flight_ = false;
  bool watching_ = false;
  bool read_after_watch_ = false;
  bool head_request_ = false;      // HEAD: heads only, never a body.
  bool cut_when_flushed_ = false;  // The writer left mid-stream.
  // Vectors, not deques: cleared and swapped, they keep their capacity, so a
  // keep-alive connection stops allocating for its queues.
  std::vector<std::string> outbox_;
  std::vector<std::string> writing_;
  // Called once the chunks queued with them are written (or dropped).
  std::vector<absl::AnyInvocable<void(bool) &&>> outbox_callbacks_;
  std::vector<absl::AnyInvocable<void(bool) &&>> writing_callbacks_;
  std::vector<asio::const_buffer> buffers_;
  absl::AnyInvocable<void() &&> on_cancel_;
  std::shared_ptr<std::atomic<bool>> on_cancel_closed_;  // Set before on_cancel_ runs.
};

class ResponseWriterImpl final : public HttpResponseWriter {
 public:
  ResponseWriterImpl(std::shared_ptr<Connection> connection, uint64_t seq)
      : connection_(std::move(connection)), seq_(seq) {}

  ~ResponseWriterImpl() override {
    if (done_) return;
    connection_->worker().Run([c = connection_, seq = seq_] { c->Abandon(seq); });
  }

  void Send(HttpResponse response) override {
    done_ = true;
    connection_->worker().Run([c = connection_, seq = seq_, r = std::move(response)]() mutable {
      c->Send(seq, std::move(r));
    });
  }

  void StartStream(int status, HttpHeaders headers) override {
    connection_->worker().Run([c = connection_, seq = seq_, status, h = std::move(headers)] {
      c->StartStream(seq, status, h);
    });
  }

  bool Write(std::string chunk) override {
    if (closed_.load(std::memory_order_relaxed)) return false;
    const bool queued = connection_->worker().Run([this_closed = closed_ptr_, c = connection_,
                                                   seq = seq_, chunk = std::move(chunk)]() mutable {
      if (!c->IsOpen(seq)) {
        this_closed->store(true, std::memory_order_relaxed);
        return;
      }
      c->Write(seq, std::move(chunk), nullptr);
    });
    // Not queued: the server has shut down, so the connection is gone.
    if (!queued) closed_.store(true, std::memory_order_relaxed);
    return !closed_.load(std::memory_order_relaxed);
  }

  void WriteAndNotify(std::string chunk, absl::AnyInvocable<void(bool) &&> on_written) override {
    auto shared = std::make_shared<absl::AnyInvocable<void(bool) &&>>(std::move(on_written));
    const bool queued =
        connection_->worker().Run([closed = closed_ptr_, c = connection_, seq = seq_,
                                   chunk = std::move(chunk), shared]() mutable {
          c->Write(seq, std::move(chunk), [closed, shared](bool ok) {
            if (!ok) closed->store(true, std::memory_order_relaxed);
            std::move (*shared)(ok);
          });
        });
    if (!queued) {
      closed_.store(true, std::memory_order_relaxed);
      std::move (*shared)(false);
    }
  }

  void Finish() override {
    done_ = true;
    connection_->worker().Run([c = connection_, seq = seq_] { c->Finish(seq); });
  }

  void OnCancel(absl::AnyInvocable<void() &&> callback) override {
    connection_->worker().Run(
        [closed = closed_ptr_, c = connection_, seq = seq_, cb = std::move(callback)]() mutable {
          c->SetOnCancel(seq, std::move(closed), std::move(cb));
        });
  }

 private:
  std::shared_ptr<Connection> connection_;
  const uint64_t seq_;
  bool done_ = false;
  // Shared with posted work so a write can report a closed client later.
  std::shared_ptr<std::atomic<bool>> closed_ptr_ = std::make_shared<std::atomic<bool>>(false);
  std::atomic<bool>& closed_ = *closed_ptr_;
};

void Connection::OnRequest() {
  keep_alive_ = keep_alive_ && parser_->keep_alive() && !worker_->draining;
  head_request_ = parser_->head_request();
  // Handed over straight from the parser: a local copy would be one more
  // move of every field.
  HttpRequest& request = parser_->request();
  request.remote_address = remote_address_;
  BeginResponse();
  auto writer = std::make_unique<ResponseWriterImpl>(shared_from_this(), seq_);
  server_.handler().Handle(std::move(request), std::move(writer));
  // A handler that answered inline needs no watch; one still working gets
  // one if it is still at work on the next tick.
  if (state_ == State::kResponding && !response_complete_) DeferWatch(worker_, seq_);
}

// Most requests are answered within a few milliseconds: starting their
// watch read at once would cost a system call each (a read that finds
// nothing) for a disconnect that is noticed as well a tick later.
constexpr absl::Duration kWatchDelay = absl::Milliseconds(20);

// Starts the watch of every request queued on `worker`.
void StartQueuedWatches(Worker& worker) {
  worker.watch_due.swap(worker.watch_queue);
  for (auto& [weak, seq] : worker.watch_due) {
    if (std::shared_ptr<Connection> c = weak.lock()) c->StartWatch(seq);
  }
  worker.watch_due.clear();  // Keeps its capacity for the next tick.
}

// Starts the worker's watch tick unless it runs already.
void ArmWatchTimer(const std::shared_ptr<Worker>& worker) {
  if (worker->watch_armed) return;
  worker->watch_armed = true;
  if (!worker->watch_timer) worker->watch_timer.emplace(worker->context().get_executor());
  worker->watch_timer->expires_after(absl::ToChronoNanoseconds(kWatchDelay));
  worker->watch_timer->async_wait([worker](beast::error_code ec) {
    worker->watch_armed = false;
    if (ec) return;  // Cancelled: the server is shutting down.
    StartQueuedWatches(*worker);
    if (!worker->watch_queue.empty()) ArmWatchTimer(worker);
  });
}

void Connection::DeferWatch(const std::shared_ptr<Worker>& worker, uint64_t seq) {
  worker->watch_queue.emplace_back(weak_from_this(), seq);
  ArmWatchTimer(worker);
}

void ServerImpl::CountResponse(int status) {
  if (options_.metrics == nullptr) return;
  if (status < 0 || status >= static_cast<int>(response_counters_.size())) status = 0;
  std::atomic<Counter*>& slot = response_counters_[status];
  Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Racing threads get the same object from the registry.
    counter = &options_.metrics->GetCounter("flowork_http_requests_total",
                                            "HTTP requests answered, by status code.",
                                            {{"code", absl::StrCat(status)}});
    slot.store(counter, std::memory_order_release);
  }
  counter->Increment();
}

absl::Status ServerImpl::Start(const tcp::endpoint& endpoint, EventLoops* loops) {
  // The first acceptor binds the configured port; the others share the one it
  // got (which differs when the configured port is 0).
  port_ = endpoint.port();
  if (port_ != 0) {
    // SO_REUSEPORT would let us share a port another server already holds
    // (and split its traffic): make sure nobody has it first.
    asio::io_context probe_context;
    tcp::acceptor probe(probe_context);
    beast::error_code ec;
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", endpoint.address().to_string(), ":", port_, ": ", ec.message()));
    }
  }
  if (loops == nullptr) {
    absl::StatusOr<std::unique_ptr<EventLoops>> made = EventLoops::Create(options_.threads);
    if (!made.ok()) return made.status();
    own_loops_ = *std::move(made);
    loops = own_loops_.get();
  }
  for (int i = 0; i < loops->size(); ++i) {
    auto worker = std::make_shared<Worker>(*this, loops->internal().context(i), own_loops_);
    beast::error_code ec;
    tcp::endpoint bind_to(endpoint.address(), static_cast<uint16_t>(port_));
    auto& acceptor = worker->acceptor.emplace(worker->context().get_executor());
    acceptor.open(bind_to.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
          0) {
        ec = beast::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) acceptor.bind(bind_to, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", bind_to.address().to_string(),
                                                 ":", bind_to.port(), ": ", ec.message()));
    }
    port_ = acceptor.local_endpoint().port();
    workers_.push_back(worker);
  }
  started_ = true;
  for (auto& worker : workers_) {
    asio::post(worker->context(), [this, worker] { Accept(worker); });
  }
  return absl::OkStatus();
}

void ServerImpl::Accept(const std::shared_ptr<Worker>& worker) {
  worker->acceptor->async_accept([this, worker](beast::error_code ec, Socket socket) {
    if (!worker->acceptor->is_open() || worker->draining) return;
    if (!ec) {
      auto connection = std::make_shared<Connection>(std::move(socket), worker);
      worker->connections.insert(connection);
      connection->Start();
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
               ec == asio::error::no_memory) {
      // Out of descriptors: back off instead of spinning on accept.
      Log(LogLevel::kWarning, "http accept failed; retrying in 100ms", {{"error", ec.message()}});
      worker->accept_retry.emplace(worker->context().get_executor(),
                                   std::chrono::milliseconds(100));
      worker->accept_retry->async_wait([this, worker](beast::error_code wait_ec) {
        if (!wait_ec && worker->acceptor->is_open() && !worker->draining) Accept(worker);
      });
      return;
    }
    Accept(worker);
  });
}

void ServerImpl::Shutdown(absl::Duration grace) {
  // Held throughout, so a second caller returns only once the server is down.
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (!started_) return;  // Start failed before any loop ran.
  for (auto& worker : workers_) {
    worker->Run([w = worker] {
      w->draining = true;
      beast::error_code ec;
      w->acceptor->close(ec);
      if (w->accept_retry) w->accept_retry->cancel();
      // Requests still waiting for their watch get it now: a client leaving
      // during the grace period must still cancel its handler.
      if (w->watch_timer) w->watch_timer->cancel();
      StartQueuedWatches(*w);
      auto connections = w->connections;  // Drain may erase.
      for (auto& c : connections) c->Drain();
    });
  }
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](int* open) { return *open == 0; }, &open_connections_),
                         grace);
  }
  // Close what is left, on each loop, and wait until every loop has done so:
  // after that nothing of this server runs there any more.
  std::vector<std::shared_ptr<absl::Notification>> closed;
  for (auto& worker : workers_) {
    auto done = std::make_shared<absl::Notification>();
    closed.push_back(done);
    if (!worker->Run([w = worker, done] {
          auto connections = w->connections;
          for (auto& c : connections) c->Close();
          w->acceptor.reset();
          w->accept_retry.reset();
          w->watch_timer.reset();
          w->watch_queue.clear();
          done->Notify();
        })) {
      done->Notify();
    }
    worker->Stop();
  }
  for (auto& done : closed) done->WaitForNotification();
  if (own_loops_) own_loops_->internal().Drain();
}

absl::StatusOr<tcp::endpoint> ParseEndpoint(std::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", ToAbsl(address), "\": expected host:port"));
  }
  std::string host(address.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  int port = 0;
  if (!absl::SimpleAtoi(ToAbsl(address.substr(colon + 1)), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", ToAbsl(address), "\": bad port"));
  }
  beast::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", ToAbsl(address), "\": \"", host, "\" is not an IP address"));
  }
  return tcp::endpoint(ip, static_cast<uint16_t>(port));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(const HttpServerOptions& options,
                                                               HttpHandler& handler) {
  absl::StatusOr<tcp::endpoint> endpoint = ParseEndpoint(options.address);
  if (!endpoint.ok()) return endpoint.status();
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads: must be >= 0, got ", options.threads));
  }
  auto server = std::make_unique<ServerImpl>(options, handler);
  absl::Status started = server->Start(*endpoint, options.loops);
  if (!started.ok()) return started;
  return server;
}

}  // namespace flowork::core
