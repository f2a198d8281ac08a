#ifndef FLOWORK_ROUTER_REQUEST_VIEW_H_
#define FLOWORK_ROUTER_REQUEST_VIEW_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowork::router {

// What routing needs to know of one request, read from its body and headers
// without materialising it. A plain value.
struct RequestView {
  // The model or route the client asked for.
  std::string model;
  // Whether the client asked for a stream (least_latency then ranks by time
  // to first token).
  bool stream = false;
  // max_tokens (or max_completion_tokens) of the request; 0 = not given.
  uint32_t max_tokens = 0;
  // Estimated prompt tokens.
  uint32_t estimated_prompt_tokens = 0;
  // Capabilities the request needs beyond the route's: "tools" when tools
  // are defined, "vision" for image parts, "json" for response_format, ...
  std::vector<std::string> required_capabilities;
  // Zone clearance of the caller's key. Empty = any zone.
  std::vector<std::string> key_zones;
  // The key's name, for reasons ("zone remote not allowed for key team-a").
  std::string key_name;
  // Zones from the x-flowork-zone header: they narrow the key's clearance,
  // never widen it. Empty = no header.
  std::vector<std::string> header_zones;
  // Session or prompt-prefix key for the affinity objective. Empty = none.
  std::string affinity_key;
  // The seed of every choice the plan makes. Unset: the engine assigns the
  // next one of its counter. Recorded in the plan for the audit trail.
  std::optional<uint64_t> seed;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_REQUEST_VIEW_H_
