#include "flowork/core/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <regex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "flowork/core/event_loops.h"
#include "flowork/core/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);

// Collects what an exchange delivered; Wait() blocks until OnDone.
class Collector final : public HttpResponseObserver {
 public:
  void OnHead(int status, const HttpHeaders& headers) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    headers_ = headers;
  }
  void OnBody(std::string_view piece) override {
    absl::MutexLock lock(&mu_);
    body_.append(piece);
    pieces_.emplace_back(piece);
  }
  void OnDone(const HttpCallOutcome& outcome) override {
    absl::MutexLock lock(&mu_);
    outcome_ = outcome;
    ++done_count_;
    done_.Notify();
  }

  bool Wait() { return done_.WaitForNotificationWithTimeout(kWait); }
  // Waits until the body has at least `size` bytes.
  bool WaitForBody(size_t size) {
    absl::MutexLock lock(&mu_);
    want_ = size;
    return mu_.AwaitWithTimeout(absl::Condition(this, &Collector::HasWantedBody), kWait);
  }

  int status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  std::string body() {
    absl::MutexLock lock(&mu_);
    return body_;
  }
  HttpCallOutcome outcome() {
    absl::MutexLock lock(&mu_);
    return outcome_;
  }
  int done_count() {
    absl::MutexLock lock(&mu_);
    return done_count_;
  }

 private:
  bool HasWantedBody() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return body_.size() >= want_; }

  absl::Mutex mu_;
  size_t want_ = 0;
  int status_ = 0;
  HttpHeaders headers_;
  std::string body_;
  std::vector<std::string> pieces_;
  HttpCallOutcome outcome_;
  int done_count_ = 0;
  absl::Notification done_;
};

// Answers by path: /hello, /stream (3 chunks, the last after Release()),
// /silent (never answers), /stall (one chunk then nothing), /drip (6 chunks
// 100 ms apart).
class TestHandler final : public HttpHandler {
 public:
  ~TestHandler() override {
    for (std::thread& t : drips_) t.join();
  }

