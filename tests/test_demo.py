"""The demo (tools/demo.py) end to end at the tiny preset, its reruns, its bad-input messages, and the detection sheet.

One tiny run (module fixture) does the real flow: generated VOC + ImageNet sets, ZF / ZF-POW-1 pretraining,
Faster R-CNN training started from them (init_cfg hand-off), robustness sweeps, comparison, sheet and Table 3, every
tool in a subprocess (the steps of featquant_mmdet/engine/study.py for one training seed, plus the demo's own).
It is interrupted once after the first stage and continued, as a user would after Ctrl-C.
"""
import csv
import json
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'tools', 'demo.py')
LABELS = ('ZF', 'ZF+POW-1')
KEYS = ('ZF_s0', 'ZF+POW-1_s0')  # study step keys: variant _s training seed
CELLS = ('clean', 'mix_minor', 'mix_heavy')
HEAVY_STEPS = tuple(f'{stage}_{key}' for stage in ('pretrain', 'train', 'robustness') for key in KEYS) + ('sheet', )
NUM_STEPS = 2 + len(HEAVY_STEPS) + 2  # data x 2, heavy, compare, table


def demo_cmd(work, results, *extra):
    return [sys.executable, DEMO, '--preset', 'tiny', '--work-dir', str(work), '--results-dir', str(results), *extra]


