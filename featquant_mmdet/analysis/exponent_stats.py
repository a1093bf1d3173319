"""Per-image exponents of one HPOW layer summarised as they arrive, in memory independent of the number of images.

An ``HPowConv`` gives every image its own exponents (N, Lambda, C): ~3800 per image for ResNet-18/50-HPOW, 190 M
values (0.76 GB in float32) over ImageNet's 50k validation images, several times that once copied to float64 and
pooled. :class:`StreamedExponents` keeps instead:

- count, non-finite count, min, max, the counts below 0 and outside [-1, 5], and the sums of ``x - shift`` and its
  square (float64, shifted by the first batch's mean: no cancellation) -> exact mean and std;
- per (portion, channel) the same shifted sums over the images and whether any image was non-finite there ->
  ``std_images``, the std over images of each column finite in every image, averaged (as the exact summary);
- a histogram of ``bins`` equal bins over [-1, 5] (HPOW's range by construction, ``alpha = -1 + 6 sigmoid(z)``)
  plus an under- and an overflow bin -> the quantiles to within one bin (``6 / bins``; 1e-4 by default), read as
  numpy's default (linear) quantile of values spread evenly inside their bin, and the figure's histogram.
"""
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch

from ..ops.quantize import ALPHA_MAX, ALPHA_MIN

DEFAULT_BINS = 60000


