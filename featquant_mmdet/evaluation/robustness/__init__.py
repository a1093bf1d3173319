"""Robustness sweep: one model evaluated on clean data and on every distortion x level, resumable.

A sweep is a list of *cells* (:mod:`.cells`): ``clean``, then ``(distortion, level)`` for every distortion that has
strengths (levels 1..4), and one cell per mixture (``mix``, ``mix_minor``, ``mix_heavy``, whose strength is fixed).
Every cell is one full pass of the real mmengine Runner's test loop over the test set; the Runner is built once and
only the test dataloader is swapped per cell (:mod:`.evaluator`). Results go to ``<work_dir>/robustness.json``
after every cell (:mod:`.results_file`: identity, resume, invalidation), one sweep at a time per work dir
(:mod:`.lock`); P / mPC / rPC / CE / mCE in :mod:`.summary`; tables and plots in :mod:`.report`; the sweep itself,
:func:`evaluate_robustness` (lock, plan, evaluate), in :mod:`.sweep`.

    cells         Cell, presets, names and levels      results_file  identity hashes, JSON, invalidation
    lock          SweepLock (standard library only)    summary       metric key, P, mPC, rPC, CE, mCE
    evaluator     CellEvaluator, the sweep's Runner    sweep         SweepPlan, evaluate_robustness, run_sweep
    report        comparison tables and plots          intervals     per-image files, bootstrap of a sweep
    compare       paired comparisons with intervals    mmdet_export  mmdet's {distortion: {severity: metrics}}

Per-image data of every cell (what the bootstrap needs) are written by the per-image metric
(``featquant_mmdet/evaluation/per_image.py``) to ``<work_dir>/robustness.cells/<cell key>.npz``.
"""
from .cells import (PRESET_NAMES, Cell, cells_by_distortion, corruption_names, distortion_presets, is_corruption,
                    mixture_names, plan_cells, resolve_distortions, resolve_levels, saliency_distortions,
                    sweep_levels)
from .errors import RobustnessError, SweepLockedError
from .evaluator import CellEvaluator, build_sweep_runner, check_test_config
from .lock import SweepLock, launcher_rank, lock_path
from .results_file import (RESULTS_FILENAME, RESULTS_FORMAT, ResultsFile, check_results_file, config_name,
                           config_sha256, file_sha256, load_results, new_results, results_file, results_identity,
                           test_data_identity)
from .summary import (DEFAULT_METRIC_KEYS, check_metric_key, check_reference, corruption_errors, default_metric_key,
                      format_summary, metric_full_scale, metric_prefixes, summarize, task_of)
from .sweep import CellProgress, SweepPlan, check_resumed_metric, evaluate_robustness, prepare_sweep, run_sweep

__all__ = [
    'PRESET_NAMES', 'Cell', 'cells_by_distortion', 'corruption_names', 'distortion_presets', 'is_corruption',
    'mixture_names', 'plan_cells', 'resolve_distortions', 'resolve_levels', 'saliency_distortions', 'sweep_levels',
    'RobustnessError', 'SweepLockedError', 'CellEvaluator', 'build_sweep_runner', 'check_test_config', 'SweepLock',
    'launcher_rank', 'lock_path', 'RESULTS_FILENAME', 'RESULTS_FORMAT', 'ResultsFile', 'check_results_file',
    'config_name', 'config_sha256', 'file_sha256', 'load_results', 'new_results', 'results_file',
    'results_identity', 'test_data_identity', 'DEFAULT_METRIC_KEYS', 'check_metric_key', 'check_reference',
    'corruption_errors', 'default_metric_key', 'format_summary', 'metric_full_scale', 'metric_prefixes',
    'summarize', 'task_of', 'CellProgress', 'SweepPlan', 'check_resumed_metric', 'prepare_sweep', 'run_sweep',
    'evaluate_robustness'
]
