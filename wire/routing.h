// The metadata that routes calls among replicas, shared by the server and
// the clients (design.md §7).
#pragma once

namespace drr {

// The metadata key a proxy in front of several replicas routes by
// (consistent hashing): every call that names a volume carries its id.
inline constexpr char kVolumeHeader[] = "x-drr-volume-id";

}  // namespace drr
