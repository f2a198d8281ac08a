#include "flowork/core/event_loops.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "flowork/core/internal/event_loops.h"

namespace flowork::core {
namespace {

// Which loop (of which set) runs this thread.
thread_local const EventLoops* t_loops = nullptr;
thread_local int t_index = -1;

}  // namespace

EventLoops::EventLoops(std::unique_ptr<Internal> internal) : internal_(std::move(internal)) {}

absl::StatusOr<std::unique_ptr<EventLoops>> EventLoops::Create(int threads) {
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads: must be >= 0, got ", threads));
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto internal = std::make_unique<Internal>();
  std::unique_ptr<EventLoops> loops(new EventLoops(std::move(internal)));
  Internal& in = loops->internal();
  for (int i = 0; i < threads; ++i) {
    // Sockets and timers are only ever used on their own loop's thread, so the
    // reactor needs no locking; posting from other threads stays safe.
    in.contexts.push_back(
        std::make_unique<boost::asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
    in.guards.push_back(boost::asio::make_work_guard(*in.contexts.back()));
  }
  for (int i = 0; i < threads; ++i) {
    in.threads.emplace_back([owner = loops.get(), ctx = in.contexts[i].get(), i] {
      t_loops = owner;
      t_index = i;
      ctx->run();
    });
  }
  return loops;
}

EventLoops::~EventLoops() { internal_->Stop(); }

int EventLoops::size() const { return static_cast<int>(internal_->contexts.size()); }

void EventLoops::Post(int index, absl::AnyInvocable<void() &&> work) {
  boost::asio::post(*internal_->contexts[index], std::move(work));
}

int EventLoops::CurrentIndex() const { return t_loops == this ? t_index : -1; }

}  // namespace flowork::core
