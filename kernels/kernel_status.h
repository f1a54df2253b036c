// The error type of the kernels library. The kernels build on machines without
// Abseil (the kernels-only configuration for GPU hosts), so they report errors
// with this small value type; the engine turns it into an absl::Status.
#pragma once

#include <string>
#include <utility>

namespace drr::kernels {

// Why a kernel call failed, in the canonical-code vocabulary the engine maps
// to.
enum class KernelCode {
  kOk,
  kInvalidArgument,
  kResourceExhausted,
  kUnavailable,
  // The caller's stop check (Workspace::set_stop_check) asked the call to
  // stop; its output is incomplete.
  kCancelled,
  kInternal
};

// The outcome of a kernel call: ok, or a code and a message for people.
class KernelStatus {
 public:
  // A successful outcome.
  static KernelStatus Ok() { return KernelStatus(KernelCode::kOk, ""); }
  // A failed outcome with `code` (not kOk) and `message`.
  static KernelStatus Error(KernelCode code, std::string message) {
    return KernelStatus(code, std::move(message));
  }

  bool ok() const { return code_ == KernelCode::kOk; }
  KernelCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  KernelStatus(KernelCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  KernelCode code_;
  std::string message_;
};

}  // namespace drr::kernels

// Returns the KernelStatus `expr` from the enclosing function unless it is OK.
#define DRR_KERNEL_RETURN_IF_ERROR(expr)                      \
  do {                                                        \
    ::drr::kernels::KernelStatus drr_kernel_status_ = (expr); \
    if (!drr_kernel_status_.ok()) return drr_kernel_status_;  \
  } while (false)
