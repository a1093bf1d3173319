"""featquant_mmdet.stats: per-image VOC mAP against mmdet's VOCMetric, bootstrap intervals, paired comparisons,
seed aggregation, bad input, formatting and the band plot."""
import math
import os.path as osp

import numpy as np
import pytest
import torch

from featquant_mmdet.stats import bootstrap as B
from featquant_mmdet.stats import format as F
from featquant_mmdet.stats.checks import StatsInputError, check_cells_match_identity, check_cells_present, \
    check_same_identity
from featquant_mmdet.stats.correctness import Correctness, correct_at_k, correctness_from_accuracy_results
from featquant_mmdet.stats.plot import level_panels, plot_curves_with_bands
from featquant_mmdet.stats.seeds import aggregate_seeds, compare_single_runs, t_interval, verdict_lines
from featquant_mmdet.stats.voc_matches import load_per_image, match_records, match_records_from_metric

NUM_CLASSES = 4  # the last class never appears in the ground truth (only as false positives)


def make_images(n_img, seed=0):
    """Ground truth of generated images: boxes, labels, difficult (ignored) boxes; some images are empty."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_img):
        n = int(rng.integers(0, 5))  # 0: an image without objects
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(20, 100, (n, 2))
        boxes = np.hstack([xy, xy + wh]).astype(np.float32)
        labels = rng.integers(0, NUM_CLASSES - 1, n)
        difficult = rng.random(n) < 0.2
        images.append(dict(bboxes=boxes[~difficult], labels=labels[~difficult], bboxes_ignore=boxes[difficult],
                           labels_ignore=labels[difficult]))
    return images


def make_detections(images, quality=0.7, jitter=6.0, seed=0, drop_images=0.1, false_positives=2):
    """Detections of a 'model' of the given quality: jittered true boxes (found with probability ``quality``,
    scored higher the better), random false positives, and some images with no detection at all."""
    rng = np.random.default_rng(seed)
    out = []
    for gt in images:
        dets = [np.zeros((0, 5), np.float32) for _ in range(NUM_CLASSES)]
        if rng.random() < drop_images:
            out.append(dets)
            continue
        boxes = np.vstack([gt['bboxes'], gt['bboxes_ignore']])
        labels = np.concatenate([gt['labels'], gt['labels_ignore']])
        rows = {c: [] for c in range(NUM_CLASSES)}
        for box, label in zip(boxes, labels):
            if rng.random() < quality:
                b = box + rng.normal(0, jitter, 4)
                rows[int(label)].append(list(b) + [float(np.clip(quality + rng.normal(0, 0.2), 0.01, 1))])
        for _ in range(int(rng.integers(0, false_positives + 1))):
            xy = rng.uniform(0, 200, 2)
            b = np.concatenate([xy, xy + rng.uniform(20, 100, 2)])
            rows[int(rng.integers(0, NUM_CLASSES))].append(list(b) + [float(rng.uniform(0.01, 0.8))])
        for c, r in rows.items():
            if r:
                dets[c] = np.array(r, np.float32)
        out.append(dets)
    return out


def run_voc_metric(images, detections, **kwargs):
    """mmdet's real VOCMetric on data samples built from the generated ground truth and detections."""
    from mmdet.evaluation.metrics import VOCMetric
    metric = VOCMetric(**kwargs)
    metric.dataset_meta = dict(classes=tuple(f'c{i}' for i in range(NUM_CLASSES)))
    samples = []
    for gt, dets in zip(images, detections):
        labels = np.concatenate([np.full(len(d), c) for c, d in enumerate(dets)])
        pred = np.vstack(dets)
        samples.append(dict(
            gt_instances=dict(bboxes=torch.from_numpy(gt['bboxes']).reshape(-1, 4),
                              labels=torch.from_numpy(gt['labels']).long()),
            ignored_instances=dict(bboxes=torch.from_numpy(gt['bboxes_ignore']).reshape(-1, 4),
                                   labels=torch.from_numpy(gt['labels_ignore']).long()),
            pred_instances=dict(bboxes=torch.from_numpy(pred[:, :4]), scores=torch.from_numpy(pred[:, 4]),
                                labels=torch.from_numpy(labels).long())))
    metric.process({}, samples)
    results = list(metric.results)
    return metric, results, metric.compute_metrics(results)


