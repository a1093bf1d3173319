"""ImageNet-format data: the synthetic generator, ImageNetDataset (both layouts, bad input), the classification
transforms and the Accuracy metric."""
import filecmp
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch

import featquant_mmdet  # noqa: F401
from featquant_mmdet.datasets.imagenet import ImageNetDataset
from featquant_mmdet.datasets.synthetic_imagenet import DEFAULT_CLASSES, make_imagenet_dataset
from featquant_mmdet.datasets.synthetic_voc import DEFAULT_CLASSES as VOC_CLASSES
from featquant_mmdet.datasets.transforms.cls_transforms import (IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC,
                                                              PackClsInputs, PCALighting, RandomResizedCrop,
                                                              lighting_shift, pca_lighting, random_resized_crop_box)
from featquant_mmdet.evaluation.accuracy import Accuracy, topk_accuracy

NUM_TRAIN, NUM_VAL, SIZE = 3, 2, 72

# pipelines name mmdet/mmcv transforms, as under a Runner with default_scope='mmdet'
pytestmark = pytest.mark.usefixtures('mmdet_scope')


@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet_dataset(root, num_train_per_class=NUM_TRAIN, num_val_per_class=NUM_VAL, image_size=SIZE, seed=3)
    return root


@pytest.fixture
def imagenet_copy(imagenet_root, tmp_path):
    """A private copy to damage."""
    root = str(tmp_path / 'imagenet')
    shutil.copytree(imagenet_root, root)
    return root


# ---------------------------------------------------------------------------------------------- generator
def test_generator_writes_the_imagenet_layout_with_real_jpegs(imagenet_root):
    wnids = sorted(os.listdir(osp.join(imagenet_root, 'train')))
    assert len(wnids) == len(DEFAULT_CLASSES) >= 6  # enough classes for a meaningful top-5
    assert DEFAULT_CLASSES[:len(VOC_CLASSES)] == tuple(VOC_CLASSES)  # same classes/styles as the synthetic VOC data
    assert sorted(os.listdir(osp.join(imagenet_root, 'val'))) == wnids
    for wnid in wnids:
        files = sorted(os.listdir(osp.join(imagenet_root, 'train', wnid)))
        assert len(files) == NUM_TRAIN and all(f.endswith('.JPEG') for f in files)
        with open(osp.join(imagenet_root, 'train', wnid, files[0]), 'rb') as f:
            assert f.read(2) == b'\xff\xd8'  # a JPEG stream, not a PNG renamed
        img = cv2.imread(osp.join(imagenet_root, 'train', wnid, files[0]))
        assert img.shape == (SIZE, SIZE, 3)
    lines = open(osp.join(imagenet_root, 'val.txt')).read().split()
    pairs = list(zip(lines[::2], map(int, lines[1::2])))
    assert len(pairs) == NUM_VAL * len(wnids)
    assert all(wnids[label] == path.split('/')[0] for path, label in pairs)
    names = [line.split(maxsplit=1) for line in open(osp.join(imagenet_root, 'synset_words.txt')).read().splitlines()]
    assert names == [[w, c] for w, c in zip(wnids, DEFAULT_CLASSES)]


def test_generator_is_deterministic_and_seeded(imagenet_root, tmp_path):
    again, other = str(tmp_path / 'again'), str(tmp_path / 'other')
    make_imagenet_dataset(again, num_train_per_class=NUM_TRAIN, num_val_per_class=NUM_VAL, image_size=SIZE, seed=3)
    make_imagenet_dataset(other, num_train_per_class=NUM_TRAIN, num_val_per_class=NUM_VAL, image_size=SIZE, seed=4)
    rel = osp.join('train', 'n00000001', 'n00000001_00002.JPEG')
    assert filecmp.cmp(osp.join(imagenet_root, rel), osp.join(again, rel), shallow=False)
    assert filecmp.cmp(osp.join(imagenet_root, 'val.txt'), osp.join(again, 'val.txt'), shallow=False)
    assert not filecmp.cmp(osp.join(imagenet_root, rel), osp.join(other, rel), shallow=False)


