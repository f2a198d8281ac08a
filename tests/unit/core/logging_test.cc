#include "flowork/core/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

using ::testing::EndsWith;
using ::testing::MatchesRegex;

TEST(LoggingTest, FormatsTimestampLevelMessageAndFields) {
  std::string line = FormatLogLine(LogLevel::kWarning, "upstream slow",
                                   {{"endpoint", "local-vllm"}, {"ms", "812"}});
  EXPECT_THAT(line, MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z warning upstream slow "
                                 "endpoint=local-vllm ms=812"));
}

TEST(LoggingTest, QuotesValuesThatWouldBreakKeyValueParsing) {
  std::string line =
      FormatLogLine(LogLevel::kError, "bad config", {{"error", "a b=\"c\"\n"}, {"empty", ""}});
  EXPECT_THAT(line, EndsWith(R"(error="a b=\"c\"\n" empty="")"));
}

TEST(LoggingTest, ParsesLevelNamesInAnyCase) {
  EXPECT_EQ(*ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel(""), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("warn"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("Error"), LogLevel::kError);
  absl::StatusOr<LogLevel> bad = ParseLogLevel("loud");
  EXPECT_EQ(bad.status().message(),
            "log level: unknown value \"loud\" (debug, info, warning, error)");
}

TEST(LoggingTest, ThresholdIsProcessWide) {
  const LogLevel saved = GetLogLevel();
  SetLogLevel(LogLevel::kError);
  EXPECT_EQ(GetLogLevel(), LogLevel::kError);
  SetLogLevel(saved);
}

}  // namespace
}  // namespace flowork::core
