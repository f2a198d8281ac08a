#include "flowork/core/internal/http_parser.h"

#include <array>
#include <cstring>

#include "boost/beast/http/error.hpp"
#include "flowork/core/internal/strings.h"

namespace flowork::core::internal {
namespace {

using boost::system::error_code;
using Error = boost::beast::http::error;

// A chunk-size line (size and extensions) longer than this is refused.
constexpr size_t kMaxChunkLine = 4096;

constexpr std::array<bool, 256> TokenChars() {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~"))
    table[static_cast<unsigned char>(c)] = true;
  return table;
}
constexpr std::array<bool, 256> kTokenChar = TokenChars();

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!kTokenChar[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

// Whether byte `c` may be in a field value or reason phrase: HTAB, SP,
// visible ASCII and obs-text; no other control character (CR, LF, NUL).
bool IsFieldTextChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x20 && u != 0x7f) || u == '\t';
}

// The position of the first byte of `s` from `from` on that is not field
// text, or s.size(). Eight bytes at a time while none is a control byte: a
// field's value usually ends at its CR, the first control byte in it.
size_t FieldTextEnd(std::string_view s, size_t from) {
  constexpr uint64_t kOnes = 0x0101010101010101;
  constexpr uint64_t kHigh = 0x8080808080808080;
  size_t i = from;
  while (true) {
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t x;
      std::memcpy(&x, s.data() + i, 8);
      const uint64_t del = x ^ (kOnes * 0x7f);
      // Some byte below 0x20, or some byte 0x7f (a zero in `del`).
      if ((((x - kOnes * 0x20) & ~x) | ((del - kOnes) & ~del)) & kHigh) break;
    }
    const size_t stop = std::min(s.size(), i + 8);
    for (; i < stop; ++i) {
      if (!IsFieldTextChar(s[i])) return i;
    }
    if (i == s.size()) return i;
  }
}

bool IsFieldText(std::string_view s) { return FieldTextEnd(s, 0) == s.size(); }

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// Calls `each` with every non-empty element of a comma-separated list, OWS
// trimmed.
template <typename Each>
void ForEachListElement(std::string_view list, Each&& each) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view element = TrimOws(list.substr(0, comma));
    if (!element.empty()) each(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// "HTTP/1.0" or "HTTP/1.1" as 10 or 11; 0 for anything else.
int ParseVersion(std::string_view s) {
  if (s.size() != 8 || s.substr(0, 7) != "HTTP/1." || (s[7] != '0' && s[7] != '1')) return 0;
  return s[7] == '1' ? 11 : 10;
}

// Where the line of `data` that starts at `from` ends: the position of its
// CR, or npos when its LF is not in `data` yet. A LF without its CR is
// bad_line_ending.
size_t FindLineEnd(std::string_view data, size_t from, error_code& ec) {
  if (from >= data.size()) return std::string_view::npos;  // (memchr takes no null pointer)
  const void* lf = std::memchr(data.data() + from, '\n', data.size() - from);
  if (lf == nullptr) return std::string_view::npos;
  const size_t at = static_cast<size_t>(static_cast<const char*>(lf) - data.data());
  if (at == from || data[at - 1] != '\r') {
    ec = Error::bad_line_ending;
    return std::string_view::npos;
  }
  return at - 1;
}

}  // namespace

size_t HttpParser::Put(std::string_view data, std::string_view& body, error_code& ec) {
  ec = {};
  body = {};
  if (!data.empty()) got_some_ = true;
  if (state_ == State::kHead) {
    if (kind_ == Kind::kRequest && parsed_ == 0) {
      // Empty lines before a request line are ignored (RFC 9112, 2.2).
      size_t start = 0;
      while (data.size() - start >= 2 && data[start] == '\r' && data[start + 1] == '\n') start += 2;
      if (start > 0) {
        if (start == data.size()) ec = Error::need_more;
        return start;
      }
    }
    return PutHead(data, ec);
  }
  size_t used = 0;
  while (state_ != State::kDone) {
    const size_t step = PutBody(data.substr(used), body, ec);
    used += step;
    if (ec || !body.empty()) return used;
    if (step == 0) {
      ec = Error::need_more;
      return used;
    }
  }
  return used;
}

