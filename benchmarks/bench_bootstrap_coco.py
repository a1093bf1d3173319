"""Bootstrap of one COCO cell from its per-image records: time and peak memory against the number of test images.

A cell's records (:class:`featquant_mmdet.stats.coco_records.COCORecords`) are generated directly with COCO's
shape: ``--categories`` categories (80), ``--dets-per-image`` detections per image (100, mmdet's ``max_per_img``),
~7.3 ground-truth boxes per image (COCO val2017: 36,781 in 5000 images) of which 41 / 34 / 25 % small / medium /
large and 1 % crowd, 80 % of them found by one detection with an IoU drawn in [0.5, 1), the rest false positives.
The statuses are what ``COCOeval.evaluateImg`` gives such a cell (true positive up to the detection's IoU, ignored
outside an area range or on a crowd box); tests/test_coco_records.py checks the accumulation against pycocotools.

For each size (``--images``; by default 80, 1250, 2500, 5000, so the growth per doubling shows), the median of
``--repeats`` runs of ``values(counts)`` on ``--resamples`` resamples (1000) for ``--metric`` (coco/bbox_mAP),
and its peak of traced allocations (``tracemalloc``: numpy and scipy arrays) beside the bytes the records keep.

    python benchmarks/bench_bootstrap_coco.py [--images 80 1250 2500 5000] [--resamples 1000] [--repeats 3]
"""
import argparse
import os.path as osp
import statistics
import sys
import time
import tracemalloc

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

IOU_THRS = np.linspace(.5, 0.95, 10)
AREAS = ('all', 'small', 'medium', 'large')
AREA_RNGS = [[0, 1e10], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e10]]
TARGET = dict(seconds=10.0, megabytes=500.0)  # issue 26, per cell at 5000 images, 1000 resamples


def make_records(n_images, n_cats=80, dets_per_image=100, seed=0, gt_per_image=7.3, found=0.8):
    """COCORecords of a generated cell (see the module doc)."""
    from featquant_mmdet.stats.coco_records import FP, IGNORED, IGNORED_MATCHED, TP, COCORecords
    rng = np.random.default_rng(seed)
    cat_p = 1.0 / np.arange(1, n_cats + 1)  # a few frequent categories (person), many rare ones
    cat_p /= cat_p.sum()
    n_gt = rng.poisson(gt_per_image, n_images)
    gt_img = np.repeat(np.arange(n_images), n_gt)
    g = gt_img.size
    gt_cat = rng.choice(n_cats, g, p=cat_p)
    gt_area = rng.choice(3, g, p=[0.41, 0.34, 0.25]) + 1  # index into AREAS
    gt_crowd = rng.random(g) < 0.01
    npig = np.zeros((n_images, n_cats, 4), np.int32)
    ok = ~gt_crowd
    np.add.at(npig, (gt_img[ok], gt_cat[ok], 0), 1)
    np.add.at(npig, (gt_img[ok], gt_cat[ok], gt_area[ok]), 1)
    # hits: one detection for a found gt (crowd boxes: one or two)
    hit = rng.random(g) < found
    h_gt = np.flatnonzero(hit)
    h_iou = rng.uniform(0.5, 1.0, h_gt.size)
    n_fp = np.maximum(dets_per_image - np.bincount(gt_img[h_gt], minlength=n_images), 0)
    fp_img = np.repeat(np.arange(n_images), n_fp)
    f = fp_img.size
    images = np.concatenate([gt_img[h_gt], fp_img])
    cats = np.concatenate([gt_cat[h_gt], rng.choice(n_cats, f, p=cat_p)])
    scores = np.concatenate([rng.uniform(0.2, 1.0, h_gt.size), rng.uniform(0.0, 0.8, f)])
    det_area = np.concatenate([gt_area[h_gt], rng.choice(3, f, p=[0.5, 0.3, 0.2]) + 1])
    matched = np.zeros((images.size, IOU_THRS.size), bool)
    matched[:h_gt.size] = h_iou[:, None] >= IOU_THRS
    ignored_gt = np.zeros(images.size, bool)
    ignored_gt[:h_gt.size] = gt_crowd[h_gt]
    codes = np.empty((images.size, 4, IOU_THRS.size), np.uint8)
    for a in range(4):
        inside = np.ones(images.size, bool) if a == 0 else det_area == a
        gt_ignored = ignored_gt.copy()
        if a:
            gt_ignored[:h_gt.size] |= gt_area[h_gt] != a
        code = np.where(matched, np.where(gt_ignored[:, None], IGNORED_MATCHED, TP),
                        np.where(inside[:, None], FP, IGNORED))
        codes[:, a, :] = code
    order = np.lexsort((-scores, images, cats))
    images, cats, scores, codes = images[order], cats[order], scores[order], codes[order]
    first = np.r_[True, (images[1:] != images[:-1]) | (cats[1:] != cats[:-1])]
    starts = np.flatnonzero(first)
    ranks = np.arange(images.size) - np.repeat(starts, np.diff(np.r_[starts, images.size]))
    meta = dict(iou_type='bbox', cat_ids=list(range(1, n_cats + 1)), iou_thrs=IOU_THRS.tolist(),
                rec_thrs=np.linspace(0, 1, 101).tolist(), max_dets=[100, 300, 1000], area_rngs=AREA_RNGS,
                area_labels=list(AREAS))
    return COCORecords(scores, images, cats, ranks, codes, npig, [str(i) for i in range(n_images)],
                       'coco/bbox_mAP', meta)


def measure(records, counts, repeats):
    records.values(counts[:2])  # imports (scipy.sparse) and the sorted order outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        values = records.values(counts)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    records.values(counts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak, values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, nargs='+', default=[80, 1250, 2500, 5000])
    parser.add_argument('--categories', type=int, default=80)
    parser.add_argument('--dets-per-image', type=int, default=100)
    parser.add_argument('--resamples', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--metric', default='coco/bbox_mAP', help='e.g. coco/bbox_mAP_s, coco/bbox_AR@100')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.images) < 1 or args.resamples < 1 or args.repeats < 1:
        parser.error('--images, --resamples and --repeats must be positive')
    from featquant_mmdet.stats.bootstrap import Resamples
    from featquant_mmdet.stats.coco_records import parse_metric
    try:
        parse_metric(args.metric)
    except ValueError as err:
        parser.error(str(err))
    print(f'{args.metric}: {args.resamples} resamples, {args.categories} categories, {args.dets_per_image} '
          f'detections/image, median of {args.repeats}')
    print(f'{"images":>7} {"detections":>10} {"value":>7} {"seconds":>8} {"x prev":>6} {"peak MB":>8} '
          f'{"kept MB":>8}')
    previous = None
    for n in args.images:
        records = make_records(n, args.categories, args.dets_per_image, args.seed).with_metric(args.metric)
        counts = Resamples.draw(n, args.resamples, args.seed).counts
        seconds, peak, values = measure(records, counts, args.repeats)
        kept = sum(getattr(records, k).nbytes for k in records._ARRAYS)
        growth = f'{seconds / previous:6.2f}' if previous else f'{"":>6}'
        print(f'{n:7d} {records.scores.size:10d} {records.value():7.4f} {seconds:8.2f} {growth} '
              f'{peak / 2 ** 20:8.1f} {kept / 2 ** 20:8.1f}')
        previous = seconds
    print(f'target at 5000 images: <= {TARGET["seconds"]:g} s and <= {TARGET["megabytes"]:g} MB per cell')


if __name__ == '__main__':
    main()
