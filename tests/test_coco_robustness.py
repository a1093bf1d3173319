"""Robustness sweeps of a stock mmdet COCO config with intervals: Faster R-CNN R-18 FPN from
``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py`` with ``conv_cfg=dict(type='PowConv')`` in the neck through
``custom_imports``, on generated COCO-format data (featquant_mmdet/datasets/synthetic_coco.py), swept by
tools/robustness.py with ``--bootstrap`` and compared by tools/compare_robustness.py; untrained (seeded) weights
saved as checkpoints, enough detections that the COCO mAP is small but not 0."""
import csv
import json
import os.path as osp

import pytest
import torch

from featquant_mmdet.stats.records import load_per_image

pytest.importorskip('mmdet')
pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tiny images: a second thread only waits

CLASSES = ('bottle', 'car', 'tvmonitor')
METRIC = 'coco/bbox_mAP_50'
NUM_TEST = 4

CONFIG = """_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64, conv_cfg=dict(type='PowConv')),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64, fc_out_channels=64, num_classes={num_classes})),
    test_cfg=dict(rcnn=dict(score_thr=0.0, max_per_img=300)))
data_root = {data_root!r}
metainfo = dict(classes={classes!r})
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val.json',
    data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_evaluator = dict(ann_file=data_root + {ann_file!r})
"""


def write_config(path, data_root, ann_file='annotations/instances_val.json') -> str:
    with open(path, 'w') as f:
        f.write(CONFIG.format(num_classes=len(CLASSES), data_root=data_root, classes=CLASSES, ann_file=ann_file))
    return str(path)


def save_checkpoint(config: str, path: str, seed: int) -> str:
    """The config's model with seeded initial weights, in the Runner's checkpoint format."""
    import featquant_mmdet
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.runner.checkpoint import save_checkpoint as save, weights_to_cpu
    featquant_mmdet.register_all_modules(init_default_scope=True)
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    save({'meta': {'seed': seed}, 'state_dict': weights_to_cpu(model.state_dict())}, path)
    return path


@pytest.fixture(scope='module')
def coco_sweeps(tmp_path_factory, load_tool):
    """Two seeded models (NUM_TEST images) swept over clean and motion blur 1 with 200 resamples."""
    from featquant_mmdet.datasets.synthetic_coco import make_coco_dataset
    root = tmp_path_factory.mktemp('coco_robustness')
    data_root = make_coco_dataset(str(root / 'coco'), num_train=1, num_test=NUM_TEST, image_size=(128, 96),
                                  seed=0) + '/'
    config = write_config(root / 'faster_rcnn_r18_fpn_pow_coco.py', data_root)
    tool = load_tool('robustness')
    out = dict(root=root, config=config, data_root=data_root, paths={}, results={})
    for seed, label in enumerate(('A', 'B')):
        ckpt = save_checkpoint(config, str(root / f'{label}.pth'), seed)
        work_dir = str(root / label)
        out['results'][label] = tool.main([config, ckpt, '--distortions', 'motion_blur', '--levels', '1',
                                           '--metric', METRIC, '--bootstrap', '200', '--work-dir', work_dir])
        out['paths'][label] = osp.join(work_dir, 'robustness.json')
        out['checkpoint'] = ckpt
    return out


def test_coco_sweep_keeps_per_image_records_and_intervals(coco_sweeps, capsys):
    results = coco_sweeps['results']['A']
    for key, cell in results['cells'].items():
        entry = cell['per_image']
        assert entry['file'] == f'robustness.cells/{key}.npz' and entry['num_images'] == NUM_TEST
        records = load_per_image(osp.join(osp.dirname(coco_sweeps['paths']['A']), entry['file']))
        assert records.kind == 'coco' and records.metric == METRIC
        assert records.scores.size > NUM_TEST * 100  # many ranked detections of an untrained detector
        # the cell keeps pycocotools' value of every CocoMetric key (CocoMetric itself rounds to 3 decimals)
        assert cell['metrics'][METRIC] == records.value() == entry['value']
        for key, value in cell['metrics'].items():
            if key.startswith('coco/bbox_'):
                assert value == records.with_metric(key).value(), key
    assert results['cells']['clean']['per_image']['value'] > 0  # the detector finds something
    intervals = results['summary']['intervals']
    assert (intervals['resamples'], intervals['num_images']) == (200, NUM_TEST)
    cols = intervals['columns']
    assert {'cell/clean', 'cell/motion_blur@1', 'P', 'mean/motion_blur', 'mPC', 'rPC'} <= set(cols)
    for name in ('cell/clean', 'P', 'mPC'):
        assert cols[name]['low'] < cols[name]['high'], name  # resampling the images moves the mAP
        assert cols[name]['value'] == pytest.approx(
            results['cells']['clean' if name != 'mPC' else 'motion_blur@1']['per_image']['value'])


