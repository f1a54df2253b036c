#include "io/volume_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "itkGDCMImageIO.h"
#include "itkGDCMSeriesFileNames.h"
#include "itkImage.h"
#include "itkImageFileReader.h"
#include "itkImageSeriesReader.h"
#include "itkMetaImageIO.h"
#include "itkNrrdImageIO.h"
#include "nifti1_io.h"
#include "status/status_macros.h"

namespace drr {
namespace {

// What a path names.
enum class PathKind { kMissing, kFile, kDirectory };

PathKind KindOf(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return PathKind::kMissing;
  return S_ISDIR(info.st_mode) ? PathKind::kDirectory : PathKind::kFile;
}

// The DICOM series of `directory`, by GDCM.
itk::GDCMSeriesFileNames::Pointer SeriesIn(const std::string& directory) {
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(false);  // as SimpleITK's series ids
  names->SetDirectory(directory);
  return names;
}

// The files of the one DICOM series in `directory`, sorted along the slice
// normal.
absl::StatusOr<std::vector<std::string>> SeriesFiles(
    const std::string& directory) {
  itk::GDCMSeriesFileNames::Pointer names = SeriesIn(directory);
  const std::vector<std::string>& series = names->GetSeriesUIDs();
  if (series.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        directory, " holds ", series.size(),
        " DICOM series; name a directory of one series, or one file of the "
        "series to read"));
  }
  return names->GetFileNames(series[0]);
}

// The files of the DICOM series `file` belongs to, in its directory (just
// `file` when GDCM finds it in none).
std::vector<std::string> SeriesOfFile(const std::string& file) {
  const std::filesystem::path path(file);
  itk::GDCMSeriesFileNames::Pointer names =
      SeriesIn(path.has_parent_path() ? path.parent_path().string() : ".");
  for (const std::string& uid : names->GetSeriesUIDs()) {
    std::vector<std::string> files = names->GetFileNames(uid);
    for (const std::string& member : files) {
      std::error_code error;
      if (std::filesystem::equivalent(member, path, error)) return files;
    }
  }
  return {file};
}

// The ImageIO of the first format that reads `file`, or nullptr.
itk::ImageIOBase::Pointer IoFor(const std::string& file) {
  const itk::ImageIOBase::Pointer candidates[] = {
      itk::NrrdImageIO::New().GetPointer(),
      itk::MetaImageIO::New().GetPointer(),
      itk::GDCMImageIO::New().GetPointer()};
  for (const itk::ImageIOBase::Pointer& io : candidates) {
    if (io->CanReadFile(file.c_str())) return io;
  }
  return nullptr;
}

// How the voxels of an ITK component type are kept.
VoxelType StoredAs(itk::IOComponentEnum component) {
  switch (component) {
    case itk::IOComponentEnum::UCHAR:
      return VoxelType::kUInt8;
    case itk::IOComponentEnum::CHAR:
    case itk::IOComponentEnum::SHORT:
      return VoxelType::kInt16;
    case itk::IOComponentEnum::USHORT:
      return VoxelType::kUInt16;
    case itk::IOComponentEnum::INT:
      return VoxelType::kInt32;
    default:
      return VoxelType::kFloat32;
  }
}

// The volume of `files` (one volume file, or the slices of a DICOM series
// when `slices`) read by `io` as `Pixel`s.
template <typename Pixel>
absl::StatusOr<HostVolume> ReadAs(const std::string& path,
                                  const itk::ImageIOBase::Pointer& io,
                                  const std::vector<std::string>& files,
                                  bool slices, VoxelType type) {
  using Image = itk::Image<Pixel, 3>;
  typename Image::Pointer image;
  try {
    if (!slices) {
      auto reader = itk::ImageFileReader<Image>::New();
      reader->SetImageIO(io);
      reader->SetFileName(files[0]);
      reader->Update();
      image = reader->GetOutput();
    } else {
      auto reader = itk::ImageSeriesReader<Image>::New();
      reader->SetImageIO(io);
      reader->SetFileNames(files);
      reader->Update();
      image = reader->GetOutput();
    }
  } catch (const itk::ExceptionObject& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", error.GetDescription()));
  }
  const auto size = image->GetLargestPossibleRegion().GetSize();
  double origin[3], spacing[3], direction[3][3];
  for (int r = 0; r < 3; ++r) {
    origin[r] = image->GetOrigin()[r];
    spacing[r] = image->GetSpacing()[r];
    for (int c = 0; c < 3; ++c) direction[r][c] = image->GetDirection()[r][c];
  }
  HostVolume volume;
  volume.header.voxel_type = type;
  volume.header.value_kind = ValueKind::kHu;
  volume.header.width = static_cast<int>(size[0]);
  volume.header.height = static_cast<int>(size[1]);
  volume.header.depth = static_cast<int>(size[2]);
  volume.header.affine = RasAffineOfLps(origin, spacing, direction);
  volume.voxels.assign(reinterpret_cast<const char*>(image->GetBufferPointer()),
                       volume.header.voxels() * sizeof(Pixel));
  return volume;
}

