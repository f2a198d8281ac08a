// Private to Flowork's own sources; never installed.
#ifndef FLOWORK_CORE_INTERNAL_EVENT_LOOPS_H_
#define FLOWORK_CORE_INTERNAL_EVENT_LOOPS_H_

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "flowork/core/event_loops.h"

namespace flowork::core {

struct EventLoops::Internal {
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;

  boost::asio::io_context& context(int index) { return *contexts[index]; }

  // Lets the loops run out of work, then joins their threads: for owners
  // that closed everything they had there. Must not run on one of them.
  void Drain() {
    guards.clear();
    for (auto& thread : threads) {
      if (thread.joinable()) thread.join();
    }
  }

  // Stops the loops (queued work is dropped) and joins their threads.
  // Idempotent; must not run on one of them.
  void Stop() {
    for (auto& ctx : contexts) ctx->stop();
    for (auto& thread : threads) {
      if (thread.joinable()) thread.join();
    }
  }
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_INTERNAL_EVENT_LOOPS_H_
