#include "flowork/core/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "flowork/core/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// How long any wait in these tests may take before it counts as a failure.
// Passing tests never come near it.
constexpr absl::Duration kWait = absl::Seconds(5);

// A response as the client read it off the wire.
struct ClientResponse {
  std::string head;  // Status line and headers, byte for byte.
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                 // Decoded when chunked.
  std::vector<std::string> chunks;  // The data of each chunk, when chunked.

  // The first header of that name (case-insensitive), or "".
  std::string Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (absl::EqualsIgnoreCase(key, std::string(name))) return value;
    }
    return "";
  }
};

// A blocking HTTP/1.1 client on a raw socket, so tests can send malformed
// bytes and see exactly what the server writes. Every read gives up after
// kWait. Not thread-safe.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      connect_errno_ = errno;
      Close();
    }
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient() { Close(); }

  bool connected() const { return fd_ >= 0; }
  // errno of a failed connect, else 0.
  int connect_errno() const { return connect_errno_; }
  // Bytes received but not consumed by a read yet.
  const std::string& unread() const { return buffer_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // Everything up to and including `delimiter`; nullopt if the connection
  // ends or kWait passes first.
  std::optional<std::string> ReadThrough(std::string_view delimiter) {
    const absl::Time deadline = absl::Now() + kWait;
    size_t found;
    while ((found = buffer_.find(delimiter)) == std::string::npos) {
      if (Fill(deadline) != FillResult::kData) return std::nullopt;
    }
    return Consume(found + delimiter.size());
  }

  std::optional<std::string> ReadExactly(size_t size) {
    const absl::Time deadline = absl::Now() + kWait;
    while (buffer_.size() < size) {
      if (Fill(deadline) != FillResult::kData) return std::nullopt;
    }
    return Consume(size);
  }

  // A status line and headers; the body is left unread.
  std::optional<ClientResponse> ReadHead() {
    std::optional<std::string> head = ReadThrough("\r\n\r\n");
    if (!head.has_value()) return std::nullopt;
    ClientResponse response;
    response.head = *head;
    std::vector<std::string> lines = absl::StrSplit(head->substr(0, head->size() - 4), "\r\n");
    if (!absl::StartsWith(lines[0], "HTTP/1.1 ") ||
        !absl::SimpleAtoi(lines[0].substr(9, 3), &response.status)) {
      return std::nullopt;
    }
    for (size_t i = 1; i < lines.size(); ++i) {
      size_t colon = lines[i].find(':');
      if (colon == std::string::npos) return std::nullopt;
      response.headers.emplace_back(
          lines[i].substr(0, colon),
          std::string(absl::StripLeadingAsciiWhitespace(lines[i].substr(colon + 1))));
    }
    return response;
  }

  // The data of the next chunk of a chunked body, "" for the last one;
  // nullopt if the connection ends before the chunk is complete.
  std::optional<std::string> ReadChunk() {
    std::optional<std::string> size_line = ReadThrough("\r\n");
    size_t size = 0;
    if (!size_line.has_value() ||
        !absl::SimpleHexAtoi(size_line->substr(0, size_line->size() - 2), &size)) {
      return std::nullopt;
    }
    std::optional<std::string> data = ReadExactly(size + 2);
    if (!data.has_value() || data->substr(size) != "\r\n") return std::nullopt;
    data->resize(size);
    return data;
  }

  // A whole response, its body framed by Content-Length or chunked.
  std::optional<ClientResponse> ReadResponse() {
    std::optional<ClientResponse> response = ReadHead();
    if (!response.has_value()) return std::nullopt;
    if (absl::EqualsIgnoreCase(response->Header("Transfer-Encoding"), "chunked")) {
      for (;;) {
        std::optional<std::string> chunk = ReadChunk();
        if (!chunk.has_value()) return std::nullopt;
        if (chunk->empty()) break;
        response->body += *chunk;
        response->chunks.push_back(*std::move(chunk));
      }
      return response;
    }
    size_t length = 0;
    if (!absl::SimpleAtoi(response->Header("Content-Length"), &length)) return std::nullopt;
    std::optional<std::string> body = ReadExactly(length);
    if (!body.has_value()) return std::nullopt;
    response->body = *std::move(body);
    return response;
  }

  // True when the server closes the connection (EOF or reset) within kWait.
  // Bytes arriving meanwhile are kept in unread().
  bool ServerCloses() {
    const absl::Time deadline = absl::Now() + kWait;
    for (;;) {
      switch (Fill(deadline)) {
        case FillResult::kData:
          continue;
        case FillResult::kClosed:
          return true;
        case FillResult::kTimeout:
          return false;
      }
    }
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  enum class FillResult { kData, kClosed, kTimeout };

  FillResult Fill(absl::Time deadline) {
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return FillResult::kTimeout;
      pollfd readable{.fd = fd_, .events = POLLIN, .revents = 0};
      int ready = ::poll(&readable, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready <= 0) continue;  // Timeout (checked above) or EINTR.
      char bytes[16 * 1024];
      ssize_t received = ::recv(fd_, bytes, sizeof(bytes), 0);
      if (received < 0 && errno == EINTR) continue;
      if (received <= 0) return FillResult::kClosed;
      buffer_.append(bytes, static_cast<size_t>(received));
      return FillResult::kData;
    }
  }

  std::string Consume(size_t size) {
    std::string taken = buffer_.substr(0, size);
    buffer_.erase(0, size);
    return taken;
  }

  int fd_ = -1;
  int connect_errno_ = 0;
  std::string buffer_;
};

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return absl::StrCat("GET ", std::string(target), " HTTP/1.1\r\nHost: test\r\n",
                      std::string(extra_headers), "\r\n");
}

