"""Train a detector or classifier with the plugin registered (same arguments as mmdet's ``tools/train.py``).

    python tools/train.py configs/faster_rcnn_zf_pow1_voc.py [--work-dir DIR] [--resume [CKPT]] [--amp]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.engine.cli import add_common_args, check_environment, load_config, quiet_warnings  # noqa: E402
from featquant_mmdet.engine.loading import build_runner  # noqa: E402


EXAMPLES = """examples:
  python tools/train.py configs/faster_rcnn_zf_pow1_voc.py --work-dir work_dirs/zf_pow1
  python tools/train.py configs/pretrain/zf_pow1_imagenet.py --cfg-options train_dataloader.batch_size=64
  python tools/train.py configs/faster_rcnn_zf_pow1_voc.py --resume      # from the last checkpoint of the work dir
  bash tools/dist_train.sh configs/faster_rcnn_zf_pow1_voc.py 2         # 2 processes (GPUs, or CPUs) via torchrun
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or classifier',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual total batch size (config: auto_scale_lr)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the latest one in the work dir')
    add_common_args(parser)
    args = parser.parse_args(argv)
    check_environment(parser)
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    cfg = load_config(args)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            if optim_wrapper != 'OptimWrapper':
                raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {optim_wrapper!r}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
