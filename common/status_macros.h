#pragma once

// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
// Debian's Abseil 20220623 ships neither, so Rampart keeps this one tiny
// header.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RAMPART_STATUS_CONCAT_INNER_(a, b) a##b
#define RAMPART_STATUS_CONCAT_(a, b) RAMPART_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// if it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    const ::absl::Status rampart_status_ = (expr);     \
    if (!rampart_status_.ok()) return rampart_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on
// error returns its status, otherwise moves the value into `lhs`, which may be
// a declaration (`auto x`) or an existing variable.
#define ASSIGN_OR_RETURN(lhs, expr)                                           \
  ASSIGN_OR_RETURN_IMPL_(RAMPART_STATUS_CONCAT_(rampart_statusor_, __LINE__), \
                         lhs, expr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()
