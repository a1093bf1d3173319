"""Distort / RandomDistort transforms, their determinism, targeted occlusion with a classifier, test-time injection,
and the gallery tool; on real photographs from skimage.data written as JPEG files."""
import copy
import hashlib
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.model import BaseModel
from mmengine.config import Config

import featquant_mmdet  # noqa: F401  (registers the transforms)
from featquant_mmdet.distortions import levels as L
from featquant_mmdet.distortions.inject import inject_distortion
from featquant_mmdet.distortions.occlusion import GradientSaliency
from featquant_mmdet.distortions.transforms import Distort, RandomDistort, image_identity, image_rng
from mmdet.registry import MODELS, TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Pipelines are built in mmdet's scope, as the Runner does with default_scope='mmdet'."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):  # restores the previous scopes afterwards
        yield


def _digest(img):
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()


@pytest.fixture(scope='module')
def photo_files(tmp_path_factory):
    """Four real photographs as JPEG files (128 px wide), and the same files under a second data root."""
    root = tmp_path_factory.mktemp('photos')
    paths, moved = [], []
    for name, img in L.calibration_images(128).items():
        if name == 'grace_hopper':
            continue
        for base, out in ((root / 'a' / 'JPEGImages', paths), (root / 'b' / 'JPEGImages', moved)):
            base.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(base / f'{name}.jpg'), img)
            out.append(str(base / f'{name}.jpg'))
    return paths, moved


def _load(path):
    return Compose([dict(type='LoadImageFromFile')])(dict(img_path=path))


# ------------------------------------------------------------------------------------------------------- Distort
def test_distort_is_registered_and_records_what_it_applied(photo_files):
    path = photo_files[0][0]
    results = _load(path)
    clean = results['img'].copy()
    boxes = np.array([[10, 10, 60, 50]], np.float32)
    results['gt_bboxes'] = boxes.copy()
    out = TRANSFORMS.build(dict(type='Distort', name='motion_blur', level=3, seed=5))(results)
    assert out['img'].shape == clean.shape and out['img'].dtype == np.uint8
    assert out['img_shape'] == clean.shape[:2]
    assert not np.array_equal(out['img'], clean)
    np.testing.assert_array_equal(out['gt_bboxes'], boxes)
    assert out['distortion'] == dict(name='motion_blur', level=3, seed=5)
    # exactly the functional result with the image's generator
    rng = image_rng(5, image_identity(dict(img_path=path)), 'motion_blur', 3)
    np.testing.assert_array_equal(out['img'], L.apply_distortion(clean, 'motion_blur', 3, rng))
    # a second distortion is appended to the record
    out = Distort('mix_heavy')(out)
    assert out['distortion'] == [dict(name='motion_blur', level=3, seed=5), dict(name='mix_heavy', level=1, seed=0)]


def test_level_zero_is_clean_and_recorded(photo_files):
    results = _load(photo_files[0][0])
    clean = results['img'].copy()
    out = Distort('jpeg', level=0)(results)
    np.testing.assert_array_equal(out['img'], clean)
    assert out['distortion'] == dict(name='jpeg', level=0, seed=0)


def test_draws_depend_on_seed_image_name_and_level_only(photo_files):
    paths, moved = photo_files

    def run(path, name='ngrn', level=2, seed=0):
        return Distort(name, level, seed=seed)(_load(path))['img']

    reference = run(paths[0])
    np.testing.assert_array_equal(run(paths[0]), reference)  # same command, same bytes
    np.testing.assert_array_equal(run(moved[0]), reference)  # another data root: same draws
    assert not np.array_equal(run(paths[0], seed=1), reference)
    draws = {(name, level): image_rng(0, 'path:JPEGImages/coffee.jpg', name, level).random()
             for name in ('ngrn', 'jpeg') for level in (1, 2)}
    assert len(set(draws.values())) == 4  # the name and the level are part of the seed
    # the same photo under two file names gets two different draws
    other = _load(paths[0])
    other['img_path'] = osp.join(osp.dirname(paths[0]), 'renamed.jpg')
    assert not np.array_equal(Distort('ngrn', 2)(other)['img'], reference)
    # images without a path fall back to img_id, then to their pixels
    assert image_identity(dict(img_id='000005', img=reference)) == 'id:000005'
    assert image_identity(dict(img=reference)) == image_identity(dict(img=reference.copy()))
    with pytest.raises(ValueError, match='non-negative integer'):
        image_rng(-1, 'x', 'ngrn', 1)


