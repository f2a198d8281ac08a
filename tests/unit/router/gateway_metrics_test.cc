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

// A thread keeps the label set it booked last: the same labels on another
// instance (another registry), a new instance where the old one was, or the
// same model on another endpoint must still land on their own series.
TEST(GatewayMetricsTest, RepeatedLabelsLandOnTheirOwnInstanceAndEndpoint) {
  std::unique_ptr<core::MetricsRegistry> first_registry = core::MetricsRegistry::Create();
  std::unique_ptr<core::MetricsRegistry> second_registry = core::MetricsRegistry::Create();
  auto first = std::make_unique<GatewayMetrics>(*first_registry);
  GatewayMetrics second(*second_registry);
  for (int i = 0; i < 3; ++i) {
    first->Request("m", "m@p", 200, false, absl::Milliseconds(5), std::nullopt, {}, 0);
    first->Request("m", "m@p", 200, false, absl::Milliseconds(5), std::nullopt, {}, 0);
    second.Request("m", "m@p", 200, false, absl::Milliseconds(5), std::nullopt, {}, 0);
    first->Request("m", "m@q", 200, false, absl::Milliseconds(5), std::nullopt, {}, 0);
  }
  EXPECT_THAT(first_registry->TextExposition(),
              HasSubstr(R"(flowork_router_requests_total{code="200",endpoint="m@p",model="m"} 6)"));
  EXPECT_THAT(first_registry->TextExposition(),
              HasSubstr(R"(flowork_router_requests_total{code="200",endpoint="m@q",model="m"} 3)"));
  EXPECT_THAT(second_registry->TextExposition(),
              HasSubstr(R"(flowork_router_requests_total{code="200",endpoint="m@p",model="m"} 3)"));

  // A new instance, possibly at the old one's address, on a new registry.
  first.reset();
  std::unique_ptr<core::MetricsRegistry> third_registry = core::MetricsRegistry::Create();
  first = std::make_unique<GatewayMetrics>(*third_registry);
  first->Request("m", "m@q", 200, false, absl::Milliseconds(5), std::nullopt, {}, 0);
  EXPECT_THAT(third_registry->TextExposition(),
              HasSubstr(R"(flowork_router_requests_total{code="200",endpoint="m@q",model="m"} 1)"));
}

}  // namespace
}  // namespace flowork::router
