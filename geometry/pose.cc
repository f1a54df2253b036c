#include "geometry/pose.h"

#include <cctype>
#include <cmath>

namespace drr::geometry {
namespace {

// Rotation by `angle` radians about the axis named by `axis` (x, y or z).
Mat3d AxisRotation(char axis, double angle) {
  const double c = std::cos(angle);
  const double s = std::sin(angle);
  switch (std::tolower(static_cast<unsigned char>(axis))) {
    case 'x':
      return Mat3d{{{1, 0, 0}, {0, c, -s}, {0, s, c}}};
    case 'y':
      return Mat3d{{{c, 0, s}, {0, 1, 0}, {-s, 0, c}}};
    default:
      return Mat3d{{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}};
  }
}

// The skew-symmetric matrix [v]× with [v]×·u = v × u.
Mat3d Hat(const Vec3d& v) {
  return Mat3d{{{0, -v[2], v[1]}, {v[2], 0, -v[0]}, {-v[1], v[0], 0}}};
}

Mat3d Add(const Mat3d& a, const Mat3d& b, double scale_b) {
  Mat3d out = a;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) out.m[r][c] += scale_b * b.m[r][c];
  return out;
}

// roma.unitquat_to_rotmat of a quaternion (x, y, z, w): the homogeneous
// form, applied as given (a rotation only for a unit quaternion).
Mat3d QuaternionMatrix(double x, double y, double z, double w) {
  return Mat3d{{{x * x - y * y - z * z + w * w, 2 * (x * y - z * w),
                 2 * (x * z + y * w)},
                {2 * (x * y + z * w), -x * x + y * y - z * z + w * w,
                 2 * (y * z - x * w)},
                {2 * (x * z - y * w), 2 * (y * z + x * w),
                 -x * x - y * y + z * z + w * w}}};
}

// Rodrigues' formula R = I + (sin θ/θ)[ω]× + ((1 − cos θ)/θ²)[ω]×².
Mat3d RotationVectorMatrix(const Vec3d& omega) {
  const double theta2 =
      omega[0] * omega[0] + omega[1] * omega[1] + omega[2] * omega[2];
  const double theta = std::sqrt(theta2);
  const double a = theta < 1e-4 ? 1.0 - theta2 / 6.0 : std::sin(theta) / theta;
  const double b =
      theta < 1e-4 ? 0.5 - theta2 / 24.0 : (1.0 - std::cos(theta)) / theta2;
  const Mat3d k = Hat(omega);
  return Add(Add(Mat3d::Identity(), k, a), k * k, b);
}

// The eigenvector of the largest eigenvalue of a symmetric 4×4 matrix
// (cyclic Jacobi rotations).
std::array<double, 4> LargestEigenvector(double a[4][4]) {
  double v[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
  for (int sweep = 0; sweep < 50; ++sweep) {
    double off = 0;
    for (int p = 0; p < 4; ++p)
      for (int q = p + 1; q < 4; ++q) off += a[p][q] * a[p][q];
    if (off < 1e-30) break;
    for (int p = 0; p < 4; ++p) {
      for (int q = p + 1; q < 4; ++q) {
        if (a[p][q] == 0) continue;
        const double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const double t = (theta >= 0 ? 1 : -1) /
                         (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < 4; ++k) {  // A ← A·J
          const double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < 4; ++k) {  // A ← Jᵀ·A
          const double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < 4; ++k) {  // V ← V·J
          const double vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  int best = 0;
  for (int i = 1; i < 4; ++i)
    if (a[i][i] > a[best][best]) best = i;
  return {v[0][best], v[1][best], v[2][best], v[3][best]};
}

// roma.special_procrustes: the rotation nearest `m` (maximising tr(Rᵀm)),
// found as the top eigenvector of Horn's 4×4 matrix in (w, x, y, z).
Mat3d NearestRotation(const double* m9) {
  const double(*m)[3] = reinterpret_cast<const double(*)[3]>(m9);
  double n[4][4] = {{m[0][0] + m[1][1] + m[2][2], m[2][1] - m[1][2],
                     m[0][2] - m[2][0], m[1][0] - m[0][1]},
                    {m[2][1] - m[1][2], m[0][0] - m[1][1] - m[2][2],
                     m[0][1] + m[1][0], m[0][2] + m[2][0]},
                    {m[0][2] - m[2][0], m[0][1] + m[1][0],
                     -m[0][0] + m[1][1] - m[2][2], m[1][2] + m[2][1]},
                    {m[1][0] - m[0][1], m[0][2] + m[2][0], m[1][2] + m[2][1],
                     -m[0][0] - m[1][1] + m[2][2]}};
  const std::array<double, 4> q = LargestEigenvector(n);
  return QuaternionMatrix(q[1], q[2], q[3], q[0]);
}

// nanodrr's quaternion_adjugate_to_quaternion: the row of the symmetric 4×4
// with the largest norm, divided by that norm, read as (w, x, y, z).
Mat3d AdjugateRotation(const double* v10) {
  double a[4][4];
  int index = 0;
  for (int r = 0; r < 4; ++r)
    for (int c = r; c < 4; ++c) a[r][c] = a[c][r] = v10[index++];
  int best = 0;
  double best_norm = -1;
  for (int r = 0; r < 4; ++r) {
    const double norm = std::sqrt(a[r][0] * a[r][0] + a[r][1] * a[r][1] +
                                  a[r][2] * a[r][2] + a[r][3] * a[r][3]);
    if (norm > best_norm) {
      best_norm = norm;
      best = r;
    }
  }
  const double* q = a[best];
  return QuaternionMatrix(q[1] / best_norm, q[2] / best_norm, q[3] / best_norm,
                          q[0] / best_norm);
}

}  // namespace

int RotationParameterCount(Parameterization parameterization) {
  switch (parameterization) {
    case Parameterization::kQuaternion:
      return 4;
    case Parameterization::kQuaternionAdjugate:
      return 10;
    case Parameterization::kRotation9d:
    case Parameterization::kMatrix:
      return 9;
    case Parameterization::kEuler:
    case Parameterization::kSo3Log:
    case Parameterization::kSe3Log:
      break;
  }
  return 3;
}

std::vector<double> IdentityRotation(Parameterization parameterization) {
  switch (parameterization) {
    case Parameterization::kQuaternion:
      return {0, 0, 0, 1};
    case Parameterization::kQuaternionAdjugate:
      return {1, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // (w, x, y, z) = (1, 0, 0, 0)
    case Parameterization::kRotation9d:
    case Parameterization::kMatrix:
      return {1, 0, 0, 0, 1, 0, 0, 0, 1};
    case Parameterization::kEuler:
    case Parameterization::kSo3Log:
    case Parameterization::kSe3Log:
      break;
  }
  return {0, 0, 0};
}

Mat3d RotationMatrix(Parameterization parameterization,
                     std::string_view convention, const double* rotation,
                     bool degrees) {
  switch (parameterization) {
    case Parameterization::kEuler:
      return EulerToMatrix(convention, {rotation[0], rotation[1], rotation[2]},
                           degrees);
    case Parameterization::kQuaternion:
      return QuaternionMatrix(rotation[0], rotation[1], rotation[2],
                              rotation[3]);
    case Parameterization::kQuaternionAdjugate:
      return AdjugateRotation(rotation);
    case Parameterization::kRotation9d:
      return NearestRotation(rotation);
    case Parameterization::kMatrix:
      return Mat3d{{{rotation[0], rotation[1], rotation[2]},
                    {rotation[3], rotation[4], rotation[5]},
                    {rotation[6], rotation[7], rotation[8]}}};
    case Parameterization::kSo3Log:
    case Parameterization::kSe3Log:
      break;
  }
  return RotationVectorMatrix({rotation[0], rotation[1], rotation[2]});
}

Vec3d RotationVector(const Mat3d& r) {
  const double cosine = std::fmax(
      -1.0, std::fmin(1.0, (r.m[0][0] + r.m[1][1] + r.m[2][2] - 1) / 2));
  const double angle = std::acos(cosine);
  const Vec3d axis{r.m[2][1] - r.m[1][2], r.m[0][2] - r.m[2][0],
                   r.m[1][0] - r.m[0][1]};
  if (angle < 1e-6)
    return {axis[0] / 2, axis[1] / 2, axis[2] / 2};  // sin θ ≈ θ
  if (M_PI - angle < 1e-6) {
    // Near π the antisymmetric part vanishes: take the axis from R + I.
    int i = 0;
    for (int k = 1; k < 3; ++k)
      if (r.m[k][k] > r.m[i][i]) i = k;
    Vec3d v{r.m[0][i] + (i == 0), r.m[1][i] + (i == 1), r.m[2][i] + (i == 2)};
    const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    return {v[0] / n * angle, v[1] / n * angle, v[2] / n * angle};
  }
  const double scale = angle / (2 * std::sin(angle));
  return {axis[0] * scale, axis[1] * scale, axis[2] * scale};
}

Mat4d Se3Exp(const Vec3d& omega, const Vec3d& rho) {
  const double theta2 =
      omega[0] * omega[0] + omega[1] * omega[1] + omega[2] * omega[2];
  const double theta = std::sqrt(theta2);
  const double a =
      theta < 1e-3 ? 0.5 - theta2 / 24.0 : (1.0 - std::cos(theta)) / theta2;
  const double b = theta < 1e-3 ? 1.0 / 6.0 - theta2 / 120.0
                                : (theta - std::sin(theta)) / (theta2 * theta);
  const Mat3d k = Hat(omega);
  const Mat3d v = Add(Add(Mat3d::Identity(), k, a), k * k, b);
  return Mat4d::FromAffine(RotationVectorMatrix(omega), v * rho);
}

Mat4d PoseMatrix(Parameterization parameterization, std::string_view convention,
                 const double* rotation, bool degrees, const Vec3d& translation,
                 Orientation orientation, const Vec3d& isocenter) {
  if (parameterization == Parameterization::kSe3Log) {
    return Se3Exp({rotation[0], rotation[1], rotation[2]}, translation) *
           OrientationMatrix(orientation);
  }
  return MakeRtInv(
      RotationMatrix(parameterization, convention, rotation, degrees),
      translation, orientation, isocenter);
}

bool IsEulerConvention(std::string_view convention) {
  if (convention.size() != 3) return false;
  const bool upper = std::isupper(static_cast<unsigned char>(convention[0]));
  for (size_t i = 0; i < 3; ++i) {
    const char c = convention[i];
    const char axis =
        static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (axis != 'x' && axis != 'y' && axis != 'z') return false;
    if (static_cast<bool>(std::isupper(static_cast<unsigned char>(c))) !=
        upper) {
      return false;
    }
    if (i > 0 &&
        std::tolower(static_cast<unsigned char>(convention[i - 1])) == axis) {
      return false;
    }
  }
  return true;
}

Mat3d EulerToMatrix(std::string_view convention, const Vec3d& angles,
                    bool degrees) {
  const double scale = degrees ? M_PI / 180.0 : 1.0;
  Mat3d r[3];
  for (int i = 0; i < 3; ++i)
    r[i] = AxisRotation(convention[i], angles[i] * scale);
  const bool intrinsic =
      std::isupper(static_cast<unsigned char>(convention[0]));
  return intrinsic ? r[0] * r[1] * r[2] : r[2] * r[1] * r[0];
}

Mat4d OrientationMatrix(Orientation orientation) {
  switch (orientation) {
    case Orientation::kAP:
      return Mat4d{{{-1, 0, 0, 0}, {0, 0, -1, 0}, {0, -1, 0, 0}, {0, 0, 0, 1}}};
    case Orientation::kPA:
      return Mat4d{{{-1, 0, 0, 0}, {0, 0, 1, 0}, {0, -1, 0, 0}, {0, 0, 0, 1}}};
    case Orientation::kNone:
      break;
  }
  return Mat4d{{{-1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}};
}

Mat4d MakeRtInv(const Mat3d& rotation, const Vec3d& translation,
                Orientation orientation, const Vec3d& isocenter) {
  const Vec3d rt = rotation * translation;
  const Vec3d t{rt[0] + isocenter[0], rt[1] + isocenter[1],
                rt[2] + isocenter[2]};
  return Mat4d::FromAffine(rotation, t) * OrientationMatrix(orientation);
}

}  // namespace drr::geometry
