"""Reproducibility on one machine: tools/train.py killed with SIGKILL between two checkpoints and rerun with
--resume reaches bitwise the weights of an uninterrupted run (RNGStateHook in the configs' default_hooks), and two
whole runs (train, robustness sweep, comparison table) under ``reproducible_env`` give byte-identical results
files with a detector that detects. Same seed, same machine, the thread count pinned (README, "What is
reproducible")."""
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'faster_rcnn_zf_pow1_voc.py')
IMAGE_SIZE = (192, 160)
MAX_ITERS, INTERVAL = 4, 2


def options(data_root):
    from featquant_mmdet.engine.study import loader_options, voc_data_options
    return [f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_begin=100000',
            # the lr drops between the checkpoint and the end: the resumed scheduler must know where it is
            f'param_scheduler.0.milestones=[{MAX_ITERS - 1}]', f'default_hooks.checkpoint.interval={INTERVAL}',
            'default_hooks.logger.interval=1', 'randomness.seed=0', 'model.roi_head.bbox_head.fc_out_channels=256',
            'custom_hooks.1.interval=1', *voc_data_options(data_root, IMAGE_SIZE),
            # the real data path: two persistent loader workers (their draws are replayed by the resumed loader)
            *loader_options(['train_dataloader'], workers=2), *loader_options(['val_dataloader', 'test_dataloader'])]


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    return make_voc_dataset(str(tmp_path_factory.mktemp('voc')), num_train=3, num_test=1, image_size=IMAGE_SIZE,
                            seed=0)


def train_cmd(work_dir, data_root, *extra):
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir', str(work_dir), *extra,
            '--cfg-options', *options(data_root)]


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_sigkill_between_checkpoints_then_resume_gives_the_same_weights(voc_root, tmp_path, subprocess_env):
    env = dict(subprocess_env, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    proc = subprocess.run(train_cmd(full, voc_root), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]

    # the same run, killed (the whole process group: the trainer and its loader workers) once the first checkpoint
    # is complete: mmengine writes `last_checkpoint` after the checkpoint file
    run = subprocess.Popen(train_cmd(killed, voc_root), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (killed / 'last_checkpoint').is_file() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    assert (killed / f'iter_{INTERVAL}.pth').is_file() and not (killed / f'iter_{2 * INTERVAL}.pth').exists()

    proc = subprocess.run(train_cmd(killed, voc_root, '--resume'), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert f'resumed epoch: 0, iter: {INTERVAL}' in out
    assert 'RNGStateHook' in out and 'holds no generator state' not in out

    resumed, uninterrupted = weights(killed / f'iter_{MAX_ITERS}.pth'), weights(full / f'iter_{MAX_ITERS}.pth')
    assert resumed['meta']['iter'] == uninterrupted['meta']['iter'] == MAX_ITERS
    assert 'rng_state' in resumed and 'rng_state' in uninterrupted
    sd_r, sd_u = resumed['state_dict'], uninterrupted['state_dict']
    assert sd_r.keys() == sd_u.keys() and 'backbone.conv3.alpha' in sd_r
    assert [k for k in sd_u if not torch.equal(sd_r[k], sd_u[k])] == []
    for group_r, group_u in zip(resumed['optimizer']['state'].values(), uninterrupted['optimizer']['state'].values()):
        assert torch.equal(group_r['momentum_buffer'], group_u['momentum_buffer'])



# ---------------------------------------------------------------------------------------------- two whole runs
EASY_ITERS = 20  # a one-class set of large objects: 20 iterations at lr 0.02 give a non-zero mAP (measured 0.55)


def easy_options(data_root):
    from featquant_mmdet.engine.study import loader_options, voc_data_options
    return [f'train_cfg.max_iters={EASY_ITERS}', 'train_cfg.val_begin=100000',
            f'param_scheduler.0.milestones=[{EASY_ITERS * 3 // 4}]', f'default_hooks.checkpoint.interval={EASY_ITERS}',
            'default_hooks.logger.interval=10', 'randomness.seed=0', 'optim_wrapper.optimizer.lr=0.02',
            'optim_wrapper.clip_grad.max_norm=10', 'model.roi_head.bbox_head.fc_out_channels=256',
            *voc_data_options(data_root, IMAGE_SIZE), *loader_options()]


def whole_run(work_dir, data_root, env):
    """train -> robustness sweep (clean, Mix.Heavy) -> comparison table, each tool in its own process."""
    config = osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py')
    steps = [
        ['train.py', config, '--work-dir', f'{work_dir}/train', '--cfg-options', *easy_options(data_root)],
        ['robustness.py', config, f'{work_dir}/train/iter_{EASY_ITERS}.pth', '--distortions', 'mix_heavy',
         '--work-dir', f'{work_dir}/sweep', '--cfg-options', *easy_options(data_root)],
        ['compare_robustness.py', f'{work_dir}/sweep/robustness.json', '--labels', 'ZF', '--out-dir',
         f'{work_dir}/table']]
    script = ' && '.join(' '.join(map(repr, [sys.executable, osp.join(REPO, 'tools', tool), *args]))
                         for tool, *args in steps)
    return subprocess.Popen(['bash', '-c', script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_runs_give_byte_identical_results(tmp_path, subprocess_env):
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    from featquant_mmdet.engine.reproducibility import reproducible_env
    data_root = make_voc_dataset(str(tmp_path / 'data'), num_train=8, num_test=2, image_size=IMAGE_SIZE,
                                 classes=('car', ), seed=0)
    env = reproducible_env(subprocess_env, threads=1)
    runs = [whole_run(tmp_path / name, data_root, env) for name in ('a', 'b')]  # side by side: one core each
    for proc in runs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-5000:]

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    a, b = tmp_path / 'a', tmp_path / 'b'
    results = json.loads((a / 'sweep/robustness.json').read_text())
    assert results['cells']['clean']['metrics']['pascal_voc/mAP'] > 0  # the detector detects
    for name in ('robustness_table.csv', 'robustness_table.md'):
        assert digest(a / 'table' / name) == digest(b / 'table' / name), name
    other = json.loads((b / 'sweep/robustness.json').read_text())
    metrics = {k: c['metrics'] for k, c in results['cells'].items()}
    assert metrics == {k: c['metrics'] for k, c in other['cells'].items()}
    wa, wb = (weights(d / f'train/iter_{EASY_ITERS}.pth')['state_dict'] for d in (a, b))
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []


def test_reproducible_env():
    from featquant_mmdet.engine.reproducibility import reproducible_env
    env = reproducible_env({'PATH': '/bin', 'OMP_NUM_THREADS': '8'}, threads=2, cpu_capability='avx2')
    assert env == {'PATH': '/bin', 'OMP_NUM_THREADS': '2', 'MKL_NUM_THREADS': '2', 'OPENBLAS_NUM_THREADS': '2',
                   'ATEN_CPU_CAPABILITY': 'avx2'}
    with pytest.raises(ValueError, match='threads must be a positive integer'):
        reproducible_env({}, threads=0)
    with pytest.raises(ValueError, match="cpu_capability must be None, 'default', 'avx2' or 'avx512'"):
        reproducible_env({}, cpu_capability='sse4')
