"""Per-image COCO records (featquant_mmdet/stats/coco_records.py) against pycocotools and mmdet's CocoMetric.

The data are constructed so that every case of ``COCOeval`` occurs: crowd boxes (ignored, matched many times),
images without ground truth, without detections and without either, a category without ground truth (-1, left
out of the means), more detections per image than ``maxDets``, and boxes of all three area ranges (counted below).
"""
import contextlib
import copy
import io
import json

import numpy as np
import pytest

from featquant_mmdet.stats.checks import StatsInputError
from featquant_mmdet.stats.coco_records import STATS, COCORecords, evaluate_records, parse_metric
from featquant_mmdet.stats.records import load_per_image

pycocotools = pytest.importorskip('pycocotools')
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

N_CATS = 4  # category 4 has no ground truth
MAX_DETS = [(100, 300, 1000), (1, 10, 100), (3, 7, 15)]  # mmdet's, pycocotools' default, one without 100


def make_data(seed=0, n_img=40):
    """(COCO dataset dict, detections) with the cases of the module doc; image ids shuffled (pycocotools sorts
    them) and not consecutive."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(n_img) * 3 + 5)
    images, anns, dets = [], [], []
    for i, img_id in enumerate(int(x) for x in ids):
        images.append(dict(id=img_id, width=640, height=480, file_name=f'{img_id}.jpg'))
        if i == 0:
            continue  # neither ground truth nor detections
        gts = []
        for _ in range(0 if i == 1 else int(rng.integers(1, 7))):  # image 1: detections only
            side = float(np.exp(rng.uniform(np.log(10), np.log(250))))  # small, medium and large
            w, h = side * rng.uniform(0.7, 1.3), side * rng.uniform(0.7, 1.3)
            x, y = rng.uniform(0, 380), rng.uniform(0, 220)
            cat = int(rng.integers(1, N_CATS))
            crowd = int(rng.random() < 0.12)
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=cat, bbox=[x, y, w, h], area=w * h,
                             iscrowd=crowd))
            gts.append((cat, x, y, w, h))
        n_det = 0 if i == 2 else 150 if i == 3 else int(rng.integers(1, 30))  # image 2: ground truth only
        for _ in range(n_det):
            if gts and rng.random() < 0.6:  # near a ground-truth box (IoU over the whole 0.5..0.95 range)
                cat, x, y, w, h = gts[int(rng.integers(len(gts)))]
                jit = rng.normal(0, 0.12, 4) * [w, h, w, h]
                box = [x + jit[0], y + jit[1], max(1.0, w + jit[2]), max(1.0, h + jit[3])]
                if rng.random() < 0.15:
                    cat = int(rng.integers(1, N_CATS + 1))
            else:
                cat = int(rng.integers(1, N_CATS + 1))
                side = float(np.exp(rng.uniform(np.log(8), np.log(250))))
                box = [rng.uniform(0, 400), rng.uniform(0, 250), side, side * rng.uniform(0.7, 1.3)]
            if i == 3:
                cat = gts[0][0]  # 150 detections of one category in one image: more than maxDets
            dets.append(dict(image_id=img_id, category_id=cat, bbox=[float(v) for v in box],
                             score=float(rng.random())))
    cats = [dict(id=c, name=f'c{c}') for c in range(1, N_CATS + 1)]
    return dict(images=images, annotations=anns, categories=cats), dets


def coco_api(dataset):
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = copy.deepcopy(dataset)
        api.createIndex()
    return api


def pycocotools_stats(dataset, dets, max_dets):
    """COCOeval.stats as mmdet's CocoMetric runs it (maxDets = its proposal_nums)."""
    gt = coco_api(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), 'bbox')
        coco_eval.params.maxDets = list(max_dets)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


def records_of(dataset, dets, max_dets=(100, 300, 1000), metric='coco/bbox_mAP'):
    return evaluate_records(coco_api(dataset), copy.deepcopy(dets), max_dets=max_dets, metric=metric)


def as_array(stats: dict) -> np.ndarray:
    return np.array([stats[item] for item in STATS])


@pytest.fixture(scope='module')
def data():
    return make_data()


def test_constructed_data_has_every_case(data):
    dataset, dets = data
    anns = dataset['annotations']
    areas = np.array([a['area'] for a in anns if not a['iscrowd']])
    assert (areas < 32 ** 2).sum() >= 5 and ((areas >= 32 ** 2) & (areas < 96 ** 2)).sum() >= 5
    assert (areas >= 96 ** 2).sum() >= 5
    assert sum(a['iscrowd'] for a in anns) >= 5
    assert N_CATS not in {a['category_id'] for a in anns} and N_CATS in {d['category_id'] for d in dets}
    with_gt, with_dets = {a['image_id'] for a in anns}, {d['image_id'] for d in dets}
    ids = {im['id'] for im in dataset['images']}
    assert ids - with_gt - with_dets and (with_dets - with_gt) and (with_gt - with_dets)
    per_image_cat = {}
    for d in dets:
        key = (d['image_id'], d['category_id'])
        per_image_cat[key] = per_image_cat.get(key, 0) + 1
    assert max(per_image_cat.values()) > 100


