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
# one kernel set for the three libraries that pick theirs by CPU: torch's vectorised ops, oneDNN's convolutions
# (the largest effect: 0.14 after 4 iterations, docs/usage.md) and MKL's GEMMs (conditional numerical reproducibility)
KERNEL_VARS = {
    'default': dict(ATEN_CPU_CAPABILITY='default', ONEDNN_MAX_CPU_ISA='SSE41', MKL_CBWR='COMPATIBLE'),
    'avx2': dict(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2', MKL_CBWR='AVX2'),
    'avx512': dict(ATEN_CPU_CAPABILITY='avx512', ONEDNN_MAX_CPU_ISA='AVX512_CORE', MKL_CBWR='AVX512'),
}


def cpu_kernels(env: Optional[Mapping[str, str]] = None) -> Dict[str, object]:
    """What the numbers of a CPU run depend on beyond the seed: the CPU model, whether it has AVX2 / AVX-512
    (``/proc/cpuinfo`` flags, Linux), torch's kernel set and the pinning variables set in ``env`` (default
    ``os.environ``)."""
    env = os.environ if env is None else env
    model, flags = None, set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and model is None:
                    model = value.strip()
                elif key.strip() == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return dict(cpu=model, avx2='avx2' in flags if flags else None, avx512f='avx512f' in flags if flags else None,
                torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                pinned={var: env[var] for var in (*THREAD_VARS, *KERNEL_VARS['avx2']) if var in env})


def reproducible_env(base: Optional[Mapping[str, str]] = None, threads: int = 1,
                     cpu_capability: Optional[str] = None) -> Dict[str, str]:
    """``base`` (default ``os.environ``) with a fixed thread count and, optionally, a fixed CPU kernel set.

    Args:
        threads: intra-op threads of every process (OMP/MKL/OpenBLAS). The result of a reduction depends on how it
            is split over threads, so runs with another count differ in the last bits and, through training, more.
        cpu_capability: ``'default'``, ``'avx2'`` or ``'avx512'``: the most the kernels may use, in torch
            (``ATEN_CPU_CAPABILITY``), oneDNN (``ONEDNN_MAX_CPU_ISA``) and MKL (``MKL_CBWR``), see
            :data:`KERNEL_VARS`; None keeps each library's choice (the best the CPU has, which differs between
            machines: an AVX-512 and an AVX2 machine train different weights from the same seed).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f'threads must be a positive integer, got {threads!r}')
    if cpu_capability is not None and cpu_capability not in KERNEL_VARS:
        raise ValueError(f"cpu_capability must be None, 'default', 'avx2' or 'avx512', got {cpu_capability!r}")
    env = dict(os.environ if base is None else base)
    env.update({var: str(threads) for var in THREAD_VARS})
    if cpu_capability is not None:
        env.update(KERNEL_VARS[cpu_capability])
    return env
