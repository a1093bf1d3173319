"""Table 1 and Figure 2 of the paper: accuracy of small networks when only skewness/kurtosis shift between training
and test data, and the feature distributions before and after each non-linearity.

    python tools/analysis/synthetic_shift.py                       # the full table: 10 runs, 10k/10k samples, M=128
    python tools/analysis/synthetic_shift.py --runs 2 --samples 2000 --epochs 5 --out-dir work_dirs/shift_quick

Writes OUT_DIR/table1.csv, OUT_DIR/table1.md and OUT_DIR/figure2_distributions.png, and prints the table next to the
paper's numbers.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout


EXAMPLES = """examples:
  python tools/analysis/synthetic_shift.py                 # the full table: 10 runs, 10k/10k samples, M=128
  python tools/analysis/synthetic_shift.py --runs 2 --samples 2000 --epochs 5 --out-dir work_dirs/shift_quick
"""


def parse_args(argv=None):
    from featquant_mmdet.analysis.synthetic_shift import DETERMINANT_FEATURES, TABLE1_ROWS, TrainConfig
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description='The synthetic moment-shift experiment (Table 1, Figure 2)',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    parser.add_argument('--runs', type=int, default=10, help='independent runs (new data, new networks) per row')
    parser.add_argument('--samples', type=int, default=10000, help='training samples per run (as many for test)')
    parser.add_argument('--features', type=int, default=128, help='total features M')
    parser.add_argument('--determinant', type=int, nargs='+', default=list(DETERMINANT_FEATURES),
                        help='numbers N of label-determining features (the columns)')
    parser.add_argument('--rows', nargs='+', default=None, metavar='ROW',
                        help=f'subset of rows (default: all): {list(TABLE1_ROWS)}')
    parser.add_argument('--epochs', type=int, default=defaults.epochs)
    parser.add_argument('--batch-size', type=int, default=defaults.batch_size)
    parser.add_argument('--lr', type=float, default=defaults.lr, help='Adam learning rate')
    parser.add_argument('--hidden', type=int, default=defaults.hidden, help='hidden units per layer')
    parser.add_argument('--floor-beta', type=float, default=defaults.floor_beta,
                        help='beta of the Floor row, floor(beta x) / beta (eq. 3)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=defaults.num_threads,
                        help='torch CPU threads while training; the matrices are small, so 1 is usually fastest')
    parser.add_argument('--out-dir', default='work_dirs/synthetic_shift')
    args = parser.parse_args(argv)
    for name in ('runs', 'samples', 'features', 'epochs', 'batch_size', 'hidden', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.floor_beta <= 0:
        parser.error(f'--floor-beta must be > 0, got {args.floor_beta}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from featquant_mmdet.analysis.synthetic_shift import (TrainConfig, format_table1, plot_shift_distributions,
                                                          run_table1, write_table1_csv)
    os.makedirs(args.out_dir, exist_ok=True)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
                      floor_beta=args.floor_beta, seed=args.seed, num_threads=args.threads)

    def progress(row, out, seconds):
        means = ' '.join(f'N={n}: {a:5.1f}' for n, a in zip(args.determinant, out['accuracy'].mean(0).tolist()))
        print(f'{row:<20s} {means}   ({seconds:.1f} s)', flush=True)

    start, start_cpu = time.perf_counter(), time.process_time()
    result = run_table1(args.runs, args.samples, args.features, args.determinant, args.rows, cfg, progress)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu

    table = format_table1(result)
    settings = (f'M={args.features}, runs={args.runs}, {args.samples} train / {args.samples} test samples, '
                f'{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}, floor beta {args.floor_beta:g}, '
                f'seed {args.seed}, {args.threads} thread(s); wall time {wall:.1f} s, CPU time {cpu:.1f} s')
    print(f'\nTable 1: mean ± std test accuracy (%) over runs, next to the paper\'s ({settings})\n')
    print(table)
    csv_path = osp.join(args.out_dir, 'table1.csv')
    md_path = osp.join(args.out_dir, 'table1.md')
    write_table1_csv(result, csv_path)
    with open(md_path, 'w') as f:
        f.write(f'{settings}\n\n{table}\n')

    # Figure 2: the paper's kappas; the power panel uses the median exponent the Power row learned for feature 0
    # (label-determining for every N)
    alpha = result.power_alpha[..., 0].median().item() if result.power_alpha is not None else -0.5
    png_path = osp.join(args.out_dir, 'figure2_distributions.png')
    divergences = plot_shift_distributions(png_path, floor_beta=args.floor_beta, power_alpha=alpha, seed=args.seed)
    print('\nFigure 2 (one feature, kappa -0.2 for training vs 0.5 for test), JS divergence after each mapping:')
    for name, js in divergences.items():
        print(f'  {name:<22s} {js:.4f}')
    print(f'\nwrote {csv_path}, {md_path}, {png_path}')
    return result


if __name__ == '__main__':
    main()
