// The one place absl::Status becomes grpc::Status.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace drr::server {

// The grpc::Status with the same canonical code and message as `status`.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace drr::server
