#include "flowork/core/internal/http_parser.h"

#include <string>
#include <string_view>

#include "boost/beast/http/error.hpp"
#include "gtest/gtest.h"

namespace flowork::core::internal {
namespace {

using Error = boost::beast::http::error;
using boost::system::error_code;
using namespace std::string_literals;

struct Fed {
  error_code ec;     // the first error other than need_more, or need_more
  std::string body;  // the body pieces, in order
  std::string rest;  // bytes after the message, not used
};

// Feeds `input` to `parser` `piece` bytes at a time, as reads would bring
// them, keeping unused bytes as a connection's buffer does, until the message
// is done or an error other than need_more.
Fed Feed(HttpParser& parser, std::string_view input, size_t piece = std::string_view::npos) {
  Fed fed;
  std::string buffer;
  size_t given = 0;
  while (true) {
    error_code ec;
    std::string_view body;
    const size_t used = parser.Put(buffer, body, ec);
    fed.body.append(body);
    buffer.erase(0, used);
    if (parser.is_done()) {
      fed.rest = buffer + std::string(input.substr(given));
      return fed;
    }
    if (ec && ec != Error::need_more) {
      fed.ec = ec;
      return fed;
    }
    if (ec == Error::need_more || used == 0) {
      if (given == input.size()) {
        fed.ec = Error::need_more;
        return fed;
      }
      const std::string_view more = input.substr(given, piece);
      buffer.append(more);
      given += more.size();
    }
  }
}

HttpParser Request() { return HttpParser(HttpParser::Kind::kRequest); }
HttpParser Response() { return HttpParser(HttpParser::Kind::kResponse); }

// The error `input` leads a parser of `kind` to, given whole; it must be the
// same whatever reads split it into.
error_code ErrorOf(HttpParser::Kind kind, std::string_view input) {
  HttpParser parser(kind);
  const error_code whole = Feed(parser, input).ec;
  for (size_t piece = 1; piece <= 8; ++piece) {
    HttpParser split(kind);
    EXPECT_EQ(Feed(split, input, piece).ec, whole) << "pieces of " << piece << ": " << input;
  }
  return whole;
}

error_code RequestError(std::string_view input) {
  return ErrorOf(HttpParser::Kind::kRequest, input);
}

error_code ResponseError(std::string_view input) {
  return ErrorOf(HttpParser::Kind::kResponse, input);
}

TEST(HttpParserTest, ReadsARequestHeadAsSent) {
  HttpParser parser = Request();
  const Fed fed = Feed(parser,
                       "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n"
                       "Content-Type:  application/json \t\r\n\r\n");
  ASSERT_FALSE(fed.ec) << fed.ec.message();
  EXPECT_TRUE(parser.is_done());
  EXPECT_EQ(parser.method(), "GET");
  EXPECT_EQ(parser.target(), "/v1/models?x=1");
  EXPECT_EQ(parser.version(), 11);
  ASSERT_EQ(parser.fields().size(), 3u);
  EXPECT_EQ(parser.fields()[0], std::make_pair(std::string("Host"), std::string("a")));
  EXPECT_EQ(parser.fields()[1], std::make_pair(std::string("X-Empty"), std::string()));
  EXPECT_EQ(parser.fields()[2],
            std::make_pair(std::string("Content-Type"), std::string("application/json")));
  EXPECT_TRUE(parser.keep_alive());
}

TEST(HttpParserTest, ReadsTheSameRequestWhateverTheReadsSplitItInto) {
  const std::string input = "POST /v1/chat HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
  for (size_t piece = 1; piece <= input.size(); ++piece) {
    HttpParser parser = Request();
    const Fed fed = Feed(parser, input, piece);
    ASSERT_FALSE(fed.ec) << "pieces of " << piece << ": " << fed.ec.message();
    EXPECT_EQ(fed.body, "hello world") << "pieces of " << piece;
    EXPECT_EQ(parser.content_length(), 11u);
    EXPECT_EQ(parser.target(), "/v1/chat");
  }
}

TEST(HttpParserTest, DecodesAChunkedBodyWhateverTheReadsSplitItInto) {
  const std::string input =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n1\r\n \r\n00A\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"
      "GET /next HTTP/1.1\r\n\r\n";
  for (size_t piece = 1; piece <= input.size(); ++piece) {
    HttpParser parser = Request();
    const Fed fed = Feed(parser, input, piece);
    ASSERT_FALSE(fed.ec) << "pieces of " << piece << ": " << fed.ec.message();
    EXPECT_EQ(fed.body, "hello 0123456789") << "pieces of " << piece;
    EXPECT_EQ(fed.rest, "GET /next HTTP/1.1\r\n\r\n") << "pieces of " << piece;
  }
}

TEST(HttpParserTest, StopsAtTheEndOfTheMessageLeavingAPipelinedOne) {
  HttpParser first = Request();
  const Fed fed = Feed(first,
                       "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                       "GET /b HTTP/1.1\r\n\r\n");
  ASSERT_FALSE(fed.ec);
  EXPECT_EQ(fed.body, "hi");
  HttpParser second = Request();
  ASSERT_FALSE(Feed(second, fed.rest).ec);
  EXPECT_EQ(second.target(), "/b");
}

TEST(HttpParserTest, NothingYetIsNeedMore) {
  for (HttpParser parser : {Request(), Response()}) {
    error_code ec;
    std::string_view body;
    EXPECT_EQ(parser.Put(std::string_view(), body, ec), 0u);  // An empty buffer: no data pointer.
    EXPECT_EQ(ec, Error::need_more);
    EXPECT_FALSE(parser.got_some());
  }
}

TEST(HttpParserTest, IgnoresEmptyLinesBeforeARequest) {
  HttpParser parser = Request();
  ASSERT_FALSE(Feed(parser, "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 3).ec);
  EXPECT_EQ(parser.method(), "GET");
}

TEST(HttpParserTest, RefusesMalformedRequestLines) {
  EXPECT_EQ(RequestError(" / HTTP/1.1\r\n\r\n"), Error::bad_method);
  EXPECT_EQ(RequestError("GE(T / HTTP/1.1\r\n\r\n"), Error::bad_method);
  EXPECT_EQ(RequestError("GET\r\n\r\n"), Error::bad_method);
  EXPECT_EQ(RequestError("GET /\r\n\r\n"), Error::bad_target);
  EXPECT_EQ(RequestError("GET  / HTTP/1.1\r\n\r\n"), Error::bad_target);
  EXPECT_EQ(RequestError("GET /a\x7f HTTP/1.1\r\n\r\n"), Error::bad_target);
  EXPECT_EQ(RequestError("GET / HTTP/2.0\r\n\r\n"), Error::bad_version);
  EXPECT_EQ(RequestError("GET / HTTP/1.1 \r\n\r\n"), Error::bad_version);
  EXPECT_EQ(RequestError("GET / http/1.1\r\n\r\n"), Error::bad_version);
}

// Each of these could be framed two ways by two parsers (request smuggling):
// all are refused.
TEST(HttpParserTest, RefusesAmbiguousFraming) {
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Error::bad_transfer_encoding);
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
            Error::multiple_content_length);
  for (const char* length : {"+3", "-3", "3, 3", "0x3", "3 3", "", "1234567890123456789"}) {
    EXPECT_EQ(
        RequestError(std::string("POST / HTTP/1.1\r\nContent-Length: ") + length + "\r\n\r\nabc"),
        Error::bad_content_length)
        << length;
  }
  for (const char* coding :
       {"gzip, chunked", "chunked, chunked", "chunked, gzip", "identity", "", ",", " , "}) {
    EXPECT_EQ(RequestError(std::string("POST / HTTP/1.1\r\nTransfer-Encoding: ") + coding +
                           "\r\n\r\n0\r\n\r\n"),
              Error::bad_transfer_encoding)
        << coding;
  }
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Error::bad_transfer_encoding);
}

TEST(HttpParserTest, RefusesMalformedFieldLines) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), Error::bad_obs_fold);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA : b\r\n\r\n"), Error::bad_field);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\n: b\r\n\r\n"), Error::bad_field);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA b\r\n\r\n"), Error::bad_field);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), Error::bad_value);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"s), Error::bad_value);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\nA: b\r\n\r\n"), Error::bad_line_ending);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\n\r\n"), Error::bad_line_ending);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\r\n\n"), Error::bad_line_ending);
}

