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
from featquant_mmdet.datasets.transforms.cls_transforms import (PackClsInputs, RandomResizedCrop,
                                                              random_resized_crop_box)
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


def test_unreadable_images_are_named(imagenet_copy):
    broken = osp.join(imagenet_copy, 'train', 'n00000001', 'n00000001_00001.JPEG')
    with open(broken, 'wb') as f:
        f.write(b'this is not a JPEG')
    with pytest.raises(ValueError, match=r'1 of \d+ images .* cannot be read: .*n00000001_00001\.JPEG'):
        ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='train'))
    # the check can be switched off (then LoadImageFromFile fails on that image only)
    dataset = ImageNetDataset(data_root=imagenet_copy, data_prefix=dict(img_path='train'), verify_images=False)
    assert len(dataset) == NUM_TRAIN * len(DEFAULT_CLASSES)


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