def test_generator_classes_are_visually_distinct(imagenet_root):
    """The object colour differs between classes: the mean image of a class is closest to its own class mean."""
    means = []
    for wnid in sorted(os.listdir(osp.join(imagenet_root, 'train'))):
        folder = osp.join(imagenet_root, 'train', wnid)
        imgs = [cv2.imread(osp.join(folder, f)).astype(np.float64) for f in sorted(os.listdir(folder))]
        # central region: the object covers it in every image (object side >= 45% of the image)
        means.append([img[SIZE // 3:2 * SIZE // 3, SIZE // 3:2 * SIZE // 3].reshape(-1, 3).mean(0) for img in imgs])
    means = np.asarray(means)  # (classes, images, 3)
    class_means = means.mean(1)
    dists = np.linalg.norm(means[:, :, None, :] - class_means[None, None], axis=-1)  # (classes, images, classes)
    assert (dists.argmin(-1) == np.arange(len(class_means))[:, None]).mean() >= 0.8


def test_generator_refuses_bad_arguments_and_existing_data(imagenet_root, tmp_path):
    with pytest.raises(FileExistsError, match='overwrite=True'):
        make_imagenet_dataset(imagenet_root, num_train_per_class=1, num_val_per_class=1, image_size=64)
    with pytest.raises(ValueError, match='between 1 and 6'):
        make_imagenet_dataset(str(tmp_path / 'a'), classes=[f'c{i}' for i in range(7)])
    with pytest.raises(ValueError, match='distinct'):
        make_imagenet_dataset(str(tmp_path / 'b'), classes=['car', 'car'])
    with pytest.raises(ValueError, match='num_val_per_class'):
        make_imagenet_dataset(str(tmp_path / 'c'), num_val_per_class=0)
    with pytest.raises(ValueError, match='at least 64'):
        make_imagenet_dataset(str(tmp_path / 'd'), image_size=32)


def test_generator_overwrite_replaces_the_dataset(imagenet_copy):
    info = make_imagenet_dataset(imagenet_copy, classes=('bottle', 'car'), num_train_per_class=1,
                                 num_val_per_class=1, image_size=64, overwrite=True)
    assert sorted(os.listdir(osp.join(imagenet_copy, 'train'))) == info['wnids'] == ['n00000000', 'n00000001']
    assert len(os.listdir(osp.join(imagenet_copy, 'train', 'n00000000'))) == 1


# ---------------------------------------------------------------------------------------------- dataset
def test_folder_and_list_forms_give_the_same_labels(imagenet_root):
    train = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='train'))
    val_folders = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='val'))
    val_list = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='val'), ann_file='val.txt')
    wnids = tuple(sorted(os.listdir(osp.join(imagenet_root, 'train'))))
    assert train.metainfo['classes'] == val_folders.metainfo['classes'] == val_list.metainfo['classes'] == wnids
    assert len(train) == NUM_TRAIN * len(wnids) and len(val_list) == NUM_VAL * len(wnids)
    for i in range(len(train)):
        info = train.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == wnids[info['gt_label']]
        assert train.get_cat_ids(i) == [info['gt_label']]
    by_path = lambda ds: sorted((ds.get_data_info(i)['img_path'], ds.get_data_info(i)['gt_label'])  # noqa: E731
                                for i in range(len(ds)))
    assert by_path(val_folders) == by_path(val_list)


def test_dataset_with_pipeline_yields_packed_samples(imagenet_root):
    dataset = ImageNetDataset(
        data_root=imagenet_root, data_prefix=dict(img_path='val'), ann_file='val.txt',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='ResizeShortestEdge', scale=80),
                  dict(type='CenterCrop', crop_size=64), dict(type='PackClsInputs')])
    item = dataset[NUM_VAL]  # first image of class 1
    assert item['inputs'].dtype == torch.uint8 and tuple(item['inputs'].shape) == (3, 64, 64)
    assert item['data_samples'].gt_label.tolist() == [1]
    assert item['data_samples'].img_path.endswith('.JPEG')


