"""The results file of a sweep (``<work_dir>/robustness.json``): its identity, reading, writing and invalidation.

Written atomically after every cell, so a killed sweep loses at most the cell in flight. Its ``identity`` decides
what a rerun does with it:

* same config name, config hash, checkpoint hash, distortion seed and test data: *resume* (skip finished cells);
* same config name, anything else changed (a re-trained checkpoint, an edited config, another seed): *invalidate*
  -- the old file is moved aside to ``robustness.stale-<UTC time>.json`` (never deleted) and the sweep starts
  afresh, because mixing cells of two checkpoints would silently produce wrong numbers;
* another config name: *error* -- the file belongs to another model (mmdet's work dirs are per config,
  ``work_dirs/<config name>``), and replacing another model's finished sweep is the last thing a user wants.

Files that belong to the results file live beside it under one stem (``robustness.lock``; per-cell side files,
when a sweep writes them, in ``robustness.cells/``: :meth:`ResultsFile.cell_file`); invalidation moves the side
folder aside with the JSON, under the same stale stamp.
"""
import copy
import datetime
import hashlib
import json
import os
import os.path as osp
from typing import List, Tuple

from ...fileio import write_json_atomic
from .errors import RobustnessError

RESULTS_FORMAT = 'featquant-robustness/1'
RESULTS_FILENAME = 'robustness.json'

# Runtime settings that cannot change a cell's numbers; left out of the config hash so that, e.g., another
# logging interval or more dataloader workers do not invalidate finished cells.
# (custom_hooks stay in: an EMAHook, for one, swaps the weights that are tested.)
RUNTIME_CONFIG_KEYS = ('work_dir', 'load_from', 'resume', 'launcher', 'env_cfg', 'log_level', 'log_processor',
                       'default_hooks', 'visualizer', 'vis_backends')
RUNTIME_DATALOADER_KEYS = ('num_workers', 'persistent_workers', 'pin_memory', 'prefetch_factor')
IDENTITY_FIELDS = ('config_sha256', 'checkpoint_sha256', 'distortion_seed', 'test_data')


# ---------------------------------------------------------------------------------------------------- identity

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


def jsonable(value):
    """``value`` with python/numpy/torch scalars as floats and anything else unknown as its repr."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def test_data_identity(cfg) -> dict:
    """Where the test images come from; results of two models can only be compared on the same test data."""
    dataset = cfg.test_dataloader.get('dataset', {})
    identity = {key: jsonable(dataset.get(key)) for key in ('type', 'data_root', 'ann_file', 'data_prefix')}
    if isinstance(identity['data_root'], str) and identity['data_root']:
        identity['data_root'] = osp.abspath(identity['data_root'])  # 'data/voc/' and '/repo/data/voc' are one root
    return identity


test_data_identity.__test__ = False  # not a pytest test, despite its name


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
    return [f for f in IDENTITY_FIELDS if old.get(f) != new.get(f)]


# ---------------------------------------------------------------------------------------------------- the file

def results_file(cfg) -> str:
    """``<work_dir>/robustness.json`` of the config."""
    if not cfg.get('work_dir'):
        raise RobustnessError('no work_dir in the config and no results path: pass --work-dir')
    return osp.join(cfg.work_dir, RESULTS_FILENAME)


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


def new_results(identity: dict, task: str, metric: str) -> dict:
    """The content of a results file before its first cell."""
    return {'format': RESULTS_FORMAT, 'identity': identity, 'task': task, 'metric': metric, 'cells': {},
            'runs': [], 'summary': None}


class ResultsFile:
    """``<work_dir>/robustness.json`` and the files beside it that share its stem."""

    def __init__(self, path: str):
        self.path = osp.abspath(path)
        self.stem = osp.splitext(self.path)[0]

    @property
    def cells_dir(self) -> str:
        """Folder of per-cell side files (``robustness.cells/``), moved aside with the JSON on invalidation."""
        return self.stem + '.cells'

    def cell_file(self, cell_key: str, suffix: str) -> str:
        """Where a side file of one cell goes, e.g. ``robustness.cells/mix_heavy.<suffix>``."""
        return osp.join(self.cells_dir, f'{cell_key}.{suffix}')

    def load(self) -> dict:
        return load_results(self.path)

    def save(self, results: dict) -> None:
        write_json_atomic(self.path, results)

    def decide(self, identity: dict) -> Tuple[str, List[str]]:
        """What a sweep does with the file: ``('new'|'resume'|'invalidate', changed identity fields)``.

        Raises :class:`RobustnessError` when the file is not a results file or belongs to another model.
        """
        if not osp.exists(self.path):
            return 'new', []
        old = self.load()['identity']
        if old.get('config_name') != identity['config_name']:
            raise RobustnessError(
                f'{self.path} holds the results of another model (config {old.get("config_name")!r}, checkpoint '
                f'{old.get("checkpoint")}), not of config {identity["config_name"]!r}: pass another --work-dir '
                '(the default is work_dirs/<config name>) or remove the file')
        changes = identity_changes(old, identity)
        return ('invalidate', changes) if changes else ('resume', [])

    def move_aside(self) -> str:
        """Rename the file (and its side folder) to ``<stem>.stale-<UTC time>``; returns the JSON's new path."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
        moved = f'{self.stem}.stale-{stamp}.json'
        os.replace(self.path, moved)
        if osp.isdir(self.cells_dir):
            os.replace(self.cells_dir, f'{self.stem}.stale-{stamp}.cells')
        return moved


def check_results_file(path: str, identity: dict) -> Tuple[str, List[str]]:
    """:meth:`ResultsFile.decide` of ``path``."""
    return ResultsFile(path).decide(identity)
