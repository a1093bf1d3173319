"""The learned exponents of a trained checkpoint: their distribution per layer (histograms and a summary table).

A POW layer maps its input with ``psi(x, alpha) = sign(x) |x|^(alpha + 1)`` (eq. 5): ``alpha < 0`` compresses
(quasi-quantization, stronger the closer alpha is to -1), ``alpha = 0`` is the identity, ``alpha > 0`` expands.

Sources of exponents:
- ``PowConv`` / ``SFPowConv``: the learnable parameter (Lambda, C), read from the state dict. Without a config,
  every state-dict entry named like that parameter is taken; with a config, the model is built, the checkpoint
  loaded strictly, and the layers are found by type.
- ``HPowConv``: the exponents are computed per image by the hypernetwork (eq. 7), so they exist only for images;
  with a config and ``num_images > 0`` the test images are run and every image's exponents are summarised as they
  arrive (``exponent_stats.StreamedExponents``: memory independent of the number of images; quantiles within 1e-4).
"""
import math
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn

from .exponent_stats import StreamedExponents
from .report_files import finish_figure

SUMMARY_COLUMNS = ('count', 'nonfinite', 'mean', 'std', 'min', 'p05', 'median', 'p95', 'max', 'frac_negative',
                   'frac_clamped', 'std_images')


def exponent_parameter_names() -> List[str]:
    """Names of the parameters ``PowConv`` adds to ``nn.Conv2d`` (its exponents), read off the layer itself."""
    from ..layers.quant_conv import PowConv
    plain = {name for name, _ in nn.Conv2d(1, 1, 1).named_parameters()}
    return sorted({name for name, _ in PowConv(1, 1, 1).named_parameters()} - plain)


def exponents_from_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``{layer name: exponents}`` for every state-dict entry named like PowConv's exponent parameter."""
    names = exponent_parameter_names()
    found = {}
    for key, value in state_dict.items():
        layer, _, param = key.rpartition('.')
        if param in names and torch.is_tensor(value) and value.is_floating_point():
            found[layer] = value.detach().float().cpu()
    return found


def exponents_from_model(model: nn.Module) -> Dict[str, Optional[torch.Tensor]]:
    """``{layer name: exponents}`` of every module with learnable exponents; None for data-dependent ones (HPOW)."""
    from ..engine.hooks.alpha_hooks import exponent_modules
    from ..layers.quant_conv import HPowConv
    return {name: None if isinstance(m, HPowConv) else m.exponents().detach().float().cpu()
            for name, m in exponent_modules(model)}


@torch.no_grad()
def collect_hyper_exponents(model: nn.Module, dataloader, num_images: int) -> Dict[str, StreamedExponents]:
    """Run ``num_images`` test images and summarise the per-image exponents (N, Lambda, C) of every ``HPowConv`` as
    they arrive (:class:`StreamedExponents`: memory independent of ``num_images``)."""
    from ..layers.quant_conv import HPowConv
    layers = {name: m for name, m in model.named_modules() if isinstance(m, HPowConv)}
    collected = {name: StreamedExponents() for name in layers}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: collected[name].add(mod.exponents()))
               for name, m in layers.items()]
    model.eval()
    seen = 0
    try:
        for batch in dataloader:
            if seen >= num_images:
                break
            data = model.data_preprocessor(batch, False)
            inputs = data['inputs'][:num_images - seen]
            samples = data.get('data_samples')
            model(inputs, samples[:num_images - seen] if samples is not None else None, mode='tensor')
            seen += inputs.shape[0]
    finally:
        for h in handles:
            h.remove()
    return {name: stats for name, stats in collected.items() if stats.images}


