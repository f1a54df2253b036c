#include "server/engine/image_losses.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace drr::server {
namespace {

// A stack of equally sized planes, row-major, float64.
struct Planes {
  int count = 0, height = 0, width = 0;
  std::vector<double> values;

  Planes(int c, int h, int w)
      : count(c), height(h), width(w), values(size_t(c) * h * w, 0.0) {}
  double& at(int c, int y, int x) {
    return values[(size_t(c) * height + y) * width + x];
  }
  double at(int c, int y, int x) const {
    return values[(size_t(c) * height + y) * width + x];
  }
};

Planes FromImage(const float* image, int height, int width) {
  Planes p(1, height, width);
  for (size_t i = 0; i < p.values.size(); ++i) p.values[i] = image[i];
  return p;
}

// nanodrr's _to_patches: every p×p window (stride 1) of every plane becomes
// a plane of its own, so NCC normalises each window separately and averages
// them (local NCC). Plane (c·H' + y)·W' + x of the result is the window at
// (y, x) of input plane c, with H' = H − p + 1, W' = W − p + 1. p = 0 leaves
// the input as it is.
Planes ToPatches(const Planes& in, int p) {
  if (p == 0) return in;
  const int rows = in.height - p + 1, cols = in.width - p + 1;
  Planes out(in.count * rows * cols, p, p);
  for (int c = 0; c < in.count; ++c)
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j)
            out.at((c * rows + y) * cols + x, i, j) = in.at(c, y + i, x + j);
  return out;
}

// The adjoint of ToPatches: sums window gradients back onto the input.
Planes FromPatches(const Planes& grad, int p, int count, int height,
                   int width) {
  if (p == 0) return grad;
  const int rows = height - p + 1, cols = width - p + 1;
  Planes out(count, height, width);
  for (int c = 0; c < count; ++c)
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j)
            out.at(c, y + i, x + j) += grad.at((c * rows + y) * cols + x, i, j);
  return out;
}

// NCC of two plane stacks (each plane normalised on its own) and its
// gradient with respect to `a`: for one plane of N pixels,
// ∂Σzᵃzᵇ/∂a_k = (z_kᵇ − mean zᵇ)/σᵃ − z_kᵃ·Σzᵃzᵇ/(N·σᵃ).
double Ncc(const Planes& a, const Planes& b, double eps, Planes* grad) {
  const int n = a.height * a.width;
  double total = 0;
  for (int c = 0; c < a.count; ++c) {
    const double* x = a.values.data() + size_t(c) * n;
    const double* y = b.values.data() + size_t(c) * n;
    double mx = 0, my = 0;
    for (int i = 0; i < n; ++i) {
      mx += x[i];
      my += y[i];
    }
    mx /= n;
    my /= n;
    double vx = 0, vy = 0;
    for (int i = 0; i < n; ++i) {
      vx += (x[i] - mx) * (x[i] - mx);
      vy += (y[i] - my) * (y[i] - my);
    }
    const double sx = std::sqrt(vx / n + eps), sy = std::sqrt(vy / n + eps);
    double dot = 0, mean_zy = 0;
    for (int i = 0; i < n; ++i) {
      const double zy = (y[i] - my) / sy;
      dot += (x[i] - mx) / sx * zy;
      mean_zy += zy;
    }
    mean_zy /= n;
    total += dot;
    double* g = grad->values.data() + size_t(c) * n;
    for (int i = 0; i < n; ++i) {
      const double zx = (x[i] - mx) / sx, zy = (y[i] - my) / sy;
      g[i] = (zy - mean_zy) / sx - zx * dot / (n * sx);
    }
  }
  const double scale = 1.0 / (double(a.count) * n);
  for (double& g : grad->values) g *= scale;
  return total * scale;
}

// PyTorch's "reflect" padding index (the edge is not repeated).
int Reflect(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// nanodrr's _Sobel: a separable Gaussian blur (kernel int(6σ+1)|1, reflect
// padding) when σ > 0, then the Sobel filters Gx, Gy as a cross-correlation
// with zero padding 1: one plane in, two out. The Backward method maps a
// gradient of the output back to the input.
class SobelFilter {
 public:
  SobelFilter(double sigma, int height, int width)
      : height_(height), width_(width) {
    if (sigma > 0) {
      const int size = static_cast<int>(6 * sigma + 1) | 1;
      double sum = 0;
      for (int i = 0; i < size; ++i) {
        const double x = i - (size - 1) / 2.0;
        kernel_.push_back(std::exp(-0.5 * (x / sigma) * (x / sigma)));
        sum += kernel_.back();
      }
      for (double& k : kernel_) k /= sum;
    } else {
      kernel_ = {1.0};
    }
  }

  Planes Forward(const Planes& in) const {
    return Sobel(Blur(in, false), false);
  }
  Planes Backward(const Planes& grad_out) const {
    return Blur(Sobel(grad_out, true), true);
  }

 private:
  // Blur along rows then columns; `adjoint` applies the transpose.
  Planes Blur(const Planes& in, bool adjoint) const {
    const int pad = static_cast<int>(kernel_.size()) / 2;
    Planes mid(1, height_, width_), out(1, height_, width_);
    // Horizontal pass, then vertical: out = V·H·in; adjoint: Hᵀ·Vᵀ·in.
    for (int pass = 0; pass < 2; ++pass) {
      const bool horizontal = (pass == 0) != adjoint;
      const Planes& src = pass == 0 ? in : mid;
      Planes& dst = pass == 0 ? mid : out;
      for (int y = 0; y < height_; ++y) {
        for (int x = 0; x < width_; ++x) {
          for (int t = 0; t < static_cast<int>(kernel_.size()); ++t) {
            const int sy = horizontal ? y : Reflect(y + t - pad, height_);
            const int sx = horizontal ? Reflect(x + t - pad, width_) : x;
            if (!adjoint) {
              dst.at(0, y, x) += kernel_[t] * src.at(0, sy, sx);
            } else {
              dst.at(0, sy, sx) += kernel_[t] * src.at(0, y, x);
            }
          }
        }
      }
    }
    return out;
  }

  // Sobel cross-correlation with zero padding; adjoint maps 2 planes to 1.
  Planes Sobel(const Planes& in, bool adjoint) const {
    static constexpr int kGx[3][3] = {{1, 0, -1}, {2, 0, -2}, {1, 0, -1}};
    static constexpr int kGy[3][3] = {{1, 2, 1}, {0, 0, 0}, {-1, -2, -1}};
    Planes out(adjoint ? 1 : 2, height_, width_);
    for (int c = 0; c < 2; ++c) {
      const auto& k = c == 0 ? kGx : kGy;
      for (int y = 0; y < height_; ++y) {
        for (int x = 0; x < width_; ++x) {
          for (int a = -1; a <= 1; ++a) {
            for (int b = -1; b <= 1; ++b) {
              const int sy = y + a, sx = x + b;
              if (sy < 0 || sy >= height_ || sx < 0 || sx >= width_) continue;
              if (!adjoint) {
                out.at(c, y, x) += k[a + 1][b + 1] * in.at(0, sy, sx);
              } else {
                out.at(0, sy, sx) += k[a + 1][b + 1] * in.at(c, y, x);
              }
            }
          }
        }
      }
    }
    return out;
  }

  int height_, width_;
  std::vector<double> kernel_;
};

}  // namespace