std::string Post(std::string_view target, std::string_view body,
                 std::string_view extra_headers = "") {
  return absl::StrCat("POST ", std::string(target),
                      " HTTP/1.1\r\nHost: test\r\nContent-Length: ", body.size(), "\r\n",
                      std::string(extra_headers), "\r\n", std::string(body));
}

HttpResponse Text(int status, std::string body) {
  return {.status = status, .headers = {{"Content-Type", "text/plain"}}, .body = std::move(body)};
}

// Calls a function for every request. The function must be thread-safe.
class FunctionHandler final : public HttpHandler {
 public:
  using Function = std::function<void(HttpRequest, std::unique_ptr<HttpResponseWriter>)>;
  explicit FunctionHandler(Function function) : function_(std::move(function)) {}

  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override {
    function_(std::move(request), std::move(writer));
  }

 private:
  Function function_;
};

// Answers every request with 200 and the request's path as body.
class PathEchoHandler final : public HttpHandler {
 public:
  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override {
    writer->Send(Text(200, std::string(request.path())));
  }
};

struct ParkedRequest {
  HttpRequest request;
  std::unique_ptr<HttpResponseWriter> writer;
};

// Keeps every request and its writer for the test thread to answer, as a
// handler that hands its work to another thread would.
class ParkingHandler final : public HttpHandler {
 public:
  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override {
    absl::MutexLock lock(&mu_);
    parked_.push_back({std::move(request), std::move(writer)});
  }

  // The oldest request not taken yet; nullopt if none arrives within kWait.
  std::optional<ParkedRequest> Take() {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(this, &ParkingHandler::HasParked), kWait)) {
      return std::nullopt;
    }
    ParkedRequest taken = std::move(parked_.front());
    parked_.pop_front();
    return taken;
  }

 private:
  bool HasParked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !parked_.empty(); }

  absl::Mutex mu_;
  std::deque<ParkedRequest> parked_ ABSL_GUARDED_BY(mu_);
};

HttpServerOptions TestOptions() {
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  options.threads = 1;
  return options;
}

// The server, or null after reporting why it did not start.
std::unique_ptr<HttpServer> StartServer(HttpHandler& handler,
                                        const HttpServerOptions& options = TestOptions()) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options, handler);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// Records what a handler answered, for testing HttpRouter without a server.
class RecordingWriter final : public HttpResponseWriter {
 public:
  explicit RecordingWriter(std::optional<HttpResponse>& sent) : sent_(sent) {}
  void Send(HttpResponse response) override { sent_ = std::move(response); }
  void StartStream(int status, HttpHeaders headers) override {}
  bool Write(std::string chunk) override { return true; }
  void WriteAndNotify(std::string chunk, absl::AnyInvocable<void(bool) &&> on_written) override {
    std::move(on_written)(true);
  }
  void Finish() override {}
  void OnCancel(absl::AnyInvocable<void() &&> callback) override {}

