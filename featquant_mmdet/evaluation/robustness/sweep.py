"""The sweep: plan (every input checked, nothing evaluated), then evaluate the missing cells under the work dir's
lock, saving the results file after each.

Entry points: :func:`evaluate_robustness` (lock, plan, evaluate: what ``tools/robustness.py`` runs) and, for a plan made
beforehand, :func:`run_sweep` (lock, decide again what to do with the results file, evaluate). The metric key's
prefix is checked before anything is evaluated; its name against what the clean cell reported, before any
distorted cell (a rerun resumes from the stored clean cell).

The intervals are a last step computed from the saved per-image files alone (:func:`add_intervals`), after the
results file holds every cell and the summary of values: a failure there (say a MemoryError) leaves the cells
where they are, stores the reason in ``summary['intervals_note']``, logs one line and sets
``summary['intervals_failed']``; a rerun of the same sweep (every cell done: nothing is evaluated) or
``tools/compare_robustness.py`` on the results file computes the intervals from the files.
"""
import contextlib
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from mmengine.dist import broadcast_object_list, init_dist, is_distributed
from mmengine.logging import print_log

from ...distortions.occlusion import build_classifier
from ...fileio import utc_now
from ...stats.bootstrap import DEFAULT_METHOD
from ..corruptions import import_imagecorruptions
from .cells import Cell, is_corruption, plan_cells, resolve_distortions, resolve_levels, saliency_distortions
from .errors import RobustnessError, SweepLockedError
from .evaluator import CellEvaluator, build_sweep_runner, check_test_config
from .intervals import bootstrap_results, check_bootstrap_args, intervals_json, per_image_entry, per_image_problem
from .lock import SweepLock, launcher_rank
from .results_file import ResultsFile, file_sha256, load_results, new_results, results_file, results_identity
from .summary import check_metric_key, check_reference, check_reported, default_metric_key, summarize, task_of


@dataclass
class SweepPlan:
    """Everything a sweep needs, checked before any evaluation."""

    cfg: object
    checkpoint: str
    cells: List[Cell]
    seed: int
    metric: str
    identity: dict
    results_path: str
    action: str  # 'new' | 'resume' | 'invalidate'
    changes: List[str]
    reference: Optional[dict] = None
    reference_path: Optional[str] = None
    saliency: Optional[dict] = None  # dict(config, checkpoint, config_sha256, checkpoint_sha256)
    notes: List[str] = field(default_factory=list)
    bootstrap: int = 1000  # resamples of the intervals (0: none)
    ci_level: float = 0.95
    bootstrap_seed: int = 0
    ci_method: str = DEFAULT_METHOD  # the intervals' method (stats.bootstrap.METHODS)

    def cell_inputs(self, cell: Cell) -> dict:
        """What a cell's numbers depend on beyond the results identity (the saliency classifier of occlusion)."""
        if cell.distortion in saliency_distortions() and self.saliency:
            return {'saliency_config_sha256': self.saliency['config_sha256'],
                    'saliency_checkpoint_sha256': self.saliency['checkpoint_sha256']}
        return {}

    def pending(self, results: dict) -> List[Cell]:
        """Cells not finished yet, finished with other inputs (another saliency classifier), or whose per-image
        file is missing or changed while intervals are asked for (an old results file: the cell is evaluated
        again to get them; with ``bootstrap=0`` it is kept as it is)."""
        done = results['cells']
        return [c for c in self.cells
                if c.key not in done or done[c.key].get('inputs', {}) != self.cell_inputs(c)
                or (self.bootstrap > 0 and per_image_problem(self.results_path, done[c.key]) is not None)]


def check_saliency(saliency: Optional[dict]) -> Optional[dict]:
    """The saliency classifier of targeted occlusion, built once here: a checkpoint that does not fit the config
    (e.g. another class count) stops the sweep before its first cell, not at the occlusion cells after the others."""
    if saliency is None:
        return None
    if not isinstance(saliency, dict) or not saliency.get('config') or not saliency.get('checkpoint'):
        raise RobustnessError('the saliency classifier needs both a config and a checkpoint '
                              '(--saliency-classifier and --saliency-checkpoint)')
    for key in ('config', 'checkpoint'):
        if not osp.isfile(saliency[key]):
            raise RobustnessError(f'saliency classifier {key} not found: {saliency[key]}')
    try:
        build_classifier(saliency['config'], saliency['checkpoint'])
    except Exception as err:  # noqa: BLE001  (any failure to build or load is the same bad input)
        raise RobustnessError(
            f'the saliency classifier cannot be built from --saliency-classifier {saliency["config"]} and '
            f'--saliency-checkpoint {saliency["checkpoint"]}: {type(err).__name__}: {str(err).strip()[:600]}; the '
            f'config must describe the checkpoint\'s model (e.g. its head.num_classes: write a config that inherits '
            f'yours with _base_ and overrides it)') from None
    return {'config': osp.abspath(saliency['config']), 'checkpoint': osp.abspath(saliency['checkpoint']),
            'config_sha256': file_sha256(saliency['config']), 'checkpoint_sha256': file_sha256(saliency['checkpoint'])}


