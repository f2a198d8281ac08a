// HTTP/1.1 client: per-loop keep-alive pools keyed by origin; one exchange
// is a small state machine on its loop (connect -> write -> head -> body).

#include "flowork/core/http_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "boost/container/small_vector.hpp"
#include "flowork/core/internal/event_loops.h"
#include "flowork/core/internal/http_head.h"
#include "flowork/core/internal/http_parse.h"
#include "flowork/core/internal/steady_deadline.h"
#include "flowork/core/internal/strings.h"
#include "flowork/core/internal/wall_clock.h"

namespace flowork::core {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using internal::ToAbsl;

const char* HttpCallFailureName(HttpCallFailure failure) {
  switch (failure) {
    case HttpCallFailure::kNone:
      return "none";
    case HttpCallFailure::kConnect:
      return "connect";
    case HttpCallFailure::kConnectTimeout:
      return "connect_timeout";
    case HttpCallFailure::kFirstByteTimeout:
      return "first_byte_timeout";
    case HttpCallFailure::kIdleTimeout:
      return "idle_timeout";
    case HttpCallFailure::kTotalTimeout:
      return "total_timeout";
    case HttpCallFailure::kReset:
      return "reset";
    case HttpCallFailure::kProtocol:
      return "protocol";
    case HttpCallFailure::kCancelled:
      return "cancelled";
  }
  return "none";
}

namespace {

// An answer's head may be this long: clouds send many fields (cookies,
// tracing).
constexpr size_t kMaxResponseHead = 64 * 1024;

struct Url {
  bool tls = false;
  std::string host;
  uint16_t port = 80;
  std::string target;  // Path and query.
  std::string origin;  // "https://host:port", the pool key.
};

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  Url out;
  // Schemes are case-insensitive (RFC 3986).
  if (absl::StartsWithIgnoreCase(url, "https://")) {
    url.remove_prefix(8);
    out.tls = true;
    out.port = 443;
  } else if (absl::StartsWithIgnoreCase(url, "http://")) {
    url.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("url \"", url, "\": not http:// or https://"));
  }
  size_t slash = url.find('/');
  absl::string_view authority = url.substr(0, slash);
  out.target = slash == absl::string_view::npos ? "/" : std::string(url.substr(slash));
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("url: unclosed '['");
    port_text = authority.substr(close + 1);
    authority = authority.substr(0, close);
    if (!port_text.empty() && !absl::ConsumePrefix(&port_text, ":")) {
      return absl::InvalidArgumentError("url: junk after ']'");
    }
  } else if (size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    port_text = authority.substr(colon + 1);
    authority = authority.substr(0, colon);
  }
  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("url: bad port \"", port_text, "\""));
    }
    out.port = static_cast<uint16_t>(port);
  }
  if (authority.empty()) return absl::InvalidArgumentError("url: no host");
  out.host = std::string(authority);
  out.origin = absl::StrCat(out.tls ? "https://" : "http://", out.host, ":", out.port);
  return out;
}

// Concrete executor types: asio's type-erased any_io_executor costs a copy
// and destroy per asynchronous operation on the request path.
using LoopExecutor = asio::io_context::executor_type;
using PlainStream = beast::basic_stream<tcp, LoopExecutor>;
using TlsStream = beast::ssl_stream<PlainStream>;
using Timer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, LoopExecutor>;
using Resolver = asio::ip::basic_resolver<tcp, LoopExecutor>;
using internal::SteadyClock;
using internal::SteadyDeadline;
using internal::SteadyTime;

// One upstream connection, plain or TLS.
class Connection {
 public:
  Connection(asio::io_context& ctx, ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(ctx.get_executor(), *tls);
    } else {
      plain_.emplace(ctx.get_executor());
    }
  }

  PlainStream& tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  TlsStream* tls() { return tls_ ? &*tls_ : nullptr; }

  // Runs `f` with the stream to read and write: TLS or plain.
  template <typename F>
  void Visit(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  void Close() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().close();
  }

  beast::flat_buffer buffer;
  absl::Time idle_since;
  bool non_blocking = false;  // The socket is in non-blocking mode (set once).

 private:
  std::optional<PlainStream> plain_;
  std::optional<TlsStream> tls_;
};

class ClientImpl;
class Exchange;

