"""What bootstrap intervals add to a robustness sweep: per-image VOC records + 1000 resamples of every cell.

A detector sweep's cells on the demo's test split (80 images, VOC's 20 classes), with generated ground truth and
detections of a model of middling quality (up to ``--dets-per-image`` boxes per image: the ZF config keeps at most
100 at score >= 0.05). ``--cells`` is the number of cells (43: the detector preset ``all``, 10 distortions x 4
levels + 2 mixtures + clean; the demo itself sweeps 3). Measured in this process, medians of ``--repeats``:

* ``records``: matching every image's detections once (``match_records``, mmdet's ``tpfp_default``), all cells;
* ``bootstrap``: ``bootstrap_summary`` (every cell and summary) on ``--resamples`` resamples, all cells;
* reference 1, ``eval_map``: mmdet's ``eval_map`` of one cell as VOCMetric runs it (11 points, legacy
  coordinates, its default 4 processes), i.e. what each cell of the sweep already pays for its mAP;
* reference 2, ``naive``: ``eval_map`` from scratch on each resample (single process), timed on
  ``--naive-resamples`` resamples and scaled to ``--resamples``: the way the records avoid.

The share of a sweep's wall time uses the measured time per cell of the demo (docs/demo.md: 3 cells x 80 images
in 129 s, 43 s per cell; ``--cell-seconds``), since a sweep with a model cannot run in this benchmark's budget.

    python benchmarks/bench_bootstrap.py [--cells 43] [--resamples 1000] [--dets-per-image 100] [--repeats 3]

``--population N``: instead, the bias check of docs/statistics.md: mAP on N generated images (the "population")
against 80-image subsets of it (mean over disjoint subsets), and the bootstrap bias and percentile interval of
three subsets.
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

NUM_CLASSES = 20
TARGET_SHARE = 0.10


def make_cell(n_images, dets_per_image, seed, quality=0.6, num_classes=NUM_CLASSES):
    """(results as VOCMetric keeps them, image ids) of one cell: GT and detections of a middling model."""
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(n_images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.hstack([xy, xy + rng.uniform(30, 150, (n, 2))]).astype(np.float32)
        labels = rng.integers(0, num_classes, n)
        difficult = rng.random(n) < 0.1
        ann = dict(bboxes=boxes[~difficult], labels=labels[~difficult], bboxes_ignore=boxes[difficult],
                   labels_ignore=labels[difficult])
        k = int(rng.integers(dets_per_image // 2, dets_per_image + 1))
        src = rng.integers(0, n, k)
        found = rng.random(k) < quality
        det_boxes = np.where(found[:, None], boxes[src] + rng.normal(0, 8, (k, 4)),
                             np.hstack([rng.uniform(0, 300, (k, 2))] * 2) + [0, 0, 60, 60])
        det_labels = np.where(found, labels[src], rng.integers(0, num_classes, k))
        scores = np.where(found, rng.uniform(0.3, 1.0, k), rng.uniform(0.05, 0.7, k))
        dets = [np.hstack([det_boxes[det_labels == c], scores[det_labels == c, None]]).astype(np.float32)
                for c in range(num_classes)]
        results.append((ann, dets))
    return results


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cells', type=int, default=43)
    parser.add_argument('--images', type=int, default=80)
    parser.add_argument('--resamples', type=int, default=1000)
    parser.add_argument('--dets-per-image', type=int, default=100)
    parser.add_argument('--naive-resamples', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--cell-seconds', type=float, default=43.0,
                        help='wall time of one sweep cell (demo: 129 s for 3 cells of 80 images, docs/demo.md)')
    parser.add_argument('--classes', type=int, default=NUM_CLASSES, help='20: VOC; the demo\'s generated set has 3')
    parser.add_argument('--population', type=int, default=0)
    args = parser.parse_args(argv)
    if args.population:
        return population_check(args)

    from mmdet.evaluation.functional import eval_map

    from featquant_mmdet.stats.bootstrap import Resamples, bootstrap_summary
    from featquant_mmdet.stats.voc_matches import match_records

    cells_results = [make_cell(args.images, args.dets_per_image, seed, num_classes=args.classes)
                     for seed in range(args.cells)]
    keys = ['clean'] + [f'd{i // 4}@{i % 4 + 1}' for i in range(args.cells - 1)]
    ids = [f'{i:06d}' for i in range(args.images)]

    def build():
        return {k: match_records(r, args.classes, 0.5, '11points', True, 'default', ids)
                for k, r in zip(keys, cells_results)}

    t_records, cells = median_time(build, args.repeats)
    resamples = Resamples.draw(args.images, args.resamples, seed=0)

    def boot():
        for cell in cells.values():
            cell._points = None  # cold: the per-cell matrices are built inside the timed call
        return bootstrap_summary(cells, resamples)

    t_boot, summary = median_time(boot, args.repeats)

    dets0, anns0 = [d for _, d in cells_results[0]], [a for a, _ in cells_results[0]]
    t_eval, (map0, _) = median_time(lambda: eval_map(dets0, anns0, iou_thr=0.5, logger='silent', eval_mode='11points',
                                                     use_legacy_coordinate=True), args.repeats)
    assert abs(map0 - cells['clean'].map()) < 1e-6, (map0, cells['clean'].map())

    def naive():
        for row in resamples.indices[:args.naive_resamples]:
            eval_map([dets0[i] for i in row], [anns0[i] for i in row], iou_thr=0.5, logger='silent',
                     eval_mode='11points', use_legacy_coordinate=True, nproc=1)

    t_naive, _ = median_time(naive, 1)
    t_naive_cell = t_naive / args.naive_resamples * args.resamples
    n_records = sum(len(c.scores) for c in cells.values())

    per_cell = (t_records + t_boot) / args.cells
    sweep = args.cells * args.cell_seconds
    print(f'{args.cells} cells x {args.images} images x {args.resamples} resamples, {args.classes} classes, '
          f'{n_records / args.cells:.0f} detections per cell (medians of {args.repeats})')
    print(f'  records (match once, all cells)      {t_records:8.3f} s   ({t_records / args.cells * 1e3:.1f} ms/cell)')
    print(f'  bootstrap (all cells + summaries)    {t_boot:8.3f} s   ({t_boot / args.cells * 1e3:.1f} ms/cell)')
    print(f'  reference: eval_map of one cell      {t_eval:8.3f} s   -> records+bootstrap per cell = '
          f'{per_cell / t_eval:.2f} x one eval_map')
    print(f'  reference: eval_map per resample     {t_naive_cell:8.1f} s per cell for {args.resamples} resamples '
          f'(from {args.naive_resamples}) -> bootstrap is {t_naive_cell / (t_boot / args.cells):.0f}x faster')
    share = (t_records + t_boot) / sweep
    print(f'  share of the sweep ({args.cells} cells x {args.cell_seconds:.0f} s measured per demo cell = '
          f'{sweep:.0f} s): {share * 100:.2f}% (target < {TARGET_SHARE * 100:.0f}%)')
    print(f'  example: P = {summary.P.point:.4f} [{summary.P.low:.4f}, {summary.P.high:.4f}] '
          f'(bootstrap bias {summary.P.bias:+.4f}), mPC = {summary.mPC.point:.4f} '
          f'[{summary.mPC.low:.4f}, {summary.mPC.high:.4f}] (bias {summary.mPC.bias:+.4f})')
    return share


def population_check(args):
    from featquant_mmdet.stats.bootstrap import Resamples, bootstrap_summary
    from featquant_mmdet.stats.voc_matches import match_records

    results = make_cell(args.population, args.dets_per_image, seed=7, num_classes=args.classes)
    records = match_records(results, args.classes, 0.5, '11points')
    population = records.map()
    n, subsets = args.images, []
    for k in range(args.population // n):
        counts = np.zeros(args.population, np.int64)
        counts[k * n:(k + 1) * n] = 1
        subsets.append(records.map(counts))
    print(f'{args.classes} classes, {args.dets_per_image} detections per image at most: mAP on {args.population} images {population:.4f}; '
          f'{len(subsets)} disjoint {n}-image subsets: mean {np.mean(subsets):.4f}, sd {np.std(subsets, ddof=1):.4f}'
          f' (excess {np.mean(subsets) - population:+.4f})')
    for k in range(3):
        sub = match_records(results[k * n:(k + 1) * n], args.classes, 0.5, '11points')
        est = bootstrap_summary({'clean': sub}, Resamples.draw(n, args.resamples, seed=0)).P
        print(f'  subset {k}: mAP {est.point:.4f}, {args.resamples} resamples: [{est.low:.4f}, {est.high:.4f}], '
              f'bootstrap bias {est.bias:+.4f}; covers the subset value: {est.low <= est.point <= est.high}, '
              f'the population value: {est.low <= population <= est.high}')


if __name__ == '__main__':
    main()
