#ifndef FLOWORK_AGENT_TOOLS_CHILD_PROCESS_H_
#define FLOWORK_AGENT_TOOLS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace flowork::agent::internal {

// What to run and where.
struct ChildProcessOptions {
  // Found on PATH when it has no '/'; executed directly, no shell.
  std::string command;
  std::vector<std::string> args;
  // Added to the parent's environment.
  std::map<std::string, std::string> env;
  // Empty: the parent's.
  std::string working_dir;
};

// A child process with its stdin, stdout and stderr on pipes, in a process
// group of its own (so a signal reaches whatever it started). The child
// starts with the default signal mask and dispositions and inherits no other
// descriptor. Thread-safe; the destructor does not wait for the child (call
// Stop first).
class ChildProcess {
 public:
  // kInvalidArgument: no command or no such working_dir. kNotFound /
  // kPermissionDenied: the command cannot be executed.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const ChildProcessOptions& options);

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // The parent's ends of the pipes. The caller takes each one over (and
  // closes it); -1 afterwards.
  int TakeStdin();
  int TakeStdout();
  int TakeStderr();

  // True once the child has exited and was reaped. Does not block.
  bool TryReap();

  // How the child ended, e.g. "exited with status 3" or "was killed by
  // signal 9"; empty while it runs.
  std::string ExitDescription();

  // Waits `grace` for the child to exit, then sends SIGTERM to its group and
  // waits `grace` again, then SIGKILL; reaps it. Blocks.
  void Stop(absl::Duration grace);

 private:
  ChildProcess(pid_t pid, int stdin_fd, int stdout_fd, int stderr_fd);
  bool WaitForExit(absl::Duration timeout);
  void SignalGroup(int signal);

  const pid_t pid_;
  int stdin_fd_;
  int stdout_fd_;
  int stderr_fd_;

  absl::Mutex mu_;
  bool reaped_ ABSL_GUARDED_BY(mu_) = false;
  // waitpid's status; -1 when unknown (someone else reaped the child).
  int wait_status_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_TOOLS_CHILD_PROCESS_H_
