"""Comparison of several models' sweeps with bootstrap intervals and paired differences (tools/compare_robustness.py).

Every model is bootstrapped on ONE shared resample matrix of the test images (:class:`~featquant_mmdet.stats.
bootstrap.Resamples`), so the difference ``model - reference`` is computed per resample on the same images (a
paired bootstrap): its interval, a marker where it excludes 0, its p-value and the Holm-adjusted p-value over the
columns of the table (:mod:`~featquant_mmdet.stats.multiplicity`; the family: the columns of one table for one
pair of models).

No model verdict: a results file is one trained model, one training seed. The intervals see the sampling of the
test images, not training randomness (another training of the same config can move a column by more than its
interval), so a comparison of results files says whether a difference lies *beyond test-image sampling* (Holm),
never that one model is better; several training seeds per model (tools/study.py, whose report has Holm-adjusted
verdicts over seeds) give that. Before anything is computed the results must share the test data and distortion seed
(index) and, with intervals, the very same test image ids in every per-image file; an old results file without
per-image data is an error naming it (``bootstrap=0`` compares values only).
The values shown are those of the JSON index (``robustness.summarize`` of the stored metrics, equal to the per-image
recomputation by construction); a JSON edited by hand so that they differ gets a warning.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...stats.bootstrap import DEFAULT_METHOD, Estimate, Resamples, bootstrap_summary, paired_difference
from ...stats.format import MARKER_NOTE, csv_table, level_text, markdown_table
from ...stats.multiplicity import family_text, holm, p_text
from .errors import RobustnessError
from .intervals import check_same_test_images, load_per_image_cells
from .report import check_comparable, column_title, distortion_columns
from .summary import metric_full_scale, summarize


TRAIN_SEEDS = 1  # per compared model: a results file is one trained model


@dataclass
class Comparison:
    """``titles`` / ``keys``: the table's column titles and the bootstrap column names (``P``, ``mean/<d>``,
    ``mPC``, ``rPC``, ``mCE``); ``rows[i][j]``: model i's entry (an Estimate in table units, or a bare value
    without intervals, None where missing); ``diffs[label][j]``: the paired difference to the reference."""

    labels: List[str]
    metric: str
    titles: List[str]
    keys: List[str]
    rows: List[list]
    reference: int
    level: Optional[float] = None  # None: no intervals
    n_images: int = 0
    n_resamples: int = 0
    seed: int = 0
    method: str = DEFAULT_METHOD  # the intervals' (stats.bootstrap.METHODS)
    diffs: Dict[str, list] = field(default_factory=dict)
    summaries: Optional[list] = None  # BootstrapSummary per model (intervals only)
    warnings: List[str] = field(default_factory=list)
    p_values: Dict[str, list] = field(default_factory=dict)  # [label][j]: p of diffs[label][j] = 0 (NaN: undefined)
    p_adjusted: Dict[str, list] = field(default_factory=dict)  # Holm over the columns of the pair's row

    def family(self, label: str) -> str:
        """The Holm family of ``label`` against the reference, in words."""
        m = sum(1 for p in self.p_adjusted.get(label, []) if not math.isnan(p))
        return family_text(m, self.level or 0.95)

    def beyond_sampling(self, label: str, j: int) -> bool:
        """The difference of column j lies beyond test-image sampling after Holm's adjustment."""
        p = self.p_adjusted[label][j]
        return not math.isnan(p) and p <= 1 - self.level + 1e-12

    @property
    def reference_label(self) -> str:
        return self.labels[self.reference]

    def verdicts(self, only: Optional[str] = None) -> List[str]:
        """One line per compared model and column: the difference, its (unadjusted) image-sampling interval and
        p-value, the Holm-adjusted p-value, and whether the difference lies beyond test-image sampling. No
        better/worse between the models: one training seed each (see the module's docstring). ``only``: the lines
        of one compared model."""
        if self.level is None:
            return []
        lines = []
        seeds = f'{TRAIN_SEEDS} training seed per model'
        for label, diffs in self.diffs.items():
            if only is not None and label != only:
                continue
            for j, (title, diff) in enumerate(zip(self.titles, diffs)):
                if diff is None:
                    continue
                low, high = diff.interval
                where = f'{level_text(self.level)} image-sampling interval over {self.n_images} test images, {seeds}'
                head = f'{title}: {label} - {self.reference_label} = {diff.point:+.2f}'
                if math.isnan(low) or math.isnan(high):
                    lines.append(f'{head} ({where}): interval undefined (some resamples have no value, e.g. a CE '
                                 'reference without errors)')
                    continue
                tests = f'{p_text(self.p_values[label][j])}, {p_text(self.p_adjusted[label][j], "Holm-adjusted p")}'
                outcome = ('beyond test-image sampling' if self.beyond_sampling(label, j) else
                           'within test-image sampling')
                lines.append(f'{head} [{low:+.2f}, {high:+.2f}] ({where}; {tests}): {outcome}')
        return lines

    def no_verdict_note(self) -> str:
        """Why the comparison gives no better/worse between the models, and how to get one."""
        return (f'No verdict between the models: each has {TRAIN_SEEDS} training seed, and these intervals '
                'cover the sampling of test images only, not training randomness (another training of the same '
                'config can differ by more). For a verdict, train several seeds per model: tools/study.py (or '
                'tools/demo.py --train-seeds 0 1 2), whose report gives Holm-adjusted verdicts over seeds; results '
                'files of several seeds per model: give each model\'s files one label (--labels A A A B B B).')


