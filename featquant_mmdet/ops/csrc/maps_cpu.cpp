// The signed power (eq. 5) and its eq. 6 backward as one vectorised pass each on the CPU, optionally after the
// scaled floor (eq. 3, straight-through), as a C++ autograd function (no Python between the conv and the map, in
// either direction). Built at first use by featquant_mmdet/ops/native.py (torch's C++ extension loader), which
// checks the layout and passes its description; the kernels work on
//
//   x      (N, C, S)     float32, contiguous     input features (S = H * W)
//   alpha  (Na, P, C)    float32, contiguous     exponents: Na = 1 (shared) or N (per sample), P output portions;
//                                                used clamped into [lo, hi], and an exponent outside gets gradient
//                                                0 (one on a bound gets eq. 6's)
//   beta   (C) or none   float32                 floor scale per channel (floor + power), else the power alone
//   y      (N, P, C, S)                          t * 2^(alpha * log2 m),  t = x or floor(beta x) / beta,
//                                                m = max(|t|, FLT_MIN)
//   grad_x (N, C, S)     sum_p dL/dy_p * (alpha_p + 1) * 2^(alpha_p log2 m) * w,   w = min(|t| / FLT_MIN, 1)
//                        (= eq. 6's dL/dy (alpha + 1) y / x; 0 where t == 0)
//   grad_alpha (Na, P, C)  ln 2 * sum dL/dy * t * 2^(alpha log2 m) * log2 m   (= ln 2 * sum dL/dy * y * log2 m)
//
// The backward recomputes t, log2 m and 2^(alpha log2 m) from x instead of reading a saved y: at ResNet-50 layer1's
// shape, Lambda = 4, that halves its time (it reads x and dL/dy only). log2 and exp2 are inlined polynomials
// (Cephes' logf and exp2f, about 1e-7 relative), which GCC vectorises with the rest of the loop: no calls into
// libm's or libmvec's vector functions, no slow path for zeros, and exact at alpha = 0 (y == t) and at powers of
// two. Compiled without -ffast-math (IEEE division, no flush-to-zero). Parallel over channels: every sum has one
// owner thread and a fixed order, so results do not depend on the number of threads.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

using torch::Tensor;

namespace {

constexpr double kLn2 = 0.69314718055994530942;

inline float clamped(float a, float lo, float hi) { return a < lo ? lo : (a > hi ? hi : a); }

template <bool Floor>
inline float floored(float x, float beta) { return Floor ? std::floor(x * beta) / beta : x; }

inline int32_t bits_of(float f) { return __builtin_bit_cast(int32_t, f); }
inline float float_of(int32_t i) { return __builtin_bit_cast(float, i); }

// log2 max(|t|, FLT_MIN): m = 2^e r with r in [sqrt(1/2), sqrt(2)), log(r) by Cephes' logf polynomial; inf and NaN
// pass through as log2f's do. Zeros give exactly -126.
inline float log2_magnitude(float t) {
  const float a = std::fabs(t);
  const float m = a > FLT_MIN ? a : FLT_MIN;  // a ternary vectorises, fmaxf does not without -ffast-math
  const int32_t b = bits_of(m);
  const int32_t e = (b - 0x3f3504f3) >> 23;  // 0x3f3504f3 = sqrt(1/2)
  const float x = float_of(b - (e << 23)) - 1.f;
  const float z = x * x;
  float p = 7.0376836292E-2f;
  p = p * x - 1.1514610310E-1f;
  p = p * x + 1.1676998740E-1f;
  p = p * x - 1.2420140846E-1f;
  p = p * x + 1.4249322787E-1f;
  p = p * x - 1.6668057665E-1f;
  p = p * x + 2.0000714765E-1f;
  p = p * x - 2.4999993993E-1f;
  p = p * x + 3.3333331174E-1f;
  const float log_r = x + (p * x * z - 0.5f * z);
  const float l = static_cast<float>(e) + log_r * 1.44269504088896341f;
  return m <= FLT_MAX ? l : m;
}

// 2^v: v = n + f, |f| <= 1/2, 2^f by Cephes' exp2f polynomial, 2^n applied in two halves so that results below
// FLT_MIN come out subnormal and those above FLT_MAX infinite, as exp2f's. NaN gives 0 (only reached from an
// infinite x at alpha = 0, where t * 0 is NaN as on the eager path).
inline float exp2_of(float v) {
  v = v > -151.f ? v : -151.f;
  v = v < 128.f ? v : 128.f;
  const float n = (v + 12582912.f) - 12582912.f;  // round to nearest: 12582912 = 1.5 * 2^23
  const float f = v - n;
  float p = 1.535336188319500E-4f;
  p = p * f + 1.339887440266574E-3f;
  p = p * f + 9.618437357674640E-3f;
  p = p * f + 5.550332471162809E-2f;
  p = p * f + 2.402264791363012E-1f;
  p = p * f + 6.931472028550421E-1f;
  p = p * f + 1.f;
  const int32_t k = static_cast<int32_t>(n);
  const int32_t k1 = k >> 1, k2 = k - k1;
  return p * float_of((k1 + 127) << 23) * float_of((k2 + 127) << 23);
}

// eq. 6's y / x = 2^(alpha log2 m) * this: |t| / FLT_MIN below FLT_MIN (0 at t == 0), else 1
inline float small_weight(float t) {
  const float a = std::fabs(t);
  return a > FLT_MIN ? 1.f : a * 8.50705917302346159e37f;  // 2^126, exact
}

// ------------------------------------------------------------------------------------------------- row kernels
template <bool Floor>
void log_row(const float* __restrict x, float* __restrict t, float* __restrict l, float beta, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float ti = floored<Floor>(x[i], beta);
    t[i] = ti;
    l[i] = log2_magnitude(ti);
  }
}

