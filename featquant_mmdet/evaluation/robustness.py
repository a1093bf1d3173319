"""Robustness sweep: one model evaluated on clean data and on every distortion x level, resumable.

A sweep is a list of *cells*: ``clean``, then ``(distortion, level)`` for every distortion that has strengths
(levels 1..4), and one cell per mixture (``mix``, ``mix_minor``, ``mix_heavy``, whose strength is fixed). Every
cell is one full pass of the real mmengine Runner's test loop over the test set; the Runner (model, checkpoint,
evaluator, hooks) is built once and only the test dataloader is swapped per cell, its pipeline distorted by
:func:`featquant_mmdet.distortions.inject.inject_distortion` (deterministic: draws depend only on
(seed, image, distortion, level)).

Summary metrics, with ``P_{d,l}`` the metric of cell (d, l) and ``L_d`` the levels of distortion d
(one for a mixture), following the common robustness benchmarks (ImageNet-C: Hendrycks & Dietterich 2019;
Pascal-C / COCO-C: Michaelis et al. 2019)::

    P    = P_clean                                   clean performance
    P_d  = 1/|L_d| sum_l P_{d,l}                     per-distortion mean
    mPC  = 1/D sum_d P_d                             mean performance under corruption
    rPC  = mPC / P                                   relative performance under corruption
    CE_d = sum_l E_{d,l} / sum_l E^ref_{d,l}         corruption error of a classifier, E = 100% - accuracy,
    mCE  = 1/D sum_d CE_d                            normalised by a reference model's results file

The metric is a key of the test evaluator's output: ``pascal_voc/mAP`` (VOC), ``coco/bbox_mAP`` (COCO),
``accuracy/top1`` by default for classifiers (``accuracy/top5`` is what the paper's Table 2 reports). Every cell
stores all the evaluator's metrics, so any of them can be summarised later (``summarize(results, metric)``).
Presets of distortions: :func:`distortion_presets`; the optional ``ic:`` family: :mod:`.corruptions`.

Results file (``<work_dir>/robustness.json``): written atomically (temporary file + ``os.replace``) after every
cell, so a killed sweep loses at most the cell in flight, and a rerun evaluates only the missing cells. Its
``identity`` decides what a rerun does with it:

* same config name, config hash, checkpoint hash, distortion seed and test data: *resume* (skip finished cells);
* same config name, anything else changed (a re-trained checkpoint, an edited config, another seed): *invalidate*
  -- the old file is moved aside to ``robustness.stale-<UTC time>.json`` (never deleted) and the sweep starts
  afresh, because mixing cells of two checkpoints would silently produce wrong numbers;
* another config name: *error* -- the file belongs to another model (mmdet's work dirs are per config,
  ``work_dirs/<config name>``), so reusing the work dir is almost surely a mistake, and replacing another model's
  finished sweep is the last thing a user wants from a typo.

One sweep at a time per results file: :class:`SweepLock` (``<work_dir>/robustness.lock``, released by the kernel
when its holder dies) makes a second sweep on the same work dir fail at once, naming the holder. The metric key
is checked against the keys the evaluator's metric types report (:func:`check_metric_key`) before anything is
evaluated; for a type whose keys are not known up front, against what the clean cell reported.
"""
import copy
import datetime
import errno
import hashlib
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

RESULTS_FORMAT = 'featquant-robustness/1'
RESULTS_FILENAME = 'robustness.json'

# The distortion presets of ``--distortions`` are defined in ``distortion_presets`` and nowhere else.
PRESET_NAMES = ('all', 'mix', 'corruptions')

# Test metric -> (its default prefix, the key it reports that the summary uses by default).
DEFAULT_METRIC_KEYS = {
    'VOCMetric': ('pascal_voc', 'mAP'),
    'CocoMetric': ('coco', 'bbox_mAP'),
    'Accuracy': ('accuracy', 'top1'),
}

# Runtime settings that cannot change a cell's numbers; left out of the config hash so that, e.g., another
# logging interval or more dataloader workers do not invalidate finished cells.
# (custom_hooks stay in: an EMAHook, for one, swaps the weights that are tested.)
RUNTIME_CONFIG_KEYS = ('work_dir', 'load_from', 'resume', 'launcher', 'env_cfg', 'log_level', 'log_processor',
                       'default_hooks', 'visualizer', 'vis_backends')
RUNTIME_DATALOADER_KEYS = ('num_workers', 'persistent_workers', 'pin_memory', 'prefetch_factor')


class RobustnessError(ValueError):
    """Bad input to a robustness sweep (names, levels, files, config): raised before any evaluation."""


# --------------------------------------------------------------------------------------------------------------
# cells and the distortion presets


@dataclass(frozen=True)
class Cell:
    """One evaluation of the sweep: ``distortion=None`` is the clean pass; ``level=None`` a fixed-strength one."""

    distortion: Optional[str] = None
    level: Optional[int] = None

    @property
    def key(self) -> str:
        if self.distortion is None:
            return 'clean'
        return self.distortion if self.level is None else f'{self.distortion}@{self.level}'

    @classmethod
    def from_key(cls, key: str) -> 'Cell':
        if key == 'clean':
            return cls()
        name, sep, level = key.partition('@')
        return cls(name, int(level)) if sep else cls(name)


