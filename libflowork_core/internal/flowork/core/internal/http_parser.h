// Private to Flowork's libraries: the framing of HTTP/1.1 messages as the
// server reads requests and the client reads answers. Beast's basic_parser did
// this before: on the gateway's path its work on the two heads (a virtual call
// and a field-name lookup per field, byte-by-byte scans) was about 4,400
// instructions a request; this parser's is about half that.
#ifndef FLOWORK_CORE_INTERNAL_HTTP_PARSER_H_
#define FLOWORK_CORE_INTERNAL_HTTP_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "boost/system/error_code.hpp"

namespace flowork::core::internal {

// Header fields a parser makes room for at the start of a message: most heads
// have fewer, so they are stored without the vector growing field by field.
inline constexpr size_t kExpectedFields = 16;

// Reads one HTTP/1.1 message (RFC 9112) from bytes as they arrive: its head
// once the whole head is in, then its body as it comes, framed by
// Content-Length, by chunked transfer coding, or (answers only) by the end of
// the connection. Errors are Beast's http::error codes, so callers map them as
// they did for Beast's parser.
//
// Strict where one message could be read two ways by two parsers (request
// smuggling, answer splitting): a bare LF, a folded line, whitespace before a
// field's colon, a Content-Length that is not one decimal number, a second
// Content-Length, or Content-Length together with Transfer-Encoding are all
// errors. A request's Transfer-Encoding must be exactly "chunked".
//
// An answer's interim heads (1xx but 101) are skipped, all of them together
// within the head limit: the head reported is the final one. One parser reads
// one message; not thread-safe.
class HttpParser {
 public:
  enum class Kind { kRequest, kResponse };
  using Fields = std::vector<std::pair<std::string, std::string>>;

  explicit HttpParser(Kind kind) : kind_(kind) {}

  // A head longer than this (its blank line included) is header_limit; the
  // same bound holds for a chunked body's trailer. Default 8 KiB.
  void set_header_limit(size_t bytes) { header_limit_ = bytes; }
  // A body longer than this is body_limit (for a Content-Length, as soon as
  // the head is read). nullopt (the default): no limit.
  void set_body_limit(std::optional<uint64_t> bytes) { body_limit_ = bytes; }
  // The answer to a HEAD request: no body, whatever its fields say.
  void set_skip_body(bool skip) { skip_body_ = skip; }

  // Reads what it can of `data`, the bytes received and not yet used, and
  // returns how many it used; the caller drops those before the next call.
  // - Before the head is complete it uses nothing and sets need_more; once
  //   it is, it uses the whole head and returns (body empty), so the caller
  //   may look at the head before any of the body is read.
  // - After the head, each call passes at most one piece of the body: `body`
  //   is then a part of `data` (valid while `data` is), already counted in the
  //   bytes used. need_more: nothing more can be read from `data`.
  // Any other error ends the message: nothing more may be put.
  size_t Put(std::string_view data, std::string_view& body, boost::system::error_code& ec);

  // The connection ended. Completes an answer framed by the connection's end;
  // anything else unfinished is partial_message (end_of_stream if no byte of
  // the message came).
  void PutEof(boost::system::error_code& ec);

  bool got_some() const { return got_some_; }
  bool is_header_done() const { return state_ != State::kHead; }
  bool is_done() const { return state_ == State::kDone; }
  // Whether the connection may carry another message after this one: HTTP/1.1
  // without "Connection: close", HTTP/1.0 with "Connection: keep-alive"; never
  // after a body framed by the connection's end, an HTTP/1.0 message with
  // Transfer-Encoding, or a 101 answer.
  bool keep_alive() const;

  // The head, once is_header_done(). Method and target are a request's,
  // status an answer's; fields are as received, in order.
  const std::string& method() const { return method_; }
  std::string& method() { return method_; }
  const std::string& target() const { return target_; }
  std::string& target() { return target_; }
  int status() const { return status_; }
  int version() const { return version_; }  // 10 or 11
  const Fields& fields() const { return fields_; }
  Fields& fields() { return fields_; }
  // The body's declared length, when a Content-Length framed it.
  std::optional<uint64_t> content_length() const { return content_length_; }

 private:
  enum class State {
    kHead,
    kLength,      // content_length_ - body_read_ bytes to go
    kChunkSize,   // a chunk-size line
    kChunkData,   // chunk_left_ bytes of a chunk to go
    kChunkEnd,    // the CRLF after a chunk's data
    kTrailer,     // trailer field lines up to a blank line
    kUntilClose,  // an answer without a length
    kDone,
  };

  // Parses the head's lines from parsed_ on, each line once however many
  // reads the head takes: the head's size once it is whole, else 0 and
  // need_more (or header_limit), or the error of a bad line.
  size_t PutHead(std::string_view data, boost::system::error_code& ec);
  boost::system::error_code ParseStartLine(std::string_view line);
  boost::system::error_code ParseField(std::string_view name, std::string_view value);
  // Forgets a head read in part or an interim answer's.
  void ResetHead();
  boost::system::error_code StartBody();
  // One step of the body's framing: see Put.
  size_t PutBody(std::string_view data, std::string_view& body, boost::system::error_code& ec);
  boost::system::error_code CountBody(uint64_t n);

  Kind kind_;
  State state_ = State::kHead;
  size_t header_limit_ = 8 * 1024;
  std::optional<uint64_t> body_limit_;
  bool skip_body_ = false;
  bool got_some_ = false;
  size_t parsed_ = 0;         // head bytes parsed: whole lines, the start line first
  size_t no_lf_before_ = 0;   // head[parsed_, this) holds no LF (0: not known)
  size_t interim_bytes_ = 0;  // interim answers' heads read so far

  std::string method_;
  std::string target_;
  int status_ = 0;
  int version_ = 11;
  Fields fields_;
  std::optional<uint64_t> content_length_;
  bool chunked_ = false;
  bool transfer_encoding_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool until_close_ = false;  // the body ends with the connection

  uint64_t body_read_ = 0;
  uint64_t chunk_left_ = 0;
  size_t trailer_read_ = 0;
};

}  // namespace flowork::core::internal

#endif  // FLOWORK_CORE_INTERNAL_HTTP_PARSER_H_