template <bool Floor>
void power_row(const float* __restrict x, float* __restrict y, float a, float beta, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float t = floored<Floor>(x[i], beta);
    y[i] = t * exp2_of(a * log2_magnitude(t));
  }
}

void power_row_of_logs(const float* __restrict t, const float* __restrict l, float* __restrict y, float a,
                       int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = t[i] * exp2_of(a * l[i]);
}

// One portion: g (+)= dL/dy * (a + 1) * 2^(a l) (unweighted); returns sum dL/dy * t * 2^(a l) * l
float backward_row_of_logs(const float* __restrict gy, const float* __restrict t, const float* __restrict l,
                           float* __restrict g, float a, bool first, int64_t n) {
  const float a1 = a + 1.f;
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float q = gy[i] * exp2_of(a * l[i]);
    s += q * t[i] * l[i];
    g[i] = first ? q * a1 : g[i] + q * a1;
  }
  return s;
}

// Lambda = 1 in one pass: reads x and dL/dy, writes dL/dx (g may be null: no dL/dx wanted)
template <bool Floor, bool NeedX>
float backward_row(const float* __restrict x, const float* __restrict gy, float* __restrict g, float a, float beta,
                   int64_t n) {
  const float a1 = a + 1.f;
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float t = floored<Floor>(x[i], beta);
    const float l = log2_magnitude(t);
    const float q = gy[i] * exp2_of(a * l);
    s += q * t * l;
    if (NeedX) g[i] = q * a1 * small_weight(t);
  }
  return s;
}

void weight_row(const float* __restrict t, float* __restrict g, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) g[i] *= small_weight(t[i]);
}

// ------------------------------------------------------------------------------------------------------ kernels
Tensor power_forward(const Tensor& x, const Tensor& alpha, const Tensor& beta, double lo, double hi) {
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2), Na = alpha.size(0), P = alpha.size(1);
  const bool floor = beta.defined();
  auto y = torch::empty({N, P, C, S}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* ap = alpha.data_ptr<float>();
  const float* bp = floor ? beta.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(P > 1 ? static_cast<size_t>(2 * S) : 0);
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const float b = floor ? bp[c] : 1.f;
      const float* xr = xp + nc * S;
      const float* ar = ap + (Na == 1 ? 0 : n) * P * C + c;  // portion p at ar[p * C]
      if (P == 1) {
        const float a = clamped(ar[0], lo, hi);
        floor ? power_row<true>(xr, yp + nc * S, a, b, S) : power_row<false>(xr, yp + nc * S, a, b, S);
        continue;
      }
      float* t = scratch.data();
      float* l = scratch.data() + S;
      floor ? log_row<true>(xr, t, l, b, S) : log_row<false>(xr, t, l, b, S);
      for (int64_t p = 0; p < P; ++p)
        power_row_of_logs(t, l, yp + ((n * P + p) * C + c) * S, clamped(ar[p * C], lo, hi), S);
    }
  });
  return y;
}