// Values are checked eight bytes at a time: a bad byte is found wherever it is.
TEST(HttpParserTest, ChecksEveryByteOfALongValue) {
  for (size_t at = 0; at < 24; ++at) {
    for (const char c : {'\x01', '\x7f', '\r', '\x00'}) {
      std::string value(24, 'v');
      value[at] = c;
      EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: " + value + "\r\n\r\n"), Error::bad_value)
          << "byte " << int(c) << " at " << at;
    }
    for (const char c : {'\t', '\xff', ' ', '~'}) {
      std::string value(24, 'v');
      value[at] = c;
      HttpParser parser = Request();
      ASSERT_FALSE(Feed(parser, "GET / HTTP/1.1\r\nA: " + value + "\r\n\r\n").ec)
          << "byte " << int(c) << " at " << at;
      const std::string trimmed = std::string(
          std::string_view(value).substr(at == 0 && c != '\xff' && c != '~' ? 1 : 0,
                                         at == 23 && (c == '\t' || c == ' ') ? 23 : 24));
      EXPECT_EQ(parser.fields().at(0).second, trimmed) << "byte " << int(c) << " at " << at;
    }
  }
}

TEST(HttpParserTest, RefusesMalformedChunks) {
  const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(RequestError(head + "x\r\n"), Error::bad_chunk);
  EXPECT_EQ(RequestError(head + "\r\n"), Error::bad_chunk);
  EXPECT_EQ(RequestError(head + "10000000000000000\r\n"), Error::bad_chunk);
  EXPECT_EQ(RequestError(head + "3\r\nabcX\r\n"), Error::bad_chunk);
  EXPECT_EQ(RequestError(head + "3 \r\nabc\r\n0\r\n\r\n"), Error::bad_chunk_extension);
  EXPECT_EQ(RequestError(head + "3;a\x01\r\nabc\r\n0\r\n\r\n"), Error::bad_chunk_extension);
  EXPECT_EQ(RequestError(head + "3\nabc\r\n0\r\n\r\n"), Error::bad_line_ending);
  EXPECT_EQ(RequestError(head + "0\r\nA b\r\n\r\n"), Error::bad_field);
  EXPECT_EQ(RequestError(head + std::string(5000, '1')), Error::bad_chunk_extension);
}