size_t HttpParser::PutHead(std::string_view data, error_code& ec) {
  // Only the head's first header_limit_ bytes are looked at.
  const std::string_view head = data.substr(0, header_limit_);
  // Every unfinished line leaves no LF after parsed_: until one comes, a
  // read that adds to the line is not parsed again (a head trickling in a
  // byte at a time costs linear time, not quadratic).
  const auto incomplete = [&] {
    no_lf_before_ = head.size();
    ec = data.size() >= header_limit_ ? Error::header_limit : Error::need_more;
    return size_t{0};
  };
  if (no_lf_before_ > 0 &&
      (no_lf_before_ >= head.size() ||
       std::memchr(head.data() + no_lf_before_, '\n', head.size() - no_lf_before_) == nullptr)) {
    return incomplete();
  }
  if (parsed_ == 0) {
    const size_t cr = FindLineEnd(head, 0, ec);
    if (ec) return 0;
    if (cr == std::string_view::npos) return incomplete();
    if (cr == 0) {  // An empty first line: an answer's (a request's were skipped).
      ec = Error::bad_version;
      return 0;
    }
    if ((ec = ParseStartLine(head.substr(0, cr)))) return 0;
    fields_.reserve(kExpectedFields);
    parsed_ = cr + 2;
  }
  while (true) {
    // A line at parsed_: empty (the head's end) or a field.
    const size_t at = parsed_;
    if (at >= head.size()) return incomplete();
    if (head[at] == '\r') {
      if (at + 1 == head.size()) return incomplete();
      if (head[at + 1] == '\n') break;
      ec = Error::bad_line_ending;
      return 0;
    }
    if (IsOws(head[at])) {
      ec = Error::bad_obs_fold;  // A folded line (obs-fold).
      return 0;
    }
    // field-name ":" OWS field-value OWS CRLF
    size_t colon = at;
    while (colon < head.size() && kTokenChar[static_cast<unsigned char>(head[colon])]) ++colon;
    if (colon == head.size()) return incomplete();
    if (colon == at || head[colon] != ':') {
      ec = head[colon] == '\n' ? Error::bad_line_ending : Error::bad_field;
      return 0;
    }
    size_t value = colon + 1;
    while (value < head.size() && IsOws(head[value])) ++value;
    const size_t end = FieldTextEnd(head, value);
    if (end == head.size()) return incomplete();
    if (head[end] != '\r') {
      ec = head[end] == '\n' ? Error::bad_line_ending : Error::bad_value;
      return 0;
    }
    if (end + 1 == head.size()) return incomplete();
    if (head[end + 1] != '\n') {
      ec = Error::bad_value;
      return 0;
    }
    if ((ec = ParseField(head.substr(at, colon - at), TrimOws(head.substr(value, end - value))))) {
      return 0;
    }
    parsed_ = end + 2;
  }
  const size_t head_size = parsed_ + 2;
  parsed_ = 0;
  no_lf_before_ = 0;
  if (kind_ == Kind::kResponse && status_ >= 100 && status_ < 200 && status_ != 101) {
    // An interim answer (100 Continue, 103 Early Hints): the final one
    // follows. All of them together are bounded like one head.
    interim_bytes_ += head_size;
    if (interim_bytes_ > header_limit_) {
      ec = Error::header_limit;
      return 0;
    }
    ResetHead();
    return head_size;
  }
  if ((ec = StartBody())) return 0;
  return head_size;
}

void HttpParser::ResetHead() {
  fields_.clear();
  content_length_.reset();
  chunked_ = transfer_encoding_ = connection_close_ = connection_keep_alive_ = false;
}

