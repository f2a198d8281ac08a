#include "flowork/core/grpc/http_transcoder.h"

#include <algorithm>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "flowork/core/status_http.h"
#include "google/api/annotations.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "path_template.h"

namespace flowork::core {

namespace protobuf = google::protobuf;

namespace {

struct Binding {
  std::string http_method;
  PathTemplate path;
  std::string body;           // "", "*" or a field name.
  std::string response_body;  // "" or a field name.
  const protobuf::MethodDescriptor* method;
  std::string grpc_method;  // "/pkg.Service/Method"
};

const protobuf::FieldDescriptor* FindField(const protobuf::Descriptor* type,
                                           absl::string_view name) {
  const protobuf::FieldDescriptor* field = type->FindFieldByName(std::string(name));
  if (field == nullptr) field = type->FindFieldByCamelcaseName(std::string(name));
  return field;
}

HttpResponse JsonError(const absl::Status& status) {
  return {.status = HttpStatusFromCode(status.code()),
          .headers = {{"Content-Type", "application/json"}},
          .body = StatusToJson(status)};
}

// Proto3 strings must be UTF-8; a path or query value may be anything.
bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // Range of the second byte.
    if (c < 0x80) {
      length = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // Overlong.
      if (c == 0xED) high = 0x9F;  // Surrogates.
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;   // Overlong.
      if (c == 0xF4) high = 0x8F;  // Beyond U+10FFFF.
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) return false;
    }
    i += length;
  }
  return true;
}

absl::Status SetScalarFromString(protobuf::Message& message, const protobuf::FieldDescriptor& field,
                                 absl::string_view value, absl::string_view path) {
  const protobuf::Reflection& r = *message.GetReflection();
  const bool repeated = field.is_repeated();
  auto bad = [&](absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": invalid value \"", value, "\" (expected ", expected, ")"));
  };
  switch (field.cpp_type()) {
    case protobuf::FieldDescriptor::CPPTYPE_STRING:
      if (field.type() == protobuf::FieldDescriptor::TYPE_STRING && !IsValidUtf8(value)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": not valid UTF-8"));
      }
      repeated ? r.AddString(&message, &field, std::string(value))
               : r.SetString(&message, &field, std::string(value));
      return absl::OkStatus();
    case protobuf::FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("int32");
      repeated ? r.AddInt32(&message, &field, v) : r.SetInt32(&message, &field, v);
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("int64");
      repeated ? r.AddInt64(&message, &field, v) : r.SetInt64(&message, &field, v);
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("uint32");
      repeated ? r.AddUInt32(&message, &field, v) : r.SetUInt32(&message, &field, v);
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("uint64");
      repeated ? r.AddUInt64(&message, &field, v) : r.SetUInt64(&message, &field, v);
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
    case protobuf::FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) return bad("number");
      if (field.cpp_type() == protobuf::FieldDescriptor::CPPTYPE_FLOAT) {
        repeated ? r.AddFloat(&message, &field, static_cast<float>(v))
                 : r.SetFloat(&message, &field, static_cast<float>(v));
      } else {
        repeated ? r.AddDouble(&message, &field, v) : r.SetDouble(&message, &field, v);
      }
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (value == "true" || value == "1") {
        v = true;
      } else if (value == "false" || value == "0") {
        v = false;
      } else {
        return bad("true or false");
      }
      repeated ? r.AddBool(&message, &field, v) : r.SetBool(&message, &field, v);
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_ENUM: {
      const protobuf::EnumValueDescriptor* e =
          field.enum_type()->FindValueByName(std::string(value));
      int number;
      if (e == nullptr && absl::SimpleAtoi(value, &number)) {
        e = field.enum_type()->FindValueByNumber(number);
      }
      if (e == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": unknown value \"", value, "\" of ",
                                                       field.enum_type()->full_name()));
      }
      repeated ? r.AddEnum(&message, &field, e) : r.SetEnum(&message, &field, e);
      return absl::OkStatus();
    }
    case protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": a message field cannot be set from a path or query value"));
}