 private:
  std::optional<HttpResponse>& sent_;
};

class NamedHandler final : public HttpHandler {
 public:
  explicit NamedHandler(std::string name) : name_(std::move(name)) {}
  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override {
    writer->Send(Text(200, name_));
  }

 private:
  std::string name_;
};

HttpResponse Route(HttpRouter& router, std::string method, std::string target) {
  std::optional<HttpResponse> sent;
  router.Handle({.method = std::move(method), .target = std::move(target)},
                std::make_unique<RecordingWriter>(sent));
  EXPECT_TRUE(sent.has_value());
  return sent.value_or(HttpResponse{.status = 0});
}

// ---------------------------------------------------------------------------
// Requests and connections

TEST(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  PathEchoHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send(Get("/first")));
  std::optional<ClientResponse> first = client.ReadResponse();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "/first");
  EXPECT_EQ(first->Header("Connection"), "keep-alive");

  ASSERT_TRUE(client.Send(Get("/second")));
  std::optional<ClientResponse> second = client.ReadResponse();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->body, "/second");
}

TEST(HttpServerTest, ConnectionCloseClosesAfterTheResponse) {
  PathEchoHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/bye", "Connection: close\r\n")));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "/bye");
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ServerCloses());
  EXPECT_EQ(client.unread(), "");
}

TEST(HttpServerTest, AnswersPipelinedRequestsInOrder) {
  PathEchoHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/a") + Get("/b") + Get("/c")));

  for (const char* path : {"/a", "/b", "/c"}) {
    std::optional<ClientResponse> response = client.ReadResponse();
    ASSERT_TRUE(response.has_value()) << path;
    EXPECT_EQ(response->body, path);
  }
}

// Answers inline while holding a lock, as a handler guarding its state may.
class LockedEchoHandler final : public HttpHandler {
 public:
  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override {
    absl::MutexLock lock(&mu_);
    writer->Send(Text(200, std::string(request.path())));
  }

 private:
  absl::Mutex mu_;
};

// Review found the next pipelined request handled inside the previous
// response's Send: a handler answering under its lock then ran again under
// it (a self-deadlock), and a long pipeline recursed.
TEST(HttpServerTest, APipelinedRequestIsNotHandledInsideThePreviousResponsesSend) {
  LockedEchoHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  std::string pipeline;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&pipeline, Get(absl::StrCat("/", i)));
  ASSERT_TRUE(client.Send(pipeline));
  for (int i = 0; i < 200; ++i) {
    std::optional<ClientResponse> response = client.ReadResponse();
    ASSERT_TRUE(response.has_value()) << i;
    EXPECT_EQ(response->body, absl::StrCat("/", i));
  }
}

// A request that trickles in is cut at idle_timeout after it began, however
// often bytes arrive.
TEST(HttpServerTest, ARequestTricklingInIsCutAtTheIdleTimeout) {
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.idle_timeout = absl::Milliseconds(300);
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  const std::string request = Get("/slow");
  const absl::Time start = absl::Now();
  bool cut = false;
  for (char c : request) {  // One byte every 50 ms: about 1.7 s in all.
    if (!client.Send(std::string(1, c))) {
      cut = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(cut || client.ServerCloses());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
}

// An infinite idle timeout means no read deadline, not one in the past.
TEST(HttpServerTest, AnInfiniteIdleTimeoutKeepsConnectionsOpen) {
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.idle_timeout = absl::InfiniteDuration();
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send(Get("/forever")));
    std::optional<ClientResponse> response = client.ReadResponse();
    ASSERT_TRUE(response.has_value()) << i;
    EXPECT_EQ(response->body, "/forever");
  }
}

TEST(HttpServerTest, ServesManyConnectionsAtOnceOnTwoThreads) {
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.threads = 2;
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);

  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<RawClient>(server->port()));
    ASSERT_TRUE(clients.back()->Send(Get(absl::StrCat("/", i))));
  }
  for (int i = 0; i < 8; ++i) {
    std::optional<ClientResponse> response = clients[i]->ReadResponse();
    ASSERT_TRUE(response.has_value()) << i;
    EXPECT_EQ(response->body, absl::StrCat("/", i));
  }
}

