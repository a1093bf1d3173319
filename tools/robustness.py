"""Evaluate a detector or classifier on clean and distorted test data: one resumable sweep, one results file.

    python tools/robustness.py CONFIG CHECKPOINT [--distortions all|mix|corruptions|NAME ...] [--levels 1 2 3 4]
        [--work-dir DIR] [--seed N] [--metric KEY] [--reference RESULTS.json] [--bootstrap 1000]
        [--ci-level 0.95] [--bootstrap-seed 0] [--export-mmdet FILE.pkl] [--cfg-options ...]

    # Table 2 / Figure 4 (classifiers): every distortion at levels 1-4 and the mixture
    python tools/robustness.py configs/pretrain/<classifier>.py ckpt.pth --metric accuracy/top5
    # Table 3 (detectors): clean + Mix. Minor + Mix. Heavy
    python tools/robustness.py configs/faster_rcnn_zf_voc.py ckpt.pth --distortions mix

Presets (``distortion_presets`` in featquant_mmdet/evaluation/robustness/cells.py), per model type: ``all`` = the
paper's distortions + its mixture columns; ``mix`` = the mixture columns: ``mix`` (Table 2) for classifiers,
``mix_minor`` + ``mix_heavy`` (Table 3) for detectors; ``corruptions`` = the 15 ``ic:<name>`` corruptions of the
common robustness benchmark (needs ``pip install -r requirements/optional.txt``).

Results go to ``<work dir>/robustness.json`` after every cell; a rerun skips the finished cells, a changed
checkpoint/config/seed moves the old file aside (``robustness.stale-<time>.json``), a file of another config is an
error. Everything is checked before the first evaluation. One sweep at a time per work dir: a second one fails at
once, naming the running one (``<work dir>/robustness.lock``). Compare models with tools/compare_robustness.py.

Per-image data of every cell go to ``<work dir>/robustness.cells/<cell key>.npz`` (VOC match records or top-k
correctness; indexed in the JSON with their sha256): from them the summary gets percentile bootstrap intervals
(``--bootstrap N`` resamples of the test images, ``--ci-level``, ``--bootstrap-seed``; docs/statistics.md).
The intervals are the last step, computed from those files alone: if it fails (e.g. out of memory) the evaluated
cells stay in the results file, one line says so (exit status 1), and rerunning the same command computes the
intervals without evaluating anything again (as does tools/compare_robustness.py on the results file).
``--export-mmdet FILE`` also writes mmdet's robustness layout ``{distortion: {severity: metrics}}`` (clean =
severity 0). Errors (bad input, a locked work dir, a bad image in the test set) end in one line, exit status 1;
argument errors in argparse's usage error, exit status 2.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.engine.cli import (add_common_args, add_saliency_args, check_environment, load_config,  # noqa: E402
                                        quiet_warnings, saliency_classifier)
from featquant_mmdet.datasets.strict_voc import VOCDataError  # noqa: E402
from featquant_mmdet.evaluation.robustness import RobustnessError, evaluate_robustness, format_summary  # noqa: E402
from featquant_mmdet.evaluation.robustness.intervals import check_bootstrap_args  # noqa: E402
from featquant_mmdet.evaluation.robustness.mmdet_export import check_export_path, export_mmdet  # noqa: E402
from featquant_mmdet.stats.bootstrap import DEFAULT_METHOD, METHODS  # noqa: E402


EXAMPLES = """examples:
  # Table 2 / Figure 4 (classifiers): every distortion at levels 1-4 and the mixture
  python tools/robustness.py configs/pretrain/zf_pow1_imagenet.py CHECKPOINT --metric accuracy/top5
  # Table 3 (detectors): clean + Mix. Minor + Mix. Heavy
  python tools/robustness.py configs/faster_rcnn_zf_voc.py CHECKPOINT --distortions mix --work-dir work_dirs/rob_zf
  then: python tools/compare_robustness.py work_dirs/rob_zf/robustness.json work_dirs/rob_zf_pow1/robustness.json
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Robustness sweep: clean + distortions x levels',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--distortions', nargs='+', default=['all'],
                        help='presets or names (default: all). Classifiers: all = the paper\'s distortions + mix, '
                             'mix = mix (Table 2). Detectors: all = the distortions but targeted_occlusion + '
                             'mix_minor + mix_heavy, mix = mix_minor + mix_heavy (Table 3). corruptions = the 15 '
                             'ic:<name> corruptions of ImageNet-C/Pascal-C (optional package, --levels 1 2 3 4 5)')
    parser.add_argument('--levels', nargs='+', type=int, default=[1, 2, 3, 4],
                        help='strengths of the distortions that have levels (default: 1 2 3 4; 1-5 for ic:)')
    parser.add_argument('--seed', type=int, default=0,
                        help='distortion seed: draws depend only on (seed, image, distortion, level)')
    parser.add_argument('--metric', default=None,
                        help='summary metric key (default: pascal_voc/mAP, coco/bbox_mAP or accuracy/top1 from the '
                             'test evaluator; accuracy/top5 is what the paper reports for classifiers)')
    parser.add_argument('--reference', default=None,
                        help='results file of the reference (unquantized) classifier: adds CE and mCE')
    parser.add_argument('--bootstrap', type=int, default=1000, metavar='N',
                        help='bootstrap resamples of the test images for the intervals (default: 1000; 0: none)')
    parser.add_argument('--ci-level', type=float, default=0.95, help='interval level (default: 0.95)')
    parser.add_argument('--bootstrap-seed', type=int, default=0, help='seed of the resamples (default: 0)')
    parser.add_argument('--ci-method', choices=METHODS, default=DEFAULT_METHOD,
                        help=f'bootstrap interval method (default: {DEFAULT_METHOD}; docs/statistics.md)')
    parser.add_argument('--export-mmdet', default=None, metavar='FILE',
                        help='also write the results in mmdet\'s robustness layout {distortion: {severity: metrics}} '
                             '(.pkl as test_robustness.py, .json or .yaml)')
    add_saliency_args(parser)  # classifiers only; without it the preset "all" leaves targeted_occlusion out
    add_common_args(parser)
    args = parser.parse_args(argv)
    check_environment(parser)
    args.saliency = saliency_classifier(parser, args)
    try:
        check_bootstrap_args(args.bootstrap, args.ci_level, args.bootstrap_seed, args.ci_method)
        if args.export_mmdet:
            check_export_path(args.export_mmdet)
    except RobustnessError as err:
        parser.error(str(err))
    return args


