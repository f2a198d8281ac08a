#include <atomic>

#include "absl/synchronization/notification.h"
#include "flowork/core/clock.h"
#include "flowork/core/executor.h"
#include "flowork/testing/fake_clock.h"
#include "flowork/testing/fake_executor.h"
#include "gtest/gtest.h"

namespace flowork::core {
namespace {

// The real clock reads the kernel's wall clock; absl::Now() interpolates it
// with the cycle counter, so the two may differ by a little either way.
TEST(ClockTest, RealClockTracksWallTime) {
  const absl::Time before = absl::Now();
  const absl::Time now = Clock::Real().Now();
  const absl::Time after = absl::Now();
  EXPECT_GE(now, before - absl::Milliseconds(1));
  EXPECT_LE(now, after + absl::Milliseconds(1));
}

TEST(FakeClockTest, MovesOnlyWhenTold) {
  testing::FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.Set(absl::FromUnixSeconds(7));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(7));
}

TEST(ThreadPoolExecutorTest, RunsEveryScheduledItemBeforeDestruction) {
  std::atomic<int> ran{0};
  {
    auto executor = CreateThreadPoolExecutor({.threads = 2});
    ASSERT_TRUE(executor.ok());
    for (int i = 0; i < 1000; ++i) {
      (*executor)->Schedule([&ran] { ran.fetch_add(1); });
    }
  }
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPoolExecutorTest, RunsWorkOffTheCallingThread) {
  auto executor = CreateThreadPoolExecutor({.threads = 1});
  ASSERT_TRUE(executor.ok());
  absl::Notification done;
  std::thread::id worker;
  (*executor)->Schedule([&] {
    worker = std::this_thread::get_id();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_TRUE(worker != std::this_thread::get_id());
}

TEST(ThreadPoolExecutorTest, RejectsNegativeThreadCount) {
  auto executor = CreateThreadPoolExecutor({.threads = -1});
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor.status().message(), "threads: must be >= 0, got -1");
}

TEST(FakeExecutorTest, RunsQueuedWorkInOrderIncludingWorkItSchedules) {
  testing::FakeExecutor executor;
  std::vector<int> order;
  executor.Schedule([&] {
    order.push_back(1);
    executor.Schedule([&] { order.push_back(3); });
  });
  executor.Schedule([&] { order.push_back(2); });
  EXPECT_EQ(executor.pending(), 2);
  EXPECT_EQ(executor.RunAll(), 3);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(executor.pending(), 0);
}

}  // namespace
}  // namespace flowork::core