// One event loop, its pool and the deadlines of its exchanges.
struct Loop {
  explicit Loop(asio::io_context& context)
      : ctx(context), prune(context.get_executor()), deadline_timer(context.get_executor()) {}
  asio::io_context& ctx;
  // Idle connections by origin, newest last. Touched on this loop only.
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  // Closes idle connections past their time, also for origins no longer used.
  Timer prune;
  bool prune_armed = false;

  // The exchanges on this loop that have a deadline, and one timer for all
  // of them (ArmDeadlines, CheckDeadlines): a timer per exchange cost a timer made, armed
  // and cancelled per request, each under asio's locks, and a handler run.
  // Each watched exchange is here until it finishes (its watch_slot_ says
  // where). The timer fires no later than the earliest time any of them
  // must be checked. Touched on this loop only.
  std::vector<Exchange*> watched;
  Timer deadline_timer;
  SteadyTime deadline_at = SteadyTime::max();  // When deadline_timer fires; max: not armed.
  uint64_t deadline_generation = 0;            // Tells a superseded wait's handler apart.

  // Every exchange started on this loop and not finished (its live_slot_
  // says where), for the client's destructor to cancel; and whether that
  // has begun (an exchange starting after it fails at once). Touched on
  // this loop only: no lock per request.
  std::vector<Exchange*> live;
  bool stopping = false;

  // URLs parsed before, by their text: a request to a known URL parses
  // nothing and allocates nothing for it. Emptied when it reaches
  // kMaxCachedUrls (callers with ever new URLs cannot grow it without bound).
  // Touched on this loop only.
  absl::flat_hash_map<std::string, std::shared_ptr<const Url>> urls;
  static constexpr size_t kMaxCachedUrls = 256;
};

// `text` parsed, from `loop`'s cache when it was parsed before.
absl::StatusOr<std::shared_ptr<const Url>> ParsedUrl(Loop& loop, const std::string& text) {
  if (auto it = loop.urls.find(text); it != loop.urls.end()) return it->second;
  absl::StatusOr<Url> parsed = ParseUrl(text);
  if (!parsed.ok()) return parsed.status();
  if (loop.urls.size() >= Loop::kMaxCachedUrls) loop.urls.clear();
  auto url = std::make_shared<const Url>(*std::move(parsed));
  loop.urls.emplace(text, url);
  return url;
}

// Makes sure `loop`'s deadline timer fires by `at`.
void ArmDeadlines(Loop& loop, SteadyTime at);
// Checks every exchange watched on `loop`, and arms the timer for the next.
void CheckDeadlines(Loop& loop);

