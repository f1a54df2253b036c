// Detector intrinsics in nanodrr's convention (design.md §1).
#pragma once

#include "defaults/defaults.h"
#include "geometry/host_math.h"

namespace drr::geometry {

// A pinhole (or orthographic) X-ray camera: source-to-detector distance and
// pixel spacing in mm, principal-point offset in mm, detector size in pixels.
struct Intrinsics {
  double sdd = defaults::kSdd;
  double delx = defaults::kDelx;
  double dely = defaults::kDely;
  double x0 = defaults::kX0;
  double y0 = defaults::kY0;
  int height = defaults::kHeight;
  int width = defaults::kWidth;
  bool orthographic = false;
};

// K⁻¹ of K = [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx = sdd/delx, fy = sdd/dely,
// cx = x0/delx + W/2, cy = y0/dely + H/2. The ray of pixel (row v, column u)
// ends at sdd·K⁻¹[u+0.5, v+0.5, 1]ᵀ in camera coordinates.
Mat3d InverseIntrinsicMatrix(const Intrinsics& intrinsics);

}  // namespace drr::geometry