  void Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) override {
    {
      absl::MutexLock lock(&mu_);
      peers_.push_back(request.remote_address);
      last_body_ = request.body;
      last_target_ = request.target;
    }
    std::string path(request.path());
    if (path == "/hello") {
      return writer->Send({.status = 200, .headers = {{"X-Test", "yes"}}, .body = "hello world"});
    }
    if (path == "/stream") {
      writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
      writer->Write("one;");
      writer->Write("two;");
      absl::MutexLock lock(&mu_);
      streams_.push_back(std::move(writer));
      return;
    }
    if (path == "/drip") {
      writer->StartStream(200, {});
      std::shared_ptr<HttpResponseWriter> w = std::move(writer);
      absl::MutexLock lock(&mu_);
      drips_.emplace_back([w] {
        for (int i = 0; i < 6; ++i) {
          absl::SleepFor(absl::Milliseconds(100));
          w->Write("drop;");
        }
        w->Finish();
      });
      return;
    }
    if (path == "/stall") {
      writer->StartStream(200, {});
      writer->Write("first");
    }
    absl::MutexLock lock(&mu_);
    if (path == "/silent" || path == "/stall") {
      writer->OnCancel([this] {
        absl::MutexLock lock(&mu_);
        ++cancelled_;
      });
    }
    parked_.push_back(std::move(writer));
  }

  // Finishes the oldest /stream response.
  void Release() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](std::deque<std::unique_ptr<HttpResponseWriter>>* s) { return !s->empty(); },
            &streams_),
        kWait);
    if (streams_.empty()) return;
    streams_.front()->Write("three");
    streams_.front()->Finish();
    streams_.pop_front();
  }

  std::vector<std::string> peers() {
    absl::MutexLock lock(&mu_);
    return peers_;
  }
  bool WaitForCancel() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](int* c) { return *c > 0; }, &cancelled_),
                                kWait);
  }
  std::string last_body() {
    absl::MutexLock lock(&mu_);
    return last_body_;
  }
  std::string last_target() {
    absl::MutexLock lock(&mu_);
    return last_target_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> peers_;
  std::string last_body_;
  std::string last_target_;
  std::deque<std::unique_ptr<HttpResponseWriter>> streams_;
  std::deque<std::unique_ptr<HttpResponseWriter>> parked_;
  int cancelled_ = 0;
  std::vector<std::thread> drips_;
};

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(absl::Seconds(60)); }

  void StartServer(absl::Duration idle_timeout) {
    if (server_) server_->Shutdown(absl::ZeroDuration());
    auto server = HttpServer::Create(
        {.address = "127.0.0.1:0", .threads = 1, .idle_timeout = idle_timeout}, handler_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto client = HttpClient::Create({});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  std::string Url(const std::string& path) {
    return absl::StrCat("http://127.0.0.1:", server_->port(), path);
  }

  std::shared_ptr<Collector> Call(HttpClientRequest request) {
    auto collector = std::make_shared<Collector>();
    client_->Start(std::move(request), collector);
    return collector;
  }

  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpClientTest, GetsStatusHeadersAndBody) {
  auto r = Call({.method = "GET", .url = Url("/hello")});
  ASSERT_TRUE(r->Wait());
  EXPECT_TRUE(r->outcome().ok()) << r->outcome().message;
  EXPECT_EQ(r->status(), 200);
  EXPECT_EQ(r->body(), "hello world");
  EXPECT_EQ(r->done_count(), 1);
}

TEST_F(HttpClientTest, SendsTheBody) {
  auto r = Call({.method = "POST", .url = Url("/hello"), .body = R"({"model":"x"})"});
  ASSERT_TRUE(r->Wait());
  EXPECT_EQ(handler_.last_body(), R"({"model":"x"})");
}

TEST_F(HttpClientTest, ConnectsToPinnedAddressesInsteadOfResolvingTheHost) {
  // ".invalid" never resolves: only the pinned address can reach the server.
  HttpClientRequest request{
      .method = "GET", .url = absl::StrCat("http://pinned.invalid:", server_->port(), "/hello")};
  request.connect_addresses = {"127.0.0.1"};
  auto r = Call(std::move(request));
  ASSERT_TRUE(r->Wait());
  EXPECT_TRUE(r->outcome().ok()) << r->outcome().message;
  EXPECT_EQ(r->body(), "hello world");

  HttpClientRequest bad{.method = "GET", .url = Url("/hello")};
  bad.connect_addresses = {"localhost"};
  auto refused = Call(std::move(bad));
  ASSERT_TRUE(refused->Wait());
  EXPECT_EQ(refused->outcome().failure, HttpCallFailure::kConnect);
}

TEST_F(HttpClientTest, StreamsTheBodyAsItArrives) {
  auto r = Call({.method = "GET", .url = Url("/stream")});
  ASSERT_TRUE(r->WaitForBody(8));  // "one;two;" before the server sent the rest.
  EXPECT_EQ(r->body(), "one;two;");
  handler_.Release();
  ASSERT_TRUE(r->Wait());
  EXPECT_TRUE(r->outcome().ok());
  EXPECT_EQ(r->body(), "one;two;three");
}

TEST_F(HttpClientTest, ReusesKeepAliveConnections) {
  for (int i = 0; i < 3; ++i) {
    auto r = Call({.method = "GET", .url = Url("/hello")});
    ASSERT_TRUE(r->Wait());
    ASSERT_TRUE(r->outcome().ok());
  }
  std::vector<std::string> peers = handler_.peers();
  ASSERT_EQ(peers.size(), 3u);
  EXPECT_EQ(peers[0], peers[1]);
  EXPECT_EQ(peers[1], peers[2]);
}

TEST_F(HttpClientTest, RetriesOnceWhenTheServerClosedAPooledConnection) {
  StartServer(absl::Milliseconds(100));
  auto first = Call({.method = "GET", .url = Url("/hello")});
  ASSERT_TRUE(first->Wait());
  // Let the server's idle timeout close the pooled connection.
  absl::SleepFor(absl::Milliseconds(400));
  auto second = Call({.method = "GET", .url = Url("/hello")});
  ASSERT_TRUE(second->Wait());
  EXPECT_TRUE(second->outcome().ok()) << second->outcome().message;
  EXPECT_EQ(second->body(), "hello world");
}

// A socket listening on 127.0.0.1 at a free port, for a bare upstream the
// test drives by hand; `url` gets "http://127.0.0.1:PORT/". -1 on failure.
int ListenOnLoopback(std::string& url) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (listener >= 0) ::close(listener);
    return -1;
  }
  url = absl::StrCat("http://127.0.0.1:", ntohs(address.sin_port), "/");
  return listener;
}

