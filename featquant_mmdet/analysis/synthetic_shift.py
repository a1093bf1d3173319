"""The synthetic moment-shift experiment of Section 2.1 (Table 1, Figure 2).

Every input feature is drawn from Hosking's generalized normal distribution (eq. 8-9) with shape ``kappa``:

    x = (1 - exp(-kappa * y)) / kappa,   y ~ N(0, 1)        (x = y for kappa = 0)

whose density is ``phi(y) / (1 - kappa x)`` with ``y = -log(1 - kappa x) / kappa``. ``kappa > 0`` bounds x from above
(``x < 1 / kappa``) and skews it to the left, ``kappa < 0`` skews it to the right. Each feature is then standardised
with its exact population moments,

    E[x] = (1 - exp(kappa^2 / 2)) / kappa,   Var[x] = exp(kappa^2) (exp(kappa^2) - 1) / kappa^2,

so training and test data share mean 0 and variance 1 and differ only in the higher moments. The label of a sample
is ``sum_{n<N} 2^n 1(X_n >= 0)`` (2^N classes; the other M - N features are noise).

Each cell of Table 1 is one small network trained on such data. The runs of a cell are trained at once as one
batched model (one weight tensor per layer with a leading model axis, ``torch.baddbmm``): the models share the
minibatch schedule but no parameter, statistic or optimiser state, so this is the same as training them one by one.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.quantize import scaled_floor, signed_power
from .shift_data import (ShiftData, generalized_normal_moments, generalized_normal_transform,  # noqa: F401
                         make_shift_data, sample_standardized_generalized_normal, sign_labels)

DETERMINANT_FEATURES = (1, 2, 4, 8)

# Table 1 of the paper: mean accuracy (%) over 10 runs, M = 128, columns N = 1, 2, 4, 8.
PAPER_TABLE1: Dict[str, Tuple[float, float, float, float]] = {
    'Base w/o divergence': (96.4, 92.6, 83.0, 36.3),
    'Base': (93.9, 87.9, 73.7, 26.9),
    'BN only': (92.1, 84.9, 71.5, 29.3),
    'BN + affine': (95.2, 89.2, 77.5, 39.1),
    'Base + 1 layer': (93.2, 85.1, 70.5, 27.8),
    'Base + 2 layers': (93.1, 85.3, 69.6, 29.8),
    'Floor': (94.3, 89.2, 75.9, 28.8),
    'Tanh': (97.4, 95.1, 89.4, 59.5),
    'Softsign': (98.4, 96.9, 93.0, 65.7),
    'Power': (99.0, 98.4, 97.5, 77.6),
}


@dataclass(frozen=True)
class RowSpec:
    """One row of Table 1: a non-linearity on the input vector, the hidden layers, where the test data comes from.

    ``input_transform``: None, 'floor', 'tanh', 'softsign' or 'power' (applied to the input features).
    ``batch_norm``: None, 'plain' (normalise only) or 'affine' (normalise + the learned scale and shift of [20]),
    applied to the pre-activations of every hidden layer.
    ``extra_hidden_layers``: hidden layers (128 units + ReLU) added to the base network.
    ``shifted_test``: test data drawn with new shape parameters (False only for "Base w/o divergence").
    """
    input_transform: Optional[str] = None
    batch_norm: Optional[str] = None
    extra_hidden_layers: int = 0
    shifted_test: bool = True


TABLE1_ROWS: Dict[str, RowSpec] = {
    'Base w/o divergence': RowSpec(shifted_test=False),
    'Base': RowSpec(),
    'BN only': RowSpec(batch_norm='plain'),
    'BN + affine': RowSpec(batch_norm='affine'),
    'Base + 1 layer': RowSpec(extra_hidden_layers=1),
    'Base + 2 layers': RowSpec(extra_hidden_layers=2),
    'Floor': RowSpec(input_transform='floor'),
    'Tanh': RowSpec(input_transform='tanh'),
    'Softsign': RowSpec(input_transform='softsign'),
    'Power': RowSpec(input_transform='power'),
}
INPUT_TRANSFORMS = (None, 'floor', 'tanh', 'softsign', 'power')
BATCH_NORMS = (None, 'plain', 'affine')


# --------------------------------------------------------------------------------------------- batched network
class BatchedLinear(nn.Module):
    """G independent ``nn.Linear`` layers evaluated at once: ``(G, B, in) -> (G, B, out)``, same init as nn.Linear."""

    def __init__(self, num_models: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(num_models, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_models, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedBatchNorm(nn.Module):
    """``nn.BatchNorm1d`` for G independent models: statistics over the sample axis of ``(G, B, C)``."""

    def __init__(self, num_models: int, num_features: int, affine: bool, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        if affine:
            self.weight = nn.Parameter(torch.ones(num_models, 1, num_features))
            self.bias = nn.Parameter(torch.zeros(num_models, 1, num_features))
        else:
            self.weight = self.bias = None
        self.register_buffer('running_mean', torch.zeros(num_models, 1, num_features))
        self.register_buffer('running_var', torch.ones(num_models, 1, num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(1, keepdim=True)
            var = x.var(1, unbiased=False, keepdim=True)
            with torch.no_grad():
                n = x.shape[1]
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            x = x * self.weight + self.bias
        return x


def apply_input_transform(x: torch.Tensor, name: Optional[str], floor_beta: float = 100.0,
                          power_alpha: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The non-linearity of a row on the input features: identity, ``scaled_floor(x, beta)`` (eq. 3), tanh,
    softsign ``x / (1 + |x|)`` or ``signed_power(x, alpha)`` (eq. 5)."""
    if name is None:
        return x
    if name == 'floor':
        return scaled_floor(x, floor_beta)
    if name == 'tanh':
        return torch.tanh(x)
    if name == 'softsign':
        return F.softsign(x)
    if name == 'power':
        if power_alpha is None:
            raise ValueError("input transform 'power' needs power_alpha")
        return signed_power(x, power_alpha)
    raise ValueError(f'unknown input transform {name!r}; accepted: {INPUT_TRANSFORMS}')