class Exchange final : public HttpCall, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(ClientImpl& client, Loop& loop, HttpClientRequest request,
           std::shared_ptr<HttpResponseObserver> observer)
      : client_(client),
        loop_(loop),
        request_(std::move(request)),
        observer_(std::move(observer)) {}
  ~Exchange() override {
    Unwatch();
    Unlist();  // Only if its loop dropped its handlers unrun: it finished otherwise.
  }

  void Start();
  // Start, run inside HttpClient::Start: a failure found at once finishes
  // the exchange from the loop's queue, never inside the caller's Start.
  void StartInCaller() {
    in_caller_ = true;
    absl::Cleanup out_of_caller = [this] { in_caller_ = false; };
    Start();
  }
  void Cancel() override;
  // Cancel's work, on the exchange's loop.
  void CancelNow();

  // For CheckDeadlines, at `now`: whether a deadline passed (noted as the
  // failure to report). CutShort then ends the connection or resolution
  // in progress, whose handler fails the exchange.
  bool DeadlinePassed(SteadyTime now);
  void CutShort() {
    if (connection_) connection_->Close();
    if (resolver_) resolver_->cancel();
  }
  // The latest time the exchange must be checked again, given `now`.
  SteadyTime NextCheck(SteadyTime now) const {
    return std::min({total_deadline_, phase_deadline_, EarliestPhaseDeadline(now)});
  }

 private:
  enum class Phase { kConnect, kFirstByte, kBody };

  void Acquire();
  void Connect();
  void ConnectTo(std::vector<tcp::endpoint> endpoints);
  void Send();
  void ReadHead();
  void ContinueHead();
  void ReadBody();
  // One read from the connection into its buffer, then `next` (which
  // parses); failures go to Fail, described as `reading`.
  void ReadMore(void (Exchange::*next)(), const char* reading);
  // Deadlines (total, and the phase's: first byte, idle) are checked by the
  // loop's timer (CheckDeadlines) from Watch to Unwatch.
  void Watch(SteadyTime now);
  void Unwatch();
  // No phase deadline set from now on can be sooner than `now` + the
  // shorter of first_byte and idle (at least 1 ms: a zero timeout must not
  // make the timer spin).
  SteadyTime EarliestPhaseDeadline(SteadyTime now) const {
    return SteadyDeadline(now, std::max(absl::Milliseconds(1), std::min(request_.first_byte_timeout,
                                                                        request_.idle_timeout)));
  }
  void Fail(HttpCallFailure failure, std::string message);
  void Finish(HttpCallOutcome outcome);
  // A loop's lists of exchanges (watched, live), each exchange noting its
  // place (`slot`) so that leaving one is O(1): the last one there takes it.
  void Enlist(std::vector<Exchange*>& list, size_t Exchange::*slot);
  void Delist(std::vector<Exchange*>& list, size_t Exchange::*slot);
  void Unlist() { Delist(loop_.live, &Exchange::live_slot_); }
  HttpCallFailure Classify(const beast::error_code& ec) const;

  ClientImpl& client_;
  Loop& loop_;
  HttpClientRequest request_;
  std::shared_ptr<HttpResponseObserver> observer_;
  std::shared_ptr<const Url> url_;  // Shared with the loop's cache.
  SteadyTime total_deadline_;
  SteadyTime phase_deadline_ = SteadyTime::max();  // First byte, then idle.
  static constexpr size_t kNotListed = static_cast<size_t>(-1);
  size_t watch_slot_ = kNotListed;  // In loop_.watched.
  size_t live_slot_ = kNotListed;   // In loop_.live.
  // Made when a name must be resolved (not for a pooled connection: making
  // one looks up asio's resolver service under a lock).
  std::optional<Resolver> resolver_;
  std::vector<tcp::endpoint> endpoints_;  // Being connected to.
  std::unique_ptr<Connection> connection_;
  bool reused_ = false;
  bool retried_ = false;
  bool head_seen_ = false;
  bool written_ = false;  // The whole request reached the socket.
  bool done_ = false;
  bool in_caller_ = false;  // Inside StartInCaller.
  Phase phase_ = Phase::kConnect;
  std::optional<HttpCallFailure> forced_;  // Cancel or total timeout.
  std::string head_;                       // Serialized request head.
  // The head and the body: kept inline, so a request allocates no vector.
  boost::container::small_vector<asio::const_buffer, 2> out_;
  std::optional<internal::HttpParser> parser_;
};

class ClientImpl final : public HttpClient {
 public:
  explicit ClientImpl(const HttpClientOptions& options) : options_(options) {}
  ~ClientImpl() override {
    // Cancel what is in flight, on each exchange's own loop, and wait for
    // it: exchanges refer to us.
    stopping_.store(true);
    for (auto& loop : loops_) {
      asio::post(loop->ctx, [l = loop.get()] {
        l->stopping = true;
        std::vector<std::shared_ptr<Exchange>> live;
        live.reserve(l->live.size());
        for (Exchange* exchange : l->live) live.push_back(exchange->shared_from_this());
        for (auto& exchange : live) exchange->CancelNow();
      });
    }
    {
      absl::MutexLock lock(&live_mu_);
      while (live_.load() != 0) all_finished_.Wait(&live_mu_);
    }
    // Close the pooled connections on their own loops, then stop our loops.
    std::vector<std::shared_ptr<absl::Notification>> cleared;
    for (auto& loop : loops_) {
      auto done = std::make_shared<absl::Notification>();
      cleared.push_back(done);
      asio::post(loop->ctx, [l = loop.get(), done] {
        l->prune.cancel();  // Queues the cancelled waits, which touch the loop...
        l->deadline_timer.cancel();
        l->idle.clear();
        // ...so say done only after it ran.
        asio::post(l->ctx, [done] { done->Notify(); });
      });
    }
    for (auto& done : cleared) done->WaitForNotification();
    if (own_loops_) own_loops_->internal().Drain();
  }

