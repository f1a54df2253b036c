// Read-only views of a resident volume for the per-ray body: attenuation
// voxels in their storage type (sampled trilinearly or per voxel) and the
// optional label volume (looked up nearest).
#pragma once

#include <cstdint>

#include "kernels/storage.h"
#include "kernels/vec.h"
#include "numeric/host_device.h"

namespace drr::kernels {

// The eight voxels around a point inside the volume's cell (i0, j0, k0):
// cXYZ is voxel (i0 + X, j0 + Y, k0 + Z).
struct CellCorners {
  float c000, c100, c010, c110, c001, c101, c011, c111;
};

// Whether the cell (x0, y0, z0) of a volume of nx × ny × nz voxels lies
// inside it, all eight corners.
DRR_HD bool CellInside(int x0, int y0, int z0, int nx, int ny, int nz) {
  return x0 >= 0 && y0 >= 0 && z0 >= 0 && x0 + 1 < nx && y0 + 1 < ny &&
         z0 + 1 < nz;
}

// Trilinear interpolation of `volume` (a VolumeView or QuadView) at
// continuous voxel coordinates `p`; each of the 8 neighbours outside the
// volume contributes zero (grid_sample with align_corners=False and zero
// padding, at voxel coordinates). The views differ in how they read a cell's
// corners, not in this arithmetic, so they give the same bits.
template <class View>
DRR_HD_SAMPLE float SampleTrilinear(const View& volume, Vec3 p) {
  const int nx = volume.nx, ny = volume.ny, nz = volume.nz;
  const float fx = floorf(p.x), fy = floorf(p.y), fz = floorf(p.z);
  const int x0 = SaturatingIndex(fx, nx), y0 = SaturatingIndex(fy, ny),
            z0 = SaturatingIndex(fz, nz);
  const float wx = p.x - fx, wy = p.y - fy, wz = p.z - fz;
  if (CellInside(x0, y0, z0, nx, ny, nz)) {
    const CellCorners c = volume.Cell(x0, y0, z0);
    const float c00 = c.c000 + wx * (c.c100 - c.c000);
    const float c10 = c.c010 + wx * (c.c110 - c.c010);
    const float c01 = c.c001 + wx * (c.c101 - c.c001);
    const float c11 = c.c011 + wx * (c.c111 - c.c011);
    const float c0 = c00 + wy * (c10 - c00);
    const float c1 = c01 + wy * (c11 - c01);
    return c0 + wz * (c1 - c0);
  }
  float sum = 0.0f;
  for (int dz = 0; dz < 2; ++dz) {
    const int z = z0 + dz;
    if (z < 0 || z >= nz) continue;
    const float w_z = dz ? wz : 1.0f - wz;
    for (int dy = 0; dy < 2; ++dy) {
      const int y = y0 + dy;
      if (y < 0 || y >= ny) continue;
      const float w_zy = w_z * (dy ? wy : 1.0f - wy);
      for (int dx = 0; dx < 2; ++dx) {
        const int x = x0 + dx;
        if (x < 0 || x >= nx) continue;
        sum += w_zy * (dx ? wx : 1.0f - wx) * volume.Voxel(x, y, z);
      }
    }
  }
  return sum;
}

// A volume V[k][j][i] of element type T (float, Half, BFloat16), i fastest,
// nx·ny·nz < 2³¹. Voxel centres are at integer coordinates.
template <typename T>
struct VolumeView {
  using Element = T;
  // SampleWithGradient reads voxel by voxel: a cell costs eight loads
  // either way, and the per-voxel loop takes fewer registers.
  static constexpr bool kReadsCellsWhole = false;
  const T* data;
  int nx, ny, nz;

  // The voxel (i, j, k), which must be inside.
  DRR_HD float Voxel(int i, int j, int k) const {
    return ToFloat(data[(k * ny + j) * nx + i]);
  }

  // The corners of the cell (i, j, k), which must lie inside: eight loads.
  DRR_HD CellCorners Cell(int i, int j, int k) const {
    const T* c = data + (k * ny + j) * nx + i;
    const int sy = nx, sz = nx * ny;
    return {ToFloat(c[0]),       ToFloat(c[1]),          ToFloat(c[sy]),
            ToFloat(c[sy + 1]),  ToFloat(c[sz]),         ToFloat(c[sz + 1]),
            ToFloat(c[sz + sy]), ToFloat(c[sz + sy + 1])};
  }

  // The trilinear value at `p` (SampleTrilinear).
  DRR_HD float operator()(Vec3 p) const { return SampleTrilinear(*this, p); }
};

// Voxel (i, j, k) of a volume and its neighbours (i + 1, j), (i, j + 1) and
// (i + 1, j + 1) of the same slice k, in that order, zero beyond the volume:
// a trilinear sample reads its cell's eight corners in two quads, one
// aligned vector load each on the GPU.
template <typename T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};

// The quad of voxel (i, j, k) of `volume` (QuadView's element).
template <typename T>
DRR_HD Quad<T> QuadAt(const VolumeView<T>& volume, int i, int j, int k) {
  const T zero{};
  const T* c = volume.data + (k * volume.ny + j) * volume.nx + i;
  const bool right = i + 1 < volume.nx, below = j + 1 < volume.ny;
  return {{c[0], right ? c[1] : zero, below ? c[volume.nx] : zero,
           right && below ? c[volume.nx + 1] : zero}};
}

