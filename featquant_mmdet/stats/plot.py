"""Figure-4-style curves with interval bands: the metric against the distortion level, one line per model.

``panels`` is ``{panel title: {model label: (xs, values, lows, highs)}}`` (lows/highs may be None: no band);
``robustness_report.plot_levels`` builds the same panels from the results (level 0 = the clean cell) and can
hand them here, with each model's bootstrap intervals, to draw the bands.
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

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
