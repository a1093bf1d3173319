"""Bootstrap intervals of a sweep's cells and summaries from its per-image files (:mod:`featquant_mmdet.stats`).

Each cell of ``<work_dir>/robustness.json`` indexes its per-image file (``robustness.cells/<cell key>.npz``,
written by the per-image recorder, :mod:`featquant_mmdet.evaluation.per_image`)::

    "per_image": {"file": "robustness.cells/clean.npz", "sha256": ..., "bytes": ..., "num_images": 80,
                  "value": 0.8123}                        # the metric recomputed from the file on all images

or ``{"unsupported": why}`` (a metric without a per-image recorder; VOC, classification and COCO-style have one).
:func:`load_per_image_cells` reads and checks them (present, unchanged since the sweep wrote them, same test images
in every cell); :func:`bootstrap_results` draws one
:class:`~featquant_mmdet.stats.bootstrap.Resamples` (B x n image indices, seeded) and recomputes every cell and
summary on each resample; :func:`intervals_json` is what the summary stores.
"""
import math
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

from ...stats.bootstrap import (DEFAULT_LEVEL, DEFAULT_METHOD, DEFAULT_RESAMPLES, METHODS, BootstrapSummary,
                                Resamples, bootstrap_summary, check_level)
from ...stats.checks import StatsInputError, check_cells_match_identity, check_same_identity
from ...stats.records import load_per_image
from .errors import RobustnessError
from .results_file import file_sha256
from .summary import metric_full_scale, task_of

METHOD = '{} bootstrap over test images'  # with the interval method (stats.bootstrap.METHODS)


