"""Compatibility fixes between the pinned torch and mmengine releases, applied on ``import featquant_mmdet``."""
import functools

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
