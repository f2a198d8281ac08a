// README command 1 as a user runs it: scripts/run in the background (on the
// test build's binaries and the mock model), then the curl it prints,
// pasted into a shell: the task must succeed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "flowork/testing/child_process.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The line after the one containing `marker`, once the output has it.
std::string LineAfter(const std::string& output, const std::string& marker) {
  std::vector<std::string> lines = absl::StrSplit(output, '\n');
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    if (absl::StrContains(lines[i], marker)) {
      return std::string(absl::StripAsciiWhitespace(lines[i + 1]));
    }
  }
  return "";
}

TEST(QuickstartTest, TheCurlThatScriptsRunPrintsRunsATaskToSuccess) {
  const std::string state = testing::MakeTempDir();
  const std::string log = state + "/run.log";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);  // Its own group: the test stops the script and its servers together.
    const std::string command = absl::StrCat(
        "FLOWORK_BIN_DIR='", FLOWORK_BUILD_DIR, "' FLOWORK_MODEL=mock FLOWORK_STATE_DIR='", state,
        "' exec '", FLOWORK_SOURCE_DIR, "/scripts/run' > '", log, "' 2>&1");
    execl("/bin/bash", "bash", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  std::string curl;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (curl.empty() && absl::Now() < deadline) {
    curl = LineAfter(ReadAll(log), "Submit a task to the agent and stream its events:");
    int status;
    if (curl.empty() && waitpid(pid, &status, WNOHANG) == pid) break;  // It gave up.
    if (curl.empty()) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(curl, HasSubstr("curl")) << "scripts/run printed no curl:\n" << ReadAll(log);

  absl::StatusOr<testing::ChildResult> ran =
      testing::RunChild({"/bin/bash", "-c", curl}, absl::Seconds(60));
  // The example clients (examples/clients) against the same stack.
  const std::string clients = std::string(FLOWORK_SOURCE_DIR) + "/examples/clients";
  std::vector<std::pair<std::string, std::vector<std::string>>> examples = {
      {"C++ (gRPC)", {FLOWORK_AGENT_CLIENT, "assistant", "Hi from C++"}}};
  if (std::optional<std::string> python = testing::FindOnPath("python3")) {
    examples.push_back(
        {"Python", {*python, clients + "/python/agent_client.py", "assistant", "Hi from Python"}});
  }
  if (std::optional<std::string> node = testing::FindOnPath("node")) {
    examples.push_back(
        {"Node", {*node, clients + "/node/client.mjs", "assistant", "Hi from Node"}});
  }
  std::vector<absl::StatusOr<testing::ChildResult>> example_runs;
  for (const auto& [name, argv] : examples) {
    example_runs.push_back(testing::RunChild(argv, absl::Seconds(60)));
  }
  kill(-pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->exit_code, 0) << ran->output;
  EXPECT_THAT(ran->output, HasSubstr("dev.flowork.task.created"));
  EXPECT_THAT(ran->output, HasSubstr("\"state\":\"TASK_STATE_SUCCEEDED\"")) << ran->output;
  EXPECT_THAT(ran->output, HasSubstr("Mock answer to: Say hello."));
  ASSERT_EQ(examples.size(), 3u) << "python3 and node are installed by scripts/bootstrap";
  for (size_t i = 0; i < examples.size(); ++i) {
    ASSERT_TRUE(example_runs[i].ok()) << examples[i].first << ": " << example_runs[i].status();
    EXPECT_EQ(example_runs[i]->exit_code, 0) << examples[i].first << ":\n"
                                             << example_runs[i]->output;
    EXPECT_THAT(example_runs[i]->output, HasSubstr("state: TASK_STATE_SUCCEEDED"))
        << examples[i].first;
    EXPECT_THAT(example_runs[i]->output, HasSubstr("Mock answer to: Hi from"))
        << examples[i].first << ":\n"
        << example_runs[i]->output;
  }
  // Ctrl-C (here SIGTERM) stops everything cleanly.
  EXPECT_TRUE(WIFEXITED(status)) << ReadAll(log);
  EXPECT_THAT(ReadAll(log), HasSubstr("stopped."));
}

}  // namespace
}  // namespace flowork