def prepare_sweep(cfg, checkpoint: str, distortions: Sequence[str] = ('all', ), levels: Sequence[int] = (1, 2, 3, 4),
                  seed: int = 0, metric: Optional[str] = None, reference: Optional[str] = None,
                  results_path: Optional[str] = None, saliency: Optional[dict] = None, bootstrap: int = 1000,
                  ci_level: float = 0.95, bootstrap_seed: int = 0, ci_method: str = DEFAULT_METHOD) -> SweepPlan:
    """Check every input (config, names, levels, checkpoint, results file, reference) without evaluating.

    ``bootstrap`` / ``ci_level`` / ``bootstrap_seed`` / ``ci_method``: the bootstrap intervals stored in the summary
    (:mod:`.intervals`; 0 resamples: none).

    ``saliency``: ``dict(config=..., checkpoint=...)`` of the classifier whose saliency map guides targeted
    occlusion (classifiers only).
    """
    check_test_config(cfg)
    check_bootstrap_args(bootstrap, ci_level, bootstrap_seed, ci_method)
    metric = metric or default_metric_key(cfg.test_evaluator)
    check_metric_key(metric, cfg.test_evaluator)
    notes: List[str] = []
    saliency = check_saliency(saliency)
    names = resolve_distortions(distortions, task_of(metric), saliency is not None, notes)
    cells = plan_cells(names, resolve_levels(levels, names))
    if any(is_corruption(n) for n in names):
        try:
            import_imagecorruptions()
        except ImportError as err:
            raise RobustnessError(str(err)) from None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RobustnessError(f'distortion seed must be a non-negative integer, got {seed!r}')
    if not osp.isfile(checkpoint):
        raise RobustnessError(f'checkpoint file not found: {checkpoint}')
    results_path = results_path or results_file(cfg)
    identity = results_identity(cfg, checkpoint, seed)
    action, changes = ResultsFile(results_path).decide(identity)
    if action == 'resume':
        check_resumed_metric(results_path, metric)
    ref_data = None
    if reference is not None:
        ref_data = load_results(reference)
        check_reference(ref_data, identity, cells, metric, reference)
    return SweepPlan(cfg, checkpoint, cells, seed, metric, identity, osp.abspath(results_path), action, changes,
                     ref_data, reference, saliency, notes, bootstrap, ci_level, bootstrap_seed, ci_method)


def check_resumed_metric(results_path: str, metric: str) -> None:
    """A resumed sweep's finished clean cell tells exactly which metrics the evaluator reports."""
    clean = load_results(results_path)['cells'].get('clean')
    if clean is not None and metric not in clean['metrics']:
        raise RobustnessError(f'metric {metric!r} is not among the metrics of the finished clean cell in '
                              f'{results_path}: {sorted(clean["metrics"])} (pass one of them with --metric)')


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class CellProgress:
    """A progress bar over the cells, one log line per finished cell: the cell, its metric and time, the elapsed
    time and the ETA (mean time of the cells evaluated in this run times the cells left). mmengine's LoggerHook
    adds its per-iteration lines inside each cell."""

    def __init__(self, total: int, done: int, metric: str, log=None):
        self.total, self.done, self.metric = total, done, metric
        self.log = log or (lambda msg: print_log(msg, logger='current'))
        self.evaluated = 0
        self.start = time.perf_counter()

    def update(self, cell: Cell, metrics: dict, wall: float) -> str:
        self.done += 1
        self.evaluated += 1
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.evaluated * (self.total - self.done)
        value = metrics.get(self.metric)
        shown = f'{value:.4f}' if isinstance(value, (int, float)) else 'n/a'
        bar_width = 20
        filled = int(bar_width * self.done / self.total)
        line = (f'[robustness] [{"#" * filled}{"." * (bar_width - filled)}] {self.done}/{self.total} cells, '
                f'{cell.key}: {self.metric}={shown} in {wall:.1f} s, elapsed {_format_seconds(elapsed)}, '
                f'ETA {_format_seconds(eta)}')
        self.log(line)
        return line


