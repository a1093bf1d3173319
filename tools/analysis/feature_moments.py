"""Figure 1 of the paper: how a distortion shifts the distributions of a trained model's features, layer by layer.

    python tools/analysis/feature_moments.py CONFIG CHECKPOINT --distortion motion_blur --level 3
    python tools/analysis/feature_moments.py CONFIG CHECKPOINT --distortion mix_heavy --num-images 50 \
        --layers backbone.conv1 backbone.conv5 --out-dir work_dirs/moments_zf

Hooks the outputs of the backbone's convolutions (or --layers), runs the same test images clean and distorted, and
writes OUT_DIR/feature_moments.md, .csv (mean, variance, skewness, kurtosis of both, JS divergence per layer with its
standard deviation over --bootstrap resamples of the images) and OUT_DIR/feature_densities.png. Running it for a
baseline and a POW model shows whether POW reduces the divergence.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.engine.cli import quiet_warnings  # noqa: E402


EXAMPLES = """examples:
  python tools/analysis/feature_moments.py CONFIG CHECKPOINT --distortion motion_blur --level 3
  python tools/analysis/feature_moments.py CONFIG CHECKPOINT --distortion mix_heavy --num-images 50 \
      --layers backbone.conv1 backbone.conv5 --out-dir work_dirs/moments_zf
"""


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Moments and JS divergence of clean vs distorted features',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('config', help='model config (its test_dataloader supplies the images)')
    parser.add_argument('checkpoint', help='checkpoint matching the config')
    parser.add_argument('--distortion', required=True, help='distortion name, e.g. motion_blur, jpeg, mix_heavy')
    parser.add_argument('--level', type=int, default=None,
                        help='distortion strength 1-4; mixtures have their own fixed strength')
    parser.add_argument('--distortion-seed', type=int, default=0)
    parser.add_argument('--num-images', type=int, default=100, help='test images used (the first ones)')
    parser.add_argument('--layers', nargs='+', default=None,
                        help='module names to hook (default: every conv of the backbone), e.g. backbone.conv3')
    parser.add_argument('--bins', type=int, default=100, help='histogram bins for the JS divergence and the plot')
    parser.add_argument('--values-per-image', type=int, default=20000,
                        help='activations sampled per image and layer (same positions clean and distorted)')
    parser.add_argument('--bootstrap', type=int, default=200,
                        help='image resamples for the standard deviation of the JS divergence (0: none)')
    parser.add_argument('--out-dir', default=None, help='default: work_dirs/feature_moments/<config name>')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. test_dataloader.dataset.data_root=data/VOC/')
    args = parser.parse_args(argv)
    for name, minimum in (('num_images', 1), ('bins', 1), ('values_per_image', 1), ('bootstrap', 0)):
        if getattr(args, name) < minimum:
            parser.error(f'--{name.replace("_", "-")} must be >= {minimum}, got {getattr(args, name)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    from featquant_mmdet.analysis.feature_moments import (format_shift_table, measure_feature_shift,
                                                          plot_feature_densities, write_shift_csv)
    from featquant_mmdet.engine.loading import load_config
    from featquant_mmdet.analysis.report_files import write_report_files
    cfg = load_config(args.config, args.cfg_options)
    out_dir = args.out_dir or osp.join('work_dirs', 'feature_moments', osp.splitext(osp.basename(args.config))[0])
    shifts, clean, distorted = measure_feature_shift(
        cfg, args.checkpoint, args.distortion, level=args.level, num_images=args.num_images, layers=args.layers,
        bins=args.bins, values_per_image=args.values_per_image, seed=args.distortion_seed, bootstrap=args.bootstrap)

    what = f'{args.distortion}' + (f' level {args.level}' if args.level is not None else '')
    header = (f'{osp.basename(args.config)} / {osp.basename(args.checkpoint)}: {args.num_images} test images, '
              f'clean vs {what}')
    if args.bootstrap:
        header += f' (JS ± standard deviation over {args.bootstrap} bootstrap resamples of the images)'
    write_report_files(out_dir, header, format_shift_table(shifts), 'feature_moments.md', 'feature_moments.csv',
                       'feature_densities.png', lambda path: write_shift_csv(shifts, path),
                       lambda path: plot_feature_densities(clean, distorted, path, bins=args.bins, title=header))
    return shifts


if __name__ == '__main__':
    main()