@pytest.mark.parametrize('max_dets', MAX_DETS)
def test_full_set_equals_pycocotools_summarize(data, max_dets):
    dataset, dets = data
    expected = pycocotools_stats(dataset, dets, max_dets)
    records = records_of(dataset, dets, max_dets)
    assert records.num_images == len(dataset['images'])
    assert records.image_ids == sorted(records.image_ids, key=int)  # pycocotools' image order
    got = as_array(records.stats())
    assert got == pytest.approx(expected, abs=1e-6)
    assert (expected > 0).sum() >= 10 and (-1 in expected) == (100 not in max_dets)  # not a trivial case
    for item in ('mAP', 'mAP_75', 'mAP_m', 'AR@100'):
        assert records.with_metric(f'coco/bbox_{item}').value() == pytest.approx(expected[STATS[item][0]], abs=1e-6)


def test_other_recall_thresholds_and_iou_thresholds_follow_the_params(data):
    """Parameters set on COCOeval before evaluate() are the records' too (recall thresholds not on the 0.01 grid
    take the searchsorted path)."""
    from featquant_mmdet.stats.coco_records import coco_records
    dataset, dets = data
    gt = coco_api(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), 'bbox')
        coco_eval.params.recThrs = np.array([0.0, 0.3, 0.55, 0.8, 1.0])
        coco_eval.params.iouThrs = np.array([0.5, 0.6, 0.75])
        coco_eval.params.maxDets = [1, 10, 100]
        coco_eval.evaluate()
        records = coco_records(coco_eval)
        coco_eval.accumulate()
        coco_eval.summarize()
    assert as_array(records.stats()) == pytest.approx(coco_eval.stats, abs=1e-6)


def duplicated(dataset, dets, counts):
    """The dataset with image i repeated counts[i] times under new ids (interleaved with the originals' order),
    with its annotations and detections."""
    images, anns, out_dets = [], [], []
    by_image = {}
    for d in dets:
        by_image.setdefault(d['image_id'], []).append(d)
    for i, image in enumerate(dataset['images']):
        for copy_index in range(int(counts[i])):
            new_id = 100000 + 1000 * copy_index + image['id']  # copies apart in pycocotools' sorted order
            images.append(dict(image, id=new_id))
            for a in dataset['annotations']:
                if a['image_id'] == image['id']:
                    anns.append(dict(a, id=len(anns) + 1, image_id=new_id))
            out_dets += [dict(d, image_id=new_id) for d in by_image.get(image['id'], [])]
    return dict(dataset, images=images, annotations=anns), out_dets


@pytest.mark.parametrize('max_dets', MAX_DETS[:2])
def test_resample_with_duplicates_equals_pycocotools_on_duplicated_images(data, max_dets):
    dataset, dets = data
    records = records_of(dataset, dets, max_dets)
    rng = np.random.default_rng(1)
    counts = rng.multinomial(records.num_images, np.full(records.num_images, 1 / records.num_images))
    assert counts.max() >= 3 and (counts == 0).sum() >= 5
    order = {str(im['id']): i for i, im in enumerate(dataset['images'])}
    counts_in_dataset_order = np.zeros(len(counts), int)
    for position, image_id in enumerate(records.image_ids):
        counts_in_dataset_order[order[image_id]] = counts[position]
    expected = pycocotools_stats(*duplicated(dataset, dets, counts_in_dataset_order), max_dets)
    assert as_array(records.stats(counts)) == pytest.approx(expected, abs=1e-6)


def test_many_resamples_at_once_equal_one_at_a_time(data):
    dataset, dets = data
    records = records_of(dataset, dets)
    rng = np.random.default_rng(2)
    counts = np.stack([rng.multinomial(records.num_images, np.full(records.num_images, 1 / records.num_images))
                       for _ in range(7)] + [np.ones(records.num_images, int)])
    for item in STATS:
        cell = records.with_metric(f'coco/bbox_{item}')
        batch = cell.values(counts)
        assert batch.shape == (8, )
        assert batch == pytest.approx([cell.value(c) for c in counts], abs=1e-12)
        assert batch[-1] == pytest.approx(cell.value(), abs=1e-12)
    assert len(set(np.round(records.values(counts[:7]), 9))) == 7  # the resamples move the metric


def test_saved_records_round_trip(data, tmp_path):
    dataset, dets = data
    records = records_of(dataset, dets, metric='coco/bbox_mAP_50')
    path = records.save(str(tmp_path / 'cell.npz'))
    loaded = load_per_image(path)
    assert isinstance(loaded, COCORecords) and loaded.kind == 'coco' and loaded.metric == 'coco/bbox_mAP_50'
    assert loaded.image_ids == records.image_ids and loaded.meta['file'] == path
    assert loaded.value() == records.value()
    with np.load(path, allow_pickle=False) as arrays:  # flat arrays only, no pickle
        assert {'scores', 'images', 'cats', 'ranks', 'codes', 'npig', 'image_ids', 'meta'} == set(arrays.files)


