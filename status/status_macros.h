// Early-return helpers for absl::Status and absl::StatusOr (Debian's Abseil
// 20220623 has no status macros of its own).
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DRR_STATUS_CONCAT_INNER(a, b) a##b
#define DRR_STATUS_CONCAT(a, b) DRR_STATUS_CONCAT_INNER(a, b)

// Returns the status of `expr` from the enclosing function unless it is OK.
#define DRR_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status drr_status_ = (expr);       \
    if (!drr_status_.ok()) return drr_status_; \
  } while (false)

// Evaluates the StatusOr `rexpr`; returns its status unless OK, else moves its
// value into `lhs` (a declaration or an lvalue).
#define DRR_ASSIGN_OR_RETURN(lhs, rexpr)                                     \
  DRR_ASSIGN_OR_RETURN_IMPL(DRR_STATUS_CONCAT(drr_statusor_, __LINE__), lhs, \
                            rexpr)

#define DRR_ASSIGN_OR_RETURN_IMPL(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()
