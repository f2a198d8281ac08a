// Private to Flowork's own sources; never installed. Debian's Abseil has no
// status macros, so these are ours.
#ifndef FLOWORK_CORE_INTERNAL_STATUS_MACROS_H_
#define FLOWORK_CORE_INTERNAL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FLOWORK_STATUS_CONCAT_INNER_(a, b) a##b
#define FLOWORK_STATUS_CONCAT_(a, b) FLOWORK_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` is not OK.
#define FLOWORK_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status flowork_status_ = (expr);           \
    if (!flowork_status_.ok()) return flowork_status_; \
  } while (false)

// `lhs = value of expr`, or returns its status from the enclosing function.
#define FLOWORK_ASSIGN_OR_RETURN(lhs, expr) \
  FLOWORK_ASSIGN_OR_RETURN_IMPL_(FLOWORK_STATUS_CONCAT_(flowork_statusor_, __LINE__), lhs, expr)

#define FLOWORK_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // FLOWORK_CORE_INTERNAL_STATUS_MACROS_H_