// Sets `field_path` ("a.b.c", proto or JSON names) of `message` from text.
absl::Status SetFieldFromString(protobuf::Message& message, absl::string_view field_path,
                                absl::string_view value, bool from_query) {
  protobuf::Message* target = &message;
  std::vector<absl::string_view> parts = absl::StrSplit(field_path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const protobuf::FieldDescriptor* field = FindField(target->GetDescriptor(), parts[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(from_query ? "query parameter " : "path variable ", field_path,
                       ": no field \"", parts[i], "\" in ", target->GetDescriptor()->full_name()));
    }
    if (i + 1 == parts.size()) {
      if (field->is_map() || (field->is_repeated() && !from_query)) {
        return absl::InvalidArgumentError(
            absl::StrCat(field_path, ": cannot be set from a path variable"));
      }
      return SetScalarFromString(*target, *field, value, field_path);
    }
    if (field->cpp_type() != protobuf::FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field_path, ": \"", parts[i], "\" is not a singular message field"));
    }
    target = target->GetReflection()->MutableMessage(target, field);
  }
  return absl::OkStatus();
}

std::string QueryDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size() &&
               absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      int v = 0;
      absl::SimpleHexAtoi(in.substr(i + 1, 2), &v);
      out.push_back(static_cast<char>(v));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// Protobuf's JSON errors say what is wrong but not always where; prefix them,
// and drop the caret diagram some of them append.
absl::Status BodyError(absl::string_view message) {
  message = absl::StripAsciiWhitespace(message.substr(0, message.find('\n')));
  return absl::InvalidArgumentError(absl::StrCat("request body: ", message));
}

