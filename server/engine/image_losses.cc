#include "server/engine/image_losses.h"

#include <algorithm>
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

// Sums over every p×p window of a height × width plane, from its integral
// image: window (y, x) covers rows y..y+p−1 and columns x..x+p−1.
class WindowSums {
 public:
  WindowSums(const double* plane, int height, int width, int p)
      : width_(width), p_(p), integral_(size_t(height + 1) * (width + 1), 0.0) {
    for (int y = 0; y < height; ++y) {
      double row = 0;
      for (int x = 0; x < width; ++x) {
        row += plane[size_t(y) * width + x];
        at(y + 1, x + 1) = at(y, x + 1) + row;
      }
    }
  }
  // The sum over the window at (y, x).
  double Window(int y, int x) const {
    return at(y + p_, x + p_) - at(y, x + p_) - at(y + p_, x) + at(y, x);
  }
  // The sum over rows [y0, y1) and columns [x0, x1).
  double Box(int y0, int y1, int x0, int x1) const {
    return at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0);
  }

 private:
  double& at(int y, int x) { return integral_[size_t(y) * (width_ + 1) + x]; }
  double at(int y, int x) const {
    return integral_[size_t(y) * (width_ + 1) + x];
  }

  int width_, p_;
  std::vector<double> integral_;
};

