"""Fused maps: each map's forward and its eq. 6 backward compiled by ``torch.compile`` into one pass over the data.

The formulas are those of :mod:`featquant_mmdet.ops.kernels`; Inductor turns each into one kernel (Triton on CUDA,
C++/OpenMP on CPU): the power's forward reads x and writes y, its backward reads x, y and dL/dy and writes dL/dx
and the per-exponent sums of dL/dalpha, instead of the 6 + 11 element-wise passes of the eager path. The autograd
functions here save exactly what the eager ones save (x, alpha, y; floor+power recomputes the floored input in
backward instead of keeping it).

Which path runs where (these compiled maps, the CPU's C++ kernel or the eager reference) is decided in
:mod:`.path`. Every failure of a compiled map, forward or backward, at the first call or a later one (a new shape,
dtype, an AMP recompile), falls back: that call is computed by the same formulas op by op (so a failed backward still
gives this step's gradients), :mod:`.path` warns once naming the cause, and the device runs eager from then on.
Inside ``torch.compile`` of a whole model, ``torch.export`` and ONNX export the ops never call these compiled
functions: they hand the plain formulas to the outer compiler or exporter instead.
"""
import functools

import torch
from torch import Tensor

from . import kernels, path
# the benchmarks name these from here
from .path import ENV_VAR, describe_default, resolve_fused  # noqa: F401

_RECOMPILE_LIMIT = 64
# torch < 2.6 calls it cache_size_limit (GPU machines bring their own torch)
_RECOMPILE_LIMIT_NAME = 'recompile_limit' if hasattr(torch._dynamo.config, 'recompile_limit') else 'cache_size_limit'


@functools.lru_cache(maxsize=None)
def _compiled(name: str):
    # dynamic=True: one kernel for all spatial sizes and batch sizes (detection inputs vary), no recompiles
    return torch.compile(getattr(kernels, name), dynamic=True, fullgraph=True)


def _call(name: str, device: torch.device, *args):
    """The compiled ``kernels.<name>``; where it fails (compiling or running), the same function op by op.

    An error that the op-by-op function raises as well is the caller's (a bad argument), not the compiler's: it is
    raised, and the compiled maps stay on.
    """
    if path.compiled_usable(device):
        try:
            # One compiled graph per input rank, exponent layout (per channel, per sample, per portion) and dtype:
            # more than dynamo's default limit of 8 per function in a process that uses them all (the tests do).
            # Raised for these calls only.
            with torch._dynamo.config.patch(**{_RECOMPILE_LIMIT_NAME: _RECOMPILE_LIMIT}):
                out = _compiled(name)(*args)
        except Exception as err:  # noqa: BLE001 - compiler and runtime errors come in many types
            out = getattr(kernels, name)(*args)
            path.compiled_failed(device, name, err)
            return out
        path.compiled_ran(device)
        return out
    return getattr(kernels, name)(*args)


class FusedSignedPower(torch.autograd.Function):
    """Compiled psi(x, alpha) with the eq. 6 backward (also compiled). Saves x, alpha and y, like the eager one."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor) -> Tensor:
        y = _call('power_forward', x.device, x, alpha)
        ctx.save_for_backward(x, alpha, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        x, alpha, y = ctx.saved_tensors
        need_x, need_alpha = ctx.needs_input_grad[:2]
        grad_x, grad_alpha = _call('power_backward', x.device, x, alpha, y, grad_y, need_x, need_alpha)
        return (None if grad_x is None else grad_x.to(x.dtype),
                None if grad_alpha is None else grad_alpha.to(alpha.dtype))


class FusedScaledFloor(torch.autograd.Function):
    """Compiled floor(beta x) / beta; straight-through backward. Saves nothing."""

    @staticmethod
    def forward(ctx, x: Tensor, beta: Tensor) -> Tensor:
        ctx.x_shape = x.shape
        return _call('floor_forward', x.device, x, beta)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        return grad_y.sum_to_size(ctx.x_shape), None


class FusedFloorSignedPower(torch.autograd.Function):
    """Compiled psi(floor(beta x) / beta, alpha); backward recomputes the floor (saves x, beta, alpha, y)."""

    @staticmethod
    def forward(ctx, x: Tensor, beta: Tensor, alpha: Tensor) -> Tensor:
        y = _call('floor_power_forward', x.device, x, beta, alpha)
        ctx.save_for_backward(x, beta, alpha, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        x, beta, alpha, y = ctx.saved_tensors
        need_x, need_alpha = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_x, grad_alpha = _call('floor_power_backward', x.device, x, beta, alpha, y, grad_y, need_x,
                                   need_alpha)
        return (None if grad_x is None else grad_x.to(x.dtype), None,
                None if grad_alpha is None else grad_alpha.to(alpha.dtype))
