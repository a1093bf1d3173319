"""The CPU's fused maps: a C++ kernel (``csrc/maps_cpu.cpp``) for the signed power and floor + power.

A C++ autograd function: one vectorised pass for the forward (reads x, writes y) and one for the eq. 6 backward
(reads x and dL/dy: it recomputes log2 m and 2^(alpha log2 m) rather than reading y), parallel over channels, with
no Python between the conv and the map in either direction. Built with torch's C++ extension loader at first use
and cached on disk (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``: about 30 s once per machine,
CPU type and torch version, then a load; a build killed half-way does not block the next one). Where it cannot be
built, one warning line names why (no C++ compiler, no ninja, or a build error with the file that holds the
compiler's output) and the eager maps run; :func:`status` says the same for ``ops.describe()``. Written by hand
because Inductor's CPU kernels for these maps were no faster than the eager ops at ResNet-50's shapes
(docs/speed.md) and cost 13-48 s of compilation in every new process.

Layouts it takes (anything else, and float64, runs the eager path): x ``(N, C, H, W)`` with exponents broadcast to
``(N or 1, C, 1, 1)``, x ``(N, 1, C, H, W)`` with exponents ``(N or 1, Lambda, C, 1, 1)``, and the layers' own
(:func:`portioned_power`); floor scales per channel. Computes in float32 (float16/bfloat16 inputs are converted,
as on the eager path). No double backward (``create_graph=True`` raises, naming ``fused=False``).
"""
import contextlib
import glob
import logging
import os
import os.path as osp
import re
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


def torch_tag() -> str:
    """``torch<version>`` for build names: a module built against another torch's headers does not load (and two
    versions sharing a directory would rebuild each other's in turn)."""
    return 'torch' + ''.join(c if c.isalnum() else '_' for c in torch.__version__)


def _build_name() -> str:
    """One build per CPU capability and torch version."""
    return f'featquant_maps_cpu_{_capability().lower()}_{torch_tag()}'


@contextlib.contextmanager
def exclusive(build_dir: str):
    """Hold an advisory lock on the build directory and remove a leftover ``lock`` file in it.

    torch before 2.14 marks a build in progress by the mere existence of ``build_dir/lock`` and waits, forever, while
    it exists: a build killed half-way (Ctrl-C during the first quantized conv) left every later process hanging
    without a word. An ``flock`` is released by the kernel when its holder dies, and only builders of this module use
    this directory, so whoever holds ours may remove that file. (No ``fcntl``, e.g. Windows: torch's lock alone.)
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(osp.join(build_dir, 'featquant.flock'), 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f'featquant_mmdet: waiting for another process building the CPU maps kernel in {build_dir}',
                  file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(osp.join(build_dir, 'lock'))
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BuildError(RuntimeError):
    """The kernel cannot be built here; the message names the missing piece in one line."""


def _compiler() -> str:
    """The C++ compiler torch's loader runs: ``$CXX``, else ``c++``."""
    from torch.utils import cpp_extension
    return cpp_extension.get_cxx_compiler()


def _check_tools() -> None:
    """A :class:`BuildError` naming the missing tool (compiler or ninja) before the loader runs: its own errors name
    neither (a missing compiler shows up as ninja's failed command line)."""
    from torch.utils import cpp_extension
    compiler = _compiler()
    program = compiler.split()[0] if compiler.strip() else ''
    if not program or shutil.which(program) is None:
        source = f'CXX={compiler!r}' if 'CXX' in os.environ else "'c++' (set CXX to choose one)"
        raise BuildError(f'no C++ compiler: {source} not found on PATH')
    if not cpp_extension.is_ninja_available():
        raise BuildError('no ninja on PATH (install it: pip install ninja)')


def _build():
    """The loaded module; ``_state['how']`` says whether it was built now or loaded from an earlier build."""
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
        _check_tools()
        name = _build_name()
        build_dir = cpp_extension._get_build_directory(name, verbose=False)
        _state['dir'] = build_dir
        with exclusive(build_dir):
            before = _built_files(build_dir)
            if not before:
                print(f'featquant_mmdet: building the CPU maps kernel in {build_dir} (once per machine, about 25 s)',
                      file=sys.stderr, flush=True)
            try:
                module = cpp_extension.load(name=name, sources=[_SOURCE], extra_cflags=flags,
                                            extra_ldflags=['-fopenmp'], build_directory=build_dir, verbose=False)
            except Exception as err:  # noqa: BLE001 - compiler, linker and loader errors come in many types
                log = osp.join(build_dir, BUILD_LOG)
                with open(log, 'w') as f:
                    f.write(f'{type(err).__name__}: {err}\n')
                raise BuildError(f'build error ({_compiler_error(err)}), the compiler\'s output in {log}') from err
            _state['how'] = 'loaded from cache' if before and before == _built_files(build_dir) else 'built'
            return module
    finally:
        logger.setLevel(level)
        os.environ['PATH'] = path


#: the file a failed build's compiler output goes to, in the build directory
BUILD_LOG = 'featquant_build_error.log'


def _built_files(build_dir: str) -> dict:
    return {f: os.stat(f).st_mtime_ns for f in glob.glob(osp.join(build_dir, '*.so'))}