def voc_records(images, detections, eval_mode='11points', iou_thrs=0.5):
    results = [(gt, dets) for gt, dets in zip(images, detections)]
    return match_records(results, NUM_CLASSES, iou_thrs, eval_mode, True, 'default',
                         [f'img{i:03d}' for i in range(len(images))])


# ------------------------------------------------------------------------------------------------------------
# per-image VOC records


@pytest.mark.parametrize('eval_mode', ['11points', 'area'])
def test_voc_records_full_set_equals_voc_metric(eval_mode):
    images = make_images(30, seed=1)
    detections = make_detections(images, seed=2)
    assert any(len(g['bboxes']) + len(g['bboxes_ignore']) == 0 for g in images)  # empty images present
    assert any(sum(len(d) for d in dets) == 0 for dets in detections)  # images without detections
    assert any(len(g['bboxes_ignore']) for g in images)  # difficult boxes present
    metric, results, reported = run_voc_metric(images, detections, eval_mode=eval_mode)
    records = match_records_from_metric(metric, results, [f'img{i:03d}' for i in range(30)])
    assert records.map() == pytest.approx(reported['mAP'], abs=1e-6)
    # a class absent from the ground truth but detected (false positives only) is left out of the mean, as in
    # eval_map: the records keep its detections
    assert (records.labels == NUM_CLASSES - 1).any() and records.n_gt[:, NUM_CLASSES - 1].sum() == 0


def test_voc_records_two_iou_thresholds_equal_voc_metric():
    images = make_images(20, seed=3)
    detections = make_detections(images, seed=4, jitter=12)
    metric, results, reported = run_voc_metric(images, detections, iou_thrs=[0.5, 0.75])
    assert match_records_from_metric(metric, results).map() == pytest.approx(reported['mAP'], abs=1e-6)


@pytest.mark.parametrize('eval_mode', ['11points', 'area'])
def test_voc_records_multiset_equals_eval_map_on_repeated_images(eval_mode):
    """A resample (images repeated) weighted by multiplicity == mmdet's eval_map on the explicit list."""
    from mmdet.evaluation.functional import eval_map
    images = make_images(25, seed=5)
    detections = make_detections(images, seed=6)
    records = voc_records(images, detections, eval_mode)
    rng = np.random.default_rng(0)
    for _ in range(3):
        idx = rng.integers(0, 25, 25)
        expected, _ = eval_map([detections[i] for i in idx], [images[i] for i in idx], iou_thr=0.5,
                               logger='silent', use_legacy_coordinate=True, eval_mode=eval_mode, nproc=1)
        counts = np.bincount(idx, minlength=25)
        assert records.map(counts) == pytest.approx(expected, abs=1e-6)
        assert records.map_batch(counts[None])[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('eval_mode', ['11points', 'area'])
def test_voc_map_batch_equals_map(eval_mode):
    images = make_images(40, seed=7)
    records = voc_records(images, make_detections(images, seed=8), eval_mode, iou_thrs=[0.5, 0.7])
    resamples = B.Resamples.draw(40, 50, seed=3)
    batch = records.map_batch(resamples.counts)
    single = [records.map(c.astype(np.int64)) for c in resamples.counts]
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_voc_records_save_load_roundtrip(tmp_path):
    images = make_images(15, seed=9)
    records = voc_records(images, make_detections(images, seed=10))
    path = records.save(str(tmp_path / 'cell.npz'))
    loaded = load_per_image(path)
    assert loaded.image_ids == records.image_ids and loaded.meta['file'] == path
    assert loaded.map() == records.map()


def test_classifier_correctness():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])
    labels = np.array([1, 1, 0, 2])
    hits = correct_at_k(scores, labels, (1, 2))
    assert hits[1].tolist() == [True, False, False, False]
    assert hits[2].tolist() == [True, True, False, False]
    cell = Correctness(hits, ['a', 'b', 'c', 'd'], 'accuracy/top2')
    assert cell.value() == 50.0
    assert cell.value(np.array([2, 0, 1, 1])) == 50.0  # a, a, c, d
    assert cell.value(np.array([0, 3, 1, 0])) == 75.0
    np.testing.assert_allclose(cell.values(np.array([[2, 0, 1, 1], [0, 3, 1, 0]])), [50.0, 75.0])


