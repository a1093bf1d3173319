"""Fused maps: each map's forward and its eq. 6 backward compiled by ``torch.compile`` into one pass over the data.

The formulas are those of :mod:`featquant_mmdet.ops.kernels`; Inductor turns each into one kernel (Triton on CUDA,
C++/OpenMP on CPU): the power's forward reads x and writes y, its backward reads x, y and dL/dy and writes dL/dx
and the per-exponent sums of dL/dalpha, instead of the 6 + 11 element-wise passes of the eager path. The autograd
functions here save exactly what the eager ones save (x, alpha, y; floor+power recomputes the floored input in
backward instead of keeping it).

Which path runs (``fused`` argument of the ops and the layers, else the environment variable
``FEATQUANT_FUSED_MAPS``):

==========================  ============================================================================
``True`` / ``'1'``, ``'on'``  the compiled maps
``False`` / ``'0'``, ``'off'``  the eager reference (:mod:`featquant_mmdet.ops.quantize`)
``None`` / ``'auto'``         per device: see :data:`AUTO_FUSED` (fused on CUDA and on the CPU)
==========================  ============================================================================

On the CPU the fused power and floor + power are a hand-written C++ kernel instead (:mod:`.native`, built once
per machine; :data:`CPU_BACKEND`); the floor alone and layouts the kernel does not cover run the eager path there.
A device where compiling fails (no C++ compiler, no Triton) warns once and runs the eager path from then on.
Inside ``torch.compile`` of a whole model, ``torch.export`` and ONNX export the ops never call these compiled
functions: they hand the plain formulas to the outer compiler or exporter instead.
"""
import functools
import os
import warnings
from typing import Optional, Union

import torch
from torch import Tensor

from . import kernels

ENV_VAR = 'FEATQUANT_FUSED_MAPS'
_ON, _OFF, _AUTO = ('1', 'on', 'true', 'fused'), ('0', 'off', 'false', 'eager'), ('', 'auto')

#: Device types where ``fused=None`` (auto) picks the fused maps. CUDA: Triton kernels. CPU: the C++ kernel when
#: :data:`CPU_BACKEND` is ``'native'`` (measured, docs/speed.md: a PowConv step at ResNet-50's shapes 1.03-1.06x of
#: a plain conv against eager's 1.17-1.29x in the same runs; a ZF detector unchanged); Inductor's CPU kernels are
#: never picked by default (no faster than eager there, and 13-48 s of compilation in every new process).
AUTO_FUSED = frozenset({'cuda', 'cpu'})

#: The CPU's fused maps: ``'native'`` (the C++ kernel of :mod:`.native`) or ``'inductor'`` (``torch.compile`` as
#: on CUDA: how the tests exercise the compiled path's generic parts without a GPU).
CPU_BACKEND = 'native'

_RECOMPILE_LIMIT = 64
# torch < 2.6 calls it cache_size_limit (GPU machines bring their own torch)
_RECOMPILE_LIMIT_NAME = 'recompile_limit' if hasattr(torch._dynamo.config, 'recompile_limit') else 'cache_size_limit'
_failed_devices = set()  # device types where compiling failed: eager from then on
_working_devices = set()  # device types where a compiled map has run


def resolve_fused(fused: Optional[Union[bool, str]], device: torch.device) -> bool:
    """Whether the compiled maps run on ``device`` for the setting ``fused`` (see the module docstring)."""
    if fused is None or isinstance(fused, str):
        setting = os.environ.get(ENV_VAR, '') if fused is None else fused
        key = setting.strip().lower()
        if key in _ON:
            fused = True
        elif key in _OFF:
            fused = False
        elif key in _AUTO:
            fused = device.type in AUTO_FUSED and (device.type != 'cpu' or native_on(device))
        else:
            source = f'environment variable {ENV_VAR}' if fused is None else 'fused'
            raise ValueError(f'{source}={setting!r}: accepted are auto (default), 1/on/true/fused, 0/off/false/eager')
    elif not isinstance(fused, bool):
        raise TypeError(f'fused must be None (auto), True or False, got {fused!r}')
    return fused and device.type not in _failed_devices


def check_fused_setting(fused) -> Optional[bool]:
    """Validate a layer's ``fused`` argument early (None, True or False)."""
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f'fused must be None (auto: {ENV_VAR} or per device), True or False, got {fused!r}')
    return fused


