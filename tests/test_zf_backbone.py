"""ZF backbone, its within-channel LRN, the dropout box head, and where the quantizing convs sit in the configs."""
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

import featquant_mmdet  # noqa: F401  (registers the plugin)
from featquant_mmdet.layers.lrn import WithinChannelLRN, within_channel_lrn
from featquant_mmdet.models.backbones.zf import ZF
from featquant_mmdet.models.heads.dropout_bbox_head import DropoutShared2FCBBoxHead

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
QUANT_CONV_TYPES = ('SFConv', 'PowConv', 'HPowConv', 'SFPowConv')


def caffe_within_channel_lrn_loop(x, local_size, alpha, beta):
    """Caffe's WITHIN_CHANNEL LRN written out element by element (windows clipped at the border, alpha / n^2)."""
    out = torch.empty_like(x)
    half = local_size // 2
    n, c, h, w = x.shape
    for b in range(n):
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    window = x[b, ch, max(i - half, 0):i + half + 1, max(j - half, 0):j + half + 1]
                    scale = 1 + alpha / local_size**2 * (window**2).sum()
                    out[b, ch, i, j] = x[b, ch, i, j] / scale**beta
    return out


@pytest.mark.parametrize('local_size, alpha, beta', [(3, 5e-5, 0.75), (5, 1e-3, 0.5)])
def test_within_channel_lrn_matches_caffe_formula(local_size, alpha, beta):
    torch.manual_seed(0)
    # magnitudes of raw conv1 outputs on 0..255 images, so that the normaliser is far from 1
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64) * 300
    expected = caffe_within_channel_lrn_loop(x, local_size, alpha, beta)
    assert (expected / x).min() < 0.8  # the test exercises the normaliser, not the identity
    torch.testing.assert_close(within_channel_lrn(x, local_size, alpha, beta), expected)
    torch.testing.assert_close(WithinChannelLRN(local_size, alpha, beta)(x), expected)
    # PyTorch's LRN normalises across channels: a different function
    assert not torch.allclose(nn.LocalResponseNorm(local_size, alpha, beta)(x), expected)


def test_within_channel_lrn_rejects_even_window():
    with pytest.raises(ValueError, match='odd'):
        WithinChannelLRN(local_size=4)


def test_zf_output_shapes_at_py_faster_rcnn_scale():
    with torch.device('meta'):  # shapes only: the meta device computes nothing
        zf = ZF(out_indices=(0, 1, 2, 3, 4))
    outs = zf(torch.empty(1, 3, 600, 1000, device='meta'))
    # Caffe shape arithmetic: conv1 300x500 -> pool1 (ceil) 151x251 -> conv2 76x126 -> pool2 (ceil) 39x64
    assert [tuple(o.shape) for o in outs] == [(1, 96, 151, 251), (1, 256, 39, 64), (1, 384, 39, 64),
                                              (1, 384, 39, 64), (1, 256, 39, 64)]
    assert zf.out_channels == (96, 256, 384, 384, 256)
    assert ZF().out_channels == (256, )


def test_zf_total_stride_is_16():
    """Shifting the image by 16 px shifts conv5's map by exactly one cell (and by 8 px, not)."""
    zf = ZF()
    zf.init_weights()
    zf.eval()
    x = torch.zeros(1, 3, 192, 192)
    x[..., 48:112, 48:112] = torch.rand(1, 3, 64, 64) * 255  # content away from the borders
    with torch.no_grad():
        base = zf(x)[0]
        shifted16 = zf(torch.roll(x, shifts=(16, 16), dims=(2, 3)))[0]
        shifted8 = zf(torch.roll(x, shifts=(8, 8), dims=(2, 3)))[0]
    torch.testing.assert_close(shifted16[..., 1:, 1:], base[..., :-1, :-1], rtol=1e-4, atol=1e-3)
    assert not torch.allclose(shifted8[..., 1:, 1:], base[..., :-1, :-1], rtol=1e-4, atol=1e-3)


def test_zf_frozen_stages_and_default_init():
    zf = ZF(frozen_stages=2)
    zf.init_weights()
    zf.train()
    assert not any(p.requires_grad for m in (zf.conv1, zf.conv2) for p in m.parameters())
    assert all(p.requires_grad for m in (zf.conv3, zf.conv4, zf.conv5) for p in m.parameters())
    assert not zf.conv1.training and zf.conv3.training
    # Kaiming fan-out: std = sqrt(2 / (out_channels * k * k))
    assert zf.conv3.weight.std().item() == pytest.approx((2 / (384 * 9))**0.5, rel=0.05)
    assert torch.count_nonzero(zf.conv3.bias) == 0


def test_zf_loads_classifier_backbone_weights(tmp_path):
    torch.manual_seed(1)
    source = ZF()
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 256)  # the classifier's own layers are not the backbone's
    ckpt = tmp_path / 'classifier.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    zf = ZF(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'))
    zf.init_weights()
    for name, value in source.state_dict().items():
        torch.testing.assert_close(zf.state_dict()[name], value)