def test_class_folders_differing_between_train_and_val_are_named(imagenet_copy):
    shutil.rmtree(osp.join(imagenet_copy, 'val', 'n00000002'))
    os.makedirs(osp.join(imagenet_copy, 'val', 'n09999999'))
    with pytest.raises(ValueError, match=r'missing in .*val: n00000002.*not among the classes: n09999999'):
        ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='val'))


def test_empty_class_folders_are_named(imagenet_copy):
    folder = osp.join(imagenet_copy, 'train', 'n00000004')
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    with open(osp.join(folder, 'notes.txt'), 'w') as f:
        f.write('not an image')
    with pytest.raises(ValueError, match='1 class folders .* hold no image.*n00000004'):
        ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='train'))


def test_image_headers_are_verified_only_with_the_flag(imagenet_copy, monkeypatch):
    """By default no header is decoded (ILSVRC-12: 1.3M files per start and rank); verify_images=True decodes each
    and names the unreadable ones; a missing listed image is an error either way."""
    from featquant_mmdet.datasets import imagenet
    broken = osp.join(imagenet_copy, 'train', 'n00000001', 'n00000001_00001.JPEG')
    with open(broken, 'wb') as f:
        f.write(b'this is not a JPEG')
    decoded = []
    real_check = imagenet.image_header_error
    monkeypatch.setattr(imagenet, 'image_header_error', lambda path: decoded.append(path) or real_check(path))

    dataset = ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='train'))
    assert len(dataset) == NUM_TRAIN * len(DEFAULT_CLASSES) and decoded == []
    with pytest.raises(ValueError, match=r'1 of \d+ images .* cannot be read: .*n00000001_00001\.JPEG'):
        ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='train'), verify_images=True)
    assert len(decoded) == NUM_TRAIN * len(DEFAULT_CLASSES)
    # the cheap check stays: a listed image that is not there
    first = open(osp.join(imagenet_copy, 'val.txt')).readline().split()[0]
    os.remove(osp.join(imagenet_copy, 'val', first))
    with pytest.raises(FileNotFoundError, match=r'1 images listed in .*val\.txt do not exist'):
        ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='val'), ann_file='val.txt')


def test_annotation_list_errors_name_the_bad_entries(imagenet_copy):
    val_txt = osp.join(imagenet_copy, 'val.txt')
    lines = open(val_txt).read().splitlines()
    path0, _ = lines[0].split()

    def dataset_with(text):
        with open(val_txt, 'w') as f:
            f.write(text)
        return ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='val'), ann_file='val.txt')

    with pytest.raises(ValueError, match=rf'disagree .*{path0} labelled 3, but n00000000 is class 0'):
        dataset_with(f'{path0} 3\n' + '\n'.join(lines[1:]))
    with pytest.raises(ValueError, match=r'labels outside \[0, 6\).*: 6'):
        dataset_with(f'{path0} 6\n')
    with pytest.raises(FileNotFoundError, match='do not exist: .*gone.JPEG'):
        dataset_with(f'{lines[1]}\nn00000000/gone.JPEG 0\n')
    with pytest.raises(ValueError, match=r'val.txt:2: expected "<path> <integer label>"'):
        dataset_with(f'{lines[1]}\n{path0} zero\n')
    with pytest.raises(ValueError, match='lists no image'):
        dataset_with('\n')


def test_missing_classes_dir_is_explained(imagenet_copy):
    with pytest.raises(FileNotFoundError, match='classes_dir .*training'):
        ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='val'), classes_dir='trian')