TEST(HttpClientPoolTest, ClosesIdleConnectionsPastTheirTimeEvenIfTheOriginIsNotUsedAgain) {
  // A bare upstream: answers one request with keep-alive, then reports when
  // the client closes the connection.
  std::string url;
  const int listener = ListenOnLoopback(url);
  ASSERT_GE(listener, 0);
  absl::Notification closed_by_client;
  std::thread upstream([&] {
    int connection = ::accept(listener, nullptr, nullptr);
    char buffer[4096];
    ::recv(connection, buffer, sizeof(buffer), 0);
    const char kAnswer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    ::send(connection, kAnswer, sizeof(kAnswer) - 1, MSG_NOSIGNAL);
    pollfd fd{connection, POLLIN, 0};
    if (::poll(&fd, 1, 5000) == 1 && ::recv(connection, buffer, sizeof(buffer), 0) == 0) {
      closed_by_client.Notify();
    }
    ::close(connection);
  });
  auto client = HttpClient::Create({.idle_connection_timeout = absl::Milliseconds(100)});
  ASSERT_TRUE(client.ok());
  auto collector = std::make_shared<Collector>();
  (*client)->Start({.method = "GET", .url = url}, collector);
  ASSERT_TRUE(collector->Wait());
  EXPECT_TRUE(collector->outcome().ok()) << collector->outcome().message;
  // No further request to that origin: the pool still lets the connection go.
  EXPECT_TRUE(closed_by_client.WaitForNotificationWithTimeout(kWait));
  upstream.join();
  ::close(listener);
}

TEST_F(HttpClientTest, ConnectionRefusedIsAConnectFailure) {
  const int port = server_->port();
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  auto r = Call({.method = "GET", .url = absl::StrCat("http://127.0.0.1:", port, "/hello")});
  ASSERT_TRUE(r->Wait());
  EXPECT_EQ(r->outcome().failure, HttpCallFailure::kConnect);
  EXPECT_THAT(r->outcome().message, HasSubstr("refused"));
}

TEST_F(HttpClientTest, SilentServerIsAFirstByteTimeout) {
  auto r =
      Call({.method = "GET", .url = Url("/silent"), .first_byte_timeout = absl::Milliseconds(200)});
  ASSERT_TRUE(r->Wait());
  EXPECT_EQ(r->outcome().failure, HttpCallFailure::kFirstByteTimeout);
  EXPECT_TRUE(handler_.WaitForCancel());  // The server saw the client go.
}

TEST_F(HttpClientTest, StalledBodyIsAnIdleTimeout) {
  auto r = Call({.method = "GET", .url = Url("/stall"), .idle_timeout = absl::Milliseconds(200)});
  ASSERT_TRUE(r->Wait());
  EXPECT_EQ(r->outcome().failure, HttpCallFailure::kIdleTimeout);
  EXPECT_EQ(r->body(), "first");
}

