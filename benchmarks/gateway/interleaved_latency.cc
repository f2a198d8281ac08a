// gateway_latency: one request at a time, taking turns between servers.
//
// Measures the latency of a POST at one request at a time against several
// HTTP servers in the same run, the servers taking turns request by request
// (in a fresh random order each turn), so each is measured in the same moments.
// On a shared VM, whose speed drifts by tens of percent from second to second,
// the difference between two servers measured one after the other (wrk -c1
// against one, then the other) is mostly that drift; interleaved, the drift
// falls on all of them alike and their difference is theirs.
//
//   gateway_latency --seconds 5 --body FILE --path /v1/chat/completions
//       direct=28101 nginx=28102 'governed=28105,Authorization: Bearer sk-x'
//
// Each target is NAME=PORT on 127.0.0.1, optionally followed by ",Header: value".
// Prints one line per target: name, requests, p50, p99 and mean in
// microseconds. Exits non-zero on a connection error or an answer that is not
// 2xx.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Target {
  std::string name;
  uint16_t port = 0;
  std::string extra_header;  // "Header: value" or empty.
  std::string request;       // The whole request, head and body.
  int fd = -1;
  std::vector<uint32_t> nanos;
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "gateway_latency: %s\n", what.c_str());
  std::exit(1);
}

void Connect(Target& t) {
  if (t.fd >= 0) ::close(t.fd);
  t.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (t.fd < 0) Fail("socket: " + std::string(std::strerror(errno)));
  int one = 1;
  ::setsockopt(t.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A server that stops answering fails the run instead of hanging it.
  timeval limit{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(t.fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(t.fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(t.port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(t.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    Fail(t.name + ": connect to 127.0.0.1:" + std::to_string(t.port) + ": " + std::strerror(errno));
  }
}

void SendAll(Target& t) {
  std::string_view rest = t.request;
  while (!rest.empty()) {
    ssize_t n = ::send(t.fd, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      Fail(t.name + ": send: no room for 10 s");
    if (n <= 0) Fail(t.name + ": send: " + (n < 0 ? std::strerror(errno) : "nothing written"));
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

// The value of a header field in a lower-cased response head, blanks
// trimmed, or empty.
std::string_view FieldValue(std::string_view lower_head, std::string_view name) {
  std::string needle = "\n" + std::string(name) + ":";
  size_t at = lower_head.find(needle);
  if (at == std::string_view::npos) return {};
  at += needle.size();
  size_t end = lower_head.find("\r\n", at);
  std::string_view value = lower_head.substr(at, end - at);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

// Reads one whole answer (Content-Length framed). Returns whether the server
// asked to close the connection.
bool ReadAnswer(Target& t, std::string& buffer) {
  buffer.clear();
  size_t head_end = std::string::npos;
  size_t total = 0;
  bool close = false;
  char chunk[16384];
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = buffer.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string_view head(buffer.data(), head_end + 2);
        if (head.size() < 12 || head.substr(0, 5) != "HTTP/" || head[9] != '2') {
          Fail(t.name + ": answer not 2xx: " + std::string(head.substr(0, head.find('\r'))));
        }
        std::string lower(head);
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        std::string_view content_length = FieldValue(lower, "content-length");
        size_t length = 0;
        auto [end, ec] = std::from_chars(content_length.data(),
                                         content_length.data() + content_length.size(), length);
        if (content_length.empty() || ec != std::errc() ||
            end != content_length.data() + content_length.size()) {
          Fail(t.name + ": answer without a valid Content-Length");
        }
        total = head_end + 4 + length;
        close = FieldValue(lower, "connection").find("close") != std::string_view::npos;
      }
    }
    if (head_end != std::string::npos && buffer.size() >= total) break;
    ssize_t n = ::recv(t.fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) Fail(t.name + ": no answer for 10 s");
    if (n <= 0) Fail(t.name + ": connection closed or failed mid-answer");
    buffer.append(chunk, static_cast<size_t>(n));
  }
  if (buffer.size() != total)
    Fail(t.name + ": more bytes than the answer (pipelining is not used)");
  return close;
}

uint32_t OneRequest(Target& t, std::string& buffer) {
  auto start = std::chrono::steady_clock::now();
  SendAll(t);
  bool close = ReadAnswer(t, buffer);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - start);
  if (close) Connect(t);  // Not timed: the next request starts on a fresh connection.
  return static_cast<uint32_t>(std::min<int64_t>(nanos.count(), UINT32_MAX));
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[index] / 1000.0;
}

void Usage() {
  Fail(
      "usage: gateway_latency --seconds N --body FILE [--path /v1/chat/completions] "
      "NAME=PORT[,Header: value]...");
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  int per_turn = 1;
  int warm_per_turn = 0;
  std::string body;
  std::string path = "/v1/chat/completions";
  std::vector<Target> targets;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if ((arg == "--seconds" || arg == "--body" || arg == "--path" || arg == "--turn" ||
         arg == "--warm") &&
        i + 1 < argc) {
      std::string value = argv[++i];
      if (arg == "--turn" || arg == "--warm") {
        int n = std::atoi(value.c_str());
        if (n < (arg == "--turn" ? 1 : 0)) Usage();
        (arg == "--turn" ? per_turn : warm_per_turn) = n;
      } else if (arg == "--seconds") {
        seconds = std::atof(value.c_str());
        if (seconds <= 0) Usage();
      } else if (arg == "--body") {
        std::ifstream in(value, std::ios::binary);
        if (!in) Fail("cannot read " + value);
        std::ostringstream text;
        text << in.rdbuf();
        body = text.str();
      } else {
        path = value;
      }
      continue;
    }
    size_t eq = arg.find('=');
    if (eq == std::string_view::npos || eq == 0) Usage();
    Target t;
    t.name = std::string(arg.substr(0, eq));
    std::string_view rest = arg.substr(eq + 1);
    size_t comma = rest.find(',');
    std::string_view port = rest.substr(0, comma);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), t.port);
    if (ec != std::errc() || end != port.data() + port.size() || t.port == 0) Usage();
    if (comma != std::string_view::npos) t.extra_header = std::string(rest.substr(comma + 1));
    targets.push_back(std::move(t));
  }
  if (targets.empty() || body.empty()) Usage();

  for (Target& t : targets) {
    t.request =
        "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(t.port) +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n";
    if (!t.extra_header.empty()) t.request += t.extra_header + "\r\n";
    t.request += "\r\n" + body;
    Connect(t);
  }

  std::string buffer;
  std::vector<size_t> order(targets.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 random(12345);
  for (int warm = 0; warm < 200; ++warm) {
    for (Target& t : targets) OneRequest(t, buffer);
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    std::shuffle(order.begin(), order.end(), random);
    for (size_t i : order) {
      for (int k = 0; k < warm_per_turn; ++k) OneRequest(targets[i], buffer);
      for (int k = 0; k < per_turn; ++k) targets[i].nanos.push_back(OneRequest(targets[i], buffer));
    }
  }

  for (Target& t : targets) {
    std::sort(t.nanos.begin(), t.nanos.end());
    double sum = 0;
    for (uint32_t n : t.nanos) sum += n;
    std::printf("%s %zu %.1f %.1f %.1f\n", t.name.c_str(), t.nanos.size(),
                Percentile(t.nanos, 0.50), Percentile(t.nanos, 0.99),
                sum / 1000.0 / static_cast<double>(t.nanos.size()));
    ::close(t.fd);
  }
  return 0;
}