// (grad_x (N, C, S) or undefined, grad_alpha (Na, P, C) or undefined)
std::pair<Tensor, Tensor> power_backward(const Tensor& x, const Tensor& alpha, const Tensor& beta,
                                         const Tensor& grad_y, bool need_x, bool need_alpha, double lo, double hi) {
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2), Na = alpha.size(0), P = alpha.size(1);
  const bool floor = beta.defined();
  Tensor grad_x = need_x ? torch::empty_like(x) : Tensor();
  Tensor grad_alpha = need_alpha ? torch::empty({Na, P, C}, x.options()) : Tensor();
  const float* xp = x.data_ptr<float>();
  const float* ap = alpha.data_ptr<float>();
  const float* bp = floor ? beta.data_ptr<float>() : nullptr;
  const float* gp = grad_y.data_ptr<float>();
  float* gxp = need_x ? grad_x.data_ptr<float>() : nullptr;
  float* gap = need_alpha ? grad_alpha.data_ptr<float>() : nullptr;
  at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(P > 1 ? static_cast<size_t>((need_x ? 2 : 3) * S) : 0);
    std::vector<double> sums(static_cast<size_t>(Na * P));
    for (int64_t c = begin; c < end; ++c) {
      std::fill(sums.begin(), sums.end(), 0.0);
      const float b = floor ? bp[c] : 1.f;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t row = (n * C + c) * S;
        const int64_t a_row = (Na == 1 ? 0 : n) * P;  // portion p: exponent ap[(a_row + p) * C + c]
        if (P == 1) {
          const float a = clamped(ap[a_row * C + c], lo, hi);
          const float* gy = gp + row;
          float* g = need_x ? gxp + row : nullptr;
          sums[a_row] += floor ? (need_x ? backward_row<true, true>(xp + row, gy, g, a, b, S)
                                         : backward_row<true, false>(xp + row, gy, g, a, b, S))
                               : (need_x ? backward_row<false, true>(xp + row, gy, g, a, b, S)
                                         : backward_row<false, false>(xp + row, gy, g, a, b, S));
          continue;
        }
        float* t = scratch.data();
        float* l = scratch.data() + S;
        float* g = need_x ? gxp + row : scratch.data() + 2 * S;
        floor ? log_row<true>(xp + row, t, l, b, S) : log_row<false>(xp + row, t, l, b, S);
        for (int64_t p = 0; p < P; ++p) {
          const float a = clamped(ap[(a_row + p) * C + c], lo, hi);
          sums[a_row + p] += backward_row_of_logs(gp + ((n * P + p) * C + c) * S, t, l, g, a, p == 0, S);
        }
        if (need_x) weight_row(t, g, S);
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

}  // namespace

// ------------------------------------------------------------------------------------------ autograd function
namespace featquant {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Inputs: x (N, C, ...) any float dtype; alpha any shape that expands to `wide` and then holds (Na, P, C) in
// order; beta (C) float32 or none. The output is float32 of shape `y_sizes`.
class NativePower : public torch::autograd::Function<NativePower> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& alpha, const c10::optional<Tensor>& beta,
                        int64_t na, int64_t portions, std::vector<int64_t> wide, std::vector<int64_t> y_sizes,
                        double lo, double hi) {
    const int64_t N = x.size(0), C = x.size(x.dim() == 5 ? 2 : 1);
    const Tensor x3 = x.to(torch::kFloat).reshape({N, C, -1}).contiguous();
    const Tensor a3 = alpha.to(torch::kFloat).expand(wide).reshape({na, portions, C}).contiguous();
    const Tensor b1 = beta.has_value() ? beta->to(torch::kFloat).contiguous() : Tensor();
    Tensor y = power_forward(x3, a3, b1, lo, hi);
    ctx->save_for_backward({x3, a3});
    ctx->saved_data["beta"] = b1;
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    ctx->saved_data["x_dtype"] = x.scalar_type();
    ctx->saved_data["alpha_sizes"] = alpha.sizes().vec();
    ctx->saved_data["alpha_dtype"] = alpha.scalar_type();
    ctx->saved_data["wide"] = wide;
    ctx->saved_data["lo"] = lo;
    ctx->saved_data["hi"] = hi;
    return y.view(y_sizes);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "featquant_mmdet: the CPU maps kernel has no double backward (create_graph=True); run the layer "
                "or op with fused=False (or FEATQUANT_FUSED_MAPS=0) for that");
    const auto saved = ctx->get_saved_variables();
    const Tensor &x3 = saved[0], &a3 = saved[1];
    const bool need_x = ctx->needs_input_grad(0), need_alpha = ctx->needs_input_grad(1);
    const Tensor gy = grads[0].to(torch::kFloat).reshape({x3.size(0), a3.size(1), x3.size(1), x3.size(2)}).contiguous();
    auto [grad_x, grad_alpha] = power_backward(x3, a3, ctx->saved_data["beta"].toTensor(), gy, need_x, need_alpha,
                                               ctx->saved_data["lo"].toDouble(), ctx->saved_data["hi"].toDouble());
    if (need_x)
      grad_x = grad_x.view(ctx->saved_data["x_sizes"].toIntVector()).to(ctx->saved_data["x_dtype"].toScalarType());
    if (need_alpha) {
      const auto alpha_sizes = ctx->saved_data["alpha_sizes"].toIntVector();
      // alpha's elements are the kernel's own unless the layout broadcast them (a sum of size-1 dims costs 30 us)
      grad_alpha = grad_alpha.numel() == c10::multiply_integers(alpha_sizes)
                       ? grad_alpha.view(alpha_sizes)
                       : grad_alpha.view(ctx->saved_data["wide"].toIntVector()).sum_to_size(alpha_sizes);
      grad_alpha = grad_alpha.to(ctx->saved_data["alpha_dtype"].toScalarType());
    }
    return {grad_x, grad_alpha, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor power(const Tensor& x, const Tensor& alpha, const c10::optional<Tensor>& beta, int64_t na, int64_t portions,
             std::vector<int64_t> wide, std::vector<int64_t> y_sizes, double lo, double hi) {
  TORCH_CHECK(x.device().is_cpu() && (x.dim() == 4 || (x.dim() == 5 && x.size(1) == 1)) && x.numel() > 0,
              "x must be a non-empty CPU tensor (N, C, H, W) or (N, 1, C, H, W)");
  const int64_t C = x.size(x.dim() == 5 ? 2 : 1);
  TORCH_CHECK(wide.size() >= 3 && (na == 1 || na == x.size(0)), "alpha's layout must be (1 or N, P, C)");
  TORCH_CHECK(!beta.has_value() || (beta->dim() == 1 && beta->size(0) == C), "beta must be (C) or None");
  return featquant::NativePower::apply(x, alpha, beta, na, portions, std::move(wide), std::move(y_sizes), lo, hi);
}

}  // namespace featquant