// nanodrr's patch NCC (its _to_patches with stride 1: every p×p window of
// every plane normalised on its own, the NCCs averaged) of `a` against `b`,
// and its gradient with respect to `a` into `grad` (a's shape), in
// O(height · width) memory and time: window sums come from integral images,
// and the gradient at a pixel sums, over the windows that hold it, terms
// linear in the pixel (see Ncc) whose coefficients are summed the same way.
double WindowNcc(const Planes& a, const Planes& b, int p, double eps,
                 Planes* grad) {
  const int h = a.height, w = a.width;
  const int rows = h - p + 1, cols = w - p + 1;
  const double n = double(p) * p;
  const size_t pixels = size_t(h) * w;
  double total = 0;
  for (int c = 0; c < a.count; ++c) {
    // Centred on the plane's mean: window variances lose nothing to
    // cancellation (NCC does not change under an offset).
    std::vector<double> x(a.values.begin() + c * pixels,
                          a.values.begin() + (c + 1) * pixels);
    std::vector<double> y(b.values.begin() + c * pixels,
                          b.values.begin() + (c + 1) * pixels);
    double mean_x = 0, mean_y = 0;
    for (size_t i = 0; i < pixels; ++i) {
      mean_x += x[i];
      mean_y += y[i];
    }
    for (size_t i = 0; i < pixels; ++i) {
      x[i] -= mean_x / pixels;
      y[i] -= mean_y / pixels;
    }
    std::vector<double> xx(pixels), yy(pixels), xy(pixels);
    for (size_t i = 0; i < pixels; ++i) {
      xx[i] = x[i] * x[i];
      yy[i] = y[i] * y[i];
      xy[i] = x[i] * y[i];
    }
    const WindowSums sx(x.data(), h, w, p), sy(y.data(), h, w, p),
        sxx(xx.data(), h, w, p), syy(yy.data(), h, w, p),
        sxy(xy.data(), h, w, p);
    // Per window: ∂dot/∂x_k = y_k·A − B − x_k·C + D (A = 1/(σx σy),
    // B = ȳ/(σx σy), C = dot/(N σx²), D = x̄·dot/(N σx²)).
    std::vector<double> coef_a(size_t(rows) * cols), coef_b(coef_a.size()),
        coef_c(coef_a.size()), coef_d(coef_a.size());
    for (int wy = 0; wy < rows; ++wy) {
      for (int wx = 0; wx < cols; ++wx) {
        const double mx = sx.Window(wy, wx) / n, my = sy.Window(wy, wx) / n;
        const double vx = std::max(0.0, sxx.Window(wy, wx) / n - mx * mx);
        const double vy = std::max(0.0, syy.Window(wy, wx) / n - my * my);
        const double dx = std::sqrt(vx + eps), dy = std::sqrt(vy + eps);
        const double dot = (sxy.Window(wy, wx) - n * mx * my) / (dx * dy);
        total += dot;
        const size_t k = size_t(wy) * cols + wx;
        coef_a[k] = 1 / (dx * dy);
        coef_b[k] = my / (dx * dy);
        coef_c[k] = dot / (n * dx * dx);
        coef_d[k] = mx * dot / (n * dx * dx);
      }
    }
    const WindowSums ca(coef_a.data(), rows, cols, 1),
        cb(coef_b.data(), rows, cols, 1), cc(coef_c.data(), rows, cols, 1),
        cd(coef_d.data(), rows, cols, 1);
    double* g = grad->values.data() + c * pixels;
    for (int i = 0; i < h; ++i) {
      // The windows holding pixel (i, j) start at rows y0..y1−1, columns
      // x0..x1−1.
      const int y0 = std::max(0, i - p + 1), y1 = std::min(i, rows - 1) + 1;
      for (int j = 0; j < w; ++j) {
        const int x0 = std::max(0, j - p + 1), x1 = std::min(j, cols - 1) + 1;
        const size_t k = size_t(i) * w + j;
        g[k] = y[k] * ca.Box(y0, y1, x0, x1) - cb.Box(y0, y1, x0, x1) -
               x[k] * cc.Box(y0, y1, x0, x1) + cd.Box(y0, y1, x0, x1);
      }
    }
  }
  const double scale = 1.0 / (double(a.count) * rows * cols * n);
  for (double& g : grad->values) g *= scale;
  return total * scale;
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

// An image's intensities min–max normalised to [0, 1]. An image whose range
// float32 cannot resolve (below 1e-6 of its magnitude, or 1e-12) is flat:
// all mid-grey, without gradient (1/range would overflow it).
class Normalisation {
 public:
  explicit Normalisation(const std::vector<double>& values) {
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    lo_ = *lo;
    min_index_ = lo - values.begin();
    max_index_ = hi - values.begin();
    const double range = *hi - *lo;
    range_ =
        range > std::max(1e-6 * std::max(std::fabs(*lo), std::fabs(*hi)), 1e-12)
            ? range
            : 0.0;
  }

  bool flat() const { return range_ == 0.0; }
  double operator()(double x) const {
    return flat() ? 0.5 : (x - lo_) / range_;
  }

  // Adds to `gradient` (w.r.t. the raw intensities) that of `d` (w.r.t. the
  // normalised ones), through the minimum and maximum too.
  void Backward(const std::vector<double>& values, const std::vector<double>& d,
                std::vector<double>* gradient) const {
    if (flat()) return;
    double through_min = 0, through_max = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double v = (*this)(values[i]);
      (*gradient)[i] += d[i] / range_;
      through_min += d[i] * (v - 1) / range_;
      through_max -= d[i] * v / range_;
    }
    (*gradient)[min_index_] += through_min;
    (*gradient)[max_index_] += through_max;
  }

 private:
  double lo_ = 0, range_ = 0;
  size_t min_index_ = 0, max_index_ = 0;
};

// The Gaussian Parzen window of a normalised intensity: weight w[k] (summing
// to 1) in bin first + k for the kWindow bins nearest it (farther bins would
// get less than e⁻¹⁸ of it), and d log(unnormalised w[k]) / dv.
struct ParzenWindow {
  static constexpr int kWindow = 7;
  int first = 0;
  double weight[kWindow];
  double slope[kWindow];

  ParzenWindow(double v, int bins) {
    const double sigma = 0.5 / (bins - 1);
    const int nearest = static_cast<int>(std::lround(v * (bins - 1)));
    first = std::clamp(nearest - kWindow / 2, 0, bins - kWindow);
    double sum = 0;
    for (int k = 0; k < kWindow; ++k) {
      const double d = v - double(first + k) / (bins - 1);
      weight[k] = std::exp(-d * d / (2 * sigma * sigma));
      slope[k] = -d / (sigma * sigma);
      sum += weight[k];
    }
    for (double& w : weight) w /= sum;
  }

