"""The report of a multi-seed study (:mod:`.study`): per column the mean over seeds with its t-interval, the
difference to the reference paired by seed with its interval and verdict; Markdown, CSV and a PNG.

A run's row is the comparison table's row of its ``robustness.json`` (tools/compare_robustness.py's columns: the
clean value, each distortion's mean over its levels, the mixtures, mPC, rPC; percent), so a study's numbers are the
ones a user gets from compare_robustness on the same files.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..stats.format import MARKER_NOTE, csv_table, level_text, markdown_table
from ..stats.seeds import SeedStudy, aggregate_seeds, percent_bounds, verdict_lines
from .stages import StageError


def aggregate_runs(paths: Dict[str, Dict[int, str]], columns: Optional[Sequence[str]] = None
                   ) -> Dict[str, Dict[int, Dict[str, Optional[float]]]]:
    """``runs[variant][seed][column]`` from each run's results file (``paths[variant][seed]``)."""
    from ..evaluation.robustness import RobustnessError, report
    runs: Dict[str, Dict[int, Dict[str, Optional[float]]]] = {}
    first: Optional[Tuple[str, set]] = None  # every run must hold the same cells: a column averages over its levels
    for variant, by_seed in paths.items():
        runs[variant] = {}
        for seed, path in by_seed.items():
            try:
                result = report.load_all([path])
                cells = set(result[0]['cells'])
                first = first or (path, cells)
                if cells != first[1]:
                    raise StageError(f'{path} holds other cells than {first[0]} (only here: '
                                     f'{sorted(cells - first[1])}, only there: {sorted(first[1] - cells)}): the runs '
                                     'must be swept on the same distortions and levels (a sweep folder reused with '
                                     'other levels keeps its old cells: remove it and rerun)')
                titles, rows = report.comparison_table(result, [variant])
            except RobustnessError as err:
                raise StageError(f'{path}: {err}') from None
            row = dict(zip(titles, rows[0]))
            if columns is not None:
                missing = [c for c in columns if c not in row]
                if missing:
                    raise StageError(f'{path} has no column {missing}; it has {list(row)}')
                row = {c: row[c] for c in columns}
            runs[variant][seed] = row
    return runs


