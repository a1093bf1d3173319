"""The linear VOC bootstrap (``VOCMatches.map_batch``): the same values as the former quadratic implementation
(``stats.voc_reference``) on random and constructed records, kept state O(records + images), ``subset``, and the
classification path's state."""
import importlib.util
import os.path as osp
import sys

import numpy as np
import pytest

from featquant_mmdet.stats.bootstrap import Resamples
from featquant_mmdet.stats.checks import StatsInputError
from featquant_mmdet.stats.correctness import Correctness
from featquant_mmdet.stats.voc_matches import VOCMatches
from featquant_mmdet.stats.voc_reference import map_batch_dense

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def random_records(n_img, n_rec, num_classes, ious=(0.5, ), mode='11points', seed=0, tp_rate=0.3,
                   absent_class=True, empty_images=True, score_levels=None):
    """Match records as match_records stores them (class-major, image order within a class): TP / FP / neither
    (ignored, a difficult box), classes without ground truth, images without records, tied scores."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, num_classes, n_rec))
    images = rng.integers(0, n_img, n_rec)
    if empty_images:
        images = np.where(images % 7 == 3, (images + 1) % n_img, images)  # images 3, 10, ... have no records
    order = np.lexsort((images, labels))
    labels, images = labels[order], images[order]
    tp = (rng.random((n_rec, len(ious))) < tp_rate).astype(np.uint8)
    fp = ((rng.random((n_rec, len(ious))) < 0.9) & (tp == 0)).astype(np.uint8)  # the rest: ignored
    scores = rng.random(n_rec).astype(np.float32)
    if score_levels:
        scores = np.round(scores * score_levels) / score_levels  # ties
    n_gt = rng.integers(0, 3, (n_img, num_classes))
    if absent_class:
        n_gt[:, -1] = 0  # detected, never in the ground truth: left out of the mean
        n_gt[:, 0] = 0  # ... and one whose ground truth is only difficult: the same
    if empty_images:
        n_gt[3::7] = 0
    return VOCMatches(scores, tp, fp, labels, images, n_gt, [f'i{i}' for i in range(n_img)],
                      dict(iou_thrs=list(ious), eval_mode=mode, num_classes=num_classes))


@pytest.mark.parametrize('mode', ['11points', 'area'])
@pytest.mark.parametrize('ious', [(0.5, ), (0.5, 0.75), (0.3, 0.5, 0.7)])
def test_linear_equals_quadratic_on_random_records(mode, ious):
    for seed, (n_img, n_rec, classes, levels) in enumerate([(40, 500, 5, None), (60, 900, 8, 20), (15, 60, 3, 4)]):
        records = random_records(n_img, n_rec, classes, ious, mode, seed=seed, score_levels=levels)
        counts = Resamples.draw(n_img, 150, seed=seed).counts  # resamples with duplicates and absent images
        counts = np.vstack([counts, np.ones(n_img, np.int32), np.eye(n_img, dtype=np.int32)[:3] * 5])
        new = records.map_batch(counts, block=37)  # several blocks, the last one short
        np.testing.assert_allclose(new, map_batch_dense(records, counts), rtol=0, atol=1e-12)
        assert new[150] == pytest.approx(records.map(), abs=1e-6)  # all images once: mmdet's average_precision


def test_linear_equals_quadratic_on_constructed_records():
    """Corner cases: a class with detections but no TP, a class with TPs but no ground truth left (all its images
    weighted 0), every detection of a class a TP, one image only, and an all-empty resample of a class."""
    base = dict(iou_thrs=[0.5], eval_mode='11points', num_classes=4)
    # class 0: TP FP TP (images 0, 1, 1); class 1: FPs only; class 2: TPs only; class 3: nothing detected
    records = VOCMatches(scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.4], tp=[1, 0, 1, 0, 0, 1, 1],
                         fp=[0, 1, 0, 1, 1, 0, 0], labels=[0, 0, 0, 1, 1, 2, 2], images=[0, 1, 1, 0, 2, 2, 0],
                         n_gt=[[1, 1, 1, 2], [1, 0, 0, 0], [0, 0, 1, 0]], image_ids=['a', 'b', 'c'], meta=base)
    counts = np.array([[1, 1, 1], [3, 0, 0], [0, 2, 0], [0, 0, 4], [1, 0, 2], [2, 3, 1]], np.int32)
    for mode in ('11points', 'area'):
        r = VOCMatches(records.scores, records.tp, records.fp, records.labels, records.images, records.n_gt,
                       records.image_ids, dict(base, eval_mode=mode))
        new = r.map_batch(counts)
        np.testing.assert_allclose(new, map_batch_dense(r, counts), rtol=0, atol=1e-12)
        for row, value in zip(counts, new):
            assert value == pytest.approx(r.map(row), abs=1e-6)
    # the full set by hand (11 points): class 0: P/R = (1, .5), (.5, .5), (.67, 1) -> 6/11*1 + 5/11*.667;
    # class 1: no TP -> 0; class 2: (1, .5), (1, 1) -> 1; class 3: n_gt 2, nothing detected -> 0
    c0 = (6 * 1.0 + 5 * np.float32(2) / np.float32(3)) / 11
    assert records.map() == pytest.approx((c0 + 0 + 1 + 0) / 4, abs=1e-6)


def test_linear_equals_quadratic_on_matched_detections():
    """Records from mmdet's own matching (match_records: difficult boxes, empty images, an absent class, two IoU
    thresholds) on the project's generated VOC cell."""
    pytest.importorskip('mmdet')
    from featquant_mmdet.stats.voc_matches import match_records
    spec = importlib.util.spec_from_file_location('bench_bootstrap', osp.join(REPO, 'benchmarks', 'bench_bootstrap.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.make_cell(60, 12, seed=3, num_classes=6)
    results[5] = (dict(bboxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64)),
                  [np.zeros((0, 5), np.float32)] * 6)  # an empty image
    counts = Resamples.draw(60, 200, seed=2).counts
    for mode in ('11points', 'area'):
        records = match_records(results, 6, [0.5, 0.75], mode)
        np.testing.assert_allclose(records.map_batch(counts), map_batch_dense(records, counts), rtol=0, atol=1e-12)


def kept_bytes(obj, seen=None) -> int:
    """Bytes held by an object's arrays (numpy, scipy.sparse) and strings, through its attributes, lists, tuples
    and dicts."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if hasattr(obj, 'indptr') and hasattr(obj, 'data'):  # a scipy sparse matrix
        return obj.data.nbytes + obj.indices.nbytes + obj.indptr.nbytes
    if isinstance(obj, str):
        return sys.getsizeof(obj)
    if isinstance(obj, dict):
        return sum(kept_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(kept_bytes(v, seen) for v in obj)
    if hasattr(obj, '__dict__'):
        return kept_bytes(vars(obj), seen)
    return 0


def test_kept_state_grows_linearly_with_images():
    """Doubling the images (records per image fixed) at most ~doubles what a cell keeps after its resamples were
    evaluated; the former implementation cached two (images x true positives) matrices, x4 per doubling."""
    kept = []
    for n in (200, 400, 800):
        records = random_records(n, 20 * n, 10, seed=1, tp_rate=0.05)
        records.values(Resamples.draw(n, 20, seed=0).counts)
        assert records._points is not None  # the cache whose size is measured
        kept.append(kept_bytes(records))
    assert kept[1] / kept[0] <= 2.2 and kept[2] / kept[1] <= 2.2, kept
    # the dense matrices the former implementation kept, for scale: images x TPs x 2 float32
    n_tp = int(records.tp.sum())
    assert kept[2] < 800 * n_tp * 8 / 4


def test_classification_kept_state_grows_linearly_with_images():
    kept = []
    for n in (500, 1000):
        cell = Correctness({1: np.arange(n) % 3 > 0}, [str(i) for i in range(n)])
        cell.values(Resamples.draw(n, 20, seed=0).counts)
        kept.append(kept_bytes(cell))
    assert kept[1] / kept[0] <= 2.2, kept


def test_subset_equals_the_records_of_the_listed_images():
    records = random_records(30, 400, 5, (0.5, 0.7), seed=4, score_levels=10)
    idx = np.array([4, 4, 0, 29, 3, 17, 4])  # repeats, an image without records (3)
    sub = records.subset(idx)
    assert sub.num_images == 7 and sub.image_ids == [f'i{i}' for i in idx]
    np.testing.assert_array_equal(sub.n_gt, records.n_gt[idx])
    for j, i in enumerate(idx):  # each new image carries exactly the records of its source, class by class
        for c in range(5):
            a, b = (sub.images == j) & (sub.labels == c), (records.images == i) & (records.labels == c)
            np.testing.assert_array_equal(sub.scores[a], records.scores[b])
            np.testing.assert_array_equal(sub.tp[a], records.tp[b])
    assert (np.diff(sub.labels) >= 0).all()  # class-major
    # with distinct scores, the repeated images are the multiset of their counts: the same mAP (a copy ties only
    # with itself; other ties may be broken in another order by eval_map's sort of the other list)
    records = random_records(30, 400, 5, (0.5, 0.7), seed=4)
    counts = np.bincount(idx, minlength=30)
    assert records.subset(idx).map() == pytest.approx(records.map(counts), abs=1e-6)
    with pytest.raises(StatsInputError, match=r'need image indices in \[0, 30\)'):
        records.subset([0, 30])