def resolve_reference(reference: Optional[str], labels: Sequence[str], paths: Sequence[str]) -> int:
    """The baseline of the differences: a label, a 0-based index, or one of the compared results files."""
    if reference is None:
        return 0
    if reference in labels:
        return list(labels).index(reference)
    if reference.isdigit() and int(reference) < len(labels):
        return int(reference)
    import os.path as osp
    matches = [i for i, p in enumerate(paths) if osp.abspath(p) == osp.abspath(reference)]
    if matches:
        return matches[0]
    raise RobustnessError(f'--reference {reference!r} is none of the compared models: give a label '
                          f'({", ".join(labels)}), an index 0-{len(labels) - 1} or one of the results files (the mCE '
                          'normaliser is --ce-reference)')


def _columns(results: Sequence[dict], with_ce: bool):
    names = distortion_columns(results)
    clean = 'Clean' if results[0]['task'] == 'classification' else 'Original'
    titles = [clean] + [column_title(n) for n in names] + ['mPC', 'rPC'] + (['mCE'] if with_ce else [])
    keys = ['P'] + [f'mean/{n}' for n in names] + ['mPC', 'rPC'] + (['mCE'] if with_ce else [])
    return titles, keys


def _scaled(est: Optional[Estimate], scale: float) -> Optional[Estimate]:
    return None if est is None else Estimate(est.point * scale, est.samples * scale, est.level, est.method)


def _key_scale(key: str, metric: str) -> float:
    """Table units: percent of the metric for P and means; rPC and mCE (ratios) times 100."""
    return 100.0 if key in ('rPC', 'mCE') or key.startswith('CE/') else 100.0 / metric_full_scale(metric)


