"""Figure-4-style curves with interval bands: the metric against the distortion level, one line per model.

``panels`` is ``{panel title: {model label: (xs, values, lows, highs)}}`` (lows/highs may be None: no band);
``robustness_report.plot_levels`` builds the same panels from the results (level 0 = the clean cell) and can
hand them here, with each model's bootstrap intervals, to draw the bands.
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

def level_panels(summaries: Mapping[str, object], scale: float = 1.0, title=str
                 ) -> Tuple[Dict[str, Dict[str, 'Curve']], Dict[str, Sequence[str]]]:
    """Panels of :func:`plot_curves_with_bands` from each model's :class:`.bootstrap.BootstrapSummary`:
    per distortion with levels, ``x = [0, levels...]``, ``y = [clean, cells...]`` with the cells' intervals;
    the fixed-strength cells (mixtures) share one panel ``'Mixtures'`` (x = 0 clean, 1.. each mixture).
    ``scale``: e.g. 100 for mAP fractions in percent; ``title``: a distortion's panel title (its name).
    Returns ``(panels, xticklabels)``."""
    from .bootstrap import split_key
    panels: Dict[str, Dict[str, tuple]] = {}
    mixtures: list = []
    for label, summary in summaries.items():
        cells = summary.cells
        clean = cells.get('clean')
        by_name: Dict[str, dict] = {}
        for key in cells:
            name, level = split_key(key)
            if name is None:
                continue
            if level is None:
                if name not in mixtures:
                    mixtures.append(name)
            else:
                by_name.setdefault(name, {})[level] = cells[key]
        for name, by_level in by_name.items():
            ests = ([clean] if clean is not None else []) + [by_level[lv] for lv in sorted(by_level)]
            xs = ([0] if clean is not None else []) + sorted(by_level)
            panels.setdefault(title(name), {})[label] = _curve(xs, ests, scale)
    ticks = {}
    if mixtures:
        for label, summary in summaries.items():
            cells = summary.cells
            present = [m for m in mixtures if m in cells]
            xs = ([0] if 'clean' in cells else []) + [1 + mixtures.index(m) for m in present]
            ests = ([cells['clean']] if 'clean' in cells else []) + [cells[m] for m in present]
            panels.setdefault('Mixtures', {})[label] = _curve(xs, ests, scale)
        ticks['Mixtures'] = ['Clean'] + [title(m) for m in mixtures]
    return panels, ticks


def _curve(xs, estimates, scale):
    intervals = [e.interval for e in estimates]
    return (xs, [e.point * scale for e in estimates], [lo * scale for lo, _ in intervals],
            [hi * scale for _, hi in intervals])


Curve = Tuple[Sequence[float], Sequence[float], Optional[Sequence[float]], Optional[Sequence[float]]]


def plot_curves_with_bands(panels: Mapping[str, Mapping[str, Curve]], out_path: str, ylabel: str,
                           level: Optional[float] = None, ncols: int = 4, xlabel: str = 'level (0: clean)',
                           xticklabels: Optional[Dict[str, Sequence[str]]] = None, alpha: float = 0.2) -> str:
    """Draw one panel per entry of ``panels`` (a line with markers per model, its interval as a shaded band of
    the same colour) into ``out_path`` (PNG, matplotlib's Agg canvas); returns the path.

    ``level``: shown in the legend title (e.g. ``bands: 95% CI``). ``xticklabels``: per panel, labels of the
    x positions (e.g. a mixtures panel: ``['Clean', 'Mix.Minor', 'Mix.Heavy']`` at 0, 1, 2).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError('nothing to plot: no panel')
    titles = list(panels)
    ncols = max(1, min(ncols, len(titles)))
    nrows = -(-len(titles) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.7 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    labels_seen = []
    for ax, title in zip(axes, titles):
        for index, (label, (xs, ys, lows, highs)) in enumerate(panels[title].items()):
            if label not in labels_seen:
                labels_seen.append(label)
            color = f'C{labels_seen.index(label) % 10}'
            xs = np.asarray(xs, float)
            ax.plot(xs, np.asarray(ys, float), marker='o', color=color, label=label)
            if lows is not None and highs is not None:
                ax.fill_between(xs, np.asarray(lows, float), np.asarray(highs, float), color=color, alpha=alpha,
                                linewidth=0)
        if xticklabels and title in xticklabels:
            ax.set_xticks(range(len(xticklabels[title])))
            ax.set_xticklabels(xticklabels[title])
        else:
            ticks = sorted({float(x) for curve in panels[title].values() for x in curve[0]})
            ax.set_xticks(ticks)
            ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in axes[len(titles):]:
        ax.set_visible(False)
    axes[0].legend(fontsize='small', title=f'bands: {level * 100:g}% CI' if level else None,
                   title_fontsize='small')
    fig.tight_layout()
    fig.savefig(out_path)
    return out_path
