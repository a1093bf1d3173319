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
"""
from numbers import Real

import torch
from torch import Tensor

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
        x = _as_float32(x)
        beta = beta.to(dtype=x.dtype, device=x.device)
        ctx.x_shape = x.shape
        return torch.mul(x, beta).floor_().div_(beta)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        grad_x = grad_y
        if grad_x.shape != ctx.x_shape:  # x was broadcast against a larger beta
            grad_x = grad_x.sum_to_size(ctx.x_shape)
        return grad_x, None


def scaled_floor(x: Tensor, beta) -> Tensor:
    """tau(x, beta) = floor(beta * x) / beta (eq. 3) with the straight-through gradient dL/dx = dL/dy.

    ``beta`` is a positive number or a tensor broadcastable to ``x`` (e.g. shape ``(C, 1, 1)`` for one beta per
    channel of an NCHW tensor); it is a fixed hyper-parameter and receives no gradient.
    """
    if not isinstance(beta, Tensor):
        beta = check_beta(beta)
    return _ScaledFloorSTE.apply(x, beta)


class _SignedPower(torch.autograd.Function):
    """x |x|^alpha (= sign(x) |x|^(alpha+1)) with the gradients of eq. 6 (0 where x == 0). Saves x, alpha and y.

    Written for few element-wise passes and few fresh buffers (on CPU a fresh buffer's page faults cost as much as
    the math): forward 6 passes into 1 buffer, backward 11 passes into 2 buffers, all vectorised ops.
    """

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor) -> Tensor:
        x32 = _as_float32(x)
        alpha32 = alpha.to(dtype=x32.dtype)
        # x * max(|x|, tiny)^alpha: exactly 0 at x == 0 for every alpha in range (tiny^-1 is finite), no sign pass,
        # and no 0^0 == 1 at alpha = -1. (Subnormal |x| < tiny is treated as tiny.) The power as exp(alpha ln|x|):
        # about 15% faster than torch.pow on CPU, relative error ~ |alpha ln|x|| * 6e-8 <= 4e-6 for |x| <= 1e6.
        log_abs_x = x32.abs().clamp_min_(_tiny(x32)).log_()
        y = _broadcast_inplace(log_abs_x, alpha32, torch.mul).exp_().mul_(x32)
        ctx.save_for_backward(x32, alpha32, y)
        ctx.input_dtypes = (x.dtype, alpha.dtype)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        x, alpha, y = ctx.saved_tensors
        grad_x = grad_alpha = None
        grad_y_times_y = _as_float32(grad_y) * y  # dL/dy * y, the common factor of both gradients
        scratch = x.abs().clamp_min_(_tiny(x))  # one x-sized scratch buffer, reused below
        if ctx.needs_input_grad[1]:
            # sum_i dL/dy_i * y_i * ln|x_i|; y == 0 where x == 0 and ln(tiny) is finite: x == 0 contributes 0.
            log_abs_x = scratch.log_()
            grad_alpha = _broadcast_inplace(log_abs_x, grad_y_times_y, torch.mul)
            grad_alpha = grad_alpha.sum_to_size(alpha.shape).to(ctx.input_dtypes[1])
            if ctx.needs_input_grad[0]:
                scratch = torch.abs(x, out=scratch).clamp_min_(_tiny(x))
        if ctx.needs_input_grad[0]:
            # dL/dy * (alpha + 1) * y / x. Dividing by x with its zeros replaced by +-tiny gives exactly 0 there
            # (y == 0), as eq. 6 prescribes, without a boolean mask (masked_fill/where are slow, unvectorised on CPU).
            x_safe = scratch.copysign_(x)
            grad_x = grad_y_times_y.div_(x_safe).mul_(alpha + 1).sum_to_size(x.shape).to(ctx.input_dtypes[0])
        return grad_x, grad_alpha


def _tiny(t: Tensor) -> float:
    return torch.finfo(t.dtype).tiny


def _broadcast_inplace(t: Tensor, other: Tensor, op) -> Tensor:
    """``op(t, other)``, written into ``t`` (a fresh temporary) when the broadcast result has ``t``'s shape."""
    if torch.broadcast_shapes(t.shape, other.shape) == t.shape:
        return op(t, other, out=t)
    return op(t, other)


def signed_power(x: Tensor, alpha) -> Tensor:
    """psi(x, alpha) = sign(x) * |x| ** (alpha + 1) (eq. 5) with exactly the gradients of eq. 6.

    ``alpha`` is a number or a tensor broadcastable to ``x`` (e.g. ``(C, 1, 1)`` for one exponent per channel);
    tensor exponents are clamped into ``[ALPHA_MIN, ALPHA_MAX]`` (gradient 0 outside), numbers are checked.
    Gradients are summed over broadcast dimensions, so a per-channel alpha gets the sum over batch and space.
    """
    if not isinstance(alpha, Tensor):
        alpha = torch.tensor(check_alpha(alpha), dtype=torch.float32, device=x.device)
    else:
        alpha = alpha.clamp(ALPHA_MIN, ALPHA_MAX)
    return _SignedPower.apply(x, alpha)