absl::Status ParseJsonInto(absl::string_view json, protobuf::Message& message) {
  protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = protobuf::util::JsonStringToMessage(protobuf::StringPiece(json.data(), json.size()),
                                                    &message, options);
  if (!status.ok())
    return BodyError(absl::string_view(status.message().data(), status.message().size()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<protobuf::Message>> BuildRequest(
    const Binding& binding, const HttpRequest& http, const PathTemplate::Bindings& vars) {
  const protobuf::Descriptor* type = binding.method->input_type();
  std::unique_ptr<protobuf::Message> message(
      protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  absl::string_view body = absl::StripAsciiWhitespace(http.body);
  if (!binding.body.empty() && !body.empty()) {
    if (binding.body == "*") {
      FLOWORK_RETURN_IF_ERROR(ParseJsonInto(body, *message));
    } else {
      // Wrap so one parser handles messages, scalars and lists alike.
      FLOWORK_RETURN_IF_ERROR(
          ParseJsonInto(absl::StrCat("{\"", binding.body, "\":", body, "}"), *message));
    }
  }
  for (const auto& [field_path, value] : vars) {
    FLOWORK_RETURN_IF_ERROR(SetFieldFromString(*message, field_path, value, false));
  }
  absl::string_view query = internal::ToAbsl(http.query());
  if (!query.empty()) {
    if (binding.body == "*") {
      return absl::InvalidArgumentError(
          "query parameters are not accepted here: every field comes from the body");
    }
    for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      size_t eq = pair.find('=');
      std::string key = QueryDecode(pair.substr(0, eq));
      std::string value = eq == absl::string_view::npos ? "" : QueryDecode(pair.substr(eq + 1));
      FLOWORK_RETURN_IF_ERROR(SetFieldFromString(*message, key, value, true));
    }
  }
  return message;
}

// HTTP request headers passed on to the service as gRPC metadata (lower-case
// names): who calls, where their data may go, and how to trace the call.
constexpr const char* kForwardedHeaders[] = {"authorization",     "x-api-key",    "x-flowork-zone",
                                             "x-flowork-session", "x-request-id", "traceparent"};

// Only values gRPC accepts as ASCII metadata; anything else is left out.
bool IsMetadataValue(absl::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

void ForwardHeaders(const HttpRequest& http, grpc::ClientContext& context) {
  for (const char* name : kForwardedHeaders) {
    const std::string* value = http.FindHeader(name);
    if (value != nullptr && IsMetadataValue(*value)) context.AddMetadata(name, *value);
  }
}

grpc::ByteBuffer Serialize(const protobuf::Message& message) {
  grpc::ByteBuffer buffer;
  bool own = false;
  grpc::SerializationTraits<protobuf::Message>::Serialize(message, &buffer, &own);
  return buffer;
}

absl::StatusOr<std::string> ResponseJson(const Binding& binding, grpc::ByteBuffer& buffer) {
  const protobuf::Descriptor* type = binding.method->output_type();
  std::unique_ptr<protobuf::Message> message(
      protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  grpc::Status parsed =
      grpc::SerializationTraits<protobuf::Message>::Deserialize(&buffer, message.get());
  if (!parsed.ok()) return absl::InternalError("cannot parse the service's response");
  std::string json;
  protobuf::util::JsonPrintOptions options;
  protobuf::util::Status printed;
  if (!binding.response_body.empty()) {
    const protobuf::FieldDescriptor* field = FindField(type, binding.response_body);
    // Print the one field through a wrapper and cut the braces off.
    std::unique_ptr<protobuf::Message> only(message->New());
    std::vector<const protobuf::FieldDescriptor*> fields = {field};
    only->GetReflection()->SwapFields(message.get(), only.get(), fields);
    options.always_print_primitive_fields = true;
    printed = protobuf::util::MessageToJsonString(*only, &json, options);
    size_t colon = json.find(':');
    if (printed.ok() && colon != std::string::npos && json.size() >= colon + 2) {
      json = json.substr(colon + 1, json.size() - colon - 2);
    }
  } else {
    printed = protobuf::util::MessageToJsonString(*message, &json, options);
  }
  if (!printed.ok()) return absl::InternalError(std::string(printed.message()));
  return json;
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string SseEvent(absl::string_view event, absl::string_view data) {
  std::string out;
  if (!event.empty()) absl::StrAppend(&out, "event: ", event, "\n");
  absl::StrAppend(&out, "data: ", data, "\n\n");
  return out;
}

// One unary call in flight. Shared so a late cancel finds it or nothing.
class UnaryCall : public std::enable_shared_from_this<UnaryCall> {
 public:
  UnaryCall(std::shared_ptr<const Binding> binding, std::unique_ptr<HttpResponseWriter> writer)
      : binding_(std::move(binding)), writer_(std::move(writer)) {}

  void Start(grpc::GenericStub& stub, const HttpRequest& http, const protobuf::Message& request,
             absl::Duration deadline) {
    request_ = Serialize(request);
    ForwardHeaders(http, context_);
    context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    writer_->OnCancel([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->context_.TryCancel();
    });
    stub.UnaryCall(&context_, binding_->grpc_method, grpc::StubOptions(), &request_, &response_,
                   [self = shared_from_this()](grpc::Status status) { self->Done(status); });
  }

 private:
  void Done(const grpc::Status& status) {
    if (!status.ok()) return writer_->Send(JsonError(FromGrpc(status)));
    absl::StatusOr<std::string> json = ResponseJson(*binding_, response_);
    if (!json.ok()) return writer_->Send(JsonError(json.status()));
    writer_->Send({.status = 200,
                   .headers = {{"Content-Type", "application/json"}},
                   .body = *std::move(json)});
  }

  std::shared_ptr<const Binding> binding_;  // Keeps the transcoder's state alive.
  std::unique_ptr<HttpResponseWriter> writer_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

// One server-streaming call: each message becomes an SSE `data:` event.
class StreamingCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamingCall(std::shared_ptr<const Binding> binding, std::unique_ptr<HttpResponseWriter> writer)
      : binding_(std::move(binding)), writer_(std::move(writer)) {}

  static void Start(std::shared_ptr<StreamingCall> call, grpc::GenericStub& stub,
                    const HttpRequest& http, const protobuf::Message& request,
                    absl::Duration deadline) {
    call->self_ = call;
    call->request_ = Serialize(request);
    ForwardHeaders(http, call->context_);
    call->context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    call->writer_->OnCancel([weak = std::weak_ptr<StreamingCall>(call)] {
      if (auto self = weak.lock()) self->context_.TryCancel();
    });
    stub.PrepareBidiStreamingCall(&call->context_, call->binding_->grpc_method, grpc::StubOptions(),
                                  call.get());
    call->StartWriteLast(&call->request_, grpc::WriteOptions());
    call->StartRead(&call->response_);
    call->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status.
    absl::StatusOr<std::string> json = ResponseJson(*binding_, response_);
    if (!json.ok()) {
      failure_ = json.status();
      context_.TryCancel();
      return;
    }
    if (!started_) {
      started_ = true;
      writer_->StartStream(200,
                           {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}});
    }
    // Read the next message only once this one is on the socket, so a slow
    // client slows the stream down instead of piling it up in memory.
    // The hold keeps OnDone (which frees this) from running meanwhile.
    AddHold();
    writer_->WriteAndNotify(SseEvent("", *json), [this](bool written) {
      if (written) {
        StartRead(&response_);
      } else {
        context_.TryCancel();  // The client left.
      }
      RemoveHold();
    });
  }

  void OnDone(const grpc::Status& status) override {
    absl::Status result = failure_.ok() ? FromGrpc(status) : failure_;
    if (!started_) {
      if (result.ok()) {
        writer_->StartStream(
            200, {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}});
        writer_->Finish();
      } else {
        writer_->Send(JsonError(result));
      }
    } else {
      if (!result.ok()) writer_->Write(SseEvent("error", StatusToJson(result)));
      writer_->Finish();
    }
    writer_.reset();
    self_.reset();  // May destroy this.
  }

 private:
  std::shared_ptr<const Binding> binding_;  // Keeps the transcoder's state alive.
  std::unique_ptr<HttpResponseWriter> writer_;
  std::shared_ptr<StreamingCall> self_;  // Alive until OnDone.
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  bool started_ = false;
  absl::Status failure_;
};

absl::Status AddBindings(const protobuf::MethodDescriptor* method,
                         const google::api::HttpRule& rule, bool top_level,
                         std::vector<Binding>& bindings) {
  std::string http_method;
  std::string path;
  switch (rule.pattern_case()) {
    case google::api::HttpRule::kGet:
      http_method = "GET", path = rule.get();
      break;
    case google::api::HttpRule::kPut:
      http_method = "PUT", path = rule.put();
      break;
    case google::api::HttpRule::kPost:
      http_method = "POST", path = rule.post();
      break;
    case google::api::HttpRule::kDelete:
      http_method = "DELETE", path = rule.delete_();
      break;
    case google::api::HttpRule::kPatch:
      http_method = "PATCH", path = rule.patch();
      break;
    case google::api::HttpRule::kCustom:
      http_method = rule.custom().kind(), path = rule.custom().path();
      break;
    case google::api::HttpRule::PATTERN_NOT_SET:
      return absl::InvalidArgumentError(
          absl::StrCat(method->full_name(), ": google.api.http rule without a pattern"));
  }
  absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(path);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(method->full_name(), ": ", parsed.status().message()));
  }
  const protobuf::Descriptor* input = method->input_type();
  if (!rule.body().empty() && rule.body() != "*" && FindField(input, rule.body()) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(method->full_name(), ": body field \"",
                                                   rule.body(), "\" not in ", input->full_name()));
  }
  if (!rule.response_body().empty() &&
      FindField(method->output_type(), rule.response_body()) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(method->full_name(), ": response_body \"",
                                                   rule.response_body(), "\" not found"));
  }
  if (method->client_streaming()) {
    return absl::InvalidArgumentError(
        absl::StrCat(method->full_name(), ": client streaming cannot be transcoded"));
  }
  for (const Binding& b : bindings) {
    if (b.http_method == http_method && b.path.text() == path) {
      return absl::InvalidArgumentError(absl::StrCat(http_method, " ", path, " is bound to both ",
                                                     b.method->full_name(), " and ",
                                                     method->full_name()));
    }
  }
  bindings.push_back({http_method, *std::move(parsed), rule.body(), rule.response_body(), method,
                      absl::StrCat("/", method->service()->full_name(), "/", method->name())});
  if (top_level) {
    for (const google::api::HttpRule& extra : rule.additional_bindings()) {
      FLOWORK_RETURN_IF_ERROR(AddBindings(method, extra, false, bindings));
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct HttpTranscoder::Impl {
  HttpTranscoderOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  std::vector<Binding> bindings;
};

HttpTranscoder::HttpTranscoder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpTranscoder::~HttpTranscoder() = default;

absl::StatusOr<std::unique_ptr<HttpTranscoder>> HttpTranscoder::Create(
    const std::vector<const protobuf::ServiceDescriptor*>& services,
    std::shared_ptr<grpc::Channel> channel, const HttpTranscoderOptions& options) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->channel = channel;
  impl->stub = std::make_unique<grpc::GenericStub>(channel);
  for (const protobuf::ServiceDescriptor* service : services) {
    if (service == nullptr) return absl::InvalidArgumentError("null service descriptor");
    for (int i = 0; i < service->method_count(); ++i) {
      const protobuf::MethodDescriptor* method = service->method(i);
      if (!method->options().HasExtension(google::api::http)) continue;
      FLOWORK_RETURN_IF_ERROR(AddBindings(method, method->options().GetExtension(google::api::http),
                                          true, impl->bindings));
    }
  }
  // Most specific first, so "/v1/x/{id}:cancel" is not taken for "/v1/x/{id}".
  std::stable_sort(
      impl->bindings.begin(), impl->bindings.end(),
      [](const Binding& a, const Binding& b) { return a.path.MoreSpecificThan(b.path); });
  return std::unique_ptr<HttpTranscoder>(new HttpTranscoder(std::move(impl)));
}

std::vector<std::string> HttpTranscoder::DescribeRoutes() const {
  std::vector<std::string> routes;
  for (const Binding& b : impl_->bindings) {
    routes.push_back(
        absl::StrCat(b.http_method, " ", b.path.text(), " -> ", b.method->full_name()));
  }
  return routes;
}

void HttpTranscoder::Handle(HttpRequest request, std::unique_ptr<HttpResponseWriter> writer) {
  const Binding* match = nullptr;
  PathTemplate::Bindings vars;
  bool path_known = false;
  for (const Binding& b : impl_->bindings) {
    std::optional<PathTemplate::Bindings> m = b.path.Match(internal::ToAbsl(request.path()));
    if (!m) continue;
    path_known = true;
    if (b.http_method != request.method) continue;
    match = &b;
    vars = *std::move(m);
    break;
  }
  if (match == nullptr) {
    absl::Status status = absl::NotFoundError(
        absl::StrCat("no route for ", request.method, " ", internal::ToAbsl(request.path())));
    HttpResponse response = JsonError(status);
    if (path_known) {
      response.status = 405;
      response.body = StatusToJson(absl::UnimplementedError(absl::StrCat(
          "method ", request.method, " not allowed on ", internal::ToAbsl(request.path()))));
    }
    return writer->Send(std::move(response));
  }
  absl::StatusOr<std::unique_ptr<protobuf::Message>> message = BuildRequest(*match, request, vars);
  if (!message.ok()) return writer->Send(JsonError(message.status()));
  std::shared_ptr<const Binding> binding(impl_, match);
  if (match->method->server_streaming()) {
    auto call = std::make_shared<StreamingCall>(binding, std::move(writer));
    StreamingCall::Start(std::move(call), *impl_->stub, request, **message,
                         impl_->options.call_deadline);
  } else {
    auto call = std::make_shared<UnaryCall>(binding, std::move(writer));
    call->Start(*impl_->stub, request, **message, impl_->options.call_deadline);
  }
}

}  // namespace flowork::core
