#include "tools/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace flowork::agent::internal {
namespace {

std::string ErrnoText(int error) {
  char buffer[256];
  // The GNU strerror_r returns the message (maybe not in `buffer`).
  return strerror_r(error, buffer, sizeof(buffer));
}

// Closes the descriptors it holds unless released.
struct PipePair {
  int fds[2] = {-1, -1};
  ~PipePair() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  int Release(int i) { return std::exchange(fds[i], -1); }
};

absl::Status SpawnError(const ChildProcessOptions& options, int error) {
  std::string message = absl::StrCat("cannot run \"", options.command, "\": ", ErrnoText(error));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// The parent's environment with `extra` added (a name in `extra` wins).
std::vector<std::string> ChildEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view item(*entry);
    std::string name(item.substr(0, item.find('=')));
    if (!extra.contains(name)) env.emplace_back(item);
  }
  for (const auto& [name, value] : extra) env.push_back(absl::StrCat(name, "=", value));
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const ChildProcessOptions& options) {
  if (options.command.empty()) return absl::InvalidArgumentError("command: empty");
  if (!options.working_dir.empty()) {
    struct stat st;
    if (::stat(options.working_dir.c_str(), &st) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("working_dir \"", options.working_dir, "\": ", ErrnoText(errno)));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("working_dir \"", options.working_dir, "\": not a directory"));
    }
  }

  PipePair in, out, err;
  for (PipePair* pipe : {&in, &out, &err}) {
    if (::pipe2(pipe->fds, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe2: ", ErrnoText(errno)));
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fds[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.fds[1], STDERR_FILENO);
  // Whatever else the parent has open (sockets, other servers' pipes) stays
  // out of the child, even descriptors opened without O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }

  // A server process may have blocked or ignored signals; the child starts
  // clean, in its own process group so a terminal's Ctrl-C reaches only the
  // client, which then stops the server itself.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) {
    sigaddset(&defaults, signal);
  }
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> argv_strings;
  argv_strings.push_back(options.command);
  argv_strings.insert(argv_strings.end(), options.args.begin(), options.args.end());
  std::vector<std::string> env_strings = ChildEnvironment(options.env);
  std::vector<char*> argv = Pointers(argv_strings);
  std::vector<char*> envp = Pointers(env_strings);

  pid_t pid = -1;
  // glibc reports exec failures (ENOENT, EACCES) from posix_spawn itself.
  const bool search_path = options.command.find('/') == std::string::npos;
  int error = search_path ? posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data())
                          : posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (error != 0) return SpawnError(options, error);

  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, in.Release(1), out.Release(0), err.Release(0)));
}

ChildProcess::ChildProcess(pid_t pid, int stdin_fd, int stdout_fd, int stderr_fd)
    : pid_(pid), stdin_fd_(stdin_fd), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}

ChildProcess::~ChildProcess() {
  for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

int ChildProcess::TakeStdin() { return std::exchange(stdin_fd_, -1); }
int ChildProcess::TakeStdout() { return std::exchange(stdout_fd_, -1); }
int ChildProcess::TakeStderr() { return std::exchange(stderr_fd_, -1); }

bool ChildProcess::TryReap() {
  absl::MutexLock lock(&mu_);
  if (reaped_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    wait_status_ = status;
  } else if (r < 0 && errno == ECHILD) {
    // Reaped elsewhere (SIGCHLD ignored, or a waitpid(-1) in the program).
    reaped_ = true;
  }
  return reaped_;
}

std::string ChildProcess::ExitDescription() {
  absl::MutexLock lock(&mu_);
  if (!reaped_) return "";
  if (wait_status_ < 0) return "exited";
  if (WIFEXITED(wait_status_))
    return absl::StrCat("exited with status ", WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_))
    return absl::StrCat("was killed by signal ", WTERMSIG(wait_status_));
  return "exited";
}

bool ChildProcess::WaitForExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // Polling keeps this free of SIGCHLD handlers, which belong to the program.
  while (!TryReap()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

void ChildProcess::SignalGroup(int signal) {
  absl::MutexLock lock(&mu_);
  // Once reaped, the pid may belong to someone else.
  if (!reaped_) ::kill(-pid_, signal);
}

void ChildProcess::Stop(absl::Duration grace) {
  if (WaitForExit(grace)) return;
  SignalGroup(SIGTERM);
  if (WaitForExit(grace)) return;
  SignalGroup(SIGKILL);
  WaitForExit(absl::InfiniteDuration());
}

}  // namespace flowork::agent::internal
