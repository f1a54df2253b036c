// Camera poses: Euler angles and nanodrr's `make_rt_inv` (design.md §1).
#pragma once

#include <string_view>

#include "kernels/host_math.h"

namespace drr::kernels {

// The fixed reorientation applied after the pose, as nanodrr's make_rt_inv.
enum class Orientation { kAP, kPA, kNone };

// Whether `convention` names an Euler convention: three letters from XYZ
// (intrinsic rotations, upper case) or xyz (extrinsic, lower case), not mixed,
// with no two neighbours equal (e.g. "ZXY", "ZYZ", "xyz").
bool IsEulerConvention(std::string_view convention);

// The rotation matrix of Euler `angles` under `convention` (as roma and SciPy
// define it: intrinsic "ABC" is R_A(a₀)·R_B(a₁)·R_C(a₂); extrinsic "abc" is
// R_c(a₂)·R_b(a₁)·R_a(a₀)). `convention` must satisfy IsEulerConvention.
Mat3d EulerToMatrix(std::string_view convention, const Vec3d& angles,
                    bool degrees);

// The 4×4 reorientation matrix for `orientation`.
Mat4d OrientationMatrix(Orientation orientation);

// Camera→world pose `[R | R·translation + isocenter] · Reorient(orientation)`:
// `translation` is the camera centre relative to `isocenter` in the frame
// before reorientation (nanodrr's make_rt_inv).
Mat4d MakeRtInv(const Mat3d& rotation, const Vec3d& translation,
                Orientation orientation, const Vec3d& isocenter);

}  // namespace drr::kernels
