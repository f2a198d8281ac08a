#include "flowork/router/usage_governor.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "flowork/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::router {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

absl::Time Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

v1::Limits Rpm(uint32_t rpm) {
  v1::Limits limits;
  limits.set_rpm(rpm);
  return limits;
}

v1::Limits Tpm(uint64_t tpm) {
  v1::Limits limits;
  limits.set_tpm(tpm);
  return limits;
}

UsageSubject KeyWith(const std::string& key, const v1::Limits* limits,
                     const v1::Budget* budget = nullptr) {
  UsageSubject subject;
  subject.key = key;
  subject.key_limits = limits;
  subject.key_budget = budget;
  return subject;
}

class UsageGovernorTest : public ::testing::Test {
 protected:
  testing::FakeClock clock_{Utc(2027, 3, 10, 12)};
  std::unique_ptr<UsageGovernor> governor_ = NewInMemoryUsageGovernor(clock_);

  // Admits and settles at once with the estimate as real use.
  absl::Status Use(const UsageSubject& subject, uint64_t tokens = 1, double cost_usd = 0) {
    auto reservation = governor_->Admit(subject, tokens);
    if (!reservation.ok()) return reservation.status();
    governor_->Settle(*std::move(reservation), {tokens, cost_usd});
    return absl::OkStatus();
  }
};

TEST_F(UsageGovernorTest, RequestsPerMinuteRefuseWithRetryAfterAndRecover) {
  const v1::Limits limits = Rpm(60);
  const UsageSubject subject = KeyWith("ci", &limits);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(Use(subject).ok()) << i;

  const absl::Status refused = Use(subject);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(), "key \"ci\": requests per minute (60) exceeded");
  // One request refills every second.
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Seconds(1)));

  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(Use(subject).code(), absl::StatusCode::kResourceExhausted);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(Use(subject).ok());
  EXPECT_EQ(Use(subject).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(UsageGovernorTest, RetryAfterIsEnoughForAnOddRate) {
  const v1::Limits limits = Rpm(7);
  const UsageSubject subject = KeyWith("odd", &limits);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(Use(subject).ok());
  const absl::Status refused = Use(subject);
  const std::optional<absl::Duration> wait = UsageRetryAfter(refused);
  ASSERT_TRUE(wait.has_value());
  EXPECT_GE(*wait, absl::Seconds(60.0 / 7));
  EXPECT_LT(*wait, absl::Seconds(60.0 / 7) + absl::Milliseconds(2));
  clock_.Advance(*wait - absl::Milliseconds(2));
  EXPECT_FALSE(Use(subject).ok());
  clock_.Advance(absl::Milliseconds(2));
  EXPECT_TRUE(Use(subject).ok());
}

TEST_F(UsageGovernorTest, UnlimitedSubjectIsNeverRefused) {
  const UsageSubject subject = KeyWith("free", nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(Use(subject, 1'000'000, 5).ok());
}

TEST_F(UsageGovernorTest, RetryAfterIsNulloptForOtherStatuses) {
  EXPECT_EQ(UsageRetryAfter(absl::OkStatus()), std::nullopt);
  EXPECT_EQ(UsageRetryAfter(absl::ResourceExhaustedError("no payload")), std::nullopt);
  EXPECT_EQ(UsageRetryAfter(absl::InvalidArgumentError("x")), std::nullopt);
}

TEST_F(UsageGovernorTest, TokensPerMinuteReserveTheEstimateAndSettleRefundsTheRest) {
  const v1::Limits limits = Tpm(1000);
  const UsageSubject subject = KeyWith("k", &limits);
  auto first = governor_->Admit(subject, 600);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->reserved_tokens, 600u);
  // 400 left: a second estimate of 600 does not fit.
  const absl::Status refused = governor_->Admit(subject, 600).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(), "key \"k\": tokens per minute (1000) exceeded");
  // 200 missing at 1000/60 per second: 12 s.
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Seconds(12)));

  // It really used 100: 500 come back, 900 are free.
  governor_->Settle(*std::move(first), {100, 0});
  auto second = governor_->Admit(subject, 900);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(governor_->Admit(subject, 1).ok());
  governor_->Settle(*std::move(second), {900, 0});
}