// `volume` (of `Pixel`s) as int16 when every voxel fits, as drrclient's
// load_volume does for the formats it reads with ITK (so that a file gives
// one volume id from either client): GDCM gives a CT series rescaled by an
// intercept as int32, whatever its values.
template <typename Pixel>
void NarrowToInt16(HostVolume* volume) {
  std::vector<Pixel> wide(volume->header.voxels());
  std::memcpy(wide.data(), volume->voxels.data(), volume->voxels.size());
  const auto [lo, hi] = std::minmax_element(wide.begin(), wide.end());
  if (wide.empty() || *lo < std::numeric_limits<int16_t>::min() ||
      *hi > std::numeric_limits<int16_t>::max()) {
    return;
  }
  std::vector<int16_t> narrow(wide.begin(), wide.end());
  volume->voxels.assign(reinterpret_cast<const char*>(narrow.data()),
                        narrow.size() * sizeof(int16_t));
  volume->header.voxel_type = VoxelType::kInt16;
}

// The volume of `files` read by `io` as `Pixel`s, narrowed to int16 where
// every voxel fits.
template <typename Pixel>
absl::StatusOr<HostVolume> ReadNarrowed(const std::string& path,
                                        const itk::ImageIOBase::Pointer& io,
                                        const std::vector<std::string>& files,
                                        bool slices, VoxelType type) {
  DRR_ASSIGN_OR_RETURN(HostVolume volume,
                       ReadAs<Pixel>(path, io, files, slices, type));
  NarrowToInt16<Pixel>(&volume);
  return volume;
}

// A NIfTI image as niftilib holds it, freed with it.
using NiftiImage = std::unique_ptr<nifti_image, void (*)(nifti_image*)>;

// The qform affine of a NIfTI header as nibabel builds it, to the bit (a
// volume id hashes the affine's bytes): w filled from b, c, d and the
// rotation matrix in long double (numpy's longdouble, nibabel's
// fillpositive and quat2mat), its product with the float32 spacings (the
// last one times qfac) summed as numpy's dot does, then rounded to double.
// A quaternion whose b, c, d are longer than 1 is INVALID_ARGUMENT, as
// nibabel refuses it.
absl::StatusOr<geometry::Mat4d> NiftiQform(const std::string& path,
                                           const nifti_image& n) {
  using Wide = long double;
  const Wide x = n.quatern_b, y = n.quatern_c, z = n.quatern_d;
  const Wide w2 = 1.0L - (x * x + y * y + z * z);
  const float threshold = std::numeric_limits<float>::epsilon() * 3;
  if (w2 < 0 && std::fabs(w2) >= threshold) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": its qform quaternion is not a rotation"));
  }
  const Wide w = std::fabs(w2) < threshold ? 0.0L : std::sqrt(w2);
  Wide r[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  const Wide norm = w * w + x * x + y * y + z * z;
  if (norm >= std::numeric_limits<double>::epsilon()) {
    const Wide s = 2.0L / norm;
    const Wide X = x * s, Y = y * s, Z = z * s;
    const Wide wX = w * X, wY = w * Y, wZ = w * Z;
    const Wide xX = x * X, xY = x * Y, xZ = x * Z;
    const Wide yY = y * Y, yZ = y * Z, zZ = z * Z;
    const Wide m[3][3] = {{1.0L - (yY + zZ), xY - wZ, xZ + wY},
                          {xY + wZ, 1.0L - (xX + zZ), yZ - wX},
                          {xZ - wY, yZ + wX, 1.0L - (xX + yY)}};
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) r[i][j] = m[i][j];
    }
  }
  const float voxel[3] = {n.dx, n.dy, n.qfac < 0 ? -n.dz : n.dz};
  geometry::Mat4d affine = geometry::Mat4d::Identity();
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      Wide sum = 0;
      for (int k = 0; k < 3; ++k) sum += r[i][k] * (k == j ? voxel[j] : 0.0f);
      affine.m[i][j] = static_cast<double>(sum);
    }
  }
  affine.m[0][3] = n.qoffset_x;
  affine.m[1][3] = n.qoffset_y;
  affine.m[2][3] = n.qoffset_z;
  return affine;
}