  absl::Status Init() {
    tls_.emplace(ssl::context::tls_client);
    beast::error_code ec;
    if (options_.verify_certificates) {
      tls_->set_default_verify_paths(ec);
      if (!options_.ca_file.empty()) tls_->load_verify_file(options_.ca_file, ec);
      if (ec) return absl::InvalidArgumentError(absl::StrCat("TLS trust store: ", ec.message()));
      tls_->set_verify_mode(ssl::verify_peer);
    } else {
      tls_->set_verify_mode(ssl::verify_none);
    }
    event_loops_ = options_.loops;
    if (event_loops_ == nullptr) {
      absl::StatusOr<std::unique_ptr<EventLoops>> made =
          EventLoops::Create(std::max(1, options_.threads));
      if (!made.ok()) return made.status();
      own_loops_ = *std::move(made);
      event_loops_ = own_loops_.get();
    }
    for (int i = 0; i < event_loops_->size(); ++i) {
      loops_.push_back(std::make_unique<Loop>(event_loops_->internal().context(i)));
    }
    return absl::OkStatus();
  }

  std::shared_ptr<HttpCall> Start(HttpClientRequest request,
                                  std::shared_ptr<HttpResponseObserver> observer) override {
    // On one of our loops already (a server handler sharing them): stay on
    // it, no hop to another thread.
    const int current = event_loops_->CurrentIndex();
    const size_t index = current >= 0
                             ? static_cast<size_t>(current)
                             : next_loop_.fetch_add(1, std::memory_order_relaxed) % loops_.size();
    Loop& loop = *loops_[index];
    auto exchange =
        std::make_shared<Exchange>(*this, loop, std::move(request), std::move(observer));
    live_.fetch_add(1);  // A counter, not a registry under a lock: only the destructor waits.
    // On our own loop with nothing else in flight there: start now, which
    // saves a turn of the event loop (a queued handler makes the loop poll
    // for events once more first). With other exchanges in flight, through
    // the queue: starting inline then was measured to lose 4-5% of
    // throughput at 64 connections, as requests no longer batch per loop
    // turn. Either way OnDone never runs inside Start, where the caller may
    // hold a lock.
    if (current >= 0 && loop.live.empty()) {
      exchange->StartInCaller();
    } else {
      asio::post(loop.ctx, [exchange] { exchange->Start(); });
    }
    return exchange;
  }

  // An exchange finished (its OnDone ran). Runs on the exchange's loop,
  // which is what makes it safe: the destructor returns only after a task
  // on every loop ran, so no Finished is still touching this object then.
  void Finished() {
    // The last one to finish while the client stops wakes the destructor.
    // (It set stopping_ before reading live_: one finishing after that read
    // sees stopping_ set.)
    if (live_.fetch_sub(1) == 1 && stopping_.load()) {
      absl::MutexLock lock(&live_mu_);
      all_finished_.SignalAll();
    }
  }

  const HttpClientOptions& options() const { return options_; }
  ssl::context& tls() { return *tls_; }

  // Pool operations; on the loop's thread.
  std::unique_ptr<Connection> TakeIdle(Loop& loop, const std::string& origin) {
    auto it = loop.idle.find(origin);
    if (it == loop.idle.end()) return nullptr;
    const absl::Time now = internal::WallNow();
    while (!it->second.empty()) {
      std::unique_ptr<Connection> c = std::move(it->second.back());
      it->second.pop_back();
      const absl::Duration idle = now - c->idle_since;
      if (idle < options_.idle_connection_timeout && c->tcp().socket().is_open() &&
          (idle < kUncheckedIdle || StillIdle(*c))) {
        return c;
      }
      c->Close();
    }
    return nullptr;
  }

  // A connection idle for less than this is reused without StillIdle's
  // system call (a tenth of the router's time per request on loopback).
  // Servers close idle connections after seconds, not milliseconds; one
  // closed meanwhile anyway (a restart) fails like any connection the server
  // drops mid-request, and the router's failover handles that.
  static constexpr absl::Duration kUncheckedIdle = absl::Milliseconds(2);