_CHILD = r'''
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
import featquant_mmdet  # noqa
init_default_scope('mmdet')
out = {}
for path in json.loads(sys.argv[2]):
    for name, level in (('motion_blur', 2), ('inpainting', 3), ('mix_heavy', None)):
        r = Compose([dict(type='LoadImageFromFile'), dict(type='Distort', name=name, level=level, seed=11)])(
            dict(img_path=path))
        out[f'{path}|{name}'] = hashlib.sha256(r['img'].tobytes()).hexdigest()
print(json.dumps(out))
'''


def test_byte_identical_across_processes(photo_files):
    paths = photo_files[0][:2]
    here = {}
    for path in paths:
        for name, level in (('motion_blur', 2), ('inpainting', 3), ('mix_heavy', None)):
            here[f'{path}|{name}'] = _digest(Distort(name, level, seed=11)(_load(path))['img'])
    # a different hash seed in the child would change anything that relied on Python's hash()
    env = dict(os.environ, PYTHONHASHSEED='12345')
    child = subprocess.run([sys.executable, '-c', _CHILD, REPO, json.dumps(paths)], capture_output=True, text=True,
                           env=env, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert json.loads(child.stdout.strip().splitlines()[-1]) == here


class _DistortedFiles(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths
        self.pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='Distort', name='mix_heavy', seed=3)])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        results = self.pipeline(dict(img_path=self.paths[index]))
        return results['img_path'], _digest(results['img'])


def _as_list(batch):
    return batch


def test_same_images_with_zero_or_two_workers_in_any_order(photo_files):
    dataset = _DistortedFiles(photo_files[0])
    serial = dict(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0))
    shuffled = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2, shuffle=True,
                                           generator=torch.Generator().manual_seed(1))
    parallel = dict(shuffled)
    assert len(serial) == len(photo_files[0]) and parallel == serial


def test_channel_order_is_respected(photo_files):
    """An RGB image with channel_order='rgb' gets exactly the BGR result, channel-flipped."""
    bgr = _load(photo_files[0][1])
    for name in L.ALL_NAMES:
        if name in L.NEEDS_SALIENCY:
            continue
        level = L.valid_levels(name)[-1]
        rgb = dict(bgr, img=np.ascontiguousarray(bgr['img'][..., ::-1]))
        out_bgr = Distort(name, level)(dict(bgr))['img']
        out_rgb = Distort(name, level, channel_order='rgb')(rgb)['img']
        np.testing.assert_array_equal(out_rgb, out_bgr[..., ::-1])


def test_float_images_from_to_float32_stay_float(photo_files):
    results = Compose([dict(type='LoadImageFromFile', to_float32=True)])(dict(img_path=photo_files[0][0]))
    out = Distort('salt_and_pepper', 2)(dict(results))
    assert out['img'].dtype == np.float32
    np.testing.assert_array_equal(out['img'], Distort('salt_and_pepper', 2)(_load(photo_files[0][0]))['img'])
    with pytest.raises(TypeError, match=r'floats in \[0, 255\]'):
        Distort('jpeg', 1)(dict(results, img=results['img'] / 255 - 0.5))


def test_bad_transform_arguments():
    with pytest.raises(ValueError, match='unknown distortion .*valid names: motion_blur'):
        Distort('fog', 1)
    with pytest.raises(ValueError, match='valid levels: 0, 1, 2, 3, 4'):
        Distort('jpeg', 7)
    with pytest.raises(ValueError, match='needs a level'):
        Distort('jpeg')
    with pytest.raises(ValueError, match='classifier=<config file> and checkpoint'):
        Distort('targeted_occlusion', 2)
    with pytest.raises(ValueError, match='channel_order'):
        Distort('jpeg', 1, channel_order='BGR')
    with pytest.raises(ValueError, match='non-negative integer'):
        Distort('jpeg', 1, seed=-3)


