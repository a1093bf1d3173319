"""The maps and their eq. 6 backward as plain functional torch code: one formula per map, no in-place ops.

These functions are what ``torch.compile`` fuses into one forward and one backward kernel per map (see
:mod:`featquant_mmdet.ops.fused`), what ``torch.compile`` of a whole model and ``torch.export`` trace, and what
ONNX export writes out (plain ``Abs``, ``Max``, ``Log``, ``Mul``, ``Exp``, ``Floor``, ``Div`` nodes). The eager
reference in :mod:`featquant_mmdet.ops.quantize` computes the same values with in-place ops on fresh buffers.

All compute in float32 (float64 stays float64) whatever the input dtype; ``m = max(|x|, tiny)`` keeps x == 0 exact::

    power:        y = x * exp(alpha * ln m)                       (= sign(x) |x|^(alpha+1), 0 at x == 0)
    backward:     dL/dx = dL/dy * (alpha + 1) * y / (sign(x) m),  dL/dalpha = sum dL/dy * y * ln m
    floor:        t = floor(beta * x) / beta                      (straight-through backward)
    floor+power:  y = power(t), backward as power's at t, passed straight through to x

Gradients are summed to the shapes of ``x`` and ``alpha`` (broadcast exponents: per channel, per portion, per
sample).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def as_compute_dtype(t: Tensor) -> Tensor:
    """``t`` in float32, or float64 when it is float64 (the maps' compute precision)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def power_forward(x: Tensor, alpha: Tensor) -> Tensor:
    """y = x * exp(alpha * ln max(|x|, tiny)), in the compute dtype."""
    x = as_compute_dtype(x)
    tiny = torch.finfo(x.dtype).tiny
    return x * torch.exp(alpha.to(x.dtype) * torch.log(torch.clamp_min(torch.abs(x), tiny)))


def power_backward(x: Tensor, alpha: Tensor, y: Tensor, grad_y: Tensor, need_x: bool,
                   need_alpha: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Eq. 6 at the forward's ``x`` (compute dtype), ``alpha`` and ``y``; 0 for both where x == 0 (y == 0 there)."""
    x = as_compute_dtype(x)
    tiny = torch.finfo(x.dtype).tiny
    grad_y_times_y = grad_y.to(x.dtype) * y
    m = torch.clamp_min(torch.abs(x), tiny)
    grad_x = grad_alpha = None
    if need_x:
        grad_x = (grad_y_times_y / torch.copysign(m, x) * (alpha.to(x.dtype) + 1)).sum_to_size(x.shape)
    if need_alpha:
        grad_alpha = (grad_y_times_y * torch.log(m)).sum_to_size(alpha.shape)
    return grad_x, grad_alpha


def floor_forward(x: Tensor, beta: Tensor) -> Tensor:
    """t = floor(beta * x) / beta, in the compute dtype."""
    x = as_compute_dtype(x)
    beta = beta.to(x.dtype)
    return torch.floor(x * beta) / beta


def floor_power_forward(x: Tensor, beta: Tensor, alpha: Tensor) -> Tensor:
    """y = power(floor(x)), never storing the floored input."""
    return power_forward(floor_forward(x, beta), alpha)


def floor_power_backward(x: Tensor, beta: Tensor, alpha: Tensor, y: Tensor, grad_y: Tensor, need_x: bool,
                         need_alpha: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Power's eq. 6 at t = floor(x) (recomputed), the x-gradient passed straight through the floor."""
    grad_t, grad_alpha = power_backward(floor_forward(x, beta), alpha, y, grad_y, need_x, need_alpha)
    if grad_t is not None:
        grad_t = grad_t.sum_to_size(x.shape)
    return grad_t, grad_alpha
