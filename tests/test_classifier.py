"""The classifier, its heads, the quantized ResNet and the pretraining configs.

Every config under configs/pretrain/ builds its model and trains one step; three of them (ZF-POW-1,
ResNet-18+HPOW, ResNet-50+SF-POW) run end to end through tools/train.py and tools/test.py on generated data.
"""
import glob
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import BaseDataElement

import featquant_mmdet  # noqa: F401
from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
from featquant_mmdet.layers.quant_conv import QuantConv2d
from mmdet.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = osp.join(REPO, 'configs', 'pretrain')
QUANT_TYPES = {'sf100': 'SFConv', 'pow1': 'PowConv', 'hpow': 'HPowConv', 'sfpow': 'SFPowConv'}
# the paper's models (Section 3.2 and the ZF pair of Section 3.3); other configs there (baselines) test themselves
CONFIGS = sorted([f'resnet{d}{v}_imagenet.py' for d in (18, 50) for v in ['', *(f'_{k}' for k in QUANT_TYPES)]]
                 + ['zf_imagenet.py', 'zf_pow1_imagenet.py'])
NUM_CLASSES = 6

pytestmark = pytest.mark.usefixtures('mmdet_scope')


def expected_quantized(config):
    """(conv type, names of the convs that must be quantized) per the paper's placement, or None."""
    stem = config.split('_imagenet')[0]
    variant = stem.split('_', 1)[1] if '_' in stem else None
    if stem.startswith('zf'):
        return ('PowConv', ['conv3', 'conv4', 'conv5']) if variant == 'pow1' else None
    if variant is None:
        return None
    depth = int(stem[len('resnet'):].split('_')[0])
    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    names = []
    if depth == 18:  # every conv: stem, both 3x3 of each basic block, the 1x1 downsamples
        names.append('conv1')
        for stage, n in enumerate(blocks, 1):
            for b in range(n):
                names += [f'layer{stage}.{b}.conv1', f'layer{stage}.{b}.conv2']
            if stage > 1:
                names.append(f'layer{stage}.0.downsample.0')
    else:  # only the 3x3 convs: conv2 of each bottleneck
        names = [f'layer{stage}.{b}.conv2' for stage, n in enumerate(blocks, 1) for b in range(n)]
    return QUANT_TYPES[variant], sorted(names)


# ---------------------------------------------------------------------------------------------- configs
def test_the_twelve_pretraining_configs_exist():
    assert len(CONFIGS) == 12 and all(osp.isfile(osp.join(PRETRAIN, c)) for c in CONFIGS)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_follows_the_training_scheme(config):
    cfg = Config.fromfile(osp.join(PRETRAIN, config))
    assert cfg.custom_imports == dict(imports=['featquant_mmdet'], allow_failed_imports=False)
    opt = cfg.optim_wrapper.optimizer
    # He et al.; ZF (no batch norm) keeps Zeiler & Fergus' lr and weight decay
    assert (opt.type, opt.momentum) == ('SGD', 0.9)
    assert (opt.lr, opt.weight_decay) == ((0.01, 5e-4) if config.startswith('zf') else (0.1, 1e-4))
    # ZF from scratch (no normalisation layer) diverges at lr 0.01 without clipping; the BN ResNets need none
    assert cfg.optim_wrapper.get('clip_grad') == (dict(max_norm=10, norm_type=2) if config.startswith('zf') else None)
    assert [(s.type, s.milestones, s.gamma) for s in cfg.param_scheduler] == [('MultiStepLR', [30, 60], 0.1)]
    assert cfg.train_cfg.max_epochs == 90
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.auto_scale_lr.enable
    train_types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    lighting = [] if config.startswith('zf') else ['PCALighting']  # He et al.'s colour augmentation (ResNets)
    assert train_types == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', *lighting, 'PackClsInputs']
    assert cfg.train_dataloader.dataset.pipeline[1].scale == 224
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == 'data/imagenet/' and loader.dataset.type == 'ImageNetDataset'
    assert cfg.val_evaluator == dict(type='Accuracy', topk=(1, 5))
    # the power-function models regularise their exponents (paper Section 2)
    hooks = [h.type for h in cfg.get('custom_hooks', [])]
    quant = cfg.model.backbone.get('quant')
    has_exponents = quant is not None and quant['conv_cfg']['type'] != 'SFConv'
    assert ('AlphaRegularizationHook' in hooks) == has_exponents