# ---------------------------------------------------------------------------------------------------- RandomDistort
def test_random_distort(photo_files):
    path = photo_files[0][2]
    clean = _load(path)['img']
    never = RandomDistort(prob=0.0)(_load(path))
    assert 'distortion' not in never and np.array_equal(never['img'], clean)
    fixed = RandomDistort(names=('jpeg', 'ngrn', 'mix_minor'), levels=(2, 4), prob=1.0, seed=9)
    first, second = fixed(_load(path)), fixed(_load(path))
    np.testing.assert_array_equal(first['img'], second['img'])
    record = first['distortion']
    assert record['name'] in ('jpeg', 'ngrn', 'mix_minor') and record['seed'] == 9
    assert record['level'] == 1 if record['name'] == 'mix_minor' else record['level'] in (2, 4)
    np.testing.assert_array_equal(first['img'], Distort(record['name'], record['level'], seed=9)(_load(path))['img'])
    # without a seed: numpy's global generator (seeded per worker by mmengine) decides, so epochs differ
    augment = RandomDistort(names=('ngrn', ), levels=(1, 2, 3, 4), prob=1.0)
    np.random.seed(0)
    a = [augment(_load(path))['img'] for _ in range(2)]
    np.random.seed(0)
    b = [augment(_load(path))['img'] for _ in range(2)]
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], a[1])
    with pytest.raises(ValueError, match='needs a classifier'):
        RandomDistort(names=('targeted_occlusion', ))
    with pytest.raises(ValueError, match='levels must be in 1-4'):
        RandomDistort(levels=(0, 5))
    with pytest.raises(ValueError, match=r'prob must be in \[0, 1\]'):
        RandomDistort(prob=1.5)
    with pytest.raises(ValueError, match='unknown distortion'):
        RandomDistort(names=('snow', ))


