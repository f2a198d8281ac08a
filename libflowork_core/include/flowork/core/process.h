#ifndef FLOWORK_CORE_PROCESS_H_
#define FLOWORK_CORE_PROCESS_H_

#include <string_view>

namespace flowork::core {

// Blocks SIGINT, SIGTERM (stop) and SIGHUP (reload) in the calling thread
// and every thread it starts afterwards, so WaitForServerSignal() can take
// them, and ignores SIGPIPE (a closed stderr or socket must not kill a
// server mid-drain). Call first in main.
void BlockServerSignals();

// Process-wide settings for serving: turns off Abseil's mutex deadlock
// detection (a debugging aid that costs a graph lookup on every lock).
// Tests keep it on. Call early in main.
void TuneServerProcess();

// Waits until SIGINT, SIGTERM or SIGHUP arrives; returns the signal number.
int WaitForServerSignal();

// True when `address` ("host:port") names a loopback host: 127.0.0.0/8,
// ::1 or localhost.
bool IsLoopbackAddress(std::string_view address);

}  // namespace flowork::core

#endif  // FLOWORK_CORE_PROCESS_H_