TEST(HttpServerTest, WritesResponseHeadItselfIgnoringHandlerFramingHeaders) {
  FunctionHandler handler([](HttpRequest, std::unique_ptr<HttpResponseWriter> writer) {
    writer->Send({.status = 201,
                  .headers = {{"Content-Type", "text/plain"},
                              {"Content-Length", "999"},
                              {"Connection", "close"},
                              {"X-Custom", "yes"}},
                  .body = "hi"});
  });
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));

  EXPECT_EQ(client.ReadThrough("hi"),
            "HTTP/1.1 201 Created\r\n"
            "Content-Type: text/plain\r\n"
            "X-Custom: yes\r\n"
            "Content-Length: 2\r\n"
            "Connection: keep-alive\r\n"
            "\r\n"
            "hi");
  // The handler's "Connection: close" did not close the connection.
  ASSERT_TRUE(client.Send(Get("/again")));
  EXPECT_TRUE(client.ReadResponse().has_value());
}

TEST(HttpServerTest, HandlerSeesMethodTargetHeadersBodyAndPeer) {
  absl::Mutex mu;
  std::optional<HttpRequest> seen;
  FunctionHandler handler([&](HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) {
    {
      absl::MutexLock lock(&mu);
      seen = std::move(request);
    }
    writer->Send(Text(200, "ok"));
  });
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Post("/v1/echo?a=1&b=2", R"({"x":1})", "X-Trace-Id: abc\r\n")));
  ASSERT_TRUE(client.ReadResponse().has_value());

  absl::MutexLock lock(&mu);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->method, "POST");
  EXPECT_EQ(seen->target, "/v1/echo?a=1&b=2");
  EXPECT_EQ(seen->path(), "/v1/echo");
  EXPECT_EQ(seen->query(), "a=1&b=2");
  ASSERT_NE(seen->FindHeader("x-trace-id"), nullptr);
  EXPECT_EQ(*seen->FindHeader("x-trace-id"), "abc");
  EXPECT_EQ(seen->FindHeader("X-Missing"), nullptr);
  EXPECT_EQ(seen->body, R"({"x":1})");
  EXPECT_THAT(seen->remote_address, StartsWith("127.0.0.1:"));
}

TEST(HttpServerTest, TargetWithoutQueryHasWholePathAndEmptyQuery) {
  HttpRequest request{.target = "/v1/models"};
  EXPECT_EQ(request.path(), "/v1/models");
  EXPECT_EQ(request.query(), "");
}

// ---------------------------------------------------------------------------
// Routing

TEST(HttpRouterTest, ExactMethodAndPathReachTheirHandlerWhateverTheQuery) {
  NamedHandler health("health");
  NamedHandler fallback("fallback");
  HttpRouter router;
  router.Add("GET", "/healthz", health);
  router.SetFallback(fallback);

  EXPECT_EQ(Route(router, "GET", "/healthz").body, "health");
  EXPECT_EQ(Route(router, "GET", "/healthz?verbose=1").body, "health");
}

TEST(HttpRouterTest, OtherMethodOrPathGoesToTheFallback) {
  NamedHandler health("health");
  NamedHandler fallback("fallback");
  HttpRouter router;
  router.Add("GET", "/healthz", health);
  router.SetFallback(fallback);

  EXPECT_EQ(Route(router, "POST", "/healthz").body, "fallback");
  EXPECT_EQ(Route(router, "GET", "/healthz/more").body, "fallback");
}

TEST(HttpRouterTest, WithoutFallbackAnswers404JsonNamingTheRoute) {
  NamedHandler health("health");
  HttpRouter router;
  router.Add("GET", "/healthz", health);

  HttpResponse response = Route(router, "GET", "/nope?x=1");
  EXPECT_EQ(response.status, 404);
  EXPECT_THAT(response.headers,
              ElementsAre(std::pair<std::string, std::string>("Content-Type", "application/json")));
  EXPECT_THAT(response.body, StartsWith(R"({"code":5,)"));
  EXPECT_THAT(response.body, HasSubstr("no route for GET /nope"));
}

