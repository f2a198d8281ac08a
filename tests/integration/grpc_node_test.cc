// Our gRPC API from another language: Node's @grpc/grpc-js, with the service
// loaded by @grpc/proto-loader from the .proto files in the source tree,
// calls flowork-router (in front of flowork-mockllm). scripts/bootstrap
// installs node and tests/integration/grpc_node's node_modules; without them
// this test fails and says so.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "flowork/testing/child_process.h"
#include "flowork/testing/server_process.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::ChildResult;
using ::flowork::testing::FindOnPath;
using ::flowork::testing::RunChild;
using ::flowork::testing::ServerProcess;
using ::flowork::testing::StartOrAbort;

constexpr char kBootstrapHint[] = "run scripts/bootstrap to install node and @grpc/grpc-js";

// A router with route "chat" over model "m1" on one mock answering "hi"
// with "Mock answer to: hi." in 4 tokens, streamed as 4 deltas.
class GrpcNodeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_.emplace(StartOrAbort(FLOWORK_MOCKLLM_BIN,
                               {"--http", "127.0.0.1:0", "--tokens", "4", "--chunks", "4"}));
    const std::string dir = testing::MakeTempDir();
    testing::WriteFile(dir + "/router.yaml",
                       absl::StrCat(R"yaml(
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
auth: {mode: none}
providers:
  - {name: mock, kind: openai, base_url: "http://127.0.0.1:)yaml",
                                    mock_->http_port(), R"yaml(/v1", zone: local}
models:
  - {name: m1, provider: mock, upstream_model: mock-1, capabilities: [chat, tools, embeddings]}
routes:
  - {name: chat, candidates: [m1]}
)yaml"));
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
  }

  std::optional<ServerProcess> mock_;
  std::optional<ServerProcess> router_;
};

TEST_F(GrpcNodeClientTest, ListsModelsChatsStreamsAndEmbeds) {
  const std::optional<std::string> node = FindOnPath("node");
  ASSERT_TRUE(node.has_value()) << "node is not on PATH; " << kBootstrapHint;
  const std::string node_dir = FLOWORK_GRPC_NODE_DIR;
  ASSERT_TRUE(std::filesystem::exists(node_dir + "/node_modules/@grpc/grpc-js/package.json"))
      << node_dir << "/node_modules has no @grpc/grpc-js; " << kBootstrapHint;
  ASSERT_GT(router_->grpc_port(), 0) << router_->log();

  absl::StatusOr<ChildResult> run =
      RunChild({*node, node_dir + "/router_client.mjs", router_->grpc_target()}, absl::Seconds(60));
  ASSERT_TRUE(run.ok()) << run.status() << "\nrouter log:\n" << router_->log();
  EXPECT_EQ(run->exit_code, 0) << "router_client.mjs output:\n"
                               << run->output << "\nrouter log:\n"
                               << router_->log();
  EXPECT_NE(run->output.find("router_client: ok"), std::string::npos) << run->output;
}

}  // namespace
}  // namespace flowork
