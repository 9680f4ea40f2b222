// Status propagation macros. Debian's Abseil (20220623) ships absl::Status and absl::StatusOr but
// not the status_macros.h of newer releases, so the project defines its own here.
//
//   RETURN_IF_ERROR(expr);            // returns expr's status from the enclosing function if !ok
//   ASSIGN_OR_RETURN(auto x, expr);   // x = *expr, or returns expr.status() if !ok
//
// The _WITH forms prepend context to the message of the status they return, so that an error
// deep in a call chain says where it happened ("micro-batch 5: layer 3 forward dispatch: ..."):
//
//   RETURN_IF_ERROR_WITH(comm.Recv(buf, peer), "layer ", layer, " attention, micro-batch ", mb);
//   ASSIGN_OR_RETURN_WITH(auto weights, Load(path), "reading ", path);
//
// The context arguments are pieces for absl::StrCat, evaluated only when the status is an error.
// All four work in functions returning absl::Status or any absl::StatusOr<T>. In a coroutine whose
// co_return takes an absl::Status, CO_RETURN_IF_ERROR and CO_ASSIGN_OR_RETURN do the same with
// co_return.
#ifndef CORE_STATUS_MACROS_H_
#define CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace core {

// `status` with "context: " prepended to its message; the same code and payloads. An OK status
// is returned as it is (OK carries no message), and so is `status` when `context` is empty.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok() || context.empty()) return status;
  absl::Status annotated(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    annotated.SetPayload(type_url, payload);
  });
  return annotated;
}

}  // namespace core

#define CORE_STATUS_CONCAT_INNER_(a, b) a##b
#define CORE_STATUS_CONCAT_(a, b) CORE_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                \
  do {                                                       \
    const ::absl::Status core_status_macro_status_ = (expr); \
    if (!core_status_macro_status_.ok()) {                   \
      return core_status_macro_status_;                      \
    }                                                        \
  } while (false)

#define RETURN_IF_ERROR_WITH(expr, ...)                                                \
  do {                                                                                 \
    const ::absl::Status core_status_macro_status_ = (expr);                           \
    if (!core_status_macro_status_.ok()) {                                             \
      return ::core::Annotate(core_status_macro_status_, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                  \
  } while (false)

#define CO_RETURN_IF_ERROR(expr)                             \
  do {                                                       \
    const ::absl::Status core_status_macro_status_ = (expr); \
    if (!core_status_macro_status_.ok()) {                   \
      co_return core_status_macro_status_;                   \
    }                                                        \
  } while (false)

#define CO_ASSIGN_OR_RETURN(lhs, rexpr) \
  CORE_CO_ASSIGN_OR_RETURN_IMPL_(CORE_STATUS_CONCAT_(core_statusor_, __LINE__), lhs, rexpr)

#define CORE_CO_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) {                                      \
    co_return std::move(statusor).status();                  \
  }                                                          \
  lhs = *std::move(statusor)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  CORE_ASSIGN_OR_RETURN_IMPL_(CORE_STATUS_CONCAT_(core_statusor_, __LINE__), lhs, rexpr)

#define CORE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) {                                   \
    return std::move(statusor).status();                  \
  }                                                       \
  lhs = *std::move(statusor)

#define ASSIGN_OR_RETURN_WITH(lhs, rexpr, ...)                                                \
  CORE_ASSIGN_OR_RETURN_WITH_IMPL_(CORE_STATUS_CONCAT_(core_statusor_, __LINE__), lhs, rexpr, \
                                   __VA_ARGS__)

#define CORE_ASSIGN_OR_RETURN_WITH_IMPL_(statusor, lhs, rexpr, ...)          \
  auto statusor = (rexpr);                                                   \
  if (!statusor.ok()) {                                                      \
    return ::core::Annotate(statusor.status(), ::absl::StrCat(__VA_ARGS__)); \
  }                                                                          \
  lhs = *std::move(statusor)

#endif  // CORE_STATUS_MACROS_H_