def summarize_exponents(exponents: Dict[str, Union[torch.Tensor, StreamedExponents]]) -> Dict[str, Dict[str, float]]:
    """Per layer (and ``'all layers'`` pooled): count, how many are NaN/Inf (a diverged model), and over the finite
    ones mean, std, min, 5/50/95 % quantiles, max, the fraction below 0 (compressing maps), the fraction outside
    [-1, 5] (clamped by the forward) and ``std_images``, the per-sample spread of per-image exponents (N, Lambda, C)
    (HPOW): the std over the N images of each (portion, channel) exponent, averaged over them (NaN for learned
    exponents, which every image shares; ``std`` mixes channels and images)."""
    from ..ops.quantize import ALPHA_MAX, ALPHA_MIN
    if not exponents:
        raise ValueError('no exponents to summarise')

    def summary(all_values: np.ndarray) -> Dict[str, float]:
        values = all_values[np.isfinite(all_values)]
        if values.size == 0:
            nan = float('nan')
            return dict(count=int(all_values.size), nonfinite=int(all_values.size),
                        **{c: nan for c in SUMMARY_COLUMNS[2:-1]})
        return dict(count=int(all_values.size), nonfinite=int(all_values.size - values.size),
                    mean=float(values.mean()), std=float(values.std()),
                    min=float(values.min()), p05=float(np.quantile(values, 0.05)),
                    median=float(np.median(values)), p95=float(np.quantile(values, 0.95)), max=float(values.max()),
                    frac_negative=float((values < 0).mean()),
                    frac_clamped=float(((values < ALPHA_MIN) | (values > ALPHA_MAX)).mean()))

    def image_spread(t: torch.Tensor) -> Optional[np.ndarray]:
        """Per (portion, channel) the std over images, of the entries finite in every image."""
        if t.dim() != 3 or t.shape[0] < 2:
            return None
        values = t.numpy().astype(np.float64).reshape(t.shape[0], -1)
        return values[:, np.isfinite(values).all(0)].std(0)

    if any(isinstance(v, StreamedExponents) for v in exponents.values()):
        # HPOW layers summarised on images (exact but for the quantiles, within 1e-4: exponent_stats); the pooled
        # row from the streamed layers and the learned ones, added as one sample each
        table = {name: v.summary() if isinstance(v, StreamedExponents) else summarize_exponents({name: v})[name]
                 for name, v in exponents.items()}
        if len(exponents) > 1:
            pooled = StreamedExponents.pooled([v if isinstance(v, StreamedExponents) else _as_streamed(v)
                                               for v in exponents.values()])
            if not all(isinstance(v, StreamedExponents) for v in exponents.values()):
                pooled.spreads = np.zeros(0)  # learned exponents are shared by all images: no per-image spread
            table['all layers'] = pooled.summary()
        return table
    arrays = {name: t.numpy().ravel().astype(np.float64) for name, t in exponents.items()}
    spreads = {name: image_spread(t) for name, t in exponents.items()}
    table = {name: summary(v) for name, v in arrays.items()}
    if len(arrays) > 1:
        table['all layers'] = summary(np.concatenate(list(arrays.values())))
        per_layer = list(spreads.values())
        spreads['all layers'] = None if any(v is None for v in per_layer) else np.concatenate(per_layer)
    for name, row in table.items():
        spread = spreads[name]
        row['std_images'] = float(spread.mean()) if spread is not None and spread.size else float('nan')
    return table


def _as_streamed(t: torch.Tensor) -> StreamedExponents:
    out = StreamedExponents()
    out.add(t if t.dim() == 3 else t.reshape(1, -1))
    return out


def format_exponent_table(table: Dict[str, Dict[str, float]]) -> str:
    lines = ['| layer | ' + ' | '.join(SUMMARY_COLUMNS) + ' |', '|---|' + '---:|' * len(SUMMARY_COLUMNS)]
    for name, row in table.items():
        cells = [str(row['count']), str(row['nonfinite'])] + [f'{row[c]:.4f}' for c in SUMMARY_COLUMNS[2:]]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_exponent_csv(table: Dict[str, Dict[str, float]], path: str) -> None:
    import csv
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['layer', *SUMMARY_COLUMNS])
        for name, row in table.items():
            writer.writerow([name, *[repr(row[c]) for c in SUMMARY_COLUMNS]])


def plot_exponent_histograms(exponents: Dict[str, Union[torch.Tensor, StreamedExponents]], path: str, bins: int = 40,
                             title: str = '') -> None:
    """One histogram panel per layer, with the identity exponent 0 marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(exponents)
    cols = min(len(names), 4)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        source = exponents[name]
        if isinstance(source, StreamedExponents):
            n = source.count - source.nonfinite
            counts, edges = source.coarse_histogram(bins) if n else (None, None)
            mean = source.summary()['mean']
        else:
            values = source.numpy().ravel()
            values = values[np.isfinite(values)]
            n, mean = values.size, float(values.mean()) if values.size else float('nan')
            counts, edges = np.histogram(values, bins) if n else (None, None)
        if n == 0:
            ax.set_title(f'{name}\nno finite value', fontsize=9)
            continue
        ax.stairs(counts, edges, fill=True, color='tab:blue')
        ax.axvline(0.0, color='k', lw=0.8, ls='--')
        ax.set_title(f'{name}\nmean {mean:.3f}, n={n}', fontsize=9)
        ax.set_xlabel('alpha (psi = sign(x) |x|^(alpha+1))', fontsize=8)
        ax.tick_params(labelsize=7)
    finish_figure(fig, axes, len(names), title, path)


def load_exponents(checkpoint: str, cfg=None, num_images: int = 0) -> Dict[str, Union[torch.Tensor, StreamedExponents]]:
    """The exponents of ``checkpoint``: from its state dict alone, or (with ``cfg``) from the strictly loaded model,
    including HPOW layers' per-image exponents on ``num_images`` test images."""
    from ..loading import build_model, read_state_dict
    from .feature_moments import build_test_dataloader
    if cfg is None:
        found = exponents_from_state_dict(read_state_dict(checkpoint))
        if not found:
            raise ValueError(f'{checkpoint} has no learned exponents (no parameter named '
                             f'{exponent_parameter_names()}, as PowConv/SFPowConv store them); HPOW exponents are '
                             'data-dependent: give the config and --num-images')
        return found
    model = build_model(cfg, checkpoint)
    found = exponents_from_model(model)
    if not found:
        raise ValueError('the model of the config has no layer with exponents (PowConv, SFPowConv, HPowConv)')
    hyper = [name for name, v in found.items() if v is None]
    if hyper:
        if num_images < 1:
            raise ValueError(f'HPowConv layers {hyper} compute their exponents per image; give --num-images N to '
                             'collect them on N test images')
        found.update(collect_hyper_exponents(model, build_test_dataloader(cfg), num_images))
    return found
