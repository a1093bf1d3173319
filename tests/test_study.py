"""The multi-seed study (tools/study.py, featquant_mmdet/engine/study.py): a tiny two-variant, two-seed classifier
study end to end through the real tools on generated ImageNet-format data, killed mid-way (SIGKILL of its process
group) and resumed; its numbers against a hand computation from the runs' robustness.json; bad input.
"""
import csv
import json
import math
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STUDY = osp.join(REPO, 'tools', 'study.py')
VARIANTS = ('ZF', 'POW1')
SEEDS = (0, 1)
SPEC = """
task = 'classification'
seeds = [0, 1]
distortions = ['jpeg', 'targeted_occlusion', 'mix']
levels = [2]
saliency = dict(config='configs/pretrain/zf_imagenet.py', seed=9)
threads = 1
jobs = 2
data = dict(imagenet=dict(num_train=2, num_val=1, image_size=64))
pretrain = dict(epochs=1, batch=8, lr=0.01, scale=64)
variants = [dict(name='ZF', config='configs/pretrain/zf_imagenet.py'),
            dict(name='POW1', config='configs/pretrain/zf_pow1_imagenet.py', alpha_lr_mult=3)]
"""


def study_cmd(spec, work, *extra):
    return [sys.executable, STUDY, str(spec), '--work-dir', str(work), *extra]


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory):
    """The study killed (SIGKILL, whole process group) once the first training has finished, then rerun."""
    base = tmp_path_factory.mktemp('study')
    spec, work = base / 'spec.py', base / 'work'
    spec.write_text(SPEC)
    marker = work / 'stages' / 'train_ZF_s0.json'
    proc = subprocess.Popen(study_cmd(spec, work), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 400
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the next step has started
    os.killpg(proc.pid, signal.SIGKILL)
    killed_out = proc.communicate(timeout=60)[0]
    done_before = {p[:-5]: json.loads((work / 'stages' / p).read_text())
                   for p in os.listdir(work / 'stages') if p.endswith('.json')}
    resumed = subprocess.run(study_cmd(spec, work), cwd=REPO, capture_output=True, text=True, timeout=600)
    return dict(work=work, killed_out=killed_out, done_before=done_before, resumed=resumed)


def test_killed_study_resumes_without_redoing_finished_steps(tiny_study):
    resumed, done_before = tiny_study['resumed'], tiny_study['done_before']
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert 'train_ZF_s0' in done_before and 'report_classification' not in done_before, tiny_study['killed_out']
    stages = tiny_study['work'] / 'stages'
    assert resumed.stdout.count('-- skipped, done on') >= len(done_before)
    for name, marker in done_before.items():
        after = json.loads((stages / f'{name}.json').read_text())
        assert after['finished_at'] == marker['finished_at'], name  # not redone
    redone = [line for line in resumed.stdout.splitlines() if ' done in ' in line]
    assert not any(f'] {name} done in' in line for name in done_before for line in redone)
    # trains, sweeps, data, the saliency classifier, report
    assert len(redone) == 2 * len(VARIANTS) * len(SEEDS) + 3 - len(done_before)
    assert 'progress:' in resumed.stdout and 'left' in resumed.stdout
    record = json.loads((tiny_study['work'] / 'results' / 'study_run.json').read_text())
    assert record['threads'] == 1 and record['cpu_capability']
    for ext in ('md', 'csv', 'png'):
        assert (tiny_study['work'] / 'results' / f'study.{ext}').stat().st_size > 0


def t_interval_by_hand(values, level=0.95, lower=-math.inf, upper=math.inf):
    """Student t interval, cut to [lower, upper] (percentages: [0, 100], their differences [-100, 100])."""
    from scipy import stats
    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return mean, max(mean - half, lower), min(mean + half, upper)


def test_aggregation_equals_a_hand_computation_from_the_results_files(tiny_study):
    work = tiny_study['work']
    values = {}  # (variant, column) -> per seed; accuracy in percent, distortion column = mean over its levels
    for variant in VARIANTS:
        for seed in SEEDS:
            res = json.loads((work / 'robustness' / f'{variant}_s{seed}' / 'robustness.json').read_text())
            cells, metric = res['cells'], res['metric']
            assert metric == 'accuracy/top1'
            for column, key in (('Clean', 'clean'), ('JPEG', 'jpeg@2'), ('Mix.', 'mix')):
                values.setdefault((variant, column), []).append(cells[key]['metrics'][metric])
    with open(work / 'results' / 'study.csv') as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c not in ('model', 'row') and not c.endswith(('(95%)', 'excludes 0'))]
    assert {'Clean', 'Mix.'} <= set(columns), columns
    jpeg = next(c for c in columns if c.lower().startswith('jpeg'))
    by_row = {(r['model'], r['row']): r for r in rows}
    for variant in VARIANTS:
        row = by_row[(variant, 'mean')]
        for column, name in (('Clean', 'Clean'), ('JPEG', jpeg), ('Mix.', 'Mix.')):
            mean, low, high = t_interval_by_hand(values[(variant, column)], lower=0.0, upper=100.0)
            assert float(row[name]) == pytest.approx(mean, abs=1e-3)
            if low == high:  # identical values: a zero-width interval
                assert float(row[f'{name} low (95%)']) == pytest.approx(mean, abs=1e-3)
            else:
                assert float(row[f'{name} low (95%)']) == pytest.approx(low, abs=1e-3)
                assert float(row[f'{name} high (95%)']) == pytest.approx(high, abs=1e-3)
    diff = by_row[('POW1', 'difference to ZF')]
    d = [b - a for a, b in zip(values[('ZF', 'Clean')], values[('POW1', 'Clean')])]
    mean, low, high = t_interval_by_hand(d, lower=-100.0, upper=100.0)
    assert float(diff['Clean']) == pytest.approx(mean, abs=1e-3)
    if low != high:
        assert float(diff['Clean low (95%)']) == pytest.approx(low, abs=1e-3)
        excludes = low > 0 or high < 0
        assert diff['Clean excludes 0'] == str(int(excludes))
    verdict = next(line for line in tiny_study['resumed'].stdout.splitlines() if line.startswith('Clean: POW1 - ZF'))
    assert ('better' in verdict or 'worse' in verdict) == (low > 0 or high < 0 if low != high else mean != 0)


