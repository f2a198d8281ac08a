// The flowork-mockllm binary as a process: starts on port 0, says where it
// serves, answers, and stops cleanly on SIGTERM.
//
// flowork::testing::ServerProcess expects servers with an HTTP and a gRPC
// port ("serving http=... grpc=..."); the mock has no gRPC and logs only
// "flowork-mockllm serving http=HOST:PORT", so this test runs it itself
// rather than make the mock log a port it does not have.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "flowork/testing/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::mockllm {
namespace {

using ::testing::HasSubstr;

// A child process whose stderr the test reads. Killed if still running when
// destroyed.
class MockProcess {
 public:
  // Runs `binary` with `args` and waits up to `timeout` for its serving line.
  static absl::StatusOr<std::unique_ptr<MockProcess>> Start(const std::string& binary,
                                                            const std::vector<std::string>& args,
                                                            absl::Duration timeout) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      dup2(pipe_fds[1], STDERR_FILENO);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(pipe_fds[1]);
    auto process = std::unique_ptr<MockProcess>(new MockProcess(pid, pipe_fds[0]));
    const std::regex serving("flowork-mockllm serving http=[^ ]*:([0-9]+)");
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      process->ReadLog(absl::Milliseconds(100));
      std::smatch match;
      if (std::regex_search(process->log_, match, serving)) {
        process->port_ = std::stoi(match[1]);
        return process;
      }
      if (process->Exited().has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("exited early; log:\n", process->log_));
      }
    }
    return absl::DeadlineExceededError(absl::StrCat("no serving line; log:\n", process->log_));
  }

  ~MockProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(stderr_fd_);
  }

  int port() const { return port_; }
  const std::string& log() const { return log_; }

  // Sends `signal`; the exit status if the process exits within `timeout`
  // (-1 when a signal killed it).
  std::optional<int> Stop(int signal, absl::Duration timeout) {
    kill(pid_, signal);
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (std::optional<int> status = Exited()) {
        ReadLog(absl::ZeroDuration());
        return status;
      }
      ReadLog(absl::Milliseconds(20));  // Also paces the loop.
    }
    return std::nullopt;
  }

 private:
  MockProcess(pid_t pid, int stderr_fd) : pid_(pid), stderr_fd_(stderr_fd) {}

  std::optional<int> Exited() {
    int status = 0;
    if (pid_ <= 0 || waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  void ReadLog(absl::Duration timeout) {
    pollfd readable{.fd = stderr_fd_, .events = POLLIN, .revents = 0};
    if (poll(&readable, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return;
    char buffer[4096];
    const ssize_t n = read(stderr_fd_, buffer, sizeof(buffer));
    if (n > 0) log_.append(buffer, static_cast<size_t>(n));
  }

  pid_t pid_;
  int stderr_fd_;
  int port_ = 0;
  std::string log_;
};

TEST(MockLlmProcessTest, ServesModelsAndExitsCleanlyOnSigterm) {
  absl::StatusOr<std::unique_ptr<MockProcess>> process = MockProcess::Start(
      FLOWORK_MOCKLLM_BIN, {"--http=127.0.0.1:0", "--models=alpha,beta"}, absl::Seconds(20));
  ASSERT_TRUE(process.ok()) << process.status();

  absl::StatusOr<flowork::testing::ClientResponse> models =
      flowork::testing::HttpCall((*process)->port(), "GET", "/v1/models");
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(models->status, 200);
  EXPECT_THAT(models->body, HasSubstr(R"({"id":"alpha",)"));
  EXPECT_THAT(models->body, HasSubstr(R"({"id":"beta",)"));

  std::optional<int> exit_status = (*process)->Stop(SIGTERM, absl::Seconds(5));
  ASSERT_TRUE(exit_status.has_value()) << "still running 5 s after SIGTERM; log:\n"
                                       << (*process)->log();
  EXPECT_EQ(*exit_status, 0) << (*process)->log();
  EXPECT_THAT((*process)->log(), HasSubstr("flowork-mockllm stopped"));
}

TEST(MockLlmProcessTest, RefusesANonLoopbackAddress) {
  absl::StatusOr<std::unique_ptr<MockProcess>> process =
      MockProcess::Start(FLOWORK_MOCKLLM_BIN, {"--http=0.0.0.0:0"}, absl::Seconds(20));
  ASSERT_FALSE(process.ok());
  EXPECT_THAT(std::string(process.status().message()), HasSubstr("--allow_non_loopback"));
}

}  // namespace
}  // namespace flowork::mockllm
