"""Text of estimates with intervals: ``value [low, high]``, Markdown and CSV tables, the paired-difference marker.

An entry of a table is an :class:`.bootstrap.Estimate`, a :class:`.seeds.SeedStat`, a tuple ``(value, low,
high)`` or ``(value, low, high, excludes_zero)``, a bare number (no interval) or ``None`` (missing: ``-``).
``scale`` multiplies value and ends (e.g. 100 for mAP fractions shown in percent). Headers carry the level, e.g.
``Original (95% CI)``; a difference whose interval excludes 0 gets :data:`MARKER`.
"""
import csv
import io
import math
from typing import List, Optional, Sequence, Tuple

MARKER = '*'
MARKER_NOTE = f'{MARKER}: the {{level}} interval of the difference excludes 0'


def unpack(entry, scale: float = 1.0) -> Tuple[Optional[float], Optional[float], Optional[float], bool]:
    """``(value, low, high, excludes_zero)`` of a table entry, scaled; None where absent."""
    if entry is None:
        return None, None, None, False
    if hasattr(entry, 'samples'):  # bootstrap Estimate
        low, high = entry.interval
        value, excl = entry.point, entry.excludes_zero
    elif hasattr(entry, 'mean'):  # SeedStat
        value, low, high, excl = entry.mean, entry.low, entry.high, entry.excludes_zero
    elif isinstance(entry, (tuple, list)):
        value, low, high = entry[:3]
        excl = bool(entry[3]) if len(entry) > 3 else (low is not None and high is not None and (low > 0 or high < 0))
    else:
        value, low, high, excl = entry, None, None, False
    sc = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else v * scale  # noqa: E731
    return sc(value), sc(low), sc(high), bool(excl)


def level_text(level: float) -> str:
    return f'{level * 100:g}%'


def interval_header(name: str, level: float, kind: str = 'CI') -> str:
    """``'mAP (95% CI)'``."""
    return f'{name} ({level_text(level)} {kind})'


def format_number(value: Optional[float], digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:+.{digits}f}' if signed else f'{value:.{digits}f}'


def format_interval(value: Optional[float], low: Optional[float] = None, high: Optional[float] = None,
                    digits: int = 2, signed: bool = False, marker: bool = False) -> str:
    """``'12.34 [10.00, 14.00]'``; without an interval the value alone; ``marker``: append ``*``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    text = format_number(value, digits, signed)
    if low is not None and high is not None:
        text += f' [{format_number(low, digits, signed)}, {format_number(high, digits, signed)}]'
    return text + (MARKER if marker else '')


def format_entry(entry, digits: int = 2, scale: float = 1.0, signed: bool = False, mark: bool = False) -> str:
    """:func:`format_interval` of a table entry; ``mark``: add the marker when its interval excludes 0."""
    value, low, high, excl = unpack(entry, scale)
    return format_interval(value, low, high, digits, signed, mark and excl)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence], labels: Sequence[str], level: float,
                   head: str = 'Model', digits: int = 2, scale: float = 1.0, signed: bool = False,
                   mark: bool = False, kind: str = 'CI') -> List[str]:
    """Markdown lines: a header with the level in each column title, one row per label."""
    titles = [interval_header(c, level, kind) for c in columns]
    lines = ['| ' + ' | '.join([head] + titles) + ' |', '|' + '---|' * (len(titles) + 1)]
    for label, row in zip(labels, rows):
        cells = [format_entry(e, digits, scale, signed, mark) for e in row]
        lines.append('| ' + ' | '.join([label] + cells) + ' |')
    return lines


def csv_table(columns: Sequence[str], rows: Sequence[Sequence], labels: Sequence[str], level: float,
              row_kind: str = 'value', scale: float = 1.0, digits: int = 4, header: bool = True) -> str:
    """CSV: ``model,row`` then per column ``<col>``, ``<col> low (95%)``, ``<col> high (95%)``,
    ``<col> excludes 0`` (1/0; empty without an interval)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    pct = level_text(level)
    if header:
        names = ['model', 'row']
        for c in columns:
            names += [c, f'{c} low ({pct})', f'{c} high ({pct})', f'{c} excludes 0']
        writer.writerow(names)
    fmt = lambda v: '' if v is None else f'{v:.{digits}f}'  # noqa: E731
    for label, row in zip(labels, rows):
        out = [label, row_kind]
        for entry in row:
            value, low, high, excl = unpack(entry, scale)
            has = low is not None and high is not None
            out += [fmt(value), fmt(low), fmt(high), (str(int(excl)) if has else '')]
        writer.writerow(out)
    return buf.getvalue()