def test_every_sweep_occludes_with_the_study_saliency_classifier(tiny_study):
    """Targeted occlusion: one classifier trained for it (seed 9, none of the variants' runs) places the masks in
    every run's sweep, and its column is in the report."""
    import hashlib
    work = tiny_study['work']
    trained = work / 'saliency' / 'classifier_s9'
    checkpoint = (trained / 'last_checkpoint').read_text().strip()
    digest = hashlib.sha256(open(trained / osp.basename(checkpoint), 'rb').read()).hexdigest()
    for variant in VARIANTS:
        for seed in SEEDS:
            res = json.loads((work / 'robustness' / f'{variant}_s{seed}' / 'robustness.json').read_text())
            cell = res['cells']['targeted_occlusion@2']
            assert cell['inputs']['saliency_checkpoint_sha256'] == digest, (variant, seed)
            assert res['cells']['jpeg@2'].get('inputs', {}) == {}  # only occlusion depends on the classifier
    with open(work / 'results' / 'study.csv') as f:
        header = next(csv.reader(f))
    assert 'Occ.' in header, header


def test_the_report_has_the_exponents_of_the_runs_and_a_note_for_a_variant_without(tiny_study):
    """study.md's alpha table: POW1's final pooled mean over its seeds equals the runs' own alpha_stats.jsonl; ZF
    (no exponents) gets a note, and the trajectory plot is written."""
    import glob
    import numpy as np
    work, results = tiny_study['work'], tiny_study['work'] / 'results'
    finals = []
    for seed in SEEDS:
        (stats, ) = glob.glob(str(work / 'train' / f'POW1_s{seed}' / '*' / 'alpha_stats.jsonl'))
        with open(stats) as f:
            finals.append([json.loads(line) for line in f if line.strip()][-1]['all']['mean'])
    text = (results / 'study.md').read_text()
    row = next(line for line in text.splitlines() if line.startswith('| POW1 | 2 |'))
    mean, sd = (float(x) for x in row.split('|')[3].split('+-'))
    assert mean == pytest.approx(np.mean(finals), abs=6e-4) and sd == pytest.approx(np.std(finals, ddof=1), abs=6e-4)
    assert 'No exponents in ZF' in text and not any(line.startswith('| ZF |') and '+-' in line
                                                    for line in text.splitlines())
    assert (results / 'alpha_trajectory.png').stat().st_size > 0 and 'POW1 s1' in (
        results / 'alpha_trajectory.md').read_text()


def test_runs_swept_on_other_cells_are_refused_not_averaged(tiny_study, tmp_path):
    """A run whose results file holds other cells (a sweep folder reused with other levels) would average its
    columns over other levels: the aggregation names the files and the cells instead."""
    from featquant_mmdet.engine.stages import StageError
    from featquant_mmdet.engine.study_report import aggregate_runs
    work = tiny_study['work']
    paths = {v: {s: str(work / 'robustness' / f'{v}_s{s}' / 'robustness.json') for s in SEEDS} for v in VARIANTS}
    assert set(aggregate_runs(paths)) == set(VARIANTS)
    odd = json.loads(open(paths['POW1'][1]).read())
    odd['cells']['jpeg@4'] = dict(odd['cells']['jpeg@2'])  # one more level of one distortion
    (tmp_path / 'robustness.json').write_text(json.dumps(odd))
    paths['POW1'][1] = str(tmp_path / 'robustness.json')
    with pytest.raises(StageError, match=r"holds other cells than .*only here: \['jpeg@4'\], only there: \[\]"):
        aggregate_runs(paths)


