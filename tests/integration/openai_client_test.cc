// The official `openai` npm client, run by node, against flowork-router in
// front of flowork-mockllm: what users of any OpenAI SDK will meet first.
// scripts/bootstrap installs node and tests/integration/openai_node's
// node_modules; without them this test fails and says so.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "flowork/testing/server_process.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::flowork::testing::ServerProcess;

constexpr char kBootstrapHint[] = "run scripts/bootstrap to install node and the openai client";

ServerProcess Start(const std::string& binary, const std::vector<std::string>& args) {
  absl::StatusOr<ServerProcess> server = ServerProcess::Start(binary, args);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  return *std::move(server);
}

// The first executable `name` on $PATH, or nullopt.
std::optional<std::string> FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

struct ChildResult {
  int exit_code = -1;  // -1 if it died of a signal.
  std::string output;  // stdout and stderr, interleaved.
};

// Runs `argv` to completion with stdout and stderr captured.
// kDeadlineExceeded (with the output so far) if it outlives `timeout`; it is
// then killed.
absl::StatusOr<ChildResult> RunChild(const std::vector<std::string>& argv, absl::Duration timeout) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  std::vector<char*> raw_argv;
  for (const std::string& arg : argv) raw_argv.push_back(const_cast<char*>(arg.c_str()));
  raw_argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    execv(raw_argv[0], raw_argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  ChildResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool open = true;
  while (open) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
    if (n > 0) {
      result.output.append(buffer, n);
    } else if (n == 0 || errno != EINTR) {
      open = false;  // EOF: the child (and anything it started) closed the pipe.
    }
  }
  close(pipe_fds[0]);
  if (open) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " still running after ",
                                                    absl::FormatDuration(timeout),
                                                    "; its output:\n", result.output));
  }
  // Output closed: the child is exiting; bound the wait anyway.
  while (true) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return result;
    }
    if (absl::Now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return absl::DeadlineExceededError(absl::StrCat(
          argv[0], " closed its output but did not exit; its output:\n", result.output));
    }
    absl::SleepFor(absl::Milliseconds(10));  // Polling waitpid; nothing to block on.
  }
}

// A router with route "chat" over one mock answering "hi" with
// "Mock answer to: hi." in 4 tokens, streamed as 4 deltas.
class OpenAiNodeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_.emplace(
        Start(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0", "--tokens", "4", "--chunks", "4"}));
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
    router_.emplace(Start(FLOWORK_ROUTER_BIN, {"--config", dir + "/router.yaml"}));
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
