// Linked into every test binary that uses gRPC (see flowork_add_test).
//
// gRPC (1.51, as Debian ships it) serves the callback API from one
// process-wide completion queue when its I/O manager does not run in the
// background, which is the case here. Each channel and server that uses the
// callback API holds a reference to it; when the last one goes, gRPC shuts
// the queue down and joins its threads, and a new channel builds it again.
// Test binaries that start a server and a channel per test run that teardown
// between tests, and it races: ASan saw a double free in
// grpc_cq_internal_unref on one of gRPC's threads. Holding one channel that
// has made a callback call for the whole run keeps the queue up until exit.
#include <chrono>
#include <memory>

#include "absl/synchronization/notification.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "gtest/gtest.h"

namespace flowork::testing {
namespace {

class HoldGrpcCallbackQueue final : public ::testing::Environment {
 public:
  void SetUp() override {
    // Never destroyed: its reference to the queue lasts until the process ends.
    static auto* const channel = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
    grpc::GenericStub stub(*channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(10));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), response;
    absl::Notification done;
    // Fails (nothing listens on port 1); what matters is that the channel
    // took its reference to the callback queue.
    stub.UnaryCall(&context, "/flowork.testing.Hold/Hold", grpc::StubOptions(), &request, &response,
                   [&done](const grpc::Status&) { done.Notify(); });
    done.WaitForNotification();
  }
};

[[maybe_unused]] ::testing::Environment* const kHold =
    ::testing::AddGlobalTestEnvironment(new HoldGrpcCallbackQueue);

}  // namespace
}  // namespace flowork::testing