def test_classifier_correctness_equals_accuracy_metric():
    """Per-image correctness from the real Accuracy metric's results gives its top-1 / top-5 on the full set."""
    from featquant_mmdet.evaluation.accuracy import Accuracy
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(40, 10, generator=gen)
    scores[:5, :] = 0.5  # ties: ranked as torch.topk ranks them
    labels = torch.randint(0, 10, (40, ), generator=gen)
    metric = Accuracy(topk=(1, 5))
    metric.process({}, [dict(pred_score=s, gt_label=l.reshape(1)) for s, l in zip(scores, labels)])
    expected = metric.compute_metrics(metric.results)
    cells = correctness_from_accuracy_results(metric.results, (1, 5))
    assert cells.value() == pytest.approx(expected['top1'], abs=1e-9)
    assert cells.with_metric('accuracy/top5').value() == pytest.approx(expected['top5'], abs=1e-9)


# ------------------------------------------------------------------------------------------------------------
# bootstrap


def test_resample_counts_match_indices():
    r = B.Resamples.draw(7, 20, seed=1)
    assert r.indices.shape == (20, 7) and (r.counts.sum(axis=1) == 7).all()
    for row, counts in zip(r.indices, r.counts):
        assert np.bincount(row, minlength=7).tolist() == counts.tolist()
    np.testing.assert_array_equal(B.Resamples.draw(7, 20, seed=1).indices, r.indices)  # seeded


def sweep_cells(images, quality, seed, jitter=6.0):
    """A small sweep: clean and two distortions x two levels, as 'models' of decreasing quality."""
    cells = {'clean': voc_records(images, make_detections(images, quality, jitter, seed))}
    for d, name in enumerate(('jpeg', 'ngrn')):
        for level in (1, 2):
            q = quality - 0.15 * level
            cells[f'{name}@{level}'] = voc_records(images, make_detections(images, q, jitter * (1 + level),
                                                                           seed + 10 * (d + 1) + level))
    return cells


def test_bootstrap_interval_covers_full_set_value_and_summaries_are_summaries():
    images = make_images(60, seed=11)
    cells = sweep_cells(images, 0.8, seed=1)
    summary = B.bootstrap_summary(cells, B.Resamples.draw(60, 300, seed=0))
    for key, est in summary.cells.items():
        assert est.point == pytest.approx(cells[key].map())
        low, high = est.interval
        assert low <= est.point <= high and low < high
    # point summaries: summarize()'s formulas on the full-set cell values
    v = {k: c.map() for k, c in cells.items()}
    jpeg, ngrn = (v['jpeg@1'] + v['jpeg@2']) / 2, (v['ngrn@1'] + v['ngrn@2']) / 2
    assert summary.P.point == v['clean']
    assert summary.per_distortion['jpeg'].point == pytest.approx(jpeg)
    assert summary.mPC.point == pytest.approx((jpeg + ngrn) / 2)
    assert summary.rPC.point == pytest.approx((jpeg + ngrn) / 2 / v['clean'])
    # and per resample: the summary of the resampled cells
    s = summary.cells
    np.testing.assert_allclose(summary.mPC.samples, (s['jpeg@1'].samples + s['jpeg@2'].samples + s['ngrn@1'].samples
                                                     + s['ngrn@2'].samples) / 4)
    np.testing.assert_allclose(summary.rPC.samples, summary.mPC.samples / s['clean'].samples)
    for est in (summary.P, summary.mPC, summary.rPC):
        assert est.low <= est.point <= est.high


