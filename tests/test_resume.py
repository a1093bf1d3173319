"""Reproducibility on one machine: two whole runs (train, robustness sweep, comparison table) under
``reproducible_env`` give byte-identical results files with a detector that detects, one of them uninterrupted and
the other's tools/train.py killed with SIGKILL between two checkpoints and rerun with --resume: the resumed training
reaches bitwise the weights (and optimizer state) of the uninterrupted one (RNGStateHook in the configs'
default_hooks). Same seed, same machine, the thread count pinned (README, "What is reproducible")."""
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
# a one-class set of large objects: 20 iterations at lr 0.02 give a non-zero mAP
MAX_ITERS, INTERVAL = 20, 10


def options(data_root):
    from featquant_mmdet.engine.study import loader_options, voc_data_options
    return [f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_begin=100000',
            # the lr drops between the checkpoint and the end: the resumed scheduler must know where it is
            f'param_scheduler.0.milestones=[{MAX_ITERS * 3 // 4}]', f'default_hooks.checkpoint.interval={INTERVAL}',
            'default_hooks.logger.interval=1', 'randomness.seed=0', 'optim_wrapper.optimizer.lr=0.02',
            'optim_wrapper.clip_grad.max_norm=10', 'model.roi_head.bbox_head.fc_out_channels=256',
            *voc_data_options(data_root, IMAGE_SIZE),
            # the real data path: two persistent loader workers (their draws are replayed by the resumed loader)
            *loader_options(['train_dataloader'], workers=2), *loader_options(['val_dataloader', 'test_dataloader'])]


def tool(name, *args):
    return [sys.executable, osp.join(REPO, 'tools', f'{name}.py'), *map(str, args)]


def train_cmd(work_dir, data_root, *extra):
    return tool('train', CONFIG, '--work-dir', work_dir, *extra, '--cfg-options', *options(data_root))


def after_training(work_dir, data_root):
    """The robustness sweep (clean, Mix.Heavy) of the final checkpoint and the comparison table."""
    return [tool('robustness', CONFIG, f'{work_dir}/train/iter_{MAX_ITERS}.pth', '--distortions', 'mix_heavy',
                 '--work-dir', f'{work_dir}/sweep', '--cfg-options', *options(data_root)),
            tool('compare_robustness', f'{work_dir}/sweep/robustness.json', '--labels', 'ZF', '--out-dir',
                 f'{work_dir}/table')]


