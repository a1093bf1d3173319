"""Multi-seed study: train and robustness-sweep every (variant, seed), then the mean and t-interval over seeds per
column, the difference to the reference paired by seed, and a verdict per column (docs/study.md).

    python tools/study.py --preset quick                       # the flow in minutes (configs/studies/quick.py)
    python tools/study.py configs/studies/evidence.py          # issue 15's study (< 3 h on 2 CPU cores)
    python tools/study.py --task classification --seeds 0 1 2 \
        --variant ZF=configs/pretrain/zf_imagenet.py --variant POW1=configs/pretrain/zf_pow1_imagenet.py:alpha_lr_mult=3

Resumable: rerun the same command and the finished steps are reused (a killed study loses only the running steps).
Writes ``study.md``, ``study.csv``, ``study.png`` and ``study_run.json`` to ``--results-dir``.
"""
import argparse
import os
import os.path as osp
import shutil
import signal
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

from featquant_mmdet.engine.stages import StageError, StagesInterrupted, check_writable_folder  # noqa: E402
from featquant_mmdet.engine.study import Study, load_spec, parse_variant  # noqa: E402


EXAMPLES = """examples:
  python tools/study.py --preset quick                       # the flow in minutes (configs/studies/quick.py)
  python tools/study.py configs/studies/evidence.py          # the exponent study (docs/robustness_study.md)
  python tools/study.py configs/studies/table2.py --seeds 0 --only ZF ZF-POW-1   # two of the spec's variants
  python tools/study.py --task classification --seeds 0 1 2 \\
      --variant ZF=configs/pretrain/zf_imagenet.py --variant POW1=configs/pretrain/zf_pow1_imagenet.py:alpha_lr_mult=3
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default shown; the examples kept as written."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Multi-seed robustness study', formatter_class=HelpFormatter,
                                     epilog=EXAMPLES)
    parser.add_argument('spec', nargs='?', help='study spec (Python config file, e.g. configs/studies/evidence.py)')
    parser.add_argument('--preset', help='configs/studies/<PRESET>.py instead of a spec file (quick, evidence)')
    parser.add_argument('--variant', action='append', default=[], metavar='NAME=CONFIG[:key=value,...]',
                        help='a variant (repeatable; replaces the spec\'s variants): cfg-options after the colon, '
                             'plus pretrain=CONFIG (detection) and alpha_lr_mult=X')
    parser.add_argument('--only', nargs='+', metavar='NAME',
                        help='run only these of the variants (the reference among them); a variant set of its own, '
                             'so its snapshot matching is its own too')
    parser.add_argument('--task', choices=['detection', 'classification'], help='(spec)')
    parser.add_argument('--seeds', type=int, nargs='+', help='training seeds (spec)')
    parser.add_argument('--reference', help='the variant the others are compared with (spec; default: the first)')
    parser.add_argument('--distortions', nargs='+', help='tools/robustness.py --distortions (spec)')
    parser.add_argument('--threads', type=int, help='threads of every command (spec; fixed for reproducibility)')
    parser.add_argument('--jobs', type=int, help='steps run side by side (spec)')
    parser.add_argument('--work-dir', default='work_dirs/study', help='data, checkpoints, sweeps, logs')
    parser.add_argument('--results-dir', help='tables and plot (default: <work dir>/results)')
    parser.add_argument('--restart', action='store_true', help='remove the study\'s work dir first')
    args = parser.parse_args(argv)
    if args.spec and args.preset:
        parser.error('give a spec file or --preset, not both')
    path = args.spec or (osp.join(REPO, 'configs', 'studies', f'{args.preset}.py') if args.preset else None)
    if args.preset and not osp.isfile(path):
        presets = sorted(n[:-3] for n in os.listdir(osp.dirname(path)) if n.endswith('.py'))
        parser.error(f'--preset {args.preset}: no {path}; presets: {", ".join(presets)}')
    overrides = {k: getattr(args, k) for k in ('task', 'seeds', 'reference', 'distortions', 'threads', 'jobs')
                 if getattr(args, k) is not None}
    try:
        spec = load_spec(path, overrides)
        if args.variant:
            spec['variants'] = [parse_variant(v, spec['task']) for v in args.variant]
        if args.only:
            names = [v.get('name') for v in spec['variants']]
            unknown = [n for n in args.only if n not in names]
            if unknown:
                raise StageError(f'--only {" ".join(unknown)}: no such variant; the variants: '
                                 f'{", ".join(map(str, names))}')
            spec['variants'] = [v for v in spec['variants'] if v.get('name') in args.only]
        study = Study(spec, args.work_dir, args.results_dir or osp.join(args.work_dir, 'results'))
    except StageError as err:  # one line, exit 2, before any step
        print(f'study.py: error: {err}', file=sys.stderr)
        raise SystemExit(2) from None
    return args, study


def _raise_interrupt(signum, frame):
    raise StagesInterrupted()


def main(argv=None) -> int:
    args, study = parse_args(argv)
    try:
        if args.restart and osp.isdir(study.work):
            print(f'--restart: removing {study.work}', flush=True)
            shutil.rmtree(study.work)
        check_writable_folder(study.work, 'work folder', '--work-dir')
        check_writable_folder(study.results, 'results folder', '--results-dir')
        signal.signal(signal.SIGTERM, _raise_interrupt)
        verdicts = study.run()
    except (StageError, FileNotFoundError) as err:
        print(f'\nstudy.py: error: {err}', file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print('\nstudy.py: interrupted. The finished steps are kept; rerun the same command to continue.',
              file=sys.stderr, flush=True)
        return 130
    for track, lines in verdicts.items():
        print(f'{track} track (mean over seeds, paired by seed; tables in {study.results_of(track)}):', *lines,
              sep='\n', flush=True)
    print(*study.runner.timing_table(), sep='\n', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
