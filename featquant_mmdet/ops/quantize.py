"""The paper's element-wise quantizers (Section 2): scaled floor (eq. 3) and signed power (eq. 5, gradients eq. 6).

Pure tensor functions, no module state. Both compute in float32 whatever the input dtype (float16/bfloat16 inputs
under ``torch.autocast`` included) and return float32, so the next op (a convolution under autocast) chooses its
own precision: the power of a float16 value overflows float16 long before float32.

Scaled floor (eq. 3), straight-through gradient::

    tau(x, beta) = floor(beta * x) / beta,          dL/dx := dL/dy            (beta > 0)

Signed power (eq. 5), gradients exactly eq. 6, and 0 wherever x == 0::

    psi(x, alpha) = sign(x) * |x| ** (alpha + 1)
    dL/dalpha = sum_i dL/dy_i * y_i * ln|x_i|,      dL/dx_i = dL/dy_i * (alpha + 1) * y_i / x_i

Valid exponents: ``alpha`` in ``[ALPHA_MIN, ALPHA_MAX] = [-1, 5]``, i.e. a power ``alpha + 1`` in ``[0, 6]``.
Below -1 the power is negative and psi blows up at 0 (|1e-30| ** -0.5 = 1e15, then Inf); above 5, inputs of
magnitude 1e6 (reachable by unnormalised features) overflow float32 (1e6 ** 6 = 1e36 is the largest that fits
comfortably under float32's 3.4e38). Inside that range forward and backward are finite for every finite float32
input with |x| <= 1e6, including 0 and +-1e-30: psi is evaluated as x * max(|x|, tiny)^alpha, so x == 0 gives
y = 0 (not 0^0 = 1 at alpha = -1) and y / x stays <= tiny^-1 = 8.5e37 also for subnormal x (float32 tiny = 1.2e-38;
subnormal |x| below it are treated as tiny); the backward divides by and takes ln of max(|x|, tiny) (with x's sign),
so x == 0, where y == 0, gives exactly 0 for both gradients instead of 0 / 0 or 0 * ln 0 = NaN.
``signed_power`` clamps ``alpha`` into the range (the gradient to alpha is then 0 outside it, like ``torch.clamp``),
and :func:`check_alpha` gives the error for configured values outside it.

Three implementations of the same formulas, chosen per call and device by :mod:`featquant_mmdet.ops.path` (the
``fused`` argument, else ``FEATQUANT_FUSED_MAPS``; ``featquant_mmdet.ops.describe()`` says which runs where):

* eager (this module's autograd functions): the reference; in-place vectorised ops on few fresh buffers;
* fused: on the CPU a hand-written C++ kernel (:mod:`featquant_mmdet.ops.native`); elsewhere the forward and the
  backward each compiled into one kernel (``torch.compile``, :mod:`featquant_mmdet.ops.fused`), default on CUDA;
* plain (:mod:`featquant_mmdet.ops.kernels`, no autograd function): when nothing needs a gradient, and always
  inside ``torch.compile``/``torch.export``/ONNX export of a model, so that those see plain torch ops (ONNX gets
  ``Abs``/``Max``/``Log``/``Exp``/``Mul`` nodes, no ``PythonOp``). With gradients inside ``torch.compile`` the
  autograd function is kept (traced by the compiler) so that eq. 6 and the x == 0 rule still hold.
"""
import math
from numbers import Real
from typing import Optional

import torch
from torch import Tensor

from . import fused as _fused
from . import kernels, native
from . import path as _paths

ALPHA_MIN = -1.0
ALPHA_MAX = 5.0


