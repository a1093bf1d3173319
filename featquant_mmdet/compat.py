"""The plugin's patches of mmengine, all in this module; ``import featquant_mmdet`` applies them (:func:`apply_patches`).

Each patch first checks whether the installed mmengine (and torch) still has the problem and leaves mmengine alone
where it is already right; ``FEATQUANT_NO_PATCHES=1`` turns every one of them off, the tools' malloc tuning included.

    patch                fixes                                     applies where (checked at import)
    checkpoint_loading   torch >= 2.6 loads with weights_only=True  torch >= 2.6 and mmengine.runner.checkpoint calls
                         by default, which refuses mmengine's own    torch.load without weights_only: mmengine 0.10.7
                         checkpoints (HistoryBuffer, numpy scalars)  (the pinned release; open-mmlab/mmengine#1655)
    cpu_distributed      --launcher pytorch (tools/dist_*.sh) on a   mmengine's _init_dist_pytorch calls
                         machine without CUDA: torch.cuda.set_device torch.cuda.set_device without a CUDA check:
                         and nccl fail, DDP refuses device_ids       mmengine 0.10.7
    package_configs      ``_base_ = 'featquant_mmdet::x.py'`` in     mmengine's Config does not resolve the prefix
                         another project's configs                   (a fixed package map): mmengine 0.10.7
    malloc (tools only)  large CPU tensor buffers mapped and zeroed  glibc (any version with mallopt); applied by
                         again at every step                         loading.build_runner, see featquant_mmdet.malloc

With a patch in place every other path goes to mmengine's code unchanged (a GPU for ``cpu_distributed``, another
prefix for ``package_configs``, every ``torch.load`` outside mmengine's checkpoint module).
"""
import ast
import atexit
import functools
import gc
import inspect
import os
import os.path as osp
import textwrap
from typing import Dict

import torch

NO_PATCHES_ENV = 'FEATQUANT_NO_PATCHES'


def patches_disabled() -> bool:
    """True when ``FEATQUANT_NO_PATCHES=1``; unset, empty or ``0`` keep the patches; other values: ``ValueError``."""
    value = os.environ.get(NO_PATCHES_ENV, '')
    if value.strip() not in ('', '0', '1'):
        raise ValueError(f'environment variable {NO_PATCHES_ENV}={value!r}: accepted are 1 (no patches of mmengine, '
                         'no malloc tuning) or 0 / unset (the patches where the installed versions need them)')
    return value.strip() == '1'


def apply_patches() -> Dict[str, bool]:
    """Apply every patch the installed versions need, unless ``FEATQUANT_NO_PATCHES=1``; ``{patch: in place}``."""
    if patches_disabled():
        return dict.fromkeys(PATCHES, False)
    return {name: patch() for name, patch in PATCHES.items()}


# ----------------------------------------------------------------------------------------------------------------
# checkpoint_loading


_PATCHED_FLAG = '_featquant_weights_only_patched'


class _TorchWithFullUnpickling:
    """Stand-in for the ``torch`` module seen by ``mmengine.runner.checkpoint`` only.

    torch>=2.6 makes ``torch.load`` default to ``weights_only=True``; mmengine 0.10.7 calls it without the argument,
    so every checkpoint that carries mmengine's own meta (``HistoryBuffer``, numpy scalars) fails to load. Runner
    checkpoints are the user's own files, so mmengine's checkpoint loading gets the pre-2.6 default back, while every
    other ``torch.load`` in the process keeps torch's safe default.
    """

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    @functools.wraps(torch.load)
    def load(self, *args, **kwargs):
        kwargs.setdefault('weights_only', False)
        return self._module.load(*args, **kwargs)


def _torch_defaults_to_weights_only() -> bool:
    major, minor = (int(p) for p in torch.__version__.split('.')[:2])
    return (major, minor) >= (2, 6)


def _source_tree(obj):
    """The syntax tree of ``obj``'s source, None where the source is not installed (then the patches apply)."""
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError):
        return None


def _torch_load_calls_without_weights_only(module) -> bool:
    """True when the source of ``module`` has a ``torch.load(...)`` call that does not name ``weights_only`` (or
    cannot be read)."""
    tree = _source_tree(module)
    if tree is None:
        return True
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'load'
                and isinstance(node.func.value, ast.Name) and node.func.value.id == 'torch'
                and not any(k.arg == 'weights_only' for k in node.keywords)):
            return True
    return False