error_code HttpParser::ParseStartLine(std::string_view line) {
  if (kind_ == Kind::kRequest) {
    // method SP request-target SP HTTP-version
    const size_t method_end = line.find(' ');
    if (method_end == std::string_view::npos || !IsToken(line.substr(0, method_end))) {
      return Error::bad_method;
    }
    const size_t target_end = line.find(' ', method_end + 1);
    if (target_end == std::string_view::npos) return Error::bad_target;
    const std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
    if (target.empty()) return Error::bad_target;
    for (const char c : target) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f) return Error::bad_target;
    }
    version_ = ParseVersion(line.substr(target_end + 1));
    if (version_ == 0) return Error::bad_version;
    method_.assign(line.data(), method_end);
    target_.assign(target.data(), target.size());
    return {};
  }
  // HTTP-version SP 3DIGIT [SP reason-phrase]; a missing reason's SP is
  // forgiven, as most clients do.
  version_ = ParseVersion(line.substr(0, 8));
  if (version_ == 0) return Error::bad_version;
  if (line.size() < 12 || line[8] != ' ') return Error::bad_status;
  status_ = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return Error::bad_status;
    status_ = status_ * 10 + (line[i] - '0');
  }
  if (status_ < 100) return Error::bad_status;
  if (line.size() > 12 && (line[12] != ' ' || !IsFieldText(line.substr(13)))) {
    return Error::bad_reason;
  }
  return {};
}

error_code HttpParser::ParseField(std::string_view name, std::string_view value) {
  // Only three names matter to framing; the switch on length skips the
  // compares for most fields.
  switch (name.size()) {
    case 10:  // connection
    case 14:  // content-length
    case 17:  // transfer-encoding
      break;
    default:
      fields_.emplace_back(std::string(name), std::string(value));
      return {};
  }
  if (EqualsLower(name, "content-length")) {
    if (content_length_) return Error::multiple_content_length;
    if (value.empty() || value.size() > 18) return Error::bad_content_length;
    uint64_t length = 0;
    for (const char c : value) {
      if (c < '0' || c > '9') return Error::bad_content_length;
      length = length * 10 + static_cast<uint64_t>(c - '0');
    }
    content_length_ = length;
  } else if (EqualsLower(name, "transfer-encoding")) {
    transfer_encoding_ = true;
    bool bad = false;
    ForEachListElement(value, [&](std::string_view coding) {
      // chunked must come last, once; a request may use nothing else.
      if (chunked_) bad = true;
      chunked_ = EqualsLower(coding, "chunked");
      if (kind_ == Kind::kRequest && !chunked_) bad = true;
    });
    if (bad) return Error::bad_transfer_encoding;
  } else if (EqualsLower(name, "connection")) {
    ForEachListElement(value, [&](std::string_view option) {
      if (EqualsLower(option, "close")) connection_close_ = true;
      if (EqualsLower(option, "keep-alive")) connection_keep_alive_ = true;
    });
  }
  fields_.emplace_back(std::string(name), std::string(value));
  return {};
}

error_code HttpParser::StartBody() {
  if (transfer_encoding_ && content_length_) return Error::bad_transfer_encoding;
  // A request's codings must end in chunked (RFC 9112, 6.3): an empty
  // Transfer-Encoding is no exception.
  if (kind_ == Kind::kRequest && transfer_encoding_ && !chunked_) {
    return Error::bad_transfer_encoding;
  }
  const bool no_body = kind_ == Kind::kResponse &&
                       (skip_body_ || status_ == 101 || status_ == 204 || status_ == 304);
  if (no_body) {
    state_ = State::kDone;
  } else if (transfer_encoding_) {
    // An answer's codings that do not end in chunked run to the
    // connection's end.
    state_ = chunked_ ? State::kChunkSize : State::kUntilClose;
    until_close_ = !chunked_;
  } else if (content_length_) {
    if (body_limit_ && *content_length_ > *body_limit_) return Error::body_limit;
    state_ = *content_length_ == 0 ? State::kDone : State::kLength;
  } else {
    state_ = kind_ == Kind::kRequest ? State::kDone : State::kUntilClose;
    until_close_ = kind_ == Kind::kResponse;
  }
  return {};
}

error_code HttpParser::CountBody(uint64_t n) {
  body_read_ += n;
  if (body_limit_ && body_read_ > *body_limit_) return Error::body_limit;
  return {};
}

