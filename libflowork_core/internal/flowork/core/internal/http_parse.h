// Private to Flowork's libraries: feeding an HttpParser by hand from single
// socket reads (the HTTP server and client), instead of Beast's composed
// reads, which cost several layers of handlers and a timer per read.
#ifndef FLOWORK_CORE_INTERNAL_HTTP_PARSE_H_
#define FLOWORK_CORE_INTERNAL_HTTP_PARSE_H_

#include <algorithm>
#include <cstddef>
#include <string_view>

#include "boost/asio/error.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/error.hpp"
#include "flowork/core/internal/http_parser.h"

namespace flowork::core::internal {

// Room to ask of the next read into `buffer`: at least 4 KiB (a request or
// answer of a few KiB in one system call), at most 64 KiB.
inline size_t ReadRoom(const boost::beast::flat_buffer& buffer) {
  return std::clamp<size_t>(buffer.capacity() - buffer.size(), 4096, 65536);
}

// The bytes `buffer` holds, read and not yet used.
inline std::string_view BufferedBytes(const boost::beast::flat_buffer& buffer) {
  const auto data = buffer.data();
  return std::string_view(static_cast<const char*>(data.data()), data.size());
}

// Feeds what `buffer` holds to `parser` until the head is in: no error then,
// need_more when the buffer ran out first, else the parser's error.
inline boost::beast::error_code ParseHead(HttpParser& parser, boost::beast::flat_buffer& buffer) {
  boost::beast::error_code ec;
  std::string_view body;  // Nothing of the body is read before the head ends.
  while (!parser.is_header_done()) {
    buffer.consume(parser.Put(BufferedBytes(buffer), body, ec));
    if (ec) return ec;
  }
  return ec;
}

// What a read that failed with `ec` means for `parser`, as Beast's read
// reports it: end of stream before any byte is end_of_stream; after some,
// the end of a message without a length (no error) or partial_message.
// Other errors are returned as they are.
inline boost::beast::error_code ReadError(HttpParser& parser, boost::beast::error_code ec) {
  if (ec != boost::asio::error::eof) return ec;
  if (!parser.got_some()) return boost::beast::http::error::end_of_stream;
  parser.PutEof(ec);
  return ec;
}

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_HTTP_PARSE_H_
