#include "flowork/core/grpc/api_server.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "flowork/core/grpc/http_transcoder.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace flowork::core {
namespace {

// Answers a fixed response; /healthz.
class StaticHandler final : public HttpHandler {
 public:
  StaticHandler(std::string content_type, std::string body)
      : content_type_(std::move(content_type)), body_(std::move(body)) {}
  void Handle(HttpRequest, std::unique_ptr<HttpResponseWriter> writer) override {
    writer->Send({.status = 200, .headers = {{"Content-Type", content_type_}}, .body = body_});
  }

 private:
  const std::string content_type_;
  const std::string body_;
};

class ReadyHandler final : public HttpHandler {
 public:
  explicit ReadyHandler(const std::atomic<bool>& ready) : ready_(ready) {}
  void Handle(HttpRequest, std::unique_ptr<HttpResponseWriter> writer) override {
    const bool ready = ready_.load(std::memory_order_acquire);
    writer->Send({.status = ready ? 200 : 503,
                  .headers = {{"Content-Type", "text/plain"}},
                  .body = ready ? "ready\n" : "draining\n"});
  }

 private:
  const std::atomic<bool>& ready_;
};

class MetricsHandler final : public HttpHandler {
 public:
  explicit MetricsHandler(MetricsRegistry& metrics) : metrics_(metrics) {}
  void Handle(HttpRequest, std::unique_ptr<HttpResponseWriter> writer) override {
    writer->Send({.status = 200,
                  .headers = {{"Content-Type", "text/plain; version=0.0.4"}},
                  .body = metrics_.TextExposition()});
  }

 private:
  MetricsRegistry& metrics_;
};

std::string HostOf(absl::string_view address) {
  return std::string(address.substr(0, address.rfind(':')));
}

std::string WithPort(const std::string& host, int port) { return absl::StrCat(host, ":", port); }

class ApiServerImpl final : public ApiServer {
 public:
  explicit ApiServerImpl(MetricsRegistry* metrics)
      : owned_metrics_(metrics == nullptr ? MetricsRegistry::Create() : nullptr),
        metrics_(metrics == nullptr ? owned_metrics_.get() : metrics),
        ready_handler_(ready_),
        metrics_handler_(*metrics_) {}
  ~ApiServerImpl() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Start(const ApiServerOptions& options, std::vector<ApiService> services);

  int http_port() const override { return http_->port(); }
  int grpc_port() const override { return grpc_port_; }
  std::string http_address() const override { return WithPort(http_host_, http_port()); }
  std::string grpc_address() const override { return WithPort(grpc_host_, grpc_port_); }
  MetricsRegistry& metrics() override { return *metrics_; }
  void Shutdown(absl::Duration grace) override;

 private:
  const std::unique_ptr<MetricsRegistry> owned_metrics_;
  MetricsRegistry* const metrics_;
  std::atomic<bool> ready_{false};
  StaticHandler health_handler_{"text/plain", "ok\n"};
  ReadyHandler ready_handler_;
  MetricsHandler metrics_handler_;
  std::unique_ptr<grpc::Server> grpc_;
  int grpc_port_ = 0;
  std::string http_host_;
  std::string grpc_host_;
  std::unique_ptr<HttpTranscoder> transcoder_;
  HttpRouter router_;
  std::unique_ptr<HttpServer> http_;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status ApiServerImpl::Start(const ApiServerOptions& options,
                                  std::vector<ApiService> services) {
  std::vector<const google::protobuf::ServiceDescriptor*> descriptors;
  for (const ApiService& s : services) {
    const google::protobuf::ServiceDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(s.full_name);
    if (descriptor == nullptr || s.service == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown service \"", s.full_name, "\""));
    }
    descriptors.push_back(descriptor);
  }

  http_host_ = HostOf(options.http.address);
  grpc_host_ = HostOf(options.grpc_address);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Never share a port another server holds (gRPC sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.grpc_address, grpc::InsecureServerCredentials(), &grpc_port_);
  for (const ApiService& s : services) builder.RegisterService(s.service);
  grpc_ = builder.BuildAndStart();
  if (grpc_ == nullptr || grpc_port_ == 0) {
    grpc_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", options.grpc_address));
  }

  HttpTranscoderOptions transcoder_options;
  transcoder_options.call_deadline = options.call_deadline;
  FLOWORK_ASSIGN_OR_RETURN(
      transcoder_,
      HttpTranscoder::Create(descriptors, grpc_->InProcessChannel(grpc::ChannelArguments()),
                             transcoder_options));
  router_.Add("GET", "/healthz", health_handler_);
  router_.Add("GET", "/readyz", ready_handler_);
  router_.Add("GET", "/metrics", metrics_handler_);
  for (const auto& [route, handler] : options.extra_routes) {
    std::vector<std::string> parts = absl::StrSplit(route, absl::MaxSplits(' ', 1));
    if (parts.size() != 2 || handler == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("extra route \"", route, "\": expected \"METHOD /path\""));
    }
    router_.Add(parts[0], parts[1], *handler);
  }
  router_.SetFallback(*transcoder_);

  HttpServerOptions http_options = options.http;
  http_options.metrics = metrics_;
  FLOWORK_ASSIGN_OR_RETURN(http_, HttpServer::Create(http_options, router_));
  grpc_->GetHealthCheckService()->SetServingStatus(true);
  ready_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

void ApiServerImpl::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  ready_.store(false, std::memory_order_release);
  const absl::Time deadline = absl::Now() + grace;
  if (grpc_ != nullptr) grpc_->GetHealthCheckService()->SetServingStatus(false);
  if (http_ != nullptr) http_->Shutdown(grace);
  if (grpc_ != nullptr) {
    grpc_->Shutdown(absl::ToChronoTime(std::max(deadline, absl::Now())));
    grpc_->Wait();
  }
}

absl::Status CheckAddress(absl::string_view field, const std::string& address,
                          bool allow_non_loopback) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", address, "\" is not host:port"));
  }
  if (!allow_non_loopback && !IsLoopbackAddress(address)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": refusing to listen on non-loopback address \"", address,
        "\": this server does not authenticate callers yet, so it serves loopback only"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ApiServerOptions> ApiServerOptionsFromConfig(
    const flowork::common::v1::ListenConfig& listen, const flowork::common::v1::HttpLimits& limits,
    bool allow_non_loopback) {
  FLOWORK_RETURN_IF_ERROR(CheckAddress("listen.http", listen.http(), allow_non_loopback));
  FLOWORK_RETURN_IF_ERROR(CheckAddress("listen.grpc", listen.grpc(), allow_non_loopback));
  ApiServerOptions options;
  options.http.address = listen.http();
  options.grpc_address = listen.grpc();
  if (limits.max_header_bytes() > 0) options.http.max_header_bytes = limits.max_header_bytes();
  if (limits.max_body_bytes() > 0) options.http.max_body_bytes = limits.max_body_bytes();
  if (limits.idle_timeout_seconds() > 0) {
    options.http.idle_timeout = absl::Seconds(limits.idle_timeout_seconds());
  }
  options.http.threads = static_cast<int>(limits.threads());
  return options;
}

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Create(const ApiServerOptions& options,
                                                             std::vector<ApiService> services) {
  auto server = std::make_unique<ApiServerImpl>(options.metrics);
  FLOWORK_RETURN_IF_ERROR(server->Start(options, std::move(services)));
  return server;
}

}  // namespace flowork::core
