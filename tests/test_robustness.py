"""The robustness sweep end to end: ZF Faster R-CNN on generated VOC data (killed midway and resumed), the ZF
classifier on generated ImageNet-format data, invalidation, summary numbers and errors on bad input."""
import copy
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from featquant_mmdet.distortions import levels as distortion_levels
from featquant_mmdet.evaluation import robustness as rb
from featquant_mmdet.evaluation.robustness import sweep as rb_sweep
from featquant_mmdet.fileio import write_json_atomic

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIG = osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py')
CLS_CONFIG = osp.join(REPO, 'configs', 'pretrain', 'zf_imagenet.py')
TOOL = osp.join(REPO, 'tools', 'robustness.py')


@pytest.fixture(scope='module')
def robustness_main(load_tool):
    """tools/robustness.py's ``main(argv)``: what the command line runs."""
    return load_tool('robustness').main


def cli_options(options: dict) -> list:
    return [f'{k}={v}' for k, v in options.items()]


def save_initial_checkpoint(config: str, options: dict, path: str, seed: int, init_weights: bool = True) -> str:
    """The initialised model of ``config`` in the Runner's checkpoint format (``meta`` + ``state_dict``).

    ``init_weights=False`` keeps PyTorch's default initialisation, whose larger fc weights make a random
    classifier's predictions depend on the image (the configs' fc init, std 0.005, predicts one class for all)."""
    import featquant_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    register_all_modules(init_default_scope=True)  # the models build their data preprocessors in mmdet's scope
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    if init_weights:
        model.init_weights()
    save_checkpoint({'meta': {'seed': seed, 'config': osp.basename(config)},
                     'state_dict': weights_to_cpu(model.state_dict())}, path)
    return path


def hand_summary(cells: dict, metric: str) -> dict:
    """P, per-distortion means, mPC and rPC computed directly from the stored cells."""
    groups = {}
    for key, cell in cells.items():
        if key != 'clean':
            groups.setdefault(cell['distortion'], []).append(cell['metrics'][metric])
    means = {name: sum(v) / len(v) for name, v in groups.items()}
    p = cells['clean']['metrics'][metric]
    mpc = sum(means.values()) / len(means)
    return dict(P=p, means=means, mPC=mpc, rPC=mpc / p if p else None)


def check_summary(results: dict, metric: str) -> None:
    expected = hand_summary(results['cells'], metric)
    summary = results['summary']
    assert summary['metric'] == metric
    assert summary['P'] == pytest.approx(expected['P'])
    assert {n: d['mean'] for n, d in summary['per_distortion'].items()} == pytest.approx(expected['means'])
    assert summary['mPC'] == pytest.approx(expected['mPC'])
    if expected['rPC'] is None:
        assert summary['rPC'] is None
    else:
        assert summary['rPC'] == pytest.approx(expected['rPC'])


# ---------------------------------------------------------------------------------------------------- detection


@pytest.fixture(scope='module')
def det(tmp_path_factory):
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    root = tmp_path_factory.mktemp('robustness_det')
    data_root = make_voc_dataset(str(root / 'data'), num_train=1, num_test=4, image_size=(128, 96), seed=0)
    options = {
        'test_dataloader.dataset.data_root': data_root + '/',
        'test_dataloader.dataset.pipeline.1.scale': '(128,96)',
        'model.roi_head.bbox_head.fc_out_channels': 64,  # a small fc6/fc7 keeps the checkpoint small
    }
    ckpt = save_initial_checkpoint(DET_CONFIG, options, str(root / 'zf_init.pth'), seed=0)
    return dict(root=root, options=options, checkpoint=ckpt)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _sweep_attempt_without_evaluation(robustness_main, argv):
    """tools/robustness.py's main with everything past the lock replaced by failures: the SystemExit it raises."""
    def fail(*args, **kwargs):
        raise AssertionError('the second sweep went past the lock')

    with pytest.MonkeyPatch.context() as patch:
        for name in ('prepare_sweep', '_evaluate', 'build_sweep_runner'):
            patch.setattr(rb_sweep, name, fail)
        with pytest.raises(SystemExit) as exit_info:
            robustness_main(argv)
    return str(exit_info.value)


def _lock_is_free(results_path) -> bool:
    try:
        rb.SweepLock(results_path).acquire().release()
    except rb.SweepLockedError:
        return False
    return True


