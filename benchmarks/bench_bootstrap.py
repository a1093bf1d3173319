"""Cost of bootstrap intervals per cell against the size of the test set: time and peak memory (issue 26).

VOC (``--kind voc``): one cell of the project's record generator (:func:`make_cell`: VOC's 20 classes, 1-5
ground-truth boxes per image of which 10% difficult, 50-100% of ``--dets-per-image`` detections per image from a
middling model), matched once (``match_records``, mmdet's ``tpfp_default``), then its metric on ``--resamples``
resamples (``VOCMatches.values``, what ``bootstrap_summary`` calls per cell). Per size, in this process:

* ``match``: ``match_records`` (once per cell; in a sweep it runs while the cell is evaluated);
* ``bootstrap``: ``values`` on a fresh object (nothing cached), median of ``--repeats``;
* ``peak``: tracemalloc's peak during ``values`` (numpy and scipy allocate through it; the shared (B, n) resample
  counts are allocated before and not counted), a separate run from the timing;
* ``kept``: bytes the cell holds afterwards (its arrays and the cached sparse matrices);
* ``old``: the same for the former quadratic implementation (``stats.voc_reference.map_batch_dense``) up to
  ``--old-max`` images, and whether both give the same values.

``--sweep-cells N``: also ``bootstrap_summary`` of N such cells (every cell and summary) at the largest size, the
interval step of an N-cell sweep (51: the classifier preset, the largest).

COCO (``--kind coco``): not yet measured (:func:`bench_coco`).

    python benchmarks/bench_bootstrap.py [--kind voc] [--sizes 80 1250 2500 5000] [--resamples 1000]
        [--dets-per-image 100] [--repeats 3] [--old-max 2500] [--sweep-cells 51]

``--population N``: instead, the bias check of docs/statistics.md: mAP on N generated images (the "population")
against 80-image subsets of it (mean over disjoint subsets), and the bootstrap bias and interval of three subsets.
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

NUM_CLASSES = 20
TARGETS = {'voc': (2.0, 100e6), 'coco': (10.0, 500e6)}  # per cell at 5000 images: seconds, bytes


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


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def peak_bytes(fn):
    """tracemalloc's peak (bytes) during ``fn()`` above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def kept_bytes(obj, seen=None) -> int:
    """Bytes of the arrays (numpy, scipy.sparse) an object holds through its attributes, lists, tuples, dicts."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if hasattr(obj, 'indptr') and hasattr(obj, 'data'):
        return obj.data.nbytes + obj.indices.nbytes + obj.indptr.nbytes
    if isinstance(obj, dict):
        return sum(kept_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(kept_bytes(v, seen) for v in obj)
    return kept_bytes(vars(obj), seen) if hasattr(obj, '__dict__') else 0


def bench_voc(args):
    from featquant_mmdet.stats.bootstrap import Resamples, bootstrap_summary
    from featquant_mmdet.stats.voc_matches import VOCMatches, match_records
    from featquant_mmdet.stats.voc_reference import map_batch_dense

    def fresh(m):
        return VOCMatches(m.scores, m.tp, m.fp, m.labels, m.images, m.n_gt, m.image_ids, m.meta)

    print(f'VOC: {args.classes} classes, <= {args.dets_per_image} detections per image, {args.resamples} resamples, '
          f'time: median of {args.repeats}; peak: tracemalloc; kept: arrays held after the call')
    print('| images | detections | TPs | match | bootstrap | peak | kept | old bootstrap | old peak | old kept | '
          'same values |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    rows, records = [], None
    for n in args.sizes:
        results = make_cell(n, args.dets_per_image, seed=0, num_classes=args.classes)
        t_match, records = median_time(lambda: match_records(results, args.classes, 0.5, '11points'), 1)
        counts = Resamples.draw(n, args.resamples, seed=0).counts
        t_new, new = median_time(lambda: fresh(records).values(counts), args.repeats)
        cell = fresh(records)
        peak = peak_bytes(lambda: cell.values(counts))
        kept = kept_bytes(cell)
        old = ['-'] * 4
        if n <= args.old_max:
            t_old, ref = median_time(lambda: map_batch_dense(fresh(records), counts), args.repeats)
            # the former map_batch cached its two dense matrices on the cell: their bytes are what it kept
            n_tp = int(records.tp[:, 0].sum())
            old_peak = peak_bytes(lambda: map_batch_dense(fresh(records), counts))
            old_kept = kept_bytes(fresh(records)) + 2 * 4 * n * n_tp
            old = [f'{t_old:.2f} s', f'{old_peak / 1e6:.0f} MB', f'{old_kept / 1e6:.0f} MB',
                   str(bool(np.array_equal(new, ref)))]
        print(f'| {n} | {records.scores.size} | {int(records.tp[:, 0].sum())} | {t_match:.2f} s | {t_new:.2f} s | '
              f'{peak / 1e6:.0f} MB | {kept / 1e6:.1f} MB | ' + ' | '.join(old) + ' |', flush=True)
        rows.append(dict(images=n, match=t_match, bootstrap=t_new, peak=peak, kept=kept))
    seconds, nbytes = TARGETS['voc']
    last = rows[-1]
    print(f'target at 5000 images: <= {seconds:.0f} s and <= {nbytes / 1e6:.0f} MB per cell; at {last["images"]}: '
          f'{last["bootstrap"]:.2f} s, peak {last["peak"] / 1e6:.0f} MB')
    if args.sweep_cells:
        n = args.sizes[-1]
        keys = ['clean'] + [f'd{i // 5}@{i % 5 + 1}' for i in range(args.sweep_cells - 1)]
        cells = {k: fresh(records) if i == 0 else match_records(
            make_cell(n, args.dets_per_image, seed=i, num_classes=args.classes), args.classes, 0.5, '11points')
            for i, k in enumerate(keys)}
        resamples = Resamples.draw(n, args.resamples, seed=0)
        start = time.perf_counter()
        summary = bootstrap_summary(cells, resamples)
        wall = time.perf_counter() - start
        print(f'{args.sweep_cells}-cell sweep at {n} images: bootstrap_summary (every cell and summary, '
              f'{args.resamples} resamples) {wall:.1f} s (target <= 120 s); mPC = {summary.mPC.point:.4f} '
              f'[{summary.mPC.low:.4f}, {summary.mPC.high:.4f}] ({summary.mPC.method}, bias {summary.mPC.bias:+.4f})')
        rows.append(dict(sweep_cells=args.sweep_cells, wall=wall))
    return rows


def bench_coco(args):
    """COCO per-image records (80 categories, 100 detections per image): issue 26's second kind, to be added here
    with the same columns as :func:`bench_voc`."""
    raise SystemExit('--kind coco: not measured yet (COCO per-image records come with stats.coco_records)')


KINDS = {'voc': bench_voc, 'coco': bench_coco}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kind', choices=sorted(KINDS), default='voc')
    parser.add_argument('--sizes', type=int, nargs='+', default=[80, 1250, 2500, 5000], help='test images')
    parser.add_argument('--images', type=int, default=80, help='--population: the subsets\' size')
    parser.add_argument('--resamples', type=int, default=1000)
    parser.add_argument('--dets-per-image', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--old-max', type=int, default=2500, help='largest size the quadratic reference runs at')
    parser.add_argument('--sweep-cells', type=int, default=0)
    parser.add_argument('--classes', type=int, default=NUM_CLASSES, help='20: VOC; the demo\'s generated set has 3')
    parser.add_argument('--population', type=int, default=0)
    args = parser.parse_args(argv)
    for name in ('sizes', 'resamples', 'repeats', 'classes', 'dets_per_image'):
        value = getattr(args, name)
        if min(value if isinstance(value, list) else [value]) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {value}')
    if args.population:
        return population_check(args)
    return KINDS[args.kind](args)


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
    print(f'{args.classes} classes, {args.dets_per_image} detections per image at most: mAP on {args.population} '
          f'images {population:.4f}; '
          f'{len(subsets)} disjoint {n}-image subsets: mean {np.mean(subsets):.4f}, sd {np.std(subsets, ddof=1):.4f}'
          f' (excess {np.mean(subsets) - population:+.4f})')
    for k in range(3):
        sub = match_records(results[k * n:(k + 1) * n], args.classes, 0.5, '11points')
        est = bootstrap_summary({'clean': sub}, Resamples.draw(n, args.resamples, seed=0)).P
        print(f'  subset {k}: mAP {est.point:.4f}, {args.resamples} resamples: [{est.low:.4f}, {est.high:.4f}] '
              f'({est.method}), '
              f'bootstrap bias {est.bias:+.4f}; covers the subset value: {est.low <= est.point <= est.high}, '
              f'the population value: {est.low <= population <= est.high}')


if __name__ == '__main__':
    main()
