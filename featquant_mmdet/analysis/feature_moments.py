"""Shift of feature distributions between clean and distorted images (Figure 1 of the paper).

Forward hooks sample the outputs of chosen layers (by default every convolution of the backbone) while the same test
images are run clean and distorted. Per layer it reports the moments of both activation samples,

    mean = E[x],  variance = E[(x - mean)^2],  skewness = E[(x - mean)^3] / variance^(3/2),
    kurtosis = E[(x - mean)^4] / variance^2 - 3      (population moments, Fisher's excess kurtosis, as scipy.stats),

and the Jensen-Shannon divergence between their histograms on shared bins p, q (natural log, so 0 <= JS <= ln 2):

    JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2,   m = (p + q) / 2.

Its uncertainty comes from the choice of images: the standard deviation of JS over bootstrap resamples of the images
(drawn with replacement, each image's clean and distorted values together, bins fixed), Efron's bootstrap.
"""
import copy
import math
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.runner import Runner
from torch import nn

from ..distortions.inject import inject_distortion
from ..distortions.levels import check_name, resolve_level
from ..loading import build_model

MOMENT_NAMES = ('mean', 'variance', 'skewness', 'kurtosis')


# --------------------------------------------------------------------------------------------- statistics (pure)
def moment_statistics(values: torch.Tensor) -> Dict[str, float]:
    """Mean, variance, skewness and excess kurtosis of all elements of ``values`` (computed in float64).

    Equal to ``np.mean``, ``np.var``, ``scipy.stats.skew`` and ``scipy.stats.kurtosis`` (their defaults); skewness and
    kurtosis are NaN for constant input, where they are undefined.
    """
    x = torch.as_tensor(values).detach().reshape(-1).to(torch.float64)
    if x.numel() == 0:
        raise ValueError('moment_statistics needs at least one value, got an empty tensor')
    if not torch.isfinite(x).all():
        raise ValueError('moment_statistics got non-finite values (inf or NaN)')
    mean = x.mean()
    centered = x - mean
    m2 = centered.pow(2).mean()
    m3 = centered.pow(3).mean()
    m4 = centered.pow(4).mean()
    # scipy treats a spread below float64 resolution of the mean as constant (skew/kurtosis undefined)
    constant = m2 <= (torch.finfo(torch.float64).eps * mean.abs()).pow(2)
    skew = float('nan') if constant else (m3 / m2.pow(1.5)).item()
    kurt = float('nan') if constant else (m4 / m2.pow(2) - 3.0).item()
    return {'mean': mean.item(), 'variance': m2.item(), 'skewness': skew, 'kurtosis': kurt}


def histogram_pair(a: torch.Tensor, b: torch.Tensor, bins: int = 100,
                   value_range: Optional[Tuple[float, float]] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Histograms of ``a`` and ``b`` on the same ``bins`` equal-width bins spanning both (or ``value_range``),
    normalised to probabilities. Returns ``(p, q, edges)`` (float64, ``edges`` has ``bins + 1`` entries)."""
    if bins < 1:
        raise ValueError(f'bins must be >= 1, got {bins}')
    a = torch.as_tensor(a).detach().reshape(-1).to(torch.float64)
    b = torch.as_tensor(b).detach().reshape(-1).to(torch.float64)
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError('histogram_pair needs two non-empty samples')
    if value_range is None:
        low = min(a.min().item(), b.min().item())
        high = max(a.max().item(), b.max().item())
    else:
        low, high = value_range
    if not high > low:  # both samples constant and equal: one bin around the value
        low, high = low - 0.5, low + 0.5
    edges = torch.linspace(low, high, bins + 1, dtype=torch.float64)
    p = torch.histc(a, bins=bins, min=low, max=high)
    q = torch.histc(b, bins=bins, min=low, max=high)
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError(f'no value of one sample lies in value_range {value_range}')
    return p / p.sum(), q / q.sum(), edges


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen-Shannon divergence (nats) between two discrete distributions on the same bins; in [0, ln 2]."""
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64)
    if p.shape != q.shape:
        raise ValueError(f'p and q must be histograms on the same bins, got shapes {tuple(p.shape)} and '
                         f'{tuple(q.shape)}')
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError('p and q must be non-negative with a positive sum')
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl_to_m(d):
        nz = d > 0  # 0 * log 0 = 0; where d > 0, m > 0 too
        return (d[nz] * (d[nz] / m[nz]).log()).sum()

    return float(min(max(0.5 * kl_to_m(p) + 0.5 * kl_to_m(q), 0.0), math.log(2)))


