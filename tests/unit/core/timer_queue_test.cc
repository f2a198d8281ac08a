// The timer thread shared by the agent runtime and the gateway.
#include "flowork/core/internal/timer_queue.h"

#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace flowork::core::internal {
namespace {

// Schedules more work on the queue when it is destroyed, as a request's last
// reference does when its destructor cancels its timers.
struct SchedulesOnDestruction {
  TimerQueue& queue;
  std::atomic<int>& destroyed;
  ~SchedulesOnDestruction() {
    queue.Cancel(queue.At(absl::InfiniteFuture(), [] {}));
    ++destroyed;
  }
};

TEST(TimerQueueTest, RunsWorkInTimeOrder) {
  TimerQueue queue;
  std::vector<int> order;
  absl::Mutex mu;
  absl::Notification done;
  const absl::Time now = absl::Now();
  queue.At(now + absl::Milliseconds(40), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
    done.Notify();
  });
  queue.At(now + absl::Milliseconds(10), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(TimerQueueTest, CancelledWorkNeverRuns) {
  TimerQueue queue;
  // The queue's thread waits in this work until the cancel is done, however
  // slowly this thread gets there.
  absl::Notification busy, cancelled;
  queue.At(absl::Now(), [&] {
    busy.Notify();
    cancelled.WaitForNotification();
  });
  busy.WaitForNotification();
  std::atomic<bool> ran{false};
  const uint64_t id = queue.At(absl::Now(), [&] { ran = true; });
  EXPECT_NE(id, 0u);
  queue.Cancel(id);
  queue.Cancel(id);  // Harmless twice.
  cancelled.Notify();
  absl::Notification later;
  queue.At(absl::Now(), [&] { later.Notify(); });
  ASSERT_TRUE(later.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(ran);
}

// Captures are destroyed outside the queue's lock: a capture that uses the
// queue in its destructor would otherwise deadlock on it (the gateway's copy
// of this loop did so with a request's last reference).
TEST(TimerQueueTest, WorkThatRanIsDestroyedOutsideTheLock) {
  TimerQueue queue;
  std::atomic<int> destroyed{0};
  absl::Notification ran;
  auto capture = std::make_shared<SchedulesOnDestruction>(queue, destroyed);
  queue.At(absl::Now(), [capture = std::move(capture), &ran] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  for (int i = 0; i < 1000 && destroyed == 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(destroyed, 1);
}

TEST(TimerQueueTest, CancelledWorkIsDestroyedOutsideTheLock) {
  TimerQueue queue;
  std::atomic<int> destroyed{0};
  auto capture = std::make_shared<SchedulesOnDestruction>(queue, destroyed);
  const uint64_t id = queue.At(absl::InfiniteFuture(), [capture = std::move(capture)] {});
  queue.Cancel(id);
  EXPECT_EQ(destroyed, 1);
}

TEST(TimerQueueTest, StopDropsWhatHasNotRunAndRefusesMore) {
  std::atomic<int> destroyed{0};
  TimerQueue queue;
  std::atomic<bool> ran{false};
  auto capture = std::make_shared<SchedulesOnDestruction>(queue, destroyed);
  queue.At(absl::Now() + absl::Hours(1), [capture = std::move(capture), &ran] { ran = true; });
  queue.Stop();
  EXPECT_EQ(destroyed, 1);
  queue.At(absl::Now(), [&] { ran = true; });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace flowork::core::internal