TEST(HttpRouterTest, RoutesRequestsOfARunningServer) {
  NamedHandler health("health");
  HttpRouter router;
  router.Add("GET", "/healthz", health);
  auto server = StartServer(router);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());

  ASSERT_TRUE(client.Send(Get("/healthz")));
  std::optional<ClientResponse> hit = client.ReadResponse();
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->body, "health");

  ASSERT_TRUE(client.Send(Get("/missing")));
  std::optional<ClientResponse> miss = client.ReadResponse();
  ASSERT_TRUE(miss.has_value());
  EXPECT_EQ(miss->status, 404);
  EXPECT_EQ(miss->Header("Content-Type"), "application/json");
  EXPECT_THAT(miss->body, StartsWith(R"({"code":5,)"));
}

// ---------------------------------------------------------------------------
// Limits and malformed input

TEST(HttpServerTest, BodyOverLimitGets413AndTheConnectionCloses) {
  ParkingHandler handler;
  HttpServerOptions options = TestOptions();
  options.max_body_bytes = 1024;
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  // The server answers from the Content-Length alone and closes, so this
  // send may fail part way; the client must still get the 413.
  client.Send(Post("/upload", std::string(1 << 20, 'x')));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_THAT(response->body, HasSubstr("larger than 1024 bytes"));
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, ChunkedBodyGrowingOverLimitGets413) {
  ParkingHandler handler;
  HttpServerOptions options = TestOptions();
  options.max_body_bytes = 16;
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(
      client.Send("POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, HeaderOverLimitGets431) {
  ParkingHandler handler;
  HttpServerOptions options = TestOptions();
  options.max_header_bytes = 1024;
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/", absl::StrCat("X-Big: ", std::string(2000, 'h'), "\r\n"))));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(response->Header("Content-Type"), "application/json");
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, MalformedRequestLineGets400AndNeverReachesTheHandler) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send("THIS IS NOT HTTP\r\n\r\n"));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 400);
  EXPECT_THAT(response->body, StartsWith(R"({"code":3,)"));
  EXPECT_TRUE(client.ServerCloses());
  // Still serving; the bad request itself never reached the handler.
  RawClient next(server->port());
  ASSERT_TRUE(next.Send(Get("/after")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  EXPECT_EQ(parked->request.target, "/after");
}

TEST(HttpServerTest, ExpectContinueGets100BeforeTheBodyIsSent) {
  FunctionHandler handler([](HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) {
    writer->Send(Text(200, absl::StrCat("got ", request.body)));
  });
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(
      "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));

  EXPECT_EQ(client.ReadThrough("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send("hello"));
  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "got hello");
}

TEST(HttpServerTest, ExpectContinueWithBodyOverLimitGets413Instead) {
  ParkingHandler handler;
  HttpServerOptions options = TestOptions();
  options.max_body_bytes = 16;
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(
      client.Send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n"
                  "Expect: 100-continue\r\n\r\n"));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
}

// ---------------------------------------------------------------------------
// Asynchronous and streamed responses

TEST(HttpServerTest, HandlerMayAnswerLaterFromAnotherThread) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient first_client(server->port());
  RawClient second_client(server->port());
  ASSERT_TRUE(first_client.Send(Get("/first")));
  std::optional<ParkedRequest> first = handler.Take();
  ASSERT_TRUE(second_client.Send(Get("/second")));
  std::optional<ParkedRequest> second = handler.Take();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());

  // The second request is answered while the first still waits, each from
  // a thread of its own.
  std::thread([&] { second->writer->Send(Text(200, "second")); }).join();
  std::optional<ClientResponse> second_response = second_client.ReadResponse();
  ASSERT_TRUE(second_response.has_value());
  EXPECT_EQ(second_response->body, "second");

  std::thread([&] { first->writer->Send(Text(200, "first")); }).join();
  std::optional<ClientResponse> first_response = first_client.ReadResponse();
  ASSERT_TRUE(first_response.has_value());
  EXPECT_EQ(first_response->body, "first");
}

TEST(HttpServerTest, StreamSendsEachChunkAsItIsWritten) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  HttpResponseWriter& writer = *parked->writer;

  writer.StartStream(200, {{"Content-Type", "text/event-stream"}});
  std::optional<ClientResponse> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(head->Header("Content-Type"), "text/event-stream");
  EXPECT_EQ(head->Header("Content-Length"), "");

  // Each chunk reaches the client while the stream is still open.
  for (const char* piece : {"data: one\n\n", "data: two\n\n"}) {
    EXPECT_TRUE(writer.Write(piece));
    EXPECT_EQ(client.ReadChunk(), piece);
  }
  EXPECT_TRUE(writer.Write("data: three\n\n"));
  writer.Finish();
  EXPECT_EQ(client.ReadChunk(), "data: three\n\n");
  EXPECT_EQ(client.ReadChunk(), "");

  // The connection is reusable after a finished stream.
  ASSERT_TRUE(client.Send(Get("/next")));
  std::optional<ParkedRequest> next = handler.Take();
  ASSERT_TRUE(next.has_value());
  next->writer->Send(Text(200, "next"));
  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "next");
}