def test_paired_interval_of_a_model_against_itself_is_exactly_zero():
    images = make_images(40, seed=12)
    cells = sweep_cells(images, 0.7, seed=3)
    r = B.Resamples.draw(40, 200, seed=5)
    a, b = B.bootstrap_summary(cells, r), B.bootstrap_summary(cells, r)
    diffs = B.paired_differences(a, b)
    assert {'cell/clean', 'P', 'mean/jpeg', 'mPC', 'rPC'} <= set(diffs)
    for diff in diffs.values():
        assert diff.point == 0.0 and diff.interval == (0.0, 0.0) and not diff.excludes_zero


def test_paired_interval_excludes_zero_when_b_is_better_on_every_image():
    images = [g for g in make_images(60, seed=13) if len(g['bboxes'])]
    perfect = [[np.hstack([g['bboxes'][g['labels'] == c], np.full(((g['labels'] == c).sum(), 1), 0.9, np.float32)])
                for c in range(NUM_CLASSES)] for g in images]
    worse = []  # the same detections plus, on every image, a confident false positive
    for g, dets in zip(images, perfect):
        c = int(g['labels'][0])
        fp = np.array([[400, 400, 450, 450, 0.95]], np.float32)
        worse.append([np.vstack([d, fp]) if k == c else d for k, d in enumerate(dets)])
    r = B.Resamples.draw(len(images), 300, seed=0)
    a = B.bootstrap_summary({'clean': voc_records(images, worse)}, r)
    b = B.bootstrap_summary({'clean': voc_records(images, perfect)}, r)
    diff = B.paired_differences(a, b)['P']
    assert diff.point > 0 and diff.low > 0 and diff.excludes_zero
    assert compare_single_runs(a, b)['P'][1] == 'better'
    # classifier: B right wherever A is, and on more images
    hits_a = np.arange(50) % 2 == 0
    ca = Correctness({1: hits_a}, [str(i) for i in range(50)])
    cb = Correctness({1: np.ones(50, bool)}, [str(i) for i in range(50)])
    r = B.Resamples.draw(50, 500, seed=1)
    d = B.paired_difference(B.cell_estimates({'clean': ca}, r)['clean'], B.cell_estimates({'clean': cb}, r)['clean'])
    assert d.point == 50.0 and d.excludes_zero


def test_two_noisy_runs_of_the_same_model_show_no_detectable_difference():
    """Same generator quality, other random seeds (detections jittered differently): the paired interval of
    the difference contains 0 for every column (fixed seeds: deterministic)."""
    images = make_images(80, seed=14)
    r = B.Resamples.draw(80, 500, seed=0)
    a = B.bootstrap_summary(sweep_cells(images, 0.7, seed=100), r)
    b = B.bootstrap_summary(sweep_cells(images, 0.7, seed=200), r)
    verdicts = compare_single_runs(a, b)
    assert set(verdicts) >= {'P', 'mPC', 'rPC', 'cell/clean'}
    for col, (diff, text) in verdicts.items():
        assert text == 'no detectable difference at 95%', (col, diff.point, diff.interval)
        assert diff.low < 0 < diff.high


def test_corruption_error_against_reference():
    ids = [str(i) for i in range(30)]
    rng = np.random.default_rng(0)
    model = {k: Correctness({1: rng.random(30) < p}, ids) for k, p in
             (('clean', 0.9), ('jpeg@1', 0.7), ('jpeg@2', 0.5))}
    ref = {k: Correctness({1: rng.random(30) < p}, ids) for k, p in
           (('clean', 0.8), ('jpeg@1', 0.6), ('jpeg@2', 0.3))}
    s = B.bootstrap_summary(model, B.Resamples.draw(30, 100, seed=2), reference_cells=ref, full_scale=100.0)
    err = sum(100 - model[k].value() for k in ('jpeg@1', 'jpeg@2'))
    err_ref = sum(100 - ref[k].value() for k in ('jpeg@1', 'jpeg@2'))
    assert s.CE['jpeg'].point == pytest.approx(err / err_ref) and s.mCE.point == pytest.approx(err / err_ref)
    same = B.bootstrap_summary(ref, B.Resamples.draw(30, 100, seed=2), reference_cells=ref, full_scale=100.0)
    np.testing.assert_array_equal(same.mCE.samples, 1.0)


