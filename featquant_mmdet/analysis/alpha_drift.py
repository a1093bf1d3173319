"""Can the exponents move? Their per-step change under a config's optimizer, from one real backward pass.

For a config (and optionally a checkpoint, as ``load_from`` loads it), one training batch of the config's own
train pipeline (sampler and augmentations seeded, torch seeded again before the forward) goes through the model
exactly as ``train_step`` sends it (data preprocessor, ``mode='loss'``,
``parse_losses``, plus the config's ``AlphaRegularizationHook`` penalty), and the loss is backpropagated once. With
the built optimizer's parameter groups (SGD: lr, momentum mu, weight decay wd; the lr scaled as ``auto_scale_lr``
would for one process) and the config's gradient-norm clipping (factor ``c = min(1, max_norm / (||g||_total +
1e-6))``, as ``clip_grad_norm_``), the first SGD step of a parameter p with gradient g is::

    delta(p) = lr * (c * g + wd * p)                  (per exponent: lr = base lr * lr_mult of '.alpha')
    bound(p) = lr / (1 - mu) * |c * g + wd * p|       (momentum's steady state when every step pushes the same way)

Per layer with exponents the report gives |delta| of its exponents (mean, max), the momentum bound, and next to
them the relative change of the layer's conv weight ``||delta(W)|| / ||W||`` (same formulas), ``lr_mult`` (the
exponents' lr over the weight's) and ``parity_lr_mult = (||delta(W)|| / ||W||) / (lr_W * mean |c g + wd alpha|)``, the
multiplier at which a mean exponent step (alpha's natural scale is 1) equals the weight's relative step. The largest
drift over
the configured schedule assumes the same gradient at every step::

    drift = max over exponents of bound(alpha) * sum_t lr_t / lr_0

over ``T = max_iters`` (iteration-based loops) or ``max_epochs * len(train_dataloader)`` steps, the lr factors
``lr_t / lr_0`` taken from the config's ``param_scheduler`` (epoch-based ones converted to iterations as the Runner
does). It bounds how far alpha can walk in that run only as long as the gradients keep the first batch's magnitude:
they rarely keep their sign (the real walk is shorter), but their size changes as training goes (in ZF-POW-1
pretraining on generated data they grow: an exponent moved 0.54 where the estimate from the initial gradient said
0.33, docs/alpha.md). Read it as an order of magnitude: compare it with the width 6 of the valid range [-1, 5] and
with the change needed to matter (alpha = -0.5 maps 0.01 -> 0.1). ``parity_lr_mult`` is the steadier number.
"""
import copy
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

DRIFT_COLUMNS = ('layer', 'count', 'lr', 'lr_mult', 'momentum', 'grad_abs_mean', 'grad_abs_max', 'step_mean',
                 'step_max', 'bound_mean', 'bound_max', 'weight_rel_step', 'weight_rel_bound', 'parity_lr_mult',
                 'schedule_drift_max')


def first_train_batch(cfg, seed: int = 0, batch_size: Optional[int] = None):
    """The first batch of the config's train dataloader (its pipeline, sampler seeded with ``seed``, no workers),
    and the number of iterations per epoch of that loader."""
    from mmengine.runner import Runner
    from mmengine.runner.utils import set_random_seed
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    loader_cfg.pop('prefetch_factor', None)
    if batch_size is not None:
        loader_cfg['batch_size'] = batch_size
    set_random_seed(seed)  # random augmentations of the pipeline
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    return next(iter(loader)), len(loader)


def schedule_lr_factors(cfg, iters_per_epoch: int) -> np.ndarray:
    """``lr_t / lr_0`` for every training iteration of the config's schedule (its ``param_scheduler``)."""
    from mmengine.registry import PARAM_SCHEDULERS
    train_cfg = cfg.train_cfg
    by_epoch = 'max_epochs' in train_cfg or train_cfg.get('type', '') == 'EpochBasedTrainLoop'
    total = int(train_cfg['max_epochs']) * iters_per_epoch if by_epoch else int(train_cfg['max_iters'])
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler_cfgs = cfg.get('param_scheduler') or []
    if isinstance(scheduler_cfgs, dict):
        scheduler_cfgs = [scheduler_cfgs]
    schedulers = []
    for s in scheduler_cfgs:
        s = copy.deepcopy(dict(s))
        if s.get('by_epoch', True):
            s['convert_to_iter_based'] = True
        schedulers.append(PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optimizer,
                                                                       epoch_length=iters_per_epoch)))
    factors = np.empty(total)
    for t in range(total):
        factors[t] = optimizer.param_groups[0]['lr']
        for s in schedulers:
            s.step()
    return factors


def _group_of(optimizer: torch.optim.Optimizer) -> Dict[int, dict]:
    return {id(p): g for g in optimizer.param_groups for p in g['params']}


def _sgd_step(p: torch.Tensor, group: dict, lr_scale: float, clip: float) -> Tuple[torch.Tensor, float, float]:
    """(|c g + wd p| per element, lr, momentum) of parameter ``p`` in its SGD group."""
    direction = clip * p.grad.detach().float() + group.get('weight_decay', 0.0) * p.detach().float()
    return direction.abs(), float(group['lr']) * lr_scale, float(group.get('momentum', 0.0))


