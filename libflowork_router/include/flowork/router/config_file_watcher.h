#ifndef FLOWORK_ROUTER_CONFIG_FILE_WATCHER_H_
#define FLOWORK_ROUTER_CONFIG_FILE_WATCHER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace flowork::router {

// Polls a configuration file and calls `on_change` when its content changes
// (by SHA-256 of the bytes, so a touch without an edit is ignored and an edit
// within the same mtime second is not). The content when the constructor
// returns is the baseline. A file that cannot be read is skipped until it can. `on_change`
// runs on the watcher's own thread, one call at a time. Destruction stops the
// thread and waits for a running `on_change`.
class ConfigFileWatcher {
 public:
  ConfigFileWatcher(std::string path, absl::Duration poll_interval,
                    std::function<void()> on_change);
  ~ConfigFileWatcher();

  ConfigFileWatcher(const ConfigFileWatcher&) = delete;
  ConfigFileWatcher& operator=(const ConfigFileWatcher&) = delete;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_CONFIG_FILE_WATCHER_H_