def compare_results(results: Sequence[dict], paths: Sequence[str], labels: Sequence[str],
                    metric: Optional[str] = None, reference: Optional[str] = None, n_resamples: int = 1000,
                    seed: int = 0, level: float = 0.95, ce_reference: Optional[dict] = None,
                    ce_reference_path: Optional[str] = None, method: str = DEFAULT_METHOD) -> Comparison:
    """Check the inputs, then the table entries (with intervals unless ``n_resamples`` is 0; ``method``: the
    interval method, ``stats.bootstrap.METHODS``) and the paired differences to the reference model with their
    p-values and Holm-adjusted p-values."""
    metric = check_comparable(results, labels, metric)
    ref = resolve_reference(reference, labels, paths)
    titles, keys = _columns(results, ce_reference is not None)
    comp = Comparison(list(labels), metric, titles, keys, [], ref)
    points = [_points(res, metric, ce_reference) for res in results]  # the values of the JSON index
    if n_resamples == 0:
        comp.rows = [[None if p.get(k) is None else p[k] * _key_scale(k, metric) for k in keys] for p in points]
        return comp
    loaded = [load_per_image_cells(res, path, metric) for res, path in zip(results, paths)]
    check_same_test_images([identity for _, identity in loaded])
    ref_cells = None
    if ce_reference is not None:
        needed = sorted({k for cells, _ in loaded for k in cells if k in ce_reference['cells']})
        ref_cells, ref_identity = load_per_image_cells(ce_reference, ce_reference_path, metric, needed)
        check_same_test_images([loaded[0][1], ref_identity])
    n_images = len(loaded[0][1]['image_ids'])
    resamples = Resamples.draw(n_images, n_resamples, seed, level, method)
    summaries = [bootstrap_summary(cells, resamples, ref_cells, metric_full_scale(metric)) for cells, _ in loaded]
    comp.level, comp.n_images, comp.n_resamples, comp.seed, comp.summaries = (level, n_images, n_resamples, seed,
                                                                              summaries)
    comp.method = method
    columns = [s.columns() for s in summaries]
    for label, path, cols, pts in zip(labels, paths, columns, points):
        for key, est in cols.items():
            value = pts.get(key[5:] if key.startswith('cell/') else key, est.point)
            if value is not None and not math.isclose(value, est.point, rel_tol=1e-5, abs_tol=1e-7):
                comp.warnings.append(f'{path}: {key} is {value!r} in the JSON but {est.point!r} from its per-image '
                                     'data (edited by hand?): the table shows the JSON\'s value, the interval is '
                                     'of the per-image data')
            if value is not None:
                cols[key] = Estimate(value, est.samples, est.level, est.method)
    comp.rows = [[_scaled(cols.get(k), _key_scale(k, metric)) for k in keys] for cols in columns]
    for i, label in enumerate(labels):
        if i == ref:
            continue
        with np.errstate(invalid='ignore'):  # inf - inf (a CE without reference errors): NaN, interval undefined
            comp.diffs[label] = [None if a is None or b is None else paired_difference(a, b)
                                 for a, b in zip(comp.rows[ref], comp.rows[i])]
        comp.p_values[label] = [float('nan') if d is None else d.p_value for d in comp.diffs[label]]
        comp.p_adjusted[label] = holm(comp.p_values[label]).tolist()
    return comp


def _points(res: dict, metric: str, ce_reference: Optional[dict]) -> Dict[str, Optional[float]]:
    """The summary values of a results file's stored metrics (``robustness.summarize``), by bootstrap column name,
    and each cell's metric by its key."""
    summary = summarize(res, metric, ce_reference)
    values = {'P': summary['P'], 'mPC': summary['mPC'], 'rPC': summary['rPC'], 'mCE': summary.get('mCE')}
    values.update({f'mean/{n}': d['mean'] for n, d in summary['per_distortion'].items()})
    values.update({f'CE/{n}': v for n, v in (summary.get('CE') or {}).items()})
    values.update({key: float(cell['metrics'][metric]) for key, cell in res['cells'].items()})
    return values


def _point_diffs(comp: Comparison) -> Dict[str, list]:
    ref = comp.rows[comp.reference]
    return {label: [None if a is None or b is None else b - a for a, b in zip(ref, row)]
            for i, (label, row) in enumerate(zip(comp.labels, comp.rows)) if i != comp.reference}