def in_traced_context() -> bool:
    """True while ``torch.compile``, ``torch.export``, ONNX export or TorchScript tracing records the ops."""
    return bool(torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
                or torch.jit.is_scripting())


@functools.lru_cache(maxsize=None)
def _compiled(name: str):
    # dynamic=True: one kernel for all spatial sizes and batch sizes (detection inputs vary), no recompiles
    return torch.compile(getattr(kernels, name), dynamic=True, fullgraph=True)


def _run(name: str, device: torch.device, *args):
    """The compiled ``kernels.<name>``; the first failure on a device disables fusing there (with a warning)."""
    try:
        # One compiled graph per input rank, exponent layout (per channel, per sample, per portion) and dtype:
        # more than dynamo's default limit of 8 per function in a process that uses them all (the tests do).
        # Raised for these calls only.
        with torch._dynamo.config.patch(**{_RECOMPILE_LIMIT_NAME: _RECOMPILE_LIMIT}):
            return _compiled(name)(*args)
    except Exception as err:  # noqa: BLE001 - compiler errors come in many types; re-raised unless at first use
        if device.type in _working_devices:
            raise
        _failed_devices.add(device.type)
        warnings.warn(f'featquant_mmdet: compiling the fused maps failed on {device.type} '
                      f'({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}); using the eager '
                      f'path there from now on (set {ENV_VAR}=0 to choose it explicitly)', RuntimeWarning)
        return None


def _call(name: str, device: torch.device, eager_fn, *args):
    out = _run(name, device, *args)
    if out is None:
        return eager_fn(*args)
    _working_devices.add(device.type)
    return out


class FusedSignedPower(torch.autograd.Function):
    """Compiled psi(x, alpha) with the eq. 6 backward (also compiled). Saves x, alpha and y, like the eager one."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor) -> Tensor:
        y = _call('power_forward', x.device, kernels.power_forward, x, alpha)
        ctx.save_for_backward(x, alpha, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        x, alpha, y = ctx.saved_tensors
        need_x, need_alpha = ctx.needs_input_grad[:2]
        grad_x, grad_alpha = _call('power_backward', x.device, kernels.power_backward, x, alpha, y, grad_y,
                                   need_x, need_alpha)
        return (None if grad_x is None else grad_x.to(x.dtype),
                None if grad_alpha is None else grad_alpha.to(alpha.dtype))


class FusedScaledFloor(torch.autograd.Function):
    """Compiled floor(beta x) / beta; straight-through backward. Saves nothing."""

    @staticmethod
    def forward(ctx, x: Tensor, beta: Tensor) -> Tensor:
        ctx.x_shape = x.shape
        return _call('floor_forward', x.device, kernels.floor_forward, x, beta)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        return grad_y.sum_to_size(ctx.x_shape), None


class FusedFloorSignedPower(torch.autograd.Function):
    """Compiled psi(floor(beta x) / beta, alpha); backward recomputes the floor (saves x, beta, alpha, y)."""

    @staticmethod
    def forward(ctx, x: Tensor, beta: Tensor, alpha: Tensor) -> Tensor:
        y = _call('floor_power_forward', x.device, kernels.floor_power_forward, x, beta, alpha)
        ctx.save_for_backward(x, beta, alpha, y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        x, beta, alpha, y = ctx.saved_tensors
        need_x, need_alpha = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_x, grad_alpha = _call('floor_power_backward', x.device, kernels.floor_power_backward, x, beta, alpha,
                                   y, grad_y, need_x, need_alpha)
        return (None if grad_x is None else grad_x.to(x.dtype), None,
                None if grad_alpha is None else grad_alpha.to(alpha.dtype))


def compiled_forward(name: str, *args) -> Tensor:
    """A map's compiled forward without autograd (inference: nothing needs a gradient)."""
    return _call(name, args[0].device, getattr(kernels, name), *args)


def native_on(device: torch.device) -> bool:
    """Whether the fused maps on ``device`` are the C++ kernel (the CPU with :data:`CPU_BACKEND` ``'native'``)."""
    return device.type == 'cpu' and CPU_BACKEND == 'native'


def describe_default(device: torch.device) -> str:
    """The path ``fused=None`` takes on ``device``, in words (for benchmark headers)."""
    if not resolve_fused(None, device):
        return 'eager'
    return 'fused (the C++ kernel)' if native_on(device) else 'fused (compiled)'
