#ifndef FLOWORK_CORE_CONFIG_LOADER_H_
#define FLOWORK_CORE_CONFIG_LOADER_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace flowork::core {

// How configuration text becomes a proto message.
struct ConfigLoadOptions {
  // Resolves `${NAME}` references in string values. Default (empty): the
  // process environment. A reference to a variable that is not set is an
  // error naming the variable; `$${` is a literal `${`.
  std::function<std::optional<std::string>(std::string_view name)> lookup_env;
};

// Parses YAML or JSON text (JSON is read as YAML, so both report lines) into
// `message`, which is cleared first. Field names are the proto field names;
// unknown fields are rejected. Enum values may be written as their full name
// (`OBJECTIVE_LEAST_LATENCY`) or without the enum's prefix, in any case
// (`least_latency`). google.protobuf.Duration fields accept "250ms", "2s",
// "1.5m", "1h" (units ns, us, ms, s, m, h). Errors name the file, line, and
// field path, e.g.
//   router.yaml:14: routes[2].objective: unknown value "fastest"
// On error `message` is left cleared. `source_name` labels errors. Thread-safe.
absl::Status ParseConfigText(std::string_view text, std::string_view source_name,
                             google::protobuf::Message* message,
                             const ConfigLoadOptions& options = {});

// Reads `path` and parses it as ParseConfigText does, labelling errors with
// the file's base name. kNotFound when the file cannot be read.
absl::Status LoadConfigFile(const std::string& path, google::protobuf::Message* message,
                            const ConfigLoadOptions& options = {});

}  // namespace flowork::core

#endif  // FLOWORK_CORE_CONFIG_LOADER_H_