@pytest.mark.parametrize('quant, error, match', [
    (dict(conv_cfg=dict(type='PowConv'), include=('conv3', 'conv6')), ValueError,
     r"pattern 'conv6' matches no plain nn.Conv2d; the candidates are \[conv1, conv2, conv3, conv4, conv5\]"),
    (dict(conv_cfg=dict(type='PowConv'), include='conv3', exclude='conv3'), ValueError, 'select no conv'),
    (dict(conv_cfg=dict(type='PowConv'), include=('conv3', ), kernel_size=5), ValueError, 'select no conv'),
    (dict(conv_cfg='PowConv', include=('conv3', )), TypeError, "'type'"),
    (dict(include=('conv3', )), ValueError, 'must be a dict with a conv_cfg'),
    (dict(conv_cfg=dict(type='PowConv'), layers=('conv3', )), ValueError,
     r"unknown quant keys \['layers'\].*former quant.layers is quant.include"),
    (dict(conv_cfg=dict(type='NoSuchConv'), include=('conv3', )), KeyError, 'NoSuchConv'),
])
def test_zf_quant_bad_input(quant, error, match):
    with pytest.raises(error, match=match):
        ZF(quant=quant)


def test_zf_quant_converts_the_plain_convs_and_draws_nothing_from_the_global_generator():
    """A seeded ZF-POW-1 has the weights of the seeded plain ZF (what quantizing convs built directly drew, as they
    initialise like nn.Conv2d), the configured initial exponents, and leaves the generator where the plain ZF does."""
    torch.manual_seed(5)
    plain = ZF()
    after_plain = torch.rand(3)
    torch.manual_seed(5)
    pow1 = ZF(quant=dict(conv_cfg=dict(type='PowConv', alpha_init=0.25), include=('conv3', 'conv4', 'conv5')))
    assert torch.equal(torch.rand(3), after_plain)
    quantized = pow1.state_dict()
    for name, value in plain.state_dict().items():
        assert torch.equal(quantized[name], value), name
    for i in (3, 4, 5):
        alpha = getattr(pow1, f'conv{i}').alpha
        assert torch.equal(alpha, torch.full_like(alpha, 0.25))


@pytest.mark.parametrize('bad', [dict(out_indices=(5, )), dict(out_indices=()), dict(frozen_stages=6)])
def test_zf_bad_options(bad):
    with pytest.raises(ValueError, match='ZF'):
        ZF(**bad)


def _quantized_conv_names(model):
    return {name: type(m).__name__ for name, m in model.named_modules() if type(m).__name__ in QUANT_CONV_TYPES}


def test_zf_quant_on_any_subset():
    from featquant_mmdet.layers import quant_conv
    zf = ZF(quant=dict(conv_cfg=dict(type='SFConv', beta=100.0), include=('conv1', 'conv4')))
    assert _quantized_conv_names(zf) == {'conv1': 'SFConv', 'conv4': 'SFConv'}
    assert zf.quantized_convs == ['conv1', 'conv4']
    assert set(_quantized_conv_names(ZF(quant=dict(conv_cfg=dict(type='PowConv'))))) == {  # no include: every conv
        f'conv{i}' for i in range(1, 6)}
    assert _quantized_conv_names(ZF(quant=dict(conv_cfg=dict(type='PowConv'), include='conv[345]',
                                               exclude='conv4'))) == {'conv3': 'PowConv', 'conv5': 'PowConv'}
    assert isinstance(zf.conv1, quant_conv.SFConv) and type(zf.conv2) is nn.Conv2d
    assert zf.conv4.weight.shape == (384, 384, 3, 3) and zf.conv4.padding == (1, 1)
    assert zf.conv1.stride == (2, 2) and zf.conv1.weight.shape == (96, 3, 7, 7)


@pytest.mark.parametrize('config, conv_type', [
    ('faster_rcnn_zf_voc.py', None),
    ('faster_rcnn_zf_pow1_voc.py', 'PowConv'),
    ('faster_rcnn_zf_sf_voc.py', 'SFConv'),
    ('faster_rcnn_zf_hpow_voc.py', 'HPowConv'),
    ('faster_rcnn_zf_sfpow_voc.py', 'SFPowConv'),
])
def test_detector_configs_put_quant_convs_exactly_on_conv3_to_conv5(config, conv_type, mmdet_scope):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert cfg.custom_imports == dict(imports=['featquant_mmdet'], allow_failed_imports=False)
    # the fc6/fc7 of the RoI head are made small here: only the backbone is under test
    cfg.model.roi_head.bbox_head.fc_out_channels = 8
    detector = MODELS.build(cfg.model)
    expected = {} if conv_type is None else {f'backbone.conv{i}': conv_type for i in (3, 4, 5)}
    assert _quantized_conv_names(detector) == expected
    assert type(detector.backbone.conv1) is nn.Conv2d and type(detector.backbone.conv2) is nn.Conv2d