// The voxel→world affine of a NIfTI header, as nibabel chooses it: the sform
// when its code is set, else the qform, else nibabel's default (Analyze's:
// the spacings, x flipped, the volume centred on the origin).
absl::StatusOr<geometry::Mat4d> NiftiAffine(const std::string& path,
                                            const nifti_image& n) {
  geometry::Mat4d affine = geometry::Mat4d::Identity();
  if (n.sform_code != 0) {
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) affine.m[r][c] = n.sto_xyz.m[r][c];
    }
    return affine;
  }
  if (n.qform_code != 0) return NiftiQform(path, n);
  const double zoom[3] = {-double{n.dx}, n.dy, n.dz};
  const int size[3] = {n.nx, n.ny, n.nz};
  for (int a = 0; a < 3; ++a) {
    affine.m[a][a] = zoom[a];
    affine.m[a][3] = -((size[a] - 1) / 2.0) * zoom[a];
  }
  return affine;
}

// `count` voxels of `From` as `To`, each slope·v + inter.
template <typename From, typename To>
std::string Converted(const void* data, size_t count, double slope,
                      double inter) {
  const From* in = static_cast<const From*>(data);
  std::vector<To> out(count);
  for (size_t i = 0; i < count; ++i) {
    out[i] = static_cast<To>(slope * static_cast<double>(in[i]) + inter);
  }
  return std::string(reinterpret_cast<const char*>(out.data()),
                     count * sizeof(To));
}

// The voxels of a loaded NIfTI image as `volume` keeps them (and its type):
// scaled ones as float32, int8 widened to int16, float64 narrowed to
// float32, the rest as stored.
absl::Status NiftiVoxels(const std::string& path, const nifti_image& n,
                         HostVolume* volume) {
  const size_t count = n.nvox;
  const double slope = n.scl_slope, inter = n.scl_inter;
  const bool scaled = slope != 0.0 && (slope != 1.0 || inter != 0.0);
  const auto as = [&](VoxelType type, auto from, auto to) {
    using From = decltype(from);
    using To = decltype(to);
    volume->header.voxel_type = type;
    volume->voxels = Converted<From, To>(n.data, count, 1.0, 0.0);
  };
  if (scaled) {
    volume->header.voxel_type = VoxelType::kFloat32;
    switch (n.datatype) {
      case DT_UINT8:
        volume->voxels = Converted<uint8_t, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      case DT_INT8:
        volume->voxels = Converted<int8_t, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      case DT_INT16:
        volume->voxels = Converted<int16_t, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      case DT_UINT16:
        volume->voxels =
            Converted<uint16_t, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      case DT_INT32:
        volume->voxels = Converted<int32_t, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      case DT_FLOAT32:
        volume->voxels = Converted<float, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      case DT_FLOAT64:
        volume->voxels = Converted<double, float>(n.data, count, slope, inter);
        return absl::OkStatus();
      default:
        break;
    }
  } else {
    switch (n.datatype) {
      case DT_UINT8:
        as(VoxelType::kUInt8, uint8_t{}, uint8_t{});
        return absl::OkStatus();
      case DT_INT8:
        as(VoxelType::kInt16, int8_t{}, int16_t{});
        return absl::OkStatus();
      case DT_INT16:
        as(VoxelType::kInt16, int16_t{}, int16_t{});
        return absl::OkStatus();
      case DT_UINT16:
        as(VoxelType::kUInt16, uint16_t{}, uint16_t{});
        return absl::OkStatus();
      case DT_INT32:
        as(VoxelType::kInt32, int32_t{}, int32_t{});
        return absl::OkStatus();
      case DT_FLOAT32:
        as(VoxelType::kFloat32, float{}, float{});
        return absl::OkStatus();
      case DT_FLOAT64:
        as(VoxelType::kFloat32, double{}, float{});
        return absl::OkStatus();
      default:
        break;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": NIfTI voxels of type ", nifti_datatype_string(n.datatype),
      " (volumes are uint8, int8, int16, uint16, int32, float32 "
      "or float64)"));
}

// The NIfTI volume at `path`, read by niftilib.
absl::StatusOr<HostVolume> ReadNifti(const std::string& path,
                                     const VolumeFileLimits& limits) {
  nifti_set_debug_level(0);  // errors come back as statuses
  NiftiImage image(nifti_image_read(path.c_str(), /*read_data=*/0),
                   nifti_image_free);
  if (image == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a NIfTI header niftilib cannot read"));
  }
  const nifti_image& n = *image;
  const int64_t voxels = int64_t{n.nx} * n.ny * n.nz;
  if (n.nx < 1 || n.ny < 1 || n.nz < 1 ||
      static_cast<int64_t>(n.nvox) != voxels) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is not a 3-D scalar volume (", n.ndim, " dimensions)"));
  }
  if (voxels > limits.max_voxels) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, " has ", voxels, " voxels, over the limit of ",
                     limits.max_voxels));
  }
  if (nifti_image_load(image.get()) != 0 || n.data == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": its voxels cannot be read (truncated?)"));
  }
  HostVolume volume;
  volume.header.value_kind = ValueKind::kHu;
  volume.header.width = n.nx;
  volume.header.height = n.ny;
  volume.header.depth = n.nz;
  DRR_ASSIGN_OR_RETURN(volume.header.affine, NiftiAffine(path, n));
  DRR_RETURN_IF_ERROR(NiftiVoxels(path, n, &volume));
  return volume;
}

}  // namespace

