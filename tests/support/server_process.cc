#include "flowork/testing/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace flowork::testing {

absl::StatusOr<ServerProcess> ServerProcess::Start(const std::string& binary,
                                                   const std::vector<std::string>& args,
                                                   absl::Duration timeout) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Each server runs in a directory of its own, so files it makes by default
  // (./flowork-audit.db, ./flowork-keys.db, ...) are never shared with another
  // test running at the same time. Paths passed in are absolute.
  const std::string workdir = MakeTempDir();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(pipe_fds[1], STDERR_FILENO);
    if (chdir(workdir.c_str()) != 0) _exit(126);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  ServerProcess process;
  process.pid_ = pid;
  process.stderr_fd_ = pipe_fds[0];
  // gRPC is optional: flowork-mockllm serves HTTP only.
  const std::regex serving("serving http=[^ ]*:([0-9]+)( grpc=[^ ]*:([0-9]+))?");
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    process.ReadLog(absl::Milliseconds(100));
    std::smatch m;
    if (std::regex_search(process.log_, m, serving)) {
      process.http_port_ = std::stoi(m[1]);
      process.grpc_port_ = m[3].matched ? std::stoi(m[3]) : 0;
      return process;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      process.pid_ = -1;
      process.ReadLog(absl::Milliseconds(100));
      return absl::FailedPreconditionError(
          absl::StrCat(binary, " exited before serving; its log:\n", process.log_));
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat(binary, " did not report serving in time; its log:\n", process.log_));
}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept
    : pid_(other.pid_),
      stderr_fd_(other.stderr_fd_),
      http_port_(other.http_port_),
      grpc_port_(other.grpc_port_),
      log_(std::move(other.log_)) {
  other.pid_ = -1;
  other.stderr_fd_ = -1;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

void ServerProcess::ReadLog(absl::Duration timeout) {
  if (stderr_fd_ < 0) return;
  pollfd fd{stderr_fd_, POLLIN, 0};
  if (poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return;
  char buffer[4096];
  ssize_t n = read(stderr_fd_, buffer, sizeof(buffer));
  if (n > 0) log_.append(buffer, n);
}

absl::StatusOr<int> ServerProcess::Stop(int signal, absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, signal);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ReadLog(absl::ZeroDuration());
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    ReadLog(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("still running");
}

void ServerProcess::SendSignal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

bool ServerProcess::WaitForLog(const std::string& text, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (log_.find(text) == std::string::npos) {
    if (absl::Now() >= deadline) return false;
    ReadLog(absl::Milliseconds(50));
  }
  return true;
}

ServerProcess StartOrAbort(const std::string& binary, const std::vector<std::string>& args) {
  absl::StatusOr<ServerProcess> server = ServerProcess::Start(binary, args);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  return *std::move(server);
}

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "flowork-XXXXXX";
  char* made = mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr);
  return pattern;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

}  // namespace flowork::testing