@pytest.fixture(scope='module')
def det_killed_and_resumed(det, robustness_main):
    """A 5-cell sweep run by the tool in a subprocess; a second sweep on its work dir tried while it runs; the first
    killed (SIGKILL, the tool process alone) once a cell is written, then resumed."""
    work_dir = str(det['root'] / 'sweep')
    results_path = osp.join(work_dir, 'robustness.json')
    lock_file = osp.join(work_dir, 'robustness.lock')
    argv = [DET_CONFIG, det['checkpoint'], '--distortions', 'motion_blur', 'mix', '--levels', '1', '2',
            '--work-dir', work_dir, '--cfg-options'] + cli_options(det['options'])
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.Popen([sys.executable, TOOL] + argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    before = holder = second_error = None
    free_after_kill = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if holder is None:
                record = _read_json(lock_file)
                if record and record.get('pid') == proc.pid:  # the running sweep holds the work dir
                    holder = record
                    second_error = _sweep_attempt_without_evaluation(robustness_main, argv)
            data = _read_json(results_path)
            if data and data['cells'] and holder is not None:
                before = data
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the tool alone: its dataloader workers may outlive it a moment
            proc.wait()
            free_after_kill = _lock_is_free(results_path)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # then the rest of its session, if anything is left of it
            except ProcessLookupError:
                pass
        _, err = proc.communicate()
    assert before is not None, f'the sweep wrote no cell (exit {proc.returncode}): {err.decode()[-3000:]}'
    assert proc.returncode == -signal.SIGKILL, 'the sweep finished before it could be killed'
    killed_state = _read_json(results_path)  # what the file holds after the kill (a later cell may have landed)
    after = robustness_main(argv)
    return dict(before=before, killed=killed_state, after=after, results_path=results_path, argv=argv,
                holder=holder, second_error=second_error, free_after_kill=free_after_kill, work_dir=work_dir)


def test_killed_sweep_resumes_without_recomputing_finished_cells(det_killed_and_resumed):
    killed, after = det_killed_and_resumed['killed'], det_killed_and_resumed['after']
    planned = ['clean', 'motion_blur@1', 'motion_blur@2', 'mix_minor', 'mix_heavy']
    done_at_kill = list(killed['cells'])
    assert 1 <= len(done_at_kill) < len(planned)
    assert list(after['cells']) == done_at_kill + [k for k in planned if k not in done_at_kill]
    # finished cells are kept byte for byte: same timestamps and wall times, not re-evaluated
    for key in done_at_kill:
        assert after['cells'][key] == killed['cells'][key]
    resumed_run = after['runs'][-1]
    assert sorted(resumed_run['skipped']) == sorted(done_at_kill)
    assert resumed_run['evaluated'] == [k for k in planned if k not in done_at_kill]
    assert len(after['runs']) == 2 and after['runs'][0]['finished_at'] is None  # the killed run never finished
    on_disk = _read_json(det_killed_and_resumed['results_path'])
    assert on_disk['cells'] == after['cells'] and on_disk['summary'] == after['summary']


def test_second_sweep_on_a_running_sweeps_work_dir_fails_before_evaluating(det_killed_and_resumed):
    run = det_killed_and_resumed
    holder = run['holder']
    assert holder['results'] == run['results_path'] and 'tools/robustness.py' in holder['command']
    error = run['second_error']
    assert error.startswith(f'robustness.py: error: work dir {run["work_dir"]} is in use by another robustness '
                            f'sweep (pid {holder["pid"]} on host {holder["host"]}, started {holder["started_at"]}')
    assert 'wait for it to finish, or pass another --work-dir' in error
    # SIGKILL leaves no stale lock, and the resumed sweep (same work dir) could take it
    assert run['free_after_kill'] is True
    assert run['after']['runs'][-1]['finished_at'] is not None
    assert _read_json(osp.join(run['work_dir'], 'robustness.lock')) is None  # emptied on release


def test_detector_cells_hold_voc_metrics_and_wall_times(det_killed_and_resumed):
    after = det_killed_and_resumed['after']
    assert after['task'] == 'detection' and after['metric'] == 'pascal_voc/mAP'
    for key, cell in after['cells'].items():
        assert set(cell['metrics']) >= {'pascal_voc/mAP', 'pascal_voc/AP50'}
        assert 0.0 <= cell['metrics']['pascal_voc/mAP'] <= 1.0
        assert cell['wall_time_s'] > 0 and cell['num_images'] == 4
        assert rb.Cell(cell['distortion'], cell['level']).key == key
    assert after['summary']['per_distortion']['motion_blur']['levels'] == [1, 2]
    check_summary(after, 'pascal_voc/mAP')


def test_detector_table_has_table3_columns(det_killed_and_resumed):
    from featquant_mmdet.evaluation.robustness import report
    after = det_killed_and_resumed['after']
    columns, rows = report.comparison_table([after], ['ZF'])
    assert columns == ['Original', 'M.Blur', 'Mix.Minor', 'Mix.Heavy', 'mPC', 'rPC']
    cells = after['cells']
    expected = [cells['clean']['metrics']['pascal_voc/mAP'] * 100,
                (cells['motion_blur@1']['metrics']['pascal_voc/mAP'] +
                 cells['motion_blur@2']['metrics']['pascal_voc/mAP']) / 2 * 100,
                cells['mix_minor']['metrics']['pascal_voc/mAP'] * 100,
                cells['mix_heavy']['metrics']['pascal_voc/mAP'] * 100]
    assert rows[0][:4] == pytest.approx(expected)


def test_rerun_of_a_finished_sweep_evaluates_nothing(det_killed_and_resumed, monkeypatch, robustness_main):
    def no_evaluation(self, cell):
        raise AssertionError(f'cell {cell.key} was evaluated again')

    monkeypatch.setattr(rb.CellEvaluator, 'evaluate', no_evaluation)
    again = robustness_main(det_killed_and_resumed['argv'])
    assert again['runs'][-1]['evaluated'] == [] and len(again['runs'][-1]['skipped']) == 5
    assert again['cells'] == det_killed_and_resumed['after']['cells']


# ------------------------------------------------------------------------------------------------ classification


CLS_OPTIONS_BASE = {
    'model.head.num_classes': 6,
    'model.head.hidden_channels': 64,  # small fc6/fc7: a 17 MB checkpoint instead of 210 MB
    'test_dataloader.dataset.pipeline.1.scale': 64,
    'test_dataloader.dataset.pipeline.2.crop_size': 64,
    'test_dataloader.num_workers': 1,
}
NO_WORKERS = {'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False}


@pytest.fixture(scope='module')
def cls(tmp_path_factory):
    from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
    root = tmp_path_factory.mktemp('robustness_cls')
    data_root = str(root / 'imagenet')
    make_imagenet_dataset(data_root, num_train_per_class=1, num_val_per_class=2, image_size=64, seed=0)
    options = dict(CLS_OPTIONS_BASE, **{'test_dataloader.dataset.data_root': data_root + '/'})
    ckpt = save_initial_checkpoint(CLS_CONFIG, options, str(root / 'zf_cls.pth'), seed=1, init_weights=False)
    return dict(root=root, options=options, checkpoint=ckpt)


def load_cfg(config, options, work_dir):
    from featquant_mmdet.engine.cli import add_common_args, load_config
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_common_args(parser)
    return load_config(parser.parse_args([config, '--work-dir', str(work_dir), '--cfg-options'] +
                                         cli_options(options)))


@pytest.fixture(scope='module')
def cls_sweep(cls):
    work_dir = cls['root'] / 'sweep'
    cfg = load_cfg(CLS_CONFIG, cls['options'], work_dir)
    plan = rb.prepare_sweep(cfg, cls['checkpoint'], distortions=['motion_blur', 'jpeg', 'mix'], levels=[1, 3],
                            metric='accuracy/top5')
    assert plan.action == 'new'
    return dict(results=rb.run_sweep(plan), work_dir=work_dir, cfg=cfg)


def test_classifier_per_image_correctness_and_intervals_cover_the_values(cls_sweep):
    """Per-image top-1/top-5 correctness gives each cell's stored accuracies; every interval (cells, P, means,
    mPC, rPC) covers its value on all images (accuracy is a mean: the percentile interval is not biased)."""
    from featquant_mmdet.stats.voc_matches import load_per_image
    results = cls_sweep['results']
    for key, cell in results['cells'].items():
        correct = load_per_image(osp.join(cls_sweep['work_dir'], cell['per_image']['file']))
        assert correct.kind == 'classification' and correct.num_images == 12
        for metric in ('accuracy/top1', 'accuracy/top5'):
            # the Accuracy metric averages in float32
            assert correct.with_metric(metric).value() == pytest.approx(cell['metrics'][metric], abs=1e-5)
    intervals = results['summary']['intervals']
    assert intervals['resamples'] == 1000 and intervals['level'] == 0.95
    for name, entry in intervals['columns'].items():
        assert entry['low'] <= entry['value'] <= entry['high'], name
    assert intervals['columns']['P']['high'] > intervals['columns']['P']['low']


def test_classifier_sweep_summary_matches_hand_computation(cls_sweep):
    results = cls_sweep['results']
    assert results['task'] == 'classification'
    assert list(results['cells']) == ['clean', 'motion_blur@1', 'motion_blur@3', 'jpeg@1', 'jpeg@3', 'mix']
    for cell in results['cells'].values():
        assert set(cell['metrics']) == {'accuracy/top1', 'accuracy/top5'} and cell['num_images'] == 12
    check_summary(results, 'accuracy/top5')
    # the same stored cells summarised with another metric key
    again = rb.summarize(results, 'accuracy/top1')
    hand = hand_summary(results['cells'], 'accuracy/top1')
    assert again['mPC'] == pytest.approx(hand['mPC'])


def test_failed_interval_step_keeps_the_cells_and_a_rerun_computes_the_intervals_without_evaluating(
        cls, tmp_path, robustness_main, load_tool, capsys, monkeypatch):
    """The intervals step made to fail as an environment would (MemoryError from the bootstrap; the rest real): the
    evaluated cells stay in robustness.json with the values' summary, one line says so and how to recompute (exit
    1); compare_robustness.py on the file and a rerun of the same command compute the intervals from the per-image
    files, the rerun evaluating nothing (every cell's finished_at kept, no evaluation called)."""
    work_dir = tmp_path / 'sweep'
    argv = [CLS_CONFIG, cls['checkpoint'], '--distortions', 'jpeg', '--levels', '2', '--metric', 'accuracy/top5',
            '--bootstrap', '200', '--ci-method', 'percentile', '--work-dir', str(work_dir),
            '--cfg-options'] + cli_options(dict(cls['options'], **NO_WORKERS))

    def out_of_memory(*args, **kwargs):
        raise MemoryError('Unable to allocate 27.0 GiB for an array')

    with monkeypatch.context() as patch:
        patch.setattr(rb_sweep, 'bootstrap_results', out_of_memory)
        with pytest.raises(SystemExit) as exit_info:
            robustness_main(argv)
    results_path = str(work_dir / 'robustness.json')
    message = str(exit_info.value)
    assert message.count('\n') == 0 and message.startswith('robustness.py: error: the intervals step failed '
                                                           '(MemoryError: Unable to allocate 27.0 GiB')
    assert (f'the 2 evaluated cells are kept in {results_path}: rerun the same command (it evaluates nothing '
            f'again) or run tools/compare_robustness.py {results_path}') in message
    capsys.readouterr()
    failed = _read_json(results_path)
    assert set(failed['cells']) == {'clean', 'jpeg@2'} and failed['runs'][-1]['evaluated'] == ['clean', 'jpeg@2']
    assert failed['summary']['intervals'] is None and failed['summary']['intervals_failed'] is True
    check_summary(failed, 'accuracy/top5')  # the values' summary is there

    # the comparison tool computes the intervals from the per-image files alone
    paths = load_tool('compare_robustness').main([results_path, '--labels', 'A', '--out-dir', str(tmp_path / 'cmp'),
                                                  '--bootstrap', '200'])
    assert 'bootstrap intervals over the 12 test images (200 resamples' in open(
        paths['robustness_table.md']).read()
    capsys.readouterr()

    def no_evaluation(self, cell, *args, **kwargs):
        raise AssertionError(f'cell {cell.key} was evaluated again')

    monkeypatch.setattr(rb.CellEvaluator, 'evaluate', no_evaluation)
    monkeypatch.setattr(rb_sweep, 'build_sweep_runner', lambda *a, **k: pytest.fail('a Runner was built'))
    again = robustness_main(argv)
    assert again['runs'][-1]['evaluated'] == [] and again['runs'][-1]['skipped'] == ['clean', 'jpeg@2']
    assert {k: c['finished_at'] for k, c in again['cells'].items()} == {
        k: c['finished_at'] for k, c in failed['cells'].items()}
    stored = _read_json(results_path)['summary']
    assert 'intervals_failed' not in stored and 'intervals_note' not in stored
    assert stored['intervals']['resamples'] == 200 and set(stored['intervals']['columns']) >= {'P', 'mPC', 'rPC'}
    assert stored['intervals']['ci_method'] == 'percentile'  # --ci-method reaches the stored intervals


def test_changed_checkpoint_invalidates_the_results(cls, cls_sweep, tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(cls_sweep['work_dir'], work_dir)
    old = _read_json(work_dir / 'robustness.json')
    state = torch.load(cls['checkpoint'], weights_only=False)
    name = next(k for k, v in state['state_dict'].items() if v.is_floating_point())
    state['state_dict'][name].add_(1.0)  # "re-trained": one tensor changed
    new_ckpt = str(tmp_path / 'retrained.pth')
    torch.save(state, new_ckpt)
    cfg = load_cfg(CLS_CONFIG, dict(cls['options'], **NO_WORKERS), work_dir)
    plan = rb.prepare_sweep(cfg, new_ckpt, distortions=['jpeg'], levels=[1], metric='accuracy/top5')
    assert plan.action == 'invalidate' and plan.changes == ['checkpoint_sha256']
    results = rb.run_sweep(plan)
    assert list(results['cells']) == ['clean', 'jpeg@1']  # nothing of the old checkpoint was kept
    assert results['identity']['checkpoint_sha256'] == rb.file_sha256(new_ckpt)
    stale = [p for p in os.listdir(work_dir) if p.startswith('robustness.stale-')]
    assert len(stale) == 2  # the old results and their per-image folder were moved aside, not deleted
    stale_json = next(p for p in stale if p.endswith('.json'))
    assert _read_json(work_dir / stale_json)['cells'] == old['cells']
    assert sorted(os.listdir(work_dir / stale_json.replace('.json', '.cells'))) == sorted(
        f'{k}.npz' for k in old['cells'])
    assert sorted(os.listdir(work_dir / 'robustness.cells')) == ['clean.npz', 'jpeg@1.npz']


def test_changed_config_or_seed_invalidates_runtime_settings_do_not(cls, cls_sweep):
    work_dir = cls_sweep['work_dir']
    kwargs = dict(distortions=['motion_blur'], levels=[1], metric='accuracy/top5')
    changed_cfg = load_cfg(CLS_CONFIG, dict(cls['options'], **{'model.head.dropout': 0.3}), work_dir)
    assert rb.prepare_sweep(changed_cfg, cls['checkpoint'], **kwargs).changes == ['config_sha256']
    same_cfg = load_cfg(CLS_CONFIG, dict(cls['options'], **NO_WORKERS,
                                                            **{'default_hooks.logger.interval': 7}), work_dir)
    assert rb.prepare_sweep(same_cfg, cls['checkpoint'], **kwargs).action == 'resume'
    assert rb.prepare_sweep(same_cfg, cls['checkpoint'], seed=3, **kwargs).changes == ['distortion_seed']


def test_results_of_another_model_are_an_error(cls, cls_sweep):
    other = load_cfg(osp.join(REPO, 'configs', 'pretrain', 'zf_pow1_imagenet.py'), cls['options'],
                     cls_sweep['work_dir'])
    with pytest.raises(rb.RobustnessError, match='another model.*zf_imagenet'):
        rb.prepare_sweep(other, cls['checkpoint'], distortions=['jpeg'], levels=[1])


def test_results_file_in_the_layout_written_before_the_package_split_resumes(cls, tmp_path):
    """A results file as the single-module sweep (featquant_mmdet/evaluation/robustness.py, before it became a
    package) wrote it, built here field by field with that code's identity rules: the sweep resumes from it."""
    import hashlib
    work_dir = tmp_path / 'work'
    cfg = load_cfg(CLS_CONFIG, dict(cls['options'], **NO_WORKERS), work_dir)
    data = cfg.to_dict()
    for key in ('work_dir', 'load_from', 'resume', 'launcher', 'env_cfg', 'log_level', 'log_processor',
                'default_hooks', 'visualizer', 'vis_backends'):
        data.pop(key, None)
    for key in ('num_workers', 'persistent_workers', 'pin_memory', 'prefetch_factor'):
        data['test_dataloader'].pop(key, None)
    dataset = cfg.test_dataloader.dataset
    with open(cls['checkpoint'], 'rb') as f:
        checkpoint_sha256 = hashlib.sha256(f.read()).hexdigest()
    clean = {'distortion': None, 'level': None, 'metrics': {'accuracy/top1': 12.5, 'accuracy/top5': 50.0},
             'wall_time_s': 1.5, 'num_images': 12, 'finished_at': '2026-11-29T10:00:00.000000+00:00', 'inputs': {}}
    old = {
        'format': 'featquant-robustness/1',
        'identity': {
            'config_name': 'zf_imagenet',
            'config_sha256': hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest(),
            'checkpoint': osp.abspath(cls['checkpoint']), 'checkpoint_sha256': checkpoint_sha256,
            'distortion_seed': 0,
            'test_data': {'type': dataset.type, 'data_root': osp.abspath(dataset.data_root),
                          'ann_file': dataset.get('ann_file'), 'data_prefix': dataset.get('data_prefix')}},
        'task': 'classification', 'metric': 'accuracy/top5', 'cells': {'clean': clean},
        'runs': [{'started_at': '2026-11-29T10:00:00.000000+00:00', 'evaluated': ['clean'], 'skipped': [],
                  'finished_at': None}],
        'summary': None}
    work_dir.mkdir()
    (work_dir / 'robustness.json').write_text(json.dumps(old, indent=1))
    plan = rb.prepare_sweep(cfg, cls['checkpoint'], distortions=['jpeg'], levels=[1], metric='accuracy/top5',
                            bootstrap=0)
    assert (plan.action, plan.changes) == ('resume', [])
    results = rb.run_sweep(plan)
    assert results['cells']['clean'] == clean  # kept as written, not evaluated again
    assert results['runs'][-1]['skipped'] == ['clean'] and results['runs'][-1]['evaluated'] == ['jpeg@1']
    assert results['summary']['P'] == 50.0
    assert results['summary']['intervals'] is None and 'bootstrap 0' in results['summary']['intervals_note']
    # asked for intervals (the default), the sweep evaluates again the one cell without per-image data
    plan = rb.prepare_sweep(cfg, cls['checkpoint'], distortions=['jpeg'], levels=[1], metric='accuracy/top5')
    results = rb.run_sweep(plan)
    assert results['runs'][-1]['evaluated'] == ['clean'] and results['runs'][-1]['skipped'] == ['jpeg@1']
    assert results['cells']['clean']['per_image']['file'] == 'robustness.cells/clean.npz'
    assert set(results['summary']['intervals']['columns']) >= {'P', 'mPC', 'rPC', 'mean/jpeg'}


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture
def tool_without_evaluation(monkeypatch, robustness_main):
    """tools/robustness.py's main, with the Runner and the evaluation replaced by failures."""
    def fail(*args, **kwargs):
        raise AssertionError('evaluation started despite bad input')

    monkeypatch.setattr(rb_sweep, 'build_sweep_runner', fail)  # the first thing the sweep does with cells to do
    return robustness_main


@pytest.mark.parametrize('extra, options, message', [
    (['--distortions', 'smoke'], {}, "unknown distortion 'smoke'; accepted: presets all, mix, corruptions or names "
                                     "motion_blur"),
    (['--distortions', 'fog'], {}, "unknown distortion 'fog' .did you mean ic:fog"),
    (['--levels', '5'], {}, r'unknown distortion level\(s\) \[5\]; accepted levels of jpeg: \[1, 2, 3, 4\]'),
    (['--levels', '0'], {}, r'level\(s\) \[0\].*clean cell, level 0, is always evaluated'),
    (['--distortions', 'targeted_occlusion'], {}, 'targeted_occlusion.*--saliency-classifier'),
    (['--metric', 'top5'], {}, 'metric key .top5. must be "<prefix>/<name>"'),
    (['--metric', 'pascal_voc/mAP'], {}, r"metric 'pascal_voc/mAP' is not reported by the test evaluator "
                                         r"\['Accuracy'\]: its keys start with accuracy/"),
    ([], {'test_dataloader': None}, 'has no test_dataloader'),
    ([], {'test_evaluator': None}, 'has no test_evaluator'),
    (['--reference', '/nonexistent/robustness.json'], {}, 'results file not found'),
])
def test_bad_input_is_an_error_before_any_evaluation(cls, tmp_path, tool_without_evaluation, extra, options,
                                                     message):
    argv = [CLS_CONFIG, cls['checkpoint'], '--distortions', 'jpeg', '--levels', '1', '--work-dir', str(tmp_path),
            '--cfg-options'] + cli_options(dict(cls['options'], **options)) + extra
    with pytest.raises(SystemExit, match=message):
        tool_without_evaluation(argv)
    assert not osp.exists(tmp_path / 'robustness.json')


def test_a_checkpoint_of_another_model_is_refused_not_loaded_in_part(cls, tmp_path, robustness_main):
    """mmengine's loading (strict=False) only logs missing and unexpected keys: an HPOW checkpoint swept with the POW
    config ran as POW with alpha at its initial value. A sweep loads strictly: a plain ZF checkpoint and the
    ZF-POW-1 config (alpha in conv3-5) stop it before any cell."""
    argv = [osp.join(REPO, 'configs', 'pretrain', 'zf_pow1_imagenet.py'), cls['checkpoint'], '--distortions', 'jpeg',
            '--levels', '1', '--work-dir', str(tmp_path), '--cfg-options'] + cli_options(cls['options'])
    with pytest.raises(SystemExit, match=r"does not match the model of config 'zf_pow1_imagenet' .*missing keys in "
                                         r"source state_dict: backbone\.conv3\.alpha"):
        robustness_main(argv)
    results = tmp_path / 'robustness.json'
    assert not results.exists() or not json.loads(results.read_text()).get('cells')


def test_missing_checkpoint_and_corrupt_results_file_are_errors(cls, tmp_path, tool_without_evaluation):
    base = ['--work-dir', str(tmp_path), '--cfg-options'] + cli_options(cls['options'])
    with pytest.raises(SystemExit, match='checkpoint file not found: .*missing.pth'):
        tool_without_evaluation([CLS_CONFIG, str(tmp_path / 'missing.pth')] + base)
    (tmp_path / 'robustness.json').write_text('{"cells": ')
    with pytest.raises(SystemExit, match='is not a robustness results file .invalid JSON'):
        tool_without_evaluation([CLS_CONFIG, cls['checkpoint']] + base)
    (tmp_path / 'robustness.json').write_text('{"format": "something-else"}')
    with pytest.raises(SystemExit, match="format 'something-else', expected 'featquant-robustness/1'"):
        tool_without_evaluation([CLS_CONFIG, cls['checkpoint']] + base)


def test_saliency_classifier_that_does_not_load_is_an_error_before_any_evaluation(cls, tmp_path,
                                                                                  tool_without_evaluation):
    """The saliency classifier is built up front: a checkpoint of another class count stops the sweep before its
    first cell (not at the occlusion cells after all the others), and the message says how to fix the config."""
    argv = [CLS_CONFIG, cls['checkpoint'], '--distortions', 'jpeg', 'targeted_occlusion', '--levels', '1',
            '--saliency-classifier', CLS_CONFIG, '--saliency-checkpoint', cls['checkpoint'], '--work-dir',
            str(tmp_path), '--cfg-options'] + cli_options(cls['options'])
    with pytest.raises(SystemExit, match=r'(?s)the saliency classifier cannot be built from --saliency-classifier .*'
                                         r"shape mismatches \(6\): \['head\.shared_fcs\.0\.weight: checkpoint \(64, 9216\) vs "
                                         r"model \(4096, 9216\)'.*head\.num_classes"):
        tool_without_evaluation(argv)
    assert not osp.exists(tmp_path / 'robustness.json')


def test_reference_must_cover_the_cells_and_share_the_test_data(cls, cls_sweep, tmp_path, tool_without_evaluation):
    reference = str(cls_sweep['work_dir'] / 'robustness.json')

    def argv(distortions, seed=0, **options):
        return [CLS_CONFIG, cls['checkpoint'], '--work-dir', str(tmp_path), '--reference', reference, '--levels',
                '1', '--seed', str(seed), '--distortions'] + distortions + [
                    '--cfg-options'] + cli_options(dict(cls['options'], **options))

    with pytest.raises(SystemExit, match=r"lacks cells \['defocus_blur@1'\]"):
        tool_without_evaluation(argv(['jpeg', 'defocus_blur']))
    with pytest.raises(SystemExit, match='test_data .* differs'):
        tool_without_evaluation(argv(['jpeg'], **{'test_dataloader.dataset.data_root': '/elsewhere/'}))
    with pytest.raises(SystemExit, match='distortion_seed 0 differs from .* 1'):
        tool_without_evaluation(argv(['jpeg'], seed=1))


HOLD_LOCK_WITH_A_WORKER = """
import importlib, os, sys, time, types
package = types.ModuleType('robustness_alone')  # the lock is standard library only: its folder as a bare package
package.__path__ = [sys.argv[1]]
sys.modules['robustness_alone'] = package
module = importlib.import_module('robustness_alone.lock')
assert 'torch' not in sys.modules and 'mmdet' not in sys.modules
module.SweepLock(sys.argv[2]).acquire()
worker = os.fork()  # like a dataloader worker: inherits the lock file's descriptor
if worker == 0:
    time.sleep(120)
    os._exit(0)
print(worker, flush=True)
time.sleep(120)
"""


def test_lock_holder_is_named_and_sigkill_frees_the_lock_despite_forked_workers(cls, tmp_path, robustness_main):
    results_path = str(tmp_path / 'robustness.json')
    proc = subprocess.Popen([sys.executable, '-c', HOLD_LOCK_WITH_A_WORKER, osp.dirname(rb.__file__), results_path],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        worker = int(proc.stdout.readline())
        with pytest.raises(rb.SweepLockedError, match=rf'work dir {re.escape(str(tmp_path))} is in use by another '
                                                       rf'robustness sweep \(pid {proc.pid} on host .*, started .*, '
                                                       'command: '):
            rb.SweepLock(results_path).acquire()
        # the tool: the error comes before the config's checkpoint is even looked at
        argv = [CLS_CONFIG, str(tmp_path / 'no_such.pth'), '--work-dir', str(tmp_path), '--cfg-options'] + \
            cli_options(cls['options'])
        assert f'(pid {proc.pid} on host' in _sweep_attempt_without_evaluation(robustness_main, argv)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        os.kill(worker, 0)  # the forked worker still runs, holding the inherited descriptor ...
        assert _lock_is_free(results_path)  # ... yet the lock went with its holder
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()


def test_lock_is_not_reentrant_and_a_refused_second_acquisition_keeps_the_first(tmp_path):
    """Record locks belong to the process: a second lockf from it would succeed and closing it would drop the first
    one, so a second acquisition in the holding process is refused, and the first lock stays."""
    results_path = str(tmp_path / 'robustness.json')
    outer = rb.SweepLock(results_path).acquire()
    with pytest.raises(rb.SweepLockedError, match='already held by this process'):
        rb.SweepLock(results_path).acquire()
    with pytest.raises(rb.SweepLockedError, match='already held by this process'):
        outer.acquire()
    assert rb.SweepLock.is_held(results_path)
    probe = subprocess.run([sys.executable, '-c', HOLD_LOCK_WITH_A_WORKER.split('worker = ')[0],
                            osp.dirname(rb.__file__), results_path], capture_output=True, text=True)
    assert probe.returncode != 0 and 'SweepLockedError' in probe.stderr  # another process still finds it locked
    outer.release()
    assert not rb.SweepLock.is_held(results_path) and _lock_is_free(results_path)


def test_detector_metric_prefix_is_checked_before_any_evaluation(det, tmp_path, tool_without_evaluation):
    argv = [DET_CONFIG, det['checkpoint'], '--work-dir', str(tmp_path), '--distortions', 'mix', '--cfg-options'] + \
        cli_options(det['options'])
    with pytest.raises(SystemExit, match=r"metric 'coco/bbox_mAP' is not reported by the test evaluator "
                                         r"\['VOCMetric'\]: its keys start with pascal_voc/"):
        tool_without_evaluation(argv + ['--metric', 'coco/bbox_mAP'])
    # a key with the evaluator's prefix: which names it reports, the clean cell tells (the sweep starts)
    with pytest.raises(AssertionError, match='evaluation started'):
        tool_without_evaluation(argv + ['--metric', 'pascal_voc/AP75'])
    assert not osp.exists(tmp_path / 'robustness.json')


def test_metric_key_is_checked_after_the_clean_cell_and_a_rerun_resumes_from_it(cls, cls_sweep, tmp_path):
    """Which keys an evaluator reports, its clean cell tells (here with mmengine's DumpResults beside Accuracy);
    a rerun with a reported key resumes from that cell. The fresh sweep reproduces every number of the module's
    sweep (the distortion's draws depend on seed, image, distortion, level; not on the run)."""
    work_dir = tmp_path / 'work'
    cfg = load_cfg(CLS_CONFIG, dict(cls['options'], **NO_WORKERS), work_dir)
    dump = str(tmp_path / 'predictions.pkl')
    cfg.test_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='DumpResults', out_file_path=dump)]
    kwargs = dict(distortions=['motion_blur'], levels=[3])  # random draws (kernel direction)
    later = rb.prepare_sweep(cfg, cls['checkpoint'], metric='accuracy/top5', **kwargs)  # before any results file
    plan = rb.prepare_sweep(cfg, cls['checkpoint'], metric='accuracy/top3', **kwargs)
    with pytest.raises(rb.RobustnessError, match=r"metric 'accuracy/top3' is not reported by the test evaluator; "
                                                 r"it reports \['accuracy/top1', 'accuracy/top5'\]"):
        rb.run_sweep(plan)
    saved = _read_json(work_dir / 'robustness.json')
    assert list(saved['cells']) == ['clean'] and saved['runs'][-1]['evaluated'] == ['clean']
    assert osp.isfile(dump) and not rb.SweepLock.is_held(str(work_dir / 'robustness.json'))
    # ``later`` was planned as a new sweep; run_sweep decides again under the lock, and resumes
    assert later.action == 'new'
    results = rb.run_sweep(later)
    assert later.action == 'resume'
    assert results['runs'][-1]['skipped'] == ['clean'] and results['runs'][-1]['evaluated'] == ['motion_blur@3']
    assert results['cells']['clean'] == saved['cells']['clean']
    for key in ('clean', 'motion_blur@3'):  # deterministic in the distortion seed
        assert results['cells'][key]['metrics'] == cls_sweep['results']['cells'][key]['metrics'], key


def test_metric_key_prefix_check():
    coco = dict(type='CocoMetric', metric=['bbox'], prefix='c')
    assert rb.metric_prefixes(dict(type='Evaluator', metrics=[coco, dict(type='VOCMetric')])) == {
        'CocoMetric': 'c', 'VOCMetric': 'pascal_voc'}
    rb.check_metric_key('c/person_precision', coco)  # the name waits for the clean cell
    with pytest.raises(rb.RobustnessError, match=r"metric 'coco/bbox_mAP' is not reported .*\['CocoMetric'\]: "
                                                 'its keys start with c/'):
        rb.check_metric_key('coco/bbox_mAP', coco)
    rb.check_metric_key('any/key', [coco, dict(type='DumpResults', out_file_path='x.pkl')])  # DumpResults: no prefix
    with pytest.raises(rb.RobustnessError, match='must be "<prefix>/<name>"'):
        rb.check_metric_key('mAP', coco)


def test_detector_rejects_targeted_occlusion_and_preset_all_leaves_it_out(det, tmp_path, tool_without_evaluation):
    argv = [DET_CONFIG, det['checkpoint'], '--work-dir', str(tmp_path), '--cfg-options'] + cli_options(det['options'])
    with pytest.raises(SystemExit, match='targeted_occlusion.*ground-truth class'):
        tool_without_evaluation(argv + ['--distortions', 'targeted_occlusion'])
    assert rb.resolve_distortions(['all'], 'detection') == [
        n for n in distortion_levels.DISTORTION_NAMES if n != 'targeted_occlusion'] + ['mix_minor', 'mix_heavy']


# ------------------------------------------------------------------------------------------------ pure pieces


def test_presets_per_model_type():
    names = list(distortion_levels.DISTORTION_NAMES)
    notes = []
    assert rb.resolve_distortions(['all'], 'classification', has_saliency=True) == names + ['mix']
    assert rb.resolve_distortions(['all'], 'classification', notes=notes) == [
        n for n in names if n != 'targeted_occlusion'] + ['mix']
    assert notes and 'targeted_occlusion left out' in notes[0]
    assert rb.resolve_distortions(['mix'], 'classification') == ['mix']
    assert rb.resolve_distortions(['mix'], 'detection') == ['mix_minor', 'mix_heavy']
    assert rb.resolve_distortions(['jpeg', 'mix', 'jpeg', 'mix_heavy'], 'detection') == [
        'jpeg', 'mix_minor', 'mix_heavy']
    assert [c.key for c in rb.plan_cells(['jpeg', 'mix_minor'], [1, 3])] == ['clean', 'jpeg@1', 'jpeg@3',
                                                                             'mix_minor']
    for key in ('clean', 'jpeg@3', 'mix_heavy'):
        assert rb.Cell.from_key(key).key == key


def _cells(values: dict) -> dict:
    cells = {}
    for key, value in values.items():
        cell = rb.Cell.from_key(key)
        cells[key] = {'distortion': cell.distortion, 'level': cell.level, 'metrics': {'accuracy/top1': value}}
    return {'metric': 'accuracy/top1', 'cells': cells, 'identity': {'config_name': 'ref'}}


def test_summary_and_corruption_errors_by_hand():
    model = _cells({'clean': 90.0, 'jpeg@1': 80.0, 'jpeg@2': 60.0, 'jpeg@4': 40.0, 'motion_blur@1': 70.0,
                    'mix': 50.0})
    reference = _cells({'clean': 88.0, 'jpeg@1': 70.0, 'jpeg@2': 50.0, 'jpeg@4': 30.0, 'motion_blur@1': 80.0,
                        'mix': 40.0})
    summary = rb.summarize(model, reference=reference)
    assert summary['P'] == 90.0
    assert summary['per_distortion']['jpeg'] == {'mean': 60.0, 'levels': [1, 2, 4]}
    # every distortion counts once: (60 + 70 + 50) / 3, not the mean over the 5 cells
    assert summary['mPC'] == pytest.approx(60.0)
    assert summary['rPC'] == pytest.approx(60.0 / 90.0)
    # CE_jpeg = (20 + 40 + 60) / (30 + 50 + 70); CE_mb = 30 / 20; CE_mix = 50 / 60
    assert summary['CE'] == pytest.approx({'jpeg': 120 / 150, 'motion_blur': 30 / 20, 'mix': 50 / 60})
    assert summary['mCE'] == pytest.approx((120 / 150 + 30 / 20 + 50 / 60) / 3)
    del reference['cells']['jpeg@4']
    with pytest.raises(rb.RobustnessError, match=r"reference results lack cells \['jpeg@4'\]"):
        rb.summarize(model, reference=reference)
    with pytest.raises(rb.RobustnessError, match="metric 'accuracy/top5' not in the stored metrics"):
        rb.summarize(model, 'accuracy/top5')


def test_default_metric_keys():
    assert rb.default_metric_key(dict(type='VOCMetric', metric='mAP')) == 'pascal_voc/mAP'
    assert rb.default_metric_key([dict(type='CocoMetric', metric='bbox')]) == 'coco/bbox_mAP'
    assert rb.default_metric_key(dict(type='Accuracy', topk=(1, 5))) == 'accuracy/top1'
    with pytest.raises(rb.RobustnessError, match="no default summary metric .*'MyMetric'.*--metric"):
        rb.default_metric_key(dict(type='MyMetric'))


def test_results_file_is_replaced_atomically(tmp_path):
    path = str(tmp_path / 'robustness.json')
    write_json_atomic(path, {'a': 1})
    write_json_atomic(path, {'a': 2})
    assert _read_json(path) == {'a': 2}
    assert os.listdir(tmp_path) == ['robustness.json']  # no temporary file left behind
    data = copy.deepcopy(rb.new_results({'config_name': 'x'}, 'classification', 'accuracy/top1'))
    write_json_atomic(path, data)
    assert rb.load_results(path)['task'] == 'classification'


# ------------------------------------------------------------------------------- optional corruption family


def _imagecorruptions_importable() -> bool:
    try:
        import imagecorruptions  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_imagecorruptions_importable(), reason='imagecorruptions-imaug is installed')
def test_corruption_family_without_the_package_is_a_clear_error(cls, tmp_path, tool_without_evaluation):
    argv = [CLS_CONFIG, cls['checkpoint'], '--work-dir', str(tmp_path), '--distortions', 'ic:fog', '--levels', '5',
            '--cfg-options'] + cli_options(cls['options'])
    with pytest.raises(SystemExit, match='needs the optional package imagecorruptions-imaug: pip install -r '
                                         'requirements/optional.txt'):
        tool_without_evaluation(argv)
    with pytest.raises(ImportError, match='imagecorruptions-imaug'):
        from featquant_mmdet.evaluation.corruptions import ImageCorruption
        ImageCorruption('fog', 3)


def test_corruption_presets_and_severities():
    from featquant_mmdet.evaluation.corruptions import COMMON_CORRUPTIONS
    names = rb.resolve_distortions(['corruptions'], 'detection')
    assert names == ['ic:' + n for n in COMMON_CORRUPTIONS] and len(names) == 15
    assert rb.resolve_levels([1, 2, 3, 4, 5], names) == [1, 2, 3, 4, 5]
    with pytest.raises(rb.RobustnessError, match=r'level\(s\) \[5\]; accepted levels of jpeg.*severities 1-5'):
        rb.resolve_levels([4, 5], ['jpeg', 'ic:fog'])


@pytest.mark.skipif(not _imagecorruptions_importable(), reason='needs the optional imagecorruptions-imaug')
def test_corruption_transform_is_deterministic_per_image_and_leaves_numpy_alone():
    import numpy as np

    from featquant_mmdet.evaluation.corruptions import ImageCorruption, inject_corruption
    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    transform = ImageCorruption('gaussian_noise', 3, seed=0)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = transform(dict(img=img.copy(), img_path='/data/a/1.jpg'))['img']
    b = transform(dict(img=img.copy(), img_path='/elsewhere/a/1.jpg'))['img']  # same last two path components
    c = transform(dict(img=img.copy(), img_path='/data/a/2.jpg'))['img']
    assert (np.random.get_state()[1] == state).all()  # the global generator is put back
    assert a.shape == img.shape and a.dtype == np.uint8
    assert (a == b).all() and not (a == c).all() and not (a == img).all()
    loader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), dict(type='PackDetInputs')]))
    inject_corruption(loader, 'ic:fog', 2, seed=4)
    assert loader['dataset']['pipeline'][1] == dict(type='ImageCorruption', name='fog', severity=2, seed=4,
                                                    channel_order='bgr')


