"""Which implementation of the maps runs on which device, and why: the one place that decides.

Three implementations compute the same formulas (values to float32 rounding, gradients eq. 6):

* ``kernel``: the hand-written C++ CPU kernel (:mod:`.native`), built at first use and cached on disk;
* ``compiled``: each map's forward and backward compiled by ``torch.compile`` (:mod:`.fused`; Triton on CUDA);
* ``eager``: the reference, op by op (:mod:`.quantize`).

The setting is the ``fused`` argument of the ops and the layers (``None``: the environment variable
``FEATQUANT_FUSED_MAPS``):

* ``auto`` (the default; unset): the kernel on the CPU, compiled on CUDA, eager on other devices;
* ``1``/``on``/``true``/``fused`` (argument True): the kernel on the CPU, compiled on every other device;
* ``compiled``: compiled on every device, the CPU included (Inductor's C++: 13-48 s of compilation per process; how
  the tests run CUDA's code path on a CPU);
* ``0``/``off``/``false``/``eager`` (argument False): the eager reference.

A layer's ``fused=True`` with ``FEATQUANT_FUSED_MAPS=compiled`` runs compiled on the CPU too. Where the kernel cannot
be built (no C++ compiler, no ninja, a build error) the CPU runs eager, said once in one line. Where a compiled map
fails, at any call (first call, a new shape or dtype, an AMP recompile, forward or backward), that call is computed
eagerly with one warning naming the cause, and the device runs eager from then on. :func:`describe` says which path
runs on which device and why; the training tools log it in the Runner's environment header.
"""
import os
import warnings
from typing import Dict, Iterable, Optional, Union

import torch

from . import native

ENV_VAR = 'FEATQUANT_FUSED_MAPS'
KERNEL, COMPILED, EAGER = 'kernel', 'compiled', 'eager'
_WORDS = {'': 'auto', 'auto': 'auto', 'compiled': 'compiled'}
_WORDS.update({w: 'fused' for w in ('1', 'on', 'true', 'fused')})
_WORDS.update({w: 'eager' for w in ('0', 'off', 'false', 'eager')})
_ACCEPTED = 'auto (default), 1/on/true/fused, compiled, 0/off/false/eager'
#: the path ``auto`` takes per device type (the CPU's only while the kernel can be built)
AUTO = {'cpu': KERNEL, 'cuda': COMPILED}
_NAMES = {KERNEL: 'C++ kernel', COMPILED: 'compiled maps', EAGER: 'eager maps'}

_compile_failures: Dict[str, str] = {}  # device type -> the cause, once a compiled map failed there
_compile_working = set()  # device types where a compiled map has run


def setting(fused: Optional[Union[bool, str]] = None) -> str:
    """'auto', 'fused', 'compiled' or 'eager' for the argument ``fused`` (None: the environment variable); a
    ``ValueError`` naming the accepted values for anything else."""
    if isinstance(fused, bool):
        return 'fused' if fused else 'eager'
    if fused is not None and not isinstance(fused, str):
        raise TypeError(f'fused must be None (auto), True or False, got {fused!r}')
    raw = os.environ.get(ENV_VAR, '') if fused is None else fused
    word = _WORDS.get(raw.strip().lower())
    if word is None:
        source = f'environment variable {ENV_VAR}' if fused is None else 'fused'
        raise ValueError(f'{source}={raw!r}: accepted are {_ACCEPTED}')
    return word


def check_fused_setting(fused) -> Optional[bool]:
    """Validate a layer's ``fused`` argument early (None, True or False)."""
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f'fused must be None (auto: {ENV_VAR} or per device), True or False, got {fused!r}')
    return fused


def _wanted(fused, device_type: str) -> str:
    """The path the setting asks for on ``device_type``, before any failure is taken into account."""
    word = setting(fused)
    if word == 'fused' and fused is True and setting(None) == 'compiled':
        word = 'compiled'  # the variable picks the compiled maps as the CPU's fused ones
    if word == 'eager':
        return EAGER
    if word == 'compiled':
        return COMPILED
    if word == 'fused':
        return KERNEL if device_type == 'cpu' else COMPILED
    return AUTO.get(device_type, EAGER)


def choose(fused: Optional[Union[bool, str]], device: torch.device) -> str:
    """The path of a call on ``device``: ``'kernel'``, ``'compiled'`` or ``'eager'``.

    ``'kernel'`` means the C++ kernel where it is built and takes the call's layout and dtype, else eager: the caller
    asks :mod:`.native` (which builds or loads it at the first call that needs it, so that a model with the floor
    alone, which the kernel does not fuse, never builds it)."""
    path = _wanted(fused, device.type)
    if path == COMPILED and device.type in _compile_failures:
        return EAGER
    return path