class BatchedShiftNet(nn.Module):
    """The two-layer ReLU network of Section 2.1 for G models at once, with a row's variations.

    input transform -> [Linear(M, H) -> (BN) -> ReLU] x (1 + extra) -> Linear(H, num_classes).
    ``power``: one learnable exponent per input feature and model (Lambda = 1: shared by all hidden units), initialised
    to 0 (the identity map).
    """

    def __init__(self, num_models: int, num_features: int, num_classes: int, spec: RowSpec, hidden: int = 128,
                 floor_beta: float = 100.0):
        super().__init__()
        if spec.input_transform not in INPUT_TRANSFORMS:
            raise ValueError(f'unknown input transform {spec.input_transform!r}; accepted: {INPUT_TRANSFORMS}')
        if spec.batch_norm not in BATCH_NORMS:
            raise ValueError(f'unknown batch_norm {spec.batch_norm!r}; accepted: {BATCH_NORMS}')
        self.spec, self.floor_beta = spec, floor_beta
        self.power_alpha = (nn.Parameter(torch.zeros(num_models, 1, num_features))
                            if spec.input_transform == 'power' else None)
        widths = [num_features] + [hidden] * (1 + spec.extra_hidden_layers)
        self.hidden = nn.ModuleList(BatchedLinear(num_models, i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(
            BatchedBatchNorm(num_models, hidden, affine=spec.batch_norm == 'affine') if spec.batch_norm else
            nn.Identity() for _ in self.hidden)
        self.classifier = BatchedLinear(num_models, hidden, num_classes)

    def transform_input(self, x: torch.Tensor) -> torch.Tensor:
        return apply_input_transform(x, self.spec.input_transform, self.floor_beta, self.power_alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transform_input(x)
        for linear, norm in zip(self.hidden, self.norms):
            x = F.relu(norm(linear(x)))
        return self.classifier(x)


# --------------------------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """Optimisation of every model (the paper does not give it): Adam, minibatches, fixed epochs.

    ``num_threads``: torch CPU threads while training (restored afterwards; None keeps torch's setting). The
    matrices are small (runs x batch x 128), so threads add synchronisation rather than speed, and on a busy
    machine a second thread that waits for a core makes every step wait with it.
    """
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    hidden: int = 128
    floor_beta: float = 100.0  # the paper's only beta (SF-100), a weak quantization of unit-variance inputs
    seed: int = 0
    num_threads: Optional[int] = 1


@contextmanager
def _torch_threads(num_threads: Optional[int]):
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def _accuracy(model: BatchedShiftNet, x: torch.Tensor, labels: torch.Tensor, chunk: int = 5000) -> torch.Tensor:
    model.eval()
    correct = torch.zeros(x.shape[0])
    for start in range(0, x.shape[1], chunk):
        pred = model(x[:, start:start + chunk]).argmax(-1)
        correct += (pred == labels[:, start:start + chunk]).float().sum(1)
    return 100.0 * correct / x.shape[1]


def train_row(spec: RowSpec, data: ShiftData, num_determinant: int,
              cfg: TrainConfig = TrainConfig()) -> Dict[str, torch.Tensor]:
    """Train one cell of Table 1 (a row, one N) for every run at once; returns the test and training ``accuracy``
    per run (%, shape (runs,)) and, for the power row, the learned exponents ``alpha`` (runs, M)."""
    runs, num_train, num_features = data.train.shape
    test_x = data.test_shifted if spec.shifted_test else data.test_same
    train_y = sign_labels(data.train, num_determinant)
    test_y = sign_labels(test_x, num_determinant)

    torch.manual_seed(cfg.seed)
    model = BatchedShiftNet(runs, num_features, 2 ** num_determinant, spec, hidden=cfg.hidden,
                            floor_beta=cfg.floor_beta)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    with _torch_threads(cfg.num_threads):
        for _ in range(cfg.epochs):
            model.train()
            order = torch.randperm(num_train, generator=gen)
            for start in range(0, num_train, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                logits = model(data.train[:, idx])
                # summed over runs: each model gets exactly the gradient of its own mean loss
                loss = F.cross_entropy(logits.flatten(0, 1), train_y[:, idx].flatten(), reduction='sum') / len(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        result = {'accuracy': _accuracy(model, test_x, test_y),
                  'train_accuracy': _accuracy(model, data.train, train_y)}
    if model.power_alpha is not None:
        result['alpha'] = model.power_alpha.detach().view(runs, num_features).clone()
    return result


@dataclass
class Table1Result:
    """Accuracies (%) per row, shape (runs, len(determinant)), the learned exponents of the power row
    (runs, len(determinant), M) and the seconds each row took."""
    determinant: Tuple[int, ...]
    accuracy: Dict[str, torch.Tensor] = field(default_factory=dict)
    train_accuracy: Dict[str, torch.Tensor] = field(default_factory=dict)
    power_alpha: Optional[torch.Tensor] = None
    seconds: Dict[str, float] = field(default_factory=dict)


def run_table1(runs: int = 10, num_samples: int = 10000, num_features: int = 128,
               determinant: Sequence[int] = DETERMINANT_FEATURES, rows: Optional[Sequence[str]] = None,
               cfg: TrainConfig = TrainConfig(),
               progress: Optional[Callable[[str, Dict[str, torch.Tensor], float], None]] = None) -> Table1Result:
    """Table 1: ``num_samples`` training and as many test samples per run; all rows on the same data."""
    import time
    rows = list(TABLE1_ROWS) if rows is None else list(rows)
    unknown = [r for r in rows if r not in TABLE1_ROWS]
    if unknown:
        raise ValueError(f'unknown rows {unknown}; accepted: {list(TABLE1_ROWS)}')
    determinant = tuple(determinant)
    if not determinant or any(not 1 <= n <= num_features for n in determinant):
        raise ValueError(f'determinant feature counts must be in [1, {num_features}], got {determinant}')
    data = make_shift_data(runs, num_samples, num_samples, num_features, seed=cfg.seed)
    result = Table1Result(determinant=determinant)
    for row in rows:
        start = time.perf_counter()
        cells = [train_row(TABLE1_ROWS[row], data, n, cfg) for n in determinant]
        result.seconds[row] = time.perf_counter() - start
        out = {key: torch.stack([c[key] for c in cells], dim=1) for key in cells[0]}  # (runs, len(determinant), ..)
        result.accuracy[row] = out['accuracy']
        result.train_accuracy[row] = out['train_accuracy']
        if 'alpha' in out:
            result.power_alpha = out['alpha']
        if progress is not None:
            progress(row, out, result.seconds[row])
    return result


# --------------------------------------------------------------------------------------------- reporting
def _mean_std(acc: torch.Tensor) -> Tuple[float, float]:
    """Mean and sample standard deviation over runs (std 0 for a single run)."""
    return acc.mean().item(), (acc.std().item() if acc.numel() > 1 else 0.0)


def _paper_value(paper: Dict[str, Sequence[float]], row: str, n: int) -> Optional[float]:
    if row not in paper or n not in DETERMINANT_FEATURES:
        return None
    return paper[row][DETERMINANT_FEATURES.index(n)]


def format_table1(result: Table1Result, paper: Dict[str, Sequence[float]] = PAPER_TABLE1) -> str:
    """Markdown table in the paper's layout: per N our mean +- std over runs, and the paper's number."""
    head = '| Model | ' + ' | '.join(f'N={n} ours | N={n} paper' for n in result.determinant) + ' |'
    lines = [head, '|---|' + '---:|---:|' * len(result.determinant)]
    for row, acc in result.accuracy.items():
        cells = []
        for j, n in enumerate(result.determinant):
            mean, std = _mean_std(acc[:, j])
            ref = _paper_value(paper, row, n)
            cells.append(f'{mean:.1f} ± {std:.1f} | ' + (f'{ref:.1f}' if ref is not None else '-'))
        lines.append(f'| {row} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_table1_csv(result: Table1Result, path: str, paper: Dict[str, Sequence[float]] = PAPER_TABLE1) -> None:
    """One line per (row, N): mean/std of test accuracy over runs, mean train accuracy, paper value, every run."""
    import csv
    runs = next(iter(result.accuracy.values())).shape[0] if result.accuracy else 0
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'N', 'test_acc_mean', 'test_acc_std', 'train_acc_mean', 'paper_acc']
                        + [f'run{r}' for r in range(runs)])
        for row, acc in result.accuracy.items():
            for j, n in enumerate(result.determinant):
                mean, std = _mean_std(acc[:, j])
                ref = _paper_value(paper, row, n)
                writer.writerow([row, n, f'{mean:.2f}', f'{std:.2f}',
                                 f'{result.train_accuracy[row][:, j].mean().item():.2f}',
                                 '' if ref is None else ref] + [f'{v:.2f}' for v in acc[:, j].tolist()])


def plot_shift_distributions(path: str, kappa_train: float = -0.2, kappa_test: float = 0.5,
                             num_samples: int = 100000, floor_beta: float = 100.0, power_alpha: float = -0.5,
                             bins: int = 100, seed: int = 0) -> Dict[str, float]:
    """Figure 2: one feature drawn with ``kappa_train`` and with ``kappa_test`` (standardised), originally and after
    each non-linearity (floor, tanh, softsign, power), with the Jensen-Shannon divergence between the two histograms
    (100 shared bins) in every panel. Returns ``{panel: JS divergence}``.

    Note: the JS divergence of two densities does not change under an invertible map (tanh, softsign, the power
    with alpha > -1), so those panels differ from the original only by binning; the floor is not invertible and
    can lower it. What the maps change is the shape the next layer sees (values near the sign, +-1).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from .feature_moments import histogram_pair, js_divergence

    gen = torch.Generator().manual_seed(seed)
    kappas = torch.tensor([[kappa_train], [kappa_test]], dtype=torch.float64)
    samples = sample_standardized_generalized_normal(kappas, num_samples, gen)[..., 0]  # (2, n)
    alpha = torch.tensor(power_alpha)
    panels = {
        'original': samples,
        f'floor (beta={floor_beta:g})': apply_input_transform(samples, 'floor', floor_beta=floor_beta),
        'tanh': apply_input_transform(samples, 'tanh'),
        'softsign': apply_input_transform(samples, 'softsign'),
        f'power (alpha={power_alpha:.2f})': apply_input_transform(samples, 'power', power_alpha=alpha),
    }
    divergences = {}
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (name, values) in zip(axes, panels.items()):
        p, q, edges = histogram_pair(values[0], values[1], bins=bins)
        divergences[name] = js_divergence(p, q)
        centers = 0.5 * (edges[1:] + edges[:-1])
        width = edges[1] - edges[0]
        ax.plot(centers.numpy(), (p / width).numpy(), label=f'train (kappa={kappa_train:g})', color='tab:blue')
        ax.plot(centers.numpy(), (q / width).numpy(), label=f'test (kappa={kappa_test:g})', color='tab:green')
        ax.set_title(f'{name}\nJS = {divergences[name]:.4f}', fontsize=9)
        ax.set_xlabel('value')
    axes[0].set_ylabel('density')
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return divergences
