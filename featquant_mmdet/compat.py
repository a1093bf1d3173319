"""Compatibility fixes between the pinned torch and mmengine releases, applied on ``import featquant_mmdet``."""
import atexit
import functools
import gc

import torch

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


def patch_mmengine_checkpoint_loading() -> bool:
    """Make mmengine's checkpoint loading (``load_checkpoint``, ``Runner.resume``, ``load_from``) work on torch>=2.6.

    Returns True when the patch is in place (idempotent), False when this torch needs none.
    """
    if not _torch_defaults_to_weights_only():
        return False
    from mmengine.runner import checkpoint as ckpt_module
    if getattr(ckpt_module, _PATCHED_FLAG, False):
        return True
    ckpt_module.torch = _TorchWithFullUnpickling(torch)
    setattr(ckpt_module, _PATCHED_FLAG, True)
    return True


# ----------------------------------------------------------------------------------------------------------------
# Multi-process runs on a machine without CUDA (torchrun + mmengine's "pytorch" launcher)

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


def patch_mmengine_cpu_distributed() -> bool:
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

    Returns True when the patch is in place (idempotent).
    """
    from mmengine.dist import utils as dist_utils
    from mmengine.model.wrappers.distributed import MMDistributedDataParallel
    if getattr(dist_utils, _CPU_DIST_FLAG, False):
        return True

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

    original_ddp_init = MMDistributedDataParallel.__init__

    @functools.wraps(original_ddp_init)
    def ddp_init(self, module, *args, **kwargs):
        if kwargs.get('device_ids') is not None and _no_accelerator() and all(
                p.device.type == 'cpu' for p in module.parameters()):
            kwargs['device_ids'] = None
        original_ddp_init(self, module, *args, **kwargs)

    dist_utils._init_dist_pytorch = init_dist_pytorch
    MMDistributedDataParallel.__init__ = ddp_init
    setattr(dist_utils, _CPU_DIST_FLAG, True)
    return True
