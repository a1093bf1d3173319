"""Snapshots matched on a clean metric: the paper's protocol for Table 3 ("we manually select snapshots of both
models that provide the same classification accuracy ... a snapshot of the ZF-POW-1 model which provides the
detection performance that is same to that of the fully trained ZF model").

A training run keeps periodic checkpoints (``default_hooks.checkpoint.interval=K``, ``max_keep_ckpts=-1``) and
validates at the same interval (``train_cfg.val_interval=K``): mmengine's ``LocalVisBackend`` writes each
validation's metrics to ``<work_dir>/<timestamp>/vis_data/scalars.json`` with ``step`` = the epoch (epoch-based
loops) or the iteration (iteration-based), which names the checkpoint ``epoch_<step>.pth`` / ``iter_<step>.pth``.
A *snapshot* is such a checkpoint with its recorded value (:func:`snapshots`; a resumed run's later record of a
step wins).

Matching (:func:`match_runs`): per run the snapshot ``s`` minimising ``|value(s) - target|``; a tie goes to the
later snapshot (longer trained). The target is a number, ``'reference'`` (the reference run's final snapshot, as
the paper's "fully trained ZF") or ``'common'`` (``min over runs of max over its snapshots``: the best value every
run reaches, as the paper's "same classification accuracy" of both models). A run whose closest snapshot is
farther than ``tolerance`` (the metric's units; percent for accuracy and mAP) is refused with one line naming the
run and its closest snapshot. Bad input (no validation record, a metric key no snapshot has, a run without
periodic checkpoints) is one :class:`~.stages.StageError` naming the run and what is missing.
"""
import glob
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

from .stages import StageError

TARGETS = ('reference', 'common')
PRUNED = 'pruned.json'  # written by prune(): which snapshots a match kept and deleted
_EPS = 1e-9  # values are floats from a JSON log: a distance equal to the tolerance is within it


@dataclass
class Snapshot:
    """A periodic checkpoint of a run: its step (epoch or iteration), file and recorded clean metric."""

    step: int
    path: str
    value: float


@dataclass
class Match:
    """The snapshot picked for a run, the target it was matched to, its distance and the run's final snapshot."""

    run: str
    snapshot: Snapshot
    target: float
    distance: float
    final: Snapshot

    def to_dict(self) -> dict:
        return dict(run=self.run, step=self.snapshot.step, checkpoint=self.snapshot.path, value=self.snapshot.value,
                    target=self.target, distance=self.distance, final_step=self.final.step,
                    final_value=self.final.value)


def read_records(work_dir: str) -> List[dict]:
    """Every scalars record of the run's validations (lines with a ``step``), oldest log first."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    records = []
    for path in files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue  # a line cut by a killed run
    return records


def checkpoint_of(work_dir: str, step: int) -> Optional[str]:
    """``epoch_<step>.pth`` or ``iter_<step>.pth`` in ``work_dir``, whichever exists (else None)."""
    for prefix in ('epoch', 'iter'):
        path = osp.join(work_dir, f'{prefix}_{step}.pth')
        if osp.isfile(path):
            return path
    return None


def snapshots(work_dir: str, key: str, run: Optional[str] = None) -> List[Snapshot]:
    """The run's snapshots (checkpoint file present, ``key`` recorded at its step), by step.

    Raises :class:`StageError` naming the run (``run``, default the folder) when it has no validation record, no
    record of ``key`` (the keys it has are listed), or fewer than two snapshots (no periodic checkpoints)."""
    run = run or work_dir
    if not osp.isdir(work_dir):
        raise StageError(f'run {run}: no such folder {work_dir}')
    records = read_records(work_dir)
    if not records:
        raise StageError(f'run {run}: no validation record (<timestamp>/vis_data/scalars.json) in {work_dir}: train '
                         'with a validation loop at the checkpoint interval (train_cfg.val_interval)')
    values: Dict[int, float] = {}
    for rec in records:
        if key in rec and 'step' in rec:
            values[int(rec['step'])] = float(rec[key])
    if not values:
        keys = sorted({k for rec in records for k in rec} - {'step', 'lr', 'time', 'data_time', 'loss', 'epoch',
                                                              'iter', 'memory'})
        raise StageError(f'run {run}: no snapshot has the metric {key!r}; its validations recorded {keys}')
    snaps = [Snapshot(step, path, values[step]) for step in sorted(values)
             for path in [checkpoint_of(work_dir, step)] if path is not None]
    if len(snaps) < 2:
        kept = sorted(osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth')))
        pruned = osp.join(work_dir, PRUNED)
        if osp.isfile(pruned):
            with open(pruned) as f:
                deleted = len(json.load(f).get('removed', []))
            raise StageError(f'run {run}: its snapshots were deleted after an earlier match ({pruned}: {deleted} '
                             f'deleted, kept {kept}): a new match (other runs, target or tolerance) needs the run '
                             f'trained again (delete {work_dir}), or match prune=False to keep them')
        raise StageError(f'run {run}: no periodic checkpoints: {len(snaps)} checkpoint(s) with {key} recorded '
                         f'(validated at steps {sorted(values)}, checkpoints {kept}); train with '
                         'default_hooks.checkpoint.interval = train_cfg.val_interval and max_keep_ckpts=-1')
    return snaps


def resolve_target(target: Union[str, float, int], runs: Dict[str, Sequence[Snapshot]],
                   reference: Optional[str] = None) -> float:
    """The number to match: ``target`` itself, the reference run's final value, or the best value all runs reach."""
    if isinstance(target, bool) or not isinstance(target, (str, int, float)) or (
            isinstance(target, str) and target not in TARGETS):
        raise StageError(f'match target must be a number, {TARGETS[0]!r} or {TARGETS[1]!r}, got {target!r}')
    if not isinstance(target, str):
        return float(target)
    if target == 'common':
        return min(max(s.value for s in snaps) for snaps in runs.values())
    if reference not in runs:
        raise StageError(f'match target {target!r}: the reference run {reference!r} is not among the runs '
                         f'{sorted(runs)}')
    return runs[reference][-1].value


