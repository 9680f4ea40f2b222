// MODEL_CHECK: aborts with a message on a broken precondition (a programming error). Debian's
// Abseil has no absl/log, so the model library carries this one small macro.
#ifndef MODEL_INTERNAL_CHECK_H_
#define MODEL_INTERNAL_CHECK_H_

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"

// MODEL_CHECK(cond, pieces...) prints "file:line: check failed: cond: pieces" and aborts if !cond.
#define MODEL_CHECK(cond, ...)                                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond ": " \
                << ::absl::StrCat(__VA_ARGS__) << std::endl;                    \
      std::abort();                                                             \
    }                                                                           \
  } while (false)

#endif  // MODEL_INTERNAL_CHECK_H_
