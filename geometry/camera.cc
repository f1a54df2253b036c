#include "geometry/camera.h"

namespace drr::geometry {

Mat3d InverseIntrinsicMatrix(const Intrinsics& in) {
  const double fx = in.sdd / in.delx;
  const double fy = in.sdd / in.dely;
  const double cx = in.x0 / in.delx + in.width / 2.0;
  const double cy = in.y0 / in.dely + in.height / 2.0;
  return Mat3d{
      {{1.0 / fx, 0.0, -cx / fx}, {0.0, 1.0 / fy, -cy / fy}, {0, 0, 1}}};
}

}  // namespace drr::geometry