def pick(snaps: Sequence[Snapshot], target: float) -> Snapshot:
    """The snapshot closest to ``target``; of equally close ones the later (larger step)."""
    return min(snaps, key=lambda s: (abs(s.value - target), -s.step))


def match_runs(runs: Dict[str, Sequence[Snapshot]], target: Union[str, float], tolerance: float,
               reference: Optional[str] = None, key: str = 'metric') -> Dict[str, Match]:
    """Per run the snapshot closest to the target (:func:`pick`); :class:`StageError` naming the first run whose
    closest snapshot lies farther than ``tolerance`` (and that candidate)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise StageError(f'match tolerance must be a number >= 0 (the metric\'s units), got {tolerance!r}')
    value = resolve_target(target, runs, reference)
    matches = {}
    for run, snaps in runs.items():
        best = pick(snaps, value)
        distance = abs(best.value - value)
        if distance > tolerance + _EPS * max(1.0, abs(value)):
            low, high = min(s.value for s in snaps), max(s.value for s in snaps)
            where = ('the target lies outside its snapshots\' range' if not low <= value <= high
                     else 'no snapshot close enough')
            raise StageError(f'run {run}: no snapshot within {tolerance:g} of the target {key} {value:.2f} ({where} '
                             f'[{low:.2f}, {high:.2f}]); closest: {osp.basename(best.path)} at {best.value:.2f} '
                             f'(distance {distance:.2f})')
        matches[run] = Match(run, best, value, distance, snaps[-1])
    return matches


def match_table(matches: Dict[str, Match], key: str) -> List[str]:
    """Markdown: run, snapshot, its clean value, the distance to the target and the run's final snapshot."""
    lines = [f'| Run | Snapshot | {key} | Distance to target | Final snapshot ({key}) |', '|---|---|---:|---:|---|']
    for m in matches.values():
        lines.append(f'| {m.run} | {osp.basename(m.snapshot.path)} | {m.snapshot.value:.2f} | {m.distance:.2f} | '
                     f'{osp.basename(m.final.path)} ({m.final.value:.2f}) |')
    return lines


def prune(work_dir: str, keep: Sequence[str]) -> List[str]:
    """Delete the run's ``epoch_*.pth`` / ``iter_*.pth`` but ``keep`` (disk: a ZF classifier's weights are ~0.24 GB)
    and say so in ``<work_dir>/pruned.json`` (a later match of the run names it); returns the deleted paths."""
    keep = {osp.abspath(p) for p in keep}
    removed = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        if re.fullmatch(r'(epoch|iter)_\d+\.pth', osp.basename(path)) and osp.abspath(path) not in keep:
            os.remove(path)
            removed.append(path)
    with open(osp.join(work_dir, PRUNED), 'w') as f:
        json.dump(dict(kept=sorted(osp.basename(p) for p in keep),
                       removed=sorted(osp.basename(p) for p in removed)), f)
    return sorted(removed)


def matches_to_json(matches: Dict[str, Match]) -> Dict[str, dict]:
    return {run: m.to_dict() for run, m in matches.items()}