def test_validation_pipeline_gives_one_256_crop():
    from mmcv.transforms import Compose
    cfg = Config.fromfile(osp.join(PRETRAIN, 'resnet18_imagenet.py'))
    pipeline = Compose(cfg.val_dataloader.dataset.pipeline[1:])  # without loading from disk
    img = np.zeros((300, 450, 3), np.uint8)
    img[:, 225:] = 255  # right half white: the centre crop of the 256 x 384 resize spans columns 64..319
    out = pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], gt_label=0))
    assert tuple(out['inputs'].shape) == (3, 256, 256)
    assert out['inputs'][:, :, :120].max() == 0 and out['inputs'][:, :, 136:].min() == 255


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_builds_and_trains_one_step(config, pretrain_model_cfg, labelled_batch):
    model = MODELS.build(pretrain_model_cfg(config, NUM_CLASSES))
    quantized = sorted(n for n, m in model.backbone.named_modules() if isinstance(m, QuantConv2d))
    expected = expected_quantized(config)
    if expected is None:
        assert quantized == []
    else:
        conv_type, names = expected
        assert quantized == names
        assert {type(m).__name__ for n, m in model.backbone.named_modules() if n in names} == {conv_type}
    model.train()
    data = model.data_preprocessor(labelled_batch(2, 32, NUM_CLASSES), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls'} and torch.isfinite(losses['loss_cls'])
    losses['loss_cls'].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    # the quantizers' own parameters (exponents, hypernetworks) learn
    own = [g for n, g in grads.items() if n.startswith('backbone.') and ('alpha' in n or 'hyper' in n)]
    if expected is not None and expected[0] != 'SFConv':
        assert own and any(g.abs().sum() > 0 for g in own)


# ---------------------------------------------------------------------------------------------- model parts
def test_classifier_modes_and_preprocessing(pretrain_model_cfg, labelled_batch):
    model = MODELS.build(pretrain_model_cfg('resnet18_imagenet.py', NUM_CLASSES))
    model.eval()
    batch = labelled_batch(3, 40, NUM_CLASSES, seed=1)
    data = model.data_preprocessor(batch)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    # BGR in, RGB normalised out
    assert torch.allclose(data['inputs'][1], (batch['inputs'][1].flip(0).float() - mean) / std, atol=1e-5)
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')
        preds = model(**data, mode='predict')
    assert logits.shape == (3, NUM_CLASSES)
    for sample, row in zip(preds, logits):
        assert torch.allclose(sample.pred_score, row.softmax(0), atol=1e-6)
        assert sample.pred_label.tolist() == [int(row.argmax())]
        assert 'gt_label' in sample  # the input samples are returned, filled in
    with pytest.raises(ValueError, match="mode must be 'loss', 'predict' or 'tensor'"):
        model(data['inputs'], mode='train')
    with pytest.raises(KeyError, match='data sample 0 has no gt_label'):
        model(data['inputs'], [BaseDataElement()] * 3, mode='loss')
    bad = labelled_batch(2, 40, NUM_CLASSES)
    bad['inputs'][1] = bad['inputs'][1][:, :32]
    with pytest.raises(ValueError, match=r'one size .*\(3, 32, 40\), \(3, 40, 40\)'):
        model.data_preprocessor(bad)


def test_head_errors_name_the_mismatch():
    head = MODELS.build(dict(type='LinearClsHead', num_classes=3, in_channels=8))
    with pytest.raises(ValueError, match='expects 8 input channels .* has 16'):
        head((torch.zeros(1, 16, 2, 2), ))
    with pytest.raises(ValueError, match=r'gt_label must lie in \[0, 3\).*\[0, 5\]'):
        head.loss((torch.zeros(2, 8, 2, 2), ), [BaseDataElement(gt_label=torch.tensor([i])) for i in (0, 5)])
    with pytest.raises(ValueError, match='dropout'):
        MODELS.build(dict(type='ZFClsHead', num_classes=3, dropout=1.0))


def test_zf_head_pools_to_6x6_and_has_fc6_fc7_of_4096():
    head = MODELS.build(dict(type='ZFClsHead', num_classes=NUM_CLASSES))
    assert (head.fc6.in_features, head.fc6.out_features) == (256 * 6 * 6, 4096)
    assert (head.fc7.in_features, head.fc7.out_features) == (4096, 4096)
    head.eval()
    x = torch.randn(2, 256, 14, 14)
    pooled = torch.nn.functional.adaptive_max_pool2d(x, 6).flatten(1)
    expected = head.fc8(torch.relu(head.fc7(torch.relu(head.fc6(pooled)))))
    assert torch.allclose(head((x, )), expected, atol=1e-5)


@pytest.mark.parametrize('conv_type', ['SFConv', 'PowConv', 'HPowConv', 'SFPowConv'])
@pytest.mark.parametrize('backbone_type', ['QuantResNet', 'ResNet'])
def test_quantized_convs_get_the_init_of_the_convs_they_replace(conv_type, backbone_type):
    """Kaiming (fan_out, normal) like the baseline's convs, not PyTorch's default init, both when QuantResNet swaps
    them in and when mmdet's own ResNet builds them from conv_cfg: mmengine's layer='Conv2d' matching sees direct
    base classes only."""
    torch.manual_seed(0)
    if backbone_type == 'QuantResNet':
        cfg = dict(type='QuantResNet', depth=18, quant=dict(conv_cfg=dict(type=conv_type)))
    else:
        cfg = dict(type='ResNet', depth=18, conv_cfg=dict(type=conv_type))
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    conv = backbone.layer4[0].conv2
    assert type(conv).__name__ == conv_type
    kaiming_std = (2 / (512 * 3 * 3))**0.5  # 0.0208; PyTorch's default init has std 0.0085
    assert abs(float(conv.weight.std()) - kaiming_std) < 0.05 * kaiming_std


def test_quant_resnet_keeps_frozen_stages_frozen_and_checks_its_options():
    backbone = MODELS.build(dict(type='QuantResNet', depth=18, frozen_stages=1,
                                 quant=dict(conv_cfg=dict(type='PowConv'))))
    assert type(backbone.layer1[0].conv1).__name__ == 'PowConv'
    assert not any(p.requires_grad for p in backbone.layer1.parameters())
    assert not any(p.requires_grad for p in backbone.conv1.parameters())
    assert all(p.requires_grad for p in backbone.layer2.parameters())
    with pytest.raises(ValueError, match=r"unknown quant keys \['layers'\]"):
        MODELS.build(dict(type='QuantResNet', depth=18, quant=dict(conv_cfg=dict(type='PowConv'), layers=('a', ))))
    with pytest.raises(ValueError, match='conv_cfg'):
        MODELS.build(dict(type='QuantResNet', depth=18, quant=dict(kernel_size=3)))


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet_e2e'))
    make_imagenet_dataset(root, num_train_per_class=2, num_val_per_class=1, image_size=72, seed=0)
    return root


def tiny_run_options(root):
    """--cfg-options of a tiny run: 8 training images (2 iterations of 4), 32 px crops, 6 validation images."""
    opts = ['model.head.num_classes=6', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=4',
            'train_dataloader.dataset.indices=8', 'train_dataloader.dataset.pipeline.1.scale=32',
            'default_hooks.logger.interval=1', 'default_hooks.checkpoint.save_optimizer=False',
            'default_hooks.checkpoint.save_best=None']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.batch_size=4', f'{loader}.dataset.pipeline.1.scale=32',
                 f'{loader}.dataset.pipeline.2.crop_size=32']
    return opts


