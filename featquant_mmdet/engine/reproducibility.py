"""Exact resume and run-to-run reproducibility.

``RNGStateHook`` — mmengine's ``--resume`` restores the weights, the optimizer, the schedulers and the position of
the data loader (it re-seeds and replays the skipped batches through the pipeline, so the pipeline's NumPy draws come
out as in an uninterrupted run), but not the state of torch's global generator. A resumed run therefore draws other
dropout masks and other anchor/RoI samples than the uninterrupted one from the first iteration after the checkpoint
on. The hook saves the generator state(s) in each checkpoint (``checkpoint['rng_state']``) and puts them back just
before the first training iteration after ``--resume`` (after the replay of the skipped batches, which does not touch
torch's generator), so a run killed between two checkpoints and resumed reaches bitwise the weights of the
uninterrupted run (same machine, same settings; tested in tests/test_resume.py). Config use::

    default_hooks = dict(rng_state=dict(type='RNGStateHook'))

Single process only: ``Runner.save_checkpoint`` runs on rank 0, so the other ranks' generator states are not in the
checkpoint; with several processes the hook restores nothing and says so.

``reproducible_env`` — the environment under which two runs of the tools on one machine give bitwise the same
weights and results files (see README, "What is reproducible").
"""
import os
from typing import Dict, Mapping, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

RNG_KEY = 'rng_state'


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save torch's global generator states in checkpoints and restore them on resume (see the module docstring)."""

    priority = 'VERY_HIGH'  # restore before any other hook's before_train_iter

    def __init__(self):
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = {'world_size': runner.world_size, 'torch': torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint[RNG_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # load_checkpoint (load_from without resume) calls this too; only a resume continues the run's draws
        self._pending = checkpoint.get(RNG_KEY) if runner._resume else None  # noqa: SLF001 (no public flag)
        if runner._resume and self._pending is None:  # noqa: SLF001
            runner.logger.warning('RNGStateHook: the checkpoint holds no generator state (saved without this '
                                  'hook): the resumed run draws other random numbers than an uninterrupted one')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        if runner.world_size != 1 or state.get('world_size', 1) != 1:
            runner.logger.warning('RNGStateHook: generator states are restored for single-process runs only; this '
                                  f'run has {runner.world_size} processes, the checkpoint was saved by '
                                  f'{state.get("world_size", 1)}')
            return
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available() and torch.cuda.device_count() == len(state['cuda']):
            torch.cuda.set_rng_state_all(state['cuda'])


# the thread pools torch, MKL, OpenBLAS and oneDNN read at start-up
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')


def reproducible_env(base: Optional[Mapping[str, str]] = None, threads: int = 1,
                     cpu_capability: Optional[str] = None) -> Dict[str, str]:
    """``base`` (default ``os.environ``) with a fixed thread count and, optionally, a fixed CPU kernel set.

    Args:
        threads: intra-op threads of every process (OMP/MKL/OpenBLAS). The result of a reduction depends on how it
            is split over threads, so runs with another count differ in the last bits and, through training, more.
        cpu_capability: ``ATEN_CPU_CAPABILITY`` (``default``, ``avx2``, ``avx512``): which vectorised kernels torch
            uses; None keeps torch's choice (the best the CPU has, which differs between machines).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f'threads must be a positive integer, got {threads!r}')
    if cpu_capability is not None and cpu_capability not in ('default', 'avx2', 'avx512'):
        raise ValueError(f"cpu_capability must be None, 'default', 'avx2' or 'avx512', got {cpu_capability!r}")
    env = dict(os.environ if base is None else base)
    env.update({var: str(threads) for var in THREAD_VARS})
    if cpu_capability is not None:
        env['ATEN_CPU_CAPABILITY'] = cpu_capability
    return env