# ---------------------------------------------------------------------------------------------- transforms
def test_random_resized_crop_box_follows_its_ranges():
    rng = np.random.default_rng(0)
    areas, aspects = [], []
    for _ in range(300):
        y, x, h, w = random_resized_crop_box(120, 200, (0.2, 0.6), (0.5, 2.0), rng)
        assert 0 <= y and y + h <= 120 and 0 <= x and x + w <= 200
        areas.append(h * w / (120 * 200))
        aspects.append(w / h)
    # rounding to whole pixels moves the ranges by a pixel at most
    assert 0.19 <= min(areas) and max(areas) <= 0.62 and max(areas) - min(areas) > 0.3
    assert 0.47 <= min(aspects) and max(aspects) <= 2.1
    # the same generator state gives the same boxes
    assert random_resized_crop_box(120, 200, rng=np.random.default_rng(5)) == \
        random_resized_crop_box(120, 200, rng=np.random.default_rng(5))


def test_random_resized_crop_box_falls_back_to_the_clamped_centre_crop():
    # a square of the whole area can never fit a 2:1 image: centred square crop of the full height
    assert random_resized_crop_box(50, 100, (1.0, 1.0), (1.0, 1.0), np.random.default_rng(0)) == (0, 25, 50, 50)
    with pytest.raises(ValueError, match='area range'):
        random_resized_crop_box(50, 100, (0.5, 1.5))
    with pytest.raises(ValueError, match='aspect ratio range'):
        RandomResizedCrop(scale=64, aspect_ratio_range=(2.0, 1.0))


def test_random_resized_crop_and_pack():
    img = np.random.default_rng(1).integers(0, 256, size=(90, 130, 3), dtype=np.uint8)
    np.random.seed(0)
    results = RandomResizedCrop(scale=(48, 32))(dict(img=img, img_path='a.JPEG', gt_label=4))
    assert results['img'].shape == (32, 48, 3) and results['img_shape'] == (32, 48)
    packed = PackClsInputs()(results)
    assert tuple(packed['inputs'].shape) == (3, 32, 48) and packed['inputs'].dtype == torch.uint8
    assert torch.equal(packed['inputs'].permute(1, 2, 0), torch.from_numpy(results['img']))
    assert packed['data_samples'].gt_label.tolist() == [4]
    assert packed['data_samples'].img_path == 'a.JPEG'
    assert 'gt_label' not in PackClsInputs()(dict(img=img))['data_samples']  # unlabelled images pack too
    with pytest.raises(KeyError, match='LoadImageFromFile'):
        PackClsInputs()(dict(gt_label=1))


# ---------------------------------------------------------------------------------------------- metric
# ---------------------------------------------------------------------------------------------- PCA lighting
def test_imagenet_pca_is_an_orthonormal_basis_with_brightness_first():
    vec = np.array(IMAGENET_PCA_EIGVEC)
    np.testing.assert_allclose(vec.T @ vec, np.eye(3), atol=2e-3)  # columns: unit, orthogonal eigenvectors
    assert np.allclose(np.abs(vec[:, 0]), 1 / np.sqrt(3), atol=0.02)  # the largest one moves R, G, B together
    assert list(IMAGENET_PCA_EIGVAL) == sorted(IMAGENET_PCA_EIGVAL, reverse=True)


def test_pca_lighting_adds_one_colour_in_the_image_channel_order():
    img = np.random.default_rng(0).integers(20, 236, (5, 7, 3)).astype(np.float32)
    alpha = (0.1, -0.2, 0.05)
    shift_rgb = np.array(IMAGENET_PCA_EIGVEC) @ (np.array(alpha) * np.array(IMAGENET_PCA_EIGVAL))
    np.testing.assert_allclose(lighting_shift(alpha), shift_rgb)
    np.testing.assert_allclose(pca_lighting(img, alpha, channel_order='rgb') - img,
                               np.broadcast_to(shift_rgb, img.shape), atol=1e-4)
    np.testing.assert_allclose(pca_lighting(img, alpha) - img, np.broadcast_to(shift_rgb[::-1], img.shape),
                               atol=1e-4)  # BGR: the same colour, channels reversed
    # uint8 stays uint8: rounded and clipped
    # alpha = (1, 0, 0): the brightness eigenvector x 55.46 = (-31.47, -32.21, -32.37) in RGB, i.e. BGR reversed
    out = pca_lighting(np.array([[[0, 128, 255]]], np.uint8), (1.0, 0.0, 0.0))
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 96, 224]]]  # 0 - 32.37 -> 0, 95.79 -> 96, 223.53 -> 224
    with pytest.raises(ValueError, match=r'needs an \(H, W, 3\) colour image, got shape \(4, 4\)'):
        pca_lighting(np.zeros((4, 4), np.uint8), alpha)