def evaluate_robustness(cfg, checkpoint: str, runner=None, **options) -> Tuple[SweepPlan, dict]:
    """Lock the work dir, plan the sweep and evaluate it: ``(plan, results with summary)``.

    The lock is taken before the results file is read and held until the sweep ends (:class:`SweepLockedError`
    at once if another sweep holds it). ``options``: those of :func:`prepare_sweep`.
    """
    results_path = options.pop('results_path', None) or results_file(cfg)
    launcher = cfg.get('launcher', 'none')
    with sweep_lock(cfg, results_path):
        plan = prepare_sweep(cfg, checkpoint, results_path=results_path, **options)
        return plan, _evaluate(plan, runner, main=launcher_rank(launcher) == 0)


@contextlib.contextmanager
def sweep_lock(cfg, results_path: str):
    """The work dir's :class:`SweepLock` for the whole sweep, refused alike on every rank.

    With a distributed launcher the process group is started first (``mmengine.dist.init_dist`` with the config's
    ``env_cfg.dist_cfg``; the Runner then finds it started); rank 0 tries the lock and broadcasts the outcome, and
    every rank raises the same error naming the holder (not only rank 0, the others left waiting in a collective).
    """
    launcher = cfg.get('launcher', 'none') or 'none'
    if launcher != 'none' and not is_distributed():
        init_dist(launcher, **((cfg.get('env_cfg') or {}).get('dist_cfg') or {}))
    lock = SweepLock(results_path, launcher)
    outcome = [None]
    if launcher_rank(launcher) == 0:
        try:
            lock.acquire()
        except RobustnessError as err:
            outcome[0] = (type(err).__name__, str(err))
    if is_distributed():
        broadcast_object_list(outcome)
    if outcome[0] is not None:
        kind, message = outcome[0]
        raise (SweepLockedError if kind == SweepLockedError.__name__ else RobustnessError)(message)
    try:
        yield lock
    finally:
        lock.release()


def run_sweep(plan: SweepPlan, runner=None) -> dict:
    """Evaluate a plan made beforehand: lock the work dir, decide again what to do with the results file (another
    sweep may have written it since :func:`prepare_sweep`), evaluate the missing cells.

    ``runner``: an already built Runner for ``plan.cfg`` with ``load_from`` set to the checkpoint (built here
    from the config otherwise).
    """
    launcher = plan.cfg.get('launcher', 'none')
    with sweep_lock(plan.cfg, plan.results_path):
        main = launcher_rank(launcher) == 0
        if main:
            action, changes = ResultsFile(plan.results_path).decide(plan.identity)
            if (action, changes) != (plan.action, plan.changes):
                print_log(f'[robustness] {plan.results_path} changed since the sweep was planned: {action} instead '
                          f'of {plan.action}', logger='current', level=30)
                if action == 'resume':
                    check_resumed_metric(plan.results_path, plan.metric)
                plan.action, plan.changes = action, changes
        return _evaluate(plan, runner, main)


