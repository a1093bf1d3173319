"""Pick, per training run, the snapshot whose clean metric matches a target (the paper's protocol for Table 3).

    python tools/match_snapshots.py RUN_DIR [RUN_DIR ...] --metric accuracy/top1 --target reference --tolerance 1
    python tools/match_snapshots.py work_dirs/zf work_dirs/zf_pow1 --metric pascal_voc/mAP --target 58.7 \
        --tolerance 0.5 [--reference work_dirs/zf] [--json matched.json]

A run is a training work dir with periodic checkpoints, each validated: train with
``--cfg-options default_hooks.checkpoint.interval=K default_hooks.checkpoint.max_keep_ckpts=-1
train_cfg.val_interval=K`` (epochs for classifiers; detectors: iterations and ``train_cfg.val_begin=K``). The
recorded values come from ``<run>/<timestamp>/vis_data/scalars.json``. ``--target``: a number, ``reference`` (the
final value of ``--reference``, default the first run) or ``common`` (the best value every run reaches). Ties go to
the later snapshot. Prints a table (run, snapshot, clean metric, distance to the target); when a run has no
snapshot within ``--tolerance`` it refuses with one line naming the run and its closest snapshot (exit 1).
Argument mistakes: one line, exit 2.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from featquant_mmdet.engine.snapshots import match_runs, match_table, matches_to_json, snapshots  # noqa: E402
from featquant_mmdet.engine.stages import StageError  # noqa: E402
from featquant_mmdet.fileio import write_json_atomic  # noqa: E402


def target_arg(text: str):
    if text in ('reference', 'common'):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, reference or common, got {text!r}') from None


EXAMPLES = """examples:
  # the paper's Table 3 protocol: classifier snapshots matched on clean top-1 to the reference's final value
  python tools/match_snapshots.py work_dirs/zf work_dirs/zf_pow1 --metric accuracy/top1 --target reference --tolerance 1
  # detector snapshots matched to a fixed mAP, written to JSON
  python tools/match_snapshots.py work_dirs/det_zf work_dirs/det_zf_pow1 --metric pascal_voc/mAP --target 58.7 \\
      --tolerance 0.5 --json matched.json
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Snapshots matched on a clean metric', epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', help='training work dirs with periodic, validated checkpoints')
    parser.add_argument('--metric', required=True, help='the recorded metric (accuracy/top1, pascal_voc/mAP, ...)')
    parser.add_argument('--target', type=target_arg, default='reference',
                        help='a number, reference (the final value of --reference) or common (the best value every '
                             'run reaches); default: reference')
    parser.add_argument('--tolerance', type=float, required=True, help='largest distance to the target (metric units)')
    parser.add_argument('--reference', help='the reference run (default: the first)')
    parser.add_argument('--json', help='also write the matches to this JSON file')
    args = parser.parse_args(argv)
    if not args.tolerance >= 0:
        parser.error(f'--tolerance must be >= 0, got {args.tolerance}')
    missing = [r for r in args.runs if not osp.isdir(r)]
    if missing:
        parser.error(f'no such run folder: {", ".join(missing)}')
    if len(set(map(osp.abspath, args.runs))) != len(args.runs):
        parser.error('a run is given twice')
    args.reference = args.reference or args.runs[0]
    if osp.abspath(args.reference) not in map(osp.abspath, args.runs):
        parser.error(f'--reference {args.reference} is not one of the runs')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    labels = {osp.abspath(r): osp.normpath(r) for r in args.runs}
    try:
        runs = {labels[osp.abspath(r)]: snapshots(r, args.metric, osp.normpath(r)) for r in args.runs}
        matches = match_runs(runs, args.target, args.tolerance, labels[osp.abspath(args.reference)], args.metric)
    except StageError as err:
        print(f'match_snapshots.py: error: {err}', file=sys.stderr)
        return 1
    target = next(iter(matches.values())).target
    print(f'target {args.metric} {target:.2f} ({args.target!r}), tolerance {args.tolerance:g}:')
    print('\n'.join(match_table(matches, args.metric)))
    if args.json:
        write_json_atomic(args.json, dict(metric=args.metric, target=args.target, tolerance=args.tolerance,
                                          matches=matches_to_json(matches)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