def one_line(err: Exception) -> str:
    """The error's message on one line; for an error re-raised from a dataloader worker (``Caught VOCDataError in
    DataLoader worker process 0.`` + the worker's traceback) the original message, which names the file."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return repr(err)
    if len(lines) > 1 and lines[0].startswith('Caught '):
        name = type(err).__name__
        last = lines[-1]
        return last.split(f'{name}: ', 1)[1] if f'{name}: ' in last else last
    return ' '.join(lines)


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    try:
        cfg = load_config(args)
        # locks the work dir before its results file is read, until the sweep ends; RobustnessError for bad input,
        # also after the clean cell (a metric key the evaluator does not report)
        plan, results = evaluate_robustness(cfg, args.checkpoint, distortions=args.distortions, levels=args.levels,
                                            seed=args.seed, metric=args.metric, reference=args.reference,
                                            saliency=args.saliency, bootstrap=args.bootstrap, ci_level=args.ci_level,
                                            bootstrap_seed=args.bootstrap_seed, ci_method=args.ci_method)
        if args.export_mmdet:
            export_mmdet(results, args.export_mmdet)
    except (RobustnessError, FileNotFoundError, VOCDataError) as err:  # VOCDataError: names the image file
        raise SystemExit(f'robustness.py: error: {one_line(err)}') from None
    print(f'results: {plan.results_path}')
    if args.export_mmdet:
        print(f'mmdet layout: {args.export_mmdet}')
    print(format_summary(results['summary']))
    if results['summary'].get('intervals_failed'):  # the values are kept; the one line says how to get intervals
        raise SystemExit(f'robustness.py: error: {results["summary"]["intervals_note"]}')
    return results


if __name__ == '__main__':
    main()
