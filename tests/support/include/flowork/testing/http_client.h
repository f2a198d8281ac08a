#ifndef FLOWORK_TESTING_HTTP_CLIENT_H_
#define FLOWORK_TESTING_HTTP_CLIENT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace flowork::testing {

// A response as a blocking test client saw it (chunked bodies decoded).
struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header of that name (case-insensitive), or "".
  std::string Header(const std::string& name) const;
};

// Sends one request to 127.0.0.1:`port` on a new connection and reads the
// whole response, within `timeout_ms`. Not for production use.
absl::StatusOr<ClientResponse> HttpCall(
    int port, const std::string& method, const std::string& target, const std::string& body = "",
    std::vector<std::pair<std::string, std::string>> headers = {}, int timeout_ms = 10'000);

}  // namespace flowork::testing

#endif  // FLOWORK_TESTING_HTTP_CLIENT_H_
