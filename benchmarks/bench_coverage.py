"""Coverage of the bootstrap intervals by simulation: a generated population whose true mAP is known.

The world: a population of ``--population`` images with VOC match records for ``--cells`` cells that share the
images and ground truth (a clean model and distortions of decreasing quality, as a sweep's cells). Its truth is the
mAP of each cell on the whole population (``VOCMatches.map()``, 11-point, as VOCMetric) and, for the mPC-like
quantity, the mean of the cells' truths. A test set is ``n`` images drawn from the population with replacement (so
the population IS the distribution sampled, and its mAP the estimand); per draw, every cell's mAP on the test set
(the point) and on ``--resamples`` resamples of it gives the interval of each method. Coverage = the share of draws
whose interval contains the truth; its binomial standard error is ``sqrt(c (1 - c) / draws)``. Also reported, per
method: how often the interval contains its own point value, the mean width, the mean bootstrap bias
(``Estimate.bias``) and the estimator's real bias (mean point minus truth).

The records are generated directly (vectorised), as ``match_records`` would give them for the detections of
benchmarks/bench_bootstrap.py's ``make_cell``, without the geometry: 1-5 ground-truth boxes per image (10% difficult),
50-100% of ``--dets-per-image`` detections per image, each aimed at one of the image's boxes; found with the cell's
quality (score U(0.3, 1), the box's class; the best-scoring detection of a box is a TP, the others duplicates (FP);
on a difficult box neither) or not (score U(0.05, 0.7), a random class, FP).

    python benchmarks/bench_coverage.py [--population 20000] [--sizes 80 5000] [--draws 400 60]
        [--resamples 1000 500] [--cells 10] [--dets-per-image 100] [--level 0.95]

One core: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_coverage.py ...``.
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def make_population(n_images, n_cells, dets_per_image=100, num_classes=20, seed=0, qualities=None):
    """``[VOCMatches]`` of ``n_cells`` cells sharing ``n_images`` images and their ground truth."""
    from featquant_mmdet.stats.voc_matches import VOCMatches
    rng = np.random.default_rng(seed)
    qualities = np.linspace(0.6, 0.3, n_cells) if qualities is None else qualities
    n_box = rng.integers(1, 6, n_images)
    box_start = np.concatenate([[0], np.cumsum(n_box)[:-1]])
    box_label = rng.integers(0, num_classes, n_box.sum())
    box_difficult = rng.random(n_box.sum()) < 0.1
    box_image = np.repeat(np.arange(n_images), n_box)
    n_gt = np.zeros((n_images, num_classes), np.int64)
    np.add.at(n_gt, (box_image[~box_difficult], box_label[~box_difficult]), 1)
    ids = [f'{i:06d}' for i in range(n_images)]
    cells = []
    for quality in qualities:
        n_det = rng.integers(dets_per_image // 2, dets_per_image + 1, n_images)
        image = np.repeat(np.arange(n_images), n_det)
        box = box_start[image] + (rng.random(image.size) * n_box[image]).astype(np.int64)
        found = rng.random(image.size) < quality
        score = np.where(found, rng.uniform(0.3, 1.0, image.size), rng.uniform(0.05, 0.7, image.size))
        label = np.where(found, box_label[box], rng.integers(0, num_classes, image.size))
        tp = np.zeros(image.size, np.uint8)
        fp = np.ones(image.size, np.uint8)
        hit = np.flatnonzero(found)
        hit = hit[np.lexsort((-score[hit], box[hit]))]  # by box, best score first
        first = np.ones(hit.size, bool)
        first[1:] = box[hit][1:] != box[hit][:-1]
        difficult = box_difficult[box[hit]]
        tp[hit[first & ~difficult]] = 1
        fp[hit[first & ~difficult]] = 0
        fp[hit[difficult]] = 0  # matched to a difficult box: neither
        order = np.lexsort((image, label))  # class-major, image order within a class (as match_records)
        cells.append(VOCMatches(score[order].astype(np.float32), tp[order], fp[order], label[order], image[order],
                                n_gt, ids, dict(iou_thrs=[0.5], eval_mode='11points', num_classes=num_classes)))
    return cells


QUANTITIES = {  # name: (label, function of the per-cell values (cells, ...) -> value)
    'cell': ('cell 0', lambda v: v[0]),
    'mean': ('mean of the cells', lambda v: v.mean(axis=0)),
    'diff': ('cell 1 - cell 0 (paired)', lambda v: v[1] - v[0]),
    'mean diff': ('mean of 2nd half - 1st half (paired)', lambda v: v[len(v) // 2:].mean(axis=0)
                  - v[:len(v) // 2].mean(axis=0)),
}


def simulate(population, n, draws, n_resamples, level, seed, methods):
    """Per draw, the estimates of every quantity of :data:`QUANTITIES`: ``{(quantity, method): [Estimate]}``."""
    from featquant_mmdet.stats.bootstrap import Estimate, Resamples
    rng = np.random.default_rng(seed)
    out = {(q, m): [] for q in QUANTITIES for m in methods}
    for d in range(draws):
        idx = rng.integers(0, population[0].num_images, n)
        counts = Resamples.draw(n, n_resamples, seed=seed * 100003 + d).counts
        points, samples = [], []
        for cell in population:
            sub = cell.subset(idx)
            points.append(sub.map())
            samples.append(sub.values(counts))
        points, samples = np.array(points), np.array(samples)
        for q, (_, fn) in QUANTITIES.items():
            for m in methods:
                out[(q, m)].append(Estimate(float(fn(points)), fn(samples), level, m))
    return out


def report(estimates, truth):
    """Coverage of ``truth`` (and of the mean of the points, E[value at n] as the draws estimate it), width, bias."""
    low, high = np.array([e.interval for e in estimates]).T
    points = np.array([e.point for e in estimates])
    cover = float(np.mean((low <= truth) & (truth <= high)))
    expected = points.mean()
    return dict(draws=len(estimates), coverage=cover, se=float(np.sqrt(cover * (1 - cover) / len(estimates))),
                above=float(np.mean(low > truth)), below=float(np.mean(high < truth)),
                covers_expected=float(np.mean((low <= expected) & (expected <= high))),
                contains_point=float(np.mean((low <= points) & (points <= high))),
                width=float(np.mean(high - low)), boot_bias=float(np.mean([e.bias for e in estimates])),
                real_bias=float(expected - truth), sd=float(points.std(ddof=1)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--population', type=int, default=20000, help='images in the population')
    parser.add_argument('--sizes', type=int, nargs='+', default=[80, 5000], help='test-set sizes n')
    parser.add_argument('--draws', type=int, nargs='+', default=[400, 60], help='test sets drawn, per size')
    parser.add_argument('--resamples', type=int, nargs='+', default=[1000, 500], help='B, per size')
    parser.add_argument('--cells', type=int, default=10, help='cells averaged for the mPC-like quantity')
    parser.add_argument('--dets-per-image', type=int, default=100)
    parser.add_argument('--classes', type=int, default=20)
    parser.add_argument('--level', type=float, default=0.95)
    parser.add_argument('--methods', nargs='+', default=['percentile', 'basic', 'basic+point', 'bc'])
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    from featquant_mmdet.stats.bootstrap import METHODS
    for name in ('draws', 'resamples'):
        if len(getattr(args, name)) not in (1, len(args.sizes)):
            parser.error(f'--{name}: one value, or one per size ({len(args.sizes)}), got {getattr(args, name)}')
    if min(args.sizes + args.draws + args.resamples + [args.population, args.cells]) < 1:
        parser.error('--population, --sizes, --draws, --resamples and --cells must be >= 1')
    if not 0 < args.level < 1:
        parser.error(f'--level must be in (0, 1), got {args.level}')
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        parser.error(f'--methods: unknown {bad}; accepted: {", ".join(METHODS)}')
    per_size = lambda values: values * len(args.sizes) if len(values) == 1 else values  # noqa: E731

    start = time.perf_counter()
    population = make_population(args.population, args.cells, args.dets_per_image, args.classes, args.seed)
    truths = np.array([cell.map() for cell in population])
    truth = {q: float(fn(truths)) for q, (_, fn) in QUANTITIES.items()}
    print(f'population: {args.population} images, {args.cells} cells (qualities 0.6 .. 0.3), '
          f'{population[0].scores.size} records in cell 0 ({time.perf_counter() - start:.0f} s); true values: '
          + ', '.join(f'{QUANTITIES[q][0]} {v:+.4f}' for q, v in truth.items()), flush=True)
    print('| n | B | quantity | method | draws | coverage of the truth (+- se) | interval above / below it | '
          'covers E[value at n] | contains its point | mean width | bootstrap bias | real bias | sd of the point |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    rows = []
    for n, draws, b in zip(args.sizes, per_size(args.draws), per_size(args.resamples)):
        t0 = time.perf_counter()
        out = simulate(population, n, draws, b, args.level, args.seed + n, args.methods)
        for (quantity, method), estimates in out.items():
            r = report(estimates, truth[quantity])
            rows.append(dict(n=n, resamples=b, quantity=quantity, method=method, **r))
            print(f'| {n} | {b} | {QUANTITIES[quantity][0]} | {method} | {r["draws"]} | {r["coverage"]:.3f} +- '
                  f'{r["se"]:.3f} | {r["above"]:.3f} / {r["below"]:.3f} | {r["covers_expected"]:.3f} | '
                  f'{r["contains_point"]:.3f} | {r["width"]:.4f} | {r["boot_bias"]:+.4f} | {r["real_bias"]:+.4f} | '
                  f'{r["sd"]:.4f} |', flush=True)
        print(f'  (n = {n}: {time.perf_counter() - t0:.0f} s)', flush=True)
    print(f'total {time.perf_counter() - start:.0f} s, level {args.level}')
    return rows


if __name__ == '__main__':
    main()