def _levels_module():
    from featquant_mmdet.distortions import levels
    return levels


def mixture_names() -> Tuple[str, ...]:
    """The fixed-strength mixtures, in the paper's column order (Table 2's Mix., Table 3's Minor and Heavy)."""
    return tuple(_levels_module().MIXTURE_NAMES)


def saliency_distortions() -> Tuple[str, ...]:
    """Distortions that need a classifier's saliency map of the ground-truth class (targeted occlusion)."""
    return tuple(_levels_module().NEEDS_SALIENCY)


def distortion_presets(task: str = 'classification') -> Dict[str, Tuple[str, ...]]:
    """The presets of ``--distortions`` for a model type: the paper's columns.

    =========  ==========================================  ==========================================
    preset     classifiers (Table 2, Figure 4)             detectors (Table 3)
    =========  ==========================================  ==========================================
    ``all``    every distortion + ``mix``                  every distortion but targeted occlusion
                                                           + ``mix_minor`` + ``mix_heavy``
    ``mix``    ``mix`` (Table 2's Mix.)                    ``mix_minor`` + ``mix_heavy``
    ``corruptions``  the 15 ``ic:<name>`` corruptions of ImageNet-C / Pascal-C (severities 1-5), both types
    =========  ==========================================  ==========================================

    The preset ``mix`` shadows the mixture of the same name, which is what it means for classifiers; detectors
    are evaluated on Table 3's two mixtures instead.
    """
    names = tuple(_levels_module().DISTORTION_NAMES)
    corruptions = corruption_names()
    if task == 'classification':
        return {'all': names + ('mix', ), 'mix': ('mix', ), 'corruptions': corruptions}
    mixtures = ('mix_minor', 'mix_heavy')
    return {'all': tuple(n for n in names if n not in saliency_distortions()) + mixtures, 'mix': mixtures,
            'corruptions': corruptions}


def corruption_names() -> Tuple[str, ...]:
    """The optional family: the 15 common-benchmark corruptions, ``ic:<name>`` (severities 1-5)."""
    from .corruptions import COMMON_CORRUPTIONS, PREFIX
    return tuple(PREFIX + n for n in COMMON_CORRUPTIONS)


def is_corruption(name: Optional[str]) -> bool:
    return name is not None and name.startswith('ic:')


def valid_levels(name: Optional[str] = None) -> Tuple[int, ...]:
    """The strengths of ``name``: 1..4 for the paper's distortions (0 is the clean cell, always evaluated),
    1..5 for the ``ic:`` corruptions."""
    if is_corruption(name):
        from .corruptions import NUM_SEVERITIES
        return tuple(range(1, NUM_SEVERITIES + 1))
    return tuple(range(1, _levels_module().NUM_LEVELS + 1))


def _accepted_names() -> Tuple[str, ...]:
    return tuple(_levels_module().DISTORTION_NAMES) + mixture_names() + corruption_names()


def resolve_distortions(names: Sequence[str], task: str = 'classification', has_saliency: bool = False,
                        notes: Optional[list] = None) -> List[str]:
    """Expand presets and check names; the order is kept and duplicates dropped.

    Targeted occlusion targets the ground-truth class of an image, so it is for classifiers only, and needs a
    saliency classifier: the ``all`` preset leaves it out otherwise (a line in ``notes`` says so), naming it is an
    error.
    """
    if isinstance(names, str):
        names = [names]
    accepted = _accepted_names()
    if not names:
        raise RobustnessError(f'no distortion given; accepted: presets {", ".join(PRESET_NAMES)} or names '
                              f'{", ".join(accepted)}')
    presets = distortion_presets(task)
    out: List[str] = []
    for name in names:
        for item in presets.get(name, (name, )):
            if item not in accepted:
                hint = f' (did you mean ic:{item}, the common-benchmark corruption?)' if (
                    'ic:' + item) in accepted else ''
                raise RobustnessError(f'unknown distortion {item!r}{hint}; accepted: presets '
                                      f'{", ".join(PRESET_NAMES)} or names {", ".join(accepted)}')
            if item in saliency_distortions() and (task != 'classification' or not has_saliency):
                why = ('it occludes what a classifier finds salient for the ground-truth class, which a detection '
                       'image does not have' if task != 'classification' else
                       'it needs the classifier whose saliency map picks the occluded clusters: pass '
                       '--saliency-config and --saliency-checkpoint (the paper uses a Plain-18)')
                if name in presets:
                    if notes is not None:
                        notes.append(f'preset {name!r}: {item} left out ({why})')
                    continue
                raise RobustnessError(f'distortion {item!r} cannot be evaluated here: {why}')
            if item not in out:
                out.append(item)
    return out


