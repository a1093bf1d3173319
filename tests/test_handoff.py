"""Hand-off from a classifier checkpoint to the detection configs: detectors trained by the Runner from the
classifier checkpoint itself (no conversion), checkpoints of the earlier ZF head names, the optional conversion and
its strict key checks."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

import featquant_mmdet  # noqa: F401
from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
from featquant_mmdet.models.classifiers.handoff import (BBOX_HEAD_PREFIX, StateDictMismatchError,
                                                        bbox_head_init_cfg, check_against_model, check_state_dict,
                                                        classifier_to_detector_state_dict)
from featquant_mmdet.models.heads.cls_heads import rename_legacy_zf_fc_keys
from mmdet.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NUM_CLASSES = 6

pytestmark = pytest.mark.usefixtures('mmdet_scope')


def trained_looking_classifier(model_cfg):
    """A classifier of ``model_cfg`` whose every tensor is distinct from any initialisation (as after training):
    its initial weights, each scaled by 1 + 10% noise and shifted by 1e-3 noise (magnitudes that still train)."""
    model = MODELS.build(model_cfg)
    model.init_weights()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(1 + 0.1 * torch.randn(tensor.shape, generator=g))
                tensor.add_(1e-3 * torch.randn(tensor.shape, generator=g))
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


# ------------------------------------------------------------------------- config-only hand-off, real Runner
IMAGE_SIZE = (192, 160)  # the smallest size at which some 128x128 anchors lie inside the image


class InitialWeights(Hook):
    """Copies the model's state dict when training starts, i.e. after the Runner has initialised the weights."""

    def before_train(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    return make_voc_dataset(str(tmp_path_factory.mktemp('voc')), num_train=2, num_test=1, image_size=IMAGE_SIZE,
                            seed=0)


def train_one_iteration(config, options, voc_root, work_dir):
    """``config`` (a detector config of the repository) trained one iteration by mmengine's Runner, built as
    tools/train.py builds it, with ``options`` as --cfg-options; returns (initial weights, runner)."""
    import argparse

    from featquant_mmdet.engine.cli import load_config
    from featquant_mmdet.engine.loading import build_runner
    scale = IMAGE_SIZE
    cli = {'train_cfg.max_iters': 1, 'train_cfg.val_begin': 2, 'default_hooks.logger.interval': 1,
           'default_hooks.checkpoint.interval': 1, 'default_hooks.checkpoint.save_optimizer': False,
           'train_dataloader.dataset.pipeline.2.scale': scale, 'visualizer.name': f'handoff_{osp.basename(config)}'}
    for split in ('train', 'val', 'test'):
        cli.update({f'{split}_dataloader.dataset.data_root': voc_root, f'{split}_dataloader.num_workers': 0,
                    f'{split}_dataloader.persistent_workers': False})
    cli.update(options)
    args = argparse.Namespace(config=osp.join(REPO, 'configs', config), cfg_options=cli, launcher='none',
                              work_dir=str(work_dir), local_rank=0)
    runner = build_runner(load_config(args))
    initial = InitialWeights()
    runner.register_hook(initial, priority='LOWEST')
    runner.train()
    return initial.state, runner


@pytest.mark.parametrize('classifier_config, detector_config, classifier_options, detector_options, fc_pairs', [
    # ZF-POW-1: backbone and the RoI head's fc6/fc7 from the classifier (small fc6/fc7 keep the files small)
    ('zf_pow1_imagenet.py', 'faster_rcnn_zf_pow1_voc_imagenet_init.py', dict(hidden_channels=64),
     {'model.roi_head.bbox_head.fc_out_channels': 64},
     [(f'head.shared_fcs.{i}.{p}', f'roi_head.bbox_head.shared_fcs.{i}.{p}') for i in (0, 1)
      for p in ('weight', 'bias')]),
    # ResNet-50+POW-1 (FPN): the backbone
    ('resnet50_pow1_imagenet.py', 'faster_rcnn_r50_pow1_voc.py', {}, {}, []),
])
def test_detector_config_trains_from_the_classifier_checkpoint_without_conversion(
        classifier_config, detector_config, classifier_options, detector_options, fc_pairs, tmp_path, voc_root,
        pretrain_model_cfg, one_torch_thread):
    model_cfg = pretrain_model_cfg(classifier_config, NUM_CLASSES)
    model_cfg.head.update(classifier_options)
    classifier = trained_looking_classifier(model_cfg)
    ckpt = str(tmp_path / 'epoch_90.pth')
    save_runner_checkpoint(classifier, ckpt)
    options = dict(detector_options, **{'model.backbone.init_cfg.checkpoint': ckpt})
    if fc_pairs:  # the two places the ZF config documents for another checkpoint
        options['model.roi_head.bbox_head.init_cfg.2.checkpoint'] = ckpt
    initial, runner = train_one_iteration(detector_config, options, voc_root, tmp_path / 'work')

    assert runner.iter == 1  # it trained one iteration
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert 0 < loss < 100, loss
    source = classifier.state_dict()
    pairs = [(k, k) for k in source if k.startswith('backbone.')] + fc_pairs
    assert pairs and all(d in initial for _, d in pairs)
    assert [d for s, d in pairs if not torch.equal(initial[d], source[s])] == []
    assert any('alpha' in s for s, _ in pairs)  # the learned exponents come along
    with open(tmp_path / 'work' / 'last_checkpoint') as f:  # iter_1.pth or epoch_1.pth, by the config's hook
        trained = torch.load(f.read().strip(), map_location='cpu', weights_only=False)['state_dict']
    if fc_pairs:
        # fc_cls / fc_reg keep mmdet's Normal inits (std 0.01 / 0.001), the classifier's fc8 goes nowhere
        assert 0.006 < float(initial['roi_head.bbox_head.fc_cls.weight'].std()) < 0.014
        assert 0.0006 < float(initial['roi_head.bbox_head.fc_reg.weight'].std()) < 0.0014
        moved = 'roi_head.bbox_head.shared_fcs.1.weight'
    else:
        moved = 'backbone.layer4.2.conv3.weight'
    assert not torch.equal(trained[moved], initial[moved])  # and the iteration did train the handed-over layers


def legacy_zf_checkpoint(classifier, path):
    """``classifier``'s checkpoint with the ZF head's fc6/fc7 under their names before the rename."""
    state = {k.replace('head.shared_fcs.0.', 'head.fc6.').replace('head.shared_fcs.1.', 'head.fc7.'): v
             for k, v in classifier.state_dict().items()}
    assert 'head.fc6.weight' in state and not any('shared_fcs' in k for k in state)
    torch.save(dict(meta=dict(epoch=90), state_dict=state), path)


def test_zf_checkpoints_with_the_earlier_head_names_still_load(tmp_path, pretrain_model_cfg):
    """Into a classifier (strictly), into a detector through the config's Pretrained inits, and through the
    checker/converter: the same weights as from a checkpoint with the current names."""
    from mmengine.runner import load_checkpoint
    model_cfg = pretrain_model_cfg('zf_imagenet.py', NUM_CLASSES)
    model_cfg.head.hidden_channels = 64
    classifier = trained_looking_classifier(model_cfg)
    old = str(tmp_path / 'old.pth')
    legacy_zf_checkpoint(classifier, old)
    expected = classifier.state_dict()

    fresh = MODELS.build(model_cfg)
    load_checkpoint(fresh, old, map_location='cpu', strict=True)  # strict: no key left over or missing
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in expected.items())
    assert fresh.head.fc6 is fresh.head.shared_fcs[0]  # the old attribute names remain as aliases

    detector = build_detector('faster_rcnn_zf_voc_imagenet_init.py', {
        'model.roi_head.bbox_head.fc_out_channels': 64,
        'model.backbone.init_cfg.checkpoint': old, 'model.roi_head.bbox_head.init_cfg': bbox_head_init_cfg(old)})
    got = detector.state_dict()
    for i in (0, 1):
        assert torch.equal(got[f'roi_head.bbox_head.shared_fcs.{i}.weight'], expected[f'head.shared_fcs.{i}.weight'])
    assert torch.equal(got['backbone.conv5.weight'], expected['backbone.conv5.weight'])

    converted = classifier_to_detector_state_dict(torch.load(old, weights_only=True)['state_dict'])
    check_against_model(converted, detector)  # the strict check of the conversion tool
    assert sorted({k.rsplit('.', 1)[0] for k in converted if not k.startswith('backbone.')}) == \
        ['roi_head.bbox_head.shared_fcs.0', 'roi_head.bbox_head.shared_fcs.1']


