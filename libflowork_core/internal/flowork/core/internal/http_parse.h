// Private to Flowork's libraries: feeding a Beast parser by hand from single
// socket reads (the HTTP server and client), instead of Beast's composed
// reads, which cost several layers of handlers and a timer per read.
#ifndef FLOWORK_CORE_INTERNAL_HTTP_PARSE_H_
#define FLOWORK_CORE_INTERNAL_HTTP_PARSE_H_

#include <algorithm>
#include <cstddef>

#include "boost/asio/error.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/basic_parser.hpp"
#include "boost/beast/http/error.hpp"

namespace flowork::core::internal {

// Room to ask of the next read into `buffer`: at least 4 KiB (a request or
// answer of a few KiB in one system call), at most 64 KiB.
inline size_t ReadRoom(const boost::beast::flat_buffer& buffer) {
  return std::clamp<size_t>(buffer.capacity() - buffer.size(), 4096, 65536);
}

// Header fields a parser makes room for at the start of a message: most heads
// have fewer, so they are stored without the vector growing field by field.
inline constexpr size_t kExpectedFields = 16;

// Feeds what `buffer` holds to `parser` until the head (`header_only`) or the
// whole message is in: no error then, need_more when the buffer ran out
// first, else the parser's error (need_buffer included).
template <bool kIsRequest>
boost::beast::error_code ParseBuffered(boost::beast::http::basic_parser<kIsRequest>& parser,
                                       boost::beast::flat_buffer& buffer, bool header_only) {
  boost::beast::error_code ec;
  while (header_only ? !parser.is_header_done() : !parser.is_done()) {
    if (buffer.size() == 0) return boost::beast::http::error::need_more;
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec) return ec;
    if (used == 0) return boost::beast::http::error::need_more;
  }
  return ec;
}

// What a read that failed with `ec` means for `parser`, as Beast's read
// reports it: end of stream before any byte is end_of_stream; after some,
// the end of a message without a length (no error) or partial_message.
// Other errors are returned as they are.
template <bool kIsRequest>
boost::beast::error_code ReadError(boost::beast::http::basic_parser<kIsRequest>& parser,
                                   boost::beast::error_code ec) {
  if (ec != boost::asio::error::eof) return ec;
  if (!parser.got_some()) return boost::beast::http::error::end_of_stream;
  parser.put_eof(ec);
  if (!ec && !parser.is_done()) ec = boost::beast::http::error::partial_message;
  return ec;
}

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_HTTP_PARSE_H_
