"""Many columns, one family: Holm's step-down adjustment of p-values and the verdicts it allows.

A comparison table of two models has 15-17 columns; at 95 % each interval that excludes 0 by chance has probability
5 %, so among ~15 columns one or two do even when the models are the same. The *family* here is the columns of one
table for one pair of models (a variant against the reference). With the family's p-values ``p_1..p_m`` (each for
"the difference is 0"), sorted ``p_(1) <= ... <= p_(m)``, Holm's adjusted p-values are::

    p~_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))

(non-decreasing in the raw p-values, capped at 1; tied p-values get the same adjusted value). Declaring a column
different where ``p~_i <= 1 - level`` keeps the probability of *any* false declaration in the family at most
``1 - level``, whatever the dependence between the columns (Holm 1979, Scand. J. Statist. 6:65-70). A p-value that
is undefined (NaN: an interval that is undefined, e.g. CE without reference errors) is left out of the family and
keeps NaN. The p-values: :attr:`.bootstrap.Estimate.p_value` (image bootstrap, the interval method's inverse) and
:func:`.seeds.t_p_value` (t-test over training seeds).
"""
import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .checks import StatsInputError


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values of one family, in the given order (NaN entries stay NaN and do not count in m)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise StatsInputError(f'p-values must be a 1-D sequence, got shape {p.shape}')
    defined = ~np.isnan(p)
    if ((p[defined] < 0) | (p[defined] > 1)).any():
        raise StatsInputError(f'p-values must lie in [0, 1], got {p[defined][(p[defined] < 0) | (p[defined] > 1)]}')
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(defined)
    if idx.size == 0:
        return out
    order = idx[np.argsort(p[idx], kind='stable')]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def family_text(m: int, level: float, what: str = 'columns of this table') -> str:
    """``'Holm over the 15 columns of this table, family-wise level 95 %'``."""
    return f'Holm over the {m} {what}, family-wise level {level * 100:g} %'


def holm_verdict(point: float, p_adjusted: Optional[float], level: float, better_high: bool = True) -> str:
    """``better`` / ``worse`` where the Holm-adjusted p-value is at most ``1 - level`` (direction from the sign of
    ``point``), else ``no detectable difference at 95%`` (the family-wise level); undefined without a p-value."""
    if p_adjusted is None or math.isnan(p_adjusted):
        return 'undefined (no p-value)'
    if p_adjusted <= 1 - level + 1e-12 and point != 0:
        return 'better' if (point > 0) == better_high else 'worse'
    return f'no detectable difference at {level * 100:g}%'


def holm_family(p_values: Mapping[str, float]) -> Dict[str, float]:
    """:func:`holm` of a ``{column: p}`` family, as ``{column: adjusted p}``."""
    columns = list(p_values)
    return dict(zip(columns, holm([p_values[c] for c in columns]).tolist()))


def family_size(p_values: Mapping[str, float]) -> int:
    """The columns that count in the family (those with a defined p-value)."""
    return sum(1 for p in p_values.values() if p is not None and not math.isnan(p))


def p_text(p: Optional[float], name: str = 'p') -> str:
    """``'p = 0.012'``, ``'p < 0.001'``, ``'p = 1'``, ``'p n/a'`` (undefined); ``name`` e.g. ``'Holm-adjusted p'``."""
    if p is None or math.isnan(p):
        return f'{name} n/a'
    if p < 0.001:
        return f'{name} < 0.001'
    return f'{name} = {p:.3f}' if p < 1 else f'{name} = 1'
