"""Snapshot matching (featquant_mmdet/engine/snapshots.py, tools/match_snapshots.py) on constructed training runs:
work dirs holding mmengine's validation record (``<timestamp>/vis_data/scalars.json``) and checkpoint files. The
files' content is not read by the matching (a real study's runs are in tests/test_study.py)."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from featquant_mmdet.engine.snapshots import match_runs, prune, resolve_target, snapshots
from featquant_mmdet.engine.stages import StageError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'match_snapshots.py')
KEY = 'accuracy/top1'


def make_run(path, values, key=KEY, checkpoints=None, timestamp='20260101_000000', prefix='epoch'):
    """A run folder: one validation record per ``values`` item (step = epoch, from 1) and its checkpoint file
    (``checkpoints``: the steps that have one; default all)."""
    log = path / timestamp / 'vis_data'
    log.mkdir(parents=True, exist_ok=True)
    with open(log / 'scalars.json', 'a') as f:
        for step, value in enumerate(values, 1):
            f.write(json.dumps({'lr': 0.01, 'loss': 1.0, 'step': step}) + '\n')  # a training record
            if value is not None:
                f.write(json.dumps({key: value, 'accuracy/top5': 100.0, 'data_time': 0.1, 'time': 0.2,
                                    'step': step}) + '\n')
    for step in checkpoints or range(1, len(values) + 1):
        (path / f'{prefix}_{step}.pth').write_bytes(b'weights')
    return str(path)


def test_snapshots_pair_each_recorded_value_with_its_checkpoint(tmp_path):
    run = make_run(tmp_path / 'a', [40.0, 50.0, None, 60.0], checkpoints=[1, 2, 3, 4])
    snaps = snapshots(run, KEY)
    assert [(s.step, osp.basename(s.path), s.value) for s in snaps] == [
        (1, 'epoch_1.pth', 40.0), (2, 'epoch_2.pth', 50.0), (4, 'epoch_4.pth', 60.0)]


def test_a_step_without_its_checkpoint_is_no_candidate_and_iterations_name_checkpoints_too(tmp_path):
    run = make_run(tmp_path / 'a', [40.0, 50.0, 60.0], checkpoints=[1, 3], prefix='iter')
    assert [s.step for s in snapshots(run, KEY)] == [1, 3]


def test_a_resumed_run_later_record_of_a_step_wins(tmp_path):
    run = make_run(tmp_path / 'a', [40.0, 50.0, 55.0])
    make_run(tmp_path / 'a', [40.0, 50.0, 58.0], timestamp='20260102_000000')
    assert [s.value for s in snapshots(run, KEY)] == [40.0, 50.0, 58.0]


def test_closest_snapshot_is_picked_and_ties_go_to_the_later_one(tmp_path):
    runs = {'A': snapshots(make_run(tmp_path / 'a', [50.0, 60.0, 70.0]), KEY),
            'B': snapshots(make_run(tmp_path / 'b', [55.0, 65.0, 75.0, 80.0]), KEY)}
    matches = match_runs(runs, 70.0, 5.0)
    assert matches['A'].snapshot.step == 3 and matches['A'].distance == 0
    # B: 65 and 75 are both 5 away from 70 -> the later (epoch 3)
    assert matches['B'].snapshot.step == 3 and matches['B'].distance == 5.0
    assert matches['B'].final.step == 4 and matches['B'].final.value == 80.0


def test_the_tolerance_edges(tmp_path):
    runs = {'A': snapshots(make_run(tmp_path / 'a', [50.0, 62.5]), KEY)}
    assert match_runs(runs, 60.0, 2.5)['A'].snapshot.step == 2  # exactly at the tolerance: accepted
    assert match_runs(runs, 60.0, 2.5 - 1e-13)['A'].snapshot.step == 2  # float noise of a JSON log
    with pytest.raises(StageError, match=r'run A: no snapshot within 2.49 of the target metric 60.00 \(no snapshot '
                                         r'close enough \[50.00, 62.50\]\); closest: epoch_2.pth at 62.50'):
        match_runs(runs, 60.0, 2.49)


def test_a_target_outside_every_snapshot_range_names_the_run_and_its_closest(tmp_path):
    runs = {'ZF s0': snapshots(make_run(tmp_path / 'a', [50.0, 60.0]), KEY)}
    with pytest.raises(StageError, match=r"run ZF s0: .*target accuracy/top1 70.00 \(the target lies outside its "
                                         r"snapshots' range \[50.00, 60.00\]\); closest: epoch_2.pth at 60.00 "
                                         r"\(distance 10.00\)"):
        match_runs(runs, 70.0, 1.0, key=KEY)


def test_targets_reference_and_common(tmp_path):
    runs = {'ref': snapshots(make_run(tmp_path / 'a', [50.0, 72.0, 70.0]), KEY),
            'other': snapshots(make_run(tmp_path / 'b', [40.0, 60.0, 66.0, 64.0]), KEY)}
    assert resolve_target('reference', runs, 'ref') == 70.0  # the final snapshot, not the best
    assert resolve_target('common', runs) == 66.0  # the best value both reach
    assert resolve_target(58, runs) == 58.0
    matches = match_runs(runs, 'common', 5.0, 'ref')
    assert matches['other'].snapshot.step == 3 and matches['ref'].snapshot.step == 3  # ref: 70 (4 away) vs 72 (6)
    with pytest.raises(StageError, match="match target 'best' must be|match target must be"):
        resolve_target('best', runs)
    with pytest.raises(StageError, match=r"the reference run 'nope' is not among the runs \['other', 'ref'\]"):
        resolve_target('reference', runs, 'nope')
    with pytest.raises(StageError, match='tolerance must be a number >= 0'):
        match_runs(runs, 60.0, -1)


def test_a_metric_key_no_snapshot_has_names_the_run_and_the_recorded_keys(tmp_path):
    run = make_run(tmp_path / 'a', [50.0, 60.0])
    with pytest.raises(StageError, match=r"run POW s1: no snapshot has the metric 'pascal_voc/mAP'; its validations "
                                         r"recorded \['accuracy/top1', 'accuracy/top5'\]"):
        snapshots(run, 'pascal_voc/mAP', 'POW s1')


def test_a_run_without_periodic_checkpoints_is_refused(tmp_path):
    run = make_run(tmp_path / 'a', [50.0, 60.0, 70.0], checkpoints=[3])  # only the last one kept
    with pytest.raises(StageError, match=r'run .*: no periodic checkpoints: 1 checkpoint\(s\) with accuracy/top1 '
                                         r"recorded \(validated at steps \[1, 2, 3\], checkpoints \['epoch_3.pth'\]\)"):
        snapshots(run, KEY)
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'epoch_3.pth').write_bytes(b'w')
    with pytest.raises(StageError, match=r'run .*b: no validation record .*train_cfg.val_interval'):
        snapshots(str(tmp_path / 'b'), KEY)


def test_prune_keeps_the_matched_snapshot_only(tmp_path):
    run = make_run(tmp_path / 'a', [50.0, 60.0, 70.0])
    (tmp_path / 'a' / 'other.pth').write_bytes(b'not a snapshot')
    removed = prune(run, [osp.join(run, 'epoch_2.pth')])
    assert [osp.basename(p) for p in removed] == ['epoch_1.pth', 'epoch_3.pth']
    assert sorted(p.name for p in (tmp_path / 'a').glob('*.pth')) == ['epoch_2.pth', 'other.pth']
    # matching the pruned run again (another variant set, target or tolerance) says why it cannot
    with pytest.raises(StageError, match=r"run POW s0: its snapshots were deleted after an earlier match "
                                         r"\(.*pruned.json: 2 deleted, kept \['epoch_2.pth', 'other.pth'\]\): a new "
                                         r"match .* needs the run trained again \(delete .*a\), or match prune=False"):
        snapshots(run, KEY, 'POW s0')


def run_tool(*argv):
    """The real entry point in a subprocess (exit status, stderr, no traceback)."""
    return subprocess.run([sys.executable, TOOL, *map(str, argv)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('match_snapshots')


def test_tool_prints_the_table_and_writes_the_matches(tmp_path, tool, capsys):
    a = make_run(tmp_path / 'zf', [50.0, 58.6, 61.0])
    b = make_run(tmp_path / 'pow', [48.0, 57.5, 59.0, 63.0])
    assert tool.main([a, b, '--metric', KEY, '--target', 'common', '--tolerance', '2',
                      '--json', str(tmp_path / 'm.json')]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "target accuracy/top1 61.00 ('common'), tolerance 2:"
    assert lines[1].startswith('| Run | Snapshot | accuracy/top1 | Distance to target |')
    assert lines[3] == f'| {osp.normpath(a)} | epoch_3.pth | 61.00 | 0.00 | epoch_3.pth (61.00) |'
    # 59 and 63 are both 2 away from 61: the later snapshot
    assert lines[4] == f'| {osp.normpath(b)} | epoch_4.pth | 63.00 | 2.00 | epoch_4.pth (63.00) |'
    record = json.loads((tmp_path / 'm.json').read_text())
    assert record['matches'][osp.normpath(b)]['step'] == 4 and record['target'] == 'common'


def test_tool_refuses_in_one_line_naming_the_closest_candidate(tmp_path):
    a = make_run(tmp_path / 'zf', [50.0, 58.6, 61.0])
    b = make_run(tmp_path / 'pow', [48.0, 57.5, 59.0, 63.0])
    out = run_tool(a, b, '--metric', KEY, '--target', 'reference', '--tolerance', '1.5')
    assert out.returncode == 1 and out.stdout == ''
    assert out.stderr.count('\n') == 1
    assert 'no snapshot within 1.5 of the target accuracy/top1 61.00' in out.stderr
    assert 'closest: epoch_4.pth at 63.00 (distance 2.00)' in out.stderr  # a tie of 59 and 63: the later


@pytest.mark.parametrize('extra, message', [
    (['--tolerance', '-1'], '--tolerance must be >= 0'),
    (['--tolerance', '1', '--target', 'best'], "expected a number, reference or common, got 'best'"),
    (['--tolerance', '1', '--reference', 'elsewhere'], '--reference elsewhere is not one of the runs'),
    (['missing_run', '--tolerance', '1'], 'no such run folder'),
])
def test_tool_argument_mistakes_are_one_line_and_exit_2(tmp_path, tool, capsys, extra, message):
    """In process (main(argv)): argparse's usage line and one error line, exit 2 (the subprocess entry point's exit
    status and one-line stderr are checked by test_tool_refuses_in_one_line_naming_the_closest_candidate)."""
    a = make_run(tmp_path / 'zf', [50.0, 60.0])
    with pytest.raises(SystemExit) as exc:
        tool.main([a, *extra, '--metric', KEY])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err
    errors = [line for line in err.splitlines() if 'error:' in line]
    assert len(errors) == 1 and ': error: ' in errors[0] and message in errors[0], err