def test_pca_lighting_transform_matches_mmcv_and_is_deterministic_per_seed():
    import mmcv
    img = np.random.default_rng(1).uniform(0, 255, (6, 8, 3)).astype(np.float32)
    transform = PCALighting(alphastd=0.1)
    np.random.seed(3)
    ours = transform(dict(img=img.copy()))['img']
    # mmcv's adjust_lighting draws the same alphas; for a BGR image it needs the eigenvector rows reversed
    np.random.seed(3)
    theirs = mmcv.adjust_lighting(img.copy(), np.array(IMAGENET_PCA_EIGVAL),
                                  np.array(IMAGENET_PCA_EIGVEC)[::-1].copy(), alphastd=0.1, to_rgb=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.random.seed(3)
    assert np.array_equal(transform(dict(img=img.copy()))['img'], ours)  # same seed, same image
    assert not np.array_equal(transform(dict(img=img.copy()))['img'], ours)  # next draw, another one

    uint8 = np.random.default_rng(2).integers(0, 256, (6, 8, 3)).astype(np.uint8)
    state = np.random.get_state()
    assert PCALighting(alphastd=0.0)(dict(img=uint8.copy()))['img'].tobytes() == uint8.tobytes()  # identity
    assert np.array_equal(np.random.get_state()[1], state[1])  # and no draw
    with pytest.raises(ValueError, match='alphastd must be >= 0, got -0.1'):
        PCALighting(alphastd=-0.1)
    with pytest.raises(ValueError, match=r'3 eigenvalues, a 3x3 eigenvector matrix'):
        PCALighting(eigval=(1.0, 2.0))


def test_pca_lighting_colour_shift_has_the_pca_covariance():
    """Over many draws the per-image shift has mean 0 and covariance alphastd^2 V diag(lambda^2) V^T, and within an
    image every pixel moves by the same colour."""
    np.random.seed(0)
    img = np.full((2, 3, 3), 128.0, np.float32)
    transform = PCALighting(alphastd=0.1, channel_order='rgb')
    shifts = []
    for _ in range(4000):
        out = transform(dict(img=img.copy()))['img'] - img
        assert np.allclose(out, out[0, 0], atol=1e-4)
        shifts.append(out[0, 0])
    shifts = np.array(shifts, np.float64)
    vec, val = np.array(IMAGENET_PCA_EIGVEC), np.array(IMAGENET_PCA_EIGVAL)
    expected = 0.01 * vec @ np.diag(val ** 2) @ vec.T
    std = np.sqrt(np.diag(expected))  # about 3.2 per channel, almost all of it brightness
    assert np.all(np.abs(shifts.mean(0)) < 4 * std / np.sqrt(len(shifts)))
    np.testing.assert_allclose(np.cov(shifts.T), expected, rtol=0.1, atol=0.05 * std.max() ** 2)
    # in PCA coordinates the shift is alpha * lambda: independent, with std 0.1 * lambda
    coords = shifts @ vec
    np.testing.assert_allclose(coords.std(0), 0.1 * val, rtol=0.05)


def test_resnet_pretraining_configs_use_pca_lighting_after_the_flip(repo_root):
    from mmengine.config import Config
    for name in ('resnet18_imagenet.py', 'resnet50_pow1_imagenet.py', 'resnet18_stability_imagenet.py'):
        cfg = Config.fromfile(osp.join(repo_root, 'configs', 'pretrain', name))
        types = [step['type'] for step in cfg.train_dataloader.dataset.pipeline]
        assert types == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'PCALighting', 'PackClsInputs']
        assert cfg.train_dataloader.dataset.pipeline[3]['alphastd'] == 0.1
        assert 'PCALighting' not in [step['type'] for step in cfg.val_dataloader.dataset.pipeline]
    # ZF's pretraining keeps its pipeline (the demo's measured tables were trained with it)
    zf = Config.fromfile(osp.join(repo_root, 'configs', 'pretrain', 'zf_pow1_imagenet.py'))
    assert 'PCALighting' not in [step['type'] for step in zf.train_dataloader.dataset.pipeline]