class StreamedExponents:
    """Running summary of per-image exponents ``(n, Lambda, C)`` fed in batches with :meth:`add`."""

    def __init__(self, bins: int = DEFAULT_BINS, lo: float = ALPHA_MIN, hi: float = ALPHA_MAX):
        self.edges = np.linspace(lo, hi, bins + 1)
        self.hist = np.zeros(bins + 2, np.int64)  # [underflow, bins..., overflow]
        self.count = self.nonfinite = self.negative = self.clamped = 0
        self.min, self.max = np.inf, -np.inf
        self.shift: Optional[float] = None
        self.sum = self.sumsq = 0.0
        self.images = 0
        self.col_shift = self.col_sum = self.col_sumsq = self.col_bad = None
        self.spreads: Optional[np.ndarray] = None  # set on pooled summaries: the layers' per-column stds

    def add(self, batch: torch.Tensor) -> None:
        values = batch.detach().float().cpu().numpy().astype(np.float64).reshape(batch.shape[0], -1)
        finite_mask = np.isfinite(values)
        finite = values[finite_mask]
        self.count += values.size
        self.nonfinite += values.size - finite.size
        if finite.size:
            if self.shift is None:
                self.shift = float(finite.mean())
            centred = finite - self.shift
            self.sum += float(centred.sum())
            self.sumsq += float(np.dot(centred, centred))
            self.min, self.max = min(self.min, float(finite.min())), max(self.max, float(finite.max()))
            self.negative += int((finite < 0).sum())
            self.clamped += int(((finite < ALPHA_MIN) | (finite > ALPHA_MAX)).sum())
            # bins + range (not the edges): numpy's uniform-bin path, indices by arithmetic instead of a search
            inside = np.histogram(finite, len(self.edges) - 1, (self.edges[0], self.edges[-1]))[0]
            self.hist[1:-1] += inside
            self.hist[0] += int((finite < self.edges[0]).sum())
            self.hist[-1] += int((finite > self.edges[-1]).sum())
        if self.col_sum is None:
            self.col_shift = np.where(finite_mask, values, 0).sum(0) / np.maximum(finite_mask.sum(0), 1)
            self.col_sum, self.col_sumsq = np.zeros(values.shape[1]), np.zeros(values.shape[1])
            self.col_bad = np.zeros(values.shape[1], bool)
        self.col_bad |= ~finite_mask.all(0)
        centred = np.where(finite_mask, values - self.col_shift, 0.0)
        self.col_sum += centred.sum(0)
        self.col_sumsq += (centred * centred).sum(0)
        self.images += values.shape[0]

    def column_spread(self) -> np.ndarray:
        """Per (portion, channel) finite in every image: the std over the images (ddof 0)."""
        if self.spreads is not None:
            return self.spreads
        if self.images < 2 or self.col_sum is None:
            return np.zeros(0)
        good = ~self.col_bad
        mean = self.col_sum[good] / self.images
        return np.sqrt(np.maximum(self.col_sumsq[good] / self.images - mean * mean, 0.0))

    def quantile(self, q: float) -> float:
        """numpy's linear quantile of the finite values, each bin's values taken as evenly spread over the bin (the
        under-/overflow bins span [min, -1) and (5, max])."""
        n = int(self.hist.sum())
        position = q * (n - 1)
        below, frac = int(np.floor(position)), position - np.floor(position)
        value = self._order_statistic(below)
        return value if frac == 0 else value + frac * (self._order_statistic(min(below + 1, n - 1)) - value)

    def _order_statistic(self, k: int) -> float:
        cumulative = np.cumsum(self.hist)
        i = int(np.searchsorted(cumulative, k, side='right'))
        before = int(cumulative[i - 1]) if i else 0
        if i == 0:
            lo, hi = self.min, min(self.edges[0], self.max)
        elif i == len(self.hist) - 1:
            lo, hi = max(self.edges[-1], self.min), self.max
        else:
            lo, hi = max(self.edges[i - 1], self.min), min(self.edges[i], self.max)
        return float(lo + (k - before + 0.5) / self.hist[i] * (hi - lo))

    def summary(self) -> Dict[str, float]:
        finite = self.count - self.nonfinite
        nan = float('nan')
        spread = self.column_spread()
        row = dict(count=int(self.count), nonfinite=int(self.nonfinite), std_images=float(spread.mean())
                   if spread.size else nan)
        if finite == 0:
            return dict(row, **{k: nan for k in ('mean', 'std', 'min', 'p05', 'median', 'p95', 'max',
                                                 'frac_negative', 'frac_clamped')})
        mean = self.sum / finite
        return dict(row, mean=self.shift + mean, std=float(np.sqrt(max(self.sumsq / finite - mean * mean, 0.0))),
                    min=self.min, p05=self.quantile(0.05), median=self.quantile(0.5), p95=self.quantile(0.95),
                    max=self.max, frac_negative=self.negative / finite, frac_clamped=self.clamped / finite)

    def coarse_histogram(self, bins: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)`` of ``bins`` bins over [min, max] of the finite values, each fine bin counted in the
        coarse bin holding its centre (for the figure)."""
        centres = np.concatenate([[self.min], (self.edges[:-1] + self.edges[1:]) / 2, [self.max]])
        edges = np.linspace(self.min, self.max if self.max > self.min else self.min + 1e-6, bins + 1)
        return np.histogram(centres, edges, weights=self.hist)[0], edges

    @classmethod
    def pooled(cls, layers: Iterable['StreamedExponents']) -> 'StreamedExponents':
        """All layers as one (same histogram edges): their values pooled, ``std_images`` over all their columns."""
        layers = list(layers)
        out = cls(len(layers[0].edges) - 1, layers[0].edges[0], layers[0].edges[-1])
        out.hist = sum(layer.hist for layer in layers)
        out.count, out.nonfinite = sum(x.count for x in layers), sum(x.nonfinite for x in layers)
        out.negative, out.clamped = sum(x.negative for x in layers), sum(x.clamped for x in layers)
        out.min, out.max = min(x.min for x in layers), max(x.max for x in layers)
        # each layer's shifted sums re-centred on one shift: sum(x - s) = sum(x - s_i) + n_i (s_i - s)
        with_values = [x for x in layers if x.shift is not None]
        out.shift = with_values[0].shift if with_values else None
        out.sum = out.sumsq = 0.0
        for x in with_values:
            n, d = x.count - x.nonfinite, x.shift - out.shift
            out.sum += x.sum + n * d
            out.sumsq += x.sumsq + 2 * d * x.sum + n * d * d
        out.images = min(x.images for x in layers)
        out.spreads = np.concatenate([x.column_spread() for x in layers])
        return out
