#include "io/nifti.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "status/status_macros.h"

namespace drr {
namespace {

constexpr int kHeaderSize = 348;

// NIfTI-1 datatype codes.
enum NiftiType : int16_t {
  kNiftiUInt8 = 2,
  kNiftiInt16 = 4,
  kNiftiInt32 = 8,
  kNiftiFloat32 = 16,
  kNiftiFloat64 = 64,
  kNiftiInt8 = 256,
  kNiftiUInt16 = 512,
};

// Reads fields of the fixed header, swapping bytes for big-endian files.
class HeaderReader {
 public:
  HeaderReader(absl::string_view header, bool swap)
      : header_(header), swap_(swap) {}

  template <typename T>
  T Get(int offset) const {
    char bytes[sizeof(T)];
    std::memcpy(bytes, header_.data() + offset, sizeof(T));
    if (swap_) std::reverse(bytes, bytes + sizeof(T));
    T value;
    std::memcpy(&value, bytes, sizeof(T));
    return value;
  }

 private:
  absl::string_view header_;
  bool swap_;
};

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("NIfTI: ", what));
}

// The voxel→world affine from the qform quaternion, pixdim and qoffset.
geometry::Mat4d QformAffine(const HeaderReader& h) {
  const double b = h.Get<float>(256), c = h.Get<float>(260),
               d = h.Get<float>(264);
  const double a = std::sqrt(std::max(0.0, 1.0 - (b * b + c * c + d * d)));
  const double qfac = h.Get<float>(76) < 0 ? -1.0 : 1.0;
  const double dx = h.Get<float>(80), dy = h.Get<float>(84),
               dz = h.Get<float>(88) * qfac;
  const geometry::Mat3d r{{{a * a + b * b - c * c - d * d, 2 * (b * c - a * d),
                            2 * (b * d + a * c)},
                           {2 * (b * c + a * d), a * a + c * c - b * b - d * d,
                            2 * (c * d - a * b)},
                           {2 * (b * d - a * c), 2 * (c * d + a * b),
                            a * a + d * d - c * c - b * b}}};
  const geometry::Mat3d scale{{{dx, 0, 0}, {0, dy, 0}, {0, 0, dz}}};
  return geometry::Mat4d::FromAffine(
      r * scale, {h.Get<float>(268), h.Get<float>(272), h.Get<float>(276)});
}

geometry::Mat4d SformAffine(const HeaderReader& h) {
  geometry::Mat4d f = geometry::Mat4d::Identity();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c) f.m[r][c] = h.Get<float>(280 + 16 * r + 4 * c);
  }
  return f;
}

// Copies `count` voxels of type From (file byte order) to To, little-endian,
// applying `slope`·v + `inter`.
template <typename From, typename To>
std::string ConvertVoxels(const char* src, int64_t count, bool swap,
                          double slope, double inter) {
  std::string out(count * sizeof(To), '\0');
  char* dst = out.data();
  for (int64_t i = 0; i < count; ++i) {
    char bytes[sizeof(From)];
    std::memcpy(bytes, src + i * sizeof(From), sizeof(From));
    if (swap) std::reverse(bytes, bytes + sizeof(From));
    From v;
    std::memcpy(&v, bytes, sizeof(From));
    const To t = static_cast<To>(slope * static_cast<double>(v) + inter);
    std::memcpy(dst + i * sizeof(To), &t, sizeof(To));
  }
  return out;
}

template <typename T>
std::string CopyVoxels(const char* src, int64_t count, bool swap) {
  if (!swap) return std::string(src, count * sizeof(T));
  return ConvertVoxels<T, T>(src, count, swap, 1.0, 0.0);
}

}  // namespace

