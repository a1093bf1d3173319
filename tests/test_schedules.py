"""Schedules per GPU count: the detection configs that state their total batch (``*_Nxb1.py``) keep the paper's
images seen and lr per image, and ``auto_scale_lr.base_batch_size`` is the total batch of the stated lr in every
config (so ``--auto-scale-lr`` means one thing everywhere). The 2-process run of the 2-GPU schedule is in
tests/test_distributed.py."""
import functools
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

import featquant_mmdet  # noqa: F401  (the featquant_mmdet:: config prefix)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')

# py-faster-rcnn's ZF solver, the paper's schedule: 1 GPU x 1 image, lr 0.001, 70k iterations, x0.1 at 50k
PAPER = dict(batch=1, lr=0.001, iters=70000, step=50000, snapshot=10000)
WARMUP_IMAGES = 4000
DETECTORS = ('faster_rcnn_zf_voc', 'faster_rcnn_zf_pow1_voc', 'faster_rcnn_zf_voc_imagenet_init',
             'faster_rcnn_zf_pow1_voc_imagenet_init')
GPU_COUNTS = (1, 2, 4, 8)
SCHEDULE_KEYS = ('train_cfg', 'param_scheduler', 'optim_wrapper', 'auto_scale_lr', 'default_hooks')


def config_name(detector, gpus):
    return detector if gpus == 1 else f'{detector}_{gpus}xb1'


def load(name):
    return load_file(name + '.py')


@functools.cache
def load_file(relpath):
    """Each config parsed once per test process (a ``mmdet::`` base costs mmengine a scan of mmdet's metafiles, a
    second or more per config); the tests only read the Config they get (``to_dict()`` copies)."""
    return Config.fromfile(osp.join(CONFIGS, relpath))


def schedulers(cfg, kind):
    return [s for s in cfg.param_scheduler if s['type'] == kind]


@pytest.mark.parametrize('gpus', GPU_COUNTS)
@pytest.mark.parametrize('detector', DETECTORS)
def test_schedule_keeps_the_papers_images_and_lr_per_image(detector, gpus):
    cfg = load(config_name(detector, gpus))
    total = gpus * cfg.train_dataloader.batch_size
    assert cfg.train_dataloader.batch_size == 1  # one image per GPU, as py-faster-rcnn (no padding in a batch)
    assert cfg.auto_scale_lr.base_batch_size == total and not cfg.auto_scale_lr.enable
    iters = cfg.train_cfg.max_iters
    assert iters * total == PAPER['iters'] and cfg.train_cfg.val_interval == iters  # images seen
    assert cfg.optim_wrapper.optimizer.lr / total == pytest.approx(PAPER['lr'], rel=1e-9)  # lr per image
    # param_scheduler.0 is the step in every detection config (the documented override key)
    assert cfg.param_scheduler[0]['type'] == 'MultiStepLR' and cfg.param_scheduler[0]['gamma'] == 0.1
    assert [m * total for m in cfg.param_scheduler[0]['milestones']] == [PAPER['step']]
    assert cfg.default_hooks.checkpoint.interval * total == PAPER['snapshot']  # a snapshot every 10k images
    warmup = schedulers(cfg, 'LinearLR')
    if gpus == 1:
        assert warmup == []  # the paper's schedule: no warm-up
    else:
        (warmup, ) = warmup
        assert warmup['end'] * total == WARMUP_IMAGES and warmup['begin'] == 0 and not warmup['by_epoch']
        # from the paper's lr (its batch-1 lr is the start), linearly up to the scaled one
        assert cfg.optim_wrapper.optimizer.lr * warmup['start_factor'] == pytest.approx(PAPER['lr'], rel=1e-9)


@pytest.mark.parametrize('gpus', GPU_COUNTS[1:])
@pytest.mark.parametrize('detector', DETECTORS)
def test_gpu_count_configs_differ_from_the_one_gpu_config_only_in_the_schedule(detector, gpus):
    one, many = load(detector).to_dict(), load(config_name(detector, gpus)).to_dict()
    assert one.keys() == many.keys()
    differ = {k for k in one if one[k] != many[k]}
    assert differ <= set(SCHEDULE_KEYS), differ
    assert one['model'] == many['model'] and one['train_dataloader'] == many['train_dataloader']
    # within optim_wrapper and default_hooks only the lr and the snapshot interval
    one['optim_wrapper']['optimizer'].pop('lr'), many['optim_wrapper']['optimizer'].pop('lr')
    assert one['optim_wrapper'] == many['optim_wrapper']
    one['default_hooks']['checkpoint'].pop('interval'), many['default_hooks']['checkpoint'].pop('interval')
    assert one['default_hooks'] == many['default_hooks']


