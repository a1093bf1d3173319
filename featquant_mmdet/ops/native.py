"""The CPU's fused maps: a C++ kernel (``csrc/maps_cpu.cpp``) for the signed power and floor + power.

One vectorised pass for the forward and one for the eq. 6 backward (which recomputes log2 m from x), parallel over
channels. Built with torch's C++ extension loader at first use and cached on disk
(``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``: about 20 s once per machine and CPU type, then a
load); a machine without a C++ compiler, ninja or glibc's vector maths (libmvec) warns once and keeps the eager
path. Written by hand because Inductor's CPU kernels for these maps were no faster than the eager ops at ResNet-50's
shapes (docs/speed.md) and cost 13-48 s of compilation in every new process.

Layouts it takes (anything else, and float64, runs the eager path): x ``(N, C, H, W)`` with exponents broadcast to
``(N or 1, C, 1, 1)``, and the layers' portions, x ``(N, 1, C, H, W)`` with exponents ``(N or 1, Lambda, C, 1, 1)``;
floor scales per channel. Computes in float32 (float16/bfloat16 inputs are converted, as on the eager path).
"""
import glob
import logging
import os
import os.path as osp
import shutil
import sys
import threading
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

_SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'maps_cpu.cpp')
#: x86 code generation per torch's CPU capability (the build is cached per capability, so a cache shared between
#: machines never runs instructions a CPU lacks)
_ARCH_FLAGS = {
    'AVX512': ['-mavx2', '-mfma', '-mavx512f', '-mavx512dq', '-mavx512vl', '-mavx512bw'],
    'AVX2': ['-mavx2', '-mfma'],
}
_lock = threading.Lock()
_state = {}  # 'module' or 'error' once tried


def _capability() -> str:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # older torch
        return 'DEFAULT'


def _build():
    capability = _capability()
    flags = ['-O3', '-fno-math-errno', '-fno-trapping-math', '-fopenmp', *_ARCH_FLAGS.get(capability, [])]
    logger = logging.getLogger('torch.utils.cpp_extension')
    level = logger.level
    logger.setLevel(logging.ERROR)  # "No CUDA runtime is found" (at import): irrelevant for a CPU extension
    path = os.environ.get('PATH', '')
    venv_bin = osp.dirname(sys.executable)
    if shutil.which('ninja') is None and shutil.which('ninja', path=venv_bin):
        os.environ['PATH'] = venv_bin + os.pathsep + path  # ninja installed in the venv that is not activated
    try:
        from torch.utils import cpp_extension
        name = f'featquant_maps_cpu_{capability.lower()}'
        build_dir = cpp_extension._get_build_directory(name, verbose=False)
        if not glob.glob(osp.join(build_dir, '*.so')):
            print(f'featquant_mmdet: building the CPU maps kernel in {build_dir} (once per machine, about 20 s)',
                  file=sys.stderr, flush=True)
        return cpp_extension.load(name=name, sources=[_SOURCE], extra_cflags=flags,
                                  extra_ldflags=['-fopenmp', '-lmvec'], build_directory=build_dir, verbose=False)
    finally:
        logger.setLevel(level)
        os.environ['PATH'] = path


def extension():
    """The loaded C++ module, or None where it cannot be built (warned once)."""
    if 'module' in _state or 'error' in _state:
        return _state.get('module')
    with _lock:
        if 'module' not in _state and 'error' not in _state:
            try:
                _state['module'] = _build()
            except Exception as err:  # noqa: BLE001 - compiler, linker and loader errors come in many types
                _state['error'] = err
                first = str(err).strip().splitlines()[0] if str(err).strip() else ''
                warnings.warn(f'featquant_mmdet: building the CPU maps kernel failed ({type(err).__name__}: '
                              f'{first}); using the eager maps on the CPU', RuntimeWarning)
    return _state.get('module')


def available() -> bool:
    """Whether the kernel is built and loaded (builds it at the first call)."""
    return extension() is not None