absl::StatusOr<HostVolume> ParseNifti(absl::string_view bytes,
                                      const NiftiLimits& limits) {
  if (bytes.size() < kHeaderSize)
    return Invalid("file shorter than a 348-byte header");
  int32_t sizeof_hdr;
  std::memcpy(&sizeof_hdr, bytes.data(), 4);
  bool swap = false;
  if (sizeof_hdr != kHeaderSize) {
    swap = __builtin_bswap32(static_cast<uint32_t>(sizeof_hdr)) == kHeaderSize;
    if (!swap) {
      return Invalid(sizeof_hdr == 540 || __builtin_bswap32(sizeof_hdr) == 540
                         ? "NIfTI-2 files are not supported; convert to NIfTI-1"
                         : "not a NIfTI-1 file (sizeof_hdr is not 348)");
    }
  }
  const HeaderReader h(bytes.substr(0, kHeaderSize), swap);
  if (std::memcmp(bytes.data() + 344, "n+1\0", 4) != 0) {
    return Invalid("not a single-file NIfTI-1 image (magic is not \"n+1\")");
  }
  const int16_t ndim = h.Get<int16_t>(40);
  if (ndim < 3 || ndim > 7)
    return Invalid(absl::StrCat("dim[0] is ", ndim, ", need 3 to 7"));
  int64_t dims[3];
  for (int i = 0; i < 3; ++i) {
    dims[i] = h.Get<int16_t>(42 + 2 * i);
    if (dims[i] < 1)
      return Invalid(absl::StrCat("dim[", i + 1, "] is ", dims[i]));
  }
  for (int i = 4; i <= ndim; ++i) {
    if (h.Get<int16_t>(40 + 2 * i) > 1) {
      return Invalid(
          "only 3-D volumes are supported (a higher dimension is > 1)");
    }
  }
  const int64_t voxels = dims[0] * dims[1] * dims[2];
  if (voxels > limits.max_voxels) {
    return Invalid(absl::StrCat(voxels, " voxels exceed the limit of ",
                                limits.max_voxels));
  }
  const int16_t datatype = h.Get<int16_t>(70);
  int from_bytes = 0;
  switch (datatype) {
    case kNiftiUInt8:
    case kNiftiInt8:
      from_bytes = 1;
      break;
    case kNiftiInt16:
    case kNiftiUInt16:
      from_bytes = 2;
      break;
    case kNiftiInt32:
    case kNiftiFloat32:
      from_bytes = 4;
      break;
    case kNiftiFloat64:
      from_bytes = 8;
      break;
    default:
      return Invalid(absl::StrCat("unsupported datatype code ", datatype));
  }
  const float vox_offset = h.Get<float>(108);
  if (!(vox_offset >= kHeaderSize) ||
      vox_offset > static_cast<float>(bytes.size())) {
    return Invalid(
        absl::StrCat("vox_offset ", vox_offset, " is outside the file"));
  }
  const size_t offset = static_cast<size_t>(vox_offset);
  const int64_t data_bytes = voxels * from_bytes;
  if (static_cast<int64_t>(bytes.size() - offset) < data_bytes) {
    return Invalid(absl::StrCat("file holds ", bytes.size() - offset,
                                " voxel bytes, the header declares ",
                                data_bytes));
  }

  HostVolume volume;
  VolumeHeader& header = volume.header;
  header.width = dims[0];
  header.height = dims[1];
  header.depth = dims[2];
  header.value_kind = ValueKind::kHu;
  if (h.Get<int16_t>(254) > 0) {
    header.affine = SformAffine(h);
  } else if (h.Get<int16_t>(252) > 0) {
    header.affine = QformAffine(h);
  } else {
    header.affine = geometry::Mat4d::Identity();
    for (int i = 0; i < 3; ++i)
      header.affine.m[i][i] = h.Get<float>(80 + 4 * i);
  }
  for (const auto& row : header.affine.m) {
    for (double v : row) {
      if (!std::isfinite(v))
        return Invalid("the affine has a non-finite entry");
    }
  }
  if (!geometry::InvertAffine(header.affine))
    return Invalid("the affine is singular");

  const float slope = h.Get<float>(112), inter = h.Get<float>(116);
  const bool scaled = std::isfinite(slope) && slope != 0 &&
                      (slope != 1 || (std::isfinite(inter) && inter != 0));
  const char* src = bytes.data() + offset;
  if (scaled || datatype == kNiftiFloat64) {
    const double s = scaled ? slope : 1.0, b = scaled ? inter : 0.0;
    header.voxel_type = VoxelType::kFloat32;
    switch (datatype) {
      case kNiftiUInt8:
        volume.voxels = ConvertVoxels<uint8_t, float>(src, voxels, swap, s, b);
        break;
      case kNiftiInt8:
        volume.voxels = ConvertVoxels<int8_t, float>(src, voxels, swap, s, b);
        break;
      case kNiftiInt16:
        volume.voxels = ConvertVoxels<int16_t, float>(src, voxels, swap, s, b);
        break;
      case kNiftiUInt16:
        volume.voxels = ConvertVoxels<uint16_t, float>(src, voxels, swap, s, b);
        break;
      case kNiftiInt32:
        volume.voxels = ConvertVoxels<int32_t, float>(src, voxels, swap, s, b);
        break;
      case kNiftiFloat32:
        volume.voxels = ConvertVoxels<float, float>(src, voxels, swap, s, b);
        break;
      default:
        volume.voxels = ConvertVoxels<double, float>(src, voxels, swap, s, b);
        break;
    }
    return volume;
  }
  switch (datatype) {
    case kNiftiUInt8:
      header.voxel_type = VoxelType::kUInt8;
      volume.voxels = CopyVoxels<uint8_t>(src, voxels, swap);
      break;
    case kNiftiInt8:
      header.voxel_type = VoxelType::kInt16;
      volume.voxels =
          ConvertVoxels<int8_t, int16_t>(src, voxels, swap, 1.0, 0.0);
      break;
    case kNiftiInt16:
      header.voxel_type = VoxelType::kInt16;
      volume.voxels = CopyVoxels<int16_t>(src, voxels, swap);
      break;
    case kNiftiUInt16:
      header.voxel_type = VoxelType::kUInt16;
      volume.voxels = CopyVoxels<uint16_t>(src, voxels, swap);
      break;
    case kNiftiInt32:
      header.voxel_type = VoxelType::kInt32;
      volume.voxels = CopyVoxels<int32_t>(src, voxels, swap);
      break;
    default:
      header.voxel_type = VoxelType::kFloat32;
      volume.voxels = CopyVoxels<float>(src, voxels, swap);
      break;
  }
  return volume;
}

absl::StatusOr<HostVolume> ReadNiftiFile(const std::string& path,
                                         const NiftiLimits& limits) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string bytes;
  std::vector<char> buffer(1 << 20);
  // Stop reading past what the largest allowed volume could need.
  const int64_t max_bytes = limits.max_voxels * 8 + (int64_t{1} << 20);
  int n;
  while ((n = gzread(file, buffer.data(),
                     static_cast<unsigned>(buffer.size()))) > 0) {
    bytes.append(buffer.data(), n);
    if (static_cast<int64_t>(bytes.size()) > max_bytes) {
      gzclose(file);
      return Invalid(absl::StrCat(path, " is larger than any allowed volume"));
    }
  }
  const bool failed = n < 0;
  gzclose(file);
  if (failed) return Invalid(absl::StrCat(path, ": corrupt gzip stream"));
  absl::StatusOr<HostVolume> volume = ParseNifti(bytes, limits);
  if (!volume.ok()) {
    return absl::Status(volume.status().code(),
                        absl::StrCat(path, ": ", volume.status().message()));
  }
  return volume;
}

}  // namespace drr