# --------------------------------------------------------------------------------------------- layers and hooks
def default_layer_names(model: nn.Module) -> List[str]:
    """Every ``nn.Conv2d`` (including the quantizing convs, its subclasses) of ``model.backbone``, or of the whole
    model when it has no backbone, in forward-definition order."""
    root = 'backbone' if isinstance(getattr(model, 'backbone', None), nn.Module) else ''
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and (not root or name.startswith(root + '.'))]
    if not names:
        raise ValueError(f'{type(model).__name__} has no Conv2d layer{" in its backbone" if root else ""}; '
                         'name the layers to hook explicitly')
    return names


def resolve_layers(model: nn.Module, names: Optional[Sequence[str]] = None) -> Dict[str, nn.Module]:
    """Modules to hook by name (as in ``model.named_modules()``; ``conv1`` also finds ``backbone.conv1``).

    Raises ValueError naming the unknown layers and listing the convolution layers that exist.
    """
    modules = dict(model.named_modules())
    if names is None:
        names = default_layer_names(model)
    resolved, unknown = {}, []
    for name in names:
        if name in modules and name:
            resolved[name] = modules[name]
        elif f'backbone.{name}' in modules:
            resolved[f'backbone.{name}'] = modules[f'backbone.{name}']
        else:
            unknown.append(name)
    if unknown:
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        raise ValueError(f'no layer named {unknown} in {type(model).__name__}; convolution layers that exist: '
                         f'{convs} (any name from model.named_modules() is accepted)')
    if not resolved:
        raise ValueError('no layer to hook: give at least one layer name')
    return resolved


def _position_seed(*parts: int) -> int:
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + part) % (2 ** 61 - 1)
    return seed


