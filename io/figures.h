// Small pictures drrctl writes beside its numbers: a contact sheet of DRRs, a
// target with a DRR's edges drawn over it, and a line plot of a loss, as 8-bit
// RGB rasters saved with WriteRgbPng.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace drr {

// An 8-bit RGB raster: rows × cols pixels, row 0 at the top, 3 bytes each.
struct RgbImage {
  // rows × cols pixels (none where either is not positive) of one grey.
  RgbImage(int rows, int cols, uint8_t grey = 0)
      : rows(std::max(rows, 0)),
        cols(std::max(cols, 0)),
        pixels(size_t(this->rows) * this->cols * 3, grey) {}

  // Sets pixel (row, col), if it lies inside, to (r, g, b).
  void Set(int row, int col, uint8_t r, uint8_t g, uint8_t b);

  int rows;
  int cols;
  std::vector<uint8_t> pixels;
};

// Writes `image` as an RGB PNG.
absl::Status WriteRgbPng(const std::string& path, const RgbImage& image);

// `count` images of rows × cols floats (one after the other), each windowed
// from its own minimum (black) to maximum (white), tiled left to right and
// top to bottom `columns` to a row, `gap` white pixels apart; an empty image
// for no images.
RgbImage ContactSheet(const float* images, int count, int rows, int cols,
                      int columns, int gap = 4);

// The target (rows × cols) in grey, windowed as ContactSheet's tiles, with
// the edges of `drr` (the same size) in red: the pixels whose Sobel gradient
// magnitude is among the image's largest `edge_fraction`.
RgbImage EdgeOverlay(const float* target, const float* drr, int rows, int cols,
                     double edge_fraction = 0.1);

// `values` against their index as a blue polyline on white, in a rows × cols
// frame with a grey grid of ten divisions a side; the y axis spans the
// values' range (non-finite values are left out).
RgbImage LinePlot(const std::vector<double>& values, int rows, int cols);

}  // namespace drr