@pytest.mark.parametrize('extra, message', [
    (['--variant', 'A=configs/pretrain/zf_imagenet.py', '--variant', 'B=configs/pretrain/nope.py'],
     "variant B: config 'configs/pretrain/nope.py' does not exist"),
    (['--variant', 'A=configs/pretrain/zf_imagenet.py', '--distortions', 'jpeg', 'fog'], "unknown distortion 'fog'"),
    (['--variant', 'A=configs/pretrain/zf_imagenet.py', '--seeds', '0', '0'], 'seeds must be distinct integers'),
    (['--variant', 'A=configs/pretrain/zf_imagenet.py', '--seeds', '-1'], 'seeds must be distinct integers'),
    (['--variant', 'A=configs/pretrain/zf_imagenet.py:lr', '--seeds', '0'], "'lr' is not key=value"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_step(tmp_path, extra, message, load_tool, capsys):
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as exc:
        load_tool('study').main(['--task', 'classification', '--work-dir', str(work), *extra])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('study.py: error: ') and message in lines[0], lines
    assert not work.exists()  # nothing started


def test_a_data_style_the_generators_do_not_have_is_refused(tmp_path, load_tool, capsys):
    spec = tmp_path / 'spec.py'
    spec.write_text("variants = [dict(name='A', config='configs/pretrain/zf_imagenet.py')]\n"
                    "data = dict(imagenet=dict(style='cartoon'))\n")
    with pytest.raises(SystemExit) as exc:
        load_tool('study').main([str(spec), '--task', 'classification', '--work-dir', str(tmp_path / 'work')])
    line = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "data.imagenet.style must be one of shapes, photo, got 'cartoon'" in line
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('saliency, message', [
    ("dict(config='configs/pretrain/zf_imagenet.py', seed=0)", 'saliency.seed must be an integer >= 0 that no '
                                                               'training of the study uses (seeds [0])'),
    ("dict(config='configs/pretrain/nope.py', seed=5)", 'saliency must be dict(config=<an existing classifier'),
    ("'zf'", 'saliency must be dict(config='),
])
def test_a_saliency_classifier_the_study_cannot_train_is_refused(tmp_path, load_tool, capsys, saliency, message):
    spec = tmp_path / 'spec.py'
    spec.write_text("variants = [dict(name='A', config='configs/pretrain/zf_imagenet.py')]\n"
                    f"seeds = [0]\nsaliency = {saliency}\n")
    with pytest.raises(SystemExit) as exc:
        load_tool('study').main([str(spec), '--task', 'classification', '--work-dir', str(tmp_path / 'work')])
    line = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and message in line, line
    assert not (tmp_path / 'work').exists()


def test_bad_input_from_the_command_line_in_a_subprocess(tmp_path):
    """The same through the real entry point: one line on stderr, exit 2, no traceback."""
    proc = subprocess.run([sys.executable, STUDY, '--task', 'classification', '--work-dir', str(tmp_path / 'w'),
                           '--variant', 'A=configs/pretrain/zf_imagenet.py', '--distortions', 'fog'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1 and "unknown distortion 'fog'" in proc.stderr


def test_variant_parsing_and_the_exponents_lr_multiplier_reaches_the_config(tmp_path):
    from mmengine.config import Config

    from featquant_mmdet.engine.study import Study, load_spec, parse_variant
    v = parse_variant('P=configs/pretrain/zf_pow1_imagenet.py:param_scheduler.0.milestones=[1,2],alpha_lr_mult=3,'
                      'train_dataloader.batch_size=4', 'classification')
    assert v == dict(name='P', config='configs/pretrain/zf_pow1_imagenet.py', alpha_lr_mult=3.0,
                     options=['param_scheduler.0.milestones=[1,2]', 'train_dataloader.batch_size=4'])
    study = Study(load_spec(None, dict(task='classification', variants=[v])), str(tmp_path), str(tmp_path))
    cfg = Config.fromfile(study.derived_config(v['config'], v))
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['.alpha'] == dict(decay_mult=0.0, lr_mult=3.0)
    assert cfg.model.backbone.quant.include == ('conv3', 'conv4', 'conv5')  # the rest of the config kept
    plain = dict(v, alpha_lr_mult=None)
    assert study.derived_config(v['config'], plain) == osp.join(REPO, v['config'])


@pytest.mark.parametrize('spec_file', sorted(f for f in os.listdir(osp.join(REPO, 'configs', 'studies'))
                                             if f.endswith('.py')))
def test_shipped_study_specs_pass_the_checks(spec_file):
    """Every spec under configs/studies/ loads and passes every check a study makes before its first step."""
    from featquant_mmdet.engine.study_spec import check_spec, load_spec
    spec = check_spec(load_spec(osp.join(REPO, 'configs', 'studies', spec_file)))
    assert spec['variants'] and spec['seeds']