  // An idle connection must have nothing to read: EOF means the server
  // closed it, and stray bytes mean it is out of step. Either way, drop it.
  static bool StillIdle(Connection& c) {
    char byte;
    const ssize_t n = ::recv(c.tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void PutIdle(Loop& loop, const std::string& origin, std::unique_ptr<Connection> c) {
    auto& idle = loop.idle[origin];
    if (idle.size() >= options_.max_idle_per_origin) return c->Close();
    c->tcp().expires_never();
    c->idle_since = internal::WallNow();
    idle.push_back(std::move(c));
    ArmPrune(loop);
  }

  // Runs once per idle timeout while the loop has idle connections.
  void ArmPrune(Loop& loop) {
    if (loop.prune_armed) return;
    loop.prune_armed = true;
    loop.prune.expires_after(absl::ToChronoNanoseconds(options_.idle_connection_timeout));
    loop.prune.async_wait([this, &loop](beast::error_code ec) {
      loop.prune_armed = false;
      if (ec) return;  // Cancelled: the client is going away.
      const absl::Time now = internal::WallNow();
      bool any_left = false;
      for (auto it = loop.idle.begin(); it != loop.idle.end();) {
        auto& connections = it->second;
        std::erase_if(connections, [&](std::unique_ptr<Connection>& c) {
          if (now - c->idle_since < options_.idle_connection_timeout) return false;
          c->Close();
          return true;
        });
        any_left = any_left || !connections.empty();
        if (connections.empty()) {
          loop.idle.erase(it++);
        } else {
          ++it;
        }
      }
      if (any_left) ArmPrune(loop);
    });
  }

 private:
  const HttpClientOptions options_;
  std::optional<ssl::context> tls_;
  std::unique_ptr<EventLoops> own_loops_;  // When the options gave none.
  EventLoops* event_loops_ = nullptr;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> next_loop_{0};
  std::atomic<int> live_{0};  // Exchanges started and not finished.
  std::atomic<bool> stopping_{false};
  absl::Mutex live_mu_;  // With all_finished_, for the destructor's wait.
  absl::CondVar all_finished_;
};

void Exchange::Start() {
  if (loop_.stopping) return Fail(HttpCallFailure::kCancelled, "the client is shutting down");
  Enlist(loop_.live, &Exchange::live_slot_);
  absl::StatusOr<std::shared_ptr<const Url>> parsed = ParsedUrl(loop_, request_.url);
  if (!parsed.ok()) return Fail(HttpCallFailure::kProtocol, std::string(parsed.status().message()));
  url_ = *std::move(parsed);
  if (!request_.connect_addresses.empty()) {
    // A pooled connection may only serve requests pinned to the same addresses.
    auto pinned = std::make_shared<Url>(*url_);
    absl::StrAppend(&pinned->origin, "@", absl::StrJoin(request_.connect_addresses, ","));
    url_ = std::move(pinned);
  }
  const SteadyTime now = SteadyClock::now();
  total_deadline_ = SteadyDeadline(now, request_.total_timeout);
  Watch(now);
  // The request head, written by hand next to the body in one gathered write.
  head_.clear();
  const Url& url = *url_;
  using namespace std::string_view_literals;
  constexpr std::string_view kVersionHost = " HTTP/1.1\r\nHost: "sv;
  constexpr std::string_view kLength = "Content-Length: "sv;
  constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n\r\n"sv;
  internal::HeadWriter out(head_, request_.method.size() + 1 + url.target.size() +
                                      kVersionHost.size() + url.host.size() + 1 +
                                      internal::HeadWriter::kMaxDecimal + 2 +
                                      internal::FieldLinesSize(request_.headers) + kLength.size() +
                                      internal::HeadWriter::kMaxDecimal + 2 + kKeepAlive.size());
  out.Add(request_.method).Add(" "sv).Add(url.target).Add(kVersionHost).Add(url.host);
  if ((url.tls && url.port != 443) || (!url.tls && url.port != 80))
    out.Add(":"sv).Decimal(url.port);
  out.Add("\r\n"sv);
  for (const auto& [name, value] : request_.headers) {
    if (internal::EqualsLower(name, "host") || internal::IsFramingField(name)) continue;
    out.Field(name, value);
  }
  if (!request_.body.empty() || request_.method == "POST" || request_.method == "PUT" ||
      request_.method == "PATCH") {
    out.Add(kLength).Decimal(request_.body.size()).Add("\r\n"sv);
  }
  out.Add(kKeepAlive);
  out.Finish();
  Acquire();
}

void Exchange::Acquire() {
  if (forced_) return Fail(*forced_, HttpCallFailureName(*forced_));
  connection_ = client_.TakeIdle(loop_, url_->origin);
  reused_ = connection_ != nullptr;
  if (reused_) return Send();
  Connect();
}

void Exchange::Connect() {
  phase_ = Phase::kConnect;
  phase_deadline_ = SteadyTime::max();  // The stream's own connect timeout.
  connection_ = std::make_unique<Connection>(loop_.ctx, url_->tls ? &client_.tls() : nullptr);
  if (TlsStream* tls = connection_->tls()) {
    // SNI, and the certificate must name this host.
    if (!SSL_set_tlsext_host_name(tls->native_handle(), url_->host.c_str())) {
      return Fail(HttpCallFailure::kConnect, "TLS: cannot set server name");
    }
    tls->set_verify_callback(ssl::host_name_verification(url_->host));
  }
  connection_->tcp().expires_after(absl::ToChronoNanoseconds(request_.connect_timeout));
  if (!request_.connect_addresses.empty()) {
    std::vector<tcp::endpoint> endpoints;
    for (const std::string& address : request_.connect_addresses) {
      beast::error_code ec;
      asio::ip::address ip = asio::ip::make_address(address, ec);
      if (ec) {
        return Fail(HttpCallFailure::kConnect,
                    absl::StrCat("connect address \"", address, "\": not an IP address"));
      }
      endpoints.emplace_back(ip, url_->port);
    }
    return ConnectTo(std::move(endpoints));
  }
  resolver_.emplace(loop_.ctx.get_executor());
  resolver_->async_resolve(
      url_->host, std::to_string(url_->port),
      [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
        if (self->forced_) return self->Fail(*self->forced_, HttpCallFailureName(*self->forced_));
        if (ec) return self->Fail(HttpCallFailure::kConnect, "resolve: " + ec.message());
        self->ConnectTo(std::vector<tcp::endpoint>(results.begin(), results.end()));
      });
}

void Exchange::ConnectTo(std::vector<tcp::endpoint> endpoints) {
  endpoints_ = std::move(endpoints);
  connection_->tcp().async_connect(
      endpoints_, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
        if (self->forced_) {
          return self->Fail(*self->forced_, HttpCallFailureName(*self->forced_));
        }
        if (ec) return self->Fail(self->Classify(ec), "connect: " + ec.message());
        beast::error_code ignored;
        self->connection_->tcp().socket().set_option(tcp::no_delay(true), ignored);
        TlsStream* tls = self->connection_->tls();
        if (tls == nullptr) {
          self->connection_->tcp().expires_never();  // Later phases: CheckDeadlines.
          return self->Send();
        }
        tls->async_handshake(ssl::stream_base::client, [self](beast::error_code ec) {
          if (ec) return self->Fail(self->Classify(ec), "TLS handshake: " + ec.message());
          self->connection_->tcp().expires_never();
          self->Send();
        });
      });
}

void Exchange::Send() {
  phase_ = Phase::kFirstByte;
  phase_deadline_ = SteadyDeadline(SteadyClock::now(), request_.first_byte_timeout);
  out_.clear();
  out_.push_back(asio::buffer(head_));
  if (!request_.body.empty()) out_.push_back(asio::buffer(request_.body));
  if (connection_->tls() == nullptr) {
    // A request usually fits the socket's buffer: write it now instead of
    // going round the event queue. A failure here goes the usual way (the
    // async write reports it, and a reused connection is retried once).
    auto& socket = connection_->tcp().socket();
    beast::error_code ec;
    if (!connection_->non_blocking) {  // Once per connection: it costs a system call.
      socket.non_blocking(true, ec);
      connection_->non_blocking = !ec;
    }
    const size_t total = asio::buffer_size(out_);
    const size_t written = ec ? 0 : socket.write_some(out_, ec);
    if (!ec && written == total) {
      written_ = true;
      return ReadHead();
    }
    if (!ec) {
      // Partly out: the rest follows asynchronously.
      size_t n = written, first = 0;
      while (first < out_.size() && n >= out_[first].size()) n -= out_[first++].size();
      out_.erase(out_.begin(), out_.begin() + first);
      if (!out_.empty() && n > 0) out_.front() += n;
    }
  }
  // A write that waits for room: the first-byte deadline bounds it.
  connection_->Visit([&](auto& stream) {
    asio::async_write(stream, out_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Fail(self->Classify(ec), "write: " + ec.message());
      self->written_ = true;
      self->ReadHead();
    });
  });
}