# ------------------------------------------------------------------------------------ per-image data and intervals


@pytest.fixture(scope='module')
def det_detects(tmp_path_factory, robustness_main):
    """A sweep (clean, Mix.Heavy) of a randomly initialised ZF detector that detects: one class of objects and no
    score threshold, so its VOC mAP is small but not 0 (thousands of ranked detections, a few true, score ties)."""
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    root = tmp_path_factory.mktemp('robustness_det_detects')
    data_root = make_voc_dataset(str(root / 'data'), num_train=1, num_test=6, image_size=(128, 96), classes=('car', ),
                                 seed=1)
    options = {
        'test_dataloader.dataset.data_root': data_root + '/',
        'test_dataloader.dataset.pipeline.1.scale': '(128,96)',
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'model.roi_head.bbox_head.fc_out_channels': 64,
        'model.test_cfg.rcnn.score_thr': 0.0,  # keep every class's boxes (scores ~1/21 at random init) ...
        'model.test_cfg.rcnn.max_per_img': 3000,  # ... all of them: a few overlap the objects (measured mAP ~0.01)
        'model.test_cfg.rcnn.nms.iou_threshold': 0.95,
    }
    ckpt = save_initial_checkpoint(DET_CONFIG, options, str(root / 'zf_init.pth'), seed=0)
    work_dir = root / 'sweep'
    argv = [DET_CONFIG, ckpt, '--distortions', 'mix_heavy', '--work-dir', str(work_dir), '--bootstrap', '200',
            '--export-mmdet', str(root / 'mmdet_layout.pkl'), '--cfg-options'] + cli_options(options)
    results = robustness_main(argv)
    return dict(root=root, work_dir=work_dir, argv=argv, results=results, options=options, checkpoint=ckpt)


