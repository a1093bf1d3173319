"""Evaluate a detector or classifier on clean and distorted test data: one resumable sweep, one results file.

    python tools/robustness.py CONFIG CHECKPOINT [--distortions all|mix|corruptions|NAME ...] [--levels 1 2 3 4]
        [--work-dir DIR] [--seed N] [--metric KEY] [--reference RESULTS.json] [--cfg-options ...]

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
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.engine.cli import (add_common_args, add_saliency_args, load_config, quiet_warnings,  # noqa: E402
                                        saliency_classifier)
from featquant_mmdet.evaluation.robustness import RobustnessError, evaluate_robustness, format_summary  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Robustness sweep: clean + distortions x levels')
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
    add_saliency_args(parser)  # classifiers only; without it the preset "all" leaves targeted_occlusion out
    add_common_args(parser)
    args = parser.parse_args(argv)
    args.saliency = saliency_classifier(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    try:
        cfg = load_config(args)
        # locks the work dir before its results file is read, until the sweep ends; RobustnessError for bad input,
        # also after the clean cell (a metric key the evaluator does not report)
        plan, results = evaluate_robustness(cfg, args.checkpoint, distortions=args.distortions, levels=args.levels,
                                            seed=args.seed, metric=args.metric, reference=args.reference,
                                            saliency=args.saliency)
    except (RobustnessError, FileNotFoundError) as err:
        raise SystemExit(f'robustness.py: error: {err}') from None
    print(f'results: {plan.results_path}')
    print(format_summary(results['summary']))
    return results


if __name__ == '__main__':
    main()
