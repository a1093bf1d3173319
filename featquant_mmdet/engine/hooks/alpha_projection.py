"""Keep the learnable exponents valid during training: a projection onto [-1, 5] after every optimizer step, and a
check of their learning-rate multiplier in the built optimizer.

Config use (``configs/_base_/alpha_regularization.py`` adds it to every POW / SF-POW config)::

    custom_hooks = [dict(type='AlphaProjectionHook')]
    optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.alpha': dict(lr_mult=10.0, decay_mult=0.0)}))

Projection (projected SGD): after each ``optimizer.step()`` every stored exponent is clamped in place::

    alpha <- min(max(alpha, ALPHA_MIN), ALPHA_MAX)          [ALPHA_MIN, ALPHA_MAX] = [-1, 5]

Inside the range this changes nothing, so the step, hence the gradient of eq. 6, is untouched; an exponent that a
step pushes past a bound stays exactly at it, where the op's clamp still passes the gradient back (``torch.clamp``
is differentiable at its bounds), so it can move back in. Without the projection an exponent past -1 is clamped
only where it is used, receives no gradient any more and is dead (issue 15). The alternative, a reparametrisation
``alpha = -1 + 6 sigmoid(z)``, keeps alpha in range too but scales every gradient by ``6 s (1 - s)`` (0.83 at
alpha = 0, towards 0 near both bounds) and renames the parameter in checkpoints, so eq. 6 no longer holds inside
the range; see docs/alpha.md for the measurements.

The projection runs as a step post-hook of the real torch optimizer (``register_step_post_hook``), so it follows
every step, whoever calls it (gradient accumulation, AMP's skipped steps included), and before any
``after_train_iter`` hook sees the parameters. The number of exponents projected during an iteration is logged as
``train/alpha_projected``; ``AlphaStatsHook`` reports how many sit at a bound.

Learning-rate multiplier: in ``before_train`` the parameter group of every exponent is looked up in the built
optimizer; its learning rate divided by that of its convolution's weight (the multiplier mmengine's
``custom_keys['.alpha'].lr_mult`` sets, whatever ``auto_scale_lr`` or a scheduler did to both) must be a finite
number >= 0 (0 freezes the exponents). Anything else is refused before the first step.
"""
import math
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...ops.quantize import ALPHA_MAX, ALPHA_MIN

LR_MULT_RANGE = 'a finite number >= 0 (0 freezes the exponents)'
LR_MULT_KEY = "optim_wrapper.paramwise_cfg.custom_keys['.alpha'].lr_mult"


def exponent_parameters(model: nn.Module) -> List[Tuple[str, nn.Module, nn.Parameter]]:
    """``(module name, module, alpha)`` for every module holding learnable exponents as a parameter ``alpha``
    (PowConv, SFPowConv). HPowConv computes its exponents per sample and has none."""
    if is_model_wrapper(model):
        model = model.module
    found = []
    for name, m in model.named_modules():
        alpha = getattr(m, 'alpha', None)
        if callable(getattr(m, 'exponents', None)) and isinstance(alpha, nn.Parameter):
            found.append((name, m, alpha))
    return found


@torch.no_grad()
def project_exponents(alphas) -> int:
    """Clamp every tensor of ``alphas`` in place into [ALPHA_MIN, ALPHA_MAX]; return how many values changed."""
    changed = 0
    for alpha in alphas:
        count = int(((alpha < ALPHA_MIN) | (alpha > ALPHA_MAX)).sum())
        if count:
            alpha.clamp_(ALPHA_MIN, ALPHA_MAX)
            changed += count
    return changed


def _optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    """The torch optimizers of an ``OptimWrapper`` or an ``OptimWrapperDict``."""
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    return [optim_wrapper.optimizer]


def exponent_lr_multipliers(optim_wrapper, model: nn.Module) -> Dict[str, Dict[str, float]]:
    """For every learnable exponent parameter in the optimizer: ``{'<module>.alpha': dict(lr, weight_lr, lr_mult)}``.

    ``lr`` is the learning rate of the exponent's parameter group, ``weight_lr`` that of its convolution's weight and
    ``lr_mult = lr / weight_lr`` (NaN when ``weight_lr`` is 0). Exponents that no optimizer holds are left out.
    """
    group_of = {}
    for optimizer in _optimizers(optim_wrapper):
        for group in optimizer.param_groups:
            for p in group['params']:
                group_of[id(p)] = group
    found = {}
    for name, module, alpha in exponent_parameters(model):
        group = group_of.get(id(alpha))
        if group is None:
            continue
        lr = float(group['lr'])
        weight_group = group_of.get(id(module.weight))
        weight_lr = float(weight_group['lr']) if weight_group is not None else float('nan')
        lr_mult = lr / weight_lr if math.isfinite(weight_lr) and weight_lr > 0 else float('nan')
        found[f'{name}.alpha' if name else 'alpha'] = dict(lr=lr, weight_lr=weight_lr, lr_mult=lr_mult)
    return found


