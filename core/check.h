// DSMOE_CHECK for programming errors (broken preconditions, impossible states): prints
// "file:line: check failed: cond: message" to stderr and aborts. Recoverable errors return
// absl::Status instead. DSMOE_DCHECK is the same in debug builds (-c dbg, fastbuild) and compiles
// to nothing under NDEBUG (-c opt, the default in .bazelrc), for hot paths: its condition is then
// neither evaluated nor warned about as unused. Use these, never assert(). Debian's Abseil has no
// absl/log, so the project defines these once, here.
//
//   DSMOE_CHECK(rows >= 0, "rows = ", rows);     // message pieces as for absl::StrCat
//   DSMOE_CHECK(ptr != nullptr);
#ifndef CORE_CHECK_H_
#define CORE_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace core::internal {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition,
                                     const std::string& message) {
  std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, condition,
               message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace core::internal

#define DSMOE_CHECK(cond, ...)                                                               \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      ::core::internal::CheckFailed(__FILE__, __LINE__, #cond, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                        \
  } while (false)

#ifdef NDEBUG
#define DSMOE_DCHECK(cond, ...) \
  do {                          \
    if (false) (void)(cond);    \
  } while (false)
#else
#define DSMOE_DCHECK(cond, ...) DSMOE_CHECK(cond, ##__VA_ARGS__)
#endif

#endif  // CORE_CHECK_H_
