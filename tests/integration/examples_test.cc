// The agent examples in examples/agents run as documented.
#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <string>

#include "absl/strings/str_cat.h"
#include "flowork/testing/server_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork {
namespace {

using ::testing::HasSubstr;

// Runs `command`; returns its exit code and what it printed.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(ExamplesTest, TheNativeAgentFinishesAndASecondRunFindsItDone) {
  const std::string db = testing::MakeTempDir() + "/example.db";
  auto [code, output] = RunCommand(absl::StrCat(FLOWORK_NATIVE_EXAMPLE, " ", db, " Lisbon"));
  EXPECT_EQ(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("TASK_STATE_SUCCEEDED: sunny in Lisbon"));
  auto [again_code, again] = RunCommand(absl::StrCat(FLOWORK_NATIVE_EXAMPLE, " ", db, " Lisbon"));
  EXPECT_EQ(again_code, 0) << again;
  EXPECT_THAT(again, HasSubstr("already submitted"));
}

TEST(ExamplesTest, TheLlmAgentCallsItsToolThroughAModel) {
  auto mock = testing::ServerProcess::Start(FLOWORK_MOCKLLM_BIN, {"--http", "127.0.0.1:0"});
  ASSERT_TRUE(mock.ok()) << mock.status();
  auto [code, output] = RunCommand(
      absl::StrCat(FLOWORK_LLM_EXAMPLE,
                   " 'call:weather Lisbon' http://127.0.0.1:", mock->http_port(), "/v1 mock-1"));
  EXPECT_EQ(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("step 1: llm\nstep 2: tools\nstep 3: llm\nstep 4: finish"));
  EXPECT_THAT(output, HasSubstr("TASK_STATE_SUCCEEDED: Mock answer to: sunny, 24 C in Lisbon"));
}

}  // namespace
}  // namespace flowork
