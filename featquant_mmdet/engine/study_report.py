"""The report of a multi-seed study (:mod:`.study`): per column the mean over seeds with its t-interval, the
difference to the reference paired by seed with its interval and verdict; Markdown, CSV and a PNG.

A run's row is the comparison table's row of its ``robustness.json`` (tools/compare_robustness.py's columns: the
clean value, each distortion's mean over its levels, the mixtures, mPC, rPC; percent), so a study's numbers are the
ones a user gets from compare_robustness on the same files.

The verdicts are Holm-adjusted (:mod:`featquant_mmdet.stats.multiplicity`): the family is the columns of the table
for one variant against the reference, the p-values those of the paired t-test over seeds; the tables keep the
unadjusted intervals. :func:`runs_from_report` reads the per-run table of a written ``study.md`` back, so the
verdicts of an existing report can be recomputed (``python -m featquant_mmdet.engine.study_report STUDY.md``).
The exponents' section (:func:`append_alpha_section`) gets the trajectories' table handed in by the caller.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..stats.format import MARKER_NOTE, csv_table, level_text, markdown_table
from ..stats.multiplicity import family_text
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
    """``study.md``, ``study.csv`` and ``study.png`` in ``out_dir`` (made if missing); returns the aggregate and its
    verdict lines."""
    os.makedirs(out_dir, exist_ok=True)
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
        md += ['', f'Verdicts, Holm-adjusted ({verdict_family_text(study)}; the intervals and * above are '
               'unadjusted):', ''] + [f'- {line}' for line in lines]
    md += ['', 'Per run:', '', '| Variant | Seed | ' + ' | '.join(cols) + ' |', '|' + '---|' * (len(cols) + 2)]
    md += [f'| {v} | {s} | ' + ' | '.join('-' if r.get(c) is None else f'{r[c]:.2f}' for c in cols) + ' |'
           for v in runs for s, r in runs[v].items()]
    with open(osp.join(out_dir, 'study.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    text = csv_table(cols, [[study.stats[v].get(c) for c in cols] for v in variants], variants, level, 'mean')
    if others:
        text += csv_table(cols, [[study.diffs[v].get(c) for c in cols] for v in others], others, level,
                          f'difference to {reference}', header=False)
        for kind, of in (('p', lambda v, c: study.diffs[v][c].p), ('Holm p', lambda v, c: study.p_adjusted[v][c])):
            text += csv_table(cols, [[_number(of(v, c)) if c in study.diffs[v] else None for c in cols]
                                     for v in others], others, level, f'{kind} to {reference}', header=False)
    with open(osp.join(out_dir, 'study.csv'), 'w') as f:
        f.write(text)
    plot_means(study, osp.join(out_dir, 'study.png'))
    return study, lines


def holm_family_text(study: SeedStudy) -> str:
    """The family of the verdicts in words, e.g. ``Holm over the 15 columns of this table, family-wise level 95 %``
    (the largest family when variants differ in their defined columns)."""
    return family_text(max([study.family_size(v) for v in study.diffs] or [0]), study.level)


def verdict_family_text(study: SeedStudy) -> str:
    """What the verdicts are adjusted over, or that there is none (no column with an interval over seeds)."""
    if not any(study.family_size(v) for v in study.diffs):
        return 'no column has an interval over seeds'
    return f'{holm_family_text(study)} for each variant against {study.reference}'


def _number(value: float) -> Optional[float]:
    import math
    return None if value is None or math.isnan(value) else float(value)


def runs_from_report(path: str) -> Dict[str, Dict[int, Dict[str, Optional[float]]]]:
    """``runs[variant][seed][column]`` from the ``Per run:`` table of a ``study.md`` written by :func:`write_report`
    (values as printed, two decimals)."""
    with open(path) as f:
        lines = f.read().splitlines()
    try:
        start = lines.index('Per run:') + 2
    except ValueError:
        raise StageError(f'{path}: no "Per run:" table (not a study.md written by the study report)') from None
    head = [c.strip() for c in lines[start].strip('|').split('|')]
    if head[:2] != ['Variant', 'Seed']:
        raise StageError(f'{path}: the "Per run:" table starts with {head[:2]}, expected Variant, Seed')
    runs: Dict[str, Dict[int, Dict[str, Optional[float]]]] = {}
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip('|').split('|')]
        runs.setdefault(cells[0], {})[int(cells[1])] = {
            c: None if v == '-' else float(v) for c, v in zip(head[2:], cells[2:])}
    return runs


def main(argv=None) -> int:
    """Print the Holm-adjusted verdicts of written study reports: ``study_report.py STUDY.md [--reference NAME]``."""
    import argparse
    parser = argparse.ArgumentParser(prog='python -m featquant_mmdet.engine.study_report',
                                     description='Holm-adjusted verdicts of the per-run table of a study.md')
    parser.add_argument('reports', nargs='+', help='study.md files written by tools/study.py')
    parser.add_argument('--reference', help='the variant the others are compared with (default: the first)')
    parser.add_argument('--level', type=float, default=0.95, help='family-wise level (default: 0.95)')
    args = parser.parse_args(argv)
    for path in args.reports:
        try:
            runs = runs_from_report(path)
            study = aggregate_seeds(runs, args.reference, args.level, bounds=percent_bounds)
        except (OSError, StageError, ValueError) as err:
            parser.error(f'{path}: {err}')
        print(f'{path} ({verdict_family_text(study)}):',
              *[f'- {line}' for line in verdict_lines(study)], '', sep='\n')
    return 0


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


def alpha_runs(work_dirs: Dict[str, Dict[int, str]]) -> List[Tuple[str, str, str]]:
    """``[(run label, variant, work dir)]`` of every run (label ``'<variant> s<seed>'``): what the caller hands to
    ``analysis.alpha_trajectory.trajectory_report`` (as ``(label, work dir)``) and, with its table, to
    :func:`append_alpha_section`."""
    return [(f'{v} s{seed}', v, path) for v, by_seed in work_dirs.items() for seed, path in by_seed.items()]


def append_alpha_section(table: Optional[List[Dict]], runs: Sequence[Tuple[str, str, str]], out_dir: str,
                         what: str) -> List[str]:
    """Appended to ``study.md``: per variant the exponents at the end (all layers pooled) of ``table``, the rows of
    ``analysis.alpha_trajectory.trajectory_report`` over ``runs`` (:func:`alpha_runs`; None: no run has
    exponents): their mean (mean +- sd over seeds), std, min, max, the mean at the hook's first record (and its
    iteration: a record every ``interval`` iterations) and the count at a bound of [-1, 5]. A variant without
    exponents gets a note. Returns the Markdown lines."""
    import math

    variant_of = {label: v for label, v, _ in runs}
    variants = list(dict.fromkeys(v for _, v, _ in runs))
    pooled = [r for r in table or [] if r['layer'] == 'all']
    md = ['', f'Exponents (alpha) at the end of {what}, all layers pooled; mean +- sd over seeds '
              '(per layer and over training: alpha_trajectory.md, alpha_trajectory.png):', '',
          '| Variant | Runs | alpha mean | alpha std | min | max | mean at the first record (iteration) | at a bound |',
          '|---|---:|---:|---:|---:|---:|---:|---:|']
    without = []
    for variant in variants:
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


if __name__ == '__main__':
    import sys
    sys.exit(main())
