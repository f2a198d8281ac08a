#ifndef FLOWORK_CORE_LOGGING_H_
#define FLOWORK_CORE_LOGGING_H_

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowork::core {

// Severity of a log line; lines below the process threshold are dropped.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// One structured field of a log line, printed as key=value (values with
// spaces, quotes or '=' are quoted). Views only: build it in the Log call.
struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  // Status messages are absl::string_view, which Debian's Abseil keeps apart
  // from std::string_view.
  LogField(std::string_view k, absl::string_view v) : key(k), value(v.data(), v.size()) {}

  std::string_view key;
  std::string_view value;
};

// Sets the process-wide threshold. Default kInfo. Thread-safe.
void SetLogLevel(LogLevel level);

// The current threshold. Thread-safe.
LogLevel GetLogLevel();

// "debug", "info", "warning"/"warn", "error" (any case). kInvalidArgument
// names the bad value otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);

// Writes one line to stderr:
//   2026-11-25T12:00:00.123Z info http server listening addr=127.0.0.1:2402
// Thread-safe; a line is written with one write(2) so lines never interleave.
void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

// The line Log() would write, without the trailing newline. For tests.
std::string FormatLogLine(LogLevel level, std::string_view message,
                          std::initializer_list<LogField> fields);

}  // namespace flowork::core

#endif  // FLOWORK_CORE_LOGGING_H_