namespace {

// The kernels on laid-out float32 tensors without autograd (tests and benchmarks)
void check_layout(const Tensor& x, const Tensor& alpha, const c10::optional<Tensor>& beta) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 3 && x.is_contiguous(),
              "x must be a contiguous float32 CPU tensor (N, C, S)");
  TORCH_CHECK(alpha.scalar_type() == at::kFloat && alpha.dim() == 3 && alpha.is_contiguous() &&
                  alpha.size(2) == x.size(1) && (alpha.size(0) == 1 || alpha.size(0) == x.size(0)),
              "alpha must be a contiguous float32 tensor (1 or N, P, C)");
  TORCH_CHECK(!beta.has_value() || (beta->scalar_type() == at::kFloat && beta->dim() == 1 &&
                                    beta->is_contiguous() && beta->size(0) == x.size(1)),
              "beta must be a contiguous float32 tensor (C) or None");
}

Tensor forward_kernel(const Tensor& x, const Tensor& alpha, const c10::optional<Tensor>& beta, double lo,
                      double hi) {
  check_layout(x, alpha, beta);
  return power_forward(x, alpha, beta.has_value() ? *beta : Tensor(), lo, hi);
}

std::vector<Tensor> backward_kernel(const Tensor& x, const Tensor& alpha, const c10::optional<Tensor>& beta,
                                    const Tensor& grad_y, bool need_x, bool need_alpha, double lo, double hi) {
  check_layout(x, alpha, beta);
  TORCH_CHECK(grad_y.scalar_type() == at::kFloat && grad_y.is_contiguous() && grad_y.dim() == 4 &&
                  grad_y.size(0) == x.size(0) && grad_y.size(1) == alpha.size(1) && grad_y.size(2) == x.size(1) &&
                  grad_y.size(3) == x.size(2),
              "grad_y must be a contiguous float32 tensor (N, P, C, S)");
  auto [grad_x, grad_alpha] =
      power_backward(x, alpha, beta.has_value() ? *beta : Tensor(), grad_y, need_x, need_alpha, lo, hi);
  return {grad_x, grad_alpha};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("power", &featquant::power, "signed power (after the scaled floor when beta is given) with its eq. 6 backward");
  m.def("forward_kernel", &forward_kernel, "the forward kernel on (N, C, S), (Na, P, C), (C) float32 tensors");
  m.def("backward_kernel", &backward_kernel, "the backward kernel on the forward kernel's layout");
}
