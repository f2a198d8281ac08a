#include "flowork/router/config_file_watcher.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "flowork/router/key_ring.h"

namespace flowork::router {
namespace {

std::optional<std::string> ContentHash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return KeyRing::Sha256Hex(bytes.str());
}

}  // namespace

struct ConfigFileWatcher::State {
  absl::Mutex mu;
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread thread;
};

ConfigFileWatcher::ConfigFileWatcher(std::string path, absl::Duration poll_interval,
                                     std::function<void()> on_change)
    : state_(std::make_unique<State>()) {
  // The baseline is read before the constructor returns, so a change made
  // after that is never mistaken for it.
  std::optional<std::string> baseline = ContentHash(path);
  state_->thread =
      std::thread([state = state_.get(), path = std::move(path), poll_interval,
                   on_change = std::move(on_change), last = std::move(baseline)]() mutable {
        absl::MutexLock lock(&state->mu);
        while (!state->mu.AwaitWithTimeout(absl::Condition(&state->stop), poll_interval)) {
          state->mu.Unlock();
          std::optional<std::string> now = ContentHash(path);
          const bool changed = now.has_value() && now != last;
          if (now.has_value()) last = std::move(now);
          if (changed) on_change();
          state->mu.Lock();
        }
      });
}

ConfigFileWatcher::~ConfigFileWatcher() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stop = true;
  }
  state_->thread.join();
}

}  // namespace flowork::router