def test_lighting_pipeline_on_real_files(imagenet_root):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=32),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PCALighting', alphastd=0.1),
                dict(type='PackClsInputs')]
    dataset = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='train'), pipeline=pipeline)
    np.random.seed(5)
    first = dataset[0]['inputs']
    np.random.seed(5)
    assert torch.equal(dataset[0]['inputs'], first) and first.dtype == torch.uint8
    assert tuple(first.shape) == (3, 32, 32)


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.15, 0.05, 0.0],   # label 1: top-1
                           [0.3, 0.1, 0.25, 0.2, 0.1, 0.05],   # label 2: rank 2
                           [0.0, 0.1, 0.2, 0.3, 0.15, 0.25],   # label 0: rank 6
                           [0.5, 0.0, 0.1, 0.1, 0.2, 0.1]])    # label 4: rank 2
    labels = torch.tensor([1, 2, 0, 4])
    assert topk_accuracy(scores, labels, (1, 2, 5)) == {1: 25.0, 2: 75.0, 5: 75.0}
    with pytest.raises(ValueError, match='top-7 accuracy needs at least 7 classes'):
        topk_accuracy(scores, labels, (1, 7))
    with pytest.raises(ValueError, match='topk must be positive'):
        Accuracy(topk=(0, 5))


def test_accuracy_metric_keys_through_mmengine_evaluator():
    from mmengine.evaluator import Evaluator
    from mmengine.structures import BaseDataElement
    evaluator = Evaluator(dict(type='Accuracy', topk=(1, 5)))
    rng = torch.Generator().manual_seed(0)
    samples = []
    for label in range(8):
        score = torch.rand(6, generator=rng)
        score[label % 6] = 2.0 if label < 6 else -1.0  # 6 hits at top-1; the last two are last-ranked
        sample = BaseDataElement(gt_label=torch.tensor([label % 6]), pred_score=score.softmax(0))
        samples.append(sample)
    evaluator.process(samples)
    metrics = evaluator.evaluate(8)
    assert metrics == {'accuracy/top1': 75.0, 'accuracy/top5': 75.0}
    with pytest.raises(KeyError, match="lacks \\['pred_score'\\]"):
        evaluator.process([BaseDataElement(gt_label=torch.tensor([0]))])


# ---------------------------------------------------------------------------------------------- layouts users have
def move_val_flat(root):
    """ILSVRC-12's val/: the images directly in val/, val.txt lines "<file> <label>"; returns those lines."""
    lines = []
    for line in open(osp.join(root, 'val.txt')).read().splitlines():
        path, label = line.split()
        shutil.move(osp.join(root, 'val', path), osp.join(root, 'val', osp.basename(path)))
        lines.append(f'{osp.basename(path)} {label}')
    for wnid in os.listdir(osp.join(root, 'val')):
        if osp.isdir(osp.join(root, 'val', wnid)):
            os.rmdir(osp.join(root, 'val', wnid))
    return lines