// The idle timeout is between reads: a body that keeps coming may take
// longer than it in all.
TEST_F(HttpClientTest, ABodyThatKeepsComingIsNotAnIdleTimeout) {
  auto r = Call({.method = "GET",
                 .url = Url("/drip"),
                 .first_byte_timeout = absl::Milliseconds(300),
                 .idle_timeout = absl::Milliseconds(300)});
  ASSERT_TRUE(r->Wait());
  EXPECT_TRUE(r->outcome().ok()) << r->outcome().message;
  EXPECT_EQ(r->body(), "drop;drop;drop;drop;drop;drop;");
}

// A response without a length (HTTP/1.0 style) ends when the server closes.
TEST_F(HttpClientTest, ABodyWithoutALengthEndsWhenTheServerCloses) {
  std::string url;
  const int listener = ListenOnLoopback(url);
  ASSERT_GE(listener, 0);
  std::thread server([listener] {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    char request[4096];
    (void)::read(fd, request, sizeof(request));
    const std::string answer = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it";
    (void)::write(fd, answer.data(), answer.size());
    ::close(fd);
  });
  auto r = Call({.method = "GET", .url = url});
  ASSERT_TRUE(r->Wait());
  server.join();
  ::close(listener);
  EXPECT_TRUE(r->outcome().ok()) << r->outcome().message;
  EXPECT_EQ(r->body(), "all of it");
}

// Infinite timeouts mean no deadline, not one in the past.
TEST_F(HttpClientTest, InfiniteTimeoutsMeanNoDeadline) {
  auto r = Call({.method = "GET",
                 .url = Url("/hello"),
                 .first_byte_timeout = absl::InfiniteDuration(),
                 .idle_timeout = absl::InfiniteDuration(),
                 .total_timeout = absl::InfiniteDuration()});
  ASSERT_TRUE(r->Wait());
  EXPECT_TRUE(r->outcome().ok()) << r->outcome().message;
  EXPECT_EQ(r->body(), "hello world");
}