def test_paired_differences_refuse_other_resamples():
    ids = [str(i) for i in range(10)]
    cell = {'clean': Correctness({1: np.arange(10) % 2 == 0}, ids)}
    a = B.bootstrap_summary(cell, B.Resamples.draw(10, 20, seed=0))
    b = B.bootstrap_summary(cell, B.Resamples.draw(10, 20, seed=1))
    with pytest.raises(StatsInputError, match='same resamples'):
        B.paired_differences(a, b)


# ------------------------------------------------------------------------------------------------------------
# seeds


def test_seed_aggregation_equals_hand_computation():
    runs = {'ZF': {0: {'P': 90.0, 'mPC': 70.0}, 1: {'P': 92.0, 'mPC': 74.0}, 2: {'P': 94.0, 'mPC': 72.0}},
            'ZF+POW-1': {0: {'P': 93.0, 'mPC': 71.0}, 1: {'P': 95.0, 'mPC': 73.5}, 2: {'P': 97.5, 'mPC': 72.0}}}
    study = aggregate_seeds(runs)
    t975_2 = 4.302652729749464  # scipy.stats.t.ppf(0.975, 2)
    p = study.stats['ZF']['P']
    assert (p.mean, p.n) == (92.0, 3)
    assert p.high - p.mean == pytest.approx(t975_2 * 2.0 / math.sqrt(3))  # sd of 90, 92, 94 is 2
    d = study.diffs['ZF+POW-1']['P']  # per-seed differences 3, 3, 3.5: mean 19/6, sd sqrt(1/12)
    assert d.mean == pytest.approx(19 / 6)
    assert d.low == pytest.approx(19 / 6 - t975_2 * math.sqrt(1 / 12) / math.sqrt(3))
    assert study.verdicts['ZF+POW-1']['P'] == 'better'
    assert study.verdicts['ZF+POW-1']['mPC'] == 'no detectable difference at 95%'  # diffs 1, -0.5, 0
    lines = verdict_lines(study)
    assert any(line.startswith('P: ZF+POW-1 - ZF = +3.17 [') and line.endswith('better') for line in lines)


def test_seed_intervals_of_percentages_are_cut_to_their_range():
    """98.45 [93.03, 103.87] was printed once: a mean accuracy's interval now stops at 100 (and 0), a difference's
    at +-100; ratios (rPC, mCE) are left as they are."""
    from featquant_mmdet.stats.seeds import percent_bounds
    values = [99.9, 92.0, 100.0]
    plain, cut = t_interval(values), t_interval(values, bounds=(0.0, 100.0))
    assert plain.high > 100 and cut.high == 100.0 and cut.low == plain.low and cut.mean == plain.mean
    runs = {'A': {s: {'Original': v, 'rPC': v + 5} for s, v in enumerate([2.0, 0.5, 9.0])},
            'B': {s: {'Original': v, 'rPC': v + 5} for s, v in enumerate(values)}}
    study = aggregate_seeds(runs, bounds=percent_bounds)
    assert study.stats['B']['Original'].high == 100.0 and study.stats['A']['Original'].low == 0.0
    assert study.stats['B']['rPC'].high > 105  # not cut
    d = study.diffs['B']['Original']
    raw = t_interval([97.9, 91.5, 91.0])  # the per-seed differences: their interval reaches past +100
    assert raw.high > 100 and d.high == 100.0 and d.low == pytest.approx(raw.low)
    assert percent_bounds('mCE') is None and percent_bounds('CE/JPEG') is None and percent_bounds('mPC') == (0, 100)