def test_detector_heads_follow_py_faster_rcnn(mmdet_scope):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'))
    detector = MODELS.build(cfg.model)
    params = dict(detector.named_parameters())
    assert params['roi_head.bbox_head.shared_fcs.0.weight'].shape == (4096, 256 * 6 * 6)  # fc6
    assert params['roi_head.bbox_head.shared_fcs.1.weight'].shape == (4096, 4096)  # fc7
    assert params['rpn_head.rpn_conv.weight'].shape == (256, 256, 3, 3)
    assert detector.rpn_head.prior_generator.num_base_priors == [9]
    assert detector.roi_head.bbox_head.dropout.p == 0.5
    assert not detector.with_neck


def test_dropout_head_drops_in_training_only():
    torch.manual_seed(0)
    head = DropoutShared2FCBBoxHead(dropout_ratio=0.5, in_channels=4, fc_out_channels=16, roi_feat_size=2,
                                    num_classes=3)
    head.init_weights()
    x = torch.rand(5, 4, 2, 2)
    head.eval()
    cls_eval, reg_eval = head(x)
    fc7 = torch.relu(head.shared_fcs[1](torch.relu(head.shared_fcs[0](x.flatten(1)))))
    torch.testing.assert_close(cls_eval, head.fc_cls(fc7))
    torch.testing.assert_close(reg_eval, head.fc_reg(fc7))
    head.train()
    assert not torch.allclose(head(x)[0], cls_eval)
    with pytest.raises(ValueError, match='dropout_ratio'):
        DropoutShared2FCBBoxHead(dropout_ratio=1.0, in_channels=4, fc_out_channels=16, roi_feat_size=2)


def caffe_roi_pool_loop(feat, rois, size, scale):
    """Caffe's ROIPoolingLayer::Forward_cpu, written out."""
    out = torch.zeros(len(rois), feat.shape[1], size, size)
    height, width = feat.shape[2:]
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        # C's round(): halves away from zero (Python's round() goes to even)
        sx, sy, ex, ey = (int(math.copysign(math.floor(abs(v * scale) + 0.5), v)) for v in (x1, y1, x2, y2))
        bin_h, bin_w = max(ey - sy + 1, 1) / size, max(ex - sx + 1, 1) / size
        for ph in range(size):
            for pw in range(size):
                h0 = min(max(int(math.floor(ph * bin_h)) + sy, 0), height)
                h1 = min(max(int(math.ceil((ph + 1) * bin_h)) + sy, 0), height)
                w0 = min(max(int(math.floor(pw * bin_w)) + sx, 0), width)
                w1 = min(max(int(math.ceil((pw + 1) * bin_w)) + sx, 0), width)
                if h1 > h0 and w1 > w0:
                    out[k, :, ph, pw] = feat[int(b), :, h0:h1, w0:w1].amax(dim=(1, 2))
    return out


def test_portable_roi_pool_is_caffe_roi_pooling_on_cpu():
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 12, 15)
    rois = torch.tensor([[0, 0, 0, 239, 191], [1, 30.4, 17.0, 100.0, 60.6], [0, 200, 150, 210, 160],
                         [1, -20, -10, 50, 40]])
    extractor = MODELS.build(dict(type='PortableSingleRoIExtractor', roi_layer=dict(type='RoIPool', output_size=6),
                                  out_channels=3, featmap_strides=[16]))
    pooled = extractor((feat, ), rois)
    torch.testing.assert_close(pooled, caffe_roi_pool_loop(feat, rois, 6, 1 / 16))
    # another roi layer type still comes from mmcv.ops
    align = MODELS.build(dict(type='PortableSingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=6),
                              out_channels=3, featmap_strides=[16]))
    assert type(align.roi_layers[0]).__module__.startswith('mmcv.ops')


def test_pow1_detector_starts_from_a_pow1_classifier_checkpoint(tmp_path, mmdet_scope):
    """The documented --cfg-options keys load a classifier's backbone, exponents included, into ZF-POW-1."""
    from mmdet.registry import MODELS
    torch.manual_seed(2)
    classifier_backbone = ZF(quant=dict(conv_cfg=dict(type='PowConv'), include=('conv3', 'conv4', 'conv5')))
    with torch.no_grad():
        classifier_backbone.conv4.alpha.uniform_(-0.5, 0.5)  # trained exponents, not the initial zeros
    state = {f'backbone.{k}': v for k, v in classifier_backbone.state_dict().items()}
    state['head.fc8.weight'] = torch.zeros(5, 4096)
    torch.save({'state_dict': state}, tmp_path / 'zf_pow1_imagenet.pth')

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'faster_rcnn_zf_pow1_voc.py'))
    cfg.merge_from_dict({'model.backbone.init_cfg.type': 'Pretrained',
                         'model.backbone.init_cfg.checkpoint': str(tmp_path / 'zf_pow1_imagenet.pth'),
                         'model.backbone.init_cfg.prefix': 'backbone.',
                         'model.roi_head.bbox_head.fc_out_channels': 8})
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    for name, value in classifier_backbone.state_dict().items():
        torch.testing.assert_close(loaded[name], value, msg=name)