def test_per_image_files_recompute_the_metric_of_every_cell(det_detects):
    """The per-image VOC match records of each cell, recomputed on all images, give VOCMetric's mAP exactly (the
    real Runner and the real VOCMetric of the config)."""
    from featquant_mmdet.stats.voc_matches import load_per_image
    results, work_dir = det_detects['results'], det_detects['work_dir']
    assert results['cells']['clean']['metrics']['pascal_voc/mAP'] > 0  # the detector detects
    for key, cell in results['cells'].items():
        entry = cell['per_image']
        path = work_dir / entry['file']
        assert entry['file'] == f'robustness.cells/{key}.npz'
        assert entry['sha256'] == rb.file_sha256(str(path)) and entry['bytes'] == path.stat().st_size
        matches = load_per_image(str(path))
        assert matches.kind == 'voc' and matches.num_images == entry['num_images'] == 6
        assert matches.image_ids == sorted(matches.image_ids)  # dataset order
        assert matches.scores.size > 1000 and matches.tp.sum() > 0  # many ranked detections, not a trivial curve
        assert matches.map() == cell['metrics']['pascal_voc/mAP'] == entry['value']


def test_summary_stores_intervals_of_every_cell_and_summary(det_detects):
    summary = det_detects['results']['summary']
    intervals = summary['intervals']
    assert (intervals['level'], intervals['resamples'], intervals['seed'], intervals['num_images']) == (0.95, 200, 0,
                                                                                                       6)
    cols = intervals['columns']
    assert set(cols) == {'cell/clean', 'cell/mix_heavy', 'P', 'mean/mix_heavy', 'mPC', 'rPC'}
    assert cols['P']['value'] == summary['P'] and cols['mPC']['value'] == pytest.approx(summary['mPC'])
    for name, entry in cols.items():
        assert entry['low'] <= entry['high'], name
        assert entry['high'] > entry['low'] or name == 'rPC', name  # resampling 6 images moves the mAP


