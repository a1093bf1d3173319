"""Exact resume: tools/train.py killed with SIGKILL between two checkpoints and rerun with --resume reaches bitwise
the weights of an uninterrupted run (RNGStateHook in the configs' default_hooks; same seed, same machine, the
thread count pinned)."""
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
    scale = f'({IMAGE_SIZE[0]},{IMAGE_SIZE[1]})'
    opts = [f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_begin=100000',
            # the lr drops between the checkpoint and the end: the resumed scheduler must know where it is
            f'param_scheduler.0.milestones=[{MAX_ITERS - 1}]', f'default_hooks.checkpoint.interval={INTERVAL}',
            'default_hooks.logger.interval=1', f'train_dataloader.dataset.pipeline.2.scale={scale}',
            'randomness.seed=0', 'model.roi_head.bbox_head.fc_out_channels=256', 'custom_hooks.1.interval=1',
            # the real data path: two persistent loader workers (their draws are replayed by the resumed loader)
            'train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True']
    for split in ('train', 'val', 'test'):
        opts.append(f'{split}_dataloader.dataset.data_root={data_root}')
    for split in ('val', 'test'):
        opts += [f'{split}_dataloader.num_workers=0', f'{split}_dataloader.persistent_workers=False',
                 f'{split}_dataloader.dataset.pipeline.1.scale={scale}']
    return opts


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