def _evaluate(plan: SweepPlan, runner, main: bool) -> dict:
    """The missing cells of the plan, the results file saved after each (the caller holds the lock)."""
    file = ResultsFile(plan.results_path)
    for note in plan.notes:
        print_log(f'[robustness] {note}', logger='current', level=30)
    results = None
    if plan.action == 'resume':
        results = file.load()
        results['metric'] = plan.metric
        results['task'] = task_of(plan.metric)
    elif plan.action == 'invalidate' and main:
        moved = file.move_aside()
        print_log(f'[robustness] {plan.results_path} was written with another {", ".join(plan.changes)}: moved '
                  f'to {moved}, evaluating every cell again', logger='current', level=30)
    if results is None:
        results = new_results(plan.identity, task_of(plan.metric), plan.metric)

    synced = [[c.key for c in plan.pending(results)]]
    if synced[0] and runner is None:
        runner = build_sweep_runner(plan.cfg, plan.checkpoint)  # only when there is something to evaluate
    if synced[0]:
        broadcast_object_list(synced)  # every rank evaluates the same cells (rank 0 decided)
    pending = [Cell.from_key(key) for key in synced[0]]
    skipped = [c.key for c in plan.cells if c.key not in synced[0]]

    run_record = {'started_at': utc_now(), 'evaluated': [], 'skipped': skipped, 'finished_at': None}
    results.setdefault('runs', []).append(run_record)
    if main:
        file.save(results)
    print_log(f'[robustness] {len(plan.cells)} cells: {len(skipped)} already in {plan.results_path}, '
              f'{len(pending)} to evaluate', logger='current')

    progress = CellProgress(len(plan.cells), len(skipped), plan.metric)
    evaluator = (CellEvaluator(runner, seed=plan.seed, saliency=plan.saliency, metric=plan.metric)
                 if pending else None)
    try:
        for cell in pending:
            metrics, wall, num_images = evaluator.evaluate(cell, file.cell_file(cell.key, 'npz'))
            if evaluator.recorder is None:
                per_image = {'unsupported': evaluator.per_image_note}
            elif main:
                per_image = per_image_entry(plan.results_path, evaluator.last_per_image)
            else:
                per_image = None  # only rank 0 writes the file and the results
            results['cells'][cell.key] = {'distortion': cell.distortion, 'level': cell.level, 'metrics': metrics,
                                          'wall_time_s': wall, 'num_images': num_images, 'finished_at': utc_now(),
                                          'inputs': plan.cell_inputs(cell), 'per_image': per_image}
            if cell.key == 'clean' and evaluator.recorder is None:
                print_log(f'[robustness] {evaluator.per_image_note}', logger='current', level=30)
            run_record['evaluated'].append(cell.key)
            if main:
                file.save(results)
            if cell.key == 'clean':  # the first evaluation tells which metrics the evaluator reports
                check_reported(plan.metric, metrics, f'the clean cell is kept in {plan.results_path}, a rerun '
                                                     'resumes')
            progress.update(cell, metrics, wall)
    finally:
        if evaluator is not None:
            evaluator.finish()
    run_record['finished_at'] = utc_now()
    results['summary'] = summarize(results, plan.metric, plan.reference)
    if plan.reference_path:
        results['summary']['reference']['path'] = osp.abspath(plan.reference_path)
    if main:
        file.save(results)  # every cell and the values' summary are on disk before the intervals step
        add_intervals(plan, results)
        file.save(results)
    return results


def add_intervals(plan: SweepPlan, results: dict) -> None:
    """``summary['intervals']``: bootstrap intervals of every cell and summary (:func:`.intervals.intervals_json`),
    computed from the per-image files the results file indexes; or None with ``summary['intervals_note']`` saying
    why: ``--bootstrap 0``, an unsupported metric, or a failure of the step itself (any exception but an interrupt:
    ``summary['intervals_failed']`` is then True and one error line says the cells are kept and how to get the
    intervals)."""
    summary = results['summary']
    summary.pop('intervals_failed', None)
    if plan.bootstrap == 0:
        summary['intervals'], summary['intervals_note'] = None, 'disabled (--bootstrap 0)'
        return
    start = time.perf_counter()
    try:
        boot = bootstrap_results(results, plan.results_path, plan.metric, plan.bootstrap, plan.bootstrap_seed,
                                 plan.ci_level, plan.reference, plan.reference_path, method=plan.ci_method)
        intervals = intervals_json(boot)
    except RobustnessError as err:
        summary['intervals'], summary['intervals_note'] = None, str(err)
        print_log(f'[robustness] no intervals: {err}', logger='current', level=30)
        return
    except Exception as err:  # noqa: BLE001  (MemoryError and the like: the evaluated cells must survive it)
        summary['intervals'], summary['intervals_failed'] = None, True
        summary['intervals_note'] = intervals_failure(err, len(results['cells']), plan.results_path)
        print_log(f'[robustness] {summary["intervals_note"]}', logger='current', level=40)
        return
    summary.pop('intervals_note', None)
    summary['intervals'] = intervals
    summary['intervals']['wall_time_s'] = time.perf_counter() - start


def intervals_failure(err: BaseException, num_cells: int, results_path: str) -> str:
    """The one line of a failed intervals step: what failed, that the cells are kept, how to get the intervals."""
    what = ' '.join(f'{type(err).__name__}: {err}'.split())[:300].rstrip(': ')
    return (f'the intervals step failed ({what}); the {num_cells} evaluated cells are kept in {results_path}: rerun '
            f'the same command (it evaluates nothing again) or run tools/compare_robustness.py {results_path} to '
            'compute the intervals from the per-image files')