# ------------------------------------------------------------------------------------------------------- layouts
def _layout(x: Tensor, alpha: Tensor, beta: Optional[Tensor]):
    """(alpha as (Na, P, C), beta as (C) or None, y's shape, alpha's broadcast shape), or None if unsupported."""
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16) or alpha.dtype != torch.float32 \
            or x.device.type != 'cpu' or x.numel() == 0:
        return None
    if x.dim() == 4:
        channels, portion_dims = x.shape[1], 0
    elif x.dim() == 5 and x.shape[1] == 1:
        channels, portion_dims = x.shape[2], 1
    else:
        return None
    ndim = x.dim()
    if alpha.dim() > ndim:
        return None
    a = alpha.reshape((1, ) * (ndim - alpha.dim()) + tuple(alpha.shape))
    if a.shape[0] not in (1, x.shape[0]) or a.shape[-3] not in (1, channels) or a.shape[-2:] != (1, 1):
        return None
    portions = a.shape[1] if portion_dims else 1
    wide = (a.shape[0], portions, channels) if portion_dims else (a.shape[0], channels)
    alpha3 = a.expand(*wide, 1, 1).reshape(a.shape[0], portions, channels).contiguous()
    beta1 = None
    if beta is not None:
        b = beta.to(torch.float32)
        if b.dim() > 3 and any(size != 1 for size in b.shape[:-3]):
            return None
        b = b.reshape(b.shape[-3:] if b.dim() > 3 else b.shape)
        if torch.broadcast_shapes(b.shape, (channels, 1, 1)) != (channels, 1, 1):
            return None
        beta1 = b.expand(channels, 1, 1).reshape(channels).contiguous()
    y_shape = (x.shape[0], portions, *x.shape[2:]) if portion_dims else tuple(x.shape)
    return alpha3, beta1, y_shape, (*wide, 1, 1)


class _NativePower(torch.autograd.Function):
    """psi(x, alpha) or psi(floor(beta x) / beta, alpha) by the C++ kernel; saves x, alpha and y (the backward
    recomputes log2 m and the floor: one x-sized tensor per layer less than the eager path keeps)."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, beta: Optional[Tensor], layout, alpha_range) -> Tensor:
        alpha3, beta1, y_shape, alpha_wide = layout
        n, channels = x.shape[0], alpha3.shape[2]
        x3 = x.to(torch.float32).reshape(n, channels, -1).contiguous()
        y4 = _state['module'].power_forward(x3, alpha3, beta1, *alpha_range)
        ctx.save_for_backward(x3, alpha3, y4, beta1)
        ctx.alpha_range = alpha_range
        ctx.shapes = (x.shape, x.dtype, alpha.shape, alpha.dtype, alpha_wide)
        return y4.view(y_shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        x3, alpha3, y4, beta1 = ctx.saved_tensors
        x_shape, x_dtype, alpha_shape, alpha_dtype, alpha_wide = ctx.shapes
        need_x, need_alpha = ctx.needs_input_grad[:2]
        grad_x, grad_alpha = _state['module'].power_backward(
            x3, alpha3, beta1, y4, grad_y.to(torch.float32).reshape(y4.shape).contiguous(), need_x,
            need_alpha, *ctx.alpha_range)
        if need_x:
            grad_x = grad_x.view(x_shape).to(x_dtype)
        if need_alpha:
            grad_alpha = grad_alpha.view(alpha_wide).sum_to_size(alpha_shape).to(alpha_dtype)
        return (grad_x if need_x else None), (grad_alpha if need_alpha else None), None, None, None


def signed_power(x: Tensor, alpha: Tensor, beta: Optional[Tensor],
                 alpha_range: Tuple[float, float]) -> Optional[Tensor]:
    """psi(x, clamp(alpha, *alpha_range)) (after the scaled floor when ``beta`` is given) by the kernel, the gradient
    to an exponent outside the range 0 (on a bound eq. 6's); None where it does not apply (layout, dtype, device)
    or could not be built: the caller then runs the eager path. The clamp is the kernel's, so that the layers'
    steps have no extra small ops and autograd nodes for it (about 50 us a step)."""
    if not available():  # checked first: a failed build then costs no layout work per call
        return None
    layout = _layout(x, alpha, beta)
    if layout is None:
        return None
    return _NativePower.apply(x, alpha, beta, layout, alpha_range)


def layout_supported(x: Tensor, alpha: Tensor, beta: Optional[Tensor] = None) -> bool:
    """Whether :func:`signed_power` takes these arguments (for tests and benchmarks)."""
    return _layout(x, alpha, beta) is not None


__all__ = ('available', 'extension', 'layout_supported', 'signed_power')