def _compiler_error(err: BaseException) -> str:
    """The compiler's first error line in a failed build's message (which starts with ninja's command line)."""
    for line in str(err).splitlines():
        line = line.strip()
        if re.search(r'\berror\b', line, re.IGNORECASE) and not line.startswith(('Error building extension',
                                                                                  f'{type(err).__name__}:')):
            return line[:200]
    return f'{type(err).__name__}: {_first_line(err)}'


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else ''


def extension():
    """The loaded C++ module, or None where it cannot be built (warned once, in one line naming why)."""
    if 'module' in _state or 'error' in _state:
        return _state.get('module')
    with _lock:
        if 'module' not in _state and 'error' not in _state:
            try:
                _state['module'] = _build()
            except Exception as err:  # noqa: BLE001 - compiler, linker and loader errors come in many types
                _state['error'] = err
                message = (f'featquant_mmdet: the CPU maps kernel cannot be built: {failure()}; the eager maps run '
                           f'on the CPU')
                warnings.warn(message, RuntimeWarning)
    return _state.get('module')


def available() -> bool:
    """Whether the kernel is built and loaded (builds it at the first call)."""
    return extension() is not None


def failure() -> Optional[str]:
    """Why the kernel cannot be built (no C++ compiler, no ninja, a build error and its log), None if it was not
    tried or was built."""
    err = _state.get('error')
    if err is None:
        return None
    return str(err) if isinstance(err, BuildError) else f'{type(err).__name__}: {_first_line(err)}'


def status() -> str:
    """The kernel's state in words: not loaded yet, built or loaded from cache (where), or why it cannot be built."""
    if 'module' in _state:
        return f"{_state.get('how', 'loaded')} in {_state.get('dir', '?')}"
    if 'error' in _state:
        return f'cannot be built: {failure()}'
    return 'not loaded yet (built or loaded at the first quantized conv on the CPU)'


# ------------------------------------------------------------------------------------------------------- layouts
def _takes(x: Tensor, alpha: Tensor) -> bool:
    return (x.dtype in (torch.float32, torch.float16, torch.bfloat16) and alpha.dtype == torch.float32
            and x.device.type == 'cpu' and x.numel() > 0)


def _layout(x: Tensor, alpha: Tensor, beta: Optional[Tensor]):
    """(beta as (C) or None, Na, P, alpha's broadcast shape, y's shape) for the kernel, or None if unsupported."""
    if not _takes(x, alpha):
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
    shape = (1, ) * (ndim - alpha.dim()) + tuple(alpha.shape)
    if shape[0] not in (1, x.shape[0]) or shape[-3] not in (1, channels) or shape[-2:] != (1, 1):
        return None
    portions = shape[1] if portion_dims else 1
    wide = (shape[0], portions, channels, 1, 1) if portion_dims else (shape[0], channels, 1, 1)
    beta1 = None
    if beta is not None:
        b = beta.to(torch.float32)
        if b.dim() > 3 and any(size != 1 for size in b.shape[:-3]):
            return None
        b = b.reshape(b.shape[-3:] if b.dim() > 3 else b.shape)
        if torch.broadcast_shapes(b.shape, (channels, 1, 1)) != (channels, 1, 1):
            return None
        beta1 = b.expand(channels, 1, 1).reshape(channels)
    y_shape = (x.shape[0], portions, *x.shape[2:]) if portion_dims else tuple(x.shape)
    return beta1, shape[0], portions, wide, y_shape


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
    beta1, na, portions, wide, y_shape = layout
    return _state['module'].power(x, alpha, beta1, na, portions, wide, y_shape, *alpha_range)


def portioned_power(x: Tensor, alpha: Tensor, beta: Optional[Tensor],
                    alpha_range: Tuple[float, float]) -> Optional[Tensor]:
    """The layers' layout in one call: x (N, C, H, W), exponents (Lambda, C) or per sample (N, Lambda, C), beta
    (C) or None; returns the Lambda mapped copies stacked along channels, (N, Lambda*C, H, W), or None as
    :func:`signed_power`. No reshaping ops around the kernel, so no extra autograd nodes in the step."""
    if not available() or x.dim() != 4 or alpha.dim() not in (2, 3) or not _takes(x, alpha):
        return None
    n, channels = x.shape[:2]
    na = alpha.shape[0] if alpha.dim() == 3 else 1
    portions = alpha.shape[-2]
    if alpha.shape[-1] != channels or na not in (1, n):
        return None
    if beta is not None:
        beta = beta.reshape(-1)
        if beta.numel() not in (1, channels):
            return None
        beta = beta.expand(channels)
    return _state['module'].power(x, alpha, beta, na, portions, (na, portions, channels),
                                  (n, portions * channels, *x.shape[2:]), *alpha_range)


def layout_supported(x: Tensor, alpha: Tensor, beta: Optional[Tensor] = None) -> bool:
    """Whether :func:`signed_power` takes these arguments (for tests and benchmarks)."""
    return _layout(x, alpha, beta) is not None


__all__ = ('BUILD_LOG', 'BuildError', 'available', 'exclusive', 'extension', 'failure', 'layout_supported',
           'portioned_power', 'signed_power', 'status', 'torch_tag')