  // d(Σₖ weight[k]·g[first + k]) / dv.
  double Derivative(const double* g) const {
    double mean_slope = 0, sum = 0;
    for (int k = 0; k < kWindow; ++k) mean_slope += weight[k] * slope[k];
    for (int k = 0; k < kWindow; ++k) {
      sum += g[first + k] * weight[k] * (slope[k] - mean_slope);
    }
    return sum;
  }
};

// Σ p(a,b)·log((p(a,b) + ε)/(p(a)·q(b) + ε)) over the joint histogram of the
// image (a) and the target (b), and its gradient with respect to the image.
// Two passes over the pixels, windows recomputed: O(bins²) memory.
double MutualInformation(const Planes& x, const Planes& y, int bins, double eps,
                         std::vector<double>* gradient) {
  const Normalisation na(x.values), nb(y.values);
  const size_t n = x.values.size();
  const int w = ParzenWindow::kWindow;
  std::vector<double> joint(size_t(bins) * bins, 0.0), pa(bins, 0.0),
      qb(bins, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const ParzenWindow a(na(x.values[i]), bins), b(nb(y.values[i]), bins);
    for (int k = 0; k < w; ++k) {
      pa[a.first + k] += a.weight[k] / n;
      qb[b.first + k] += b.weight[k] / n;
      for (int l = 0; l < w; ++l) {
        joint[size_t(a.first + k) * bins + b.first + l] +=
            a.weight[k] * b.weight[l] / n;
      }
    }
  }
  double mi = 0;
  // dMI/dp(a,b) and dMI/dp(a).
  std::vector<double> d_joint(joint.size()), d_pa(bins, 0.0);
  for (int i = 0; i < bins; ++i) {
    for (int j = 0; j < bins; ++j) {
      const double p = joint[size_t(i) * bins + j];
      const double independent = pa[i] * qb[j];
      mi += p * (std::log(p + eps) - std::log(independent + eps));
      d_joint[size_t(i) * bins + j] =
          std::log(p + eps) - std::log(independent + eps) + p / (p + eps);
      d_pa[i] -= p * qb[j] / (independent + eps);
    }
  }
  gradient->assign(n, 0.0);
  if (na.flat()) return mi;
  // dMI/d(weight of pixel i in image bin c) = (Σ_b dMI/dp(c,b)·t(i,b) +
  // dMI/dp(c)) / n, then through the window and the normalisation.
  std::vector<double> d_normalised(n), g(bins, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const ParzenWindow a(na(x.values[i]), bins), b(nb(y.values[i]), bins);
    for (int k = 0; k < w; ++k) {
      const int c = a.first + k;
      double sum = d_pa[c];
      for (int l = 0; l < w; ++l) {
        sum += d_joint[size_t(c) * bins + b.first + l] * b.weight[l];
      }
      g[c] = sum / n;
    }
    d_normalised[i] = a.Derivative(g.data());
  }
  na.Backward(x.values, d_normalised, gradient);
  return mi;
}

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
    if (!(std::fabs(spec.weights[i]) <= kMaxLossWeight)) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss.patch_weights[", i, "] is ", spec.weights[i],
                       ", must be within ±", kMaxLossWeight));
    }
  }
  if (!(spec.eps >= kMinLossEps) || !std::isfinite(spec.eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss.eps is ", spec.eps, ", must be finite and at least ",
                     kMinLossEps));
  }
  if (spec.bins < kMinLossBins || spec.bins > kMaxLossBins) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss.bins is ", spec.bins, ", must be in [", kMinLossBins,
                     ", ", kMaxLossBins, "]"));
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
  if (spec.kind == LossSpec::Kind::kMutualInformation) {
    return MutualInformation(x, y, spec.bins, spec.eps, gradient);
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
    Planes g(fx.count, height, width);
    loss += w * (p == 0 ? Ncc(fx, fy, spec.eps, &g)
                        : WindowNcc(fx, fy, p, spec.eps, &g));
    for (size_t i = 0; i < grad_f.values.size(); ++i)
      grad_f.values[i] += w * g.values[i];
  }
  const Planes grad = sobel ? filter.Backward(grad_f) : grad_f;
  gradient->assign(grad.values.begin(), grad.values.end());
  return loss;
}

}  // namespace drr::server