def resolve_levels(levels: Sequence[int], names: Sequence[str] = ()) -> List[int]:
    """Check the strengths (sorted, duplicates dropped) against every distortion with levels in ``names``."""
    leveled = [n for n in names if n not in mixture_names()] or [None]
    for name in leveled:
        accepted = valid_levels(name)
        if not levels:
            raise RobustnessError(f'no level given; accepted levels: {list(accepted)}')
        bad = [lv for lv in levels if not isinstance(lv, int) or isinstance(lv, bool) or lv not in accepted]
        if bad:
            whose = f' of {name}' if name is not None else ''
            hint = (' (the ic: corruptions have severities 1-5: sweep them apart from the paper\'s distortions)'
                    if any(is_corruption(n) for n in leveled) else '')
            raise RobustnessError(f'unknown distortion level(s) {bad}; accepted levels{whose}: {list(accepted)} '
                                  f'(the clean cell, level 0, is always evaluated){hint}')
    return sorted(set(levels))


def plan_cells(distortions: Sequence[str], levels: Sequence[int]) -> List[Cell]:
    """``clean``, every (distortion, level) and every mixture, in the given distortion order."""
    cells = [Cell()]
    for name in distortions:
        if name in mixture_names():
            cells.append(Cell(name))
        else:
            cells.extend(Cell(name, level) for level in levels)
    return cells


# --------------------------------------------------------------------------------------------------------------
# identity of a results file


