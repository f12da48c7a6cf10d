// The status macro Debian's Abseil (2022-06) lacks. (ASSIGN_OR_RETURN was
// here unused and is gone; add it back with its first user.)
#pragma once

#include "absl/status/status.h"

// Returns from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)    \
  do {                           \
    ::absl::Status _st = (expr); \
    if (!_st.ok()) return _st;   \
  } while (0)