def test_compare_robustness_gives_paired_intervals_for_coco_results(coco_sweeps, tmp_path, load_tool, capsys):
    paths = load_tool('compare_robustness').main([coco_sweeps['paths']['A'], coco_sweeps['paths']['B'],
                                                  '--labels', 'A', 'B', '--bootstrap', '200',
                                                  '--out-dir', str(tmp_path)])
    with open(paths['robustness_table.csv']) as f:
        table = list(csv.reader(f))
    assert table[0][:5] == ['model', 'row', table[0][2], f'{table[0][2]} low (95%)', f'{table[0][2]} high (95%)']
    diff = next(row for row in table[1:] if row[:2] == ['B', 'diff_to_A'])
    value, low, high = (float(diff[2 + i]) for i in range(3))  # the clean column, in percent
    expected = (coco_sweeps['results']['B']['cells']['clean']['per_image']['value']
                - coco_sweeps['results']['A']['cells']['clean']['per_image']['value'])
    assert value == pytest.approx(100 * expected, abs=1e-4) and low < high
    assert 'edited by hand' not in capsys.readouterr().err  # the JSON's values are the per-image ones


def test_annotation_file_without_the_test_images_is_refused_before_evaluating(coco_sweeps, tmp_path, load_tool):
    """test_evaluator.ann_file names the train annotations: one line naming an image and the file, no cell."""
    config = write_config(tmp_path / 'wrong_ann.py', coco_sweeps['data_root'], 'annotations/instances_train.json')
    with open(osp.join(coco_sweeps['data_root'], 'annotations', 'instances_val.json')) as f:
        first_val_image = json.load(f)['images'][0]['id']
    work_dir = tmp_path / 'work'
    with pytest.raises(SystemExit) as exit_info:
        load_tool('robustness').main([config, coco_sweeps['checkpoint'], '--distortions', 'motion_blur',
                                      '--levels', '1', '--metric', METRIC, '--work-dir', str(work_dir)])
    message = str(exit_info.value)
    assert message.startswith('robustness.py: error: ') and '\n' not in message
    assert f'instances_train.json has no image {first_val_image}' in message, message
    results_file = work_dir / 'robustness.json'
    assert not results_file.exists() or not json.loads(results_file.read_text()).get('cells')


def test_generated_coco_data_is_deterministic_and_loads_in_pycocotools(tmp_path, load_tool, capsys):
    from pycocotools.coco import COCO

    from featquant_mmdet.datasets.synthetic_coco import make_coco_dataset
    a = make_coco_dataset(str(tmp_path / 'a'), num_train=2, num_test=3, image_size=(96, 64), seed=3)
    b = make_coco_dataset(str(tmp_path / 'b'), num_train=2, num_test=3, image_size=(96, 64), seed=3)
    for name in ('annotations/instances_train.json', 'annotations/instances_val.json', 'images/val/000000000003.jpg'):
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name
    with contextlib_quiet():
        val = COCO(osp.join(a, 'annotations', 'instances_val.json'))
    assert val.getImgIds() == [3, 4, 5] and [c['name'] for c in val.loadCats(val.getCatIds())] == list(CLASSES)
    for ann in val.loadAnns(val.getAnnIds()):
        x, y, w, h = ann['bbox']
        assert ann['area'] == w * h > 0 and x + w <= 96 and y + h <= 64 and ann['iscrowd'] == 0
    with pytest.raises(SystemExit) as exit_info:
        load_tool('data/make_synthetic_coco').main([str(tmp_path / 'c'), '--num-test', '0'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'num_test must be a positive integer, got 0' in err and 'Traceback' not in err


def contextlib_quiet():
    import contextlib
    import io
    return contextlib.redirect_stdout(io.StringIO())
