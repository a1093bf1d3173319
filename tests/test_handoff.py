"""Hand-off from a classifier checkpoint to the detection configs: conversion, strict key checks, and the detectors
starting from exactly the converted weights (backbone, and for ZF the RoI head's fc6/fc7)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import featquant_mmdet  # noqa: F401
from featquant_mmdet.models.classifiers.handoff import (StateDictMismatchError, bbox_head_init_cfg,
                                                        check_against_model, check_state_dict,
                                                        classifier_to_detector_state_dict)
from mmdet.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NUM_CLASSES = 6

pytestmark = pytest.mark.usefixtures('mmdet_scope')


def trained_looking_classifier(model_cfg):
    """A classifier of ``model_cfg`` whose every tensor is distinct from any initialisation (as after training)."""
    model = MODELS.build(model_cfg)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=g) * 0.1 + 0.05)
    return model


def save_runner_checkpoint(model, path):
    torch.save(dict(meta=dict(epoch=90), state_dict=model.state_dict(), message_hub=dict()), path)


def build_detector(config, options):
    """The detector of ``config`` with ``options`` ({'model.x.y': value}) set, initialised as by the Runner."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    for key, value in options.items():  # assigned, not merged: a None in the config cannot take a merged dict
        *parents, leaf = key.split('.')
        node = cfg
        for name in parents:
            node = node[name]
        node[leaf] = value
    detector = MODELS.build(cfg.model)
    detector.init_weights()  # what the Runner does before training
    return detector


def test_resnet50_pow1_detector_starts_from_the_converted_backbone(tmp_path, pretrain_model_cfg, load_tool):
    classifier = trained_looking_classifier(pretrain_model_cfg('resnet50_pow1_imagenet.py', NUM_CLASSES))
    src, dst = str(tmp_path / 'epoch_90.pth'), str(tmp_path / 'converted' / 'r50_pow1.pth')
    save_runner_checkpoint(classifier, src)
    load_tool('convert_classifier_to_backbone').main(
        [src, dst, '--config', osp.join(REPO, 'configs', 'faster_rcnn_r50_pow1_voc.py')])

    detector = build_detector('faster_rcnn_r50_pow1_voc.py', {'model.backbone.init_cfg.checkpoint': dst})
    expected = {k: v for k, v in classifier.state_dict().items() if k.startswith('backbone.')}
    got = {k: v for k, v in detector.state_dict().items() if k.startswith('backbone.')}
    assert got.keys() == expected.keys()
    assert any('alpha' in k for k in got)  # the learned exponents come along
    different = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert different == []
    # the rest of the detector is initialised as usual, not from the classifier
    assert not any(k.startswith('head.') for k in torch.load(dst, weights_only=True)['state_dict'])


def test_zf_detector_starts_from_the_converted_backbone_and_fc6_fc7(tmp_path, pretrain_model_cfg, load_tool):
    classifier = trained_looking_classifier(pretrain_model_cfg('zf_pow1_imagenet.py', NUM_CLASSES))
    src, dst = str(tmp_path / 'zf_pow1.pth'), str(tmp_path / 'zf_pow1_det.pth')
    save_runner_checkpoint(classifier, src)
    config = 'faster_rcnn_zf_pow1_voc.py'
    converted = load_tool('convert_classifier_to_backbone').main(
        [src, dst, '--config', osp.join(REPO, 'configs', config)])
    assert sorted({k.rsplit('.', 1)[0] for k in converted if not k.startswith('backbone.')}) == \
        ['roi_head.bbox_head.shared_fcs.0', 'roi_head.bbox_head.shared_fcs.1']

    detector = build_detector(config, {
        'model.backbone.init_cfg': dict(type='Pretrained', checkpoint=dst, prefix='backbone.'),
        'model.roi_head.bbox_head.init_cfg': bbox_head_init_cfg(dst),
    })
    source = classifier.state_dict()
    got = detector.state_dict()
    pairs = [(k, k) for k in source if k.startswith('backbone.')]
    pairs += [(f'head.fc{i + 6}.{p}', f'roi_head.bbox_head.shared_fcs.{i}.{p}') for i in (0, 1)
              for p in ('weight', 'bias')]
    assert [d for s, d in pairs if not torch.equal(got[d], source[s])] == []
    assert any('alpha' in s for s, _ in pairs)
    # fc_cls / fc_reg keep mmdet's Normal inits (std 0.01 / 0.001)
    assert 0.008 < float(got['roi_head.bbox_head.fc_cls.weight'].std()) < 0.012
    assert 0.0008 < float(got['roi_head.bbox_head.fc_reg.weight'].std()) < 0.0012

    # the one-step alternative: load_from=CONVERTED, i.e. the Runner's non-strict load over the initialised detector
    from mmengine.runner import load_checkpoint
    plain = build_detector(config, {})
    load_checkpoint(plain, dst, map_location='cpu', strict=False)
    loaded = plain.state_dict()
    assert [d for s, d in pairs if not torch.equal(loaded[d], source[s])] == []


