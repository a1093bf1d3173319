"""Exponent regularisation (Section 2, "l2 and l1 (lasso) regularized terms towards alpha") and alpha statistics.

Config use, for any mmdet detector or the project's ``ImageClassifier``, no subclassing::

    custom_hooks = [
        dict(type='AlphaRegularizationHook', l1=1e-4, l2=1e-4),   # adds 'loss_alpha' to the loss dict
        dict(type='AlphaStatsHook', interval=50),                   # logs train/alpha_mean, _min, _max, _std,
    ]                                                               #   _at_bound

(``AlphaProjectionHook``, in ``alpha_projection.py``, keeps the learnable exponents inside [-1, 5].)

Which tensors are "the exponents": every module of the model with an ``exponents()`` method (``PowConv`` and
``SFPowConv``: the learnable ``alpha`` of shape (Lambda, C); ``HPowConv``: the per-sample exponents of the current
forward, (N, Lambda, C)). The penalty of one module is::

    l1 * sum |alpha| + l2 * sum alpha^2                 (per-sample exponents: averaged over the N samples)

and ``loss_alpha`` is the sum over modules. mmengine's ``parse_losses`` adds every ``loss*`` entry to the total
loss, so the penalty is trained and logged as its own line. It is attached with a forward hook on the (unwrapped,
so DDP works) model that appends the entry to the output of ``forward(..., mode='loss')``, the call every
``BaseModel.train_step`` makes; other modes are untouched.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch.nn as nn
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import Tensor

from ...ops.quantize import ALPHA_MAX, ALPHA_MIN


def exponent_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` for every module of ``model`` (unwrapped from DDP & co.) that has learnable exponents."""
    if is_model_wrapper(model):
        model = model.module
    return [(name, m) for name, m in model.named_modules() if callable(getattr(m, 'exponents', None))]


def alpha_penalty(modules: Sequence[nn.Module], l1: float, l2: float) -> Optional[Tensor]:
    """``sum over modules of l1 * sum|alpha| + l2 * sum alpha^2`` (per-sample exponents averaged over samples).

    Returns None when no module has exponents yet (an ``HPowConv`` before its first forward).
    """
    total = None
    for m in modules:
        alpha = m.exponents()
        if alpha is None:
            continue
        alpha = alpha.float()
        per_sample = alpha.dim() == 3  # (N, Lambda, C)
        scale = 1.0 / alpha.shape[0] if per_sample else 1.0
        term = (l1 * alpha.abs().sum() + l2 * alpha.square().sum()) * scale
        total = term if total is None else total + term
    return total


def _forward_mode(args: tuple, kwargs: dict) -> str:
    # mmengine models: forward(inputs, data_samples=None, mode='tensor'); train_step passes mode as a keyword.
    if 'mode' in kwargs:
        return kwargs['mode']
    return args[2] if len(args) > 2 else 'tensor'


@HOOKS.register_module()
class AlphaRegularizationHook(Hook):
    """Add ``loss_name`` (default ``loss_alpha``) = L1/L2 penalty on all exponents to the model's loss dict.

    Args:
        l1: lasso coefficient (>= 0).
        l2: ridge coefficient (>= 0). At least one of them must be > 0.
        loss_name: key of the entry; must start with ``loss`` so mmengine sums it into the total loss.
    """

    priority = 'NORMAL'

    def __init__(self, l1: float = 0.0, l2: float = 0.0, loss_name: str = 'loss_alpha'):
        for name, value in (('l1', l1), ('l2', l2)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f'AlphaRegularizationHook: {name} must be a number >= 0, got {value!r}')
        if l1 == 0 and l2 == 0:
            raise ValueError('AlphaRegularizationHook: l1 and l2 are both 0, the hook would do nothing; set l1 and/or '
                             'l2 > 0 (e.g. l1=1e-4, l2=1e-4) or remove the hook')
        if not isinstance(loss_name, str) or not loss_name.startswith('loss'):
            raise ValueError(f"AlphaRegularizationHook: loss_name must start with 'loss' (mmengine only sums such "
                             f'entries into the total loss), got {loss_name!r}')
        self.l1, self.l2, self.loss_name = float(l1), float(l2), loss_name
        self._handle = None
        self._modules: List[nn.Module] = []

    def attach(self, model: nn.Module) -> None:
        """Start adding the penalty to ``model``'s ``mode='loss'`` outputs (DDP-style wrappers are unwrapped)."""
        found = exponent_modules(model)
        if not found:
            raise RuntimeError(f'AlphaRegularizationHook: {type(model).__name__} has no module with exponents '
                               f'(PowConv, HPowConv, SFPowConv); quantize the model or remove the hook')
        self.detach()
        self._modules = [m for _, m in found]
        inner = model.module if is_model_wrapper(model) else model
        self._handle = inner.register_forward_hook(self._add_penalty, with_kwargs=True)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _add_penalty(self, module: nn.Module, args: tuple, kwargs: dict, output):
        if _forward_mode(args, kwargs) != 'loss' or not isinstance(output, dict):
            return output
        if self.loss_name in output:
            raise KeyError(f'AlphaRegularizationHook: the model already returns a {self.loss_name!r} loss; choose '
                           f'another loss_name')
        penalty = alpha_penalty(self._modules, self.l1, self.l2)
        if penalty is not None:
            output = dict(output)
            output[self.loss_name] = penalty
        return output

    def before_train(self, runner) -> None:
        self.attach(runner.model)

    def after_train(self, runner) -> None:
        self.detach()


