// The signed power (eq. 5) and its eq. 6 backward as one vectorised pass each on the CPU, optionally after the
// scaled floor (eq. 3, straight-through). Built at first use by featquant_mmdet/ops/native.py (torch's C++
// extension loader); the Python side checks and lays out the arguments:
//
//   x      (N, C, S)     float32, contiguous     input features (S = H * W)
//   alpha  (Na, P, C)    float32, contiguous     exponents as stored: Na = 1 (shared) or N (per sample), P output
//                                                portions; used clamped into [lo, hi], and an exponent outside
//                                                gets gradient 0 (one on a bound gets eq. 6's)
//   beta   (C) or empty  float32                 floor scale per channel (floor + power), else the power alone
//   y      (N, P, C, S)                          t * 2^(alpha * log2 m),  t = x or floor(beta x) / beta,
//                                                m = max(|t|, FLT_MIN)
//   grad_x (N, C, S)     sum_p dL/dy_p * (alpha_p + 1) * y_p / (sign(t) m)      (0 where t == 0, since y == 0)
//   grad_alpha (Na, P, C)  ln 2 * sum dL/dy * y * log2 m
//
// The backward recomputes t and log2 m from x (a row at a time, in cache) rather than keeping an x-sized log2 m per
// layer: measured at ResNet-50 layer1's shape inside a PowConv step, keeping it gained nothing (the backward is then
// bound by reading five x-sized arrays). The same formulas as the eager reference (ops/quantize.py), which tests
// compare against. Compiled without -ffast-math (IEEE division, no flush-to-zero); log2f/exp2f are declared SIMD so
// that GCC calls glibc's vector versions (libmvec). Parallel over channels: every sum has one owner thread and a
// fixed order, so results do not depend on the number of threads.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cfloat>
#include <cmath>
#include <vector>

extern "C" {
#pragma omp declare simd notinbranch
float log2f(float) noexcept;
#pragma omp declare simd notinbranch
float exp2f(float) noexcept;
}

namespace {

constexpr double kLn2 = 0.69314718055994530942;
constexpr float kLog2Tiny = -126.f;  // log2(FLT_MIN), exact

inline float clamped(float a, float lo, float hi) { return a < lo ? lo : (a > hi ? hi : a); }

inline float floored(float x, float beta, bool floor) { return floor ? std::floor(x * beta) / beta : x; }

inline float magnitude(float t) {
  const float a = std::fabs(t);
  return a > FLT_MIN ? a : FLT_MIN;  // max(|t|, tiny) (a ternary vectorises, fmaxf does not without fast-math)
}

// t (floored x) and log2 m of one row. The tiny lanes (zeros after a ReLU: often half of them) get the exact
// log2(FLT_MIN) = -126 without log2f seeing them: libmvec's vector log2f takes a scalar fallback for a whole vector
// holding a zero or a subnormal (a ReLU output: 1.05 ms instead of 0.09 ms at ResNet-50 layer1's shape). Two loops,
// because in one GCC computes log2f of the original lanes anyway (their result is discarded, so it may).
void log_row(const float* __restrict x, float* __restrict t, float* __restrict l, float beta, bool floor, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float ti = floored(x[i], beta, floor);
    t[i] = ti;
    const float a = std::fabs(ti);
    l[i] = a > FLT_MIN ? a : 1.f;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float lg = log2f(l[i]);
    l[i] = std::fabs(t[i]) > FLT_MIN ? lg : kLog2Tiny;
  }
}

void power_row(const float* __restrict t, const float* __restrict l, float* __restrict y, float a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = t[i] * exp2f(a * l[i]);
}

// dL/dy_p * y_p: accumulated (alpha_p + 1)-weighted into g (first portion writes), returns sum dL/dy_p y_p log2 m
float backward_row(const float* __restrict gy, const float* __restrict y, const float* __restrict l,
                   float* __restrict g, float a1, bool first, bool need_alpha, int64_t n) {
  float s = 0.f;
  if (need_alpha) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) {
      const float p = gy[i] * y[i];
      s += p * l[i];
      g[i] = first ? p * a1 : g[i] + p * a1;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float p = gy[i] * y[i];
      g[i] = first ? p * a1 : g[i] + p * a1;
    }
  }
  return s;
}

void divide_row(const float* __restrict t, float* __restrict g, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / std::copysign(magnitude(t[i]), t[i]);
}