# ------------------------------------------------------------------------------------------------ targeted occlusion
class RegionClassifier(BaseModel):
    """Logit ``c`` = ``w_c`` . (channel-summed input average-pooled to a 4x4 grid): class ``c`` looks at the cells
    where ``w_c`` is non-zero, so its gradient saliency lives exactly there."""

    def __init__(self, num_classes=2, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.fc = torch.nn.Linear(16, num_classes, bias=False)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        pooled = torch.nn.functional.adaptive_avg_pool2d(inputs.sum(1, keepdim=True), (4, 4)).flatten(1)
        return self.fc(pooled)


@pytest.fixture(scope='module')
def region_classifier(tmp_path_factory):
    """(config file, checkpoint): class 0 looks at grid cell (0, 0), class 1 at cell (3, 2)."""
    MODELS.register_module(name='TestRegionClassifier', module=RegionClassifier, force=True)
    root = tmp_path_factory.mktemp('classifier')
    config = root / 'region_classifier.py'
    config.write_text("model = dict(type='TestRegionClassifier', num_classes=2, data_preprocessor=dict("
                      "type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], "
                      "bgr_to_rgb=True))\n")
    model = RegionClassifier()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.weight[0, 0] = 1.0
        model.fc.weight[1, 3 * 4 + 2] = 1.0
    checkpoint = root / 'region_classifier.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return str(config), str(checkpoint)


def _cell_slices(img, row, col):
    h, w = img.shape[:2]
    return slice(row * h // 4, (row + 1) * h // 4), slice(col * w // 4, (col + 1) * w // 4)


def test_gradient_saliency_follows_the_ground_truth_class(region_classifier, photo_files):
    img = cv2.resize(_load(photo_files[0][1])['img'], (128, 96))
    saliency = GradientSaliency(*region_classifier)
    for label, (row, col) in ((0, (0, 0)), (1, (3, 2))):
        s = saliency(img, label)
        assert s.shape == img.shape[:2] and s.dtype == np.float32
        inside = np.zeros_like(s, bool)
        inside[_cell_slices(img, row, col)] = True
        assert s[inside].min() > 0 and s[~inside].max() == 0


def test_targeted_occlusion_blacks_out_the_evidence_of_the_label(region_classifier, photo_files):
    config, checkpoint = region_classifier
    img = cv2.resize(_load(photo_files[0][1])['img'], (128, 96))
    occlude = Distort('targeted_occlusion', 1, classifier=config, checkpoint=checkpoint)
    for label, (row, col) in ((0, (0, 0)), (1, (3, 2))):
        out = occlude(dict(img=img.copy(), img_path='x/photo.jpg', gt_label=label))
        black = np.all(out['img'] == 0, axis=2) & ~np.all(img == 0, axis=2)
        inside = np.zeros_like(black)
        inside[_cell_slices(img, row, col)] = True
        assert black.sum() > 0.5 * 0.15 ** 2 * img.shape[0] * img.shape[1] and not black[~inside].any()
        assert out['distortion'] == dict(name='targeted_occlusion', level=1, seed=0)
    model = GradientSaliency(config, checkpoint).model
    with torch.no_grad():
        def logit(x, label):
            return model(model.data_preprocessor(dict(inputs=[torch.from_numpy(x).permute(2, 0, 1)]))['inputs'],
                         mode='tensor')[0, label].item()
        occluded = occlude(dict(img=img.copy(), img_path='x/photo.jpg', gt_label=1))['img']
        assert logit(occluded, 1) < logit(img, 1) - 0.2
        assert logit(occluded, 0) == pytest.approx(logit(img, 0), abs=1e-4)
    # stronger levels occlude more
    areas = [np.all(Distort('targeted_occlusion', k, classifier=config, checkpoint=checkpoint)(
        dict(img=img.copy(), img_path='x/photo.jpg', gt_label=1))['img'] == 0, axis=2).sum() for k in (1, 2, 3, 4)]
    assert areas[0] < areas[1] < areas[2] < areas[3]


def test_targeted_occlusion_errors(region_classifier, photo_files):
    config, checkpoint = region_classifier
    occlude = Distort('targeted_occlusion', 1, classifier=config, checkpoint=checkpoint)
    img = _load(photo_files[0][0])['img']
    with pytest.raises(KeyError, match="results\\['gt_label'\\]"):
        occlude(dict(img=img, img_path='x/a.jpg'))
    with pytest.raises(ValueError, match='targets one class'):
        occlude(dict(img=img, img_path='x/a.jpg', gt_label=np.array([0, 1])))
    with pytest.raises(ValueError, match='not a class of the classifier'):
        occlude(dict(img=img, img_path='x/a.jpg', gt_label=5))
    with pytest.raises(ValueError, match='needs a classifier'):
        GradientSaliency(None)
    with pytest.raises(ValueError, match='ground-truth label'):
        GradientSaliency(config, checkpoint)(img, None)


# ------------------------------------------------------------------------------------------------------- injection
def _voc_test_dataloader():
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(200, 100), keep_ratio=True),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                      'scale_factor'))]
    return Config(dict(test_dataloader=dict(batch_size=1, num_workers=0, dataset=dict(
        type='VOCDataset', data_root='data/VOCdevkit/', pipeline=pipeline)))).test_dataloader


def test_inject_puts_distort_right_after_loading_and_runs_end_to_end(photo_files):
    dataloader = _voc_test_dataloader()
    clean_pipeline = copy.deepcopy(dataloader.dataset.pipeline)
    returned = inject_distortion(dataloader, 'mix_heavy', seed=4)
    assert returned is dataloader
    pipeline = dataloader.dataset.pipeline
    assert [s['type'] for s in pipeline] == ['LoadImageFromFile', 'Distort', 'Resize', 'LoadAnnotations',
                                             'PackDetInputs']
    assert pipeline[1] == dict(type='Distort', name='mix_heavy', level=1, seed=4, channel_order='bgr')
    assert pipeline[-1]['meta_keys'][-1] == 'distortion'

    def run(steps):
        results = dict(img_path=photo_files[0][0], img_id='coffee', instances=[
            dict(bbox=[5, 5, 60, 40], bbox_label=0, ignore_flag=0)])
        return Compose(steps)(results)

    distorted, clean = run(pipeline), run(clean_pipeline)
    sample = distorted['data_samples']
    assert sample.metainfo['distortion'] == dict(name='mix_heavy', level=1, seed=4)
    assert sample.metainfo['img_shape'] == clean['data_samples'].metainfo['img_shape']
    torch.testing.assert_close(sample.gt_instances.bboxes.tensor, clean['data_samples'].gt_instances.bboxes.tensor)
    assert not torch.equal(distorted['inputs'], clean['inputs'])