def alpha_statistics(modules: Sequence[Tuple[str, nn.Module]], bins: int = 24,
                     value_range: Tuple[float, float] = (ALPHA_MIN, ALPHA_MAX)) -> Dict:
    """Mean/std/min/max, a histogram, and how many sit at a bound of [ALPHA_MIN, ALPHA_MAX] (``at_min``: <= -1,
    ``at_max``: >= 5, ``at_bound``: both) of the exponents, for all layers together (``'all'``) and per layer."""
    edges = np.linspace(value_range[0], value_range[1], bins + 1)

    def summary(values: np.ndarray) -> Dict:
        counts, _ = np.histogram(np.clip(values, value_range[0], value_range[1]), bins=edges)
        # at (or, without AlphaProjectionHook, beyond) a bound of the valid range: the op clamps them there
        at_min, at_max = int((values <= ALPHA_MIN).sum()), int((values >= ALPHA_MAX).sum())
        return dict(mean=float(values.mean()), std=float(values.std()), min=float(values.min()),
                    max=float(values.max()), count=int(values.size), at_min=at_min, at_max=at_max,
                    at_bound=at_min + at_max, hist=counts.tolist())

    layers, pooled = {}, []
    for name, m in modules:
        alpha = m.exponents()
        if alpha is None:
            continue
        values = alpha.detach().float().cpu().numpy().ravel()
        layers[name] = summary(values)
        pooled.append(values)
    if not pooled:
        return dict(edges=edges.tolist(), layers={})
    return dict(edges=edges.tolist(), all=summary(np.concatenate(pooled)), layers=layers)


@HOOKS.register_module()
class AlphaStatsHook(Hook):
    """Every ``interval`` training iterations, record the learned exponents (cf. the paper's supplementary analysis).

    - scalars ``train/alpha_mean``, ``train/alpha_std``, ``train/alpha_min``, ``train/alpha_max`` and
      ``train/alpha_at_bound`` (how many sit at -1 or 5; all layers pooled) go to the message hub, hence to the text
      log and every visualizer backend (TensorBoard, ...); when some sit at a bound, a log line gives them per layer;
    - the full record (per-layer mean/std/min/max, ``at_min``/``at_max``/``at_bound`` counts and a ``bins``-bin
      histogram over [-1, 5], plus the pooled one)
      is appended as one JSON line, with the iteration, to ``<log_dir>/<out_file>`` (by rank 0 only) and stored in the message hub's
      info under ``alpha_stats``.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL), so the scalars are in this iteration's log line

    def __init__(self, interval: int = 50, bins: int = 24, out_file: str = 'alpha_stats.jsonl'):
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f'AlphaStatsHook: interval must be a positive int, got {interval!r}')
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f'AlphaStatsHook: bins must be a positive int, got {bins!r}')
        self.interval, self.bins, self.out_file = interval, bins, out_file
        self._modules: List[Tuple[str, nn.Module]] = []

    def before_train(self, runner) -> None:
        self._modules = exponent_modules(runner.model)
        if not self._modules:
            raise RuntimeError(f'AlphaStatsHook: {type(runner.model).__name__} has no module with exponents '
                               f'(PowConv, HPowConv, SFPowConv); quantize the model or remove the hook')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            return
        stats = alpha_statistics(self._modules, self.bins)
        if 'all' not in stats:
            return
        for key in ('mean', 'std', 'min', 'max', 'at_bound'):
            runner.message_hub.update_scalar(f'train/alpha_{key}', stats['all'][key])
        if stats['all']['at_bound']:
            layers = ', '.join(f"{name} {row['at_min']} at {ALPHA_MIN} / {row['at_max']} at {ALPHA_MAX}"
                               for name, row in stats['layers'].items() if row['at_bound'])
            runner.logger.info(f"AlphaStatsHook: {stats['all']['at_bound']} of {stats['all']['count']} exponents at "
                               f'a bound of [{ALPHA_MIN}, {ALPHA_MAX}]: {layers}')
        record = dict(iter=runner.iter + 1, **stats)
        runner.message_hub.update_info('alpha_stats', record)
        if runner.rank == 0:  # the ranks share the log dir; their exponents are equal (DDP keeps replicas in sync)
            with open(osp.join(runner.log_dir, self.out_file), 'a') as f:
                f.write(json.dumps(record) + '\n')
