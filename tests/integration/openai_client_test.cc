// The official `openai` npm client, run by node, against flowork-router in
// front of flowork-mockllm: what users of any OpenAI SDK will meet first.
// scripts/bootstrap installs node and tests/integration/openai_node's
// node_modules; without them this test fails and says so.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
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

constexpr char kBootstrapHint[] = "run scripts/bootstrap to install node and the openai client";

// A router with route "chat" over one mock answering "hi" with
// "Mock answer to: hi." in 4 tokens, streamed as 4 deltas.
class OpenAiNodeClientTest : public ::testing::Test {
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
  - {name: m1, provider: mock, upstream_model: mock-1, capabilities: [chat]}
routes:
  - {name: chat, candidates: [m1]}
)yaml"));
    router_.emplace(StartOrAbort(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
  }

  std::optional<ServerProcess> mock_;
  std::optional<ServerProcess> router_;
};

TEST_F(OpenAiNodeClientTest, ListsModelsChatsAndStreams) {
  const std::optional<std::string> node = FindOnPath("node");
  ASSERT_TRUE(node.has_value()) << "node is not on PATH; " << kBootstrapHint;
  const std::string node_dir = FLOWORK_OPENAI_NODE_DIR;
  ASSERT_TRUE(std::filesystem::exists(node_dir + "/node_modules/openai/package.json"))
      << node_dir << "/node_modules has no openai package; " << kBootstrapHint;

  absl::StatusOr<ChildResult> run =
      RunChild({*node, node_dir + "/openai_client.mjs",
                absl::StrCat("http://127.0.0.1:", router_->http_port(), "/v1")},
               absl::Seconds(60));
  ASSERT_TRUE(run.ok()) << run.status() << "\nrouter log:\n" << router_->log();
  EXPECT_EQ(run->exit_code, 0) << "openai_client.mjs output:\n"
                               << run->output << "\nrouter log:\n"
                               << router_->log();
}

}  // namespace
}  // namespace flowork
