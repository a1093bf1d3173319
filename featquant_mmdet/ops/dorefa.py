"""DoReFa-Net quantizers (Zhou et al. 2016, arXiv:1606.06160): weights, activations and gradients at k bits.

All three build on the k-bit uniform quantizer of a value ``r`` in ``[0, 1]`` with a straight-through gradient::

    quantize_k(r) = round((2^k - 1) * r) / (2^k - 1)          d quantize_k / d r := 1

* activations (``A`` bits):  ``q_A(x) = quantize_A(clip(x, 0, 1))``; the clip is DoReFa's bounded activation, its
  gradient is 1 inside ``[0, 1]`` and 0 outside.
* weights (``W`` bits), per layer::

      W > 1:  q_W(w) = 2 * quantize_W(tanh(w) / (2 * max|tanh(w)|) + 1/2) - 1        (values in [-1, 1])
      W = 1:  q_W(w) = sign(w) * mean(|w|)                                             (two values per layer)

  both straight-through, i.e. the gradient of the W = 1 case is the identity (``mean(|w|)`` is treated as a
  constant, as in the authors' code).
* gradients (``G`` bits), applied in the backward pass only, per sample (``max_0`` = max over all but the batch
  axis)::

      f_G(dr) = 2 * max_0(|dr|) * (quantize_G(dr / (2 * max_0(|dr|)) + 1/2 + N(k)) - 1/2),
      N(k) ~ Uniform(-0.5, 0.5) / (2^G - 1)

  (the sum is clipped to ``[0, 1]`` before quantizing, as in the authors' code).

``32`` bits means full precision: the quantizer is the identity (for activations too: no clip).
"""
import torch
from torch import Tensor

FULL_PRECISION = 32
SUPPORTED_BITS = (*range(1, 17), FULL_PRECISION)


def check_bits(bits, name: str = 'bits') -> int:
    """Return ``bits`` if it is a supported bit width, else raise a ``ValueError`` naming the accepted ones."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise ValueError(f'{name} must be an integer in 1..16 (k-bit quantization) or {FULL_PRECISION} '
                         f'(full precision), got {bits!r}')
    return bits


def _straight_through(value: Tensor, source: Tensor) -> Tensor:
    """The forward value of ``value`` with the gradient of ``source`` (identity straight-through estimator).

    ``source - source.detach()`` is exactly zero, so the forward value is bit-identical to ``value``
    (``source + (value - source).detach()`` would be off by rounding, e.g. three values for a binary weight).
    """
    return value.detach() + (source - source.detach())


def quantize_k(r: Tensor, bits: int) -> Tensor:
    """``round((2^k - 1) * r) / (2^k - 1)`` with a straight-through (identity) gradient; ``r`` is in ``[0, 1]``."""
    check_bits(bits)
    if bits == FULL_PRECISION:
        return r
    levels = float(2 ** bits - 1)
    quantized = torch.round(r * levels) / levels
    return _straight_through(quantized, r)


def quantize_activation(x: Tensor, bits: int) -> Tensor:
    """DoReFa's activation quantizer ``quantize_k(clip(x, 0, 1))``; identity for 32 bits."""
    check_bits(bits, 'a_bits')
    if bits == FULL_PRECISION:
        return x
    return quantize_k(torch.clamp(x, 0.0, 1.0), bits)


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """DoReFa's weight quantizer over the whole tensor (one layer); identity for 32 bits.

    ``bits == 1``: ``sign(w) * mean(|w|)`` (zeros map to ``+mean(|w|)`` so there are exactly two values);
    ``bits > 1``: ``2 * quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1``.
    """
    check_bits(bits, 'w_bits')
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        scale = w.abs().mean().detach()
        return _straight_through(torch.where(w >= 0, scale, -scale), w)
    t = torch.tanh(w)
    # max|tanh(w)| is 0 only for an all-zero weight; the guard keeps that case at 0 instead of NaN
    normalized = t / (2 * t.abs().max().clamp_min(torch.finfo(t.dtype).tiny)) + 0.5
    return 2 * quantize_k(normalized, bits) - 1


def quantize_gradient_values(grad: Tensor, bits: int, generator: torch.Generator = None) -> Tensor:
    """``f_G(dr)`` above: per-sample scaling, uniform noise of one quantization step, G-bit quantization.

    The value transform used in the backward pass of :func:`quantize_gradient`, exposed for testing and reuse.
    """
    check_bits(bits, 'g_bits')
    if bits == FULL_PRECISION:
        return grad
    reduce_dims = tuple(range(1, grad.dim()))
    max_abs = grad.abs().amax(dim=reduce_dims, keepdim=True) if reduce_dims else grad.abs()
    # samples whose gradient is all zero keep it zero (0 / tiny = 0) instead of dividing by zero
    max_abs = max_abs.clamp_min(torch.finfo(grad.dtype).tiny)
    levels = float(2 ** bits - 1)
    noise = (torch.rand(grad.shape, generator=generator, dtype=grad.dtype, device=grad.device) - 0.5) / levels
    shifted = torch.clamp(grad / (2 * max_abs) + 0.5 + noise, 0.0, 1.0)
    quantized = torch.round(shifted * levels) / levels
    return 2 * max_abs * (quantized - 0.5)


class _QuantizeGradient(torch.autograd.Function):
    """Identity forward; :func:`quantize_gradient_values` on the incoming gradient in backward."""

    @staticmethod
    def forward(ctx, x, bits):
        ctx.bits = bits
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return quantize_gradient_values(grad_output, ctx.bits), None


def quantize_gradient(x: Tensor, bits: int) -> Tensor:
    """Identity in the forward pass; the gradient flowing back through ``x`` is quantized to ``bits`` (G < 32).

    Placed on a layer's output, as in DoReFa-Net: the gradient w.r.t. the output is quantized before the layer
    computes its weight and input gradients from it.
    """
    check_bits(bits, 'g_bits')
    if bits == FULL_PRECISION:
        return x
    return _QuantizeGradient.apply(x, bits)
