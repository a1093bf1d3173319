"""The metric of a sweep and its summary numbers.

With ``P_{d,l}`` the metric of cell (d, l) and ``L_d`` the levels of distortion d (one for a mixture), following
the common robustness benchmarks (ImageNet-C: Hendrycks & Dietterich 2019; Pascal-C / COCO-C: Michaelis et al.
2019)::

    P    = P_clean                                   clean performance
    P_d  = 1/|L_d| sum_l P_{d,l}                     per-distortion mean
    mPC  = 1/D sum_d P_d                             mean performance under corruption
    rPC  = mPC / P                                   relative performance under corruption
    CE_d = sum_l E_{d,l} / sum_l E^ref_{d,l}         corruption error of a classifier, E = 100% - accuracy,
    mCE  = 1/D sum_d CE_d                            normalised by a reference model's results file

The metric is a key of the test evaluator's output: ``pascal_voc/mAP`` (VOC), ``coco/bbox_mAP`` (COCO),
``accuracy/top1`` by default for classifiers (``accuracy/top5`` is what the paper's Table 2 reports).
"""
from typing import Dict, Optional, Sequence

from .cells import Cell, cells_by_distortion
from .errors import RobustnessError

# Test metric -> (its default prefix, the key it reports that the summary uses by default).
DEFAULT_METRIC_KEYS = {
    'VOCMetric': ('pascal_voc', 'mAP'),
    'CocoMetric': ('coco', 'bbox_mAP'),
    'Accuracy': ('accuracy', 'top1'),
}


def metric_cfgs(evaluator_cfg) -> list:
    """The metric configs of a ``test_evaluator`` (a metric dict, a list of them, or an Evaluator dict)."""
    if isinstance(evaluator_cfg, dict) and 'metrics' in evaluator_cfg:
        evaluator_cfg = evaluator_cfg['metrics']
    if isinstance(evaluator_cfg, dict):
        return [evaluator_cfg]
    return list(evaluator_cfg or [])


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def default_metric_key(evaluator_cfg) -> str:
    """The summary metric of a test evaluator: VOC mAP, COCO bbox mAP or top-1 accuracy."""
    types = []
    for metric in metric_cfgs(evaluator_cfg):
        mtype = metric.get('type') if isinstance(metric, dict) else None
        mtype = mtype if isinstance(mtype, str) else getattr(mtype, '__name__', repr(mtype))
        types.append(mtype)
        if mtype in DEFAULT_METRIC_KEYS:
            prefix, name = DEFAULT_METRIC_KEYS[mtype]
            if mtype == 'CocoMetric' and 'bbox' not in _as_list(metric.get('metric', 'bbox')):
                name = f'{_as_list(metric["metric"])[0]}_mAP'
            return f'{metric.get("prefix") or prefix}/{name}'
    raise RobustnessError(f'no default summary metric for test evaluator metrics {types}; known: '
                          f'{sorted(DEFAULT_METRIC_KEYS)}; name one with --metric (e.g. pascal_voc/mAP)')


def metric_prefixes(evaluator_cfg) -> Dict[str, Optional[str]]:
    """``{metric type: the prefix of its keys}`` (its ``prefix`` argument, else the class's ``default_prefix``,
    as mmengine's ``BaseMetric`` does); None for a metric that adds no prefix."""
    from mmdet.registry import METRICS
    out = {}
    for metric_cfg in metric_cfgs(evaluator_cfg):
        if not isinstance(metric_cfg, dict):  # an already built metric
            out[type(metric_cfg).__name__] = getattr(metric_cfg, 'prefix', None)
            continue
        mtype = metric_cfg.get('type')
        cls = mtype if isinstance(mtype, type) else METRICS.get(mtype) if isinstance(mtype, str) else None
        out[getattr(cls, '__name__', str(mtype))] = metric_cfg.get('prefix') or getattr(cls, 'default_prefix', None)
    return out


def check_metric_key(metric: str, evaluator_cfg) -> None:
    """Before any evaluation: ``metric`` is ``<prefix>/<name>`` with the prefix of one of the test evaluator's
    metrics. Which names a metric reports depends on its arguments and the data (COCO's per-class keys): the name
    is checked against what the clean cell reported, the sweep's first evaluation."""
    if not isinstance(metric, str) or '/' not in metric:
        raise RobustnessError(f'metric key {metric!r} must be "<prefix>/<name>" as the evaluator reports it, '
                              'e.g. pascal_voc/mAP, coco/bbox_mAP, accuracy/top1, accuracy/top5')
    prefixes = metric_prefixes(evaluator_cfg)
    if None in prefixes.values() or metric.split('/')[0] in prefixes.values():
        return
    raise RobustnessError(f'metric {metric!r} is not reported by the test evaluator {list(prefixes)}: its keys '
                          f'start with {", ".join(p + "/" for p in prefixes.values())} (pass one with --metric)')


def check_reported(metric: str, metrics: dict, where: str) -> None:
    """The metric is among those a cell reported (the clean cell's, before the distorted ones)."""
    if metric not in metrics:
        raise RobustnessError(f'metric {metric!r} is not reported by the test evaluator; it reports '
                              f'{sorted(metrics)} (pass one of them with --metric; {where})')


def task_of(metric_key: str) -> str:
    return 'classification' if metric_key.split('/')[0] == 'accuracy' else 'detection'


def metric_full_scale(metric_key: str) -> float:
    """The value of a perfect model: accuracies are in percent (mmpretrain's convention), mAPs are fractions."""
    return 100.0 if task_of(metric_key) == 'classification' else 1.0


