"""Distribution of the learned exponents alpha (POW, SF-POW, HPOW layers) of a trained checkpoint.

    python tools/analysis/alpha_report.py CHECKPOINT                 # PowConv/SFPowConv exponents of the state dict
    python tools/analysis/alpha_report.py CONFIG CHECKPOINT          # model built and loaded strictly
    python tools/analysis/alpha_report.py CONFIG CHECKPOINT --num-images 20   # HPOW: exponents on 20 test images

Writes OUT_DIR/alpha_summary.md, alpha_summary.csv (per layer: count, mean, std, min, 5/50/95 % quantiles, max,
fraction < 0, fraction outside [-1, 5]) and alpha_histograms.png.

Two subcommands look at training rather than at one checkpoint:

    python tools/analysis/alpha_report.py trajectory WORK_DIR [WORK_DIR ...] [--labels A B ...]
        the exponents over training (per layer: mean, mean +- std, min/max) from the alpha_stats.jsonl that
        AlphaStatsHook writes: OUT_DIR/alpha_trajectory.png and .md (runs without exponents: left out, with a note)
    python tools/analysis/alpha_report.py drift CONFIG [--checkpoint CKPT] [--alpha-lr-mult M]
        before a long run: the per-step change of alpha from one real backward pass on a training batch of the
        config, its momentum bound, the conv weights' relative change, and the largest drift over the configured
        schedule: OUT_DIR/alpha_drift.md and .csv (featquant_mmdet/analysis/alpha_drift.py gives the formulas)
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.engine.cli import quiet_warnings  # noqa: E402


EXAMPLES = """subcommands (a first argument naming one; each has its own --help):
  trajectory RUN [RUN ...]   the exponents over training, from the alpha_stats.jsonl AlphaStatsHook writes
  drift CONFIG               before a long run: the per-step change of alpha under a config, one backward pass

examples:
  python tools/analysis/alpha_report.py work_dirs/zf_pow1/iter_70000.pth
  python tools/analysis/alpha_report.py CONFIG CHECKPOINT --num-images 20    # HPOW: exponents on 20 test images
  python tools/analysis/alpha_report.py trajectory work_dirs/zf_pow1 work_dirs/zf_pow1_lr3 --labels x1 x3
  python tools/analysis/alpha_report.py drift configs/faster_rcnn_zf_pow1_voc.py --alpha-lr-mult 3
"""


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Report the learned exponents alpha of a checkpoint (subcommands trajectory and drift: training)',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
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


def parse_trajectory_args(argv):
    parser = argparse.ArgumentParser(
        prog='alpha_report.py trajectory', description='Plot the exponents over training from alpha_stats.jsonl files',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog='''example:
  python tools/analysis/alpha_report.py trajectory work_dirs/zf_pow1 work_dirs/zf_pow1_lr3 --labels x1 x3
  # writes work_dirs/alpha_report/trajectory/alpha_trajectory.png and .md''')
    parser.add_argument('runs', nargs='+', metavar='RUN', help='work dirs of training runs or alpha_stats.jsonl files')
    parser.add_argument('--labels', nargs='+', help='one label per RUN (default: the folder names)')
    parser.add_argument('--title', default='')
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'alpha_report', 'trajectory'))
    args = parser.parse_args(argv)
    missing = [r for r in args.runs if not osp.exists(r)]
    if missing:
        parser.error(f'no such work dir or file: {", ".join(missing)}')
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f'--labels: {len(args.labels)} labels for {len(args.runs)} runs')
    if args.labels is None:
        args.labels = [osp.basename(osp.normpath(r)) for r in args.runs]
    return args


def parse_drift_args(argv):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        prog='alpha_report.py drift', description='Per-step change of alpha under a config, from one backward pass',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog='''example:
  python tools/analysis/alpha_report.py drift configs/faster_rcnn_zf_pow1_voc.py --alpha-lr-mult 3
  # writes work_dirs/alpha_report/drift_faster_rcnn_zf_pow1_voc/alpha_drift.md and .csv''')
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights to start from (as load_from); default: the config\'s '
                                             'load_from, else the initial weights')
    parser.add_argument('--alpha-lr-mult', type=float,
                        help="set optim_wrapper.paramwise_cfg.custom_keys['.alpha'].lr_mult (finite, >= 0)")
    parser.add_argument('--batch-size', type=int, help='default: the config\'s train batch size')
    parser.add_argument('--seed', type=int, default=0, help='seed of the initial weights and of the batch')
    parser.add_argument('--out-dir', default=None, help='default: work_dirs/alpha_report/drift_<config name>')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config file not found: {args.config}')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint file not found: {args.checkpoint}')
    if args.alpha_lr_mult is not None:
        from featquant_mmdet.engine.hooks.alpha_projection import check_lr_mult
        try:
            check_lr_mult(args.alpha_lr_mult, '--alpha-lr-mult')
        except ValueError as err:
            parser.error(str(err))
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    return args


def main_trajectory(argv):
    args = parse_trajectory_args(argv)
    from featquant_mmdet.analysis.alpha_trajectory import format_trajectory_table, trajectory_report
    table, notes = trajectory_report(list(zip(args.labels, args.runs)), args.out_dir, args.title)
    for note in notes:
        print(f'note: {note}')
    if table is not None:
        print(format_trajectory_table(table))
        print(f'\nwrote {osp.join(args.out_dir, "alpha_trajectory.png")}, '
              f'{osp.join(args.out_dir, "alpha_trajectory.md")}')
    return table, notes


def main_drift(argv):
    args = parse_drift_args(argv)
    import csv
    import os

    from featquant_mmdet.analysis.alpha_drift import DRIFT_COLUMNS, alpha_drift_report, format_drift_table
    from featquant_mmdet.engine.loading import load_config
    cfg = load_config(args.config, args.cfg_options)
    if args.alpha_lr_mult is not None:
        custom = cfg.optim_wrapper.setdefault('paramwise_cfg', {}).setdefault('custom_keys', {})
        custom.setdefault('.alpha', {})['lr_mult'] = args.alpha_lr_mult
    table, info = alpha_drift_report(cfg, args.checkpoint, seed=args.seed, batch_size=args.batch_size)
    out_dir = args.out_dir or osp.join('work_dirs', 'alpha_report',
                                       'drift_' + osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out_dir, exist_ok=True)
    header = f'# per-step change of alpha: {args.config}'
    if table is None:
        text = f'{header}\n\nnote: {info["note"]}'
        print(f'note: {info["note"]}')
    else:
        text = f'{header}\n\n{format_drift_table(table, info)}'
        print(text)
        with open(osp.join(out_dir, 'alpha_drift.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(DRIFT_COLUMNS)
            writer.writerows([[row[c] for c in DRIFT_COLUMNS] for row in table])
    with open(osp.join(out_dir, 'alpha_drift.md'), 'w') as f:
        f.write(text + '\n')
    print(f'\nwrote {out_dir}/alpha_drift.md' + ('' if table is None else ' and alpha_drift.csv'))
    return table, info


SUBCOMMANDS = {'trajectory': main_trajectory, 'drift': main_drift}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
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