// The response is parsed by hand from single reads: Beast's composed reads
// cost several layers of handlers (and a timer) per read.
void Exchange::ReadHead() {
  parser_.emplace(internal::HttpParser::Kind::kResponse);
  parser_->set_header_limit(kMaxResponseHead);
  parser_->set_skip_body(request_.method == "HEAD");
  ContinueHead();
}

void Exchange::ContinueHead() {
  const beast::error_code ec = internal::ParseHead(*parser_, connection_->buffer);
  if (ec == http::error::need_more) return ReadMore(&Exchange::ContinueHead, "the response head");
  if (ec) return Fail(Classify(ec), "reading the response head: " + ec.message());
  head_seen_ = true;
  observer_->OnHead(parser_->status(), parser_->fields());
  if (done_ || !connection_) return;
  phase_ = Phase::kBody;
  ReadBody();
}

void Exchange::ReadBody() {
  // Body bytes already buffered (usually all of a small answer, read along
  // with its head) are parsed without another read.
  while (!parser_->is_done()) {
    beast::error_code ec;
    std::string_view body;  // A part of the buffer: handed on before it is consumed.
    const size_t used = parser_->Put(internal::BufferedBytes(connection_->buffer), body, ec);
    if (!body.empty()) {
      observer_->OnBody(body);
      if (done_ || !connection_) return;
    }
    connection_->buffer.consume(used);
    if (ec == http::error::need_more) break;
    if (ec) return Fail(Classify(ec), "reading the response body: " + ec.message());
  }
  if (parser_->is_done()) {
    // Bytes after the response: the server is out of step; not reused.
    const bool reusable = parser_->keep_alive() && !forced_ && connection_->buffer.size() == 0;
    std::unique_ptr<Connection> connection = std::move(connection_);
    if (reusable) {
      client_.PutIdle(loop_, url_->origin, std::move(connection));
    } else {
      connection->Close();
    }
    return Finish({});
  }
  phase_deadline_ = SteadyDeadline(SteadyClock::now(), request_.idle_timeout);
  ReadMore(&Exchange::ReadBody, "the response body");
}