def cell_value(cell: dict, metric: str, where: str = '') -> float:
    metrics = cell['metrics']
    if metric not in metrics:
        raise RobustnessError(f'{where}metric {metric!r} not in the stored metrics {sorted(metrics)}')
    return float(metrics[metric])


def summarize(results: dict, metric: Optional[str] = None, reference: Optional[dict] = None) -> dict:
    """P, per-distortion means, mPC, rPC (and CE_d, mCE against ``reference``) from stored cells (see module doc).

    Every distortion counts once in mPC/mCE whatever its number of levels (a mixture has one cell).
    """
    metric = metric or results['metric']
    cells = results['cells']
    summary: dict = {'metric': metric}
    summary['P'] = cell_value(cells['clean'], metric, 'clean cell: ') if 'clean' in cells else None
    per_distortion = {}
    for name, by_level in cells_by_distortion(cells).items():
        values = [cell_value(cells[key], metric, f'cell {key}: ') for key in by_level.values()]
        per_distortion[name] = {'mean': sum(values) / len(values), 'levels': list(by_level)}
    summary['per_distortion'] = per_distortion
    means = [d['mean'] for d in per_distortion.values()]
    summary['mPC'] = sum(means) / len(means) if means else None
    summary['rPC'] = (summary['mPC'] / summary['P']
                      if summary['mPC'] is not None and summary['P'] not in (None, 0) else None)
    if reference is not None:
        summary.update(corruption_errors(results, reference, metric))
    return summary


def corruption_errors(results: dict, reference: dict, metric: Optional[str] = None) -> dict:
    """ImageNet-C's CE_d = sum_l E_{d,l} / sum_l E^ref_{d,l} and mCE = mean_d CE_d, E = 1 - accuracy."""
    metric = metric or results['metric']
    if task_of(metric) != 'classification':
        raise RobustnessError(f'corruption errors (CE, mCE) are defined for classifiers; metric is {metric!r}')
    full = metric_full_scale(metric)
    ref_cells = reference['cells']
    ce = {}
    for name, by_level in cells_by_distortion(results['cells']).items():
        missing = [key for key in by_level.values() if key not in ref_cells]
        if missing:
            raise RobustnessError(f'the reference results lack cells {missing} needed for CE of {name!r}')
        err = sum(full - cell_value(results['cells'][key], metric) for key in by_level.values())
        err_ref = sum(full - cell_value(ref_cells[key], metric, 'reference: ') for key in by_level.values())
        ce[name] = err / err_ref if err_ref > 0 else float('inf')
    return {
        'CE': ce,
        'mCE': sum(ce.values()) / len(ce) if ce else None,
        'reference': {k: reference['identity'].get(k) for k in ('config_name', 'checkpoint', 'checkpoint_sha256')},
    }


def check_reference(reference: dict, identity: dict, cells: Sequence[Cell], metric: str, path: str = '') -> None:
    """A reference for mCE must cover every distorted cell, on the same test data and distortion seed."""
    where = f'reference {path}: ' if path else 'reference: '
    if task_of(metric) != 'classification':
        raise RobustnessError(f'{where}mCE needs a classifier (metric accuracy/...), this sweep reports {metric!r}')
    ref_id = reference['identity']
    for field in ('test_data', 'distortion_seed'):
        if ref_id.get(field) != identity.get(field):
            raise RobustnessError(f'{where}{field} {ref_id.get(field)!r} differs from this sweep\'s '
                                  f'{identity.get(field)!r}: its errors are not comparable')
    missing = [c.key for c in cells if c.distortion is not None and c.key not in reference['cells']]
    if missing:
        raise RobustnessError(f'{where}lacks cells {missing}; run the reference model\'s sweep on them first')
    lacking = [c.key for c in cells if c.distortion is not None and metric not in reference['cells'][c.key]['metrics']]
    if lacking:
        raise RobustnessError(f'{where}cells {lacking} have no metric {metric!r}')


def format_summary(summary: dict) -> str:
    """A few lines for the console: P, mPC, rPC, mCE and the per-distortion means, each with its bootstrap
    interval ``[low, high]`` when the summary has ``intervals`` (the level and resamples on the first line)."""
    intervals = summary.get('intervals') or {}
    cols = intervals.get('columns', {})
    head = (f' ({intervals["level"] * 100:g}% {intervals.get("ci_method", "percentile")} bootstrap intervals over '
            f'{intervals["num_images"]} test '
            f'images, {intervals["resamples"]} resamples, seed {intervals["seed"]})' if intervals else
            (f' (no intervals: {summary["intervals_note"]})' if summary.get('intervals_note') else ''))
    lines = [f'metric {summary["metric"]}{head}:',
             f'  P={_fmt(summary["P"], cols.get("P"))}  mPC={_fmt(summary["mPC"], cols.get("mPC"))}  '
             f'rPC={_fmt(summary["rPC"], cols.get("rPC"))}'
             + (f'  mCE={_fmt(summary["mCE"], cols.get("mCE"))}' if 'mCE' in summary else '')]
    for name, entry in summary['per_distortion'].items():
        ce = f'  CE={_fmt(summary["CE"][name], cols.get("CE/" + name))}' if 'CE' in summary else ''
        lines.append(f'  {name:<20} mean={_fmt(entry["mean"], cols.get("mean/" + name))} over levels '
                     f'{entry["levels"]}{ce}')
    return '\n'.join(lines)


def _fmt(value, interval: Optional[dict] = None) -> str:
    if value is None:
        return 'n/a'
    if not interval:
        return f'{value:.4f}'
    ends = ['undefined' if interval.get(k) is None else f'{interval[k]:.4f}' for k in ('low', 'high')]
    return f'{value:.4f} [{ends[0]}, {ends[1]}]'  # undefined: NaN/inf (e.g. a resample without reference errors)