def test_state_dict_with_both_head_names_is_refused():
    state = {'head.fc6.weight': torch.zeros(1), 'head.shared_fcs.0.weight': torch.ones(1)}
    with pytest.raises(KeyError, match=r'both the old name head\.fc6\.\* and the new name head\.shared_fcs\.0\.\*'):
        rename_legacy_zf_fc_keys(state, 'head.')
    state = {'head.fc6.weight': torch.zeros(2), 'head.fc6.bias': torch.zeros(1), 'head.fc8.weight': torch.ones(1)}
    assert rename_legacy_zf_fc_keys(state, 'head.') == ['head.fc6.weight', 'head.fc6.bias']
    assert sorted(state) == ['head.fc8.weight', 'head.shared_fcs.0.bias', 'head.shared_fcs.0.weight']


# ----------------------------------------------------------------------------- the optional conversion
def test_zf_detector_starts_from_the_converted_backbone_and_fc6_fc7(tmp_path, pretrain_model_cfg, load_tool,
                                                                   capsys):
    # fc6/fc7 of 64 instead of 4096 (0.2 GB per checkpoint otherwise): in the classifier, and in the detector
    # configs the tool checks against, children of the repository's configs that change only that width
    model_cfg = pretrain_model_cfg('zf_pow1_imagenet.py', NUM_CLASSES)
    model_cfg.head.hidden_channels = 64
    classifier = trained_looking_classifier(model_cfg)
    configs = tmp_path / 'configs'
    configs.mkdir()
    for name in ('faster_rcnn_zf_pow1_voc.py', 'faster_rcnn_zf_voc.py'):
        (configs / name).write_text(f"_base_ = [{osp.join(REPO, 'configs', name)!r}]\n"
                                    "model = dict(roi_head=dict(bbox_head=dict(fc_out_channels=64)))\n")
    src, dst = str(tmp_path / 'zf_pow1.pth'), str(tmp_path / 'zf_pow1_det.pth')
    save_runner_checkpoint(classifier, src)
    config = 'faster_rcnn_zf_pow1_voc.py'
    narrow = {'model.roi_head.bbox_head.fc_out_channels': 64}
    tool = load_tool('convert_classifier_to_backbone')

    # the check alone: keys and shapes against the detector config, nothing written
    tool.main([src, '--config', str(configs / config)])
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"{src} fits {configs / config}: 13 backbone tensors, handed over "
        "['roi_head.bbox_head.shared_fcs.0', 'roi_head.bbox_head.shared_fcs.1']")
    assert sorted(p.name for p in tmp_path.iterdir()) == ['configs', 'zf_pow1.pth']
    # the plain ZF detector has no POW exponents: the check names them (and nothing else)
    with pytest.raises(SystemExit, match=r'unexpected keys \(3\): backbone.conv3.alpha') as exc:
        tool.main([src, '--config', str(configs / 'faster_rcnn_zf_voc.py')])
    assert 'missing keys' not in str(exc.value) and 'shape mismatches' not in str(exc.value)
    with pytest.raises(SystemExit) as exc:  # neither output nor config: a usage error
        tool.main([src])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        'error: give an output file (dst), a detector config to check against (--config), or both')
    with pytest.raises(SystemExit, match='detector config not found: nope.py'):
        tool.main([src, '--config', 'nope.py'])

    converted = tool.main([src, dst, '--config', str(configs / config)])
    assert sorted({k.rsplit('.', 1)[0] for k in converted if not k.startswith('backbone.')}) == \
        ['roi_head.bbox_head.shared_fcs.0', 'roi_head.bbox_head.shared_fcs.1']

    detector = build_detector(config, {
        **narrow, 'model.backbone.init_cfg': dict(type='Pretrained', checkpoint=dst, prefix='backbone.'),
        'model.roi_head.bbox_head.init_cfg': bbox_head_init_cfg(dst, prefix=BBOX_HEAD_PREFIX),
    })
    source = classifier.state_dict()
    got = detector.state_dict()
    pairs = [(k, k) for k in source if k.startswith('backbone.')]
    pairs += [(f'head.shared_fcs.{i}.{p}', f'roi_head.bbox_head.shared_fcs.{i}.{p}') for i in (0, 1)
              for p in ('weight', 'bias')]
    assert [d for s, d in pairs if not torch.equal(got[d], source[s])] == []
    assert any('alpha' in s for s, _ in pairs)
    # fc_cls / fc_reg keep mmdet's Normal inits (std 0.01 / 0.001)
    assert 0.008 < float(got['roi_head.bbox_head.fc_cls.weight'].std()) < 0.012
    assert 0.0008 < float(got['roi_head.bbox_head.fc_reg.weight'].std()) < 0.0012

    # the one-step alternative: load_from=CONVERTED, i.e. the Runner's non-strict load over the initialised detector
    from mmengine.runner import load_checkpoint
    plain = build_detector(config, narrow)
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