def test_deleted_per_image_file_is_evaluated_again_on_resume(det_detects, robustness_main):
    work_dir = det_detects['work_dir']
    before = _read_json(work_dir / 'robustness.json')
    (work_dir / 'robustness.cells' / 'mix_heavy.npz').unlink()
    after = robustness_main(det_detects['argv'])
    assert after['runs'][-1]['evaluated'] == ['mix_heavy'] and after['runs'][-1]['skipped'] == ['clean']
    assert after['cells']['clean'] == before['cells']['clean']
    assert after['cells']['mix_heavy']['metrics'] == before['cells']['mix_heavy']['metrics']
    assert (work_dir / 'robustness.cells' / 'mix_heavy.npz').is_file()


def test_export_in_mmdet_layout_matches_the_json(det_detects):
    import pickle
    results = det_detects['results']
    with open(det_detects['root'] / 'mmdet_layout.pkl', 'rb') as f:
        layout = pickle.load(f)
    clean, heavy = results['cells']['clean']['metrics'], results['cells']['mix_heavy']['metrics']
    assert layout == {'mix_heavy': {0: clean, 1: heavy}}
    from featquant_mmdet.evaluation.robustness.mmdet_export import mmdet_layout
    cls_like = {'cells': {'clean': {'metrics': {'a/top1': 1.0}}, 'jpeg@1': {'metrics': {'a/top1': 0.5}},
                          'jpeg@3': {'metrics': {'a/top1': 0.25}}}}
    assert mmdet_layout(cls_like) == {'jpeg': {0: {'a/top1': 1.0}, 1: {'a/top1': 0.5}, 3: {'a/top1': 0.25}}}