@pytest.mark.parametrize('config,extra', [
    ('zf_pow1_imagenet.py', ['model.head.hidden_channels=256']),  # small fc6/fc7: a small checkpoint
    ('resnet18_hpow_imagenet.py', []),
    ('resnet50_sfpow_imagenet.py', []),
])
def test_train_and_test_tools_end_to_end(config, extra, imagenet_root, tmp_path, load_tool):
    train_tool, test_tool = load_tool('train'), load_tool('test')
    work_dir = str(tmp_path / 'work')
    options = tiny_run_options(imagenet_root) + extra
    train_tool.main([osp.join(PRETRAIN, config), '--work-dir', work_dir, '--cfg-options'] + options)

    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    quant_keys = [k for k in state if k.startswith('backbone.') and ('alpha' in k or 'hyper' in k)]
    assert quant_keys  # the quantizers' parameters are trained and saved
    # auto_scale_lr: lr = base lr * (1 GPU x 4 images) / 256, logged per iteration
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(line) for line in open(scalars[0])]
    train_lrs = {round(r['lr'], 10) for r in logged if 'lr' in r}
    base_lr = 0.01 if config.startswith('zf') else 0.1
    assert train_lrs == {round(base_lr * 4 / 256, 10)}
    assert sum('loss_cls' in r for r in logged) == 2  # 2 iterations
    assert any('accuracy/top1' in r for r in logged)  # validated at the end of the epoch

    preds_file = str(tmp_path / 'preds.pkl')
    metrics = test_tool.main([osp.join(PRETRAIN, config), checkpoint, '--work-dir', work_dir, '--out', preds_file,
                              '--cfg-options'] + options)
    assert set(metrics) == {'accuracy/top1', 'accuracy/top5'}
    with open(preds_file, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == NUM_CLASSES  # one validation image per class
    top1 = 100 * sum(int(p['pred_score'].argmax()) == int(p['gt_label'][0]) for p in preds) / len(preds)
    assert metrics['accuracy/top1'] == pytest.approx(top1)
    top5 = 100 * sum(int(p['gt_label'][0]) in p['pred_score'].topk(5).indices.tolist() for p in preds) / len(preds)
    assert metrics['accuracy/top5'] == pytest.approx(top5)
