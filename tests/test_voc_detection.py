"""Faster R-CNN + ZF on generated VOC 2007 files: train, resume and test through tools/, and the bad-input errors."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch

import featquant_mmdet  # noqa: F401  (registers the plugin)
from featquant_mmdet.datasets.strict_voc import StrictVOCDataset, VOCDataError
from featquant_mmdet.datasets.synthetic_voc import DEFAULT_CLASSES, OBJECT_STYLES, _paste_object, main as voc_cli
from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMAGE_SIZE = (192, 160)  # smallest size at which some 128x128 anchors lie inside the image (allowed_border=0)


def short_run_options(data_root, max_iters):
    """The --cfg-options the configs document for another data root, a small image scale and a short schedule, and
    fc6/fc7 of 256 instead of 4096: the 4096-d RoI head is nine tenths of the ZF detector's parameters and compute
    (0.5 GB checkpoints with the optimizer state) and plays no part in what these tests check."""
    from featquant_mmdet.engine.study import loader_options, voc_data_options
    return [f'train_cfg.max_iters={max_iters}', f'param_scheduler.0.milestones=[{max_iters}]',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'model.roi_head.bbox_head.fc_out_channels=256',
            *voc_data_options(data_root, IMAGE_SIZE), *loader_options()]


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('voc')
    # one test image: each evaluation of the 4096-d RoI head on 300 proposals costs about a second on a CPU
    return make_voc_dataset(str(root), num_train=3, num_test=1, image_size=IMAGE_SIZE, classes=DEFAULT_CLASSES,
                            seed=0)


@pytest.fixture
def voc_copy(voc_root, tmp_path):
    """A private copy of the generated dataset that a test may break."""
    return shutil.copytree(voc_root, tmp_path / 'VOCdevkit')


def run_tool(tool, *args):
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{tool} failed:\n{output[-5000:]}'
    return output


# ---------------------------------------------------------------------------------------------- generated data
def test_generated_voc_tree_is_deterministic_and_loads(voc_root, tmp_path):
    again = make_voc_dataset(str(tmp_path), num_train=3, num_test=1, image_size=IMAGE_SIZE, seed=0)
    other_seed = make_voc_dataset(str(tmp_path / 'seed1'), num_train=3, num_test=1, image_size=IMAGE_SIZE, seed=1)
    for name in ('JPEGImages/000001.jpg', 'Annotations/000004.xml', 'ImageSets/Main/test.txt'):
        a, b = (open(osp.join(r, 'VOC2007', name), 'rb').read() for r in (voc_root, again))
        assert a == b, name
    assert open(osp.join(voc_root, 'VOC2007/JPEGImages/000001.jpg'), 'rb').read() != open(
        osp.join(other_seed, 'VOC2007/JPEGImages/000001.jpg'), 'rb').read()
    assert open(osp.join(voc_root, 'VOC2007/ImageSets/Main/trainval.txt')).read().split() == ['000001', '000002',
                                                                                              '000003']

    dataset = StrictVOCDataset(data_root=voc_root, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                               data_prefix=dict(sub_data_root='VOC2007/'), test_mode=True, pipeline=[])
    assert len(dataset) == 3
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        img = cv2.imread(info['img_path'])
        assert img.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)
        assert (info['width'], info['height']) == IMAGE_SIZE
        assert 1 <= len(info['instances']) <= 3
        for inst in info['instances']:
            x1, y1, x2, y2 = inst['bbox']
            assert 0 <= x1 < x2 < IMAGE_SIZE[0] and 0 <= y1 < y2 < IMAGE_SIZE[1]
            assert min(x2 - x1, y2 - y1) >= 0.3 * min(IMAGE_SIZE)  # large objects
            assert dataset.metainfo['classes'][inst['bbox_label']] in DEFAULT_CLASSES


@pytest.mark.parametrize('style', OBJECT_STYLES)
def test_generated_boxes_are_tight(style):
    """The box returned for a drawn object touches its dark outline on all four sides, and nothing outside it."""
    img = np.full((100, 120, 3), 128.0, np.float32)
    x1, y1, x2, y2 = _paste_object(img, style, 20, 10, 70, np.random.default_rng(0))
    drawn = np.any(img != 128.0, axis=-1)
    ys, xs = np.nonzero(drawn)
    assert (x1, y1, x2, y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    outline = np.all(img == 20.0, axis=-1)
    for edge in (outline[y1, x1:x2], outline[y2 - 1, x1:x2], outline[y1:y2, x1], outline[y1:y2, x2 - 1]):
        assert edge.any()
    # every drawn pixel that touches the background is outline
    background = ~drawn
    touches = drawn & (np.roll(background, 1, 0) | np.roll(background, -1, 0) | np.roll(background, 1, 1)
                       | np.roll(background, -1, 1))
    assert outline[touches].all()


@pytest.mark.parametrize('kwargs, match', [
    (dict(image_size=32), 'at least 64'),
    (dict(image_size=(100, 100, 3)), 'width, height'),
    (dict(num_train=0), 'num_train'),
    (dict(classes=tuple('abcdefg')), 'between 1 and 6'),
    (dict(classes=('car', 'car')), 'distinct'),
])
def test_generator_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_voc_dataset(str(tmp_path), **{**dict(num_train=1, num_test=1, image_size=64), **kwargs})


def test_generator_cli(tmp_path, capsys):
    voc_cli([str(tmp_path), '--num-train', '1', '--num-test', '1', '--image-size', '96', '64', '--classes', 'cat',
             'dog', '--seed', '3'])
    assert 'VOCdevkit' in capsys.readouterr().out
    root = ET.parse(tmp_path / 'VOCdevkit/VOC2007/Annotations/000002.xml').getroot()
    assert root.findtext('size/width') == '96' and root.findtext('size/height') == '64'
    assert {o.findtext('name') for o in root.iter('object')} <= {'cat', 'dog'}


# ---------------------------------------------------------------------------------------------- bad input
def build_dataset(data_root, **kwargs):
    return StrictVOCDataset(data_root=str(data_root), ann_file='VOC2007/ImageSets/Main/trainval.txt',
                            data_prefix=dict(sub_data_root='VOC2007/'), pipeline=[], **kwargs)


def set_annotation_field(voc_root, image_id, path, text):
    """Overwrite the text of the first ``path`` element (such as 'object/name') in ``<image_id>.xml``."""
    xml = voc_root / f'VOC2007/Annotations/{image_id}.xml'
    tree = ET.parse(xml)
    tree.getroot().find(path).text = text
    tree.write(xml)


def test_missing_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'nowhere'))):
        build_dataset(tmp_path / 'nowhere')


def test_data_root_pointing_at_voc2007(voc_copy):
    with pytest.raises(FileNotFoundError, match='looks like a VOC2007 folder'):
        build_dataset(voc_copy / 'VOC2007')


def test_missing_image_list(voc_copy):
    os.remove(voc_copy / 'VOC2007/ImageSets/Main/trainval.txt')
    with pytest.raises(FileNotFoundError, match='trainval.txt'):
        build_dataset(voc_copy)


def test_unparseable_xml(voc_copy):
    (voc_copy / 'VOC2007/Annotations/000002.xml').write_text('<annotation><object><name>car</name>')
    with pytest.raises(ValueError, match=r"000002\.xml.*not valid XML"):
        build_dataset(voc_copy)


def test_missing_xml(voc_copy):
    os.remove(voc_copy / 'VOC2007/Annotations/000003.xml')
    with pytest.raises(FileNotFoundError, match=r'000003\.xml'):
        build_dataset(voc_copy)


def test_class_outside_configured_classes(voc_copy):
    set_annotation_field(voc_copy, '000001', 'object/name', 'unicorn')
    with pytest.raises(ValueError, match=r"000001\.xml.*'unicorn'.*configured classes"):
        build_dataset(voc_copy)
    # the same file is fine once the class is configured
    assert len(build_dataset(voc_copy, metainfo=dict(classes=DEFAULT_CLASSES + ('unicorn', )))) == 3


def test_non_numeric_box(voc_copy):
    set_annotation_field(voc_copy, '000001', 'object/bndbox/xmax', 'wide')
    with pytest.raises(ValueError, match=r"000001\.xml.*xmax.*'wide'"):
        build_dataset(voc_copy)


@pytest.mark.parametrize('path, value, match', [('size/width', '12.5', 'width'),
                                                ('object/difficult', 'yes', 'difficult')])
def test_bad_size_or_difficult(voc_copy, path, value, match):
    set_annotation_field(voc_copy, '000003', path, value)
    with pytest.raises(ValueError, match=rf"000003\.xml.*{match}.*'{value}'"):
        build_dataset(voc_copy)


def test_listed_image_missing(voc_copy):
    os.remove(voc_copy / 'VOC2007/JPEGImages/000002.jpg')
    with pytest.raises(FileNotFoundError, match=r'000002\.jpg'):
        build_dataset(voc_copy)


def test_train_tool_fails_before_training_on_a_bad_data_root(voc_copy, tmp_path, load_tool):
    """tools/train.py (in process) stops with the named file before any iteration runs."""
    os.remove(voc_copy / 'VOC2007/JPEGImages/000003.jpg')
    train_tool, work_dir = load_tool('train'), tmp_path / 'work'
    with pytest.raises(FileNotFoundError, match=r'000003\.jpg'):
        train_tool.main([osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), '--work-dir', str(work_dir),
                         '--cfg-options', *short_run_options(voc_copy, 2)])
    assert not list(work_dir.glob('*.pth'))


# ---------------------------------------------------------------------------------------------- train / resume / test
def test_pow1_config_trains_resumes_and_tests(voc_root, tmp_path):
    config = osp.join(REPO, 'configs', 'faster_rcnn_zf_pow1_voc.py')
    work_dir = str(tmp_path / 'work')

    out = run_tool('train.py', config, '--work-dir', work_dir, '--cfg-options', *short_run_options(voc_root, 2))
    assert re.search(r'Iter\(train\) \[2/2\].*loss_rpn_cls', out)
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert re.search(r'pascal_voc/mAP: \d\.\d+', out)  # validation at the end of training

    out = run_tool('train.py', config, '--work-dir', work_dir, '--resume', '--cfg-options',
                   *short_run_options(voc_root, 3))
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'Iter(train) [3/3]' in out and 'Iter(train) [1/3]' not in out
    ckpt = torch.load(osp.join(work_dir, 'iter_3.pth'), map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 3
    # the POW exponents are trained and saved; conv1/conv2 have none
    assert {f'backbone.conv{i}.alpha' for i in (3, 4, 5)} <= set(ckpt['state_dict'])
    assert 'backbone.conv2.alpha' not in ckpt['state_dict']

    out = run_tool('test.py', config, osp.join(work_dir, 'iter_3.pth'), '--work-dir', work_dir, '--cfg-options',
                   *short_run_options(voc_root, 3))
    match = re.search(r'pascal_voc/mAP: (\d\.\d+)', out)
    assert match and 0.0 <= float(match.group(1)) <= 1.0
    assert 'bottle' in out  # the per-class AP table of VOCMetric


# ---------------------------------------------------------------------------------------------- bad image files
# image ids of the generated tree (num_train=3, num_test=1): one in the training list, the test image
SPLIT_IMAGE = {'trainval': '000002', 'test': '000004'}


def break_image(voc_root, image_id, kind):
    """Damage ``<image_id>``'s image (or its XML) in one of the ways a real copy of a dataset gets damaged."""
    jpg = voc_root / f'VOC2007/JPEGImages/{image_id}.jpg'
    data = jpg.read_bytes()
    if kind == 'zero_byte':
        jpg.write_bytes(b'')
    elif kind == 'truncated':  # an interrupted copy: the first half of the file
        jpg.write_bytes(data[:len(data) // 2])
    elif kind == 'corrupt':  # not an image at all (an HTML error page saved under the image's name)
        jpg.write_bytes(b'<html><body>502 Bad Gateway</body></html>\n' * 20)
    elif kind == 'size_mismatch':  # another size than the XML's <size> (e.g. a resized copy)
        img = cv2.imread(str(jpg))
        cv2.imwrite(str(jpg), cv2.resize(img, (img.shape[1] + 16, img.shape[0])))
    elif kind == 'box_outside':
        width = int(ET.parse(voc_root / f'VOC2007/Annotations/{image_id}.xml').getroot().findtext('size/width'))
        set_annotation_field(voc_root, image_id, 'object/bndbox/xmax', str(width + 40))
    else:
        raise ValueError(kind)
    return str(voc_root / f'VOC2007/Annotations/{image_id}.xml') if kind == 'box_outside' else str(jpg)


BAD_IMAGE_ERRORS = {
    'zero_byte': r'is empty \(0 bytes\)',
    'truncated': r'is truncated: it does not end with the JPEG end-of-image marker',
    'corrupt': r'is not a readable image .*accepted are image files',
    'size_mismatch': r'is 208x160 \(width x height\) but its annotation .* gives <size> 192x160',
    'box_outside': r'object #0 \(\w+\) has the box .* outside the image of the 192x160 image; accepted: 0 <= xmin',
}


@pytest.mark.parametrize('split', sorted(SPLIT_IMAGE))
@pytest.mark.parametrize('kind', sorted(BAD_IMAGE_ERRORS))
def test_bad_image_file_named_when_the_dataset_is_built(voc_copy, kind, split):
    bad = break_image(voc_copy, SPLIT_IMAGE[split], kind)
    with pytest.raises(VOCDataError, match=re.escape(repr(bad)) + '.*' + BAD_IMAGE_ERRORS[kind]):
        StrictVOCDataset(data_root=str(voc_copy), ann_file=f'VOC2007/ImageSets/Main/{split}.txt',
                         data_prefix=dict(sub_data_root='VOC2007/'), test_mode=split == 'test', pipeline=[])


def test_box_checks_accept_border_boxes(voc_copy):
    """A box touching the image border (xmax = width, VOC's 1-based coordinates) is inside."""
    root = ET.parse(voc_copy / 'VOC2007/Annotations/000001.xml').getroot()
    set_annotation_field(voc_copy, '000001', 'object/bndbox/xmax', root.findtext('size/width'))
    set_annotation_field(voc_copy, '000001', 'object/bndbox/ymax', root.findtext('size/height'))
    assert len(build_dataset(voc_copy)) == 3


# every kind in both sets is tested on the dataset above; through the tools, a few (each builds a Runner)
@pytest.mark.parametrize('kind, split', [('truncated', 'trainval'), ('box_outside', 'test')])
def test_train_tool_stops_before_training_naming_the_bad_file(voc_copy, tmp_path, load_tool, kind, split):
    """tools/train.py (in process): a bad training image, or a bad test image (the validation set is built before
    the first iteration too), stops the run with the file named and no checkpoint written."""
    bad = break_image(voc_copy, SPLIT_IMAGE[split], kind)
    work_dir = tmp_path / 'work'
    with pytest.raises(VOCDataError, match=re.escape(repr(bad)) + '.*' + BAD_IMAGE_ERRORS[kind]):
        load_tool('train').main([osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), '--work-dir', str(work_dir),
                                 '--cfg-options', *short_run_options(voc_copy, 2)])
    assert not list(work_dir.glob('*.pth'))


@pytest.mark.parametrize('kind', ['zero_byte', 'size_mismatch'])
def test_test_tool_names_the_bad_test_file(voc_copy, tmp_path, load_tool, kind):
    bad = break_image(voc_copy, SPLIT_IMAGE['test'], kind)
    unused = tmp_path / 'unused.pth'  # tools/test.py checks that the file exists; the data check stops before loading
    torch.save({'state_dict': {}}, unused)
    with pytest.raises(VOCDataError, match=re.escape(repr(bad)) + '.*' + BAD_IMAGE_ERRORS[kind]):
        load_tool('test').main([osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), str(unused),
                                '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                                *short_run_options(voc_copy, 2)])


@pytest.fixture(scope='module')
def small_detector_checkpoint(tmp_path_factory):
    """Initial weights of configs/faster_rcnn_zf_voc.py with fc6/fc7 of 256 (what a sweep needs to start)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'))
    cfg.model.roi_head.bbox_head.fc_out_channels = 256
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'init.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, path)
    return str(path)


def undecodable_png(path):
    """A PNG (under the .jpg name) whose header and IEND are intact but whose pixel data is not: it passes the
    up-front header/tail check and fails only when decoded."""
    img = cv2.imread(str(path))
    data = bytearray(cv2.imencode('.png', img)[1].tobytes())
    start = data.find(b'IDAT') + 20
    data[start:start + 2000] = b'\x55' * 2000
    path.write_bytes(bytes(data))


def sweep_options(voc_root):
    """short_run_options for tools/robustness.py: the test loader with two workers."""
    options = [o for o in short_run_options(voc_root, 2) if not o.startswith('test_dataloader.')
               or 'data_root' in o or 'pipeline' in o]
    return options + ['test_dataloader.num_workers=2', 'test_dataloader.persistent_workers=False']


def check_no_sweep_results(work_dir):
    results = work_dir / 'robustness.json'
    assert not results.exists() or 'mix_heavy' not in json.loads(results.read_text())['cells']


def test_sweep_names_a_truncated_image_before_the_first_cell(voc_copy, tmp_path, small_detector_checkpoint,
                                                              load_tool):
    """tools/robustness.py (in process: the check runs before any worker starts): a truncated test image ends the
    sweep in the tool's one-line error naming the file."""
    jpg = voc_copy / f'VOC2007/JPEGImages/{SPLIT_IMAGE["test"]}.jpg'
    break_image(voc_copy, SPLIT_IMAGE['test'], 'truncated')
    with pytest.raises(SystemExit) as exit_info:
        load_tool('robustness').main([osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), small_detector_checkpoint,
                                      '--distortions', 'mix_heavy', '--work-dir', str(tmp_path / 'sweep'),
                                      '--cfg-options', *sweep_options(voc_copy)])
    message = exit_info.value.code  # SystemExit(str): Python prints it to stderr, exit status 1
    assert isinstance(message, str) and '\n' not in message, message
    assert re.fullmatch('robustness.py: error: .*' + re.escape(repr(str(jpg))) + '.*is truncated.*', message), message
    check_no_sweep_results(tmp_path / 'sweep')


def test_sweep_names_an_image_that_fails_in_a_worker(voc_copy, tmp_path, small_detector_checkpoint):
    """tools/robustness.py with two loader workers, as a user runs it: an image that only fails when decoded (in a
    worker) is named with its id, instead of a bare decoder error, as the tool's one-line error, no traceback."""
    jpg = voc_copy / f'VOC2007/JPEGImages/{SPLIT_IMAGE["test"]}.jpg'
    undecodable_png(jpg)
    expected = (re.escape(repr(str(jpg))) + r" \(id '000004'\) failed in the data pipeline: AssertionError: "
                'failed to load image')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'robustness.py'),
                           osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py'), small_detector_checkpoint,
                           '--distortions', 'mix_heavy', '--work-dir', str(tmp_path / 'sweep'), '--cfg-options',
                           *sweep_options(voc_copy)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1'))
    assert proc.returncode != 0
    last_line = proc.stderr.strip().splitlines()[-1]
    assert re.search('robustness.py: error: .*' + expected, last_line), proc.stderr[-3000:]  # one line, the file named
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    check_no_sweep_results(tmp_path / 'sweep')