TEST(HttpParserTest, AHeadOverTheLimitIsRefusedBeforeItEnds) {
  const std::string head = "GET / HTTP/1.1\r\nA: " + std::string(100, 'b') + "\r\n\r\n";
  {
    HttpParser parser = Request();
    parser.set_header_limit(head.size());
    EXPECT_FALSE(Feed(parser, head, 7).ec);
  }
  {
    HttpParser parser = Request();
    parser.set_header_limit(head.size() - 1);
    EXPECT_EQ(Feed(parser, head, 7).ec, Error::header_limit);
  }
  {  // Never ending: refused once a limit's worth came.
    HttpParser parser = Request();
    parser.set_header_limit(64);
    EXPECT_EQ(Feed(parser, "GET / HTTP/1.1\r\nA: " + std::string(1000, 'b'), 10).ec,
              Error::header_limit);
  }
}

TEST(HttpParserTest, ABodyOverTheLimitIsRefused) {
  {  // Declared: refused with the head, before any of it is read.
    HttpParser parser = Request();
    parser.set_body_limit(10);
    EXPECT_EQ(Feed(parser, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n").ec, Error::body_limit);
  }
  {
    HttpParser parser = Request();
    parser.set_body_limit(10);
    EXPECT_FALSE(Feed(parser, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789").ec);
  }
  {  // Chunked: refused at the chunk that crosses it.
    HttpParser parser = Request();
    parser.set_body_limit(10);
    EXPECT_EQ(Feed(parser,
                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "6\r\n012345\r\n5\r\n")
                  .ec,
              Error::body_limit);
  }
  {  // A trailer is bounded like a head.
    HttpParser parser = Request();
    parser.set_header_limit(64);
    EXPECT_EQ(Feed(parser, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: " +
                               std::string(100, 'b'))
                  .ec,
              Error::header_limit);
  }
}

TEST(HttpParserTest, KeepAliveFollowsTheVersionAndConnectionOptions) {
  const auto keep_alive = [](std::string_view input) {
    HttpParser parser = Request();
    EXPECT_FALSE(Feed(parser, input).ec) << input;
    return parser.keep_alive();
  };
  EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
  // HTTP/1.0 has no Transfer-Encoding: a message that uses one ends the connection.
  EXPECT_FALSE(keep_alive(
      "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
}

TEST(HttpParserTest, TheEndOfTheConnectionBeforeTheEndOfTheMessageIsAPartialMessage) {
  for (const char* input :
       {"GET / HTTP/1.1\r\nHost", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"}) {
    HttpParser parser = Request();
    EXPECT_EQ(Feed(parser, input).ec, Error::need_more) << input;
    error_code ec;
    parser.PutEof(ec);
    EXPECT_EQ(ec, Error::partial_message) << input;
  }
  HttpParser parser = Request();
  error_code ec;
  parser.PutEof(ec);
  EXPECT_EQ(ec, Error::end_of_stream);
}

TEST(HttpParserTest, ReadsAnAnswerAndItsBody) {
  HttpParser parser = Response();
  const Fed fed =
      Feed(parser, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nServer: x\r\n\r\nokHTTP/1.1");
  ASSERT_FALSE(fed.ec) << fed.ec.message();
  EXPECT_EQ(parser.status(), 201);
  EXPECT_EQ(fed.body, "ok");
  EXPECT_EQ(fed.rest, "HTTP/1.1");
  ASSERT_EQ(parser.fields().size(), 2u);
  EXPECT_EQ(parser.fields()[1].second, "x");
  EXPECT_TRUE(parser.keep_alive());
}

TEST(HttpParserTest, AnAnswerWithoutALengthEndsWithTheConnection) {
  HttpParser parser = Response();
  const Fed fed = Feed(parser, "HTTP/1.1 200 OK\r\n\r\nsome body", 4);
  EXPECT_EQ(fed.ec, Error::need_more);
  EXPECT_EQ(fed.body, "some body");
  EXPECT_FALSE(parser.is_done());
  error_code ec;
  parser.PutEof(ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(parser.is_done());
  EXPECT_FALSE(parser.keep_alive());
}

TEST(HttpParserTest, AnswersThatCarryNoBodyEndWithTheirHead) {
  for (const char* head : {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"}) {
    HttpParser parser = Response();
    const Fed fed = Feed(parser, head);
    ASSERT_FALSE(fed.ec) << head;
    EXPECT_TRUE(parser.keep_alive()) << head;
  }
  HttpParser parser = Response();
  parser.set_skip_body(true);  // The answer to a HEAD.
  const Fed fed = Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  ASSERT_FALSE(fed.ec);
  EXPECT_EQ(parser.content_length(), 5u);
  EXPECT_TRUE(parser.keep_alive());
}

TEST(HttpParserTest, SkipsInterimAnswersToTheFinalOne) {
  HttpParser parser = Response();
  const Fed fed = Feed(parser,
                       "HTTP/1.1 100 Continue\r\nA: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nB: 2\r\nContent-Length: 1\r\n\r\nx",
                       5);
  ASSERT_FALSE(fed.ec) << fed.ec.message();
  EXPECT_EQ(parser.status(), 200);
  ASSERT_EQ(parser.fields().size(), 2u);
  EXPECT_EQ(parser.fields()[0].first, "B");
  EXPECT_EQ(fed.body, "x");
}

TEST(HttpParserTest, InterimAnswersTogetherAreBoundedLikeAHead) {
  std::string answers;
  for (int i = 0; i < 10; ++i) answers += "HTTP/1.1 100 Continue\r\n\r\n";
  HttpParser parser = Response();
  parser.set_header_limit(100);
  EXPECT_EQ(Feed(parser, answers + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").ec,
            Error::header_limit);
}

TEST(HttpParserTest, ASwitchingProtocolsAnswerEndsWithItsHeadAndTheConnectionIsNotReused) {
  HttpParser parser = Response();
  ASSERT_FALSE(Feed(parser, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n").ec);
  EXPECT_EQ(parser.status(), 101);
  EXPECT_FALSE(parser.keep_alive());
}

TEST(HttpParserTest, AnAnswersStatusLineMayLackItsReason) {
  HttpParser parser = Response();
  ASSERT_FALSE(Feed(parser, "HTTP/1.0 200\r\nContent-Length: 0\r\n\r\n").ec);
  EXPECT_EQ(parser.status(), 200);
  EXPECT_EQ(parser.version(), 10);
  EXPECT_FALSE(parser.keep_alive());
  EXPECT_EQ(ResponseError("HTTP/1.1 20\r\n\r\n"), Error::bad_status);
  EXPECT_EQ(ResponseError("HTTP/1.1 2000\r\n\r\n"), Error::bad_reason);
  EXPECT_EQ(ResponseError("HTTP/1.1 099 Low\r\n\r\n"), Error::bad_status);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 O\x01K\r\n\r\n"), Error::bad_reason);
  EXPECT_EQ(ResponseError("HTTP/3 200 OK\r\n\r\n"), Error::bad_version);
  EXPECT_EQ(ResponseError("\r\n\r\n"), Error::bad_version);
}

TEST(HttpParserTest, AnAnswersCodingsEndingInChunkedAreDechunked) {
  HttpParser chunked = Response();
  const Fed fed = Feed(chunked,
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                       "2\r\nab\r\n0\r\n\r\n");
  ASSERT_FALSE(fed.ec);
  EXPECT_EQ(fed.body, "ab");
  EXPECT_TRUE(chunked.keep_alive());

  HttpParser until_close = Response();
  EXPECT_EQ(Feed(until_close, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab").ec,
            Error::need_more);
  EXPECT_FALSE(until_close.keep_alive());

  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                          "Content-Length: 2\r\n\r\n"),
            Error::bad_transfer_encoding);
}

TEST(HttpParserTest, BodyPiecesAreViewsOfTheBytesGiven) {
  HttpParser parser = Response();
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
  error_code ec;
  std::string_view body;
  const size_t head = parser.Put(input, body, ec);
  ASSERT_FALSE(ec);
  EXPECT_TRUE(body.empty());
  EXPECT_EQ(parser.Put(std::string_view(input).substr(head), body, ec), 4u);
  EXPECT_EQ(body.data(), input.data() + head);
  EXPECT_EQ(body, "body");
  EXPECT_TRUE(parser.is_done());
}

}  // namespace
}  // namespace flowork::core::internal
