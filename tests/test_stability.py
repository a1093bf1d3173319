"""Stability training baseline (Zheng et al. 2016) for the classifier and the two-stage detector."""
import copy
import glob
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import ImgDataPreprocessor
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

import featquant_mmdet  # noqa: F401
from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
from featquant_mmdet.models.stability import add_input_noise, input_noise_std, stability_divergence
from mmdet.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = osp.join(REPO, 'configs', 'pretrain')
NUM_CLASSES = 6  # make_imagenet_dataset's default classes; top-5 accuracy needs at least 5

pytestmark = pytest.mark.usefixtures('mmdet_scope')


@pytest.fixture
def small_zf_classifier(pretrain_model_cfg):
    """``small_zf_classifier(**stability)``: ZF classifier with a small fc6/fc7 and dropout 0.5 before fc8, as a
    StabilityTrainingClassifier."""

    def build(**stability):
        model_cfg = pretrain_model_cfg('zf_imagenet.py', NUM_CLASSES, type='StabilityTrainingClassifier', **stability)
        model_cfg.head.hidden_channels = 64
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        model.init_weights()
        return model

    return build


def changed_keys(before, after):
    return sorted(k for k in before if not torch.equal(before[k], after[k]))


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------- pure parts
def test_divergence_is_the_kl_of_the_softmaxes():
    clean = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    noisy = torch.tensor([[math.log(3.0), 0.0], [1.0, -2.0]])
    # row 0: KL((1/2, 1/2) || (3/4, 1/4)) = 1/2 ln(4/3); row 1: identical, 0; mean over rows
    assert float(stability_divergence(clean, noisy)) == pytest.approx(0.25 * math.log(4 / 3), rel=1e-6)
    logits = torch.randn(5, 7)
    assert float(stability_divergence(logits, logits.clone())) == 0.0
    assert float(stability_divergence(logits, logits + 0.1 * torch.randn(5, 7))) > 0
    with pytest.raises(ValueError, match='one shape'):
        stability_divergence(torch.zeros(2, 3), torch.zeros(2, 4))


def test_noise_is_sigma_on_the_unit_scale_expressed_in_the_normalised_input_space():
    std = torch.tensor([58.395, 57.12, 57.375])
    normalising = ImgDataPreprocessor(mean=[123.675, 116.28, 103.53], std=std.tolist())
    expected = 0.04 * 255 / std
    torch.testing.assert_close(input_noise_std(normalising, 0.04).flatten(), expected)
    assert float(input_noise_std(ImgDataPreprocessor(), 0.04)) == pytest.approx(0.04 * 255)

    torch.manual_seed(0)
    inputs = torch.zeros(4, 3, 64, 48)
    samples = [BaseDataElement(metainfo=dict(img_shape=(40, 30))) for _ in range(4)]
    noisy = add_input_noise(inputs, input_noise_std(normalising, 0.04), samples)
    inside = noisy[:, :, :40, :30]
    measured = inside.transpose(0, 1).reshape(3, -1).std(dim=1)
    torch.testing.assert_close(measured, expected, rtol=0.03, atol=0)
    assert noisy[:, :, 40:].abs().sum() == 0 and noisy[:, :, :, 30:].abs().sum() == 0  # padding stays clean


