"""glibc malloc settings for CPU runs: reuse large tensor buffers instead of mapping fresh pages for each one.

PyTorch takes CPU tensor memory from malloc. glibc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB at start,
raised dynamically) with a fresh ``mmap`` and unmaps them on free, and gives the heap top back to the system above
``M_TRIM_THRESHOLD``, so a training step's large temporaries (the maps' buffers, the convolutions' outputs and
gradients) are page-faulted and zeroed by the kernel again at every step. :func:`tune_malloc` sets::

    M_MMAP_THRESHOLD = 32 MiB     (glibc's largest on 64-bit: blocks below it are reused from the heap)
    M_TRIM_THRESHOLD = 2 GiB - 1  (freed heap memory stays with the process for the next step)

Measured on 2 cores (docs/speed.md, two runs of ``benchmarks/bench_zf_detector.py``): a ZF Faster R-CNN inference
12-22 % faster, a training iteration 8-9 % faster; PowConv with Lambda = 4 at ZF's shapes 1.18-1.29x of a plain conv
instead of 1.42-1.93x (``benchmarks/bench_map_revision.py``). The cost: the process keeps freed memory instead of
returning it (resident memory stays near its peak), and the peak itself rose 2.8 % in the detector benchmark
(2,727 against 2,654 MB).

``tools/train.py``, ``tools/test.py`` and ``tools/robustness.py`` apply it through
:func:`featquant_mmdet.loading.build_runner`; the environment variable ``FEATQUANT_MALLOC`` chooses
(``tuned``, the default, or ``system``: glibc's own settings); without it, ``FEATQUANT_NO_PATCHES=1`` (every patch
of :mod:`featquant_mmdet.compat` off) means ``system`` too. Elsewhere than glibc (macOS, musl) it does nothing.
Torch alone is enough (no OpenMMLab import).
"""
import ctypes
import ctypes.util
import os
from typing import Optional

from .compat import patches_disabled

ENV_VAR = 'FEATQUANT_MALLOC'
SETTINGS = ('tuned', 'system')
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2 ** 31 - 1

_applied: Optional[str] = None  # what tune_malloc set in this process


def resolve_setting(setting: Optional[str] = None) -> str:
    """``setting``, else ``FEATQUANT_MALLOC``, else ``'system'`` under ``FEATQUANT_NO_PATCHES=1``, else ``'tuned'``;
    ``ValueError`` naming the accepted values."""
    source = 'malloc setting' if setting is not None else f'environment variable {ENV_VAR}'
    value = setting if setting is not None else os.environ.get(ENV_VAR, '')
    key = value.strip().lower() or ('system' if patches_disabled() else 'tuned')
    if key not in SETTINGS:
        raise ValueError(f'{source}={value!r}: accepted are tuned (the default) or system')
    return key


def tune_malloc(setting: Optional[str] = None) -> str:
    """Apply ``setting`` (see :func:`resolve_setting`) once per process; returns what holds now: ``'tuned'``,
    ``'system'``, or ``'system (no glibc)'`` where there is no glibc ``mallopt``."""
    global _applied
    key = resolve_setting(setting)
    if _applied is not None:  # a second call changes nothing: glibc cannot restore its dynamic threshold
        return _applied
    if key == 'system':
        _applied = 'system'
        return _applied
    libc = _glibc()
    if libc is None:
        _applied = 'system (no glibc)'
        return _applied
    if not (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        raise OSError('glibc mallopt refused M_MMAP_THRESHOLD=32 MiB / M_TRIM_THRESHOLD=2 GiB; set '
                      f'{ENV_VAR}=system to keep glibc\'s own settings')
    _applied = 'tuned'
    return _applied


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.gnu_get_libc_version  # glibc only: musl and macOS have no such function
        return libc if hasattr(libc, 'mallopt') else None
    except (OSError, AttributeError):
        return None