TEST(HttpServerTest, StreamedBodyDecodesToTheConcatenatedWrites) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());

  std::thread producer([writer = std::move(parked->writer)] {
    writer->StartStream(200, {});
    for (int i = 0; i < 5; ++i) writer->Write(absl::StrCat("part", i, ";"));
    writer->Finish();
  });
  std::optional<ClientResponse> response = client.ReadResponse();
  producer.join();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "part0;part1;part2;part3;part4;");
}

TEST(HttpServerTest, WriterDroppedWithoutAResponseAnswers500Json) {
  FunctionHandler handler([](HttpRequest, std::unique_ptr<HttpResponseWriter>) {});
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/forgotten")));

  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->Header("Content-Type"), "application/json");
  EXPECT_THAT(response->body, StartsWith(R"({"code":13,)"));
  // Still a healthy keep-alive connection.
  ASSERT_TRUE(client.Send(Get("/again")));
  EXPECT_TRUE(client.ReadResponse().has_value());
}

TEST(HttpServerTest, WriterDroppedMidStreamCutsTheConnectionWithoutTheLastChunk) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  parked->writer->StartStream(200, {});
  parked->writer->Write("partial");
  ASSERT_TRUE(client.ReadHead().has_value());
  ASSERT_EQ(client.ReadChunk(), "partial");

  parked->writer.reset();
  EXPECT_EQ(client.ReadChunk(), std::nullopt);
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, OnCancelFiresWhenTheClientLeavesMidStream) {
  absl::Notification cancelled;
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<RawClient>(server->port());
  ASSERT_TRUE(client->Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  HttpResponseWriter& writer = *parked->writer;
  writer.OnCancel([&cancelled] { cancelled.Notify(); });
  writer.StartStream(200, {});
  writer.Write("first");
  ASSERT_TRUE(client->ReadHead().has_value());
  ASSERT_EQ(client->ReadChunk(), "first");

  client.reset();
  // The server notices the client is gone when a write fails, so keep
  // producing as a streaming handler would.
  const absl::Time deadline = absl::Now() + kWait;
  while (!cancelled.HasBeenNotified() && absl::Now() < deadline) {
    if (!writer.Write("tick")) break;
    cancelled.WaitForNotificationWithTimeout(absl::Milliseconds(1));
  }
  EXPECT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(writer.Write("after cancel"));
}

TEST(HttpServerTest, OnCancelFiresWhenTheClientLeavesBeforeAnyResponse) {
  absl::Notification cancelled;
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<RawClient>(server->port());
  ASSERT_TRUE(client->Send(Get("/slow")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  parked->writer->OnCancel([&cancelled] { cancelled.Notify(); });

  client.reset();  // The handler is still working and has written nothing.
  EXPECT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
}

TEST(HttpServerTest, PipelinedRequestsBehindASlowHandlerAreAnsweredInOrder) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/first") + Get("/second")));

  for (const char* path : {"/first", "/second"}) {
    std::optional<ParkedRequest> parked = handler.Take();
    ASSERT_TRUE(parked.has_value()) << path;
    EXPECT_EQ(parked->request.target, path);
    std::thread([writer = std::move(parked->writer), path]() mutable {
      writer->Send({.status = 200, .body = path});
    }).join();
    std::optional<ClientResponse> response = client.ReadResponse();
    ASSERT_TRUE(response.has_value()) << path;
    EXPECT_EQ(response->body, path);
  }
}

// ---------------------------------------------------------------------------
// Timeouts and shutdown

TEST(HttpServerTest, IdleConnectionIsClosedAfterIdleTimeout) {
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.idle_timeout = absl::Milliseconds(200);
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);

  RawClient silent(server->port());
  ASSERT_TRUE(silent.connected());
  RawClient finished(server->port());
  ASSERT_TRUE(finished.Send(Get("/once")));
  ASSERT_TRUE(finished.ReadResponse().has_value());

  const absl::Time start = absl::Now();
  EXPECT_TRUE(silent.ServerCloses());
  EXPECT_TRUE(finished.ServerCloses());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

// The read deadline is per request: a connection busy with requests spaced
// well within idle_timeout stays open past it.
TEST(HttpServerTest, TheIdleTimeoutCountsFromEachRequestNotFromTheConnection) {
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.idle_timeout = absl::Milliseconds(400);
  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  for (int i = 0; i < 6; ++i) {  // 6 x 150 ms: more than twice the timeout.
    ASSERT_TRUE(client.Send(Get("/again"))) << "request " << i;
    ASSERT_TRUE(client.ReadResponse().has_value()) << "request " << i;
    absl::SleepFor(absl::Milliseconds(150));
  }
  EXPECT_TRUE(client.ServerCloses());  // Then idle: closed.
}

TEST(HttpServerTest, ShutdownClosesIdleConnectionsAndLetsResponsesInProgressFinish) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  RawClient idle(port);
  ASSERT_TRUE(idle.Send(Get("/quick")));
  std::optional<ParkedRequest> quick = handler.Take();
  ASSERT_TRUE(quick.has_value());
  quick->writer->Send(Text(200, "quick"));
  ASSERT_TRUE(idle.ReadResponse().has_value());
  RawClient busy(port);
  ASSERT_TRUE(busy.Send(Get("/slow")));
  std::optional<ParkedRequest> slow = handler.Take();
  ASSERT_TRUE(slow.has_value());

  absl::Duration shutdown_took;
  std::thread shutdown([&] {
    const absl::Time start = absl::Now();
    server->Shutdown(absl::Seconds(30));
    shutdown_took = absl::Now() - start;
  });
  // The idle connection closing shows the drain has begun.
  EXPECT_TRUE(idle.ServerCloses());
  RawClient late(port);
  EXPECT_FALSE(late.connected());
  EXPECT_EQ(late.connect_errno(), ECONNREFUSED);

  slow->writer->Send(Text(200, "slow"));
  std::optional<ClientResponse> response = busy.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "slow");
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(busy.ServerCloses());
  shutdown.join();
  // Shutdown returned when the last response was done, not after the grace.
  EXPECT_LT(shutdown_took, absl::Seconds(10));
}

