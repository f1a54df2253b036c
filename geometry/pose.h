// Camera poses: rotation parameterizations and nanodrr's `make_rt_inv` /
// `convert` (design.md §1).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "geometry/host_math.h"

namespace drr::geometry {

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

// How a pose's rotation is given (nanodrr's Parameterization, plus `matrix`).
enum class Parameterization {
  kEuler,       // 3 angles, any convention, degrees or radians
  kQuaternion,  // 4: x, y, z, w (used as given, as roma does: keep it unit)
  kQuaternionAdjugate,  // 10: upper triangle of a symmetric 4×4 (arXiv
                        // 2205.09116)
  kRotation9d,          // 9: a 3×3 matrix, projected to the nearest rotation
  kSo3Log,              // 3: axis-angle (rotation vector), radians
  kSe3Log,              // 3 + 3: rotation vector and log-translation of exp(ξ)
  kMatrix,              // 9: a rotation matrix, row-major, used as given
};

// The number of rotation values `parameterization` takes.
int RotationParameterCount(Parameterization parameterization);

// The values of `parameterization` that give the identity rotation (zeros,
// the quaternion (0, 0, 0, 1), the identity matrix, ...):
// RotationParameterCount of them.
std::vector<double> IdentityRotation(Parameterization parameterization);

// The rotation matrix of valid `rotation` values (roma's conventions):
// RotationParameterCount finite values; for kEuler a convention that
// satisfies IsEulerConvention; a nonzero quaternion or adjugate; for kMatrix
// an orthonormal matrix with determinant +1. The engine checks these before
// it calls (server/engine/render_call.cc); the geometry does not fail.
Mat3d RotationMatrix(Parameterization parameterization,
                     std::string_view convention, const double* rotation,
                     bool degrees);

// The rotation vector (axis × angle, radians; the so3_log parameterization)
// of a rotation matrix.
Vec3d RotationVector(const Mat3d& rotation);

// The SE(3) exponential of the rotation vector ω and log-translation ρ:
// [R(ω) | V(ω)·ρ] with V = I + (1 − cos θ)/θ²·[ω]× + (θ − sin θ)/θ³·[ω]×²
// (the small-angle limits below θ = 10⁻³).
Mat4d Se3Exp(const Vec3d& omega, const Vec3d& rho);

// The 4×4 reorientation matrix for `orientation`.
Mat4d OrientationMatrix(Orientation orientation);

// Camera→world pose `[R | R·translation + isocenter] · Reorient(orientation)`:
// `translation` is the camera centre relative to `isocenter` in the frame
// before reorientation (nanodrr's make_rt_inv).
Mat4d MakeRtInv(const Mat3d& rotation, const Vec3d& translation,
                Orientation orientation, const Vec3d& isocenter);

// Camera→world of a parameterized pose, as nanodrr's
// `convert(rotation, translation, parameterization, ...) @ Reorient`: for
// kSe3Log the pose is Se3Exp(rotation, translation) and the isocenter is not
// used; otherwise MakeRtInv(RotationMatrix(...), translation, ...).
Mat4d PoseMatrix(Parameterization parameterization, std::string_view convention,
                 const double* rotation, bool degrees, const Vec3d& translation,
                 Orientation orientation, const Vec3d& isocenter);

}  // namespace drr::geometry