def alpha_drift_report(cfg, checkpoint: Optional[str] = None, seed: int = 0,
                       batch_size: Optional[int] = None) -> Tuple[Optional[List[Dict]], Dict]:
    """The table (one row per layer with learnable exponents; module doc) and the run's facts (``info``).

    Returns ``(None, info)`` with ``info['note']`` for a model without learnable exponents (nothing to report).
    """
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from ..engine.hooks.alpha_hooks import AlphaRegularizationHook
    from ..engine.hooks.alpha_projection import exponent_parameters

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = checkpoint or cfg.get('load_from')
    if checkpoint:  # as the Runner's load_from: non-strict, over the initialised weights
        load_checkpoint(model, checkpoint, map_location='cpu', strict=False, revise_keys=[(r'^module\.', '')])
    exps = exponent_parameters(model)
    info = dict(checkpoint=checkpoint, seed=seed)
    if not exps:
        info['note'] = ('the model has no learnable exponents (no PowConv/SFPowConv layer): nothing to report '
                        '(HPowConv exponents come from a hypernetwork and have no lr of their own)')
        return None, info
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optimizer_type = optim_cfg['optimizer']['type']
    if optimizer_type != 'SGD':
        raise ValueError(f'alpha drift report: the step formulas are SGD\'s; the config uses {optimizer_type}')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    batch, iters_per_epoch = first_train_batch(cfg, seed, batch_size)
    num_images = len(batch['inputs'])
    lr_scale = 1.0
    auto = cfg.get('auto_scale_lr') or {}
    if auto.get('enable', False):
        lr_scale = num_images / auto['base_batch_size']  # the Runner's scale_lr, one process

    model.train()
    penalty_hooks = [AlphaRegularizationHook(**{k: v for k, v in h.items() if k != 'type'})
                     for h in cfg.get('custom_hooks') or [] if h.get('type') == 'AlphaRegularizationHook']
    for hook in penalty_hooks:
        hook.attach(model)
    try:
        torch.manual_seed(seed)  # dropout & co. of the forward
        data = model.data_preprocessor(batch, True)
        losses = model._run_forward(data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
    finally:
        for hook in penalty_hooks:
            hook.detach()

    groups = _group_of(optim_wrapper.optimizer)
    params = [p for g in optim_wrapper.optimizer.param_groups for p in g['params'] if p.grad is not None]
    total_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach().float())
                                                             for p in params])))
    clip_cfg = optim_cfg.get('clip_grad') or {}
    clip = 1.0
    if clip_cfg:
        if clip_cfg.get('type', 'norm') != 'norm' or clip_cfg.get('norm_type', 2) != 2:
            raise ValueError(f'alpha drift report: only L2-norm gradient clipping is modelled, got {clip_cfg}')
        clip = min(1.0, float(clip_cfg['max_norm']) / (total_norm + 1e-6))
    factors = schedule_lr_factors(cfg, iters_per_epoch)
    lr_sum = float(factors.sum())

    table = []
    for name, module, alpha in exps:
        if id(alpha) not in groups or alpha.grad is None:
            continue
        direction, lr, mu = _sgd_step(alpha, groups[id(alpha)], lr_scale, clip)
        step = lr * direction
        bound = step / (1.0 - mu)
        w = module.weight
        w_dir, w_lr, w_mu = _sgd_step(w, groups[id(w)], lr_scale, clip)
        w_norm = float(torch.linalg.vector_norm(w.detach().float()))
        w_rel = w_lr * float(torch.linalg.vector_norm(w_dir)) / w_norm
        grad = alpha.grad.detach().float().abs()
        table.append(dict(layer=name, count=alpha.numel(), lr=lr, lr_mult=lr / w_lr if w_lr > 0 else math.nan,
                          momentum=mu,
                          grad_abs_mean=float(grad.mean()), grad_abs_max=float(grad.max()),
                          step_mean=float(step.mean()), step_max=float(step.max()),
                          bound_mean=float(bound.mean()), bound_max=float(bound.max()),
                          weight_rel_step=w_rel, weight_rel_bound=w_rel / (1.0 - w_mu),
                          parity_lr_mult=w_rel / (w_lr * float(direction.mean())) if direction.max() > 0 else math.inf,
                          schedule_drift_max=float(bound.max()) * lr_sum))
    info.update(images=num_images, loss=loss.item(), grad_total_norm=total_norm, clip_factor=clip,
                lr_scale=lr_scale, iterations=len(factors), lr_factor_sum=lr_sum,
                drift_max=max(r['schedule_drift_max'] for r in table))
    return table, info


def format_drift_table(table: List[Dict], info: Dict) -> str:
    lines = [f"one backward pass on {info['images']} training images (seed {info['seed']}"
             + (f", checkpoint {info['checkpoint']}" if info['checkpoint'] else ', initial weights') + '): '
             f"loss {info['loss']:.4g}, gradient norm {info['grad_total_norm']:.4g}, clip factor "
             f"{info['clip_factor']:.4g}, lr scale (auto_scale_lr) {info['lr_scale']:.4g}; schedule: "
             f"{info['iterations']} iterations, sum of lr factors {info['lr_factor_sum']:.6g}", '',
             '| ' + ' | '.join(DRIFT_COLUMNS) + ' |', '|---|' + '---:|' * (len(DRIFT_COLUMNS) - 1)]
    for row in table:
        lines.append(f"| {row['layer']} | {row['count']} | " + ' | '.join(f'{row[c]:.4g}' for c in DRIFT_COLUMNS[2:])
                     + ' |')
    drift = info['drift_max']
    lines += ['', f'largest drift of an exponent over the schedule (the first batch\'s gradient at every step, all '
              f'pushing the same way): {drift:.4g} ({100 * drift / 6:.3g} % of the width of the valid range [-1, 5])']
    return '\n'.join(lines)