def run_demo(work, results, *extra, timeout=900):
    return subprocess.run(demo_cmd(work, results, *extra), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def read_table(path):
    with open(path) as f:
        return {row['model']: [float(row[c]) for c in ('Original', 'Mix.Minor', 'Mix.Heavy')]
                for row in csv.DictReader(f)}


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """The tiny demo, interrupted (SIGINT) once the first step has finished, then rerun to the end."""
    base = tmp_path_factory.mktemp('demo')
    work, results = base / 'work', base / 'results'
    first_marker = work / 'stages' / 'data_voc.json'
    # The demo gets Ctrl-C's default handling as from a terminal, whatever this (xdist worker) process holds: a child
    # inherits an ignored SIGINT, and Python then never raises KeyboardInterrupt in it.
    inherited = signal.getsignal(signal.SIGINT)
    proc = subprocess.Popen(demo_cmd(work, results), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)
    start = time.monotonic()
    while not first_marker.exists() and proc.poll() is None and time.monotonic() < start + 300:
        time.sleep(0.2)
    # what the interruption met, for the failure message (a run that ended before it cannot return 130)
    when = (f'SIGINT sent {time.monotonic() - start:.1f} s after the start; marker seen: {first_marker.exists()}; '
            f'demo already ended: {proc.poll() is not None}; SIGINT handler of the test process: {inherited}')
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    interrupted = dict(returncode=proc.returncode, stdout=out, stderr=err, when=when)
    resumed = run_demo(work, results)
    return dict(work=work, results=results, interrupted=interrupted, resumed=resumed)


def test_interrupt_gives_a_clear_message_and_the_rerun_continues(tiny_run):
    interrupted, resumed = tiny_run['interrupted'], tiny_run['resumed']
    assert interrupted['returncode'] == 130, (interrupted['when'], interrupted['stdout'][-2000:],
                                              interrupted['stderr'][-3000:])
    assert 'interrupted' in interrupted['stderr'] and 'rerun the same command' in interrupted['stderr']
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # the step finished before the interruption is reused, the rest runs
    assert 'generate the VOC-format set -- skipped' in resumed.stdout
    for step in ('pretrain_ZF_s0', 'train_ZF+POW-1_s0', 'robustness_ZF_s0', 'sheet', 'table'):
        assert f'{step} done in' in resumed.stdout


def test_console_is_quiet_and_the_full_logs_are_in_the_work_dirs(tiny_run):
    """One line per step and a progress line on the console; mmengine's environment dump and logging in the logs."""
    resumed = tiny_run['resumed']
    assert 'System environment' not in resumed.stdout and 'pkg_resources is deprecated' not in resumed.stderr
    assert f'progress: {NUM_STEPS}/{NUM_STEPS} steps done' in resumed.stdout and ' left' in resumed.stdout
    step_lines = [line for line in resumed.stdout.splitlines() if line.startswith('[') and f'/{NUM_STEPS}] ' in line]
    assert len(step_lines) == NUM_STEPS  # every step once: done or skipped
    log = (tiny_run['work'] / 'detect' / 'ZF_s0' / 'train_ZF_s0.log').read_text()
    assert log.startswith('$ ') and 'tools/train.py' in log.splitlines()[0]
    assert 'System environment' in log and 'Saving checkpoint at 4 iterations' in log
    assert 'train_ZF_s0.log' in resumed.stdout  # the step line names its log
    # the detector started from the pretrained classifier through the config's init_cfg (no conversion step)
    pretrained = (tiny_run['work'] / 'pretrain' / 'ZF_s0' / 'last_checkpoint').read_text().strip()
    checkpoint = osp.join(tiny_run['work'], 'pretrain', 'ZF_s0', osp.basename(pretrained))
    assert f'model.backbone.init_cfg.checkpoint={checkpoint}' in log.splitlines()[0]


def test_table_is_the_evaluation_results(tiny_run):
    work, results = tiny_run['work'], tiny_run['results']
    table = read_table(results / 'table3.csv')
    assert list(table) == list(LABELS)
    for key, label in zip(KEYS, LABELS):
        with open(work / 'robustness' / key / 'robustness.json') as f:
            sweep = json.load(f)
        # the sweep evaluated the trained detector's checkpoint on the 4 generated test images, per cell
        with open(work / 'detect' / key / 'last_checkpoint') as f:
            assert sweep['identity']['checkpoint'] == osp.abspath(f.read().strip())
        assert all(sweep['cells'][c]['num_images'] == 4 for c in CELLS)
        expected = [100 * sweep['cells'][c]['metrics']['pascal_voc/mAP'] for c in CELLS]
        assert table[label] == pytest.approx(expected, abs=1e-4)
    markdown = (results / 'table3.md').read_text()
    assert '| Models | Original | Mix.Minor | Mix.Heavy |' in markdown
    record = json.loads((results / 'demo_run.json').read_text())
    assert record['preset'] == 'tiny' and set(record['table']) == set(LABELS)
    assert record['steps']['train_ZF_s0']['status'] == 'ran' and record['steps']['train_ZF_s0']['wall_s'] > 0
    assert record['threads'] == 1 and record['cpu_capability']  # what the numbers depend on (README)
    assert record['kernels']['torch_cpu_capability'] == record['cpu_capability']
    assert record['kernels']['pinned']['OMP_NUM_THREADS'] == '1'


def test_table_is_printed_with_the_comparisons_intervals(tiny_run):
    """compare_robustness.py's paired image bootstrap: the demo prints its table with intervals, one line per column
    saying whether the difference lies beyond test-image sampling (Holm, the family stated), and no verdict between
    the models (one training seed each)."""
    out = tiny_run['resumed'].stdout
    assert 'With intervals (test-image bootstrap, ' in out
    lines = [line for line in out.splitlines() if line.lstrip('- ').startswith('Mix.Heavy: ZF+POW-1 - ZF = ')]
    assert lines and all(re.search(r'\[[-+]\d+\.\d+, [-+]\d+\.\d+\]', v) for v in lines), lines
    assert all(re.search(r'Holm-adjusted p .*: (within|beyond) test-image sampling$', v) for v in lines), lines
    assert re.search(r'Holm over the [1-5] columns of this table, family-wise level 95 %', out)  # rPC: 0 / 0
    assert 'No verdict between the models' in out and not re.search(r'\b(better|worse)\b', out)


def test_sheet_has_the_expected_layout(tiny_run):
    import cv2
    from featquant_mmdet.analysis.detection_sheet import sheet_size
    sheet = cv2.imread(str(tiny_run['results'] / 'detection_sheet.png'))
    assert sheet is not None
    # tiny preset: 1 image x 2 models side by side, 3 rows (Original, Mix.Minor, Mix.Heavy), 160x120 tiles
    assert (sheet.shape[1], sheet.shape[0]) == sheet_size(3, 2, (160, 120))
    assert sheet.std() > 10  # images were drawn, not an empty canvas


def test_rerun_reuses_finished_stages_and_rebuilds_the_table_from_the_results(tiny_run):
    """Edit the sweep results, drop the comparison: the rerun skips every heavy stage and rebuilds the table."""
    work, results = tiny_run['work'], tiny_run['results']
    edited = {}
    for i, key in enumerate(KEYS):
        path = work / 'robustness' / key / 'robustness.json'
        sweep = json.loads(path.read_text())
        for j, cell in enumerate(CELLS):
            sweep['cells'][cell]['metrics']['pascal_voc/mAP'] = 0.1 * (i + 1) + 0.01 * j
        path.write_text(json.dumps(sweep))
        edited[LABELS[i]] = [100 * (0.1 * (i + 1) + 0.01 * j) for j in range(len(CELLS))]
    (results / 'robustness_table.csv').unlink()
    rerun = run_demo(work, results)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    for step in HEAVY_STEPS:
        assert f'{step} done in' not in rerun.stdout
    assert rerun.stdout.count('-- skipped, done on') == 2 + len(HEAVY_STEPS)  # + the two data steps
    assert 'compare done in' in rerun.stdout and 'table done in' in rerun.stdout
    table = read_table(results / 'table3.csv')
    for label in LABELS:
        assert table[label] == pytest.approx(edited[label], abs=1e-4)


@pytest.fixture(scope='module')
def demo_tool(load_tool):
    return load_tool('demo')


def test_train_seed_changes_the_training_commands_only(tmp_path, demo_tool, capsys):
    """--train-seed reaches pretraining and detector training; data and distortions keep seed 0, so two seeds
    train on the same images and are evaluated on the same distorted images."""
    from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
    make_imagenet_dataset(str(tmp_path / 'w' / 'data' / 'imagenet'), num_train_per_class=1, num_val_per_class=1,
                          image_size=64)  # the pretraining command names the class count

    def commands(*extra):
        demo = demo_tool.Demo(demo_tool.parse_args(['--preset', 'tiny', '--work-dir', str(tmp_path / 'w'),
                                                    '--results-dir', str(tmp_path / 'r'), *extra]))
        seed = demo.seeds[0]
        return {name: plan.command for name, plan in (
            ('data_voc', demo.study.plan_data_voc()), ('pretrain', demo.study.plan_pretrain('ZF', seed, 'c.py')))}

    default, seeded = commands(), commands('--train-seed', '3')
    assert 'randomness.seed=0' in default['pretrain'] and 'randomness.seed=3' in seeded['pretrain']
    assert seeded['data_voc'] == default['data_voc'] and '--seed' in seeded['data_voc']
    with pytest.raises(SystemExit):
        demo_tool.parse_args(['--train-seed', '-1'])
    assert '--train-seed must be >= 0, got -1' in capsys.readouterr().err


def test_style_reaches_both_generators_and_photo_is_the_default(tmp_path, demo_tool):
    def commands(*extra):
        demo = demo_tool.Demo(demo_tool.parse_args(['--preset', 'tiny', '--work-dir', str(tmp_path / 'w'),
                                                    '--results-dir', str(tmp_path / 'r'), *extra]))
        return [plan.command for plan in (demo.study.plan_data_voc(), demo.study.plan_data_imagenet())]

    for command in commands():
        assert command[command.index('--style') + 1] == 'photo'
    for command in commands('--style', 'shapes'):
        assert command[command.index('--style') + 1] == 'shapes'
    assert 'style' not in demo_tool.PRESETS['tiny']['data']['voc']  # the option did not change the presets


def test_train_seeds_runs_the_seed_study_and_threads_are_fixed(tmp_path, demo_tool, capsys):
    """--train-seeds: the study library's steps for every seed with its report; every command gets --threads
    threads whatever --jobs and the core count (the demo's table depended on cores // jobs before)."""
    args = ['--preset', 'tiny', '--work-dir', str(tmp_path / 'w'), '--results-dir', str(tmp_path / 'r')]
    demo = demo_tool.Demo(demo_tool.parse_args(args + ['--train-seeds', '0', '1', '2', '--jobs', '3']))
    names = [s.name for s in demo.study.steps()]
    assert {f'robustness_{label}_s{seed}' for label in LABELS for seed in (0, 1, 2)} <= set(names)
    assert names[-1] == 'report_detection' and demo.study.spec['columns'] == ['Original', 'Mix.Minor', 'Mix.Heavy']
    env = demo.study.environment()
    assert env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '1'
    env = demo_tool.Demo(demo_tool.parse_args(args + ['--threads', '2'])).study.environment()
    assert env['OMP_NUM_THREADS'] == '2'
    for bad, message in ((['--train-seeds', '1'], 'at least 2 distinct seeds'),
                         (['--train-seeds', '0', '-1'], 'at least 2 distinct seeds'),
                         (['--threads', '0'], '--threads must be >= 1')):
        with pytest.raises(SystemExit) as exc:
            demo_tool.parse_args(args + bad)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_bad_data_root_is_a_clear_error(tmp_path, demo_tool, capsys):
    not_voc = tmp_path / 'photos'
    not_voc.mkdir()
    work = tmp_path / 'work'
    assert demo_tool.main(['--work-dir', str(work), '--results-dir', str(tmp_path / 'results'),
                           '--data-root', str(not_voc)]) == 1
    err = capsys.readouterr().err
    assert f'--data-root {not_voc} is not a Pascal VOC layout' in err and 'VOC2007' in err
    assert not (work / 'stages').exists()  # nothing ran
    # the VOC2007 folder itself instead of the VOCdevkit above it: the message says so
    voc2007 = tmp_path / 'VOCdevkit' / 'VOC2007'
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        (voc2007 / sub).mkdir(parents=True)
    assert demo_tool.main(['--work-dir', str(work), '--results-dir', str(tmp_path / 'results'),
                           '--data-root', str(voc2007)]) == 1
    assert 'looks like a VOC2007 folder: set data_root to the folder above it' in capsys.readouterr().err
    # a VOCdevkit without the test list
    (voc2007 / 'ImageSets' / 'Main' / 'trainval.txt').write_text('000001\n')
    assert demo_tool.main(['--work-dir', str(work), '--results-dir', str(tmp_path / 'results'),
                           '--data-root', str(voc2007.parent)]) == 1
    assert 'test.txt' in capsys.readouterr().err


def test_bad_imagenet_root_is_a_clear_error(tmp_path, demo_tool, capsys):
    assert demo_tool.main(['--work-dir', str(tmp_path / 'work'), '--results-dir', str(tmp_path / 'results'),
                           '--imagenet-root', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f'--imagenet-root {tmp_path} is not an ImageNet layout: missing train/<wnid>/ class folders' in err
    assert 'val.txt or meta/val.txt, or val/<wnid>/' in err


def test_unwritable_results_dir_is_a_clear_error(tmp_path, demo_tool, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    assert demo_tool.main(['--work-dir', str(tmp_path / 'work'), '--results-dir', str(blocker / 'results')]) == 1
    err = capsys.readouterr().err
    assert f'cannot write to the results folder {blocker / "results"}' in err and '--results-dir' in err
    assert demo_tool.main(['--work-dir', str(blocker / 'work'), '--results-dir', str(tmp_path / 'results')]) == 1
    assert f'cannot write to the work folder {blocker / "work"}' in capsys.readouterr().err


def test_sheet_images_are_the_evaluated_images(tmp_path, mmdet_scope):
    """The sheet's distorted image is byte-identical to what the robustness sweep's test pipeline feeds the model."""
    import cv2
    from mmengine.dataset import Compose

    import featquant_mmdet  # noqa: F401
    from featquant_mmdet.analysis.detection_sheet import distorted_image
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    from featquant_mmdet.distortions.inject import inject_distortion
    root = make_voc_dataset(str(tmp_path), num_train=1, num_test=1, image_size=(160, 120))
    path = osp.join(root, 'VOC2007', 'JPEGImages', '000002.jpg')
    img = cv2.imread(path)
    for key in ('mix_minor', 'mix_heavy'):
        loader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile')]))
        inject_distortion(loader, key, seed=3)
        piped = Compose(loader['dataset']['pipeline'])(dict(img_path=path))['img']
        mine = distorted_image(img, path, key, seed=3)
        assert np.array_equal(mine, piped)
        assert not np.array_equal(mine, img)
        assert not np.array_equal(mine, distorted_image(img, path, key, seed=4))
    assert np.array_equal(distorted_image(img, path, 'clean'), img)


def test_sheet_versions_and_layout_checks():
    from featquant_mmdet.analysis.detection_sheet import (GAP, HEADER_HEIGHT, LABEL_WIDTH, check_versions,
                                                          compose_sheet, version_title)
    assert check_versions(['clean', 'mix_heavy', 'motion_blur@3']) == ['clean', 'mix_heavy', 'motion_blur@3']
    assert [version_title(k) for k in ('clean', 'mix_minor', 'mix_heavy')] == ['Original', 'Mix.Minor', 'Mix.Heavy']
    with pytest.raises(ValueError, match="unknown distortion 'fog'.*accepted: clean"):
        check_versions(['fog'])
    with pytest.raises(ValueError, match="invalid level 7 for distortion 'jpeg'"):
        check_versions(['jpeg@7'])
    with pytest.raises(ValueError, match='must be an integer'):
        check_versions(['jpeg@x'])
    with pytest.raises(ValueError, match='needs a level'):
        check_versions(['jpeg'])
    tile = np.full((20, 30, 3), 7, np.uint8)
    sheet = compose_sheet([[tile, tile]], ['Original'], ['a', 'b'], (30, 20))
    assert sheet.shape == (HEADER_HEIGHT + 20 + GAP, LABEL_WIDTH + 2 * (30 + GAP), 3)
    assert (sheet[HEADER_HEIGHT:HEADER_HEIGHT + 20, LABEL_WIDTH + 34:LABEL_WIDTH + 64] == 7).all()
    with pytest.raises(ValueError, match='need 1 row titles and 2 column titles'):
        compose_sheet([[tile, tile]], ['Original'], ['a'], (30, 20))


def test_sheet_tool_argument_errors(tmp_path, capsys, load_tool):
    tool = load_tool('analysis/detection_sheet')
    with pytest.raises(SystemExit) as exc:
        tool.main(['--config', 'a.py', 'b.py', '--checkpoint', 'a.pth', '--out', str(tmp_path / 's.png')])
    assert exc.value.code == 2 and '2 configs but 1 checkpoints' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='checkpoint file not found'):
        tool.main(['--config', osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), '--checkpoint',
                   str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 's.png')])
    with pytest.raises(SystemExit, match='out_file must end with .png'):
        tool.main(['--config', osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), '--checkpoint', DEMO,
                   '--out', str(tmp_path / 's.jpg')])


