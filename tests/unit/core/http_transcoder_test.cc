#include "flowork/core/grpc/http_transcoder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/http_server.h"
#include "flowork/test/v1/test.grpc.pb.h"
#include "flowork/testing/http_client.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

using ::flowork::test::v1::EchoRequest;
using ::flowork::test::v1::EchoResponse;
using ::flowork::testing::HttpCall;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Not;
using ::testing::Pair;

EchoResponse Reflect(const EchoRequest& request) {
  EchoResponse response;
  response.set_id(request.id());
  response.set_text(request.text());
  response.set_repeat(request.repeat());
  if (request.has_inner()) *response.mutable_inner() = request.inner();
  *response.mutable_tags() = request.tags();
  response.set_parent(request.parent());
  return response;
}

class EchoService final : public flowork::test::v1::EchoService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context, const EchoRequest* request,
                                 EchoResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      metadata_.clear();
      for (const auto& [key, value] : context->client_metadata()) {
        metadata_.emplace(std::string(key.data(), key.size()),
                          std::string(value.data(), value.size()));
      }
    }
    auto* reactor = context->DefaultReactor();
    if (request->fail()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "asked to fail"));
    } else {
      *response = Reflect(*request);
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* EchoInner(grpc::CallbackServerContext* context,
                                      const EchoRequest* request, EchoResponse* response) override {
    *response = Reflect(*request);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerWriteReactor<EchoResponse>* EchoStream(grpc::CallbackServerContext* context,
                                                     const EchoRequest* request) override {
    class Writer final : public grpc::ServerWriteReactor<EchoResponse> {
     public:
      explicit Writer(const EchoRequest& request) : request_(request) { Next(); }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        Next();
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (index_ == request_.repeat()) {
          return Finish(request_.fail() ? grpc::Status(grpc::StatusCode::DATA_LOSS, "broke late")
                                        : grpc::Status::OK);
        }
        response_ = Reflect(request_);
        response_.set_index(index_++);
        StartWrite(&response_);
      }
      EchoRequest request_;
      EchoResponse response_;
      int index_ = 0;
    };
    return new Writer(*request);
  }

  // The metadata of the last Echo call.
  std::multimap<std::string, std::string> metadata() {
    absl::MutexLock lock(&mu_);
    return metadata_;
  }

 private:
  absl::Mutex mu_;
  std::multimap<std::string, std::string> metadata_ ABSL_GUARDED_BY(mu_);
};

class HttpTranscoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    grpc_ = builder.BuildAndStart();
    ASSERT_NE(grpc_, nullptr);
    auto transcoder = HttpTranscoder::Create(
        {google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            "flowork.test.v1.EchoService")},
        grpc_->InProcessChannel(grpc::ChannelArguments()));
    ASSERT_TRUE(transcoder.ok()) << transcoder.status();
    transcoder_ = *std::move(transcoder);
    auto http = HttpServer::Create({.address = "127.0.0.1:0", .threads = 1}, *transcoder_);
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
  }

  void TearDown() override {
    if (http_) http_->Shutdown(absl::Seconds(1));
    if (grpc_) grpc_->Shutdown();
  }

  testing::ClientResponse Call(const std::string& method, const std::string& target,
                               const std::string& body = "") {
    absl::StatusOr<testing::ClientResponse> response =
        HttpCall(http_->port(), method, target, body);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : testing::ClientResponse{};
  }

  EchoService service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<HttpTranscoder> transcoder_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(HttpTranscoderTest, BodyStarAndPathVariableFillTheRequest) {
  auto r = Call("POST", "/v1/echo/abc", R"({"text":"hi","repeat":2,"inner":{"name":"n"}})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.body, R"({"id":"abc","text":"hi","repeat":2,"inner":{"name":"n"}})");
}

TEST_F(HttpTranscoderTest, ForwardsIdentityZoneAndTraceHeadersAsMetadata) {
  absl::StatusOr<testing::ClientResponse> r =
      HttpCall(http_->port(), "POST", "/v1/echo/abc", R"({"text":"hi"})",
               {{"Authorization", "Bearer fk-secret"},
                {"X-Api-Key", "sk-other"},
                {"X-Flowork-Zone", "local"},
                {"x-flowork-session", "s-1"},
                {"X-Request-Id", "req-7"},
                {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                {"X-Unrelated", "nope"},
                {"Cookie", "session=1"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  const std::multimap<std::string, std::string> metadata = service_.metadata();
  EXPECT_THAT(metadata, Contains(Pair("authorization", "Bearer fk-secret")));
  EXPECT_THAT(metadata, Contains(Pair("x-api-key", "sk-other")));
  EXPECT_THAT(metadata, Contains(Pair("x-flowork-zone", "local")));
  EXPECT_THAT(metadata, Contains(Pair("x-flowork-session", "s-1")));
  EXPECT_THAT(metadata, Contains(Pair("x-request-id", "req-7")));
  EXPECT_THAT(metadata, Contains(Pair("traceparent",
                                      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")));
  EXPECT_THAT(metadata, Not(Contains(Key("x-unrelated"))));
  EXPECT_THAT(metadata, Not(Contains(Key("cookie"))));
}

TEST_F(HttpTranscoderTest, HeadersAbsentFromTheRequestAreNotInvented) {
  auto r = Call("POST", "/v1/echo/abc", R"({"text":"hi"})");
  EXPECT_EQ(r.status, 200);
  const std::multimap<std::string, std::string> metadata = service_.metadata();
  EXPECT_THAT(metadata, Not(Contains(Key("authorization"))));
  EXPECT_THAT(metadata, Not(Contains(Key("x-api-key"))));
}

TEST_F(HttpTranscoderTest, PathVariableWinsOverTheBody) {
  auto r = Call("POST", "/v1/echo/from-path", R"({"id":"from-body"})");
  EXPECT_EQ(r.body, R"({"id":"from-path"})");
}

TEST_F(HttpTranscoderTest, AdditionalBindingTakesQueryParameters) {
  auto r = Call("GET", "/v1/echo/q1?text=a%20b&repeat=3&tags=x&tags=y&inner.name=deep");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"id":"q1","text":"a b","repeat":3,"inner":{"name":"deep"},"tags":["x","y"]})");
}

TEST_F(HttpTranscoderTest, NamedBodyFieldAndCustomVerb) {
  auto r = Call("POST", "/v1/shelves/s7/echo:inner", R"({"name":"in","count":4})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"inner":{"name":"in","count":4},"parent":"shelves/s7"})");
}

TEST_F(HttpTranscoderTest, AcceptsProtoFieldNamesToo) {
  auto r = Call("POST", "/v1/echo/p", R"({"text":"x","inner":{"tags":["t"]}})");
  EXPECT_EQ(r.body, R"({"id":"p","text":"x","inner":{"tags":["t"]}})");
}

TEST_F(HttpTranscoderTest, BadJsonIs400) {
  auto r = Call("POST", "/v1/echo/x", R"({"text": )");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr(R"("code":3)"));
  EXPECT_THAT(r.body, HasSubstr("request body"));
}

TEST_F(HttpTranscoderTest, UnknownFieldIs400NamingIt) {
  auto r = Call("POST", "/v1/echo/x", R"({"txet":"hi"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("txet"));
}

TEST_F(HttpTranscoderTest, WrongTypeIs400NamingTheField) {
  auto r = Call("POST", "/v1/echo/x", R"({"repeat":"many"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("repeat"));
}

TEST_F(HttpTranscoderTest, BadQueryValueAndUnknownQueryParameterAre400) {
  auto bad = Call("GET", "/v1/echo/x?repeat=lots");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr(R"(repeat: invalid value \"lots\" (expected int32))"));
  auto unknown = Call("GET", "/v1/echo/x?colour=red");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_THAT(unknown.body, HasSubstr("query parameter colour"));
}

TEST_F(HttpTranscoderTest, InvalidUtf8InAPathVariableIs400) {
  auto r = Call("GET", "/v1/echo/%ff%fe");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"code":3,"message":"id: not valid UTF-8","details":[]})");
  EXPECT_EQ(Call("GET", "/v1/echo/caf%C3%A9").status, 200);
}

TEST_F(HttpTranscoderTest, QueryParametersAreRefusedWhenTheBodyIsEverything) {
  auto r = Call("POST", "/v1/echo/x?text=a", "{}");
  EXPECT_EQ(r.status, 400);
}

TEST_F(HttpTranscoderTest, UnknownPathIs404AndWrongMethodIs405) {
  auto missing = Call("GET", "/v1/nothing/here");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body,
            R"({"code":5,"message":"no route for GET /v1/nothing/here","details":[]})");
  auto wrong = Call("DELETE", "/v1/echo/x");
  EXPECT_EQ(wrong.status, 405);
}

TEST_F(HttpTranscoderTest, ServiceErrorsMapThroughTheStatusTable) {
  auto r = Call("POST", "/v1/echo/x", R"({"fail":true})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"code":3,"message":"asked to fail","details":[]})");
}

TEST_F(HttpTranscoderTest, ServerStreamingBecomesServerSentEvents) {
  auto r = Call("GET", "/v1/echo/s:stream?repeat=3&text=t");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "text/event-stream");
  EXPECT_EQ(r.body,
            "data: {\"id\":\"s\",\"text\":\"t\",\"repeat\":3}\n\n"
            "data: {\"id\":\"s\",\"text\":\"t\",\"repeat\":3,\"index\":1}\n\n"
            "data: {\"id\":\"s\",\"text\":\"t\",\"repeat\":3,\"index\":2}\n\n");
}

TEST_F(HttpTranscoderTest, StreamFailingAfterMessagesEndsWithAnErrorEvent) {
  auto r = Call("GET", "/v1/echo/s:stream?repeat=1&fail=true");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, ::testing::StartsWith("data: {\"id\":\"s\",\"repeat\":1}\n\n"));
  EXPECT_THAT(
      r.body,
      HasSubstr("event: error\ndata: {\"code\":15,\"message\":\"broke late\",\"details\":[]}\n\n"));
}

TEST_F(HttpTranscoderTest, StreamFailingBeforeAnyMessageIsAPlainError) {
  auto r = Call("GET", "/v1/echo/s:stream?repeat=0&fail=true");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, R"({"code":15,"message":"broke late","details":[]})");
}

TEST_F(HttpTranscoderTest, DescribesEveryBinding) {
  EXPECT_THAT(transcoder_->DescribeRoutes(),
              ::testing::ElementsAre("POST /v1/{parent=shelves/*}/echo:inner -> "
                                     "flowork.test.v1.EchoService.EchoInner",
                                     "GET /v1/echo/{id}:stream -> "
                                     "flowork.test.v1.EchoService.EchoStream",
                                     "POST /v1/echo/{id} -> flowork.test.v1.EchoService.Echo",
                                     "GET /v1/echo/{id} -> flowork.test.v1.EchoService.Echo"));
}

}  // namespace
}  // namespace flowork::core