// The same volume as VolumeView<T> read from a copy in quads (QuadAt of
// every voxel, in the voxels' order): four times the memory, and two loads
// per trilinear sample inside the volume where VolumeView issues eight; the
// same values, bit for bit.
template <typename T>
struct QuadView {
  // SampleWithGradient reads a cell inside the volume with Cell: two loads.
  static constexpr bool kReadsCellsWhole = true;
  const Quad<T>* quads;
  int nx, ny, nz;

  // The voxel (i, j, k), which must be inside.
  DRR_HD float Voxel(int i, int j, int k) const {
    return ToFloat(quads[(k * ny + j) * nx + i].v[0]);
  }

  // The corners of the cell (i, j, k), which must lie inside: two quads.
  DRR_HD CellCorners Cell(int i, int j, int k) const {
    const Quad<T> near = quads[(k * ny + j) * nx + i];
    const Quad<T> far = quads[((k + 1) * ny + j) * nx + i];
    return {ToFloat(near.v[0]), ToFloat(near.v[1]), ToFloat(near.v[2]),
            ToFloat(near.v[3]), ToFloat(far.v[0]),  ToFloat(far.v[1]),
            ToFloat(far.v[2]),  ToFloat(far.v[3])};
  }

  // The trilinear value at `p` (SampleTrilinear).
  DRR_HD float operator()(Vec3 p) const { return SampleTrilinear(*this, p); }
};

// Writes QuadAt of every voxel of `volume` to `quads`, in the voxels' order
// (the host's copy; the CUDA executor builds its own on the device).
template <typename T>
void StoreQuads(const VolumeView<T>& volume, Quad<T>* quads) {
  for (int k = 0; k < volume.nz; ++k)
    for (int j = 0; j < volume.ny; ++j)
      for (int i = 0; i < volume.nx; ++i) *quads++ = QuadAt(volume, i, j, k);
}

// Corner (i0 + dx, j0 + dy, k0 + dz) of a cell (dx, dy, dz each 0 or 1).
DRR_HD float CornerOf(const CellCorners& c, int dx, int dy, int dz) {
  if (dz) {
    if (dy) return dx ? c.c111 : c.c011;
    return dx ? c.c101 : c.c001;
  }
  if (dy) return dx ? c.c110 : c.c010;
  return dx ? c.c100 : c.c000;
}

// The trilinear value at `p` (as operator() of the view) and its analytic
// gradient with respect to p, per voxel unit; neighbours outside the volume
// are zero. Read voxel by voxel, or, where Volume::kReadsCellsWhole, a cell
// inside the volume with the view's Cell (two quads from a QuadView); the
// arithmetic is the same either way.
template <class Volume>
DRR_HD_SAMPLE float SampleWithGradient(const Volume& v, Vec3 p,
                                       Vec3* gradient) {
  const float fx = floorf(p.x), fy = floorf(p.y), fz = floorf(p.z);
  const int x0 = SaturatingIndex(fx, v.nx), y0 = SaturatingIndex(fy, v.ny),
            z0 = SaturatingIndex(fz, v.nz);
  const float wx = p.x - fx, wy = p.y - fy, wz = p.z - fz;
  bool inside = false;
  CellCorners cell{};
  if constexpr (Volume::kReadsCellsWhole) {
    inside = CellInside(x0, y0, z0, v.nx, v.ny, v.nz);
    if (inside) cell = v.Cell(x0, y0, z0);
  }
  float value = 0.0f, gx = 0.0f, gy = 0.0f, gz = 0.0f;
  for (int dz = 0; dz < 2; ++dz) {
    const int z = z0 + dz;
    if (z < 0 || z >= v.nz) continue;
    const float az = dz ? wz : 1.0f - wz, sz = dz ? 1.0f : -1.0f;
    for (int dy = 0; dy < 2; ++dy) {
      const int y = y0 + dy;
      if (y < 0 || y >= v.ny) continue;
      const float ay = dy ? wy : 1.0f - wy, sy = dy ? 1.0f : -1.0f;
      for (int dx = 0; dx < 2; ++dx) {
        const int x = x0 + dx;
        if (x < 0 || x >= v.nx) continue;
        const float ax = dx ? wx : 1.0f - wx, sx = dx ? 1.0f : -1.0f;
        const float c = inside ? CornerOf(cell, dx, dy, dz) : v.Voxel(x, y, z);
        value += ax * ay * az * c;
        gx += sx * ay * az * c;
        gy += ax * sy * az * c;
        gz += ax * ay * sz * c;
      }
    }
  }
  *gradient = Vec3{gx, gy, gz};
  return value;
}

// No label volume: every sample belongs to class 0.
struct NoLabels {
  DRR_HD int Nearest(Vec3) const { return 0; }
  DRR_HD int Voxel(int, int, int) const { return 0; }
};

// A label volume L[k][j][i] of class indices, the shape of the attenuation
// volume.
struct LabelView {
  const uint16_t* data;
  int nx, ny, nz;

  // The class of the voxel (i, j, k), which must be inside.
  DRR_HD int Voxel(int i, int j, int k) const {
    return data[(k * ny + j) * nx + i];
  }

  // The class of the voxel nearest `p`, rounding halves to even as
  // grid_sample(mode="nearest") does; class 0 outside the volume.
  DRR_HD int Nearest(Vec3 p) const {
    const int i = SaturatingIndex(rintf(p.x), nx);
    const int j = SaturatingIndex(rintf(p.y), ny);
    const int k = SaturatingIndex(rintf(p.z), nz);
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) return 0;
    return Voxel(i, j, k);
  }
};

}  // namespace drr::kernels