def make_layout(src, root, layout):
    """A copy of the generated dataset in one of the layouts users have."""
    shutil.copytree(src, root)
    if layout == 'ilsvrc':  # flat val/ + val.txt
        lines = move_val_flat(root)
        with open(osp.join(root, 'val.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    elif layout == 'torchvision':  # val/<wnid>/, no list
        os.remove(osp.join(root, 'val.txt'))
    elif layout == 'mmpretrain':  # meta/train.txt + meta/val.txt, flat val/
        lines = move_val_flat(root)
        os.remove(osp.join(root, 'val.txt'))
        os.makedirs(osp.join(root, 'meta'))
        wnids = sorted(os.listdir(osp.join(root, 'train')))
        train = [f'{w}/{f} {i}' for i, w in enumerate(wnids) for f in sorted(os.listdir(osp.join(root, 'train', w)))]
        with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
            f.write('\n'.join(train) + '\n')
        with open(osp.join(root, 'meta', 'val.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


def config_dataset(root, loader, backend=None):
    """The dataset of ``loader`` of the ResNet pretraining config, on ``root`` (and another decode backend)."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'pretrain',
                                   'resnet18_imagenet.py'))
    dataset = cfg[loader].dataset
    dataset.data_root = root
    if backend is not None:
        dataset.pipeline[0]['imdecode_backend'] = backend
    return DATASETS.build(dataset)


@pytest.mark.parametrize('layout, train_layout, val_layout', [
    ('ilsvrc', 'class folders', 'ILSVRC-12 list'),
    ('torchvision', 'class folders', 'class folders'),
    ('mmpretrain', 'mmpretrain list', 'mmpretrain list')])
def test_the_configs_find_each_layout_without_options(imagenet_root, tmp_path, layout, train_layout, val_layout):
    """The pretraining configs as they are (ann_file='auto') read ILSVRC-12's flat val/ + val.txt, torchvision's
    val/<wnid>/ and mmpretrain's meta/{train,val}.txt, with the same image -> label pairs as the generator wrote."""
    root = make_layout(imagenet_root, str(tmp_path / layout), layout)
    truth = {osp.basename(p): int(label) for p, label in
             (line.split() for line in open(osp.join(imagenet_root, 'val.txt')).read().splitlines())}
    wnids = tuple(sorted(os.listdir(osp.join(root, 'train'))))
    train, val = config_dataset(root, 'train_dataloader'), config_dataset(root, 'val_dataloader')
    assert (train.layout, val.layout) == (train_layout, val_layout)
    assert train.metainfo['classes'] == val.metainfo['classes'] == wnids
    pairs = {osp.basename(val.get_data_info(i)['img_path']): val.get_data_info(i)['gt_label'] for i in range(len(val))}
    assert pairs == truth
    assert len(train) == NUM_TRAIN * len(wnids)
    for i in range(len(train)):
        info = train.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == wnids[info['gt_label']]
    item = val[0]  # the pipeline reads the files where the layout put them
    assert item['data_samples'].gt_label.tolist() == [truth[osp.basename(item['data_samples'].img_path)]]


def test_no_layout_is_an_error_naming_the_three_tried(imagenet_root, tmp_path):
    from featquant_mmdet.datasets.imagenet import find_split_layout
    root = make_layout(imagenet_root, str(tmp_path / 'flat'), 'ilsvrc')
    os.remove(osp.join(root, 'val.txt'))  # a flat val/ without its list
    with pytest.raises(FileNotFoundError) as exc:
        config_dataset(root, 'val_dataloader')
    message = str(exc.value)
    for tried in (osp.join(root, 'val.txt'), osp.join(root, 'meta', 'val.txt'), osp.join(root, 'val', '<wnid>')):
        assert tried in message
    assert f'{NUM_VAL * len(DEFAULT_CLASSES)} image files (a flat folder needs a list' in message
    assert 'ann_file=PATH' in message
    shutil.rmtree(osp.join(root, 'val'))
    with pytest.raises(FileNotFoundError, match=r"split 'val' .*val does not exist"):
        find_split_layout(root, 'val')


def test_explicit_ann_file_and_class_folders_still_win(imagenet_root):
    """ann_file='' reads class folders and a named list is read even where another layout exists."""
    folders = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='val'), ann_file='')
    listed = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='val'), ann_file='val.txt')
    auto = ImageNetDataset(data_root=imagenet_root, data_prefix=dict(img_path='val'), ann_file='auto')
    assert (folders.layout, listed.layout, auto.layout) == ('class folders', 'list', 'ILSVRC-12 list')
    assert osp.basename(auto.ann_file) == 'val.txt' and folders.ann_file == ''
    assert len(folders) == len(listed) == len(auto)


