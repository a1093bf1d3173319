"""Distribution of the learned exponents alpha (POW, SF-POW, HPOW layers) of a trained checkpoint.

    python tools/analysis/alpha_report.py CHECKPOINT                 # PowConv/SFPowConv exponents of the state dict
    python tools/analysis/alpha_report.py CONFIG CHECKPOINT          # model built and loaded strictly
    python tools/analysis/alpha_report.py CONFIG CHECKPOINT --num-images 20   # HPOW: exponents on 20 test images

Writes OUT_DIR/alpha_summary.md, alpha_summary.csv (per layer: count, mean, std, min, 5/50/95 % quantiles, max,
fraction < 0, fraction outside [-1, 5]) and alpha_histograms.png.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.engine.cli import quiet_warnings  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Report the learned exponents alpha of a checkpoint')
    parser.add_argument('paths', nargs='+', metavar='[CONFIG] CHECKPOINT',
                        help='a checkpoint, or a config and its checkpoint')
    parser.add_argument('--num-images', type=int, default=0,
                        help='test images to run for HPOW layers (data-dependent exponents); needs the config')
    parser.add_argument('--bins', type=int, default=40)
    parser.add_argument('--out-dir', default=None, help='default: work_dirs/alpha_report/<checkpoint name>')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    if len(args.paths) > 2:
        parser.error(f'expected CHECKPOINT or CONFIG CHECKPOINT, got {len(args.paths)} paths: {args.paths}')
    args.config, args.checkpoint = (None, args.paths[0]) if len(args.paths) == 1 else args.paths
    if args.config is None and (args.num_images or args.cfg_options):
        parser.error('--num-images and --cfg-options need the CONFIG')
    if args.num_images < 0 or args.bins < 1:
        parser.error('--num-images must be >= 0 and --bins >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    from featquant_mmdet.analysis.alpha_report import (format_exponent_table, load_exponents,
                                                       plot_exponent_histograms, summarize_exponents,
                                                       write_exponent_csv)
    from featquant_mmdet.analysis.report_files import write_report_files
    cfg = None
    if args.config is not None:
        from featquant_mmdet.engine.loading import load_config
        cfg = load_config(args.config, args.cfg_options)
    out_dir = args.out_dir or osp.join('work_dirs', 'alpha_report', osp.splitext(osp.basename(args.checkpoint))[0])
    exponents = load_exponents(args.checkpoint, cfg, args.num_images)
    table = summarize_exponents(exponents)
    header = f'learned exponents alpha of {args.checkpoint}' + (f' ({args.config})' if args.config else '')
    write_report_files(
        out_dir, header, format_exponent_table(table), 'alpha_summary.md', 'alpha_summary.csv',
        'alpha_histograms.png', lambda path: write_exponent_csv(table, path),
        lambda path: plot_exponent_histograms(exponents, path, bins=args.bins, title=osp.basename(args.checkpoint)))
    return table


if __name__ == '__main__':
    main()
