"""Multi-seed studies: mean and t-interval over training seeds, differences paired by seed, one-line verdicts.

With values ``x_1..x_n`` of a column over n seeds (one trained model per seed)::

    mean = 1/n sum_s x_s,   s = sqrt(1/(n-1) sum_s (x_s - mean)^2),
    interval = mean -/+ t_{(1+level)/2, n-1} * s / sqrt(n)          (Student t, scipy.stats.t)

A variant is compared with the reference through the per-seed differences ``d_s = x^variant_s - x^ref_s`` over
the seeds both have (pairing removes what a seed does to both, e.g. the data order), with the same t-interval.
Where a column's values are bounded (percent of a metric: 0..100, ``percent_bounds``), the interval of the mean is
cut to the bounds (the true mean lies inside them, so the cut loses no coverage) and that of a difference to
+-(upper - lower).
Each difference also gets the p-value of the t-test of 0, ``p = 2 * (1 - F_{n-1}(|mean| / (s / sqrt(n))))``
(:func:`t_p_value`; below ``1 - level`` exactly when the uncut interval excludes 0). The verdicts are
Holm-adjusted (:mod:`.multiplicity`), the family being the columns of the table for one variant against the
reference: ``better`` / ``worse`` where the Holm-adjusted p-value is at most ``1 - level`` (direction per column:
mCE is better lower), else ``no detectable difference at <level>``. The interval, the p-value and the verdict are
undefined (and say why) with fewer than 2 seeds, and where the values do not vary (``s = 0``): the t-interval
estimates the spread from the values themselves, and metrics in steps (top-1 on 120 images: 0.83 points) give equal
per-seed differences by chance at 2-3 seeds; a zero-width interval and p = 0 would turn that into a verdict. The
tables keep the unadjusted intervals. This covers training randomness (and
the test images only through each run's value); :func:`compare_single_runs` gives the paired image bootstrap of two
single runs, which sees test-image sampling only (no verdict between models: tools/compare_robustness.py).
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .bootstrap import DEFAULT_LEVEL, BootstrapSummary, Estimate, check_level, paired_differences
from .checks import StatsInputError
from .multiplicity import holm_family, holm_verdict, p_text

LOWER_IS_BETTER = ('mCE', )
Bounds = Optional[Tuple[float, float]]


def higher_is_better(column: str, lower_is_better: Sequence[str] = LOWER_IS_BETTER) -> bool:
    """Accuracies, mAPs, mPC, rPC: higher is better; corruption errors (``mCE``, ``CE/...``) lower."""
    return not (column in lower_is_better or column.startswith('CE/') or column.startswith('CE '))


def percent_bounds(column: str) -> Bounds:
    """(0, 100) for a column in percent of its metric (clean value, distortions, mixtures, mPC); None for the ratios
    rPC (above 100 when a distortion helps) and the corruption errors (above 100 when worse than the reference)."""
    return None if column == 'rPC' or not higher_is_better(column) else (0.0, 100.0)


@dataclass
class SeedStat:
    """Mean over ``n`` seeds and its t-interval (``low``/``high`` None with n < 2)."""

    mean: float
    low: Optional[float]
    high: Optional[float]
    n: int
    level: float = DEFAULT_LEVEL
    p: float = float('nan')  # two-sided p-value of mean 0 (t-test; NaN where the interval is undefined)
    sd: float = float('nan')  # standard deviation of the values (ddof=1; NaN below 2 values)

    @property
    def defined(self) -> bool:
        return self.low is not None

    @property
    def undefined_reason(self) -> Optional[str]:
        """Why the interval is undefined (None where it is defined)."""
        if self.defined:
            return None
        if self.n < 2:
            return verdict(None, None, self.n, self.level)
        return (f'interval undefined: the {self.n} values are all equal ({self.mean:+.2f}), no spread over seeds to '
                f'estimate (more seeds needed)')

    @property
    def excludes_zero(self) -> bool:
        return self.defined and (self.low > 0 or self.high < 0)


def t_p_value(mean: float, sd: float, n: int) -> float:
    """Two-sided p-value of a mean of 0 from ``n`` values with mean ``mean`` and standard deviation ``sd``
    (``ddof=1``): ``2 * t.sf(|mean| / (sd / sqrt(n)), n - 1)``; NaN below 2 values and with ``sd = 0`` (the test
    has no spread to compare the mean with)."""
    from scipy import stats
    if n < 2 or sd == 0:
        return float('nan')
    return float(min(1.0, 2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)))


def t_interval(values: Sequence[float], level: float = DEFAULT_LEVEL, bounds: Bounds = None) -> SeedStat:
    """Mean and Student-t interval of ``values`` (NaN / None dropped), cut to ``bounds`` (lower, upper) if given;
    undefined (None ends, p NaN) below 2 values and where the values are all equal."""
    from scipy import stats
    level = check_level(level)
    x = np.array([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], float)
    if x.size == 0:
        raise StatsInputError('no value to average over seeds')
    mean = float(x.mean())
    if x.size < 2:
        return SeedStat(mean, None, None, int(x.size), level)
    sd = float(x.std(ddof=1))
    if sd == 0:
        return SeedStat(mean, None, None, int(x.size), level, sd=0.0)
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * sd / math.sqrt(x.size))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return SeedStat(mean, low, high, int(x.size), level, t_p_value(mean, sd, int(x.size)), sd)


def verdict(low: Optional[float], high: Optional[float], n: int, level: float, better_high: bool = True,
            unit: str = 'seeds') -> str:
    """``better`` / ``worse`` / ``no detectable difference at 95%``, or that the interval is undefined."""
    pct = f'{level * 100:g}%'
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return f'interval undefined with {n} {unit[:-1] if n == 1 else unit} (need at least 2)'
    if low > 0:
        return 'better' if better_high else 'worse'
    if high < 0:
        return 'worse' if better_high else 'better'
    return f'no detectable difference at {pct}'


@dataclass
class SeedStudy:
    """``stats[variant][column]``: SeedStat over seeds; ``diffs[variant][column]``: SeedStat of the per-seed
    difference to ``reference`` (other variants only); ``p_adjusted[variant][column]``: its Holm-adjusted p-value
    (family: the variant's columns); ``verdicts[variant][column]``: the Holm-adjusted verdict."""

    reference: str
    columns: List[str]
    stats: Dict[str, Dict[str, SeedStat]]
    diffs: Dict[str, Dict[str, SeedStat]]
    verdicts: Dict[str, Dict[str, str]]
    level: float = DEFAULT_LEVEL
    p_adjusted: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def family_size(self, variant: str) -> int:
        """The columns in the Holm family of ``variant`` against the reference (those with a p-value)."""
        return sum(1 for p in self.p_adjusted.get(variant, {}).values() if not math.isnan(p))


def aggregate_seeds(runs: Mapping[str, Mapping[object, Mapping[str, Optional[float]]]],
                    reference: Optional[str] = None, level: float = DEFAULT_LEVEL,
                    columns: Optional[Sequence[str]] = None,
                    bounds: Optional[Callable[[str], Bounds]] = None) -> SeedStudy:
    """Aggregate ``runs[variant][seed][column] -> value`` (e.g. each run's table row).

    ``reference``: the variant the others are compared with (default the first). Columns default to every column
    of the reference's runs, in order. ``bounds(column)``: the range of the column's values or None
    (``percent_bounds`` for comparison-table rows); intervals are cut to it.
    """
    level = check_level(level)
    if not runs:
        raise StatsInputError('no runs to aggregate')
    variants = list(runs)
    reference = variants[0] if reference is None else reference
    if reference not in runs:
        raise StatsInputError(f'reference variant {reference!r} not among the variants {variants}')
    if columns is None:
        columns = []
        for row in runs[reference].values():
            columns.extend(c for c in row if c not in columns)
    study = SeedStudy(reference, list(columns), {}, {}, {}, level)
    for variant in variants:
        study.stats[variant] = {}
        for col in columns:
            values = [row.get(col) for row in runs[variant].values()]
            if any(v is not None for v in values):
                study.stats[variant][col] = t_interval(values, level, bounds and bounds(col))
    ref_runs = runs[reference]
    for variant in variants:
        if variant == reference:
            continue
        study.diffs[variant], study.verdicts[variant] = {}, {}
        for col in columns:
            seeds = [s for s in runs[variant] if s in ref_runs and runs[variant][s].get(col) is not None
                     and ref_runs[s].get(col) is not None]
            if not seeds:
                continue
            b = bounds and bounds(col)
            d = t_interval([runs[variant][s][col] - ref_runs[s][col] for s in seeds], level,
                           b and (b[0] - b[1], b[1] - b[0]))
            study.diffs[variant][col] = d
        study.p_adjusted[variant] = holm_family({c: d.p for c, d in study.diffs[variant].items()})
        for col, d in study.diffs[variant].items():
            study.verdicts[variant][col] = (
                holm_verdict(d.mean, study.p_adjusted[variant][col], level, higher_is_better(col)) if d.defined
                else d.undefined_reason)
    return study


def verdict_lines(study: SeedStudy, digits: int = 2) -> List[str]:
    """One line per (variant, column): the paired difference, its unadjusted interval and p-value, the
    Holm-adjusted p-value over the variant's columns and the Holm-adjusted verdict (or why there is none); one line
    for a variant paired with the reference in fewer than 2 seeds, instead of a line per column."""
    lines = []
    pct = f'{study.level * 100:g}%'
    for variant, by_col in study.diffs.items():
        m = study.family_size(variant)
        n = max([d.n for d in by_col.values()] or [0])
        if m == 0 and by_col and n < 2:
            lines.append(f'{variant} - {study.reference}: no verdict, {n} seed{"s" if n != 1 else ""} paired by seed '
                         f'(a t-interval over seeds needs at least 2); the differences are in the table')
            continue
        for col, d in by_col.items():
            interval = (f' [{d.low:+.{digits}f}, {d.high:+.{digits}f}]' if d.defined else '')
            tests = (f'; {p_text(d.p)}, {p_text(study.p_adjusted[variant][col], "Holm-adjusted p")} over the {m} '
                     f'columns, family-wise {pct}' if d.defined else '')
            lines.append(f'{col}: {variant} - {study.reference} = {d.mean:+.{digits}f}{interval} '
                         f'({pct} t-interval over {d.n} seed{"s" if d.n != 1 else ""}, paired by seed{tests}): '
                         f'{study.verdicts[variant][col]}')
    return lines


def compare_single_runs(a: BootstrapSummary, b: BootstrapSummary) -> Dict[str, tuple]:
    """For two single runs (one seed each): ``{column: (Estimate of b - a, verdict)}`` from the paired image
    bootstrap (both summaries on the same resamples). Covers test-image sampling only, not training randomness."""
    return {col: (diff, estimate_verdict(diff, col)) for col, diff in paired_differences(a, b).items()}


def estimate_verdict(diff: Estimate, column: str) -> str:
    """The verdict of a paired bootstrap difference of ``column``."""
    low, high = diff.interval
    return verdict(low, high, diff.samples.size, diff.level, higher_is_better(column), unit='resamples')