def check_alpha(alpha: float, name: str = 'alpha') -> float:
    """Return ``alpha`` as a float when it lies in ``[ALPHA_MIN, ALPHA_MAX]``, else raise ``ValueError`` naming it."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise TypeError(f'{name} must be a real number in [{ALPHA_MIN}, {ALPHA_MAX}], got {alpha!r}')
    if not ALPHA_MIN <= float(alpha) <= ALPHA_MAX:
        raise ValueError(f'{name} must lie in [{ALPHA_MIN}, {ALPHA_MAX}] (power alpha + 1 in [0, 6]), got {alpha}')
    return float(alpha)


def check_beta(beta, name: str = 'beta') -> Tensor:
    """Return ``beta`` (a positive number or a sequence/tensor of positive numbers) as a float32 tensor."""
    try:
        beta_t = torch.as_tensor(beta, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f'{name} must be a positive number or a sequence of positive numbers, got {beta!r}') from err
    if beta_t.numel() == 0 or not bool(torch.isfinite(beta_t).all()) or not bool((beta_t > 0).all()):
        raise ValueError(f'{name} must be > 0 and finite (e.g. 100.0, the paper\'s SF-100), got {beta!r}')
    return beta_t


def _as_float32(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class _ScaledFloorSTE(torch.autograd.Function):
    """floor(beta * x) / beta forward; identity backward (straight-through estimator). Saves nothing."""

    @staticmethod
    def forward(ctx, x: Tensor, beta: Tensor) -> Tensor:
        ctx.x_shape = x.shape
        if torch.compiler.is_compiling():
            return kernels.floor_forward(x, beta)
        x = _as_float32(x)
        beta = beta.to(dtype=x.dtype, device=x.device)
        return torch.mul(x, beta).floor_().div_(beta)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        grad_x = grad_y
        if grad_x.shape != ctx.x_shape:  # x was broadcast against a larger beta
            grad_x = grad_x.sum_to_size(ctx.x_shape)
        return grad_x, None


def scaled_floor(x: Tensor, beta, fused: Optional[bool] = None) -> Tensor:
    """tau(x, beta) = floor(beta * x) / beta (eq. 3) with the straight-through gradient dL/dx = dL/dy.

    ``beta`` is a positive number or a tensor broadcastable to ``x`` (e.g. shape ``(C, 1, 1)`` for one beta per
    channel of an NCHW tensor); it is a fixed hyper-parameter and receives no gradient. ``fused``: see
    :mod:`featquant_mmdet.ops.path` (None: ``FEATQUANT_FUSED_MAPS`` or per device).
    """
    if not isinstance(beta, Tensor):
        beta = check_beta(beta)
    beta = beta.to(x.device)
    path = _path(x, (), fused)
    if path == 'plain':
        return kernels.floor_forward(x, beta)
    if path == _paths.COMPILED:  # the CPU kernel fuses the floor only with a power: eager there
        return _fused.FusedScaledFloor.apply(x, beta)
    return _ScaledFloorSTE.apply(x, beta)


class _SignedPower(torch.autograd.Function):
    """x |x|^alpha (= sign(x) |x|^(alpha+1)) with the gradients of eq. 6 (0 where x == 0).

    Saves x, alpha and y, and ``log2 max(|x|, tiny)`` (x-sized) when alpha needs a gradient, so that the backward
    needs no logarithm: on the CPU the eager log is the costliest op of the map (log/log2 5-9x a multiply at
    ResNet-50 layer1's shape, exp 4-7x, exp2 1-2x: docs/speed.md), hence also the power as ``exp2(alpha log2 m)``.
    Exponents that broadcast x along one dimension (the layers' portions, Lambda > 1: x (N, 1, C, H, W), alpha
    (.., Lambda, C, 1, 1)) are processed one portion at a time, so that every temporary is x-sized and stays in
    cache. Traced by ``torch.compile`` of a model, it uses the functional formulas of :mod:`.kernels` (same values).
    """

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor) -> Tensor:
        ctx.input_dtypes = (x.dtype, alpha.dtype)
        if torch.compiler.is_compiling():
            y = kernels.power_forward(x, alpha)
            ctx.save_for_backward(x, alpha, y, None)
            return y
        x32 = _as_float32(x)
        alpha32 = alpha.to(dtype=x32.dtype)
        keep_log = ctx.needs_input_grad[1]
        y, log2_m = _signed_power_forward_eager(x32, alpha32, keep_log)
        ctx.save_for_backward(x32, alpha32, y, log2_m if keep_log else None)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        x, alpha, y, log2_m = ctx.saved_tensors
        if torch.compiler.is_compiling():
            grad_x, grad_alpha = kernels.power_backward(x, alpha, y, grad_y, *ctx.needs_input_grad[:2])
        else:
            grad_x, grad_alpha = _signed_power_backward_eager(x, alpha, y, log2_m, _as_float32(grad_y),
                                                              *ctx.needs_input_grad[:2])
        return (None if grad_x is None else grad_x.to(ctx.input_dtypes[0]),
                None if grad_alpha is None else grad_alpha.to(ctx.input_dtypes[1]))


def _portion_dim(x: Tensor, alpha: Tensor) -> Optional[int]:
    """The one dimension along which ``alpha`` broadcasts ``x`` (x has size 1 there), if it broadcasts no other."""
    shape = torch.broadcast_shapes(x.shape, alpha.shape)
    if len(shape) != x.dim():
        return None
    grown = [d for d, (size, x_size) in enumerate(zip(shape, x.shape)) if size != x_size]
    return grown[0] if len(grown) == 1 else None


def _portion(t: Tensor, dim: int, index: int, ndim: int) -> Tensor:
    """``t``'s slice ``index`` along ``dim`` of an ``ndim``-dimensional broadcast shape (size-1 dims kept)."""
    dim -= ndim - t.dim()
    return t if dim < 0 or t.shape[dim] == 1 else t.narrow(dim, index, 1)


def _signed_power_forward_eager(x: Tensor, alpha: Tensor, keep_log: bool):
    """y = x * exp2(alpha * log2 m), m = max(|x|, tiny), and log2 m (overwritten unless ``keep_log``).

    Exactly 0 at x == 0 for every alpha in range (tiny^-1 is finite), no sign pass, and no 0^0 == 1 at alpha = -1
    (subnormal |x| < tiny is treated as tiny). Relative error ~ |alpha log2 m| * 6e-8 <= 6e-6 for |x| <= 1e6.
    """
    log2_m = x.abs().clamp_min_(_tiny(x)).log2_()
    dim = _portion_dim(x, alpha)
    if dim is None:
        product = torch.mul(log2_m, alpha) if keep_log else _broadcast_inplace(log2_m, alpha, torch.mul)
        return product.exp2_().mul_(x), log2_m
    y = x.new_empty(torch.broadcast_shapes(x.shape, alpha.shape))
    for index in range(y.shape[dim]):
        y_portion = y.narrow(dim, index, 1)
        torch.mul(log2_m, _portion(alpha, dim, index, y.dim()), out=y_portion).exp2_().mul_(x)
    return y, log2_m


def _signed_power_backward_eager(x: Tensor, alpha: Tensor, y: Tensor, log2_m: Optional[Tensor], grad_y: Tensor,
                                 need_x: bool, need_alpha: bool):
    """Eq. 6: dL/dalpha = ln 2 * sum dL/dy * y * log2 m, dL/dx = dL/dy * (alpha + 1) * y / x (0 where x == 0).

    x == 0 gives exactly 0 for both: y == 0 there, log2(tiny) is finite, and x's zeros are replaced by +-tiny for
    the division (no boolean mask: masked_fill/where are slow, unvectorised on CPU).
    """
    dim = _portion_dim(x, alpha)
    x_safe = x.abs().clamp_min_(_tiny(x)).copysign_(x) if need_x else None
    if dim is None:
        grad_y_times_y = grad_y * y  # the common factor of both gradients
        grad_alpha = torch.mul(grad_y_times_y, log2_m).sum_to_size(alpha.shape).mul_(_LN2) if need_alpha else None
        grad_x = grad_y_times_y.div_(x_safe).mul_(alpha + 1).sum_to_size(x.shape) if need_x else None
        return grad_x, grad_alpha
    # one portion at a time: dL/dx sums the portions' (alpha + 1) dL/dy y, then divides by x once
    ndim = y.dim()
    grad_y_times_y, scratch = torch.empty_like(x), torch.empty_like(x) if need_alpha else None
    grad_alpha = alpha.new_empty(alpha.shape) if need_alpha else None
    weighted_sum = None
    for index in range(y.shape[dim]):
        torch.mul(_portion(grad_y, dim, index, ndim), y.narrow(dim, index, 1), out=grad_y_times_y)
        alpha_portion = _portion(alpha, dim, index, ndim)
        if need_alpha:
            torch.mul(grad_y_times_y, log2_m, out=scratch)
            _portion(grad_alpha, dim, index, ndim).copy_(scratch.sum_to_size(alpha_portion.shape))
        if need_x:
            if weighted_sum is None:
                weighted_sum = torch.mul(grad_y_times_y, alpha_portion + 1)
            else:
                weighted_sum.addcmul_(grad_y_times_y, alpha_portion + 1)
    return (weighted_sum.div_(x_safe) if need_x else None), (grad_alpha.mul_(_LN2) if need_alpha else None)


_LN2 = math.log(2.0)


def _tiny(t: Tensor) -> float:
    return torch.finfo(t.dtype).tiny


def _broadcast_inplace(t: Tensor, other: Tensor, op) -> Tensor:
    """``op(t, other)``, written into ``t`` (a fresh temporary) when the broadcast result has ``t``'s shape."""
    if torch.broadcast_shapes(t.shape, other.shape) == t.shape:
        return op(t, other, out=t)
    return op(t, other)


def signed_power(x: Tensor, alpha, fused: Optional[bool] = None) -> Tensor:
    """psi(x, alpha) = sign(x) * |x| ** (alpha + 1) (eq. 5) with exactly the gradients of eq. 6.

    ``alpha`` is a number or a tensor broadcastable to ``x`` (e.g. ``(C, 1, 1)`` for one exponent per channel);
    tensor exponents are clamped into ``[ALPHA_MIN, ALPHA_MAX]`` (gradient 0 outside, eq. 6 on the bounds), numbers
    are checked.
    Gradients are summed over broadcast dimensions, so a per-channel alpha gets the sum over batch and space.
    ``fused``: see :mod:`featquant_mmdet.ops.path` (None: ``FEATQUANT_FUSED_MAPS`` or per device).
    """
    return _power(x, None, alpha, fused)


def floor_signed_power(x: Tensor, beta, alpha, fused: Optional[bool] = None) -> Tensor:
    """psi(tau(x, beta), alpha): the floor (straight-through), then the signed power (eq. 6 at the floored value).

    Equals ``signed_power(scaled_floor(x, beta), alpha)``; the fused path computes both in one kernel and keeps
    no floored copy of the input for backward (it recomputes it).
    """
    if not isinstance(beta, Tensor):
        beta = check_beta(beta)
    beta = beta.to(x.device)
    return _power(x, beta, alpha, fused)


def _power(x: Tensor, beta: Optional[Tensor], alpha, fused: Optional[bool]) -> Tensor:
    """psi(x, alpha), after the floor when ``beta`` is given, on this call's path."""
    alpha = _alpha_tensor(alpha, x)
    path = _path(x, (alpha,), fused)
    if path == _paths.KERNEL:
        y = native.signed_power(x, alpha, beta, (ALPHA_MIN, ALPHA_MAX))  # clamps in the kernel
        if y is not None:
            return y  # else a layout or dtype the kernel leaves to the eager path
    alpha = _clamped_alpha(alpha)
    if path == 'plain':
        return kernels.power_forward(x, alpha) if beta is None else kernels.floor_power_forward(x, beta, alpha)
    if path == _paths.COMPILED:
        return (_fused.FusedSignedPower.apply(x, alpha) if beta is None
                else _fused.FusedFloorSignedPower.apply(x, beta, alpha))
    return _SignedPower.apply(x if beta is None else _ScaledFloorSTE.apply(x, beta), alpha)


def portioned_power_kernel(x: Tensor, beta: Optional[Tensor], alpha: Tensor,
                           fused: Optional[bool] = None) -> Optional[Tensor]:
    """The layers' maps in one call to the CPU kernel where this call's path is the kernel: x (N, C, H, W), alpha
    (Lambda, C) or (N, Lambda, C), beta (C) or None -> (N, Lambda*C, H, W); else None (the caller lays the
    arguments out for :func:`signed_power` / :func:`floor_signed_power`)."""
    if x.device.type != 'cpu' or _path(x, (alpha, ), fused) != _paths.KERNEL:
        return None
    return native.portioned_power(x, alpha, beta, (ALPHA_MIN, ALPHA_MAX))


def _alpha_tensor(alpha, x: Tensor) -> Tensor:
    """A tensor exponent as it is; a number checked against the range, as a float32 tensor on x's device."""
    if isinstance(alpha, Tensor):
        return alpha
    return torch.tensor(check_alpha(alpha), dtype=torch.float32, device=x.device)


def _clamped_alpha(alpha: Tensor) -> Tensor:
    clamped = alpha.clamp(ALPHA_MIN, ALPHA_MAX)
    if not (alpha.requires_grad and torch.is_grad_enabled()):
        return clamped
    # torch.clamp passes no gradient at a bound itself (torch 2.x), which would freeze an exponent that
    # AlphaProjectionHook projected onto -1 or 5; inside [ALPHA_MIN, ALPHA_MAX], bounds included, eq. 6 passes.
    return torch.where((alpha >= ALPHA_MIN) & (alpha <= ALPHA_MAX), alpha, clamped)


def _path(x: Tensor, params, fused: Optional[bool]) -> str:
    """'plain' (no autograd function) or this device's path (:func:`featquant_mmdet.ops.path.choose`)."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
    traced = _paths.in_traced_context()
    if traced and not (needs_grad and torch.compiler.is_compiling()):
        return 'plain'  # export/tracing, or compile without gradients: plain ops for the outer tool
    if traced:
        return _paths.EAGER  # compile with gradients: the autograd function, traced with the plain formulas
    return _paths.choose(fused, x.device)