def test_no_detection_at_all_gives_zero_ap_and_absent_categories_stay_out(data):
    dataset, _ = data
    stats = records_of(dataset, []).stats()
    assert all(stats[item] == 0 for item in STATS)  # every category with ground truth has AP 0, recall 0
    only_absent = copy.deepcopy(dataset)
    only_absent['annotations'] = []
    assert records_of(only_absent, []).value() == -1  # no category has ground truth: pycocotools' -1


def test_predictions_naming_images_the_annotations_lack_are_refused(data):
    dataset, dets = data
    bad = dets + [dict(dets[0], image_id=999999)]
    with pytest.raises(StatsInputError, match=r'instances_val\.json has no image 999999 .*same images'):
        evaluate_records(coco_api(dataset), bad, ann_file='instances_val.json')


@pytest.mark.parametrize('key', ['coco/bbox_AP', 'coco/proposal_AR@100', 'coco/mAP', 'bbox_mAP_25'])
def test_unknown_metric_keys_are_refused_naming_the_accepted_ones(key):
    with pytest.raises(StatsInputError, match='mAP_50, mAP_75'):
        parse_metric(key)


def test_parse_metric_accepts_cocometric_keys():
    assert parse_metric('coco/bbox_mAP_50') == ('bbox', 'mAP_50')
    assert parse_metric('val/segm_AR_l@1000') == ('segm', 'AR_l@1000')


# ------------------------------------------------------------------------------------------- mmdet's CocoMetric


def cocometric_samples(dataset, dets):
    """mmdet data samples (as the test loop gives CocoMetric) carrying the detections, labels 0-based."""
    import torch
    samples = []
    for image in dataset['images']:
        mine = [d for d in dets if d['image_id'] == image['id']]
        boxes = torch.tensor([[d['bbox'][0], d['bbox'][1], d['bbox'][0] + d['bbox'][2], d['bbox'][1] + d['bbox'][3]]
                              for d in mine], dtype=torch.float32).reshape(-1, 4)
        samples.append(dict(img_id=image['id'], ori_shape=(image['height'], image['width']),
                            pred_instances=dict(bboxes=boxes,
                                                scores=torch.tensor([d['score'] for d in mine], dtype=torch.float32),
                                                labels=torch.tensor([d['category_id'] - 1 for d in mine]))))
    return samples


def test_full_set_equals_mmdet_cocometric_and_per_image_coco_records_it(data, tmp_path):
    """The real CocoMetric (annotation file on disk) and the PerImageCOCO recorder built from it see the same
    samples: the recorder's file gives CocoMetric's six keys (mmdet rounds them to 3 decimals) and pycocotools'
    unrounded stats."""
    pytest.importorskip('mmdet')
    from mmdet.evaluation.metrics import CocoMetric

    from featquant_mmdet.evaluation.per_image import PerImageCOCO, per_image_recorder
    dataset, dets = data
    ann_file = tmp_path / 'instances.json'
    ann_file.write_text(json.dumps(dataset))
    metric = CocoMetric(ann_file=str(ann_file))
    meta = dict(classes=tuple(c['name'] for c in dataset['categories']))
    metric.dataset_meta = meta
    recorder, why = per_image_recorder([metric], 'coco/bbox_mAP_75')
    assert isinstance(recorder, PerImageCOCO) and why == ''
    recorder.dataset_meta = meta
    recorder.out_path = str(tmp_path / 'per_image.npz')
    samples = cocometric_samples(dataset, dets)
    for batch in (samples[:17], samples[17:]):
        metric.process({}, batch)
        recorder.process({}, batch)
    reported = metric.evaluate(len(samples))
    assert recorder.evaluate(len(samples)) == {}
    records = load_per_image(recorder.out_path)
    assert records.metric == 'coco/bbox_mAP_75' and recorder.saved['value'] == records.value()
    # the dets pass through float32 boxes and scores as CocoMetric keeps them: compare with its own inputs
    expected = pycocotools_stats(dataset, json.loads(json.dumps(_as_cocometric_dets(samples))), (100, 300, 1000))
    stats = records.stats()
    for item in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'):
        assert stats[item] == pytest.approx(expected[STATS[item][0]], abs=1e-6)
        assert reported[f'coco/bbox_{item}'] == float(f'{round(stats[item], 3)}')


def _as_cocometric_dets(samples):
    out = []
    for s in samples:
        p = s['pred_instances']
        for box, score, label in zip(p['bboxes'].numpy(), p['scores'].numpy(), p['labels'].numpy()):
            b = box.tolist()
            out.append(dict(image_id=s['img_id'], category_id=int(label) + 1, score=float(score),
                            bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]]))
    return out


def test_recorder_reasons_for_coco_keys_it_cannot_keep():
    pytest.importorskip('mmdet')
    from mmdet.evaluation.metrics import CocoMetric

    from featquant_mmdet.evaluation.per_image import per_image_recorder
    recorder, why = per_image_recorder([CocoMetric(ann_file=None)], 'coco/segm_mAP')
    assert recorder is None and "evaluates ['bbox'], not segm" in why
    recorder, why = per_image_recorder([CocoMetric(ann_file=None)], 'coco/bbox_precision')
    assert recorder is None and 'no intervals' in why and 'mAP_50' in why
