#include "io/figures.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "io/png.h"

namespace drr {
namespace {

// Draws the segment from (r0, c0) to (r1, c1) (Bresenham).
void Line(RgbImage& image, int r0, int c0, int r1, int c1, uint8_t r, uint8_t g,
          uint8_t b) {
  const int dc = std::abs(c1 - c0), dr = -std::abs(r1 - r0);
  const int step_c = c0 < c1 ? 1 : -1, step_r = r0 < r1 ? 1 : -1;
  int error = dc + dr;
  while (true) {
    image.Set(r0, c0, r, g, b);
    if (r0 == r1 && c0 == c1) break;
    const int twice = 2 * error;
    if (twice >= dr) {
      error += dr;
      c0 += step_c;
    }
    if (twice <= dc) {
      error += dc;
      r0 += step_r;
    }
  }
}

}  // namespace

void RgbImage::Set(int row, int col, uint8_t r, uint8_t g, uint8_t b) {
  if (row < 0 || row >= rows || col < 0 || col >= cols) return;
  uint8_t* pixel = &pixels[(size_t(row) * cols + col) * 3];
  pixel[0] = r;
  pixel[1] = g;
  pixel[2] = b;
}

absl::Status WriteRgbPng(const std::string& path, const RgbImage& image) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.cols);
  png.height = static_cast<png_uint_32>(image.rows);
  png.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&png, path.c_str(), /*convert_to_8bit=*/0,
                               image.pixels.data(),
                               /*row_stride=*/image.cols * 3,
                               /*colormap=*/nullptr)) {
    const std::string why = png.message;
    png_image_free(&png);
    return absl::UnavailableError(
        absl::StrCat("cannot write ", path, ": ", why));
  }
  return absl::OkStatus();
}

RgbImage ContactSheet(const float* images, int count, int rows, int cols,
                      int columns, int gap) {
  if (count <= 0) return RgbImage(0, 0);
  columns = std::max(1, std::min(columns, count));
  const int sheet_rows = (count + columns - 1) / columns;
  RgbImage sheet(sheet_rows * rows + (sheet_rows - 1) * gap,
                 columns * cols + (columns - 1) * gap, 255);
  const size_t plane = size_t(rows) * cols;
  for (int i = 0; i < count; ++i) {
    const std::vector<uint8_t> grey = WindowToGrey(images + i * plane, plane);
    const int top = (i / columns) * (rows + gap);
    const int left = (i % columns) * (cols + gap);
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        const uint8_t level = grey[size_t(r) * cols + c];
        sheet.Set(top + r, left + c, level, level, level);
      }
    }
  }
  return sheet;
}

RgbImage EdgeOverlay(const float* target, const float* drr, int rows, int cols,
                     double edge_fraction) {
  const size_t n = size_t(rows) * cols;
  const std::vector<uint8_t> grey = WindowToGrey(target, n);
  RgbImage overlay(rows, cols);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const uint8_t level = grey[size_t(r) * cols + c];
      overlay.Set(r, c, level, level, level);
    }
  }
  // Sobel magnitude of the DRR inside its one-pixel border.
  std::vector<double> magnitude(n, 0.0);
  auto at = [&](int r, int c) {
    const float v = drr[size_t(r) * cols + c];
    return std::isfinite(v) ? double(v) : 0.0;
  };
  for (int r = 1; r + 1 < rows; ++r) {
    for (int c = 1; c + 1 < cols; ++c) {
      const double gx = at(r - 1, c + 1) + 2 * at(r, c + 1) + at(r + 1, c + 1) -
                        at(r - 1, c - 1) - 2 * at(r, c - 1) - at(r + 1, c - 1);
      const double gy = at(r + 1, c - 1) + 2 * at(r + 1, c) + at(r + 1, c + 1) -
                        at(r - 1, c - 1) - 2 * at(r - 1, c) - at(r - 1, c + 1);
      magnitude[size_t(r) * cols + c] = std::hypot(gx, gy);
    }
  }
  std::vector<double> sorted = magnitude;
  const double fraction =
      std::isfinite(edge_fraction) ? std::clamp(edge_fraction, 0.0, 1.0) : 0.0;
  const size_t keep = static_cast<size_t>(fraction * static_cast<double>(n));
  if (keep == 0) return overlay;
  std::nth_element(sorted.begin(), sorted.end() - keep, sorted.end());
  const double threshold = sorted[n - keep];
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const double m = magnitude[size_t(r) * cols + c];
      if (m > 0 && m >= threshold) overlay.Set(r, c, 255, 40, 40);
    }
  }
  return overlay;
}

RgbImage LinePlot(const std::vector<double>& values, int rows, int cols) {
  RgbImage plot(rows, cols, 255);
  const int margin = 8;
  const int top = margin, bottom = rows - 1 - margin;
  const int left = margin, right = cols - 1 - margin;
  for (int i = 0; i <= 10; ++i) {
    const int r = top + (bottom - top) * i / 10;
    const int c = left + (right - left) * i / 10;
    const uint8_t shade = i == 0 || i == 10 ? 120 : 225;
    Line(plot, r, left, r, right, shade, shade, shade);
    Line(plot, top, c, bottom, c, shade, shade, shade);
  }
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values) {
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (!(hi >= lo)) return plot;
  const double span = hi > lo ? hi - lo : 1.0;
  const int last = std::max(1, static_cast<int>(values.size()) - 1);
  int previous_r = -1, previous_c = -1;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    const int c =
        left + static_cast<int>(std::lround(double(right - left) * i / last));
    const int r = bottom - static_cast<int>(std::lround(
                               double(bottom - top) * (values[i] - lo) / span));
    if (previous_r >= 0) Line(plot, previous_r, previous_c, r, c, 30, 80, 200);
    plot.Set(r, c, 30, 80, 200);
    previous_r = r;
    previous_c = c;
  }
  return plot;
}

}  // namespace drr