TEST(HttpServerTest, ShutdownCancelsResponsesStillRunningWhenGraceEnds) {
  absl::Notification cancelled;
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/slow")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  parked->writer->OnCancel([&cancelled] { cancelled.Notify(); });

  server->Shutdown(absl::Milliseconds(50));

  EXPECT_TRUE(cancelled.HasBeenNotified());
  EXPECT_TRUE(client.ServerCloses());
  EXPECT_EQ(client.unread(), "");
  // Answering after shutdown is harmless.
  parked->writer->Send(Text(200, "too late"));
  parked->writer.reset();
}

TEST(HttpServerTest, StreamWriteReturnsFalseOnceTheServerHasShutDown) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  parked->writer->StartStream(200, {});
  ASSERT_TRUE(client.ReadHead().has_value());

  server->Shutdown(absl::ZeroDuration());

  // A producer that stops on false (and set no OnCancel) must stop now.
  EXPECT_FALSE(parked->writer->Write("more"));
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, RefusesConnectionsAfterShutdown) {
  PathEchoHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  server->Shutdown(absl::Seconds(1));
  server->Shutdown(absl::Seconds(1));  // Idempotent.

  RawClient client(port);
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(client.connect_errno(), ECONNREFUSED);
}

// ---------------------------------------------------------------------------
// Metrics and configuration

TEST(HttpServerTest, CountsAnsweredRequestsByStatusCode) {
  std::unique_ptr<MetricsRegistry> metrics = MetricsRegistry::Create();
  HttpRouter router;  // 404 for everything but /ok.
  PathEchoHandler echo;
  router.Add("GET", "/ok", echo);
  HttpServerOptions options = TestOptions();
  options.metrics = metrics.get();
  auto server = StartServer(router, options);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/ok")));
  ASSERT_TRUE(client.ReadResponse().has_value());
  // A response is counted once written; the server reads the next request on
  // a connection only after that, so this answer proves the first is counted.
  ASSERT_TRUE(client.Send(Get("/missing")));
  ASSERT_TRUE(client.ReadResponse().has_value());

  EXPECT_THAT(metrics->TextExposition(), HasSubstr(R"(flowork_http_requests_total{code="200"} 1)"));
}