def in_sequence(commands, env):
    """The commands one after the other in one bash (each tool in its own process), output collected."""
    script = ' && '.join(' '.join(map(repr, cmd)) for cmd in commands)
    return subprocess.Popen(['bash', '-c', script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
    """Run ``a`` uninterrupted; run ``b`` side by side (one core each), its training killed (the whole process
    group: the trainer and its loader workers) once the first checkpoint is complete, then resumed and finished."""
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    from featquant_mmdet.engine.reproducibility import reproducible_env
    root = tmp_path_factory.mktemp('resume')
    data_root = make_voc_dataset(str(root / 'data'), num_train=8, num_test=2, image_size=IMAGE_SIZE,
                                 classes=('car', ), seed=0)
    env = reproducible_env(dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', '')),
                           threads=1)
    a, b = root / 'a', root / 'b'
    run_a = in_sequence([train_cmd(a / 'train', data_root), *after_training(a, data_root)], env)
    try:
        killed = subprocess.Popen(train_cmd(b / 'train', data_root), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        # mmengine writes `last_checkpoint` after the checkpoint file
        deadline = time.monotonic() + 600
        while (not (b / 'train' / 'last_checkpoint').is_file() and killed.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.02)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        at_kill = sorted(p.name for p in (b / 'train').glob('iter_*.pth'))
        run_b = in_sequence([train_cmd(b / 'train', data_root, '--resume'), *after_training(b, data_root)], env)
        out_b, _ = run_b.communicate(timeout=900)
    finally:
        out_a, _ = run_a.communicate(timeout=900)
    return dict(a=a, b=b, out_a=out_a, rc_a=run_a.returncode, out_b=out_b, rc_b=run_b.returncode,
                killed_rc=killed.returncode, at_kill=at_kill)


def test_sigkill_between_checkpoints_then_resume_gives_the_same_weights(two_runs):
    assert two_runs['killed_rc'] == -signal.SIGKILL, 'the run ended before it could be killed'
    assert two_runs['at_kill'] == [f'iter_{INTERVAL}.pth']  # killed between the two checkpoints
    assert two_runs['rc_a'] == 0, two_runs['out_a'][-5000:]
    out = two_runs['out_b']
    assert two_runs['rc_b'] == 0, out[-5000:]
    assert f'resumed epoch: 0, iter: {INTERVAL}' in out
    assert 'RNGStateHook' in out and 'holds no generator state' not in out

    resumed = weights(two_runs['b'] / 'train' / f'iter_{MAX_ITERS}.pth')
    uninterrupted = weights(two_runs['a'] / 'train' / f'iter_{MAX_ITERS}.pth')
    assert resumed['meta']['iter'] == uninterrupted['meta']['iter'] == MAX_ITERS
    assert 'rng_state' in resumed and 'rng_state' in uninterrupted
    sd_r, sd_u = resumed['state_dict'], uninterrupted['state_dict']
    assert sd_r.keys() == sd_u.keys() and 'backbone.conv3.alpha' in sd_r
    assert [k for k in sd_u if not torch.equal(sd_r[k], sd_u[k])] == []
    for group_r, group_u in zip(resumed['optimizer']['state'].values(), uninterrupted['optimizer']['state'].values()):
        assert torch.equal(group_r['momentum_buffer'], group_u['momentum_buffer'])


def test_two_runs_give_byte_identical_results(two_runs):
    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert two_runs['rc_a'] == 0, two_runs['out_a'][-5000:]
    assert two_runs['rc_b'] == 0, two_runs['out_b'][-5000:]
    a, b = two_runs['a'], two_runs['b']
    results = json.loads((a / 'sweep/robustness.json').read_text())
    assert results['cells']['clean']['metrics']['pascal_voc/mAP'] > 0  # the detector detects
    for name in ('robustness_table.csv', 'robustness_table.md'):
        assert digest(a / 'table' / name) == digest(b / 'table' / name), name
    other = json.loads((b / 'sweep/robustness.json').read_text())
    metrics = {k: c['metrics'] for k, c in results['cells'].items()}
    assert metrics == {k: c['metrics'] for k, c in other['cells'].items()}
def test_reproducible_env():
    from featquant_mmdet.engine.reproducibility import reproducible_env
    env = reproducible_env({'PATH': '/bin', 'OMP_NUM_THREADS': '8'}, threads=2, cpu_capability='avx2')
    assert env == {'PATH': '/bin', 'OMP_NUM_THREADS': '2', 'MKL_NUM_THREADS': '2', 'OPENBLAS_NUM_THREADS': '2',
                   'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_CBWR': 'AVX2'}
    with pytest.raises(ValueError, match='threads must be a positive integer'):
        reproducible_env({}, threads=0)
    with pytest.raises(ValueError, match="cpu_capability must be None, 'default', 'avx2' or 'avx512'"):
        reproducible_env({}, cpu_capability='sse4')


def test_cpu_kernels_names_the_cpu_and_the_pinning():
    from featquant_mmdet.engine.reproducibility import cpu_kernels, reproducible_env
    record = cpu_kernels(reproducible_env({'PATH': '/bin'}, threads=1, cpu_capability='avx2'))
    assert record['pinned'] == {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1',
                                'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_CBWR': 'AVX2'}
    assert cpu_kernels({})['pinned'] == {}
    assert record['torch_cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    if osp.isfile('/proc/cpuinfo') and record['avx512f'] is not None:  # torch uses AVX-512 only where the CPU has it
        assert record['torch_cpu_capability'] != 'AVX512' or record['avx512f']