def to_markdown(comp: Comparison) -> str:
    """The table (``value [low, high]`` with the level in each header), the differences to the reference (marked
    where the interval excludes 0) and the verdict lines."""
    units = ('distortion columns: mean over levels; mPC: mean over distortions; rPC = mPC / clean'
             + ('; mCE: mean corruption error relative to the reference classifier' if 'mCE' in comp.keys else ''))
    if comp.level is None:
        head = f'{comp.metric} (%), no intervals (--bootstrap 0); {units}'
        table = markdown_table(comp.titles, comp.rows, comp.labels, 0.95)
        table[0] = '| ' + ' | '.join(['Model'] + comp.titles) + ' |'
        diffs = _point_diffs(comp)
        diff_table = markdown_table(comp.titles, list(diffs.values()), list(diffs), 0.95, signed=True)
        diff_table[0] = table[0]
        out = [head, ''] + table
        if diffs:
            out += ['', f'Difference to {comp.reference_label} (percentage points)', ''] + diff_table
        return '\n'.join(out) + '\n'
    pct = level_text(comp.level)
    head = (f'{comp.metric} (%), {pct} {comp.method} bootstrap intervals over the {comp.n_images} test images '
            f'({comp.n_resamples} resamples, seed {comp.seed}; docs/statistics.md); {units}')
    out = [head, ''] + markdown_table(comp.titles, comp.rows, comp.labels, comp.level)
    if comp.diffs:
        out += ['', f'Difference to {comp.reference_label} (percentage points; paired bootstrap: the same '
                    f'resampled images for both models; image-sampling intervals, {TRAIN_SEEDS} training seed '
                    'per model)', '']
        out += markdown_table(comp.titles, list(comp.diffs.values()), list(comp.diffs), comp.level, signed=True,
                              mark=True)
        out += ['', MARKER_NOTE.format(level=pct) + ' (unadjusted)', '']
        for label in comp.diffs:
            out += [f'{label} - {comp.reference_label}, test-image sampling ({comp.family(label)}; the intervals are '
                    'unadjusted):', '']
            out += [f'- {line}' for line in comp.verdicts(label)]
            out += ['']
        out += [comp.no_verdict_note()]
    return '\n'.join(out) + '\n'


def to_csv(comp: Comparison) -> str:
    """``model,row`` then per column its value, ``low``, ``high`` and ``excludes 0``; rows ``value`` per model,
    ``diff_to_<reference>`` per compared model and, with intervals, ``p_to_<reference>`` (unadjusted p-values) and
    ``holm_p_to_<reference>`` (Holm over the row's columns) in the value fields."""
    level = comp.level or 0.95
    text = csv_table(comp.titles, comp.rows, comp.labels, level, 'value')
    diffs = comp.diffs if comp.level is not None else _point_diffs(comp)
    if diffs:
        text += csv_table(comp.titles, list(diffs.values()), list(diffs), level,
                          f'diff_to_{comp.reference_label}', header=False)
    for kind, values in (('p', comp.p_values), ('holm_p', comp.p_adjusted)):
        if values:  # p-values in the value fields
            text += csv_table(comp.titles, [[None if math.isnan(p) else p for p in row] for row in values.values()],
                              list(values), level, f'{kind}_to_{comp.reference_label}', header=False)
    return text


def plot(comp: Comparison, results: Sequence[dict], out_path: str) -> str:
    """Figure-4 curves: with intervals, each model's cells with their bands (same resamples); else the plain
    curves of :func:`.report.plot_levels`."""
    from .report import plot_levels
    if comp.summaries is None:
        return plot_levels(results, comp.labels, out_path, comp.metric)
    from ...stats.plot import level_panels, plot_curves_with_bands
    scale = 100.0 / metric_full_scale(comp.metric)
    panels, ticks = level_panels(dict(zip(comp.labels, comp.summaries)), scale, title=column_title)
    if not panels:
        raise RobustnessError('nothing to plot: the results have no distorted cell')
    return plot_curves_with_bands(panels, out_path, f'{comp.metric} (%)', comp.level, xticklabels=ticks)