def write_report(runs, out_dir: str, reference: str, level: float, caption: str) -> Tuple[SeedStudy, List[str]]:
    """``study.md``, ``study.csv`` and ``study.png`` in ``out_dir``; returns the aggregate and its verdict lines."""
    study = aggregate_seeds(runs, reference, level, bounds=percent_bounds)
    cols, variants = study.columns, list(study.stats)
    others = [v for v in variants if v != reference]
    lines = verdict_lines(study)
    seeds = sorted({s for by_seed in runs.values() for s in by_seed})
    md = [f'{caption}: seeds {seeds}; mean over seeds and its {level_text(level)} t-interval (percent; cut to '
          '[0, 100] where it reaches beyond, rPC and mCE uncut).', '']
    md += markdown_table(cols, [[study.stats[v].get(c) for c in cols] for v in variants], variants, level,
                         head='Variant', kind='t-interval')
    if others:
        md += ['', f'Difference to {reference}, paired by seed ({level_text(level)} t-interval); '
               + MARKER_NOTE.format(level=level_text(level)) + '.', '']
        md += markdown_table(cols, [[study.diffs[v].get(c) for c in cols] for v in others],
                             [f'{v} - {reference}' for v in others], level, head='Difference', signed=True,
                             mark=True, kind='t-interval')
        md += ['', 'Verdicts:', ''] + [f'- {line}' for line in lines]
    md += ['', 'Per run:', '', '| Variant | Seed | ' + ' | '.join(cols) + ' |', '|' + '---|' * (len(cols) + 2)]
    md += [f'| {v} | {s} | ' + ' | '.join('-' if r.get(c) is None else f'{r[c]:.2f}' for c in cols) + ' |'
           for v in runs for s, r in runs[v].items()]
    with open(osp.join(out_dir, 'study.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    text = csv_table(cols, [[study.stats[v].get(c) for c in cols] for v in variants], variants, level, 'mean')
    if others:
        text += csv_table(cols, [[study.diffs[v].get(c) for c in cols] for v in others], others, level,
                          f'difference to {reference}', header=False)
    with open(osp.join(out_dir, 'study.csv'), 'w') as f:
        f.write(text)
    plot_means(study, osp.join(out_dir, 'study.png'))
    return study, lines


def plot_means(study: SeedStudy, path: str) -> str:
    """Per column, one bar per variant at its mean over seeds with the t-interval as an error bar."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols, variants = study.columns, list(study.stats)
    fig = Figure(figsize=(max(6.0, 0.7 * len(cols) * max(1, len(variants)) / 1.5), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(variants)
    x = np.arange(len(cols))
    for i, v in enumerate(variants):
        stats = [study.stats[v].get(c) for c in cols]
        means = np.array([s.mean if s else np.nan for s in stats], float)
        low = np.array([s.mean - s.low if s and s.defined else 0.0 for s in stats], float)
        high = np.array([s.high - s.mean if s and s.defined else 0.0 for s in stats], float)
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, means, width, yerr=np.vstack([low, high]), capsize=2,
               label=v, color=f'C{i % 10}')
    ax.set_xticks(x)
    ax.set_xticklabels(cols, rotation=45, ha='right', fontsize='small')
    ax.set_ylabel('percent')
    ax.set_title(f'mean over seeds, bars: {level_text(study.level)} t-interval')
    ax.legend(fontsize='small')
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _mean_sd(values: Sequence[float]) -> str:
    """``mean +- sd`` (sd 0 for a single value)."""
    import numpy as np
    x = np.asarray(values, dtype=float)
    return f'{x.mean():+.3f} +- {x.std(ddof=1) if x.size > 1 else 0.0:.3f}'


def append_alpha_section(work_dirs: Dict[str, Dict[int, str]], out_dir: str, what: str) -> List[str]:
    """The exponents of every run, from the ``alpha_stats.jsonl`` its training wrote (``work_dirs[variant][seed]``):
    ``alpha_trajectory.{md,png}`` in ``out_dir`` (one line per run, per layer) and, appended to ``study.md``, per
    variant the exponents at the end (all layers pooled): their mean (mean +- sd over seeds), std, min, max, the
    mean at the hook's first record (and its iteration: a record every ``interval`` iterations) and the count at a
    bound of [-1, 5]. A variant without exponents gets a note, not a plot. Returns the Markdown lines."""
    import math

    from ..analysis.alpha_trajectory import trajectory_report
    runs = [(f'{v} s{seed}', v, path) for v, by_seed in work_dirs.items() for seed, path in by_seed.items()]
    variant_of = {label: v for label, v, _ in runs}
    table, _ = trajectory_report([(label, path) for label, _, path in runs], out_dir,
                                 title=f'alpha over {what}, one line per (variant, seed)')
    pooled = [r for r in table or [] if r['layer'] == 'all']
    md = ['', f'Exponents (alpha) at the end of {what}, all layers pooled; mean +- sd over seeds '
              '(per layer and over training: alpha_trajectory.md, alpha_trajectory.png):', '',
          '| Variant | Runs | alpha mean | alpha std | min | max | mean at the first record (iteration) | at a bound |',
          '|---|---:|---:|---:|---:|---:|---:|---:|']
    without = []
    for variant in work_dirs:
        mine = [r for r in pooled if variant_of[r['run']] == variant]
        if not mine:
            without.append(variant)
            continue
        bound = [r['at_bound_last'] for r in mine if not math.isnan(r['at_bound_last'])]
        first_iters = '/'.join(sorted({str(r['first_iter']) for r in mine}))
        md.append(f'| {variant} | {len(mine)} | {_mean_sd([r["mean_last"] for r in mine])} | '
                  f'{_mean_sd([r["std_last"] for r in mine])} | {min(r["min_last"] for r in mine):+.3f} | '
                  f'{max(r["max_last"] for r in mine):+.3f} | {_mean_sd([r["mean_first"] for r in mine])} '
                  f'({first_iters}) | {int(sum(bound)) if bound else "n/a"} |')
    if without:
        md += ['', f'No exponents in {", ".join(without)} (no alpha_stats.jsonl in its runs): left out of the alpha '
                   'table and plots.']
    if not pooled:
        md = md[:1] + [f'No variant has learnable exponents ({", ".join(without)}): no alpha table or plots.']
    with open(osp.join(out_dir, 'study.md'), 'a') as f:
        f.write('\n'.join(md) + '\n')
    return md