# ---------------------------------------------------------------------------------------------- classifier
def test_classifier_stability_loss_is_zero_without_noise_and_positive_with_it(small_zf_classifier, labelled_batch):
    batch = labelled_batch(4, 96, NUM_CLASSES)
    zero = small_zf_classifier(sigma=0.0)
    zero.train()  # dropout active: both branches must share its mask for the term to vanish
    data = zero.data_preprocessor(batch, training=True)
    losses = zero(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_stability'}
    assert losses['loss_stability'].item() == 0.0

    noisy = small_zf_classifier(sigma=0.04)
    noisy.train()
    losses = noisy(**data, mode='loss')
    assert losses['loss_stability'].item() > 0
    assert torch.isfinite(losses['loss_cls'])
    # lambda scales the logged term
    assert noisy.lam == 0.01 and noisy.trainable == ('head.fc8.*', )  # default: the head's last fc


def test_classifier_errors_name_what_is_wrong(pretrain_model_cfg):
    with pytest.raises(ValueError, match=r"trainable pattern 'head.fc9.\*' matches no parameter"):
        MODELS.build(pretrain_model_cfg('resnet18_stability_imagenet.py', NUM_CLASSES, trainable=('head.fc9.*', )))
    with pytest.raises(ValueError, match='non-empty list'):
        MODELS.build(pretrain_model_cfg('resnet18_stability_imagenet.py', NUM_CLASSES, trainable='head.fc.*'))
    with pytest.raises(ValueError, match='sigma'):
        MODELS.build(pretrain_model_cfg('resnet18_stability_imagenet.py', NUM_CLASSES, sigma=-0.1))
    with pytest.raises(ValueError, match='lam'):
        MODELS.build(pretrain_model_cfg('resnet18_stability_imagenet.py', NUM_CLASSES, lam='0.01'))


def test_stability_config_fine_tunes_a_plain_checkpoint_with_the_runner(tmp_path, pretrain_model_cfg, labelled_batch,
                                                                        load_tool):
    """tools/train.py on generated ImageNet data: load_from a plain ResNet-18 checkpoint, 2 iterations; the log
    has loss_stability (and loss = loss_cls + loss_stability), only head.fc changed, and the fine-tuned checkpoint
    loads strictly into the plain classifier."""
    root = str(tmp_path / 'imagenet')
    make_imagenet_dataset(root, num_train_per_class=2, num_val_per_class=1, image_size=64, seed=0)
    torch.manual_seed(0)
    plain = MODELS.build(pretrain_model_cfg('resnet18_imagenet.py', NUM_CLASSES))
    plain.init_weights()
    plain.train()  # a forward pass in train mode gives the BatchNorm layers non-trivial running statistics
    with torch.no_grad():
        plain(**plain.data_preprocessor(labelled_batch(4, 48, NUM_CLASSES)), mode='tensor')
    plain_ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=plain.state_dict(), meta=dict()), plain_ckpt)

    options = [f'model.head.num_classes={NUM_CLASSES}', f'load_from={plain_ckpt}', 'train_cfg.max_epochs=1',
               'auto_scale_lr.enable=False', 'optim_wrapper.optimizer.lr=0.5', 'train_dataloader.batch_size=4',
               'train_dataloader.dataset.indices=8', 'train_dataloader.dataset.pipeline.1.scale=48',
               'default_hooks.logger.interval=1', 'default_hooks.checkpoint.save_optimizer=False']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={root}', f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.pipeline.1.scale=48', f'{loader}.dataset.pipeline.2.crop_size=48']
    work_dir = str(tmp_path / 'work')
    load_tool('train').main([osp.join(PRETRAIN, 'resnet18_stability_imagenet.py'), '--work-dir', work_dir,
                             '--cfg-options'] + options)

    logged = [json.loads(line) for line in open(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[0])]
    train_logs = [r for r in logged if 'loss_stability' in r]
    assert len(train_logs) == 2 and all(r['loss_stability'] > 0 for r in train_logs)
    for r in train_logs:
        assert r['loss'] == pytest.approx(r['loss_cls'] + r['loss_stability'], rel=1e-4)

    tuned = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu', weights_only=False)['state_dict']
    assert set(tuned) == set(plain.state_dict())  # the plain classifier's names: loadable into it
    # frozen: every conv and BatchNorm layer, running statistics included; trained: the last fc
    assert changed_keys(plain.state_dict(), tuned) == ['head.fc.bias', 'head.fc.weight']

    plain.load_state_dict(tuned, strict=True)


# ---------------------------------------------------------------------------------------------- detector
@pytest.fixture(scope='module')
def zf_detector():
    """The detector of configs/faster_rcnn_zf_stability_voc.py, built once; tests take deep copies."""
    return zf_stability_detector()


def zf_stability_detector(**options):
    """The detector of configs/faster_rcnn_zf_stability_voc.py; ``options``: dotted keys under ``model``."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'faster_rcnn_zf_stability_voc.py'))
    cfg.model.roi_head.bbox_head.fc_out_channels = 128  # small fc6/fc7 keep the test fast
    cfg.merge_from_dict({f'model.{key}': value for key, value in options.items()})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def detection_batch(seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, 160, 192), generator=g, dtype=torch.uint8)
    image[:, 40:110, 50:140] = torch.tensor([40, 200, 90], dtype=torch.uint8).view(3, 1, 1)  # an object
    sample = DetDataSample(metainfo=dict(img_shape=(160, 192), ori_shape=(160, 192), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[50.0, 40.0, 140.0, 110.0]]), labels=torch.tensor([3]))
    return dict(inputs=[image], data_samples=[sample])


def test_detector_stability_loss_uses_the_same_rois_zero_without_noise_positive_with_it(zf_detector):
    batch = detection_batch()
    zero = copy.deepcopy(zf_detector)
    zero.sigma = 0.0
    zero.train()  # dropout after fc6/fc7 active: same RoIs and same masks make the term exactly 0
    data = zero.data_preprocessor(batch, training=True)
    losses = zero(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_stability'} <= set(losses)
    assert losses['loss_stability'].item() == 0.0

    noisy = copy.deepcopy(zf_detector)
    assert noisy.sigma == 0.04
    noisy.train()
    assert noisy(**data, mode='loss')['loss_stability'].item() > 0


def test_detector_fine_tuning_changes_only_the_roi_classifier(zf_detector):
    model = copy.deepcopy(zf_detector)
    assert model.trainable_parameters == ['roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias']
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4))
    before = snapshot(model)
    model.train()
    for step in range(2):
        log_vars = model.train_step(detection_batch(step), optim)
    assert float(log_vars['loss_stability']) > 0 and 'loss_cls' in log_vars
    assert changed_keys(before, snapshot(model)) == ['roi_head.bbox_head.fc_cls.bias',
                                                     'roi_head.bbox_head.fc_cls.weight']


def test_detector_without_a_classification_output_is_refused():
    with pytest.raises(ValueError, match='needs a classification output'):
        zf_stability_detector(roi_head=None)
    with pytest.raises(ValueError, match='softmax'):
        zf_stability_detector(**{'roi_head.bbox_head.loss_cls.use_sigmoid': True})
