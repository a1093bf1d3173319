"""Compare robustness results of several models: the paper's table (Markdown + CSV) and Figure-4-style plots.

    python tools/compare_robustness.py work_dirs/zf/robustness.json work_dirs/zf_pow1/robustness.json \
        --labels ZF ZF+POW-1 [--out-dir DIR] [--metric KEY] [--reference RESULTS.json]

Writes ``robustness_table.md``, ``robustness_table.csv`` and ``robustness_levels.png`` to ``--out-dir`` (default:
the current folder) and prints the Markdown table. The first file is the baseline of the difference rows.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Compare robustness results files')
    parser.add_argument('results', nargs='+', help='robustness.json files written by tools/robustness.py')
    parser.add_argument('--labels', nargs='+', help='one row label per results file (default: config names)')
    parser.add_argument('--out-dir', default='.', help='where the .md, .csv and .png files go')
    parser.add_argument('--metric', default=None, help='metric key (default: the one the first sweep summarised)')
    parser.add_argument('--reference', default=None, help='reference classifier results: adds an mCE column')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from featquant_mmdet.evaluation.robustness import RobustnessError, load_results, report
    try:
        results = report.load_all(args.results)
        labels = args.labels or [r['identity']['config_name'] for r in results]
        reference = load_results(args.reference) if args.reference else None
        metric = report.check_comparable(results, labels, args.metric)
        columns, rows = report.comparison_table(results, labels, metric, reference)
    except RobustnessError as err:
        raise SystemExit(f'compare_robustness.py: error: {err}') from None
    os.makedirs(args.out_dir, exist_ok=True)
    markdown = report.to_markdown(columns, rows, labels, metric)
    paths = {name: osp.join(args.out_dir, name)
             for name in ('robustness_table.md', 'robustness_table.csv', 'robustness_levels.png')}
    with open(paths['robustness_table.md'], 'w') as f:
        f.write(markdown)
    with open(paths['robustness_table.csv'], 'w') as f:
        f.write(report.to_csv(columns, rows, labels))
    report.plot_levels(results, labels, paths['robustness_levels.png'], metric)
    print(markdown)
    print('written: ' + ', '.join(paths.values()))
    return paths


if __name__ == '__main__':
    main()
