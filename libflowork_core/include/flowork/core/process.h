#ifndef FLOWORK_CORE_PROCESS_H_
#define FLOWORK_CORE_PROCESS_H_

#include <string_view>

namespace flowork::core {

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts
// afterwards, so WaitForTerminationSignal() can take them, and ignores
// SIGPIPE (a closed stderr or socket must not kill a server mid-drain).
// Call first in main.
void BlockTerminationSignals();

// Waits until SIGINT or SIGTERM arrives; returns the signal number.
int WaitForTerminationSignal();

// True when `address` ("host:port") names a loopback host: 127.0.0.0/8,
// ::1 or localhost.
bool IsLoopbackAddress(std::string_view address);

}  // namespace flowork::core

#endif  // FLOWORK_CORE_PROCESS_H_