void Exchange::ReadMore(void (Exchange::*next)(), const char* reading) {
  beast::flat_buffer& buffer = connection_->buffer;
  const size_t room = internal::ReadRoom(buffer);
  auto on_read = [self = shared_from_this(), next, reading](beast::error_code ec, size_t n) {
    if (self->done_ || !self->connection_) return;
    self->connection_->buffer.commit(n);
    // The server closed: a response without a length ends here.
    if (ec) ec = internal::ReadError(*self->parser_, ec);
    if (ec)
      return self->Fail(self->Classify(ec), absl::StrCat("reading ", reading, ": ", ec.message()));
    ((*self).*next)();
  };
  if (TlsStream* tls = connection_->tls()) {
    tls->async_read_some(buffer.prepare(room), std::move(on_read));
  } else {
    connection_->tcp().socket().async_read_some(buffer.prepare(room), std::move(on_read));
  }
}

void Exchange::Watch(SteadyTime now) {
  const SteadyTime check_by = NextCheck(now);
  if (check_by == SteadyTime::max()) return;  // No deadline can pass.
  Enlist(loop_.watched, &Exchange::watch_slot_);
  ArmDeadlines(loop_, check_by);
}

void Exchange::Unwatch() { Delist(loop_.watched, &Exchange::watch_slot_); }

void Exchange::Enlist(std::vector<Exchange*>& list, size_t Exchange::*slot) {
  if (this->*slot != kNotListed) return;
  this->*slot = list.size();
  list.push_back(this);
}

void Exchange::Delist(std::vector<Exchange*>& list, size_t Exchange::*slot) {
  const size_t at = this->*slot;
  if (at == kNotListed) return;
  list[at] = list.back();
  list[at]->*slot = at;
  list.pop_back();
  this->*slot = kNotListed;
}