def resolve_fused(fused: Optional[Union[bool, str]], device: torch.device) -> bool:
    """Whether a fused path (the kernel, built or loaded here if need be, or the compiled maps) runs on ``device``
    for the setting ``fused``."""
    path = choose(fused, device)
    return path == COMPILED or (path == KERNEL and native.available())


def describe_default(device: torch.device) -> str:
    """The path ``fused=None`` takes on ``device``, in a few words (for benchmark headers)."""
    path = choose(None, device) if resolve_fused(None, device) else EAGER
    return 'eager' if path == EAGER else f'fused ({"the C++ kernel" if path == KERNEL else "compiled"})'


def in_traced_context() -> bool:
    """True while ``torch.compile``, ``torch.export``, ONNX export or TorchScript tracing records the ops."""
    return bool(torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
                or torch.jit.is_scripting())


# ------------------------------------------------------------------------------------------- the compiled maps' fate
def compiled_usable(device: torch.device) -> bool:
    """False once a compiled map failed on ``device``'s type."""
    return device.type not in _compile_failures


def compiled_ran(device: torch.device) -> None:
    _compile_working.add(device.type)


def compiled_failed(device: torch.device, where: str, err: BaseException) -> None:
    """Record that the compiled ``where`` failed on ``device`` and warn once: eager there from now on."""
    if device.type in _compile_failures:
        return
    cause = f'{where}: {_cause(err)}'
    _compile_failures[device.type] = cause
    when = 'after earlier compiled calls ran' if device.type in _compile_working else 'at its first use'
    message = (f'featquant_mmdet: the compiled maps failed on {device.type} {when} ({cause}); this call and all '
               f'later ones on {device.type} run the eager maps ({ENV_VAR}=0 chooses them from the start, '
               f'{ENV_VAR}=1 the fused ones)')
    warnings.warn(message, RuntimeWarning)


def _cause(err: BaseException) -> str:
    """The innermost error (dynamo wraps the backend's) as ``Type: first line``."""
    while getattr(err, 'inner_exception', None) is not None:
        err = err.inner_exception
    text = str(err).strip()
    return f'{type(err).__name__}: {text.splitlines()[0][:200]}' if text else type(err).__name__


# ----------------------------------------------------------------------------------------------------------- describe
def _reason(device_type: str) -> str:
    """Which path runs on ``device_type`` for the default setting, and why (probes the kernel on the CPU)."""
    raw = os.environ.get(ENV_VAR)
    forced = f'forced by {ENV_VAR}={raw}' if raw is not None and raw.strip().lower() not in ('', 'auto') else None
    wanted = _wanted(None, device_type)
    if wanted == EAGER:
        return f'{_NAMES[EAGER]} ({forced or f"no fused maps for {device_type}"})'
    why = forced or f'the default on {device_type}'
    if wanted == KERNEL:
        if native.available():
            return f'{_NAMES[KERNEL]} ({why}; {native.status()})'
        return f'{_NAMES[EAGER]} (the C++ kernel {native.status()})'
    if device_type in _compile_failures:
        return f'{_NAMES[EAGER]} (the compiled maps failed, {_compile_failures[device_type]})'
    ran = 'ran' if device_type in _compile_working else 'not run yet'
    triton = '' if device_type != 'cuda' or _has_triton() else '; Triton is not installed, the first call will fail'
    return f'{_NAMES[COMPILED]} (torch.compile, {why}; {ran}{triton})'


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton
        return has_triton()
    except ImportError:
        return False


def describe(devices: Optional[Iterable[Union[str, torch.device]]] = None, one_line: bool = False) -> str:
    """Which path the maps take on each device and why, e.g.::

        cpu: C++ kernel (the default on cpu; loaded from cache in ~/.cache/torch_extensions/...)
        cuda: compiled maps (torch.compile, the default on cuda; not run yet)

    ``devices``: device types or devices (default: the CPU, CUDA where available, and any device where a compiled map
    failed). Builds or loads the CPU kernel where the CPU's path is the kernel. Layers built with ``fused=True`` or
    ``False`` override the default for themselves. ``one_line``: joined by ``'; '`` (the training logs' header).
    """
    if devices is None:
        devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
        devices += [d for d in _compile_failures if d not in devices]
    types = [torch.device(d).type if not isinstance(d, torch.device) else d.type for d in devices]
    lines = [f'{t}: {_reason(t)}' for t in dict.fromkeys(types)]
    return ('; ' if one_line else '\n').join(lines)


def log_header_entry(device: Optional[Union[str, torch.device]] = None) -> Dict[str, str]:
    """``{'featquant_maps': describe(...)}`` for the Runner's ``env_cfg``, which mmengine's Runner prints under
    "Runtime environment" in every log: the training device (CUDA where available, else the CPU) or ``device``."""
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    return {'featquant_maps': describe([device], one_line=True)}