def patch_mmengine_checkpoint_loading(ckpt_module=None) -> bool:
    """Make mmengine's checkpoint loading (``load_checkpoint``, ``Runner.resume``, ``load_from``) work on torch>=2.6.

    Args:
        ckpt_module: the module to patch (default ``mmengine.runner.checkpoint``).

    Returns True when the patch is in place (idempotent), False when this torch and mmengine need none.
    """
    if ckpt_module is None:
        from mmengine.runner import checkpoint as ckpt_module
    if getattr(ckpt_module, _PATCHED_FLAG, False):
        return True
    if not (_torch_defaults_to_weights_only() and _torch_load_calls_without_weights_only(ckpt_module)):
        return False
    ckpt_module.torch = _TorchWithFullUnpickling(torch)
    setattr(ckpt_module, _PATCHED_FLAG, True)
    return True


# ----------------------------------------------------------------------------------------------------------------
# cpu_distributed: multi-process runs on a machine without CUDA (torchrun + mmengine's "pytorch" launcher)

_CPU_DIST_FLAG = '_featquant_cpu_distributed_patched'


def _no_accelerator() -> bool:
    """True when torch sees no CUDA device and mmengine puts models on the CPU (no NPU, MLU, MPS, MUSA either)."""
    from mmengine.device import get_device
    return not torch.cuda.is_available() and get_device() == 'cpu'


def _destroy_process_group() -> None:
    """Destroy the group and join gloo's worker threads while the interpreter is still whole (at exit).

    ``destroy_process_group`` alone leaves the C++ group alive: the runner's DDP wrapper and reducer keep it in
    reference cycles, so gloo's worker threads outlive ``atexit``. A worker that then releases the last collective's
    Python-owned tensors needs the GIL during interpreter finalization, and the thread is killed inside a C++
    destructor: "terminate called without an active exception", exit -6 (gdb on a core of tools/test.py rank 1,
    4-6 in 20 runs of tools/dist_test.sh on a loaded 2-core machine). Collecting the cycles here drops the last
    reference; torch's holder releases the GIL and joins the workers (4 threads -> 1, measured).
    """
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    gc.collect()


def _sets_cuda_device_unchecked(function) -> bool:
    """True when ``function`` calls ``torch.cuda.set_device`` outside an ``if`` whose test mentions ``cuda`` (or its
    source cannot be read)."""

    def visit(node, guarded):
        if isinstance(node, ast.If):
            guarded = guarded or 'cuda' in ast.unparse(node.test)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'set_device'
                and ast.unparse(node.func.value) == 'torch.cuda' and not guarded):
            return True
        return any(visit(child, guarded) for child in ast.iter_child_nodes(node))

    tree = _source_tree(function)
    return tree is None or visit(tree, False)