def test_table3_prints_the_comparisons_intervals_and_verdicts(tmp_path, demo_tool, capsys):
    """The comparison tool's outputs (the contract: robustness_table.{md,csv} with
    ``value [low, high]`` and verdict lines on its output), Table 3 is followed by that table and the verdicts,
    and demo_run.json keeps them with the thread count and the CPU capability."""
    from featquant_mmdet.engine.stages import StageRunner
    results = tmp_path / 'r'
    results.mkdir()
    demo = demo_tool.Demo(demo_tool.parse_args(['--preset', 'tiny', '--work-dir', str(tmp_path / 'w'),
                                                '--results-dir', str(results)]))
    demo.runner, demo.env = StageRunner([], str(tmp_path / 'w' / 'stages')), {}
    (results / 'robustness_table.csv').write_text(
        'model,row,Original,Mix.Minor,Mix.Heavy\nZF,value,90.0,80.0,50.0\nZF+POW-1,value,91.0,82.0,55.0\n')
    (results / 'robustness_table.md').write_text(
        '| Model | Mix.Heavy (95% CI) |\n|---|---|\n| ZF | 50.00 [45.00, 55.00] |\n\n'
        'ZF+POW-1 - ZF, test-image sampling (Holm over the 2 columns of this table, family-wise level 95 %; ...):\n\n'
        '- Mix.Heavy: ZF+POW-1 - ZF = +5.00 [+1.00, +9.00] (...; p = 0.004, Holm-adjusted p = 0.008): beyond '
        'test-image sampling\n'
        '- Original: ZF+POW-1 - ZF = +1.00 [-2.00, +4.00] (...; p = 0.5, Holm-adjusted p = 0.5): within test-image '
        'sampling\n\nNo verdict between the models: ...\n')
    demo.write_table()
    out = capsys.readouterr().out
    assert read_table(results / 'table3.csv')['ZF+POW-1'] == pytest.approx([91.0, 82.0, 55.0])
    assert ('With intervals (test-image bootstrap, 1000 resamples; one training seed per model: no verdict between '
            'the models, --train-seeds 0 1 2 gives one):') in out and '50.00 [45.00, 55.00]' in out
    assert 'Holm-adjusted p = 0.008): beyond test-image sampling' in out
    record = json.loads((results / 'demo_run.json').read_text())
    assert record['image_sampling'][0].endswith('beyond test-image sampling') and len(record['image_sampling']) == 2
    assert record['model_verdict'].startswith('none: one training seed per model')
    assert record['threads'] == 1 and record['cpu_capability']
