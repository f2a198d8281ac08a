// Agent tasks across processes: an approval wait outlives its process, and a
// suspended task's snapshot continues in another process on another store.
#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::pair<int, std::string> RunWorker(const std::string& args) {
  std::string output;
  FILE* pipe = popen(absl::StrCat(FLOWORK_LIFECYCLE_WORKER_BIN, " ", args, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(AgentLifecycleTest, AnApprovalWaitSurvivesTheProcessAndTheToolRunsOnceAfterApproval) {
  const std::string dir = testing::MakeTempDir();
  const std::string db = dir + "/tasks.db", log = dir + "/effects.log";
  auto [waited, id] = RunWorker(absl::StrCat("approval-wait ", db, " ", log));
  ASSERT_EQ(waited, 0) << id;
  EXPECT_TRUE(Lines(log).empty());  // Nothing ran before the approval.
  auto [approved, ended] = RunWorker(absl::StrCat("approve ", db, " ", log));
  ASSERT_EQ(approved, 0) << ended;
  EXPECT_THAT(ended, HasSubstr("TASK_STATE_SUCCEEDED did v2"));
  EXPECT_THAT(Lines(log), ElementsAre("deploy v2 approve"));
}

TEST(AgentLifecycleTest, ASnapshotContinuesTheSameTaskInAnotherProcessAndStore) {
  const std::string dir = testing::MakeTempDir();
  const std::string log = dir + "/effects.log", snapshot = dir + "/task.snapshot";
  auto [saved, saved_output] =
      RunWorker(absl::StrCat("snapshot ", dir, "/a.db ", log, " ", snapshot));
  ASSERT_EQ(saved, 0) << saved_output;
  auto [restored, ended] = RunWorker(absl::StrCat("restore ", dir, "/b.db ", log, " ", snapshot));
  ASSERT_EQ(restored, 0) << ended;
  EXPECT_THAT(ended, HasSubstr("TASK_STATE_SUCCEEDED did second"));
  // The first step completed before the snapshot: it never runs again. The
  // second was cut off by the suspension: it runs again, once, elsewhere.
  EXPECT_THAT(Lines(log),
              ElementsAre("step first snapshot", "step second snapshot", "step second restore"));
}

}  // namespace
}  // namespace flowork
