// A blocking HTTP/1.1 client on a raw socket, for tests that watch how and
// when a response arrives: chunk by chunk, cut short, or not at all.
#ifndef FLOWORK_TESTS_UNIT_MOCKLLM_RAW_HTTP_CLIENT_H_
#define FLOWORK_TESTS_UNIT_MOCKLLM_RAW_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace flowork::mockllm::rawhttp {

// How long any read may wait before it counts as a failure. Passing tests
// never come near it.
inline constexpr absl::Duration kWait = absl::Seconds(10);

// A response head as read off the wire.
struct RawHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;

  // The first header of that name (case-insensitive), or "".
  std::string Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (absl::EqualsIgnoreCase(key, std::string(name))) return value;
    }
    return "";
  }
};

// A POST request with a JSON body and extra headers.
inline std::string PostRequest(
    std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  std::string request = absl::StrCat("POST ", std::string(target),
                                     " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                                     "Content-Length: ",
                                     body.size(), "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  absl::StrAppend(&request, "\r\n", std::string(body));
  return request;
}

// One connection to 127.0.0.1:port. Every read gives up after kWait.
// Not thread-safe.
class RawHttpClient {
 public:
  explicit RawHttpClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) Close();
  }
  RawHttpClient(const RawHttpClient&) = delete;
  RawHttpClient& operator=(const RawHttpClient&) = delete;
  ~RawHttpClient() { Close(); }

  bool connected() const { return fd_ >= 0; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty() && fd_ >= 0) {
      ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return bytes.empty();
  }

  // The status line and headers; nullopt if the connection ends first.
  std::optional<RawHead> ReadHead() {
    std::optional<std::string> head = ReadThrough("\r\n\r\n");
    if (!head.has_value()) return std::nullopt;
    std::vector<std::string> lines = absl::StrSplit(head->substr(0, head->size() - 4), "\r\n");
    RawHead parsed;
    if (!absl::StartsWith(lines[0], "HTTP/1.1 ") ||
        !absl::SimpleAtoi(lines[0].substr(9, 3), &parsed.status)) {
      return std::nullopt;
    }
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) return std::nullopt;
      parsed.headers.emplace_back(
          lines[i].substr(0, colon),
          std::string(absl::StripLeadingAsciiWhitespace(lines[i].substr(colon + 1))));
    }
    return parsed;
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

  // A body framed by Content-Length, read whole.
  std::optional<std::string> ReadBody(const RawHead& head) {
    size_t length = 0;
    if (!absl::SimpleAtoi(head.Header("Content-Length"), &length)) return std::nullopt;
    return ReadExactly(length);
  }

  // True when the server closes the connection (EOF or reset) within kWait.
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

  FillResult Fill(absl::Time deadline) {
    if (fd_ < 0) return FillResult::kClosed;
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return FillResult::kTimeout;
      pollfd readable{.fd = fd_, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&readable, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready <= 0) continue;  // Timeout (checked above) or EINTR.
      char bytes[16 * 1024];
      const ssize_t received = ::recv(fd_, bytes, sizeof(bytes), 0);
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
  std::string buffer_;
};

}  // namespace flowork::mockllm::rawhttp

#endif  // FLOWORK_TESTS_UNIT_MOCKLLM_RAW_HTTP_CLIENT_H_