def test_seed_aggregation_with_one_seed_has_no_interval():
    stat = t_interval([81.5])
    assert stat.mean == 81.5 and stat.low is None and stat.high is None and not stat.defined
    study = aggregate_seeds({'A': {0: {'mCE': 1.0}}, 'B': {0: {'mCE': 0.9}}})
    assert study.verdicts['B']['mCE'] == 'interval undefined with 1 seed (need at least 2)'
    study = aggregate_seeds({v: {0: {'mCE': x, 'mPC': 60.0 + x}} for v, x in (('A', 1.0), ('B', 0.9), ('C', 0.8))})
    assert verdict_lines(study) == [  # one line per variant, not a line per column saying "undefined"
        f'{v} - A: no verdict, 1 seed paired by seed (a t-interval over seeds needs at least 2); the differences are '
        'in the table' for v in ('B', 'C')]
    assert F.format_entry(study.stats['A']['mCE']) == '1.00'  # the value alone, no fake interval


def test_equal_per_seed_differences_give_no_interval_and_no_verdict():
    """Two seeds whose differences are both +0.83 (top-1 on 120 images moves in 0.83-point steps) have sd 0: the
    t-test has no spread to estimate, so no zero-width interval, no p = 0 and no Holm-surviving verdict; the column
    leaves the Holm family. Seen in table2's seeds 1-2 (a "better" and a "worse" from two equal differences)."""
    runs = {'A': {0: {'Clean': 70.0, 'JPEG': 60.0, 'Mix.': 50.0}, 1: {'Clean': 75.0, 'JPEG': 61.0, 'Mix.': 52.0}},
            'B': {0: {'Clean': 70.83, 'JPEG': 65.0, 'Mix.': 49.0}, 1: {'Clean': 75.83, 'JPEG': 61.5, 'Mix.': 48.0}}}
    from featquant_mmdet.stats.seeds import percent_bounds
    study = aggregate_seeds(runs, bounds=percent_bounds)
    d = study.diffs['B']['Clean']
    assert d.mean == pytest.approx(0.83) and d.sd == pytest.approx(0.0, abs=1e-12)
    assert not d.defined and not d.excludes_zero and np.isnan(d.p)
    assert study.verdicts['B']['Clean'] == ('interval undefined: the 2 values are all equal (+0.83), no spread over '
                                            'seeds to estimate (more seeds needed)')
    assert np.isnan(study.p_adjusted['B']['Clean']) and study.family_size('B') == 2  # JPEG and Mix. only
    assert study.diffs['B']['JPEG'].defined and study.verdicts['B']['JPEG'] == 'no detectable difference at 95%'
    lines = verdict_lines(study)
    assert lines[0].startswith('Clean: B - A = +0.83 (95% t-interval over 2 seeds, paired by seed): interval '
                               'undefined: the 2 values')
    assert 'over the 2 columns' in lines[1]
    assert F.format_entry(study.diffs['B']['Clean'], signed=True) == '+0.83'  # the value alone
    same = t_interval([81.5, 81.5, 81.5])  # a mean over seeds too: no zero-width interval
    assert same.mean == 81.5 and not same.defined and same.n == 3
    assert t_interval([81.5, 82.0]).defined  # any spread: an interval


def test_seed_verdict_direction_of_mce():
    runs = {'A': {s: {'mCE': 1.0 + 0.01 * s} for s in range(3)}, 'B': {s: {'mCE': 0.8 + 0.01 * s} for s in range(3)}}
    runs['B'][1]['mCE'] = 0.815
    assert aggregate_seeds(runs).verdicts['B']['mCE'] == 'better'  # lower corruption error


# ------------------------------------------------------------------------------------------------------------
# bad input


