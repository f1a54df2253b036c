// Detector intrinsics in nanodrr's convention (design.md §1).
#pragma once

#include "geometry/host_math.h"

namespace drr::geometry {

// A pinhole (or orthographic) X-ray camera: source-to-detector distance and
// pixel spacing in mm, principal-point offset in mm, detector size in pixels.
struct Intrinsics {
  double sdd = 1020.0;
  double delx = 2.0;
  double dely = 2.0;
  double x0 = 0.0;
  double y0 = 0.0;
  int height = 200;
  int width = 200;
  bool orthographic = false;
};

// K⁻¹ of K = [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx = sdd/delx, fy = sdd/dely,
// cx = x0/delx + W/2, cy = y0/dely + H/2. The ray of pixel (row v, column u)
// ends at sdd·K⁻¹[u+0.5, v+0.5, 1]ᵀ in camera coordinates.
Mat3d InverseIntrinsicMatrix(const Intrinsics& intrinsics);

}  // namespace drr::geometry
