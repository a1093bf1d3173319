"""Bootstrap over test images: intervals (bias-corrected or percentile) and p-values for every cell and summary,
and paired differences.

One :class:`Resamples` holds a (B, n) matrix of image indices drawn with replacement (seeded): resample b is the
multiset ``indices[b]`` of the n test images. The SAME matrix is used for every cell of a sweep and for every
model, so a resample's cells and summaries of two models are computed on the same images (a *paired*
comparison: the image-to-image variation that both models share cancels in the difference).

For every resample b each cell's metric ``P^b_{d,l}`` is recomputed on its multiset (:mod:`.voc_matches`,
:mod:`.correctness`), then the summaries of the resampled cells, as ``robustness.summarize`` defines them::

    P^b, P^b_d = mean_l P^b_{d,l}, mPC^b = mean_d P^b_d, rPC^b = mPC^b / P^b,
    CE^b_d = sum_l (F - P^b_{d,l}) / sum_l (F - R^b_{d,l}), mCE^b = mean_d CE^b_d   (R: reference model, F: 100%)

The point value of a quantity is its value on all images (the number the tables show); its interval at level
1 - a is made of order statistics of its B values (:attr:`Estimate.interval`), by one of :data:`METHODS`:

* ``percentile``: the a/2 and 1 - a/2 quantiles of the samples ``X^b``;
* ``percentile+point`` (default): the percentile interval extended, where needed, to contain the point value;
* ``basic`` (Davison & Hinkley's basic bootstrap): the same quantiles of ``2 X - X^b``, i.e. the percentile
  interval reflected about the point, which removes the bootstrap bias once instead of adding it;
* ``basic+point``: the basic interval extended, where needed, to contain the point value;
* ``bc`` (Efron's bias-corrected percentile): the quantiles ``Phi(2 z0 -/+ z_{1-a/2})`` of ``X^b`` with
  ``z0 = Phi^-1(share of X^b below X)``; with a bias comparable to the spread it needs quantiles far in the tails
  (an unbounded end when ``(B + 1) tail < 1``).

Interpolated AP runs high on resamples (a max over a noisy PR curve), so the percentile interval sits above the
point and can exclude it; docs/statistics.md has the coverage of each method measured by simulation
(benchmarks/bench_coverage.py).

A paired difference B - A uses ``X^b_B - X^b_A``; it *excludes 0* when both ends lie on one side of 0, which is
exactly when its two-sided :attr:`Estimate.p_value` is <= 1 - level. A model compared with itself gives exactly
[0, 0] (p = 1).
"""
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Dict, Mapping, Optional

import numpy as np

from .checks import StatsInputError, check_resamples

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
METHODS = ('percentile+point', 'percentile', 'basic+point', 'basic', 'bc')
DEFAULT_METHOD = 'percentile+point'
_NORMAL = NormalDist()


def check_method(method: str) -> str:
    if method not in METHODS:
        raise StatsInputError(f'interval method {method!r} not supported; accepted: {", ".join(METHODS)}')
    return method


def check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise StatsInputError(f'confidence level must be in (0, 1), e.g. 0.95, got {level!r}')
    return float(level)