def file_sha256(path: str, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 of the whole file: sound (any changed byte shows), and ~0.5 s for a 230 MB ZF checkpoint,
    which is nothing next to one pass over a test set; size+mtime would miss a same-size rewrite and fire on a
    mere copy."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(block)
    return digest.hexdigest()


def config_sha256(cfg) -> str:
    """SHA-256 of the config dumped as canonical JSON (sorted keys), runtime-only settings left out."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(dict(cfg))
    for key in RUNTIME_CONFIG_KEYS:
        data.pop(key, None)
    loader = data.get('test_dataloader')
    if isinstance(loader, dict):
        for key in RUNTIME_DATALOADER_KEYS:
            loader.pop(key, None)
    text = json.dumps(data, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def config_name(cfg) -> str:
    filename = getattr(cfg, 'filename', None)
    return osp.splitext(osp.basename(filename))[0] if filename else '<unnamed config>'


def test_data_identity(cfg) -> dict:
    """Where the test images come from; results of two models can only be compared on the same test data."""
    dataset = cfg.test_dataloader.get('dataset', {})
    identity = {key: _jsonable(dataset.get(key)) for key in ('type', 'data_root', 'ann_file', 'data_prefix')}
    if isinstance(identity['data_root'], str) and identity['data_root']:
        identity['data_root'] = osp.abspath(identity['data_root'])  # 'data/voc/' and '/repo/data/voc' are one root
    return identity


def results_identity(cfg, checkpoint: str, seed: int) -> dict:
    return {
        'config_name': config_name(cfg),
        'config_sha256': config_sha256(cfg),
        'checkpoint': osp.abspath(checkpoint),
        'checkpoint_sha256': file_sha256(checkpoint),
        'distortion_seed': int(seed),
        'test_data': test_data_identity(cfg),
    }


def identity_changes(old: dict, new: dict) -> List[str]:
    """The identity fields that differ (the checkpoint path alone does not count: its hash does)."""
    fields = ('config_sha256', 'checkpoint_sha256', 'distortion_seed', 'test_data')
    return [f for f in fields if old.get(f) != new.get(f)]


# --------------------------------------------------------------------------------------------------------------
# the results file


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='microseconds')


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    try:
        return float(value)  # python/numpy/torch scalars
    except (TypeError, ValueError):
        return repr(value)


def write_json_atomic(path: str, data: dict) -> None:
    """Write to a temporary file in the same folder and ``os.replace`` it: readers see the old or the new file."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_results(path: str) -> dict:
    """Read and check a results file; a clear error names the file and what is wrong with it."""
    if not osp.isfile(path):
        raise RobustnessError(f'results file not found: {path}')
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RobustnessError(f'{path} is not a robustness results file (invalid JSON: {err})') from None
    if not isinstance(data, dict) or data.get('format') != RESULTS_FORMAT:
        found = data.get('format') if isinstance(data, dict) else type(data).__name__
        raise RobustnessError(f'{path} is not a robustness results file: format {found!r}, '
                              f'expected {RESULTS_FORMAT!r} (written by tools/robustness.py)')
    for key in ('identity', 'cells', 'metric', 'task'):
        if key not in data:
            raise RobustnessError(f'{path} is incomplete: no {key!r} entry')
    for key, cell in data['cells'].items():
        if not isinstance(cell, dict) or not isinstance(cell.get('metrics'), dict):
            raise RobustnessError(f'{path}: cell {key!r} has no metrics')
    return data


def stale_path(path: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
    root, ext = osp.splitext(path)
    return f'{root}.stale-{stamp}{ext}'


def check_results_file(path: str, identity: dict) -> Tuple[str, List[str]]:
    """What a sweep does with the file at ``path``: ``('new'|'resume'|'invalidate', changed fields)``.

    Raises :class:`RobustnessError` when the file is not a results file or belongs to another model.
    """
    if not osp.exists(path):
        return 'new', []
    data = load_results(path)
    old = data['identity']
    if old.get('config_name') != identity['config_name']:
        raise RobustnessError(
            f'{path} holds the results of another model (config {old.get("config_name")!r}, checkpoint '
            f'{old.get("checkpoint")}), not of config {identity["config_name"]!r}: pass another --work-dir '
            '(the default is work_dirs/<config name>) or remove the file')
    changes = identity_changes(old, identity)
    return ('invalidate', changes) if changes else ('resume', [])


# --------------------------------------------------------------------------------------------------------------
# one sweep at a time per results file


class SweepLockedError(RobustnessError):
    """Another sweep holds the lock of the results file: raised before anything is read or evaluated."""


def lock_path(results_path: str) -> str:
    """``<work_dir>/robustness.lock`` for ``<work_dir>/robustness.json``."""
    return osp.splitext(osp.abspath(results_path))[0] + '.lock'


# mmengine's init_dist reads the rank from these (the lock is taken before the Runner initialises the process group)
_LAUNCHER_RANK_VARS = {'pytorch': 'RANK', 'slurm': 'SLURM_PROCID', 'mpi': 'OMPI_COMM_WORLD_RANK'}


def launcher_rank(launcher: Optional[str] = 'none') -> int:
    """This process's global rank: from the process group once it exists, else from the launcher's environment
    (0 without a launcher; the lock needs nothing beyond the standard library then)."""
    var = _LAUNCHER_RANK_VARS.get(launcher or 'none')
    if var is None:
        return 0
    from mmengine.dist import get_rank, is_distributed
    return get_rank() if is_distributed() else int(os.environ.get(var, 0))


class SweepLock:
    """Exclusive lock of a results file for the duration of a sweep: ``<work_dir>/robustness.lock``.

    Two sweeps writing one results file would interleave their cells, and one's ``os.replace`` would drop the
    other's. The lock is a POSIX record lock (``fcntl.lockf``) on the lock file:

    * the kernel releases it when the holder exits, however it dies (SIGKILL included): a lock is never stale;
    * unlike ``flock`` it is not shared with forked children, so dataloader workers that outlive a killed sweep
      for a few seconds do not keep it.

    The file records the holder (pid, host, start time, command) for the error of the sweep that finds it locked;
    it is emptied, not removed, on release (a removed file would let a third sweep lock a new file while a second
    still holds the old one). Reentrant within a process: ``tools/robustness.py`` holds it over ``prepare_sweep``
    and ``run_sweep``, which takes it too. With a distributed launcher only rank 0 locks (the other ranks evaluate
    the cells rank 0 chose).
    """

    _held: Dict[str, list] = {}  # lock path -> [file descriptor, depth]: the locks this process holds

    def __init__(self, results_path: str, launcher: Optional[str] = 'none'):
        self.results_path = osp.abspath(results_path)
        self.path = lock_path(results_path)
        self.enabled = launcher_rank(launcher) == 0
        self._depth = 0

    def acquire(self) -> 'SweepLock':
        """Take the lock, or raise :class:`SweepLockedError` naming the holder at once (never waits)."""
        if not self.enabled:
            return self
        key = osp.realpath(self.path)
        held = SweepLock._held.get(key)
        if held is None:
            held = SweepLock._held[key] = [self._lock_file(), 0]
        held[1] += 1
        self._key = key
        self._depth += 1
        return self

    def _lock_file(self) -> int:
        import fcntl
        import socket
        import sys
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise RobustnessError(f'cannot lock {self.path} ({err}): the file system of the work dir does '
                                      'not support POSIX locks; pass a --work-dir on a local disk') from None
            raise SweepLockedError(
                f'work dir {osp.dirname(self.path)} is in use by another robustness sweep '
                f'({_describe_holder(holder)}), which holds {self.path}: wait for it to finish, or pass another '
                '--work-dir (the lock goes away with that process, however it ends)') from None
        record = {'pid': os.getpid(), 'host': socket.gethostname(), 'started_at': _utc_now(),
                  'command': ' '.join(sys.argv), 'results': self.results_path}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return fd

    def release(self) -> None:
        if not self.enabled or self._depth == 0:
            return
        self._depth -= 1
        held = SweepLock._held[self._key]
        held[1] -= 1
        if held[1] == 0:
            del SweepLock._held[self._key]
            os.ftruncate(held[0], 0)
            os.close(held[0])  # closing the descriptor releases the record lock

    @staticmethod
    def is_held(results_path: str) -> bool:
        """Whether this process holds the lock of ``results_path``."""
        return osp.realpath(lock_path(results_path)) in SweepLock._held

    def __enter__(self) -> 'SweepLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> Optional[dict]:
    try:
        record = json.loads(os.pread(fd, 1 << 16, 0).decode())
    except (OSError, ValueError):  # empty or half-written: the holder has just taken the lock
        return None
    return record if isinstance(record, dict) else None


def _describe_holder(holder: Optional[dict]) -> str:
    if not holder:
        return 'holder not recorded yet'
    return (f'pid {holder.get("pid")} on host {holder.get("host")}, started {holder.get("started_at")}, '
            f'command: {holder.get("command")}')


# --------------------------------------------------------------------------------------------------------------
# metrics and the summary


def metric_cfgs(evaluator_cfg) -> list:
    """The metric configs of a ``test_evaluator`` (a metric dict, a list of them, or an Evaluator dict)."""
    if isinstance(evaluator_cfg, dict) and 'metrics' in evaluator_cfg:
        evaluator_cfg = evaluator_cfg['metrics']
    if isinstance(evaluator_cfg, dict):
        return [evaluator_cfg]
    return list(evaluator_cfg or [])


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


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


# The keys a metric type reports (before its prefix), from its constructor arguments; types not listed here are
# checked after the clean cell, from what they actually reported.

def _voc_metric_keys(args: dict) -> Tuple[List[str], bool]:
    """mmdet's VOCMetric: ``mAP`` and ``AP<100 * iou>`` per IoU threshold; with ``metric='recall'``,
    ``recall@<proposals>@<iou>`` (and ``AR@<proposals>`` for several thresholds)."""
    ious = [args['iou_thrs']] if isinstance(args['iou_thrs'], float) else list(args['iou_thrs'])
    metric = args['metric'] if isinstance(args['metric'], str) else list(args['metric'])[0]
    if metric == 'mAP':
        return ['mAP'] + [f'AP{int(iou * 100):02d}' for iou in ious], True
    keys = [f'recall@{num}@{iou}' for num in args['proposal_nums'] for iou in ious]
    return keys + ([f'AR@{num}' for num in args['proposal_nums']] if len(ious) > 1 else []), True


COCO_DEFAULT_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
COCO_PROPOSAL_ITEMS = ('AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000')


def _coco_metric_keys(args: dict) -> Tuple[List[str], bool]:
    """mmdet's CocoMetric: ``<bbox|segm>_<item>``, the proposal items, ``AR@<n>`` of ``proposal_fast``; nothing
    with ``format_only``. ``classwise`` adds ``<class name>_precision`` per class of the dataset: not known here."""
    if args.get('format_only'):
        return [], True
    keys = []
    for metric in _as_list(args['metric']):
        if metric == 'proposal_fast':
            keys += [f'AR@{num}' for num in args['proposal_nums']]
        elif metric == 'proposal':
            keys += list(args.get('metric_items') or COCO_PROPOSAL_ITEMS)
        else:
            keys += [f'{metric}_{item}' for item in args.get('metric_items') or COCO_DEFAULT_ITEMS]
    return keys, not args.get('classwise')


def _accuracy_keys(args: dict) -> Tuple[List[str], bool]:
    """The plugin's Accuracy: ``top<k>`` for every k of ``topk``."""
    from .accuracy import check_topk
    return [f'top{k}' for k in check_topk(args['topk'])], True


def _metric_key_listers() -> dict:
    from mmdet.evaluation.metrics import CocoMetric, VOCMetric

    from .accuracy import Accuracy
    return {VOCMetric: _voc_metric_keys, CocoMetric: _coco_metric_keys, Accuracy: _accuracy_keys}


@dataclass
class MetricKeys:
    """What one metric of the test evaluator will report: its keys with prefix, as far as known up front."""

    type: str
    prefix: Optional[str]  # None: the metric adds no prefix (no ``prefix`` argument, no ``default_prefix``)
    keys: List[str]
    complete: bool  # False: it may report keys not in ``keys`` (unknown type, COCO's classwise precisions)


def evaluator_metric_keys(evaluator_cfg) -> List[MetricKeys]:
    """The keys each metric of ``test_evaluator`` reports, from its type's registered class (its
    ``default_prefix``, its constructor's defaults) and its config, without building or running it."""
    import inspect

    from mmdet.registry import METRICS
    listers = _metric_key_listers()
    out = []
    for metric_cfg in metric_cfgs(evaluator_cfg):
        if not isinstance(metric_cfg, dict):  # an already built metric
            out.append(MetricKeys(type(metric_cfg).__name__, getattr(metric_cfg, 'prefix', None), [], False))
            continue
        mtype = metric_cfg.get('type')
        cls = mtype if isinstance(mtype, type) else METRICS.get(mtype) if isinstance(mtype, str) else None
        name = getattr(cls, '__name__', str(mtype))
        prefix = metric_cfg.get('prefix') or getattr(cls, 'default_prefix', None)  # BaseMetric's rule
        if cls not in listers:
            out.append(MetricKeys(name, prefix, [], False))
            continue
        args = {key: p.default for key, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
        args.update((key, value) for key, value in metric_cfg.items() if key != 'type')
        keys, complete = listers[cls](args)
        out.append(MetricKeys(name, prefix, [f'{prefix}/{k}' if prefix else k for k in keys], complete))
    return out


def check_metric_key(metric: str, evaluator_cfg) -> Optional[str]:
    """Raise :class:`RobustnessError` if the test evaluator cannot report ``metric``; return a note when only
    the clean cell can tell (a metric type whose keys are not known up front could report it)."""
    entries = evaluator_metric_keys(evaluator_cfg)
    known = [key for entry in entries for key in entry.keys]
    if metric in known:
        return None
    undecided = [e for e in entries if not e.complete and (e.prefix is None or metric.startswith(e.prefix + '/'))]
    if undecided:
        return (f'metric {metric!r} is checked after the clean cell: the keys of test metric(s) '
                f'{[e.type for e in undecided]} are only known once they have reported')
    others = [f'"{e.prefix}/..." of {e.type}' for e in entries if not e.complete]
    raise RobustnessError(f'metric {metric!r} is not reported by the test evaluator '
                          f'{[e.type for e in entries]}: it reports {known}'
                          + (f' and {", ".join(others)}' if others else '') + ' (pass one of them with --metric)')


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


def cells_by_distortion(cells: Dict[str, dict]) -> Dict[str, Dict[Optional[int], str]]:
    """``{distortion: {level or None: cell key}}`` of the distorted cells, in insertion order."""
    out: Dict[str, Dict[Optional[int], str]] = {}
    for key in cells:
        cell = Cell.from_key(key)
        if cell.distortion is not None:
            out.setdefault(cell.distortion, {})[cell.level] = key
    return out


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


# --------------------------------------------------------------------------------------------------------------
# evaluation of cells with one Runner


def check_test_config(cfg) -> None:
    """The config must define a test dataloader with a dataset, a test loop and a test evaluator."""
    missing = [key for key in ('test_dataloader', 'test_cfg', 'test_evaluator') if not cfg.get(key)]
    if missing:
        raise RobustnessError(f'config {config_name(cfg)!r} has no {", ".join(missing)}: a robustness sweep '
                              'evaluates the test split (set test_dataloader, test_cfg=dict(type="TestLoop") and '
                              'test_evaluator)')
    if not isinstance(cfg.test_dataloader.get('dataset'), dict):
        raise RobustnessError(f'config {config_name(cfg)!r}: test_dataloader has no dataset dict')


def _equal_except_pipeline(a: dict, b: dict) -> bool:
    strip = lambda d: {k: v for k, v in d.items() if k != 'pipeline'}  # noqa: E731
    return strip(a) == strip(b)


class CellEvaluator:
    """Evaluates cells with one Runner: the model and checkpoint are loaded once, each cell swaps the test loop's
    dataloader for one whose pipeline carries the cell's distortion (workers as configured).

    The test dataset is built once; a cell whose injected dataset config differs only in ``pipeline`` gets a
    shallow copy of it with the new pipeline (re-reading thousands of annotation files per cell would add to the
    sweep's time what the distortions are meant to be measured against). Anything else rebuilds the dataset.

    ``saliency``: ``dict(config=..., checkpoint=...)`` of the classifier for targeted occlusion.
    """

    def __init__(self, runner, seed: int = 0, saliency: Optional[dict] = None):
        self.runner = runner
        self.seed = seed
        self.saliency = saliency
        self.base_loader_cfg = copy.deepcopy(runner.cfg.test_dataloader)
        self._started = False

    def start(self) -> None:
        """Build the test loop (clean dataloader), run ``before_run`` hooks and load the checkpoint."""
        runner = self.runner
        self.loop = runner.test_loop  # mmengine builds the loop, its dataloader and evaluator on first access
        self.clean_dataset = self.loop.dataloader.dataset
        runner.call_hook('before_run')
        runner.load_or_resume()
        self._started = True

    def finish(self) -> None:
        if self._started:
            self.runner.call_hook('after_run')
            self._started = False

    def loader_cfg(self, cell: Cell) -> dict:
        loader_cfg = copy.deepcopy(self.base_loader_cfg)
        if cell.distortion is not None:
            from featquant_mmdet.distortions.inject import inject_distortion
            if is_corruption(cell.distortion):
                from .corruptions import inject_corruption
                inject_corruption(loader_cfg, cell.distortion, cell.level, seed=self.seed)
                return loader_cfg
            kwargs = {}
            if cell.distortion in saliency_distortions():
                kwargs = dict(classifier=self.saliency['config'], checkpoint=self.saliency['checkpoint'])
            inject_distortion(loader_cfg, cell.distortion, level=cell.level, seed=self.seed, **kwargs)
        return loader_cfg

    def build_dataloader(self, cell: Cell):
        from mmengine.dataset import Compose
        loader_cfg = self.loader_cfg(cell)
        dataset_cfg = loader_cfg['dataset']
        if isinstance(getattr(self.clean_dataset, 'pipeline', None), Compose) and _equal_except_pipeline(
                dataset_cfg, self.base_loader_cfg['dataset']):
            dataset = copy.copy(self.clean_dataset)  # shares the parsed annotations
            dataset.pipeline = Compose(dataset_cfg['pipeline'])
            loader_cfg['dataset'] = dataset
        randomness = self.runner.cfg.get('randomness') or {}
        return self.runner.build_dataloader(loader_cfg, seed=self.runner.seed,
                                            diff_rank_seed=randomness.get('diff_rank_seed', False))

    def evaluate(self, cell: Cell) -> Tuple[dict, float, int]:
        """One pass of the test loop on ``cell``: (metrics, wall seconds incl. the dataloader build, images)."""
        if not self._started:
            self.start()
        start = time.perf_counter()
        self.loop.dataloader = self.build_dataloader(cell)
        metrics = self.loop.run()
        return _jsonable(dict(metrics)), time.perf_counter() - start, len(self.loop.dataloader.dataset)


# --------------------------------------------------------------------------------------------------------------
# the sweep


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

    def cell_inputs(self, cell: Cell) -> dict:
        """What a cell's numbers depend on beyond the results identity (the saliency classifier of occlusion)."""
        if cell.distortion in saliency_distortions() and self.saliency:
            return {'saliency_config_sha256': self.saliency['config_sha256'],
                    'saliency_checkpoint_sha256': self.saliency['checkpoint_sha256']}
        return {}

    def pending(self, results: dict) -> List[Cell]:
        """Cells not finished yet, or finished with other inputs (another saliency classifier)."""
        done = results['cells']
        return [c for c in self.cells
                if c.key not in done or done[c.key].get('inputs', {}) != self.cell_inputs(c)]


def _check_saliency(saliency: Optional[dict]) -> Optional[dict]:
    if saliency is None:
        return None
    if not isinstance(saliency, dict) or not saliency.get('config') or not saliency.get('checkpoint'):
        raise RobustnessError('the saliency classifier needs both a config and a checkpoint '
                              '(--saliency-config and --saliency-checkpoint)')
    for key in ('config', 'checkpoint'):
        if not osp.isfile(saliency[key]):
            raise RobustnessError(f'saliency classifier {key} not found: {saliency[key]}')
    # built once here, so that a checkpoint that does not fit the config (e.g. another class count) stops the sweep
    # before its first cell, not at the occlusion cells after all the others
    from featquant_mmdet.distortions.occlusion import build_classifier
    try:
        build_classifier(saliency['config'], saliency['checkpoint'])
    except Exception as err:  # noqa: BLE001  (any failure to build or load is the same bad input)
        raise RobustnessError(
            f'the saliency classifier cannot be built from --saliency-config {saliency["config"]} and '
            f'--saliency-checkpoint {saliency["checkpoint"]}: {type(err).__name__}: {str(err).strip()[:600]}; the '
            f'config must describe the checkpoint\'s model (e.g. its head.num_classes: write a config that inherits '
            f'yours with _base_ and overrides it)') from None
    return {'config': osp.abspath(saliency['config']), 'checkpoint': osp.abspath(saliency['checkpoint']),
            'config_sha256': file_sha256(saliency['config']), 'checkpoint_sha256': file_sha256(saliency['checkpoint'])}


def prepare_sweep(cfg, checkpoint: str, distortions: Sequence[str] = ('all', ), levels: Sequence[int] = (1, 2, 3, 4),
                  seed: int = 0, metric: Optional[str] = None, reference: Optional[str] = None,
                  results_path: Optional[str] = None, saliency: Optional[dict] = None) -> SweepPlan:
    """Check every input (config, names, levels, checkpoint, results file, reference) without evaluating.

    ``saliency``: ``dict(config=..., checkpoint=...)`` of the classifier whose saliency map guides targeted
    occlusion (classifiers only).
    """
    check_test_config(cfg)
    metric = metric or default_metric_key(cfg.test_evaluator)
    if not isinstance(metric, str) or '/' not in metric:
        raise RobustnessError(f'metric key {metric!r} must be "<prefix>/<name>" as the evaluator reports it, '
                              'e.g. pascal_voc/mAP, coco/bbox_mAP, accuracy/top1, accuracy/top5')
    notes: List[str] = []
    metric_note = check_metric_key(metric, cfg.test_evaluator)
    if metric_note:
        notes.append(metric_note)
    saliency = _check_saliency(saliency)
    names = resolve_distortions(distortions, task_of(metric), saliency is not None, notes)
    cells = plan_cells(names, resolve_levels(levels, names))
    if any(is_corruption(n) for n in names):
        from .corruptions import import_imagecorruptions
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
    action, changes = check_results_file(results_path, identity)
    if action == 'resume':
        check_resumed_metric(results_path, metric)
    ref_data = None
    if reference is not None:
        ref_data = load_results(reference)
        check_reference(ref_data, identity, cells, metric, reference)
    return SweepPlan(cfg, checkpoint, cells, seed, metric, identity, osp.abspath(results_path), action, changes,
                     ref_data, reference, saliency, notes)


def results_file(cfg) -> str:
    """``<work_dir>/robustness.json`` of the config."""
    if not cfg.get('work_dir'):
        raise RobustnessError('no work_dir in the config and no results path: pass --work-dir')
    return osp.join(cfg.work_dir, RESULTS_FILENAME)


def check_resumed_metric(results_path: str, metric: str) -> None:
    """A resumed sweep's finished clean cell tells exactly which metrics the evaluator reports."""
    clean = load_results(results_path)['cells'].get('clean')
    if clean is not None and metric not in clean['metrics']:
        raise RobustnessError(f'metric {metric!r} is not among the metrics of the finished clean cell in '
                              f'{results_path}: {sorted(clean["metrics"])} (pass one of them with --metric)')


def _new_results(plan: SweepPlan) -> dict:
    return {'format': RESULTS_FORMAT, 'identity': plan.identity, 'task': task_of(plan.metric), 'metric': plan.metric,
            'cells': {}, 'runs': [], 'summary': None}


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class CellProgress:
    """A progress bar over the cells, one log line per finished cell: the cell, its metric and time, the elapsed
    time and the ETA (mean time of the cells evaluated in this run times the cells left). mmengine's LoggerHook
    adds its per-iteration lines inside each cell."""

    def __init__(self, total: int, done: int, metric: str, log=None):
        from mmengine.logging import print_log
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


def run_sweep(plan: SweepPlan, runner=None) -> dict:
    """Evaluate the plan's missing cells, saving the results file after each; returns the results with summary.

    Holds the results file's :class:`SweepLock` throughout (:class:`SweepLockedError` if another sweep has it),
    and decides again under the lock what to do with the results file (another sweep may have written it since
    ``prepare_sweep``).

    ``runner``: an already built Runner for ``plan.cfg`` with ``load_from`` set to the checkpoint (built here
    from the config otherwise).
    """
    launcher = plan.cfg.get('launcher', 'none')
    with SweepLock(plan.results_path, launcher):
        return _run_sweep_locked(plan, runner, main=launcher_rank(launcher) == 0)


def _run_sweep_locked(plan: SweepPlan, runner, main: bool) -> dict:
    from mmengine.dist import broadcast_object_list
    from mmengine.logging import print_log

    if main:
        action, changes = check_results_file(plan.results_path, plan.identity)
        if (action, changes) != (plan.action, plan.changes):
            print_log(f'[robustness] {plan.results_path} changed since the sweep was planned: {action} instead of '
                      f'{plan.action}', logger='current', level=30)
            if action == 'resume':
                check_resumed_metric(plan.results_path, plan.metric)
            plan.action, plan.changes = action, changes
    for note in plan.notes:
        print_log(f'[robustness] {note}', logger='current', level=30)
    results = None
    if plan.action == 'resume':
        results = load_results(plan.results_path)
        results['metric'] = plan.metric
        results['task'] = task_of(plan.metric)
    elif plan.action == 'invalidate' and main:
        moved = stale_path(plan.results_path)
        os.replace(plan.results_path, moved)
        print_log(f'[robustness] {plan.results_path} was written with another {", ".join(plan.changes)}: moved '
                  f'to {moved}, evaluating every cell again', logger='current', level=30)
    if results is None:
        results = _new_results(plan)

    synced = [[c.key for c in plan.pending(results)]]
    if synced[0] and runner is None:
        runner = build_sweep_runner(plan.cfg, plan.checkpoint)  # only when there is something to evaluate
    if synced[0]:
        broadcast_object_list(synced)  # every rank evaluates the same cells (rank 0 decided)
    pending = [Cell.from_key(key) for key in synced[0]]
    skipped = [c.key for c in plan.cells if c.key not in synced[0]]

    run_record = {'started_at': _utc_now(), 'evaluated': [], 'skipped': skipped, 'finished_at': None}
    results.setdefault('runs', []).append(run_record)
    if main:
        write_json_atomic(plan.results_path, results)
    print_log(f'[robustness] {len(plan.cells)} cells: {len(skipped)} already in {plan.results_path}, '
              f'{len(pending)} to evaluate', logger='current')

    progress = CellProgress(len(plan.cells), len(skipped), plan.metric)
    evaluator = CellEvaluator(runner, seed=plan.seed, saliency=plan.saliency) if pending else None
    try:
        for cell in pending:
            metrics, wall, num_images = evaluator.evaluate(cell)
            results['cells'][cell.key] = {'distortion': cell.distortion, 'level': cell.level, 'metrics': metrics,
                                          'wall_time_s': wall, 'num_images': num_images, 'finished_at': _utc_now(),
                                          'inputs': plan.cell_inputs(cell)}
            run_record['evaluated'].append(cell.key)
            if main:
                write_json_atomic(plan.results_path, results)
            if cell.key == 'clean' and plan.metric not in metrics:  # types whose keys are not known up front
                raise RobustnessError(f'metric {plan.metric!r} is not reported by the test evaluator; it reports '
                                      f'{sorted(metrics)} (pass one of them with --metric; the clean cell is '
                                      f'kept in {plan.results_path}, a rerun resumes)')
            progress.update(cell, metrics, wall)
    finally:
        if evaluator is not None:
            evaluator.finish()
    run_record['finished_at'] = _utc_now()
    results['summary'] = summarize(results, plan.metric, plan.reference)
    if plan.reference_path:
        results['summary']['reference']['path'] = osp.abspath(plan.reference_path)
    if main:
        write_json_atomic(plan.results_path, results)
    return results


def build_sweep_runner(cfg, checkpoint: str):
    """The Runner of the config with the checkpoint to load (its own copy of the config)."""
    from featquant_mmdet.engine.cli import build_runner
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    return build_runner(cfg)


def format_summary(summary: dict) -> str:
    """A few lines for the console: P, mPC, rPC, mCE and the per-distortion means."""
    lines = [f'metric {summary["metric"]}: P={_fmt(summary["P"])}  mPC={_fmt(summary["mPC"])}  '
             f'rPC={_fmt(summary["rPC"])}' + (f'  mCE={_fmt(summary["mCE"])}' if 'mCE' in summary else '')]
    for name, entry in summary['per_distortion'].items():
        ce = f'  CE={_fmt(summary["CE"][name])}' if 'CE' in summary else ''
        lines.append(f'  {name:<20} mean={_fmt(entry["mean"])} over levels {entry["levels"]}{ce}')
    return '\n'.join(lines)


def _fmt(value) -> str:
    return 'n/a' if value is None else f'{value:.4f}'