def test_inject_finds_loading_steps_by_type_in_wrapped_datasets():
    def dataset(first_steps):
        return dict(type='VOCDataset', pipeline=first_steps + [dict(type='PackDetInputs')])

    dataloader = dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(type='ConcatDataset', datasets=[
        dataset([dict(type='mmdet.LoadImageFromFile')]),
        dataset([dict(type='LoadAnnotations'), dict(type='LoadImageFromFile', to_float32=True)])])))
    inject_distortion(dataloader, 'jpeg', level=2)
    first, second = (d['pipeline'] for d in dataloader['dataset']['dataset']['datasets'])
    assert [s['type'] for s in first] == ['mmdet.LoadImageFromFile', 'Distort', 'PackDetInputs']
    assert [s['type'] for s in second] == ['LoadAnnotations', 'LoadImageFromFile', 'Distort', 'PackDetInputs']
    assert first[1]['level'] == 2 and 'distortion' in first[2]['meta_keys']  # default meta keys extended


def test_inject_errors():
    with pytest.raises(ValueError, match='no image-loading step .*dataset.pipeline: \\[Resize, PackDetInputs\\]'):
        inject_distortion(dict(dataset=dict(pipeline=[dict(type='Resize'), dict(type='PackDetInputs')])), 'jpeg', 1)
    with pytest.raises(ValueError, match='unknown distortion .*valid names: motion_blur, defocus_blur'):
        inject_distortion(_voc_test_dataloader(), 'gaussian_blur', 1)
    with pytest.raises(ValueError, match='valid levels: 0, 1, 2, 3, 4'):
        inject_distortion(_voc_test_dataloader(), 'jpeg', 9)
    with pytest.raises(ValueError, match='fixed strength'):
        inject_distortion(_voc_test_dataloader(), 'mix_minor', 2)
    with pytest.raises(ValueError, match='dataloader config with a `dataset`'):
        inject_distortion(dict(batch_size=2), 'jpeg', 1)
    with pytest.raises(ValueError, match='classifier=<config file> and checkpoint'):
        inject_distortion(_voc_test_dataloader(), 'targeted_occlusion', 2)
    dataloader = inject_distortion(_voc_test_dataloader(), 'targeted_occlusion', 2, classifier='c.py', checkpoint='w')
    assert dataloader.dataset.pipeline[1]['classifier'] == 'c.py'


# ------------------------------------------------------------------------------------------------------ gallery tool
def test_gallery_tool_draws_every_type_and_level(photo_files, region_classifier, tmp_path, load_tool):
    tool = load_tool('analysis/browse_distortions')
    image = photo_files[0][0]  # 128 x 85
    thumb_h = round(cv2.imread(image).shape[0] * 48 / cv2.imread(image).shape[1])
    out = tmp_path / 'sheet.png'
    assert tool.main([image, '--out', str(out), '--width', '48']) == str(out)
    sheet = cv2.imread(str(out))
    rows = len(L.DISTORTION_NAMES) - 1 + 1  # occlusion left out without a classifier, plus the mixtures' row
    assert sheet.shape == (rows * (thumb_h + tool.CAPTION_PX), 5 * 48, 3)
    config, checkpoint = region_classifier
    tool.main([image, '--out', str(out), '--width', '48', '--names', 'targeted_occlusion', 'jpeg',
               '--saliency-classifier', config, '--saliency-checkpoint', checkpoint, '--label', '1'])
    assert cv2.imread(str(out)).shape[0] == 2 * (thumb_h + tool.CAPTION_PX)
    with pytest.raises(SystemExit, match='unknown distortion'):
        tool.main([image, '--out', str(out), '--names', 'fog'])
    with pytest.raises(SystemExit, match='cannot read image'):
        tool.main([str(tmp_path / 'missing.jpg'), '--out', str(out)])