def resample_indices(n_images: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_images) indices drawn uniformly with replacement by ``np.random.default_rng(seed)``."""
    for name, value, low in (('n_images', n_images, 1), ('n_resamples', n_resamples, 1), ('seed', seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise StatsInputError(f'{name} must be an integer >= {low}, got {value!r}')
    return np.random.default_rng(seed).integers(0, n_images, size=(n_resamples, n_images), dtype=np.int64)


def resample_counts(indices: np.ndarray, n_images: Optional[int] = None) -> np.ndarray:
    """Multiplicities (B, n_images) of each image in each resample (row b: ``bincount(indices[b])``)."""
    indices = check_resamples(indices, n_images)
    b, n = indices.shape[0], n_images or indices.shape[1]
    flat = (np.arange(b)[:, None] * n + indices).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.int32)


@dataclass(frozen=True)
class Resamples:
    """The shared resamples of a comparison: ``indices`` (B, n), their ``counts`` and the settings."""

    indices: np.ndarray
    counts: np.ndarray
    seed: int
    level: float = DEFAULT_LEVEL
    method: str = DEFAULT_METHOD

    @classmethod
    def draw(cls, n_images: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
             level: float = DEFAULT_LEVEL, method: str = DEFAULT_METHOD) -> 'Resamples':
        indices = resample_indices(n_images, n_resamples, seed)
        return cls(indices, resample_counts(indices, n_images), seed, check_level(level), check_method(method))

    @property
    def n_images(self) -> int:
        return self.indices.shape[1]

    @property
    def n_resamples(self) -> int:
        return self.indices.shape[0]


@dataclass
class Estimate:
    """A quantity: ``point`` on all images, its ``samples`` (B,) over the resamples, the interval's ``level`` and
    ``method`` (:data:`METHODS`)."""

    point: float
    samples: np.ndarray
    level: float = DEFAULT_LEVEL
    method: str = DEFAULT_METHOD

    def __post_init__(self):
        check_method(self.method)

    @property
    def _base(self) -> str:
        """The method without ``+point`` (the interval extended to contain the point value)."""
        return self.method.split('+')[0]

    def _values(self) -> np.ndarray:
        """What the interval's order statistics are taken of: the samples, or for ``basic`` their reflection
        ``2 point - samples`` (the distribution of ``point - (sample - point)``)."""
        if self._base == 'basic':
            with np.errstate(invalid='ignore'):
                return 2 * self.point - self.samples
        return self.samples

    @property
    def _undefined(self) -> bool:
        return bool(np.isnan(self._values()).any() or (self._base != 'percentile' and np.isnan(self.point)))

    @property
    def z0(self) -> float:
        """The bias-correction constant of ``bc``: ``z0 = Phi^-1(p0)``, ``p0`` the share of samples below the point
        (ties count half), kept within ``[1/(2B), 1 - 1/(2B)]``; 0 for the other methods."""
        if self.method != 'bc':
            return 0.0
        s, b = self.samples, self.samples.size
        p0 = ((s < self.point).sum() + 0.5 * (s == self.point).sum()) / b
        return _NORMAL.inv_cdf(min(max(p0, 0.5 / b), 1 - 0.5 / b))

    def _tails(self, level: float):
        """The probability left out below and above the interval: ``a/2, a/2`` (percentile, basic) or
        ``Phi(2 z0 - z), Phi(-2 z0 - z)`` with ``z = Phi^-1(1 - a/2)`` (bc), ``a = 1 - level``."""
        a = 1 - level
        z0 = self.z0
        if z0 == 0.0:
            return a / 2, a / 2
        z = _NORMAL.inv_cdf(1 - a / 2)
        return _NORMAL.cdf(2 * z0 - z), _NORMAL.cdf(-2 * z0 - z)

    @property
    def interval(self):
        """``(low, high)``: order statistics of :meth:`_values`, ``low`` the k1-th smallest and ``high`` the k2-th
        largest, ``k = floor((B + 1) tail)`` with the tails of :meth:`_tails` (Davison & Hinkley's rule; the
        percentile interval of 999 resamples at 95% is the 25th smallest and largest); an end whose k is 0 is
        unbounded (B too small for the level and, for bc, the bias).
        NaN if any sample is undefined; infinite samples (a CE whose reference makes no error) are order
        statistics like any other."""
        if self._undefined:
            return float('nan'), float('nan')
        s = np.sort(self._values())
        b = s.size
        tail_low, tail_high = self._tails(self.level)
        k1 = min(int(np.floor((b + 1) * tail_low)), b)
        k2 = min(int(np.floor((b + 1) * tail_high)), b)
        low = float(s[k1 - 1]) if k1 >= 1 else float('-inf')
        high = float(s[b - k2]) if k2 >= 1 else float('inf')
        if self.method.endswith('+point'):
            low, high = min(low, float(self.point)), max(high, float(self.point))
        return low, high

    @property
    def low(self) -> float:
        return self.interval[0]

    @property
    def high(self) -> float:
        return self.interval[1]

    @property
    def bias(self) -> float:
        """Bootstrap estimate of the bias: mean of the samples minus the point value. Interpolated AP is a max
        over a noisy PR curve, so resampled mAPs run high (docs/statistics.md): the percentile interval is centred
        near ``point + bias``, the basic and bc ones near ``point - bias``."""
        return float(self.samples.mean() - self.point)

    @property
    def excludes_zero(self) -> bool:
        """Both ends on one side of 0 (the meaning of the difference's marker); the same as
        ``p_value <= 1 - level``."""
        low, high = self.interval
        return bool(low > 0 or high < 0)

    @property
    def p_value(self) -> float:
        """Two-sided p-value of ``true value = 0``, the inverse of the interval: the largest ``a`` at which the
        ``1 - a`` interval of this method still contains 0 (so ``p <= 1 - level`` exactly when :attr:`interval`
        excludes 0). With ``u_le = (#{v <= 0} + 1) / (B + 1)`` and ``u_ge = (#{v >= 0} + 1) / (B + 1)``, v the
        values of :meth:`_values`::

            percentile, basic:  p = min(1, 2 u_le, 2 u_ge)                 (>= 2 / (B + 1))
            bc:                 p = min(1, 2 Phi(Phi^-1(u_le) - 2 z0), 2 Phi(Phi^-1(u_ge) + 2 z0))
            +point:             the base method's, with only the term of the point's side of 0 (1 at 0)

        NaN where the interval is."""
        if self._undefined:
            return float('nan')
        s = self._values()
        b = s.size
        u_le, u_ge = ((s <= 0).sum() + 1) / (b + 1), ((s >= 0).sum() + 1) / (b + 1)
        z0 = self.z0
        if z0 == 0.0:
            p_le, p_ge = 2 * u_le, 2 * u_ge
        else:
            p_le = 2 * _NORMAL.cdf(_NORMAL.inv_cdf(u_le) - 2 * z0) if u_le < 1 else 2.0
            p_ge = 2 * _NORMAL.cdf(_NORMAL.inv_cdf(u_ge) + 2 * z0) if u_ge < 1 else 2.0
        if self.method.endswith('+point'):  # only the side of 0 the point is on can be excluded
            p_le, p_ge = (p_le if self.point > 0 else 2.0), (p_ge if self.point < 0 else 2.0)
        return float(min(1.0, p_le, p_ge))

    def as_dict(self) -> dict:
        low, high = self.interval
        return {'value': self.point, 'low': low, 'high': high, 'level': self.level, 'method': self.method,
                'bias': self.bias, 'p_value': self.p_value, 'resamples': int(self.samples.size)}


@dataclass
class BootstrapSummary:
    """Estimates of one model: ``cells`` {key: Estimate} and the summaries (``P``, ``per_distortion``, ``mPC``,
    ``rPC`` and, with a reference, ``CE`` and ``mCE``), computed on ``resamples``."""

    cells: Dict[str, Estimate]
    P: Optional[Estimate]
    per_distortion: Dict[str, Estimate]
    mPC: Optional[Estimate]
    rPC: Optional[Estimate]
    CE: Dict[str, Estimate] = field(default_factory=dict)
    mCE: Optional[Estimate] = None
    resamples: Optional[Resamples] = None

    def columns(self) -> Dict[str, Estimate]:
        """Flat ``{name: Estimate}``: ``clean`` cells by key, ``P``, ``mean/<distortion>``, ``mPC``, ``rPC``,
        ``CE/<distortion>``, ``mCE`` (those present)."""
        out = {f'cell/{k}': v for k, v in self.cells.items()}
        for name in ('P', 'mPC', 'rPC', 'mCE'):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out.update({f'mean/{k}': v for k, v in self.per_distortion.items()})
        out.update({f'CE/{k}': v for k, v in self.CE.items()})
        return out


def split_key(key: str):
    """``'clean'`` -> (None, None); ``'jpeg@2'`` -> ('jpeg', 2); ``'mix_heavy'`` -> ('mix_heavy', None)
    (the cell keys of the robustness results, ``Cell.key``)."""
    if key == 'clean':
        return None, None
    name, sep, level = key.partition('@')
    return (name, int(level)) if sep else (name, None)


def cell_estimates(cells: Mapping[str, object], resamples: Resamples) -> Dict[str, Estimate]:
    """``{key: Estimate}`` of every cell's metric: ``value()`` on all images, ``values(counts)`` per resample."""
    out = {}
    for key, cell in cells.items():
        if cell.num_images != resamples.n_images:
            raise StatsInputError(f'cell {key!r} ({_where(cell)}) has {cell.num_images} images, the resamples '
                                  f'were drawn for {resamples.n_images}: not the same test set')
        out[key] = Estimate(float(cell.value()), np.asarray(cell.values(resamples.counts), np.float64),
                            resamples.level, resamples.method)
    return out


def summarize_estimates(cells: Dict[str, Estimate], reference: Optional[Dict[str, Estimate]] = None,
                        full_scale: float = 1.0, resamples: Optional[Resamples] = None) -> BootstrapSummary:
    """The summaries of ``robustness.summarize`` computed on the point values and on every resample.

    ``reference``: the reference model's cell estimates (same resamples) for CE / mCE (classifiers; ``full_scale``
    is then 100, accuracies being in percent).
    """
    first = next(iter(cells.values()), None)
    level, method = (first.level, first.method) if first is not None else (DEFAULT_LEVEL, DEFAULT_METHOD)

    def combine(points, samples, fn):
        return Estimate(float(fn(np.array(points))), fn(np.stack(samples)), level, method)

    clean = cells.get('clean')
    groups: Dict[str, list] = {}
    for key in cells:
        name, _ = split_key(key)
        if name is not None:
            groups.setdefault(name, []).append(key)
    mean0 = lambda a: a.mean(axis=0)  # noqa: E731
    per = {name: combine([cells[k].point for k in keys], [cells[k].samples for k in keys], mean0)
           for name, keys in groups.items()}
    mpc = combine([e.point for e in per.values()], [e.samples for e in per.values()], mean0) if per else None
    rpc = None
    if mpc is not None and clean is not None:
        with np.errstate(divide='ignore', invalid='ignore'):
            rpc_samples = np.where(clean.samples != 0, mpc.samples / np.where(clean.samples != 0, clean.samples, 1),
                                   np.nan)
        rpc = Estimate(mpc.point / clean.point if clean.point else float('nan'), rpc_samples, level, method)
    summary = BootstrapSummary(dict(cells), clean, per, mpc, rpc, resamples=resamples)
    if reference is not None:
        ce = {}
        for name, keys in groups.items():
            missing = [k for k in keys if k not in reference]
            if missing:
                raise StatsInputError(f'the reference lacks per-image data for cells {missing} needed for CE of '
                                      f'{name!r}')
            err = sum(full_scale - cells[k].samples for k in keys)
            err_ref = sum(full_scale - reference[k].samples for k in keys)
            point_err = sum(full_scale - cells[k].point for k in keys)
            point_ref = sum(full_scale - reference[k].point for k in keys)
            with np.errstate(divide='ignore', invalid='ignore'):
                samples = np.where(err_ref > 0, err / np.where(err_ref > 0, err_ref, 1), np.inf)
            ce[name] = Estimate(point_err / point_ref if point_ref > 0 else float('inf'), samples, level, method)
        summary.CE = ce
        summary.mCE = combine([e.point for e in ce.values()], [e.samples for e in ce.values()], mean0) if ce else None
    return summary


def bootstrap_summary(cells: Mapping[str, object], resamples: Resamples,
                      reference_cells: Optional[Mapping[str, object]] = None,
                      full_scale: float = 1.0) -> BootstrapSummary:
    """Intervals of every cell and summary of one model (``cells``: ``{cell key: per-image object}``)."""
    estimates = cell_estimates(cells, resamples)
    reference = cell_estimates(reference_cells, resamples) if reference_cells is not None else None
    return summarize_estimates(estimates, reference, full_scale, resamples)


def paired_difference(a: Estimate, b: Estimate) -> Estimate:
    """``b - a`` per resample (both must come from the same resamples): point, interval, ``excludes_zero``."""
    if a.samples.shape != b.samples.shape:
        raise StatsInputError(f'paired difference of estimates from different resamples ({a.samples.shape} vs '
                              f'{b.samples.shape})')
    return Estimate(b.point - a.point, b.samples - a.samples, a.level, a.method)


def paired_differences(a: BootstrapSummary, b: BootstrapSummary) -> Dict[str, Estimate]:
    """``{column: Estimate of b - a}`` for every column both summaries have (see ``BootstrapSummary.columns``)."""
    if a.resamples is not None and b.resamples is not None and a.resamples is not b.resamples and not (
            a.resamples.seed == b.resamples.seed and np.array_equal(a.resamples.indices, b.resamples.indices)):
        raise StatsInputError('paired differences need both models bootstrapped on the same resamples '
                              f'(seeds {a.resamples.seed} and {b.resamples.seed})')
    ca, cb = a.columns(), b.columns()
    return {name: paired_difference(ca[name], cb[name]) for name in ca if name in cb}


def _where(cell) -> str:
    meta = getattr(cell, 'meta', None) or {}
    return meta.get('file', 'in memory')
