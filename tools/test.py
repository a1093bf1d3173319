"""Test a detector or classifier, optionally on distorted images (arguments as mmdet's ``tools/test.py``).

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl] [--show-dir DIR]
    python tools/test.py CONFIG CHECKPOINT --distortion mix_heavy
    python tools/test.py CONFIG CHECKPOINT --distortion motion_blur --level 3 --distortion-seed 0
    python tools/test.py CONFIG CHECKPOINT --distortion targeted_occlusion --level 2 \
        --saliency-classifier configs/pretrain/resnet18_imagenet.py --saliency-checkpoint r18.pth

Arguments (files, distortion names and levels, seeds) are checked before anything is loaded.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.distortions.inject import inject_distortion  # noqa: E402
from featquant_mmdet.distortions.levels import NEEDS_SALIENCY, check_name, resolve_level  # noqa: E402
from featquant_mmdet.engine.cli import (add_common_args, add_saliency_args, check_environment, check_file,  # noqa: E402
                                        load_config, quiet_warnings, saliency_classifier)
from featquant_mmdet.engine.loading import build_runner  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402


EXAMPLES = """examples:
  python tools/test.py configs/faster_rcnn_zf_pow1_voc.py work_dirs/zf_pow1/iter_70000.pth --out results.pkl
  python tools/test.py CONFIG CHECKPOINT --distortion mix_heavy
  python tools/test.py CONFIG CHECKPOINT --distortion motion_blur --level 3 --distortion-seed 0
  bash tools/dist_test.sh CONFIG CHECKPOINT 2 --distortion mix_heavy   # 2 processes via torchrun
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl) for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory (inside the work dir) where painted images are saved')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (config: tta_model, tta_pipeline)')
    parser.add_argument('--distortion', help='distort test images: a distortion name, e.g. motion_blur, mix_heavy')
    parser.add_argument('--level', type=int, default=None,
                        help='distortion strength 1-4 (0: clean); mixtures have their own fixed strength')
    parser.add_argument('--distortion-seed', type=int, default=0,
                        help='global seed of the distortions; draws depend only on (seed, image, distortion, level)')
    add_saliency_args(parser)
    add_common_args(parser)
    return check_args(parser, parser.parse_args(argv))


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Every argument checked before anything is loaded: a usage error (exit 2) names the problem."""
    check_environment(parser)
    check_file(parser, args.config, 'config file')
    check_file(parser, args.checkpoint, 'checkpoint file')
    args.saliency = saliency_classifier(parser, args)
    if args.distortion is None:
        if args.level is not None:
            parser.error('--level needs --distortion')
    else:
        try:
            check_name(args.distortion)
            resolve_level(args.distortion, args.level)
        except ValueError as err:
            parser.error(str(err))
        if args.distortion in NEEDS_SALIENCY and args.saliency is None:
            parser.error(f'--distortion {args.distortion} needs --saliency-classifier and --saliency-checkpoint')
    if args.distortion_seed < 0:
        parser.error(f'--distortion-seed must be >= 0, got {args.distortion_seed}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out!r}')
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.get('default_hooks', {})
    if 'visualization' not in default_hooks:
        raise RuntimeError('--show/--show-dir need a `visualization=dict(type="DetVisualizationHook")` default hook')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        hook['test_out_dir'] = args.show_dir
    return cfg


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise RuntimeError('--tta needs `tta_model` and `tta_pipeline` in the config')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    if args.distortion is not None:
        saliency = dict(classifier=args.saliency['config'], checkpoint=args.saliency['checkpoint']) if (
            args.saliency and args.distortion in NEEDS_SALIENCY) else {}
        inject_distortion(cfg.test_dataloader, args.distortion, level=args.level, seed=args.distortion_seed,
                          **saliency)

    runner = build_runner(cfg)
    if args.out is not None:
        # detections need mmdet's dumper (it encodes masks); classifier predictions are dumped as they are
        is_detector = 'pred_instances' in getattr(runner.model, 'prediction_fields', ('pred_instances', ))
        dumper = DumpDetResults if is_detector else DumpResults
        runner.test_evaluator.metrics.append(dumper(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    main()
