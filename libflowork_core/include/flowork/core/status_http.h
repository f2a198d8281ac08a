#ifndef FLOWORK_CORE_STATUS_HTTP_H_
#define FLOWORK_CORE_STATUS_HTTP_H_

#include <string>

#include "absl/status/status.h"

namespace flowork::core {

// The one table mapping status codes to HTTP status codes (the google.rpc
// mapping: INVALID_ARGUMENT 400, NOT_FOUND 404, RESOURCE_EXHAUSTED 429,
// UNAVAILABLE 503, ...). absl and gRPC codes share numbers, so gRPC statuses
// convert with static_cast<absl::StatusCode>(grpc_code).
int HttpStatusFromCode(absl::StatusCode code);

// The JSON error body of transcoded routes:
//   {"code":3,"message":"...","details":[]}
std::string StatusToJson(const absl::Status& status);

}  // namespace flowork::core

#endif  // FLOWORK_CORE_STATUS_HTTP_H_