absl::Status CheckLoss(const LossSpec& spec, int height, int width) {
  if (spec.patch_sizes.empty() ||
      spec.patch_sizes.size() != spec.weights.size()) {
    return absl::InvalidArgumentError(
        "loss: patch_sizes and patch_weights must be equally long and not "
        "empty");
  }
  for (size_t i = 0; i < spec.patch_sizes.size(); ++i) {
    const int p = spec.patch_sizes[i];
    if (p < 0 || p > height || p > width) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss.patch_sizes[", i, "] is ", p,
                       ", must be 0 (whole image) or at most the "
                       "image's height and width"));
    }
    const long long windows =
        p == 0 ? 0 : 1LL * (height - p + 1) * (width - p + 1);
    if (windows * p * p > kMaxPatchPlaneValues) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "loss.patch_sizes[", i, "] is ", p, ": the ", windows, " windows of ",
          p, "×", p, " pixels of a ", height, "×", width, " image hold ",
          windows * p * p, " values, over the limit of ", kMaxPatchPlaneValues,
          "; use a smaller patch or image"));
    }
    if (!std::isfinite(spec.weights[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss.patch_weights[", i, "] is not finite"));
    }
  }
  if (!(spec.eps > 0) || !std::isfinite(spec.eps)) {
    return absl::InvalidArgumentError("loss.eps must be > 0");
  }
  if (!(spec.sigma >= 0) || spec.sigma > 50) {
    return absl::InvalidArgumentError("loss.sigma must be in [0, 50]");
  }
  if (spec.kind == LossSpec::Kind::kGradientNcc && spec.sigma > 0 &&
      (static_cast<int>(6 * spec.sigma + 1) | 1) / 2 >=
          std::min(height, width)) {
    return absl::InvalidArgumentError(
        "loss.sigma: the blur kernel is larger than the image");
  }
  return absl::OkStatus();
}

double LossAndGradient(const LossSpec& spec, const float* image,
                       const float* target, int height, int width,
                       std::vector<double>* gradient) {
  const Planes x = FromImage(image, height, width);
  const Planes y = FromImage(target, height, width);
  gradient->assign(size_t(height) * width, 0.0);
  if (spec.kind == LossSpec::Kind::kMse) {
    double sum = 0;
    const double n = double(height) * width;
    for (size_t i = 0; i < x.values.size(); ++i) {
      const double d = x.values[i] - y.values[i];
      sum += d * d;
      (*gradient)[i] = 2 * d / n;
    }
    return sum / n;
  }
  const bool sobel = spec.kind == LossSpec::Kind::kGradientNcc;
  const SobelFilter filter(spec.sigma, height, width);
  const Planes fx = sobel ? filter.Forward(x) : x;
  const Planes fy = sobel ? filter.Forward(y) : y;
  const size_t scales =
      spec.kind == LossSpec::Kind::kMultiscaleNcc ? spec.patch_sizes.size() : 1;
  double loss = 0;
  Planes grad_f(fx.count, height, width);
  for (size_t s = 0; s < scales; ++s) {
    const int p = spec.patch_sizes[s];
    const double w =
        spec.kind == LossSpec::Kind::kMultiscaleNcc ? spec.weights[s] : 1.0;
    const Planes px = ToPatches(fx, p), py = ToPatches(fy, p);
    Planes g(px.count, px.height, px.width);
    loss += w * Ncc(px, py, spec.eps, &g);
    const Planes back = FromPatches(g, p, fx.count, height, width);
    for (size_t i = 0; i < grad_f.values.size(); ++i)
      grad_f.values[i] += w * back.values[i];
  }
  const Planes grad = sobel ? filter.Backward(grad_f) : grad_f;
  gradient->assign(grad.values.begin(), grad.values.end());
  return loss;
}

}  // namespace drr::server
