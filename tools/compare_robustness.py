"""Compare robustness results of several models: the paper's table with bootstrap intervals and paired differences
(Markdown + CSV), per compared model and column its p-value and Holm-adjusted p-value, and Figure-4-style plots
with interval bands.

    python tools/compare_robustness.py work_dirs/zf/robustness.json work_dirs/zf_pow1/robustness.json \
        --labels ZF ZF+POW-1 [--out-dir DIR] [--reference LABEL|INDEX] [--bootstrap 1000] [--ci-level 0.95] \
        [--bootstrap-seed 0] [--ci-method bc|percentile] [--metric KEY] [--ce-reference RESULTS.json]

Writes ``robustness_table.md``, ``robustness_table.csv`` and ``robustness_levels.png`` to ``--out-dir`` (default:
the current folder) and prints the Markdown table. Every model is bootstrapped on the same resamples of the test
images (read from each sweep's per-image files, ``robustness.cells/`` beside its JSON; a sweep whose intervals step
failed gets its intervals here without evaluating anything), so each difference to the reference (default: the first
file) has a paired interval; ``*`` marks those that exclude 0 (unadjusted). The last lines say, per column, whether
the difference lies beyond test-image sampling after Holm's adjustment over the table's columns (the family is
stated), and that there is no verdict between the models: a results file is one trained model (one training seed),
and the intervals do not see training randomness. Several results files under one label (``--labels A A A B B B``)
are that model's training seeds, paired across models by their order: the output is then the seed study's report
(``study.md``, ``study.csv``, ``study.png``; mean and t-interval over seeds, Holm-adjusted verdicts), as
tools/study.py writes it for the models it trains. The results must share the test images (same ids, in order) and
the distortion seed, and have per-image data (an older results file: rerun its sweep, or ``--bootstrap 0`` for
values without intervals); otherwise one line names the file and what differs, exit status 2, and nothing is
written.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

PROG = 'compare_robustness.py'


EXAMPLES = """examples:
  python tools/compare_robustness.py work_dirs/rob_zf/robustness.json work_dirs/rob_zf_pow1/robustness.json \
      --labels ZF ZF+POW-1 --out-dir results/compare
  python tools/compare_robustness.py A/robustness.json B/robustness.json --bootstrap 0   # values, no intervals
"""


def parse_args(argv=None):
    from featquant_mmdet.stats.bootstrap import DEFAULT_METHOD, METHODS
    parser = argparse.ArgumentParser(prog=PROG, description='Compare robustness results files',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
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
    parser.add_argument('--ci-method', choices=METHODS, default=DEFAULT_METHOD,
                        help=f'bootstrap interval method (default: {DEFAULT_METHOD}; docs/statistics.md)')
    args = parser.parse_args(argv)
    from featquant_mmdet.evaluation.robustness import RobustnessError
    from featquant_mmdet.evaluation.robustness.intervals import check_bootstrap_args
    try:
        check_bootstrap_args(args.bootstrap, args.ci_level, args.bootstrap_seed, args.ci_method)
    except RobustnessError as err:
        parser.error(str(err))
    return args


def fail(message: str):
    """One line on stderr, exit status 2, no traceback."""
    print(f'{PROG}: error: {message}', file=sys.stderr)
    raise SystemExit(2)


def seed_study(args) -> dict:
    """Several results files under one label (``--labels A A A B B B``): the training seeds of that model, paired
    across models by their order. The report is the seed study's (``study.md``, ``study.csv``, ``study.png``: mean
    and t-interval over seeds, differences paired by seed, Holm-adjusted verdicts over the table's columns)."""
    from featquant_mmdet.engine.stages import StageError
    from featquant_mmdet.engine.study_report import aggregate_runs, write_report
    from featquant_mmdet.evaluation.robustness import RobustnessError, report
    if args.ce_reference or args.metric:
        fail('--ce-reference and --metric compare single runs; with several results files per label (training '
             'seeds) the columns are those of tools/study.py')
    by_label: dict = {}
    for label, path in zip(args.labels, args.results):
        by_label.setdefault(label, {})[len(by_label.get(label, {}))] = path
    reference = args.reference or args.labels[0]
    if reference not in by_label:
        fail(f'--reference {reference!r} is none of the labels ({", ".join(by_label)}); with several results files '
             'per label the reference is a label')
    try:
        report.check_comparable(report.load_all(args.results), args.labels)  # test data, distortion seed
        runs = aggregate_runs(by_label)
        os.makedirs(args.out_dir, exist_ok=True)
        seeds = ', '.join(f'{label} {len(paths)}' for label, paths in by_label.items())
        write_report(runs, args.out_dir, reference, args.ci_level,
                     f'results files per model as training seeds ({seeds}), paired by their order on the command line')
    except (StageError, RobustnessError) as err:
        fail(' '.join(str(err).split()))
    paths = {name: osp.join(args.out_dir, name) for name in ('study.md', 'study.csv', 'study.png')}
    with open(paths['study.md']) as f:
        print(f.read())
    print('written: ' + ', '.join(paths.values()))
    return paths


def main(argv=None):
    args = parse_args(argv)
    if args.labels and len(set(args.labels)) < len(args.labels):
        return seed_study(args)
    from featquant_mmdet.evaluation.robustness import RobustnessError, load_results
    from featquant_mmdet.evaluation.robustness import compare, report
    from featquant_mmdet.stats.checks import StatsInputError
    try:
        results = report.load_all(args.results)
        labels = args.labels or [r['identity']['config_name'] for r in results]
        ce_reference = load_results(args.ce_reference) if args.ce_reference else None
        comp = compare.compare_results(results, args.results, labels, args.metric, args.reference, args.bootstrap,
                                       args.bootstrap_seed, args.ci_level, ce_reference, args.ce_reference,
                                       args.ci_method)
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
