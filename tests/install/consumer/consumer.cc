// Prints the content id of a small volume and the status of a render sent to
// an address where no server listens: the client library's types, its wire
// conversion and gRPC all link from the installed package.
#include <iostream>
#include <string>

#include "client/cpp/drr_client.h"
#include "volume/volume.h"

int main() {
  drr::HostVolume volume;
  volume.header.depth = volume.header.height = volume.header.width = 2;
  volume.header.voxel_type = drr::VoxelType::kInt16;
  volume.voxels.assign(8 * 2, '\0');
  std::cout << drr::ContentDigest(volume.header, volume.voxels) << "\n";
  drr::client::DrrClient client("127.0.0.1:1");
  const absl::Status status = client.Get(std::string(64, '0')).status();
  std::cout << absl::StatusCodeToString(status.code()) << "\n";
  return status.ok() ? 1 : 0;
}
