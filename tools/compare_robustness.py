"""Compare robustness results of several models: the paper's table with bootstrap intervals and paired differences
(Markdown + CSV), one verdict line per compared model and column, and Figure-4-style plots with interval bands.

    python tools/compare_robustness.py work_dirs/zf/robustness.json work_dirs/zf_pow1/robustness.json \
        --labels ZF ZF+POW-1 [--out-dir DIR] [--reference LABEL|INDEX] [--bootstrap 1000] [--ci-level 0.95] \
        [--bootstrap-seed 0] [--metric KEY] [--ce-reference RESULTS.json]

Writes ``robustness_table.md``, ``robustness_table.csv`` and ``robustness_levels.png`` to ``--out-dir`` (default:
the current folder) and prints the Markdown table, whose last lines are the verdicts. Every model is bootstrapped
on the same resamples of the test images (read from each sweep's per-image files, ``robustness.cells/`` beside its
JSON), so each difference to the reference (default: the first file) has a paired interval; ``*`` marks those that
exclude 0. The results must share the test images (same ids, in order) and the distortion seed, and have per-image
data (an older results file: rerun its sweep, or ``--bootstrap 0`` for values without intervals); otherwise one
line names the file and what differs, exit status 2, and nothing is written.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

PROG = 'compare_robustness.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description='Compare robustness results files')
    parser.add_argument('results', nargs='+', help='robustness.json files written by tools/robustness.py')
    parser.add_argument('--labels', nargs='+', help='one row label per results file (default: config names)')
    parser.add_argument('--out-dir', default='.', help='where the .md, .csv and .png files go')
    parser.add_argument('--metric', default=None, help='metric key (default: the one the first sweep summarised)')
    parser.add_argument('--reference', default=None,
                        help='the model the others are compared with: a label, a 0-based index or one of the '
                             'results files (default: the first)')
    parser.add_argument('--ce-reference', default=None, metavar='RESULTS.json',
                        help='results of the reference classifier that normalises CE: adds an mCE column')
    parser.add_argument('--bootstrap', type=int, default=1000, metavar='N',
                        help='bootstrap resamples of the test images (default: 1000; 0: values only)')
    parser.add_argument('--ci-level', type=float, default=0.95, help='interval level (default: 0.95)')
    parser.add_argument('--bootstrap-seed', type=int, default=0, help='seed of the resamples (default: 0)')
    args = parser.parse_args(argv)
    from featquant_mmdet.evaluation.robustness import RobustnessError
    from featquant_mmdet.evaluation.robustness.intervals import check_bootstrap_args
    try:
        check_bootstrap_args(args.bootstrap, args.ci_level, args.bootstrap_seed)
    except RobustnessError as err:
        parser.error(str(err))
    return args


def fail(message: str):
    """One line on stderr, exit status 2, no traceback."""
    print(f'{PROG}: error: {message}', file=sys.stderr)
    raise SystemExit(2)


def main(argv=None):
    args = parse_args(argv)
    from featquant_mmdet.evaluation.robustness import RobustnessError, load_results
    from featquant_mmdet.evaluation.robustness import compare, report
    from featquant_mmdet.stats.checks import StatsInputError
    try:
        results = report.load_all(args.results)
        labels = args.labels or [r['identity']['config_name'] for r in results]
        ce_reference = load_results(args.ce_reference) if args.ce_reference else None
        comp = compare.compare_results(results, args.results, labels, args.metric, args.reference, args.bootstrap,
                                       args.bootstrap_seed, args.ci_level, ce_reference, args.ce_reference)
        markdown = compare.to_markdown(comp)
        table_csv = compare.to_csv(comp)
    except (RobustnessError, StatsInputError) as err:
        fail(' '.join(str(err).split()))
    os.makedirs(args.out_dir, exist_ok=True)
    paths = {name: osp.join(args.out_dir, name)
             for name in ('robustness_table.md', 'robustness_table.csv', 'robustness_levels.png')}
    with open(paths['robustness_table.md'], 'w') as f:
        f.write(markdown)
    with open(paths['robustness_table.csv'], 'w') as f:
        f.write(table_csv)
    compare.plot(comp, results, paths['robustness_levels.png'])
    for warning in comp.warnings:
        print(f'{PROG}: warning: {warning}', file=sys.stderr)
    print(markdown)
    print('written: ' + ', '.join(paths.values()))
    return paths


if __name__ == '__main__':
    main()