@pytest.mark.parametrize('extra, message', [
    (['--bootstrap', '-1'], '--bootstrap must be a non-negative integer, got -1'),
    (['--ci-level', '1.5'], '--ci-level: confidence level must be in (0, 1)'),
    (['--bootstrap-seed', '-2'], '--bootstrap-seed must be a non-negative integer'),
    (['--export-mmdet', 'out.txt'], "--export-mmdet out.txt: unknown extension '.txt'"),
    (['--ci-method', 'bca'], "argument --ci-method: invalid choice: 'bca' (choose from"),
])
def test_bad_interval_and_export_arguments_are_usage_errors(cls, tmp_path, robustness_main, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        robustness_main([CLS_CONFIG, cls['checkpoint'], '--work-dir', str(tmp_path)] + extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
    assert not (tmp_path / 'robustness.json').exists()


def test_bad_image_in_the_test_set_is_one_line_naming_the_file(det, tmp_path, robustness_main):
    """A zero-byte JPEG in the test set (strict VOC dataset, VOCDataError): one line naming it, no traceback."""
    data_root = tmp_path / 'voc'
    shutil.copytree(det['options']['test_dataloader.dataset.data_root'].rstrip('/'), data_root)
    test_ids = (data_root / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt').read_text().split()
    broken = data_root / 'VOC2007' / 'JPEGImages' / f'{test_ids[1]}.jpg'
    broken.write_bytes(b'')
    options = dict(det['options'], **{'test_dataloader.dataset.data_root': str(data_root) + '/'})
    with pytest.raises(SystemExit) as exit_info:
        robustness_main([DET_CONFIG, det['checkpoint'], '--distortions', 'mix_heavy', '--work-dir',
                         str(tmp_path / 'work'), '--cfg-options'] + cli_options(options))
    message = str(exit_info.value)
    assert message.startswith('robustness.py: error: ') and '\n' not in message
    assert str(broken) in message, message


def test_per_image_recorder_follows_the_configured_metric():
    from mmdet.evaluation.metrics import CocoMetric, VOCMetric

    from featquant_mmdet.evaluation import Accuracy
    from featquant_mmdet.evaluation.per_image import PerImageAccuracy, PerImageCOCO, PerImageVOC, per_image_recorder
    voc = VOCMetric(iou_thrs=[0.5, 0.75], eval_mode='area')
    recorder, why = per_image_recorder([voc], 'pascal_voc/mAP')
    assert isinstance(recorder, PerImageVOC) and why == ''
    assert (recorder.iou_thrs, recorder.eval_mode) == ([0.5, 0.75], 'area')
    assert per_image_recorder([voc], 'pascal_voc/AP50')[0] is None
    recorder, _ = per_image_recorder([Accuracy(topk=(1, 5))], 'accuracy/top5')
    assert isinstance(recorder, PerImageAccuracy) and recorder.metric == 'accuracy/top5'
    assert 'not \'accuracy/top3\'' in per_image_recorder([Accuracy(topk=(1, 5))], 'accuracy/top3')[1]
    recorder, why = per_image_recorder([CocoMetric(ann_file=None, proposal_nums=(10, 20, 30))], 'coco/bbox_mAP_s')
    assert isinstance(recorder, PerImageCOCO) and why == '' and recorder.metric_key == 'coco/bbox_mAP_s'
    assert recorder.proposal_nums == [10, 20, 30]  # tests/test_coco_records.py, test_coco_robustness.py: the rest