def patch_mmengine_cpu_distributed(dist_utils=None, ddp_class=None) -> bool:
    """Let ``--launcher pytorch`` (``tools/dist_train.sh``, ``tools/dist_test.sh``, torchrun) run on CPUs only.

    mmengine 0.10.7 assumes a GPU per process in two places, and both fail at once on a machine without CUDA:

    * ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device(LOCAL_RANK)`` and starts the process
      group with the configured backend, which mmdet's ``default_runtime`` sets to ``nccl`` (GPU only);
    * ``Runner.wrap_model`` builds ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``, which torch's DDP refuses
      for a model on the CPU (``device_ids`` "only work with ... GPU modules").

    When no accelerator is present (``torch.cuda.is_available()`` is False and ``mmengine.device.get_device()``
    is ``'cpu'``, decided at each call), the first
    starts the group with ``gloo`` instead of ``nccl`` (any other backend as configured) and without
    ``set_device``; the second drops ``device_ids`` for a model whose parameters are all on the CPU, which is how DDP
    runs on CPUs. With a GPU (or another accelerator) both call mmengine's code unchanged. Only the ``pytorch``
    launcher with ``init_backend='torch'`` is covered (slurm/mpi and deepspeed/colossalai are as mmengine has them).
    An mmengine whose ``_init_dist_pytorch`` checks for CUDA before ``set_device`` is left alone.

    Args:
        dist_utils, ddp_class: what to patch (default ``mmengine.dist.utils`` and ``MMDistributedDataParallel``).

    Returns True when the patch is in place (idempotent), False when this mmengine needs none.
    """
    if dist_utils is None:
        from mmengine.dist import utils as dist_utils
    if ddp_class is None:
        from mmengine.model.wrappers.distributed import MMDistributedDataParallel as ddp_class
    if getattr(dist_utils, _CPU_DIST_FLAG, False):
        return True
    if not _sets_cuda_device_unchecked(dist_utils._init_dist_pytorch):
        return False

    original_init_dist = dist_utils._init_dist_pytorch

    @functools.wraps(original_init_dist)
    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if init_backend != 'torch' or not _no_accelerator():
            return original_init_dist(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':
            backend = 'gloo'
        torch.distributed.init_process_group(backend=backend, **kwargs)
        # mmengine never destroys the group; a gloo group still alive at interpreter exit can abort the process
        # ("terminate called without an active exception", exit -6) after the work is done
        atexit.register(_destroy_process_group)

    original_ddp_init = ddp_class.__init__

    @functools.wraps(original_ddp_init)
    def ddp_init(self, module, *args, **kwargs):
        if kwargs.get('device_ids') is not None and _no_accelerator() and all(
                p.device.type == 'cpu' for p in module.parameters()):
            kwargs['device_ids'] = None
        original_ddp_init(self, module, *args, **kwargs)

    dist_utils._init_dist_pytorch = init_dist_pytorch
    ddp_class.__init__ = ddp_init
    setattr(dist_utils, _CPU_DIST_FLAG, True)
    return True


# ----------------------------------------------------------------------------------------------------------------
# package_configs: `_base_ = 'featquant_mmdet::...'` (the configs themselves: featquant_mmdet.package_configs)

_PACKAGE_CONFIGS_FLAG = '_featquant_package_configs'
# shipped configs the check asks mmengine for, with and without a folder (mmengine 0.10.7 treats them differently)
_PROBE_CONFIGS = ('faster_rcnn_zf_voc.py', 'pretrain/zf_imagenet.py')


def _resolves_package_configs(get_cfg_path) -> bool:
    """True when mmengine's ``_get_cfg_path`` already turns ``featquant_mmdet::`` paths into the shipped files."""
    from .package_configs import PREFIX, config_path
    for name in _PROBE_CONFIGS:
        try:
            expected = config_path(name)
            path, _ = get_cfg_path(PREFIX + name, '')
        except Exception:  # noqa: BLE001  (mmengine 0.10.7: ValueError / AssertionError for an unknown package)
            return False
        if not (isinstance(path, str) and osp.isfile(path) and osp.samefile(path, expected)):
            return False
    return True


def _package_base_config(cfg_path: str):
    """``(path, scope)`` of a ``pkg::_base_/...`` config, as mmengine resolves it once every ``metafile.yml`` of the
    package has failed to list it (mmdet: ~1100 YAML files, 0.5-1 s per config load); None to leave it to mmengine."""
    from mmengine.config.utils import _get_external_cfg_base_path, _get_package_and_cfg_path
    from mmengine.utils import get_installed_path, is_installed
    package, rel_path = _get_package_and_cfg_path(cfg_path)
    if not is_installed(package):
        return None
    return _get_external_cfg_base_path(get_installed_path(package), rel_path), cfg_path.partition('::')[0]


def patch_mmengine_package_configs(config_class=None) -> bool:
    """Teach ``Config`` (default ``mmengine.config.Config``) the ``featquant_mmdet::`` prefix.

    mmengine 0.10.7 resolves ``pkg::path`` only for a hard-coded map of OpenMMLab's own packages, only for paths with
    a folder, and through ``pkg_resources``' distribution location (not the package folder of an editable install);
    it has no registration mechanism for other packages (:mod:`featquant_mmdet.package_configs`). The wrapper of
    ``Config._get_cfg_path`` sends ``featquant_mmdet::`` paths to
    :func:`featquant_mmdet.package_configs.config_path`, with the registry scope ``'mmdet'``, and every other path
    to mmengine unchanged, except that ``pkg::_base_/...`` paths skip the metafile search
    (:func:`_package_base_config`).

    Returns True when the patch is in place (idempotent), False when this mmengine resolves the prefix itself.
    """
    from .package_configs import CONFIG_SCOPE, PREFIX, config_path
    if config_class is None:
        from mmengine.config import Config as config_class
    original = config_class.__dict__['_get_cfg_path'].__func__
    if getattr(original, _PACKAGE_CONFIGS_FLAG, False):
        return True
    if _resolves_package_configs(original):
        return False

    @functools.wraps(original)
    def _get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(PREFIX):
            return config_path(cfg_path), CONFIG_SCOPE
        if isinstance(cfg_path, str) and '::_base_/' in cfg_path:
            return _package_base_config(cfg_path) or original(cfg_path, filename)
        return original(cfg_path, filename)

    setattr(_get_cfg_path, _PACKAGE_CONFIGS_FLAG, True)
    config_class._get_cfg_path = staticmethod(_get_cfg_path)
    return True


# the patches of mmengine, in the order apply_patches runs them (malloc is the tools' own: featquant_mmdet.malloc)
PATCHES = {
    'checkpoint_loading': patch_mmengine_checkpoint_loading,
    'cpu_distributed': patch_mmengine_cpu_distributed,
    'package_configs': patch_mmengine_package_configs,
}