def test_mismatched_test_sets_and_seeds_name_the_file():
    a = {'file': 'work/zf/robustness.json', 'image_ids': ['1', '2', '3'], 'distortion_seed': 0}
    with pytest.raises(StatsInputError, match=r'work/pow/robustness.json: 2 test images instead of 3'):
        check_same_identity([a, dict(a, file='work/pow/robustness.json', image_ids=['1', '2'])])
    with pytest.raises(StatsInputError, match=r"pow.json: other test images: e.g. \['4'\] instead of \['3'\]"):
        check_same_identity([a, dict(a, file='pow.json', image_ids=['1', '2', '4'])])
    with pytest.raises(StatsInputError, match='pow.json: the same test images in another order'):
        check_same_identity([a, dict(a, file='pow.json', image_ids=['1', '3', '2'])])
    with pytest.raises(StatsInputError, match="pow.json: distortion_seed 1 differs from work/zf/robustness.json's 0"):
        check_same_identity([a, dict(a, file='pow.json', distortion_seed=1)])
    with pytest.raises(StatsInputError, match='old.json: no image ids .per-image data missing'):
        check_same_identity([a, {'file': 'old.json', 'distortion_seed': 0}])
    check_same_identity([a, dict(a, file='copy.json')])  # the same identity passes


def test_missing_or_foreign_per_image_data_name_the_file(tmp_path):
    ids = ['a', 'b', 'c']
    with pytest.raises(StatsInputError, match=r"old.json: no per-image data for cell\(s\) \['jpeg@1'\]"):
        check_cells_present({'clean': Correctness({1: [1, 0, 1]}, ids)}, ['clean', 'jpeg@1'], {'file': 'old.json'})
    path = Correctness({1: [1, 0, 1]}, ['a', 'b', 'x']).save(str(tmp_path / 'clean.npz'))
    with pytest.raises(StatsInputError, match=r"clean.npz: cell 'clean': other test images"):
        check_cells_match_identity({'clean': load_per_image(path)}, {'file': 'r.json', 'image_ids': ids})
    np.savez(str(tmp_path / 'bad.npz'), scores=np.zeros(3))
    with pytest.raises(StatsInputError, match='bad.npz is not a per-image results file: no meta'):
        load_per_image(str(tmp_path / 'bad.npz'))
    with pytest.raises(StatsInputError, match='per-image file not found: .*gone.npz'):
        load_per_image(str(tmp_path / 'gone.npz'))
    records = voc_records(make_images(5), make_detections(make_images(5)))
    full = records.save(str(tmp_path / 'voc.npz'))
    with np.load(full) as data:
        kept = {k: data[k] for k in data.files if k != 'tp'}
    np.savez(str(tmp_path / 'cut.npz'), **kept)
    with pytest.raises(StatsInputError, match=r"cut.npz: per-image VOC data incomplete, missing \['tp'\]"):
        load_per_image(str(tmp_path / 'cut.npz'))
    with pytest.raises(StatsInputError, match='resamples were drawn for 4'):
        B.cell_estimates({'clean': records}, B.Resamples.draw(4, 10))


# ------------------------------------------------------------------------------------------------------------
# formatting and the plot


def test_formatting_of_intervals_and_tables():
    assert F.format_interval(12.3456, 10.0, 14.5) == '12.35 [10.00, 14.50]'
    assert F.format_interval(1.5, 0.2, 2.0, signed=True, marker=True) == '+1.50 [+0.20, +2.00]*'
    assert F.format_interval(None) == '-'
    est = B.Estimate(0.5, np.linspace(0.4, 0.6, 101))
    assert F.format_entry(est, scale=100) == '50.00 [40.20, 59.80]'  # 2nd smallest / largest of 101
    lines = F.markdown_table(['Original', 'mPC'], [[est, (0.1, -0.05, 0.2)], [None, (0.2, 0.1, 0.3)]],
                             ['ZF', 'POW'], 0.95, scale=100, signed=True, mark=True)
    assert lines[0] == '| Model | Original (95% CI) | mPC (95% CI) |'
    assert lines[2] == '| ZF | +50.00 [+40.20, +59.80]* | +10.00 [-5.00, +20.00] |'
    assert lines[3] == '| POW | - | +20.00 [+10.00, +30.00]* |'
    text = F.csv_table(['mPC'], [[(0.2, 0.1, 0.3)]], ['POW'], 0.9, row_kind='diff_to_ZF', scale=100)
    assert text.splitlines() == ['model,row,mPC,mPC low (90%),mPC high (90%),mPC excludes 0',
                                 'POW,diff_to_ZF,20.0000,10.0000,30.0000,1']