void check(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& beta) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 3 && x.is_contiguous(),
              "x must be a contiguous float32 CPU tensor (N, C, S)");
  TORCH_CHECK(alpha.scalar_type() == at::kFloat && alpha.dim() == 3 && alpha.is_contiguous() &&
                  alpha.size(2) == x.size(1) && (alpha.size(0) == 1 || alpha.size(0) == x.size(0)),
              "alpha must be a contiguous float32 tensor (1 or N, P, C)");
  TORCH_CHECK(!beta.defined() || (beta.scalar_type() == at::kFloat && beta.dim() == 1 && beta.is_contiguous() &&
                                  beta.size(0) == x.size(1)),
              "beta must be a contiguous float32 tensor (C) or None");
}

}  // namespace

// y (N, P, C, S)
torch::Tensor power_forward(const torch::Tensor& x, const torch::Tensor& alpha,
                            const c10::optional<torch::Tensor>& beta_opt, double lo, double hi) {
  const torch::Tensor beta = beta_opt.has_value() ? *beta_opt : torch::Tensor();
  check(x, alpha, beta);
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2), Na = alpha.size(0), P = alpha.size(1);
  const bool floor = beta.defined();
  auto y = torch::empty({N, P, C, S}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* ap = alpha.data_ptr<float>();
  const float* bp = floor ? beta.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(2 * S));
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      float* t = scratch.data();
      float* l = scratch.data() + S;
      log_row(xp + nc * S, t, l, floor ? bp[c] : 1.f, floor, S);
      for (int64_t p = 0; p < P; ++p) {
        const float a = clamped(ap[((Na == 1 ? 0 : n) * P + p) * C + c], lo, hi);
        power_row(t, l, yp + ((n * P + p) * C + c) * S, a, S);
      }
    }
  });
  return y;
}

// (grad_x (N, C, S) or undefined, grad_alpha (Na, P, C) or undefined); t and log2 m recomputed from x
std::vector<torch::Tensor> power_backward(const torch::Tensor& x, const torch::Tensor& alpha,
                                          const c10::optional<torch::Tensor>& beta_opt, const torch::Tensor& y,
                                          const torch::Tensor& grad_y, bool need_x, bool need_alpha, double lo,
                                          double hi) {
  const torch::Tensor beta = beta_opt.has_value() ? *beta_opt : torch::Tensor();
  check(x, alpha, beta);
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2), Na = alpha.size(0), P = alpha.size(1);
  TORCH_CHECK(y.is_contiguous() && grad_y.is_contiguous() && y.sizes() == grad_y.sizes() && y.dim() == 4 &&
                  y.size(0) == N && y.size(1) == P && y.size(2) == C && y.size(3) == S &&
                  y.scalar_type() == at::kFloat && grad_y.scalar_type() == at::kFloat,
              "y and grad_y must be contiguous float32 tensors (N, P, C, S)");
  const bool floor = beta.defined();
  torch::Tensor grad_x = need_x ? torch::empty_like(x) : torch::Tensor();
  torch::Tensor grad_alpha = need_alpha ? torch::empty({Na, P, C}, x.options()) : torch::Tensor();
  const float* xp = x.data_ptr<float>();
  const float* ap = alpha.data_ptr<float>();
  const float* bp = floor ? beta.data_ptr<float>() : nullptr;
  const float* yp = y.data_ptr<float>();
  const float* gp = grad_y.data_ptr<float>();
  float* gxp = need_x ? grad_x.data_ptr<float>() : nullptr;
  float* gap = need_alpha ? grad_alpha.data_ptr<float>() : nullptr;
  at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(3 * S));
    std::vector<double> sums(static_cast<size_t>(Na * P));
    for (int64_t c = begin; c < end; ++c) {
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t row = (n * C + c) * S;
        float* t = scratch.data();
        float* l = scratch.data() + S;
        log_row(xp + row, t, l, floor ? bp[c] : 1.f, floor, S);
        float* g = need_x ? gxp + row : scratch.data() + 2 * S;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t a_index = ((Na == 1 ? 0 : n) * P + p) * C + c;
          const int64_t y_row = ((n * P + p) * C + c) * S;
          sums[(Na == 1 ? 0 : n) * P + p] +=
              backward_row(gp + y_row, yp + y_row, l, g, clamped(ap[a_index], lo, hi) + 1.f, p == 0, need_alpha, S);
        }
        if (need_x) divide_row(t, g, S);
      }
      if (need_alpha) {
        for (int64_t i = 0; i < Na * P; ++i) {
          const float a = ap[i * C + c];
          gap[i * C + c] = a >= lo && a <= hi ? static_cast<float>(sums[i] * kLn2) : 0.f;
        }
      }
    }
  });
  return {grad_x, grad_alpha};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("power_forward", &power_forward, "signed power (after the scaled floor when beta is given), one pass");
  m.def("power_backward", &power_backward, "eq. 6 gradients of power_forward, one pass");
}