class ActivationSampler:
    """Forward hooks that keep a fixed random subset of every hooked layer's output, per image.

    The positions kept depend only on (seed, layer, image index, output size), so a clean and a distorted pass over
    the same images sample the same positions (paired samples). ``values_per_image`` caps the memory.
    """

    def __init__(self, layers: Dict[str, nn.Module], values_per_image: int, seed: int = 0):
        if values_per_image < 1:
            raise ValueError(f'values_per_image must be >= 1, got {values_per_image}')
        self.layers, self.values_per_image, self.seed = layers, values_per_image, seed
        self.samples: Dict[str, List[torch.Tensor]] = {name: [] for name in layers}
        self.image_offset = 0  # index of the first image of the current batch
        self._handles = []

    def __enter__(self):
        for index, (name, module) in enumerate(self.layers.items()):
            self._handles.append(module.register_forward_hook(self._make_hook(name, index)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, name: str, layer_index: int):
        def hook(module, inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            flat = output.detach().reshape(output.shape[0], -1).float()
            for i, per_image in enumerate(flat):
                if per_image.numel() > self.values_per_image:
                    gen = torch.Generator().manual_seed(_position_seed(
                        self.seed, layer_index, self.image_offset + i, per_image.numel()))
                    keep = torch.randperm(per_image.numel(), generator=gen)[:self.values_per_image]
                    per_image = per_image.cpu()[keep]
                self.samples[name].append(per_image.cpu().clone())
        return hook

    def values(self) -> Dict[str, torch.Tensor]:
        return {name: torch.cat(chunks) if chunks else torch.empty(0) for name, chunks in self.samples.items()}

    def image_sizes(self) -> Dict[str, List[int]]:
        """How many of ``values()[name]`` each image contributed, in order (the values are concatenated)."""
        return {name: [chunk.numel() for chunk in chunks] for name, chunks in self.samples.items()}


def _features_only(model: nn.Module, layers: Dict[str, nn.Module]) -> bool:
    """True when every hooked layer runs inside ``model.extract_feat`` (backbone and neck), so the heads can be
    skipped."""
    inside = ('backbone.', 'neck.')
    return callable(getattr(model, 'extract_feat', None)) and all(n.startswith(inside) for n in layers)


@torch.no_grad()
def sample_activations(model: nn.Module, dataloader: Iterable, layers: Dict[str, nn.Module], num_images: int,
                       values_per_image: int = 20000, seed: int = 0
                       ) -> Tuple[Dict[str, torch.Tensor], Dict[str, List[int]]]:
    """Run ``num_images`` images of an mmengine ``dataloader`` through ``model`` (its data preprocessor, then
    ``extract_feat`` when every layer is in the backbone/neck, else ``mode='tensor'``).

    Returns the sampled outputs of ``layers`` (concatenated over images) and how many values each image gave."""
    model.eval()
    features_only = _features_only(model, layers)
    sampler = ActivationSampler(layers, values_per_image, seed)
    seen = 0
    with sampler:
        for batch in dataloader:
            if seen >= num_images:
                break
            data = model.data_preprocessor(batch, False)
            inputs = data['inputs'][:num_images - seen]
            sampler.image_offset = seen
            if features_only:
                model.extract_feat(inputs)
            else:
                samples = data.get('data_samples')
                model(inputs, samples[:num_images - seen] if samples is not None else None, mode='tensor')
            seen += inputs.shape[0]
    if seen < num_images:
        raise ValueError(f'the test dataloader has only {seen} images, {num_images} were requested')
    return sampler.values(), sampler.image_sizes()


@dataclass
class LayerShift:
    """Moments of one layer's activations on clean and distorted images and the JS divergence between them."""
    layer: str
    clean: Dict[str, float]
    distorted: Dict[str, float]
    js_divergence: float
    num_values: int
    js_std: float = float('nan')  # over bootstrap resamples of the images; NaN when not computed


def image_bootstrap_js(clean: torch.Tensor, distorted: torch.Tensor, image_sizes: Sequence[int],
                       edges: torch.Tensor, num_resamples: int, seed: int = 0) -> torch.Tensor:
    """JS divergence of ``num_resamples`` bootstrap resamples of the images, on the fixed equal-width ``edges``.

    ``clean`` and ``distorted`` are paired samples concatenated image by image (``image_sizes`` values each). A
    resample draws n of the n images with replacement, weights ``w`` (multinomial counts), and compares
    ``p = sum_i w_i h_i(clean) / sum``, ``q = sum_i w_i h_i(distorted) / sum`` (``h_i``: image i's histogram).
    """
    sizes = [int(s) for s in image_sizes]
    if num_resamples < 1:
        raise ValueError(f'num_resamples must be >= 1, got {num_resamples}')
    if not sizes or min(sizes) < 1 or sum(sizes) != clean.numel() or clean.numel() != distorted.numel():
        raise ValueError(f'image_sizes must be positive and sum to the size of both samples; got {len(sizes)} '
                         f'sizes summing to {sum(sizes)} for samples of {clean.numel()} and {distorted.numel()}')
    bins, low, high = edges.numel() - 1, edges[0].item(), edges[-1].item()

    def per_image_histograms(values):
        return torch.stack([torch.histc(chunk.to(torch.float64), bins=bins, min=low, max=high)
                            for chunk in values.split(sizes)])

    hist_p, hist_q = per_image_histograms(clean), per_image_histograms(distorted)
    rng = np.random.default_rng(seed)
    weights = torch.from_numpy(rng.multinomial(len(sizes), np.full(len(sizes), 1 / len(sizes)),
                                               size=num_resamples)).to(torch.float64)
    return torch.tensor([js_divergence(p, q) for p, q in zip(weights @ hist_p, weights @ hist_q)],
                        dtype=torch.float64)


def compare_activations(clean: Dict[str, torch.Tensor], distorted: Dict[str, torch.Tensor], bins: int = 100,
                        image_sizes: Optional[Dict[str, Sequence[int]]] = None, bootstrap: int = 0,
                        seed: int = 0) -> List[LayerShift]:
    """Per layer: moments of both samples and JS divergence of their histograms on shared bins; with
    ``bootstrap > 0`` (needs ``image_sizes``) also its standard deviation over that many image resamples."""
    if clean.keys() != distorted.keys():
        raise ValueError(f'clean and distorted samples cover different layers: {sorted(clean)} vs '
                         f'{sorted(distorted)}')
    if bootstrap < 0:
        raise ValueError(f'bootstrap must be >= 0 resamples, got {bootstrap}')
    if bootstrap and image_sizes is None:
        raise ValueError('bootstrap needs image_sizes (how many values each image gave, per layer)')
    shifts = []
    for name in clean:
        p, q, edges = histogram_pair(clean[name], distorted[name], bins=bins)
        js_std = float('nan')
        if bootstrap:
            js_std = image_bootstrap_js(clean[name], distorted[name], image_sizes[name], edges, bootstrap,
                                        seed).std().item()
        shifts.append(LayerShift(name, moment_statistics(clean[name]), moment_statistics(distorted[name]),
                                 js_divergence(p, q), int(clean[name].numel()), js_std))
    return shifts


# --------------------------------------------------------------------------------------------- model and data
def build_test_dataloader(cfg, distortion: Optional[str] = None, level: Optional[int] = None, seed: int = 0):
    """The config's test dataloader (in-process, no workers), with ``distortion`` injected when given."""
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    if distortion is not None:
        returned = inject_distortion(loader_cfg, distortion, level=level, seed=seed)
        loader_cfg = returned if returned is not None else loader_cfg
    return Runner.build_dataloader(loader_cfg)


def measure_feature_shift(cfg, checkpoint: str, distortion: str, level: Optional[int] = None,
                          num_images: int = 100, layers: Optional[Sequence[str]] = None, bins: int = 100,
                          values_per_image: int = 20000, seed: int = 0, bootstrap: int = 0
                          ) -> Tuple[List[LayerShift], Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """Figure 1 for one model: the same ``num_images`` test images clean and distorted, per hooked layer
    (``bootstrap``: image resamples for the JS divergence's standard deviation, 0 for none).

    Returns the per-layer shifts and the clean and distorted activation samples (for plotting).
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    if bootstrap < 0:
        raise ValueError(f'bootstrap must be >= 0 resamples, got {bootstrap}')
    # cheapest checks first: the distortion, then model/checkpoint/layers, then the datasets
    check_name(distortion)
    resolve_level(distortion, level)
    model = build_model(cfg, checkpoint)
    hooked = resolve_layers(model, layers)
    clean_loader = build_test_dataloader(cfg)
    distorted_loader = build_test_dataloader(cfg, distortion, level, seed)
    if len(clean_loader.dataset) < num_images:
        raise ValueError(f'the test dataset has {len(clean_loader.dataset)} images, {num_images} were requested '
                         '(--num-images)')
    clean, image_sizes = sample_activations(model, clean_loader, hooked, num_images, values_per_image, seed)
    distorted, distorted_sizes = sample_activations(model, distorted_loader, hooked, num_images, values_per_image,
                                                    seed)
    if distorted_sizes != image_sizes:  # a distortion that changed an image's size would unpair the samples
        raise ValueError('the distorted images give feature maps of other sizes than the clean ones; the '
                         'comparison needs the same positions in both passes')
    shifts = compare_activations(clean, distorted, bins=bins, image_sizes=image_sizes, bootstrap=bootstrap,
                                 seed=seed)
    return shifts, clean, distorted


# --------------------------------------------------------------------------------------------- reporting
def format_shift_table(shifts: Sequence[LayerShift]) -> str:
    """Markdown table: per layer, each moment clean -> distorted, and the JS divergence (± its bootstrap standard
    deviation when computed)."""
    head = '| layer | ' + ' | '.join(f'{m} (clean / dist.)' for m in MOMENT_NAMES) + ' | JS divergence |'
    lines = [head, '|---|' + '---:|' * (len(MOMENT_NAMES) + 1)]
    for s in shifts:
        cells = ' | '.join(f'{s.clean[m]:.4g} / {s.distorted[m]:.4g}' for m in MOMENT_NAMES)
        spread = '' if math.isnan(s.js_std) else f' ± {s.js_std:.4f}'
        lines.append(f'| {s.layer} | {cells} | {s.js_divergence:.4f}{spread} |')
    return '\n'.join(lines)


def write_shift_csv(shifts: Sequence[LayerShift], path: str) -> None:
    import csv
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['layer', *[f'clean_{m}' for m in MOMENT_NAMES], *[f'distorted_{m}' for m in MOMENT_NAMES],
                         'js_divergence', 'js_std', 'num_values'])
        for s in shifts:
            row = asdict(s)
            writer.writerow([s.layer, *[repr(row['clean'][m]) for m in MOMENT_NAMES],
                             *[repr(row['distorted'][m]) for m in MOMENT_NAMES], repr(s.js_divergence),
                             repr(s.js_std), s.num_values])


def plot_feature_densities(clean: Dict[str, torch.Tensor], distorted: Dict[str, torch.Tensor], path: str,
                           bins: int = 100, title: str = '') -> None:
    """Figure 1: one panel per layer with the densities of clean and distorted activations (shared bins, log y)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(clean)
    cols = min(len(names), 5)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, names):
        p, q, edges = histogram_pair(clean[name], distorted[name], bins=bins)
        width = (edges[1] - edges[0]).item()
        centers = (0.5 * (edges[1:] + edges[:-1])).numpy()
        p_density, q_density = (p / width).numpy(), (q / width).numpy()
        ax.step(centers, p_density, where='mid', color='tab:blue', label='clean')
        ax.step(centers, q_density, where='mid', color='tab:red', label='distorted')
        ax.set_yscale('log')
        # empty bins would stretch the log axis to 0: start one decade below the smallest non-empty bin
        positive = np.concatenate([p_density[p_density > 0], q_density[q_density > 0]])
        ax.set_ylim(positive.min() / 10, positive.max() * 2)
        ax.set_title(f'{name}\nJS = {js_divergence(p, q):.4f}', fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed margins: tight_layout's search over log-scale tick labels costs seconds per figure
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.82 if rows == 1 else 0.9, wspace=0.3,
                        hspace=0.6)
    fig.savefig(path, dpi=100)
    plt.close(fig)
