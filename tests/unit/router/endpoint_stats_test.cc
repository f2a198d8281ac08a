#include "flowork/router/endpoint_stats.h"

#include "flowork/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

class EndpointStateTest : public ::testing::Test {
 protected:
  EndpointStateTest()
      : state_("m@p",
               {.consecutive_failures = 3,
                .error_ratio = 0.5,
                .window_requests = 10,
                .open_for = absl::Seconds(30)},
               clock_) {}

  void Succeed() {
    ASSERT_TRUE(state_.BeginAttempt());
    state_.OnSuccess(absl::Milliseconds(100));
  }
  void Fail(FailureKind kind = FailureKind::kServerError) {
    ASSERT_TRUE(state_.BeginAttempt());
    state_.OnFailure(kind);
  }
  CircuitState Circuit() { return state_.Read(clock_.Now()).circuit; }

  testing::FakeClock clock_;
  EndpointState state_;
};

TEST_F(EndpointStateTest, OpensAfterConsecutiveFailures) {
  Fail();
  Fail();
  EXPECT_EQ(Circuit(), CircuitState::kClosed);
  Fail();
  EXPECT_EQ(Circuit(), CircuitState::kOpen);
  EXPECT_EQ(state_.Read(clock_.Now()).open_until, clock_.Now() + absl::Seconds(30));
  EXPECT_FALSE(state_.BeginAttempt());
}

TEST_F(EndpointStateTest, SuccessResetsTheConsecutiveCount) {
  Fail();
  Fail();
  Succeed();
  Fail();
  Fail();
  EXPECT_EQ(Circuit(), CircuitState::kClosed);
}

TEST_F(EndpointStateTest, OpensOnErrorRatioOnceTheWindowIsFull) {
  // Alternate: never 3 in a row, but half of the last 10 fail.
  for (int i = 0; i < 4; ++i) {
    Fail();
    Succeed();
  }
  Fail();
  EXPECT_EQ(Circuit(), CircuitState::kClosed);  // 9 outcomes seen: window not full.
  Succeed();
  EXPECT_EQ(Circuit(), CircuitState::kClosed);  // Successes never open it.
  Fail();                                       // 10+ seen, 5 of the last 10 failed.
  EXPECT_EQ(Circuit(), CircuitState::kOpen);
}

TEST_F(EndpointStateTest, HalfOpenAfterOpenForAllowsExactlyOneProbe) {
  Fail();
  Fail();
  Fail();
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(Circuit(), CircuitState::kOpen);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Circuit(), CircuitState::kHalfOpen);
  EXPECT_FALSE(state_.Read(clock_.Now()).probe_in_flight);
  EXPECT_TRUE(state_.BeginAttempt());
  EXPECT_TRUE(state_.Read(clock_.Now()).probe_in_flight);
  EXPECT_FALSE(state_.BeginAttempt());  // Only one probe.
}

TEST_F(EndpointStateTest, ProbeSuccessClosesTheCircuit) {
  Fail();
  Fail();
  Fail();
  clock_.Advance(absl::Seconds(30));
  Succeed();
  EXPECT_EQ(Circuit(), CircuitState::kClosed);
  EXPECT_TRUE(state_.BeginAttempt());
  EXPECT_TRUE(state_.BeginAttempt());
}

TEST_F(EndpointStateTest, ProbeFailureReopensForAnotherPeriod) {
  Fail();
  Fail();
  Fail();
  clock_.Advance(absl::Seconds(30));
  Fail(FailureKind::kTimeout);
  EXPECT_EQ(Circuit(), CircuitState::kOpen);
  EXPECT_EQ(state_.Read(clock_.Now()).open_until, clock_.Now() + absl::Seconds(30));
}

TEST_F(EndpointStateTest, RateLimitCoolsDownForRetryAfterWithoutOpeningTheCircuit) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(state_.BeginAttempt());
    state_.OnFailure(FailureKind::kRateLimited, absl::Seconds(7));
  }
  EndpointReading reading = state_.Read(clock_.Now());
  EXPECT_EQ(reading.circuit, CircuitState::kClosed);
  EXPECT_EQ(reading.cooldown_until, clock_.Now() + absl::Seconds(7));
}

TEST_F(EndpointStateTest, ServerErrorWithRetryAfterCountsAndCoolsDown) {
  ASSERT_TRUE(state_.BeginAttempt());
  state_.OnFailure(FailureKind::kServerError, absl::Seconds(2));
  EndpointReading reading = state_.Read(clock_.Now());
  EXPECT_EQ(reading.cooldown_until, clock_.Now() + absl::Seconds(2));
  Fail();
  Fail();
  EXPECT_EQ(Circuit(), CircuitState::kOpen);
}

TEST_F(EndpointStateTest, TracksInFlightAndLatencyAverages) {
  EXPECT_FALSE(state_.Read(clock_.Now()).latency_ewma_ms.has_value());
  ASSERT_TRUE(state_.BeginAttempt());
  ASSERT_TRUE(state_.BeginAttempt());
  EXPECT_EQ(state_.Read(clock_.Now()).in_flight, 2);
  state_.OnSuccess(absl::Milliseconds(100), absl::Milliseconds(20));
  state_.OnAbandoned();
  EndpointReading reading = state_.Read(clock_.Now());
  EXPECT_EQ(reading.in_flight, 0);
  EXPECT_DOUBLE_EQ(*reading.latency_ewma_ms, 100);
  EXPECT_DOUBLE_EQ(*reading.ttft_ewma_ms, 20);
  ASSERT_TRUE(state_.BeginAttempt());
  state_.OnSuccess(absl::Milliseconds(200));
  EXPECT_DOUBLE_EQ(*state_.Read(clock_.Now()).latency_ewma_ms, 130);  // 100 + 0.3 * 100.
  EXPECT_DOUBLE_EQ(*state_.Read(clock_.Now()).ttft_ewma_ms, 20);
}

TEST(EndpointStatsTest, KeepsStateOfRetainedEndpointsOnly) {
  testing::FakeClock clock;
  EndpointStats stats(clock);
  auto a = stats.GetOrCreate("a", {});
  auto b = stats.GetOrCreate("b", {});
  EXPECT_EQ(stats.GetOrCreate("a", {}), a);
  stats.Retain({"a"});
  EXPECT_EQ(stats.Find("a"), a);
  EXPECT_EQ(stats.Find("b"), nullptr);
}

}  // namespace
}  // namespace flowork::router