def test_demo_root_check_accepts_every_layout(imagenet_root, tmp_path):
    from featquant_mmdet.datasets.layouts import check_imagenet_root
    for layout in ('ilsvrc', 'torchvision', 'mmpretrain'):
        root = make_layout(imagenet_root, str(tmp_path / layout), layout)
        assert check_imagenet_root(root) == osp.abspath(root)
    os.remove(osp.join(tmp_path, 'ilsvrc', 'val.txt'))
    with pytest.raises(FileNotFoundError, match='a flat folder needs a list'):
        check_imagenet_root(str(tmp_path / 'ilsvrc'))


# ---------------------------------------------------------------------------------------------- decode backends
def _turbojpeg_available():
    try:
        import turbojpeg
        turbojpeg.TurboJPEG()
    except Exception:  # not installed, or the library it loads is missing
        return False
    return True


@pytest.mark.parametrize('backend', [
    'pillow', pytest.param('turbojpeg', marks=pytest.mark.skipif(not _turbojpeg_available(),
                                                                 reason='PyTurboJPEG not installed'))])
def test_decode_backends_give_cv2s_images_through_the_config(imagenet_root, backend):
    """imdecode_backend (the documented option; cv2 is the default and the reference): the same BGR pixels as cv2
    within the rounding of another JPEG decoder, directly and through the config's pipelines."""
    from mmcv.transforms import LoadImageFromFile
    path = osp.join(imagenet_root, 'train', 'n00000002', 'n00000002_00000.JPEG')
    raw = cv2.imread(path).astype(np.int32)
    img = LoadImageFromFile(imdecode_backend=backend)(dict(img_path=path))['img'].astype(np.int32)
    assert img.shape == raw.shape == (SIZE, SIZE, 3)
    diff = np.abs(img - raw).mean()
    assert diff < 1.5 and np.abs(img - raw[..., ::-1]).mean() > 5 * diff  # BGR, as cv2's
    # the config's pipelines with the backend set: the same images, the same random crops for the same seed
    reference = config_dataset(imagenet_root, 'val_dataloader', 'cv2')
    other = config_dataset(imagenet_root, 'val_dataloader', backend)
    assert other.pipeline.transforms[0].imdecode_backend == backend
    for i in (0, len(reference) - 1):
        a, b = reference[i]['inputs'].int(), other[i]['inputs'].int()
        assert a.shape == b.shape == (3, 256, 256) and (a - b).abs().float().mean() < 1.5
    train_a = config_dataset(imagenet_root, 'train_dataloader', 'cv2')
    train_b = config_dataset(imagenet_root, 'train_dataloader', backend)
    np.random.seed(0)
    a = train_a[1]['inputs'].int()
    np.random.seed(0)
    b = train_b[1]['inputs'].int()
    assert a.shape == b.shape == (3, 224, 224) and (a - b).abs().float().mean() < 2.0


def test_pipeline_benchmark_refuses_bad_arguments_in_one_line(repo_root, capsys, monkeypatch):
    import importlib.util
    for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):  # the module sets them: restored after
        monkeypatch.setenv(var, os.environ.get(var, '1'))  # records the value (or its absence) to restore
    spec = importlib.util.spec_from_file_location(
        'bench_imagenet_pipeline', osp.join(repo_root, 'benchmarks', 'bench_imagenet_pipeline.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for argv, message in ((['--num-images', '3'], '--num-images must be >= 6'), (['--size', '500', '32'], '--size'),
                          (['--repeats', '0'], '--repeats must be >= 1')):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err.splitlines()[-1]