size_t HttpParser::PutBody(std::string_view data, std::string_view& body, error_code& ec) {
  switch (state_) {
    case State::kLength: {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(data.size(), *content_length_ - body_read_));
      body_read_ += n;
      body = data.substr(0, n);
      if (body_read_ == *content_length_) state_ = State::kDone;
      return n;
    }
    case State::kUntilClose:
      if ((ec = CountBody(data.size()))) return 0;
      body = data;
      return data.size();
    case State::kChunkSize: {
      // chunk-size [chunk-ext] CRLF; extensions are checked, then ignored.
      const std::string_view searched = data.substr(0, kMaxChunkLine);
      const size_t cr = FindLineEnd(searched, 0, ec);
      if (ec) return 0;
      if (cr == std::string_view::npos) {
        if (data.size() >= kMaxChunkLine) ec = Error::bad_chunk_extension;
        return 0;
      }
      const std::string_view line = data.substr(0, cr);
      uint64_t size = 0;
      size_t digits = 0;
      for (; digits < line.size(); ++digits) {
        const char c = line[digits];
        int value;
        if (c >= '0' && c <= '9') {
          value = c - '0';
        } else if (LowerAscii(c) >= 'a' && LowerAscii(c) <= 'f') {
          value = LowerAscii(c) - 'a' + 10;
        } else {
          break;
        }
        if (size >> 60 != 0) {  // Another digit would overflow.
          ec = Error::bad_chunk;
          return 0;
        }
        size = size * 16 + static_cast<uint64_t>(value);
      }
      if (digits == 0) {
        ec = Error::bad_chunk;
        return 0;
      }
      std::string_view extensions = line.substr(digits);
      while (!extensions.empty() && IsOws(extensions.front())) extensions.remove_prefix(1);
      if (digits < line.size() &&
          (extensions.empty() || extensions.front() != ';' || !IsFieldText(extensions))) {
        ec = Error::bad_chunk_extension;
        return 0;
      }
      if (size == 0) {
        state_ = State::kTrailer;
      } else {
        if ((ec = CountBody(size))) return 0;
        chunk_left_ = size;
        state_ = State::kChunkData;
      }
      return cr + 2;
    }
    case State::kChunkData: {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), chunk_left_));
      chunk_left_ -= n;
      body = data.substr(0, n);
      if (chunk_left_ == 0) state_ = State::kChunkEnd;
      return n;
    }
    case State::kChunkEnd:
      if (data.empty() || (data.size() == 1 && data[0] == '\r')) return 0;
      if (data[0] != '\r' || data[1] != '\n') {
        ec = Error::bad_chunk;
        return 0;
      }
      state_ = State::kChunkSize;
      return 2;
    case State::kTrailer: {
      // Trailer fields are checked as fields are, then dropped.
      const size_t room = header_limit_ - std::min(header_limit_, trailer_read_);
      const size_t cr = FindLineEnd(data.substr(0, room), 0, ec);
      if (ec) return 0;
      if (cr == std::string_view::npos) {
        if (data.size() >= room) ec = Error::header_limit;
        return 0;
      }
      trailer_read_ += cr + 2;
      if (cr == 0) {
        state_ = State::kDone;
        return 2;
      }
      const std::string_view line = data.substr(0, cr);
      const size_t colon = line.find(':');
      if (IsOws(line.front())) {
        ec = Error::bad_obs_fold;
      } else if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
        ec = Error::bad_field;
      } else if (!IsFieldText(line.substr(colon + 1))) {
        ec = Error::bad_value;
      }
      return ec ? 0 : cr + 2;
    }
    case State::kHead:
    case State::kDone:
      break;
  }
  return 0;
}

void HttpParser::PutEof(error_code& ec) {
  ec = {};
  if (state_ == State::kUntilClose) {
    state_ = State::kDone;
  } else if (state_ != State::kDone) {
    ec = got_some_ ? Error::partial_message : Error::end_of_stream;
  }
}

bool HttpParser::keep_alive() const {
  if (until_close_) return false;
  if (connection_close_) return false;
  // HTTP/1.0 knows no Transfer-Encoding: its framing is suspect (RFC 9112,
  // 6.1). After 101 the connection speaks another protocol.
  if (version_ == 10 && transfer_encoding_) return false;
  if (kind_ == Kind::kResponse && status_ == 101) return false;
  return version_ == 11 || connection_keep_alive_;
}

}  // namespace flowork::core::internal