geometry::Mat4d RasAffineOfLps(const double origin[3], const double spacing[3],
                               const double direction[3][3]) {
  geometry::Mat4d affine = geometry::Mat4d::Identity();
  for (int r = 0; r < 3; ++r) {
    const double ras = r < 2 ? -1.0 : 1.0;  // LPS → RAS
    // (+ 0.0 turns a negated zero into +0, as numpy's affine has it: the
    // affine's bytes are part of the volume id.)
    for (int c = 0; c < 3; ++c) {
      affine.m[r][c] = ras * direction[r][c] * spacing[c] + 0.0;
    }
    affine.m[r][3] = ras * origin[r] + 0.0;
  }
  return affine;
}

namespace {

// ReadVolumeFile, letting ITK's and the allocator's exceptions through.
absl::StatusOr<HostVolume> ReadOrThrow(const std::string& path,
                                       const VolumeFileLimits& limits) {
  std::vector<std::string> files;
  switch (KindOf(path)) {
    case PathKind::kMissing:
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    case PathKind::kDirectory: {
      DRR_ASSIGN_OR_RETURN(files, SeriesFiles(path));
      break;
    }
    case PathKind::kFile:
      // NIfTI through niftilib (which ITK's own NIfTI reader wraps): the
      // file's affine exactly as nibabel gives it, shear included, where
      // ITK keeps only an orthonormal direction and spacings.
      if (is_nifti_file(path.c_str()) > 0) return ReadNifti(path, limits);
      files = {path};
      break;
  }
  itk::ImageIOBase::Pointer io = IoFor(files[0]);
  if (io == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": not a volume ITK reads (NIfTI, NRRD, MetaImage, "
                     "DICOM)"));
  }
  const bool dicom =
      dynamic_cast<itk::GDCMImageIO*>(io.GetPointer()) != nullptr;
  // One file of a DICOM series stands for its series.
  if (dicom && files.size() == 1) files = SeriesOfFile(files[0]);
  try {
    io->SetFileName(files[0]);
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", error.GetDescription()));
  }
  const int dimensions = static_cast<int>(io->GetNumberOfDimensions());
  // DICOM slices (one plane each, 2-D or 3-D of depth 1 to GDCM) stack;
  // anything else is a volume of its own.
  const bool slices = dicom && (dimensions == 2 ||
                                (dimensions == 3 && io->GetDimensions(2) == 1));
  if (io->GetNumberOfComponents() != 1 || (dimensions != 3 && !slices) ||
      (files.size() > 1 && !slices)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is not a 3-D scalar volume (", dimensions, " dimensions, ",
        io->GetNumberOfComponents(), " components per voxel)"));
  }
  // (Each factor is bounded before it multiplies: no overflow.)
  int64_t voxels = slices ? static_cast<int64_t>(files.size()) : 1;
  for (int d = 0; d < (slices ? 2 : 3) && voxels <= limits.max_voxels; ++d) {
    const uint64_t size = io->GetDimensions(d);
    voxels = size > static_cast<uint64_t>(limits.max_voxels)
                 ? limits.max_voxels + 1
                 : voxels * static_cast<int64_t>(size);
  }
  if (voxels > limits.max_voxels) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, " has ", voxels, " voxels, over the limit of ",
                     limits.max_voxels));
  }
  const VoxelType type = StoredAs(io->GetComponentType());
  switch (type) {
    case VoxelType::kUInt8:
      return ReadNarrowed<uint8_t>(path, io, files, slices, type);
    case VoxelType::kInt16:
      return ReadAs<int16_t>(path, io, files, slices, type);
    case VoxelType::kUInt16:
      return ReadNarrowed<uint16_t>(path, io, files, slices, type);
    case VoxelType::kInt32:
      return ReadNarrowed<int32_t>(path, io, files, slices, type);
    case VoxelType::kFloat32:
      break;
  }
  return ReadAs<float>(path, io, files, slices, VoxelType::kFloat32);
}

}  // namespace

absl::StatusOr<HostVolume> ReadVolumeFile(const std::string& path,
                                          const VolumeFileLimits& limits) {
  try {
    return ReadOrThrow(path, limits);
  } catch (const itk::ExceptionObject& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", error.GetDescription()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": not enough memory to read it"));
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", error.what()));
  }
}

}  // namespace drr