// One timer serves every exchange on a loop: an exchange with a short
// deadline started after one with a long deadline still times out on time.
TEST_F(HttpClientTest, AShortDeadlineIsKeptNextToALongOne) {
  auto slow =
      Call({.method = "GET", .url = Url("/silent"), .first_byte_timeout = absl::Seconds(60)});
  const absl::Time deadline = absl::Now() + kWait;
  while (handler_.peers().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  const absl::Time started = absl::Now();
  auto quick =
      Call({.method = "GET", .url = Url("/silent"), .first_byte_timeout = absl::Milliseconds(200)});
  ASSERT_TRUE(quick->Wait());
  EXPECT_EQ(quick->outcome().failure, HttpCallFailure::kFirstByteTimeout);
  EXPECT_LT(absl::Now() - started, absl::Seconds(5));  // Not the long one's 60 s.
  EXPECT_EQ(slow->done_count(), 0);                    // The long one goes on.
}

TEST_F(HttpClientTest, TotalTimeoutBoundsTheWholeExchange) {
  auto r = Call({.method = "GET", .url = Url("/silent"), .total_timeout = absl::Milliseconds(200)});
  ASSERT_TRUE(r->Wait());
  EXPECT_EQ(r->outcome().failure, HttpCallFailure::kTotalTimeout);
}

TEST_F(HttpClientTest, CancelAbortsTheExchangeAndTheServerSeesItGo) {
  auto collector = std::make_shared<Collector>();
  std::shared_ptr<HttpCall> call =
      client_->Start({.method = "GET", .url = Url("/silent")}, collector);
  // Wait until the server has the request, then cancel.
  const absl::Time deadline = absl::Now() + kWait;
  while (handler_.peers().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  call->Cancel();
  ASSERT_TRUE(collector->Wait());
  EXPECT_EQ(collector->outcome().failure, HttpCallFailure::kCancelled);
  EXPECT_TRUE(handler_.WaitForCancel());
  call->Cancel();  // Idempotent.
  EXPECT_EQ(collector->done_count(), 1);
}

TEST_F(HttpClientTest, DestroyingTheClientCancelsWhatIsInFlight) {
  // Two exchanges the server never answers, no deadline to end them: the
  // client's destructor must cancel both on their loop, report each once,
  // and return.
  auto first = Call({.method = "GET", .url = Url("/silent")});
  auto second = Call({.method = "GET", .url = Url("/silent")});
  const absl::Time deadline = absl::Now() + kWait;
  while (handler_.peers().size() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  client_.reset();
  for (const auto& r : {first, second}) {
    ASSERT_TRUE(r->Wait());
    EXPECT_EQ(r->outcome().failure, HttpCallFailure::kCancelled);
    EXPECT_EQ(r->done_count(), 1);
  }
}

TEST_F(HttpClientTest, ParsedUrlsAreReusedAndEachRequestGoesWhereItsOwnUrlSays) {
  // Many URLs through one loop's cache of parsed URLs, more than it keeps:
  // each request still reaches its own path.
  for (int i = 0; i < 300; ++i) {
    const std::string target = absl::StrCat("/hello?n=", i % 260);
    auto r = Call({.method = "GET", .url = Url(target)});
    ASSERT_TRUE(r->Wait()) << target;
    ASSERT_TRUE(r->outcome().ok()) << target << ": " << r->outcome().message;
    EXPECT_EQ(handler_.last_target(), target);
  }
}

TEST_F(HttpClientTest, MalformedUrlIsReportedThroughOnDone) {
  for (const char* url : {"ftp://x/y", "http://:80/", "http://127.0.0.1:99999/"}) {
    auto r = Call({.method = "GET", .url = url});
    ASSERT_TRUE(r->Wait()) << url;
    EXPECT_EQ(r->outcome().failure, HttpCallFailure::kProtocol) << url;
  }
}

// Started from a task on the client's own loop with nothing else in flight,
// the exchange starts inside Start (no trip round the loop's queue); even
// then a failure found at once is reported after Start returned, never
// inside it, where the caller may hold a lock.
TEST_F(HttpClientTest, StartedOnItsOwnLoopOnDoneStillNeverRunsInsideStart) {
  auto loops = EventLoops::Create(1);
  ASSERT_TRUE(loops.ok()) << loops.status();
  auto client = HttpClient::Create({.loops = loops->get()});
  ASSERT_TRUE(client.ok()) << client.status();

  // Notes whether any observer call came while the posting task was inside
  // Start. The flag is shared: the task may still clear it after OnDone.
  class Probe final : public HttpResponseObserver {
   public:
    explicit Probe(std::shared_ptr<std::atomic<bool>> inside_start)
        : inside_start_(std::move(inside_start)) {}
    void OnHead(int status, const HttpHeaders&) override {
      called_inside_start_ |= inside_start_->load();
      status_ = status;
    }
    void OnBody(std::string_view piece) override {
      called_inside_start_ |= inside_start_->load();
      body_.append(piece);
    }
    void OnDone(const HttpCallOutcome& outcome) override {
      called_inside_start_ |= inside_start_->load();
      outcome_ = outcome;
      done_.Notify();
    }
    std::shared_ptr<std::atomic<bool>> inside_start_;
    bool called_inside_start_ = false;
    int status_ = 0;
    std::string body_;
    HttpCallOutcome outcome_;
    absl::Notification done_;
  };

  // A malformed URL, a fresh connection, a pooled one (its request written
  // inside Start), another malformed URL.
  for (const std::string& url :
       {std::string("ftp://x/y"), Url("/hello"), Url("/hello"), std::string("http://:80/")}) {
    auto inside_start = std::make_shared<std::atomic<bool>>(false);
    auto probe = std::make_shared<Probe>(inside_start);
    auto started = std::make_shared<absl::Notification>();
    (*loops)->Post(0, [client = client->get(), url, inside_start, probe, started] {
      inside_start->store(true);
      client->Start({.method = "GET", .url = url}, probe);
      inside_start->store(false);
      started->Notify();
    });
    ASSERT_TRUE(started->WaitForNotificationWithTimeout(kWait)) << url;
    ASSERT_TRUE(probe->done_.WaitForNotificationWithTimeout(kWait)) << url;
    EXPECT_FALSE(probe->called_inside_start_) << url;
    if (url == Url("/hello")) {
      EXPECT_TRUE(probe->outcome_.ok()) << probe->outcome_.message;
      EXPECT_EQ(probe->status_, 200);
      EXPECT_EQ(probe->body_, "hello world");
    } else {
      EXPECT_EQ(probe->outcome_.failure, HttpCallFailure::kProtocol) << url;
    }
  }
}

// `openssl s_server -www` on a free loopback port with a certificate made for
// the test: a real TLS peer for the client's verification.
class TlsServer {
 public:
  // A certificate for `name` (a DNS name or, with ip=true, an IP address).
  TlsServer(const std::string& name, bool ip) {
    dir_ = ::testing::TempDir() + "tls-XXXXXX";
    EXPECT_NE(mkdtemp(dir_.data()), nullptr);
    const std::string san = ip ? "IP:" + name : "DNS:" + name;
    const std::string make_cert =
        absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", name,
                     " -addext subjectAltName=", san, " -keyout ", dir_, "/key.pem -out ", dir_,
                     "/cert.pem >/dev/null 2>&1");
    EXPECT_EQ(std::system(make_cert.c_str()), 0);
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
             (dir_ + "/cert.pem").c_str(), "-key", (dir_ + "/key.pem").c_str(), "-www", nullptr);
      _exit(127);
    }
    close(fds[1]);
    std::string out;
    const std::regex accept("ACCEPT 127\\.0\\.0\\.1:([0-9]+)");
    const absl::Time deadline = absl::Now() + kWait;
    std::smatch m;
    while (absl::Now() < deadline && !std::regex_search(out, m, accept)) {
      pollfd fd{fds[0], POLLIN, 0};
      if (poll(&fd, 1, 100) <= 0) continue;
      char buffer[256];
      ssize_t n = read(fds[0], buffer, sizeof(buffer));
      if (n <= 0) break;
      out.append(buffer, n);
    }
    if (std::regex_search(out, m, accept)) port_ = std::stoi(m[1]);
    stdout_ = fds[0];
  }
  ~TlsServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    close(stdout_);
  }
  int port() const { return port_; }
  std::string cert() const { return dir_ + "/cert.pem"; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int stdout_ = -1;
  int port_ = 0;
};

