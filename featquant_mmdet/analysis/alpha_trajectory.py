"""The exponents' trajectory over training, read from the records ``AlphaStatsHook`` writes (``alpha_stats.jsonl``).

Each record holds, at one iteration, per layer (and pooled as ``'all'``) the mean, std, min, max and the count at a
bound of [-1, 5] of the exponents. This module turns one or several such files (e.g. one per seed) into a table per
layer (first and last values, the largest distance of the mean from its start) and a PNG with one panel per layer:
the mean, a band of mean +- std, and min / max, against the iteration.

A run of a model without exponents (ZF, ResNet, SF) writes no such file: :func:`find_alpha_stats` returns None and
:func:`trajectory_report` leaves the plot out with a note instead of failing.
"""
import glob
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .report_files import finish_figure

STATS_FILE = 'alpha_stats.jsonl'
TRAJECTORY_COLUMNS = ('run', 'layer', 'count', 'first_iter', 'last_iter', 'mean_first', 'mean_last', 'max_mean_shift',
                      'std_last', 'min_last', 'max_last', 'at_bound_last')


def find_alpha_stats(path: str) -> Optional[str]:
    """The newest ``alpha_stats.jsonl`` of a work dir (its timestamped log dirs searched), or ``path`` itself if it
    is a file; None when there is none (a model without exponents)."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path}: neither an {STATS_FILE} file nor a work dir')
    found = glob.glob(osp.join(path, STATS_FILE)) + glob.glob(osp.join(path, '*', STATS_FILE))
    return max(found, key=osp.getmtime) if found else None


def read_alpha_stats(path: str) -> Dict[str, Dict[str, np.ndarray]]:
    """``{layer: {'iter', 'mean', 'std', 'min', 'max', 'at_bound', 'count'}: arrays over the records}``, layers in
    file order and ``'all'`` (the pooled exponents) last. Older records without ``at_bound`` give NaN there."""
    rows: Dict[str, Dict[str, List[float]]] = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{line_no}: not a JSON line written by AlphaStatsHook ({err})') from None
            if 'iter' not in record or 'layers' not in record:
                raise ValueError(f'{path}:{line_no}: a record of AlphaStatsHook has "iter" and "layers", got keys '
                                 f'{sorted(record)}')
            layers = dict(record['layers'])
            if 'all' in record:
                layers['all'] = record['all']
            for name, stats in layers.items():
                row = rows.setdefault(name, {k: [] for k in ('iter', 'mean', 'std', 'min', 'max', 'at_bound',
                                                              'count')})
                row['iter'].append(record['iter'])
                for key in ('mean', 'std', 'min', 'max', 'count'):
                    row[key].append(stats[key])
                row['at_bound'].append(stats.get('at_bound', math.nan))
    if not rows:
        raise ValueError(f'{path} holds no record')
    if 'all' in rows:
        rows['all'] = rows.pop('all')
    return {name: {k: np.asarray(v, dtype=np.float64) for k, v in row.items()} for name, row in rows.items()}


def summarize_trajectory(trajectories: Dict[str, Dict[str, Dict[str, np.ndarray]]]) -> List[Dict]:
    """One row per (run, layer): first/last mean, the largest |mean - first mean|, last std/min/max/at_bound."""
    table = []
    for run, layers in trajectories.items():
        for layer, t in layers.items():
            table.append(dict(run=run, layer=layer, count=int(t['count'][-1]), first_iter=int(t['iter'][0]),
                              last_iter=int(t['iter'][-1]), mean_first=float(t['mean'][0]),
                              mean_last=float(t['mean'][-1]),
                              max_mean_shift=float(np.abs(t['mean'] - t['mean'][0]).max()),
                              std_last=float(t['std'][-1]), min_last=float(t['min'][-1]),
                              max_last=float(t['max'][-1]), at_bound_last=float(t['at_bound'][-1])))
    return table


def format_trajectory_table(table: List[Dict]) -> str:
    lines = ['| ' + ' | '.join(TRAJECTORY_COLUMNS) + ' |', '|---|---|' + '---:|' * (len(TRAJECTORY_COLUMNS) - 2)]
    for row in table:
        cells = [row['run'], row['layer'], str(row['count']), str(row['first_iter']), str(row['last_iter'])]
        cells += [f'{row[c]:.4g}' for c in TRAJECTORY_COLUMNS[5:-1]]
        cells.append('n/a' if math.isnan(row['at_bound_last']) else str(int(row['at_bound_last'])))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_alpha_trajectory(trajectories: Dict[str, Dict[str, Dict[str, np.ndarray]]], path: str,
                          title: str = '') -> None:
    """One panel per layer (union over runs): per run the mean (line), mean +- std (band), min / max (dotted)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..ops.quantize import ALPHA_MAX, ALPHA_MIN
    layers: List[str] = []
    for run_layers in trajectories.values():
        layers += [name for name in run_layers if name not in layers]
    if 'all' in layers:
        layers.remove('all')
        layers.append('all')
    cols = min(len(layers), 3)
    rows = math.ceil(len(layers) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, layer in zip(axes.flat, layers):
        lo, hi = math.inf, -math.inf
        for k, (run, run_layers) in enumerate(trajectories.items()):
            if layer not in run_layers:
                continue
            t, c = run_layers[layer], colours[k % len(colours)]
            ax.plot(t['iter'], t['mean'], color=c, lw=1.4, label=run)
            ax.fill_between(t['iter'], t['mean'] - t['std'], t['mean'] + t['std'], color=c, alpha=0.2, lw=0)
            ax.plot(t['iter'], t['min'], color=c, lw=0.8, ls=':')
            ax.plot(t['iter'], t['max'], color=c, lw=0.8, ls=':')
            lo, hi = min(lo, t['min'].min()), max(hi, t['max'].max())
        for bound in (ALPHA_MIN, ALPHA_MAX):  # show a bound when the exponents come near it
            if lo - 0.5 <= bound <= hi + 0.5:
                ax.axhline(bound, color='r', lw=0.8, ls='--')
        ax.axhline(0.0, color='k', lw=0.6, ls='--')
        ax.set_title('all layers' if layer == 'all' else layer, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.set_ylabel('alpha: mean, +-std, min/max', fontsize=8)
        ax.tick_params(labelsize=7)
    if len(trajectories) > 1:
        axes.flat[0].legend(fontsize=7)
    finish_figure(fig, axes, len(layers), title, path)


def trajectory_report(runs: Sequence[Tuple[str, str]], out_dir: str,
                      title: str = '') -> Tuple[Optional[List[Dict]], List[str]]:
    """Plot and tabulate the runs ``[(label, work dir or alpha_stats.jsonl), ...]`` into ``out_dir``.

    Returns ``(table, notes)``: runs without exponents are left out with a note each; when no run has any, the
    table is None and nothing but ``alpha_trajectory.md`` (holding the notes) is written.
    """
    os.makedirs(out_dir, exist_ok=True)
    trajectories, notes = {}, []
    for label, path in runs:
        stats = find_alpha_stats(path)
        if stats is None:
            notes.append(f'{label}: no {STATS_FILE} under {path} (a model without learnable exponents, or a run '
                         'without AlphaStatsHook): alpha plots left out')
            continue
        trajectories[label] = read_alpha_stats(stats)
    md = osp.join(out_dir, 'alpha_trajectory.md')
    if not trajectories:
        with open(md, 'w') as f:
            f.write('# alpha trajectory\n\n' + '\n'.join(f'- {n}' for n in notes) + '\n')
        return None, notes
    table = summarize_trajectory(trajectories)
    plot_alpha_trajectory(trajectories, osp.join(out_dir, 'alpha_trajectory.png'), title)
    with open(md, 'w') as f:
        f.write('# alpha trajectory\n\n' + (title + '\n\n' if title else '') + format_trajectory_table(table) + '\n')
        f.write('\n![alpha trajectory](alpha_trajectory.png)\n')
        if notes:
            f.write('\n' + '\n'.join(f'- {n}' for n in notes) + '\n')
    return table, notes