def lr_per_iteration(cfg):
    """The lr of every training iteration, from mmengine's own schedulers built from the config."""
    from mmengine.optim.scheduler import LinearLR, MultiStepLR
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr)
    kinds = dict(LinearLR=LinearLR, MultiStepLR=MultiStepLR)
    built = []
    for s in cfg.param_scheduler:
        s = dict(s)
        built.append(kinds[s.pop('type')](optimizer, **s))
    lrs = []
    for _ in range(cfg.train_cfg.max_iters):  # the Runner: a step with the current lr, then every scheduler steps
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in built:
            scheduler.step()
    return lrs


@pytest.mark.parametrize('gpus', (2, 8))
def test_lr_over_the_schedule_as_mmengine_runs_it(gpus):
    """Per image: the paper's lr after the warm-up, a tenth of it after 50k images; the warm-up costs a few percent
    of the summed lr x images (linear from 1/B of the scaled lr, over the first 4000 images)."""
    cfg = load(config_name('faster_rcnn_zf_pow1_voc', gpus))
    lrs = lr_per_iteration(cfg)
    per_image = [lr / gpus for lr in lrs]
    warm, step = WARMUP_IMAGES // gpus, PAPER['step'] // gpus
    assert per_image[0] == pytest.approx(PAPER['lr'] / gpus)  # the scaled lr x 1/B: the paper's lr per step
    assert per_image[warm // 2] == pytest.approx(PAPER['lr'] * (1 + 1 / gpus) / 2, rel=0.01)
    assert per_image[warm:step] == pytest.approx([PAPER['lr']] * (step - warm))
    assert per_image[step:] == pytest.approx([PAPER['lr'] / 10] * (len(lrs) - step))
    paper = PAPER['step'] * PAPER['lr'] + (PAPER['iters'] - PAPER['step']) * PAPER['lr'] / 10  # sum of lr per image
    ours = sum(lr * gpus for lr in per_image)  # every iteration's lr per image x its B images
    missing = (1 - 1 / gpus) / 2 * WARMUP_IMAGES * PAPER['lr']  # the warm-up's triangle
    assert ours == pytest.approx(paper - missing, rel=1e-3)
    assert 0 < (paper - ours) / paper < 0.04


# ------------------------------------------------------------------------------------------ every config
def every_config():
    for folder, subfolders, files in os.walk(CONFIGS):
        subfolders[:] = [d for d in subfolders if d not in ('_base_', 'studies')]
        for f in sorted(files):
            if f.endswith('.py'):
                yield osp.relpath(osp.join(folder, f), CONFIGS)


def stated_gpus(name):
    """The GPU count a config's lr is written for: ``_Nxb`` in its name; otherwise 1 for detection (the paper's
    single-GPU solver) and 8 for pretraining (He et al.'s 8 x 32 = 256, configs/pretrain/_base_/datasets)."""
    match = re.search(r'_(\d+)xb\d+', name)
    if match:
        return int(match.group(1))
    return 8 if name.startswith('pretrain' + os.sep) else 1


def test_every_config_names_the_total_batch_of_its_lr():
    names = list(every_config())
    assert len(names) >= 30 and 'pretrain/resnet50_pow1_imagenet.py' in names
    for name in names:
        cfg = load_file(name)
        total = stated_gpus(name) * cfg.train_dataloader.batch_size
        # mmengine's Runner.scale_lr multiplies the lr by world_size x batch_size / base_batch_size: on the stated
        # GPU count it leaves the lr as written
        assert cfg.auto_scale_lr.base_batch_size == total, name
        if name.startswith('pretrain' + os.sep):  # epoch-based: the lr follows the GPU count by itself
            assert cfg.auto_scale_lr.enable, name
        else:  # iteration-based: scaling the lr alone would change the images seen; the *_Nxb1.py configs do both
            assert not cfg.auto_scale_lr.enable, name
