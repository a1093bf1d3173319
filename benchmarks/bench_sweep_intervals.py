"""What the per-image data and the bootstrap intervals add to a robustness sweep's wall time (issue 14: < 10%).

A real sweep at the demo's scale: ZF Faster R-CNN (configs/faster_rcnn_zf_voc.py, random initialisation) on 80
generated VOC test images of the demo's size (320x240, tested at that size), the demo's cells (clean, Mix.Minor,
Mix.Heavy; ``--distortions all`` for every cell of the detector preset), through ``evaluate_robustness`` exactly as
tools/robustness.py runs it, with 1000 resamples. The detector keeps every box (``score_thr=0``, at most 100 per
image, VOC's usual cap): the per-image records are as many as a trained detector can output, which is what the
matching and the bootstrap's cost grow with. Measured in the same process:

    recording  = time inside the per-image metric (process + matching + writing the .npz), summed over cells
    bootstrap  = the summary's intervals (read and check the files, 1000 resamples of every cell and summary);
                 median of ``--repeats`` runs of the same computation after the sweep
    added      = (recording + bootstrap) / (sweep wall time - recording - bootstrap)

A randomly initialised detector matches almost no ground truth, and the bootstrap's cost grows with the true
positives (one column per TP in the resample matrix product, :meth:`VOCMatches.map_batch`). So the bootstrap is
also timed on the same cells with every ground-truth box matched (the k best-scoring detections of each image and
class with k ground-truth boxes become TPs, the rest FPs): at one IoU threshold a cell cannot have more TPs, so this
bounds the bootstrap of any detector on this test set, and ``added (all GT matched)`` is the figure to hold to.

    python benchmarks/bench_sweep_intervals.py [--images 80] [--size 320 240] [--distortions mix] [--resamples 1000]
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

TARGET_SHARE = 0.10
CONFIG = osp.join(REPO, 'configs', 'faster_rcnn_zf_voc.py')


def timed(cls, name, totals):
    """Wrap ``cls.name`` to add its wall time to ``totals[0]``."""
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            totals[0] += time.perf_counter() - start

    setattr(cls, name, wrapper)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=80, help='test images (the demo: 80)')
    parser.add_argument('--size', type=int, nargs=2, default=(320, 240), metavar=('WIDTH', 'HEIGHT'))
    parser.add_argument('--distortions', nargs='+', default=['mix'], help='as tools/robustness.py (default: mix, '
                                                                          'the demo\'s Table 3 cells)')
    parser.add_argument('--levels', type=int, nargs='+', default=[1, 2, 3, 4])
    parser.add_argument('--resamples', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=3, help='runs of the bootstrap after the sweep (median)')
    args = parser.parse_args(argv)

    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    from featquant_mmdet.engine.cli import add_common_args, load_config
    from featquant_mmdet.evaluation.per_image import PerImageVOC
    from featquant_mmdet.evaluation.robustness import evaluate_robustness
    from featquant_mmdet.evaluation.robustness.intervals import bootstrap_results
    from featquant_mmdet.stats.bootstrap import Resamples, bootstrap_summary

    recording = [0.0]
    timed(PerImageVOC, 'process', recording)
    timed(PerImageVOC, 'compute_metrics', recording)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_voc_dataset(osp.join(tmp, 'data'), num_train=1, num_test=args.images,
                                     image_size=tuple(args.size), seed=0)
        cli = argparse.ArgumentParser()
        cli.add_argument('config')
        add_common_args(cli)
        width, height = args.size
        cfg = load_config(cli.parse_args([
            CONFIG, '--work-dir', osp.join(tmp, 'work'), '--cfg-options',
            f'test_dataloader.dataset.data_root={data_root}/', f'test_dataloader.dataset.pipeline.1.scale=({width},'
            f'{height})', 'model.test_cfg.rcnn.score_thr=0.0', 'model.test_cfg.rcnn.max_per_img=100',
            'default_hooks.logger.interval=1000', 'log_level=WARNING']))
        register_all_modules(init_default_scope=True)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        checkpoint = osp.join(tmp, 'zf.pth')
        save_checkpoint({'meta': {}, 'state_dict': weights_to_cpu(model.state_dict())}, checkpoint)

        start = time.perf_counter()
        plan, results = evaluate_robustness(cfg, checkpoint, distortions=args.distortions, levels=args.levels,
                                            bootstrap=args.resamples)
        wall = time.perf_counter() - start
        in_sweep = results['summary']['intervals']['wall_time_s']
        repeats = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            bootstrap_results(results, plan.results_path, plan.metric, args.resamples)
            repeats.append(time.perf_counter() - t0)
        from featquant_mmdet.stats.records import load_per_image
        records = {k: load_per_image(osp.join(osp.dirname(plan.results_path), c['per_image']['file']))
                   for k, c in results['cells'].items()}
        matched = []
        for _ in range(args.repeats):
            cells = {k: all_gt_matched(m) for k, m in records.items()}  # fresh objects: nothing cached
            t0 = time.perf_counter()
            bootstrap_summary(cells, Resamples.draw(args.images, args.resamples, 0))
            matched.append(time.perf_counter() - t0)
        n_tp_matched = sum(int(all_gt_matched(m).tp[:, 0].sum()) for m in records.values())
        n_gt = sum(int(m.n_gt.sum()) for m in records.values())
        records = list(records.values())

    boot = statistics.median(repeats)
    base = wall - recording[0] - in_sweep
    cells = len(results['cells'])
    print(f'sweep: {cells} cells x {args.images} images ({width}x{height}), wall {wall:.1f} s '
          f'(evaluation alone {base:.1f} s, {base / cells:.2f} s per cell)')
    print(f'per-image records: {sum(r.scores.size for r in records)} detections, '
          f'{sum(int(r.tp[:, 0].sum()) for r in records)} true positives over the cells')
    print(f'recording (per-image metric): {recording[0]:.2f} s = {100 * recording[0] / base:.2f}% of the evaluation')
    print(f'bootstrap ({args.resamples} resamples, all cells and summaries): {in_sweep:.2f} s in the sweep, median '
          f'{boot:.2f} s over {args.repeats} reruns (min {min(repeats):.2f}, max {max(repeats):.2f}) = '
          f'{100 * boot / base:.2f}% of the evaluation')
    added = (recording[0] + boot) / base
    print(f'added by per-image data + intervals: {100 * added:.2f}% of the sweep (target < {100 * TARGET_SHARE:.0f}%)'
          f': {"met" if added < TARGET_SHARE else "NOT met"}')
    boot_matched = statistics.median(matched)
    added_matched = (recording[0] + boot_matched) / base
    print(f'bootstrap with every ground-truth box matched ({n_tp_matched} true positives for {n_gt} ground-truth '
          'boxes over the cells): median '
          f'{boot_matched:.2f} s (min {min(matched):.2f}, max {max(matched):.2f})')
    print(f'added (all GT matched): {100 * added_matched:.2f}% of the sweep (target < {100 * TARGET_SHARE:.0f}%): '
          f'{"met" if added_matched < TARGET_SHARE else "NOT met"}')
    return dict(wall=wall, base=base, recording=recording[0], bootstrap=boot, added=added,
                bootstrap_matched=boot_matched, added_matched=added_matched)


def all_gt_matched(m):
    """The cell's records with every ground-truth box matched: in each image, the best-scoring detections are
    relabelled, one per ground-truth box (its class), and are TPs; every other detection keeps its class and is an FP
    (at every threshold). The cell keeps its detections and scores, and has as many TPs as ground-truth boxes (the
    most any detector can have at one IoU threshold)."""
    import numpy as np

    from featquant_mmdet.stats.voc_matches import VOCMatches
    tp = np.zeros_like(m.tp)
    labels = m.labels.copy()
    for image in range(m.num_images):
        dets = np.flatnonzero(m.images == image)
        dets = dets[np.argsort(-m.scores[dets], kind='stable')]
        gt_classes = np.repeat(np.arange(m.num_classes), m.n_gt[image])
        hit = dets[:gt_classes.size]
        labels[hit] = gt_classes[:hit.size]
        tp[hit] = 1
    return VOCMatches(m.scores, tp, 1 - tp, labels, m.images, m.n_gt, m.image_ids, dict(m.meta))


if __name__ == '__main__':
    main()
