#include "kernels/pose.h"

#include <cctype>
#include <cmath>

namespace drr::kernels {
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

}  // namespace

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

}  // namespace drr::kernels