def check_bootstrap_args(n_resamples, level, seed, method: str = DEFAULT_METHOD) -> None:
    """``--bootstrap`` (>= 0; 0 disables), ``--ci-level`` in (0, 1), ``--bootstrap-seed`` >= 0, ``--ci-method``
    one of ``stats.bootstrap.METHODS``."""
    if method not in METHODS:
        raise RobustnessError(f'--ci-method must be one of {", ".join(METHODS)}, got {method!r}')
    for name, value in (('--bootstrap', n_resamples), ('--bootstrap-seed', seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RobustnessError(f'{name} must be a non-negative integer, got {value!r}')
    try:
        check_level(level)
    except StatsInputError as err:
        raise RobustnessError(f'--ci-level: {err}') from None


def per_image_entry(results_path: str, saved: dict) -> dict:
    """The JSON index of a per-image file just written: path relative to the results file's folder, hash, size."""
    path = saved['path']
    return {'file': osp.relpath(path, osp.dirname(osp.abspath(results_path))), 'sha256': file_sha256(path),
            'bytes': osp.getsize(path), 'num_images': int(saved['num_images']), 'value': float(saved['value'])}


def per_image_problem(results_path: str, cell: dict) -> Optional[str]:
    """Why a finished cell's per-image data cannot be used (None when they can, or are unsupported)."""
    entry = cell.get('per_image')
    if not isinstance(entry, dict):
        return 'no per-image data (results written before per-image data were kept)'
    if 'unsupported' in entry:
        return None
    path = osp.join(osp.dirname(osp.abspath(results_path)), entry.get('file', ''))
    if not osp.isfile(path):
        return f'per-image file {path} is missing'
    if osp.getsize(path) != entry.get('bytes') or file_sha256(path) != entry.get('sha256'):
        return f'per-image file {path} changed since the sweep wrote it (size or sha256)'
    return None


def load_per_image_cells(results: dict, results_path: str, metric: Optional[str] = None,
                         keys: Optional[Sequence[str]] = None) -> Tuple[Dict[str, object], dict]:
    """``({cell key: VOCMatches | Correctness}, identity)`` of a results file; ``identity``: ``{file, image_ids,
    distortion_seed}`` (what comparisons check). A clear :class:`RobustnessError` names the file and the cells
    without usable per-image data."""
    metric = metric or results['metric']
    keys = list(results['cells']) if keys is None else list(keys)
    unsupported = {(results['cells'][k].get('per_image') or {}).get('unsupported') for k in keys} - {None}
    if unsupported:
        raise RobustnessError(f'{results_path}: {sorted(unsupported)[0]} (pass --bootstrap 0 for values without '
                              'intervals)')
    problems = {k: per_image_problem(results_path, results['cells'][k]) for k in keys}
    bad = {k: why for k, why in problems.items() if why}
    if bad:
        first = next(iter(bad.values()))
        raise RobustnessError(f'{results_path}: no usable per-image data for cell(s) {sorted(bad)} ({first}); rerun '
                              'its sweep with tools/robustness.py (it re-evaluates only those cells), or pass '
                              '--bootstrap 0 for values without intervals')
    folder = osp.dirname(osp.abspath(results_path))
    cells = {}
    try:
        for key in keys:
            cell = load_per_image(osp.join(folder, results['cells'][key]['per_image']['file']))
            if task_of(metric) == 'classification' or cell.kind == 'coco':  # COCO: any CocoMetric key
                cell = cell.with_metric(metric)
            elif not metric.endswith('/mAP') or cell.kind != 'voc':
                raise RobustnessError(f'{results_path}: per-image data recompute VOC mAP, not {metric!r}')
            cells[key] = cell
        identity = {'file': results_path, 'image_ids': list(cells[keys[0]].image_ids) if keys else [],
                    'distortion_seed': results['identity'].get('distortion_seed')}
        check_cells_match_identity(cells, identity)
    except StatsInputError as err:
        raise RobustnessError(str(err)) from None
    return cells, identity


def check_same_test_images(identities: Sequence[dict]) -> None:
    """Same test images (ids, in order) and distortion seed in every results file; the error names the file."""
    try:
        check_same_identity(identities)
    except StatsInputError as err:
        raise RobustnessError(str(err)) from None


def bootstrap_results(results: dict, results_path: str, metric: Optional[str] = None,
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = DEFAULT_LEVEL,
                      reference: Optional[dict] = None, reference_path: Optional[str] = None,
                      resamples: Optional[Resamples] = None, method: str = DEFAULT_METHOD) -> BootstrapSummary:
    """Intervals of every cell and summary of one results file (CE/mCE with a reference results file, on the same
    resamples), read from its per-image files alone. ``resamples``: drawn here unless given (a comparison shares
    one); ``method``: the interval method of resamples drawn here."""
    metric = metric or results['metric']
    cells, identity = load_per_image_cells(results, results_path, metric)
    ref_cells = None
    if reference is not None:
        ref_keys = [k for k in cells if k in reference['cells']]
        ref_cells, ref_identity = load_per_image_cells(reference, reference_path or 'reference', metric, ref_keys)
        check_same_test_images([identity, ref_identity])
    if resamples is None:
        resamples = Resamples.draw(len(identity['image_ids']), n_resamples, seed, level, method)
    try:
        return bootstrap_summary(cells, resamples, ref_cells, metric_full_scale(metric))
    except StatsInputError as err:
        raise RobustnessError(f'{results_path}: {err}') from None


def intervals_json(summary: BootstrapSummary) -> dict:
    """What the results file's summary stores: the settings and ``{column: {value, low, high, level, bias,
    resamples}}`` for ``cell/<key>``, ``P``, ``mean/<distortion>``, ``mPC``, ``rPC`` (and ``CE/<d>``, ``mCE``), in
    the metric's units (mAP a fraction, accuracy in percent); undefined ends are None."""
    rs = summary.resamples
    return {'method': METHOD.format(rs.method), 'ci_method': rs.method, 'level': rs.level,
            'resamples': rs.n_resamples, 'seed': rs.seed,
            'num_images': rs.n_images, 'columns': {k: _finite(e.as_dict()) for k, e in summary.columns().items()}}


def _finite(entry: dict) -> dict:
    """NaN / inf (an undefined rPC of a zero clean metric, a resample without positives) as None: strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()}