std::shared_ptr<Collector> TlsGet(const HttpClientOptions& options, int port) {
  auto client = HttpClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  auto collector = std::make_shared<Collector>();
  (*client)->Start({.method = "GET", .url = absl::StrCat("https://127.0.0.1:", port, "/")},
                   collector);
  EXPECT_TRUE(collector->Wait());
  return collector;
}

TEST(HttpClientTlsTest, TalksHttpsToAServerItTrusts) {
  TlsServer server("127.0.0.1", /*ip=*/true);
  ASSERT_NE(server.port(), 0);
  auto r = TlsGet({.ca_file = server.cert()}, server.port());
  EXPECT_TRUE(r->outcome().ok()) << r->outcome().message;
  EXPECT_EQ(r->status(), 200);
  EXPECT_THAT(r->body(), HasSubstr("s_server"));
}

TEST(HttpClientTlsTest, RefusesACertificateNobodyVouchesFor) {
  TlsServer server("127.0.0.1", /*ip=*/true);
  ASSERT_NE(server.port(), 0);
  auto r = TlsGet({}, server.port());
  EXPECT_EQ(r->outcome().failure, HttpCallFailure::kConnect);
  EXPECT_THAT(r->outcome().message, HasSubstr("certificate verify failed"));
}

TEST(HttpClientTlsTest, RefusesACertificateForAnotherHost) {
  TlsServer server("other.example", /*ip=*/false);
  ASSERT_NE(server.port(), 0);
  auto r = TlsGet({.ca_file = server.cert()}, server.port());
  EXPECT_EQ(r->outcome().failure, HttpCallFailure::kConnect);
}

}  // namespace
}  // namespace flowork::core