TEST(HttpServerTest, CreateRejectsBadAddresses) {
  PathEchoHandler handler;
  for (const char* address :
       {"nonsense", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:http", "example.com:80"}) {
    HttpServerOptions options = TestOptions();
    options.address = address;
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options, handler);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_THAT(std::string(server.status().message()), HasSubstr(address));
  }
}

TEST(HttpServerTest, CreateRejectsNegativeThreads) {
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.threads = -1;
  EXPECT_EQ(HttpServer::Create(options, handler).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A listening loopback socket without SO_REUSEPORT, holding a free port.
class PortHolder {
 public:
  PortHolder() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0 && ::listen(fd_, 1) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  PortHolder(const PortHolder&) = delete;
  PortHolder& operator=(const PortHolder&) = delete;
  ~PortHolder() { Release(); }

  int port() const { return port_; }  // 0 when binding failed.
  void Release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(HttpServerTest, ListensOnTheConfiguredPort) {
  PortHolder free_port;
  ASSERT_NE(free_port.port(), 0);
  free_port.Release();
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.threads = 2;
  options.address = absl::StrCat("127.0.0.1:", free_port.port());

  auto server = StartServer(handler, options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->port(), free_port.port());
  RawClient client(free_port.port());
  ASSERT_TRUE(client.Send(Get("/here")));
  std::optional<ClientResponse> response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "/here");
}

TEST(HttpServerTest, CreateReportsUnavailableWhenThePortIsTaken) {
  PortHolder taken;
  ASSERT_NE(taken.port(), 0);
  PathEchoHandler handler;
  HttpServerOptions options = TestOptions();
  options.address = absl::StrCat("127.0.0.1:", taken.port());

  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options, handler);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr(absl::StrCat(taken.port())));
}

TEST(HttpServerTest, RefusesAPortAnotherReusePortServerHolds) {
  PathEchoHandler handler;
  auto first = StartServer(handler);
  ASSERT_NE(first, nullptr);
  HttpServerOptions options = TestOptions();
  options.address = absl::StrCat("127.0.0.1:", first->port());
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Create(options, handler);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(HttpServerTest, HeadGetsTheHeadersOfGetWithoutABody) {
  PathEchoHandler echo;
  HttpRouter router;
  router.Add("GET", "/thing", echo);
  auto server = StartServer(router);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send("HEAD /thing HTTP/1.1\r\nHost: x\r\n\r\n" + Get("/thing")));
  std::optional<ClientResponse> head = client.ReadHead();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("Content-Length"), "6");
  // The next bytes on the connection are the GET's response, not a body.
  std::optional<ClientResponse> get = client.ReadResponse();
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->body, "/thing");
}

TEST(HttpServerTest, WriteAndNotifyReportsEachChunkOnceWritten) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  parked->writer->StartStream(200, {});
  absl::Notification written;
  bool ok = false;
  parked->writer->WriteAndNotify("one", [&](bool result) {
    ok = result;
    written.Notify();
  });
  ASSERT_TRUE(written.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(ok);
  ASSERT_TRUE(client.ReadHead().has_value());
  EXPECT_EQ(client.ReadChunk(), "one");
  parked->writer->Finish();
}

TEST(HttpServerTest, WriteAndNotifyReportsFalseOnceTheClientIsGone) {
  ParkingHandler handler;
  auto server = StartServer(handler);
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<RawClient>(server->port());
  ASSERT_TRUE(client->Send(Get("/stream")));
  std::optional<ParkedRequest> parked = handler.Take();
  ASSERT_TRUE(parked.has_value());
  absl::Notification cancelled;
  parked->writer->OnCancel([&] { cancelled.Notify(); });
  parked->writer->StartStream(200, {});
  client.reset();
  ASSERT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
  absl::Notification written;
  bool ok = true;
  parked->writer->WriteAndNotify("late", [&](bool result) {
    ok = result;
    written.Notify();
  });
  ASSERT_TRUE(written.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace flowork::core
