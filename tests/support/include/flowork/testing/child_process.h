#ifndef FLOWORK_TESTING_CHILD_PROCESS_H_
#define FLOWORK_TESTING_CHILD_PROCESS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowork::testing {

// The first executable `name` on $PATH, or nullopt.
std::optional<std::string> FindOnPath(const std::string& name);

struct ChildResult {
  int exit_code = -1;  // -1 if it died of a signal.
  std::string output;  // stdout and stderr, interleaved.
};

// Runs `argv` (argv[0] a path) to completion with stdout and stderr
// captured. kDeadlineExceeded (with the output so far) if it outlives
// `timeout`; it is then killed.
absl::StatusOr<ChildResult> RunChild(const std::vector<std::string>& argv, absl::Duration timeout);

}  // namespace flowork::testing

#endif  // FLOWORK_TESTING_CHILD_PROCESS_H_
