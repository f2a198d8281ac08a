// Reading and checking MockKnobs. Pure functions; thread-safe.
#ifndef FLOWORK_MOCKLLM_SRC_KNOBS_H_
#define FLOWORK_MOCKLLM_SRC_KNOBS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flowork/core/http_server.h"
#include "flowork/mockllm/mock_llm_server.h"

namespace flowork::mockllm {

// How ValidateKnobs names a bad knob: as the MockKnobs field or its header.
enum class KnobNaming { kField, kHeader };

// kInvalidArgument naming the first knob out of its documented range.
absl::Status ValidateKnobs(const MockKnobs& knobs, KnobNaming naming = KnobNaming::kField);

// `defaults` overridden by the request's x-mock-* headers (names compare
// case-insensitively). kInvalidArgument names an unknown x-mock-* header or a
// value that does not parse or is out of range.
absl::StatusOr<MockKnobs> ApplyKnobHeaders(const core::HttpHeaders& headers, MockKnobs defaults);

}  // namespace flowork::mockllm

#endif  // FLOWORK_MOCKLLM_SRC_KNOBS_H_
