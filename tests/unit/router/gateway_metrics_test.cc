#include "governance/gateway_metrics.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "flowork/core/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GatewayMetricsTest, EachStatusOfARouteCountsApartAndTheRouteKeepsOneLatencySeries) {
  std::unique_ptr<core::MetricsRegistry> registry = core::MetricsRegistry::Create();
  GatewayMetrics metrics(*registry);
  TokenUsage usage;
  usage.prompt_tokens = 3;
  // More codes than a route keeps inline, each booked twice.
  for (int round = 0; round < 2; ++round) {
    for (const int status : {200, 400, 429, 500, 502, 504}) {
      metrics.Request("m", "m@p", status, status != 200, absl::Milliseconds(5), std::nullopt,
                      status == 200 ? usage : TokenUsage{}, 0);
    }
  }
  metrics.Request("m", "", 503, true, absl::Milliseconds(1), std::nullopt, {}, 0);

  const std::string text = registry->TextExposition();
  for (const int status : {200, 400, 429, 500, 502, 504}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat(R"(flowork_router_requests_total{code=")", status,
                                             R"(",endpoint="m@p",model="m"} 2)")));
  }
  EXPECT_THAT(
      text,
      HasSubstr(R"(flowork_router_request_errors_total{code="502",endpoint="m@p",model="m"} 2)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(flowork_router_request_errors_total{code="200",endpoint="m@p",model="m"} 0)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(flowork_router_request_duration_seconds_count{endpoint="m@p",model="m"} 12)"));
  EXPECT_THAT(
      text, HasSubstr(R"(flowork_router_tokens_total{endpoint="m@p",kind="prompt",model="m"} 6)"));
  // Nothing answered the 503: it is counted, with no latency series of its own.
  EXPECT_THAT(text,
              HasSubstr(R"(flowork_router_requests_total{code="503",endpoint="",model="m"} 1)"));
  EXPECT_THAT(text, Not(HasSubstr(R"(duration_seconds_count{endpoint="",)")));
}

}  // namespace
}  // namespace flowork::router
