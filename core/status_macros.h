// Status propagation macros. Debian's Abseil (20220623) ships absl::Status and absl::StatusOr but
// not the status_macros.h of newer releases, so the project defines its own here.
//
//   RETURN_IF_ERROR(expr);            // returns expr's status from the enclosing function if !ok
//   ASSIGN_OR_RETURN(auto x, expr);   // x = *expr, or returns expr.status() if !ok
//
// Both work in functions returning absl::Status or any absl::StatusOr<T>.
#ifndef CORE_STATUS_MACROS_H_
#define CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CORE_STATUS_CONCAT_INNER_(a, b) a##b
#define CORE_STATUS_CONCAT_(a, b) CORE_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                \
  do {                                                       \
    const ::absl::Status core_status_macro_status_ = (expr); \
    if (!core_status_macro_status_.ok()) {                   \
      return core_status_macro_status_;                      \
    }                                                        \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  CORE_ASSIGN_OR_RETURN_IMPL_(CORE_STATUS_CONCAT_(core_statusor_, __LINE__), lhs, rexpr)

#define CORE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) {                                   \
    return std::move(statusor).status();                  \
  }                                                       \
  lhs = *std::move(statusor)

#endif  // CORE_STATUS_MACROS_H_