TEST_F(UsageGovernorTest, UsingMoreThanReservedLeavesDebt) {
  const v1::Limits limits = Tpm(600);  // 10 tokens per second.
  const UsageSubject subject = KeyWith("k", &limits);
  auto reservation = governor_->Admit(subject, 100);
  ASSERT_TRUE(reservation.ok());
  governor_->Settle(*std::move(reservation), {700, 0});
  // 100 in debt: one token needs 10.1 s.
  const absl::Status refused = governor_->Admit(subject, 1).status();
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Milliseconds(10100)));
  clock_.Advance(absl::Milliseconds(10100));
  EXPECT_TRUE(governor_->Admit(subject, 1).ok());
}

TEST_F(UsageGovernorTest, EstimateAboveCapacityIsAdmittedWhenTheBucketIsFull) {
  const v1::Limits limits = Tpm(600);
  const UsageSubject subject = KeyWith("big", &limits);
  auto small = governor_->Admit(subject, 60);
  ASSERT_TRUE(small.ok());
  governor_->Settle(*std::move(small), {60, 0});
  // 5000 can never fit: it waits for a full bucket (60 tokens = 6 s), not forever.
  const absl::Status refused = governor_->Admit(subject, 5000).status();
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Seconds(6)));
  clock_.Advance(absl::Seconds(6));
  auto big = governor_->Admit(subject, 5000);
  ASSERT_TRUE(big.ok());
  // Now 4400 in debt.
  EXPECT_THAT(UsageRetryAfter(governor_->Admit(subject, 1).status()),
              Optional(absl::Milliseconds(440100)));
  governor_->Settle(*std::move(big), {5000, 0});
}

TEST_F(UsageGovernorTest, TenantLimitIsSharedByItsKeys) {
  const v1::Limits tenant_limits = Rpm(3);
  UsageSubject a = KeyWith("a", nullptr);
  a.tenant = "acme";
  a.tenant_limits = &tenant_limits;
  UsageSubject b = KeyWith("b", nullptr);
  b.tenant = "acme";
  b.tenant_limits = &tenant_limits;
  EXPECT_TRUE(Use(a).ok());
  EXPECT_TRUE(Use(b).ok());
  EXPECT_TRUE(Use(a).ok());
  const absl::Status refused = Use(b);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(), "tenant \"acme\": requests per minute (3) exceeded");
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Seconds(20)));
  // Another tenant's key is not affected.
  UsageSubject c = KeyWith("c", nullptr);
  c.tenant = "other";
  c.tenant_limits = &tenant_limits;
  EXPECT_TRUE(Use(c).ok());
}

TEST_F(UsageGovernorTest, RefusalByTheTenantReservesNothingOnTheKey) {
  const v1::Limits key_limits = Rpm(2);
  const v1::Limits tenant_limits = Rpm(1);
  UsageSubject subject = KeyWith("a", &key_limits);
  subject.tenant = "acme";
  subject.tenant_limits = &tenant_limits;
  EXPECT_TRUE(Use(subject).ok());
  EXPECT_FALSE(Use(subject).ok());  // Tenant refuses; the key keeps its second request.
  // Without the tenant, the key alone still has one.
  EXPECT_TRUE(Use(KeyWith("a", &key_limits)).ok());
  EXPECT_FALSE(Use(KeyWith("a", &key_limits)).ok());
}

TEST_F(UsageGovernorTest, RefusalNamesTheLimitWithTheLongestWait) {
  const v1::Limits key_limits = Rpm(60);    // Next request in 1 s.
  const v1::Limits tenant_limits = Rpm(6);  // Next request in 10 s.
  UsageSubject subject = KeyWith("a", &key_limits);
  subject.tenant = "acme";
  subject.tenant_limits = &tenant_limits;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Use(subject).ok());
  for (int i = 0; i < 54; ++i) ASSERT_TRUE(Use(KeyWith("a", &key_limits)).ok());
  const absl::Status refused = Use(subject);
  EXPECT_EQ(refused.message(), "tenant \"acme\": requests per minute (6) exceeded");
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Seconds(10)));
}