def check_lr_mult(value, name: str = LR_MULT_KEY) -> float:
    """Return ``value`` as a float when it is a finite number >= 0, else raise ``ValueError`` naming the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f'{name} must be {LR_MULT_RANGE}, got {value!r}')
    return float(value)


def check_exponent_lrs(optim_wrapper, model: nn.Module, cfg=None) -> Dict[str, Dict[str, float]]:
    """Refuse a configured or built exponent learning-rate multiplier outside the valid range (see module doc).

    ``cfg`` (the runner's config, optional) is read first so that the message names the configured value; the built
    optimizer's groups are then checked whatever set them.
    """
    if cfg is not None:
        custom = (((cfg.get('optim_wrapper') or {}).get('paramwise_cfg') or {}).get('custom_keys') or {})
        if '.alpha' in custom and 'lr_mult' in custom['.alpha']:
            check_lr_mult(custom['.alpha']['lr_mult'])
    found = exponent_lr_multipliers(optim_wrapper, model)
    for name, row in found.items():
        if not (math.isfinite(row['lr']) and row['lr'] >= 0):
            raise ValueError(f'{LR_MULT_KEY} must be {LR_MULT_RANGE}: the optimizer gives {name} the learning rate '
                             f"{row['lr']!r} (its conv weight: {row['weight_lr']!r})")
        if math.isfinite(row['lr_mult']):
            check_lr_mult(row['lr_mult'], f'{LR_MULT_KEY} (built optimizer, {name})')
    return found


@HOOKS.register_module()
class AlphaProjectionHook(Hook):
    """Project the learnable exponents onto [-1, 5] after every optimizer step; check their lr multiplier first.

    Args:
        log_projected: also log ``train/alpha_projected``, the number of exponents the projection moved during the
            iteration (0 when all stayed inside).
    """

    priority = 'ABOVE_NORMAL'  # its before_train check runs before the other alpha hooks

    def __init__(self, log_projected: bool = True):
        self.log_projected = bool(log_projected)
        self._alphas: List[nn.Parameter] = []
        self._handles = []
        self.projected_in_iter = 0
        self.projected_total = 0
        self.lr_multipliers: Dict[str, Dict[str, float]] = {}

    def _after_step(self, optimizer, args, kwargs) -> None:
        count = project_exponents(self._alphas)
        self.projected_in_iter += count
        self.projected_total += count

    def attach(self, optim_wrapper, model: nn.Module) -> None:
        """Register the projection as a post-step hook of every torch optimizer of ``optim_wrapper``."""
        self.detach()
        self._alphas = [alpha for _, _, alpha in exponent_parameters(model)]
        self._handles = [opt.register_step_post_hook(self._after_step) for opt in _optimizers(optim_wrapper)]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before_train(self, runner) -> None:
        self.lr_multipliers = check_exponent_lrs(runner.optim_wrapper, runner.model, getattr(runner, 'cfg', None))
        if self.lr_multipliers:
            mults = sorted({round(r['lr_mult'], 6) for r in self.lr_multipliers.values()})
            runner.logger.info(f'AlphaProjectionHook: {len(self.lr_multipliers)} exponent parameters, lr multiplier '
                               f'(against their conv weights) {mults}; projected onto [{ALPHA_MIN}, {ALPHA_MAX}] '
                               'after every optimizer step')
        self.attach(runner.optim_wrapper, runner.model)
        # an exponent loaded from a checkpoint outside the range is projected before the first forward, loudly
        count = project_exponents(self._alphas)
        if count:
            runner.logger.warning(f'AlphaProjectionHook: {count} exponents were outside [{ALPHA_MIN}, {ALPHA_MAX}] '
                                  'at the start of training and were clamped onto the range')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.projected_in_iter = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.log_projected and self._alphas:
            runner.message_hub.update_scalar('train/alpha_projected', self.projected_in_iter)

    def after_train(self, runner) -> None:
        self.detach()
        if self._alphas:
            runner.logger.info(f'AlphaProjectionHook: {self.projected_total} exponent updates were projected onto '
                               f'[{ALPHA_MIN}, {ALPHA_MAX}] during training')