# ------------------------------------------------------------------------------------ end to end through tools/test.py
# END-TO-END, the slowest test of this file (about half a minute on two idle cores): it trains the ZF Faster R-CNN of
# configs/faster_rcnn_zf_voc.py for two iterations on generated VOC files, then runs tools/test.py clean and with
# --distortion mix_heavy (in process). A two-iteration detector ranks boxes almost at random, so the mAP is taken at
# IoU 0.1, where it is a few percent and the metric's 3 decimals can tell two runs apart; the training is seeded,
# so that the numbers are reproducible. The objects (0.35-0.6 of the short side) need 320x256 images to be near the
# 128 px anchors.
# A ZF Faster R-CNN trained from scratch on generated VOC data, long enough to find the easy objects: 224x192 is about
# the smallest size with anchors inside the image (anchors 128-512 px, allowed_border=0). Measured for these settings
# (16 train / 16 test images, 80 iterations at lr 0.005) over training seeds 0, 1, 2: clean mAP 0.78, 0.58, 0.83 and
# Mix.Heavy 0.51, 0.18, 0.04 lower (the big, flat-coloured objects survive blur and noise better than VOC's). At 40
# iterations one seed's detector was not hurt by Mix.Heavy at all (it had learned little more than the colours).
DETECTOR_IMAGE_SIZE = (224, 192)
DETECTOR_ITERS = 80


def _voc_options(data_root):
    """The --cfg-options configs/faster_rcnn_zf_voc.py documents for another data root, scale and schedule."""
    scale = f'({DETECTOR_IMAGE_SIZE[0]},{DETECTOR_IMAGE_SIZE[1]})'
    options = [f'train_cfg.max_iters={DETECTOR_ITERS}', f'param_scheduler.0.milestones=[{DETECTOR_ITERS * 3 // 4}]',
               f'default_hooks.checkpoint.interval={DETECTOR_ITERS}', 'optim_wrapper.optimizer.lr=0.005',
               'optim_wrapper.clip_grad.max_norm=10.0', 'randomness.seed=0',
               f'train_dataloader.dataset.pipeline.2.scale={scale}',
               f'test_dataloader.dataset.pipeline.1.scale={scale}']
    for split in ('train', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={data_root}', f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    return options + ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


@pytest.fixture(scope='module')
def trained_voc_detector(tmp_path_factory, load_tool):
    """(config, checkpoint, --cfg-options) of a detector trained with tools/train.py (about 2 min of CPU). One torch
    thread while the module's detector trains and is tested: the same floating-point results on any machine (the
    default thread count follows the cores, and the weights depend on it), and no OpenMP barrier waits with two
    test workers on two cores."""
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp('voc_detector')
    root = make_voc_dataset(str(base / 'voc'), num_train=16, num_test=16, image_size=DETECTOR_IMAGE_SIZE, seed=0)
    config = osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py')
    options = _voc_options(root)
    try:
        load_tool('train').main([config, '--work-dir', str(base / 'work'), '--cfg-options', *options])
        yield config, str(base / 'work' / f'iter_{DETECTOR_ITERS}.pth'), options
    finally:
        torch.set_num_threads(threads)


def test_tools_test_distortion_lowers_the_map_of_a_trained_detector(trained_voc_detector, tmp_path, load_tool,
                                                                    capsys):
    config, checkpoint, options = trained_voc_detector
    work_dir = str(tmp_path / 'work')
    test_tool = load_tool('test')
    clean = test_tool.main([config, checkpoint, '--work-dir', work_dir, '--out', str(tmp_path / 'clean.pkl'),
                            '--cfg-options', *options])
    heavy = test_tool.main([config, checkpoint, '--work-dir', work_dir, '--distortion', 'mix_heavy',
                            '--out', str(tmp_path / 'heavy.pkl'), '--cfg-options', *options])
    assert clean['pascal_voc/mAP'] >= 0.4, clean  # the detector learned the objects (untrained: ~0)
    assert heavy['pascal_voc/mAP'] < clean['pascal_voc/mAP'], (clean, heavy)
    # what was applied travels with every prediction
    with open(tmp_path / 'heavy.pkl', 'rb') as f:
        records = [sample['distortion'] for sample in pickle.load(f)]
    assert records == [dict(name='mix_heavy', level=1, seed=0)] * 16
    with open(tmp_path / 'clean.pkl', 'rb') as f:
        assert all('distortion' not in sample for sample in pickle.load(f))
    with pytest.raises(SystemExit) as exit_info:  # a usage error before anything is loaded (exit 2)
        test_tool.main([config, checkpoint, '--work-dir', work_dir, '--distortion', 'jpeg', '--level', '7',
                        '--cfg-options', *options])
    assert exit_info.value.code == 2 and 'valid levels: 0, 1, 2, 3, 4' in capsys.readouterr().err