TEST_F(UsageGovernorTest, DailyBudgetStopsAdmissionUntilTheNextUtcDay) {
  clock_.Set(Utc(2027, 3, 10, 22, 30));
  v1::Budget budget;
  budget.set_usd_per_day(1.0);
  const UsageSubject subject = KeyWith("ci", nullptr, &budget);
  EXPECT_TRUE(Use(subject, 10, 0.6).ok());
  // In flight requests may overshoot: this one is admitted at 0.6 spent.
  EXPECT_TRUE(Use(subject, 10, 0.6).ok());
  const absl::Status refused = Use(subject);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(), "key \"ci\": budget of 1 USD per UTC day spent");
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Minutes(90)));

  clock_.Set(Utc(2027, 3, 10, 23, 59, 59));
  EXPECT_FALSE(Use(subject).ok());
  clock_.Set(Utc(2027, 3, 11));
  EXPECT_TRUE(Use(subject).ok());
}

TEST_F(UsageGovernorTest, MonthlyBudgetStopsAdmissionUntilTheNextUtcMonth) {
  clock_.Set(Utc(2027, 2, 27, 12));
  v1::Budget budget;
  budget.set_usd_per_month(5.0);
  UsageSubject subject = KeyWith("k", nullptr);
  subject.tenant = "acme";
  subject.tenant_budget = &budget;
  EXPECT_TRUE(Use(subject, 10, 3).ok());
  clock_.Set(Utc(2027, 2, 28, 1));  // Another day, same month.
  EXPECT_TRUE(Use(subject, 10, 2).ok());
  const absl::Status refused = Use(subject);
  EXPECT_EQ(refused.message(), "tenant \"acme\": budget of 5 USD per UTC month spent");
  EXPECT_THAT(UsageRetryAfter(refused), Optional(absl::Hours(23)));
  clock_.Set(Utc(2027, 3, 1));
  EXPECT_TRUE(Use(subject).ok());
}

TEST_F(UsageGovernorTest, RecordSpendBooksOnlyIntoTheCurrentDayAndMonth) {
  clock_.Set(Utc(2027, 3, 10, 12));
  v1::Budget budget;
  budget.set_usd_per_day(1.0);
  budget.set_usd_per_month(10.0);
  UsageSubject subject = KeyWith("k", nullptr, &budget);
  subject.tenant = "acme";
  subject.tenant_budget = &budget;
  // Last month: ignored. Earlier this month: month only. Today: both.
  governor_->RecordSpend("k", "acme", Utc(2027, 2, 28, 23), 100);
  governor_->RecordSpend("k", "", Utc(2027, 3, 1, 8), 8.5);
  EXPECT_TRUE(Use(subject).ok());
  governor_->RecordSpend("other", "acme", Utc(2027, 3, 10, 9), 1.0);
  EXPECT_EQ(Use(subject).message(), "tenant \"acme\": budget of 1 USD per UTC day spent");
  clock_.Set(Utc(2027, 3, 11));
  EXPECT_TRUE(Use(subject).ok());
  governor_->RecordSpend("k", "", Utc(2027, 3, 11, 0, 1), 1.5);
  EXPECT_EQ(Use(subject).message(), "key \"k\": budget of 10 USD per UTC month spent");
}

TEST_F(UsageGovernorTest, ChangedLimitsApplyOnTheNextCall) {
  const v1::Limits ten = Rpm(10);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Use(KeyWith("k", &ten)).ok());
  // Lowered to 3: the 5 left are clamped to 3.
  const v1::Limits three = Rpm(3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Use(KeyWith("k", &three)).ok()) << i;
  EXPECT_FALSE(Use(KeyWith("k", &three)).ok());
  // Raised: what is left stays, the refill is faster (60/min = 1/s).
  const v1::Limits sixty = Rpm(60);
  EXPECT_FALSE(Use(KeyWith("k", &sixty)).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Use(KeyWith("k", &sixty)).ok());
  // Removed: unlimited; set again: starts full.
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Use(KeyWith("k", nullptr)).ok());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Use(KeyWith("k", &three)).ok());
  EXPECT_FALSE(Use(KeyWith("k", &three)).ok());
}

TEST_F(UsageGovernorTest, StateIsKeptByNameAcrossConfigObjects) {
  // A reload hands new Limits objects with the same values.
  auto reloaded = std::make_unique<v1::Limits>(Rpm(2));
  EXPECT_TRUE(Use(KeyWith("k", reloaded.get())).ok());
  reloaded = std::make_unique<v1::Limits>(Rpm(2));
  EXPECT_TRUE(Use(KeyWith("k", reloaded.get())).ok());
  EXPECT_FALSE(Use(KeyWith("k", reloaded.get())).ok());
}