// The loop's timer fires no later than any watched exchange's deadline: the
// total one, the phase's, or one a phase may set from now on (no sooner
// than now + the shortest phase timeout, see EarliestPhaseDeadline).
bool Exchange::DeadlinePassed(SteadyTime now) {
  if (done_ || forced_) return false;  // Failing already.
  if (now >= total_deadline_) {
    forced_ = HttpCallFailure::kTotalTimeout;
  } else if (now >= phase_deadline_) {
    forced_ =
        phase_ == Phase::kBody ? HttpCallFailure::kIdleTimeout : HttpCallFailure::kFirstByteTimeout;
  } else {
    return false;
  }
  return true;
}

void ArmDeadlines(Loop& loop, SteadyTime at) {
  if (at >= loop.deadline_at) return;  // It fires sooner already.
  loop.deadline_at = at;
  const uint64_t generation = ++loop.deadline_generation;
  loop.deadline_timer.expires_at(at);  // A wait for a later time is cancelled.
  loop.deadline_timer.async_wait([&loop, generation](beast::error_code ec) {
    // Cancelled (re-armed sooner, or the client is closing), or superseded
    // after it had fired: the later wait does the work.
    if (ec || generation != loop.deadline_generation) return;
    loop.deadline_at = SteadyTime::max();
    CheckDeadlines(loop);
  });
}

void CheckDeadlines(Loop& loop) {
  const SteadyTime now = SteadyClock::now();
  SteadyTime next = SteadyTime::max();
  std::vector<std::shared_ptr<Exchange>> late;
  for (Exchange* exchange : loop.watched) {
    if (exchange->DeadlinePassed(now)) {
      late.push_back(exchange->shared_from_this());
    } else {
      next = std::min(next, exchange->NextCheck(now));
    }
  }
  // Cut short outside the loop above: closing may end an exchange (and
  // take it out of `watched`).
  for (const std::shared_ptr<Exchange>& exchange : late) exchange->CutShort();
  if (next != SteadyTime::max()) ArmDeadlines(loop, next);
}

HttpCallFailure Exchange::Classify(const beast::error_code& ec) const {
  if (forced_) return *forced_;
  if (ec == beast::error::timeout) {
    switch (phase_) {
      case Phase::kConnect:
        return HttpCallFailure::kConnectTimeout;
      case Phase::kFirstByte:
        return HttpCallFailure::kFirstByteTimeout;
      case Phase::kBody:
        return HttpCallFailure::kIdleTimeout;
    }
  }
  if (phase_ == Phase::kConnect) return HttpCallFailure::kConnect;
  if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return HttpCallFailure::kProtocol;
  }
  return HttpCallFailure::kReset;
}

void Exchange::Fail(HttpCallFailure failure, std::string message) {
  if (done_) return;
  if (connection_) {
    connection_->Close();
    connection_.reset();
  }
  // A pooled connection the server had already closed, found out while
  // writing: try once more on a fresh one. Once the request is written the
  // server may be working on it, so it is never sent twice.
  if (reused_ && !retried_ && !written_ && !forced_ &&
      (failure == HttpCallFailure::kReset || failure == HttpCallFailure::kProtocol)) {
    retried_ = true;
    reused_ = false;
    written_ = false;
    return Connect();
  }
  if (forced_) failure = *forced_;
  Finish({failure, absl::StrCat(HttpCallFailureName(failure), ": ", message)});
}

void Exchange::Finish(HttpCallOutcome outcome) {
  if (done_) return;
  if (in_caller_) {
    asio::post(loop_.ctx, [self = shared_from_this(), outcome = std::move(outcome)]() mutable {
      self->Finish(std::move(outcome));
    });
    return;
  }
  done_ = true;
  Unwatch();
  Unlist();
  std::shared_ptr<HttpResponseObserver> observer = std::move(observer_);
  observer->OnDone(outcome);
  client_.Finished();
}

void Exchange::Cancel() {
  asio::post(loop_.ctx, [self = shared_from_this()] { self->CancelNow(); });
}

void Exchange::CancelNow() {
  if (done_) return;
  forced_ = HttpCallFailure::kCancelled;
  if (resolver_) resolver_->cancel();
  if (connection_) {
    connection_->Close();
  } else {
    Fail(HttpCallFailure::kCancelled, "cancelled");
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(const HttpClientOptions& options) {
  auto client = std::make_unique<ClientImpl>(options);
  absl::Status ready = client->Init();
  if (!ready.ok()) return ready;
  return client;
}

}  // namespace flowork::core
