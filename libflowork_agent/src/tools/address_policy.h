#ifndef FLOWORK_AGENT_TOOLS_ADDRESS_POLICY_H_
#define FLOWORK_AGENT_TOOLS_ADDRESS_POLICY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

// What a tool may reach over the network (SSRF protection).
namespace flowork::agent::tools {

// Why `ip` (numeric IPv4 or IPv6 text) is not a public unicast address —
// "loopback", "private", "link-local", "carrier-grade NAT", ... — or nullopt
// when it is public. Text that is not an IP address counts as "not an IP
// address". IPv4 embedded in IPv6 (mapped, NAT64, 6to4) is judged as IPv4.
std::optional<std::string> NonPublicAddressKind(std::string_view ip);

// True when `host` (lower case, no brackets) matches `pattern`: exactly
// (case-insensitively), or "*.example.com" for any subdomain of example.com
// (not example.com itself).
bool HostMatches(std::string_view host, std::string_view pattern);

// The addresses `host` (a name or an IP literal) resolves to, as numeric
// text, in getaddrinfo's order, without duplicates. Blocks (DNS): call it
// off the runtime's threads. kUnavailable when it does not resolve.
absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host);

}  // namespace flowork::agent::tools

#endif  // FLOWORK_AGENT_TOOLS_ADDRESS_POLICY_H_