def test_plot_curves_with_bands(tmp_path):
    from PIL import Image
    panels = {'Jpeg': {'ZF': ([0, 1, 2], [90, 80, 60], [88, 77, 55], [92, 83, 65]),
                       'ZF+POW-1': ([0, 1, 2], [91, 84, 66], [89, 81, 61], [93, 87, 70])},
              'Mixtures': {'ZF': ([0, 1, 2], [90, 70, 50], None, None)}}
    out = plot_curves_with_bands(panels, str(tmp_path / 'levels.png'), 'mAP (%)', level=0.95,
                                 xticklabels={'Mixtures': ['Clean', 'Mix.Minor', 'Mix.Heavy']})
    with Image.open(out) as im:
        assert im.size == (640, 270)
        pixels = np.asarray(im.convert('RGB')).reshape(-1, 3)
    # the bands: light tints of the line colours (alpha 0.2 over white) are present
    assert ((pixels.min(axis=1) > 190) & (pixels.max(axis=1) < 250) & (np.ptp(pixels, axis=1) > 20)).mean() > 0.01
    assert osp.getsize(out) > 1000


def test_level_panels_from_bootstrap_summaries(tmp_path):
    ids = [str(i) for i in range(20)]
    rng = np.random.default_rng(3)
    cells = {k: Correctness({1: rng.random(20) < p}, ids) for k, p in
             (('clean', 0.9), ('jpeg@1', 0.7), ('jpeg@2', 0.5), ('mix_minor', 0.6), ('mix_heavy', 0.3))}
    r = B.Resamples.draw(20, 50, seed=0)
    summaries = {'A': B.bootstrap_summary(cells, r), 'B': B.bootstrap_summary(cells, r)}
    panels, ticks = level_panels(summaries, title=str.upper)
    assert list(panels) == ['JPEG', 'Mixtures'] and ticks == {'Mixtures': ['Clean', 'MIX_MINOR', 'MIX_HEAVY']}
    xs, ys, lows, highs = panels['JPEG']['A']
    assert xs == [0, 1, 2] and ys == [cells[k].value() for k in ('clean', 'jpeg@1', 'jpeg@2')]
    assert all(lo <= y <= hi for lo, y, hi in zip(lows, ys, highs))
    assert panels['Mixtures']['B'][0] == [0, 1, 2]
    assert osp.isfile(plot_curves_with_bands(panels, str(tmp_path / 'f.png'), 'top-1 (%)', 0.95, xticklabels=ticks))


def test_no_import_cycle_among_stats_modules():
    """Every ``from .module import`` inside featquant_mmdet/stats (module level or in a function) forms an
    acyclic graph: records.py reads a kind's module by name, the kind modules import records, never the reverse."""
    import ast
    import glob
    folder = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'featquant_mmdet', 'stats')
    graph = {}
    for path in glob.glob(osp.join(folder, '*.py')):
        name = osp.splitext(osp.basename(path))[0]
        tree = ast.parse(open(path).read())
        graph[name] = {node.module for node in ast.walk(tree)
                       if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    assert {'voc_matches', 'correctness', 'records', 'bootstrap'} <= set(graph)

    def visit(name, path):
        assert name not in path, f'import cycle: {" -> ".join(path + [name])}'
        for dep in graph.get(name, ()):
            visit(dep, path + [name])

    for name in graph:
        visit(name, [])