def test_conversion_keeps_backbone_and_renames_only_zf_fcs():
    state = {'backbone.conv1.weight': torch.ones(1), 'head.fc6.weight': torch.ones(2), 'head.fc6.bias': torch.ones(2),
             'head.fc7.weight': torch.ones(3), 'head.fc7.bias': torch.ones(3), 'head.fc8.weight': torch.ones(4)}
    converted = classifier_to_detector_state_dict(state)
    assert list(converted) == ['backbone.conv1.weight', 'roi_head.bbox_head.shared_fcs.0.weight',
                               'roi_head.bbox_head.shared_fcs.0.bias', 'roi_head.bbox_head.shared_fcs.1.weight',
                               'roi_head.bbox_head.shared_fcs.1.bias']
    assert list(classifier_to_detector_state_dict(state, fc_handoff=())) == ['backbone.conv1.weight']
    resnet = {'backbone.conv1.weight': torch.ones(1), 'head.fc.weight': torch.ones(2)}
    assert list(classifier_to_detector_state_dict(resnet)) == ['backbone.conv1.weight']
    with pytest.raises(StateDictMismatchError, match=r'no "head.fc6.\*" parameters .*head.fc.weight'):
        classifier_to_detector_state_dict(resnet, fc_handoff=[('head.fc6.', 'roi_head.bbox_head.shared_fcs.0.')])
    with pytest.raises(StateDictMismatchError, match=r"not a classifier checkpoint.*\['roi_head.'\]"):
        classifier_to_detector_state_dict({'roi_head.x': torch.ones(1)})


def test_mismatched_backbone_lists_missing_unexpected_and_misshaped_keys(tmp_path, pretrain_model_cfg, load_tool):
    # a plain ResNet-18, not ResNet-50+POW-1
    classifier = trained_looking_classifier(pretrain_model_cfg('resnet18_imagenet.py', NUM_CLASSES))
    src = str(tmp_path / 'r18.pth')
    save_runner_checkpoint(classifier, src)
    detector_cfg = osp.join(REPO, 'configs', 'faster_rcnn_r50_pow1_voc.py')
    with pytest.raises(SystemExit) as exc:
        load_tool('convert_classifier_to_backbone').main([src, str(tmp_path / 'out.pth'), '--config', detector_cfg])
    message = str(exc.value)
    assert 'missing keys' in message and 'backbone.layer1.0.conv3.weight' in message  # bottleneck convs
    assert 'backbone.layer1.0.conv2.alpha' in message  # the POW exponents
    assert 'shape mismatches' in message and 'backbone.layer1.0.conv1.weight' in message
    assert not osp.exists(str(tmp_path / 'out.pth'))  # nothing written on a mismatch

    # a classifier checkpoint with no backbone at all, and files that hold no state dict
    convert = load_tool('convert_classifier_to_backbone').main
    torch.save(dict(state_dict={'head.fc.weight': torch.ones(1)}), src)
    with pytest.raises(SystemExit, match='not a classifier checkpoint'):
        convert([src, str(tmp_path / 'out.pth')])
    torch.save([1, 2], src)
    with pytest.raises(SystemExit, match='state dict of tensors, got a list'):
        convert([src, str(tmp_path / 'out.pth')])
    torch.save(dict(state_dict={'backbone.w': torch.ones(1), 'meta': 'x'}), src)
    with pytest.raises(SystemExit, match=r"no tensors: \['meta'\]"):
        convert([src, str(tmp_path / 'out.pth')])
    with pytest.raises(SystemExit, match='checkpoint not found'):
        convert([str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')])


def test_check_state_dict_lists_every_kind_of_mismatch():
    expected = {'a': torch.zeros(2), 'b': torch.zeros(3), 'c': torch.zeros(1)}
    given = {'a': torch.zeros(2), 'b': torch.zeros(4), 'd': torch.zeros(1)}
    with pytest.raises(StateDictMismatchError) as exc:
        check_state_dict(expected, given, 'the test model')
    assert (exc.value.missing, exc.value.unexpected) == (['c'], ['d'])
    assert exc.value.misshaped == ['b: checkpoint (4,), model (3,)']
    assert str(exc.value).splitlines() == ['the test model', '  missing keys (1): c', '  unexpected keys (1): d',
                                           '  shape mismatches (1): b: checkpoint (4,), model (3,)']


def test_check_against_model_requires_the_handed_over_fcs_to_fit():
    detector = build_detector('faster_rcnn_r50_pow1_voc.py', {'model.backbone.init_cfg': None})
    converted = {k: v for k, v in detector.state_dict().items() if k.startswith('backbone.')}
    check_against_model(converted, detector)  # exact match: no error
    # ZF's 4096-d fc6 does not fit the FPN head's 1024-d shared fc
    converted['roi_head.bbox_head.shared_fcs.0.weight'] = torch.zeros(4096, 9216)
    converted['roi_head.bbox_head.shared_fcs.0.bias'] = torch.zeros(4096)
    with pytest.raises(StateDictMismatchError, match=r'shared_fcs.0.weight: checkpoint \(4096, 9216\), model '
                                                     r'\(1024, 12544\)'):
        check_against_model(converted, detector)