TEST_F(UsageGovernorTest, IdleStateIsForgottenOnlyWhenNothingIsLost) {
  v1::Budget budget;
  budget.set_usd_per_month(1.0);
  const v1::Limits limits = Rpm(1);
  // "spent" spends its budget; "busy" keeps a request in flight.
  EXPECT_TRUE(Use(KeyWith("spent", &limits, &budget), 1, 1.0).ok());
  const v1::Limits tokens = Tpm(100);
  auto busy = governor_->Admit(KeyWith("busy", &tokens), 100);
  ASSERT_TRUE(busy.ok());
  // Long idle, then many new subjects make the shards sweep.
  clock_.Advance(absl::Hours(1));
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(Use(KeyWith(absl::StrCat("other-", i), nullptr)).ok());
  }
  EXPECT_EQ(Use(KeyWith("spent", &limits, &budget)).message(),
            "key \"spent\": budget of 1 USD per UTC month spent");
  // The in-flight request settles against the state it was admitted on: it
  // used 100 more than reserved, which is now debt on a refilled bucket.
  governor_->Settle(*std::move(busy), {200, 0});
  EXPECT_FALSE(governor_->Admit(KeyWith("busy", &tokens), 1).ok());
}

TEST_F(UsageGovernorTest, ConcurrentAdmitAndSettleKeepCountsExact) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  const v1::Limits key_limits = [] {
    v1::Limits limits;
    limits.set_rpm(kThreads * kPerThread);
    limits.set_tpm(uint64_t{kThreads} * kPerThread * 10);
    return limits;
  }();
  const v1::Limits tenant_limits = Rpm(kThreads * kPerThread);
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Two keys share the tenant; each has the whole allowance.
      UsageSubject subject = KeyWith(t % 2 == 0 ? "even" : "odd", &key_limits);
      subject.tenant = "acme";
      subject.tenant_limits = &tenant_limits;
      for (int i = 0; i < kPerThread; ++i) {
        // Reserve 20, use 10: the refund keeps the tpm bucket exact.
        auto reservation = governor_->Admit(subject, 20);
        if (!reservation.ok()) {
          refused.fetch_add(1);
          continue;
        }
        governor_->Settle(*std::move(reservation), {10, 0.001});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(refused.load(), 0);
  UsageSubject one_more = KeyWith("even", nullptr);
  one_more.tenant = "acme";
  one_more.tenant_limits = &tenant_limits;
  EXPECT_EQ(Use(one_more).message(), "tenant \"acme\": requests per minute (1600) exceeded");
  // Each key used 800 requests x 10 tokens of 16000.
  EXPECT_EQ(governor_->Admit(KeyWith("odd", &key_limits), 8001).status().message(),
            "key \"odd\": tokens per minute (16000) exceeded");
  EXPECT_TRUE(governor_->Admit(KeyWith("odd", &key_limits), 8000).ok());
}

TEST(UsageCostUsdTest, BillsCachedPromptTokensAtTheCachedPrice) {
  v1::Price price;
  price.set_input_per_mtok(2.0);
  price.set_output_per_mtok(8.0);
  price.set_cached_input_per_mtok(0.5);
  // 600 fresh x 2 + 400 cached x 0.5 + 500 out x 8, per million.
  EXPECT_DOUBLE_EQ(UsageCostUsd(price, 1000, 500, 400), (1200 + 200 + 4000) / 1e6);
  EXPECT_DOUBLE_EQ(UsageCostUsd(price, 1'000'000, 0, 0), 2.0);
}

TEST(UsageCostUsdTest, CachedTokensCostTheInputPriceWithoutACachedPrice) {
  v1::Price price;
  price.set_input_per_mtok(2.0);
  price.set_output_per_mtok(8.0);
  EXPECT_DOUBLE_EQ(UsageCostUsd(price, 1000, 500, 400), (2000 + 4000) / 1e6);
  // Cached beyond the prompt count as the prompt.
  EXPECT_DOUBLE_EQ(UsageCostUsd(price, 100, 0, 400), 200 / 1e6);
}

}  // namespace
}  // namespace flowork::router
