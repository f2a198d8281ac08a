#ifndef FLOWORK_TESTING_SERVER_PROCESS_H_
#define FLOWORK_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowork::testing {

// A Flowork server binary run as a child process for integration tests.
// Start waits for its "serving http=HOST:PORT [grpc=HOST:PORT]" log line
// and learns the ports from it, so servers can listen on port 0.
class ServerProcess {
 public:
  // Runs `binary` (an absolute path) with `args` in a fresh temporary
  // working directory; everything it logs is kept for diagnostics.
  static absl::StatusOr<ServerProcess> Start(const std::string& binary,
                                             const std::vector<std::string>& args,
                                             absl::Duration timeout = absl::Seconds(20));

  ServerProcess(ServerProcess&& other) noexcept;
  ServerProcess& operator=(ServerProcess&&) = delete;
  ~ServerProcess();  // SIGKILLs a process still running.

  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  std::string grpc_target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }

  // Sends `signal` and waits up to `timeout` for the exit status (as from
  // waitpid's WEXITSTATUS; -1 if it died of a signal). kDeadlineExceeded if
  // it has not exited by then (it is then killed).
  absl::StatusOr<int> Stop(int signal, absl::Duration timeout);

  // Sends `signal` without waiting.
  void SendSignal(int signal);

  // Reads the process's stderr until `text` appears (true) or `timeout`.
  bool WaitForLog(const std::string& text, absl::Duration timeout = absl::Seconds(10));

  // What the process wrote to stderr so far.
  const std::string& log() const { return log_; }

 private:
  ServerProcess() = default;
  // Reads whatever stderr has available within `timeout`.
  void ReadLog(absl::Duration timeout);

  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  int http_port_ = 0;
  int grpc_port_ = 0;
  std::string log_;
};

// ServerProcess::Start, for a test that cannot go on without the server: a
// failure is reported (ADD_FAILURE) and the test binary aborts.
ServerProcess StartOrAbort(const std::string& binary, const std::vector<std::string>& args);

// A fresh directory under the test's temporary directory.
std::string MakeTempDir();

// Writes `content` to `path`; aborts the test on failure.
void WriteFile(const std::string& path, const std::string& content);

}  // namespace flowork::testing

#endif  // FLOWORK_TESTING_SERVER_PROCESS_H_
