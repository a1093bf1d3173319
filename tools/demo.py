"""The project's main job end to end: the paper's Table 3 (ZF vs ZF-POW-1 under Mix.Minor / Mix.Heavy) and a
Figure-5-style sheet, on an embedded dataset generated on the spot (or on a real VOCdevkit).

    python tools/demo.py                       # full preset on generated data -> results/demo/
    python tools/demo.py --preset tiny         # a reduced run (seconds of training) to check the flow
    python tools/demo.py --data-root data/VOCdevkit [--imagenet-root data/imagenet]   # the same flow on real data
    python tools/demo.py --restart             # start over instead of reusing finished steps
    python tools/demo.py --train-seeds 0 1 2   # each model once per training seed: mean and t-interval over seeds

A recipe over :mod:`featquant_mmdet.engine.study` (itself over :mod:`~featquant_mmdet.engine.stages`): every step
runs one of the project's tools in a subprocess (data generators, tools/train.py for the classifier and for the
detector started from it through the configs' init_cfg, tools/robustness.py --distortions mix,
tools/compare_robustness.py, tools/analysis/detection_sheet.py), then Table 3 is written. ``--cfg-options`` only set
the data root (and the classifier's class count), image scale, schedule, pretrained weights, seed and workers. One
console line per step and a progress line; each tool's full output in ``<its work dir>/<step>.log`` (docs/demo.md).
Table 3 comes with the paired image-bootstrap intervals of compare_robustness.py: with one training seed per model
they cover test-image sampling only, so the demo states whether each difference lies beyond test-image sampling
(Holm over the table's columns) and gives no verdict between the models; ``--train-seeds`` runs the seed study
instead, whose report has Holm-adjusted verdicts over seeds. Every command gets ``--threads`` threads
(``reproducible_env``), not cores / jobs.
"""
import argparse
import copy
import csv
import re
import os.path as osp
import shutil
import signal
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

from featquant_mmdet.datasets.layouts import check_imagenet_root, check_vocdevkit  # noqa: E402
from featquant_mmdet.datasets.synthetic_voc import STYLES  # noqa: E402
from featquant_mmdet.engine.loading import last_checkpoint  # noqa: E402
from featquant_mmdet.engine.reproducibility import cpu_kernels  # noqa: E402
from featquant_mmdet.engine.stages import (Plan, StageError, StageRunner, StagesInterrupted, Step,  # noqa: E402
                                           check_writable_folder)
from featquant_mmdet.engine.study import Study, load_spec  # noqa: E402
from featquant_mmdet.evaluation.robustness.report import write_table_with_paper  # noqa: E402
from featquant_mmdet.fileio import write_json_atomic  # noqa: E402

MODELS = (  # (row label = the study's variant name, pretraining config, detector config with the init_cfg hand-off)
    ('ZF', 'configs/pretrain/zf_imagenet.py', 'configs/faster_rcnn_zf_voc_imagenet_init.py'),
    ('ZF+POW-1', 'configs/pretrain/zf_pow1_imagenet.py', 'configs/faster_rcnn_zf_pow1_voc_imagenet_init.py'))
COLUMNS = ('Original', 'Mix.Minor', 'Mix.Heavy')
PAPER_TABLE3 = {'ZF': (58.7, 50.0, 14.3), 'ZF+POW-1': (58.7, 52.2, 17.6)}  # real VOC 2007, fully trained models
# `full`: clean mAP >= 50 %, Mix.Heavy < Mix.Minor < Original within 20 min on 2 CPU cores; `tiny` checks the flow.
# Pretraining keeps ZF's gradient clipping (no normalisation layer: lr 0.01 at batch 16 diverges without it); the
# detector's lr is 5x py-faster-rcnn's for a 200-iteration schedule; 320x240 keeps objects near the anchors' size.
# The keys are the study spec's (featquant_mmdet/engine/study.py), plus the sheet's.
PRESETS = {
    'tiny': dict(data=dict(voc=dict(num_train=16, num_test=4, image_size=(192, 144)),
                           imagenet=dict(num_train=4, num_val=1, image_size=64)),
                 pretrain=dict(epochs=1, batch=8, lr=0.01, scale=64), workers=0,
                 detect=dict(iters=4, lr=0.001, clip=10.0, scale=(192, 144)), sheet_images=1, tile_size=(160, 120)),
    'full': dict(data=dict(voc=dict(num_train=300, num_test=80, image_size=(320, 240)),
                           imagenet=dict(num_train=40, num_val=10, image_size=80)),
                 pretrain=dict(epochs=3, batch=16, lr=0.01, scale=64), workers=1,
                 detect=dict(iters=200, lr=0.005, clip=10.0, scale=(320, 240)), sheet_images=3, tile_size=(320, 240))}
SEED = 0  # data and distortions


EXAMPLES = """examples:
  python tools/demo.py                       # full preset on generated data -> results/demo/ (make demo)
  python tools/demo.py --preset tiny         # a reduced run (seconds of training) to check the flow
  python tools/demo.py --data-root data/VOCdevkit --imagenet-root data/imagenet   # the same flow on real data
  python tools/demo.py --train-seeds 0 1 2   # each model once per training seed: mean and t-interval over seeds
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default shown; the examples kept as written."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Table 3 of the paper end to end: data, pretraining, detection '
                                     'training, robustness, sheet',
                                     formatter_class=HelpFormatter, epilog=EXAMPLES)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='full', help='full (the demo) or tiny (a check)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='data, logs and checkpoints of every step')
    parser.add_argument('--results-dir', default='results/demo', help='where the table and the sheet are written')
    parser.add_argument('--data-root', help='a real VOCdevkit (holding VOC2007/) instead of the generated set')
    parser.add_argument('--imagenet-root', help='an ImageNet-layout folder (train/<wnid>/, val/, val.txt) instead of '
                                                'the generated classification set')
    parser.add_argument('--style', choices=STYLES, default='photo',
                        help='objects of the generated sets: shapes (drawn) or photo (cut from photographs)')
    parser.add_argument('--restart', action='store_true', help='remove the finished steps and start over')
    parser.add_argument('--det-iters', type=int, help='detector training iterations (preset)')
    parser.add_argument('--pretrain-epochs', type=int, help='classifier pretraining epochs (preset)')
    parser.add_argument('--det-scale', type=int, nargs=2, metavar=('LONG', 'SHORT'),
                        help='detector image scale (preset; the paper: 1000 600)')
    parser.add_argument('--workers', type=int, help='dataloader workers per loader (preset)')
    parser.add_argument('--train-seed', type=int, default=SEED,
                        help='seed of the pretraining and detector training (randomness.seed); data and distortions '
                             'keep seed 0, so other training seeds show how much the table owes to training noise')
    parser.add_argument('--train-seeds', type=int, nargs='+', metavar='SEED',
                        help='instead of one run: each model once per seed (the study library, tools/study.py), '
                             'then the mean and t-interval over seeds and a verdict per column')
    parser.add_argument('--jobs', type=int, default=2, help='steps run side by side (ZF and ZF-POW-1 are independent)')
    parser.add_argument('--threads', type=int, default=1, help='threads of every command: fixed, not cores / jobs '
                                                               '(the table depends on it)')
    parser.add_argument('--bootstrap', type=int, default=1000, help='image-bootstrap resamples of the intervals')
    args = parser.parse_args(argv)
    for name, minimum in (('det_iters', 1), ('pretrain_epochs', 1), ('workers', 0), ('train_seed', 0), ('jobs', 1),
                          ('threads', 1), ('bootstrap', 1)):
        value = getattr(args, name)
        if value is not None and value < minimum:
            parser.error(f'--{name.replace("_", "-")} must be >= {minimum}, got {value}')
    if args.train_seeds is not None and (min(args.train_seeds) < 0 or len(set(args.train_seeds)) < 2):
        parser.error(f'--train-seeds takes at least 2 distinct seeds >= 0, got {args.train_seeds}')
    if args.det_scale is not None and min(args.det_scale) < 32:
        parser.error(f'--det-scale sides must be >= 32 px, got {args.det_scale}')
    return args


class Demo:

    def __init__(self, args):
        self.args, self.py = args, sys.executable
        self.p = p = copy.deepcopy(PRESETS[args.preset])
        for knob, (part, key) in (('det_iters', ('detect', 'iters')), ('pretrain_epochs', ('pretrain', 'epochs')),
                                  ('det_scale', ('detect', 'scale'))):
            if getattr(args, knob) is not None:
                p[part][key] = getattr(args, knob)
        p['workers'] = p['workers'] if args.workers is None else args.workers
        for data in p['data'].values():
            data['style'] = args.style
        self.work, self.results = osp.abspath(args.work_dir), osp.abspath(args.results_dir)
        self.seeds = args.train_seeds or [args.train_seed]
        self.study = Study(load_spec(None, dict(
            task='detection', seeds=self.seeds, distortions=['mix'], threads=args.threads, jobs=args.jobs,
            columns=list(COLUMNS), data_seed=SEED, voc_root=args.data_root, imagenet_root=args.imagenet_root,
            variants=[dict(name=m[0], pretrain=m[1], config=m[2]) for m in MODELS],
            **{k: p[k] for k in ('data', 'pretrain', 'detect', 'workers')})), self.work,
            osp.join(self.results, 'study'))

    def tool(self, name: str, *argv) -> list:
        return [self.py, osp.join(REPO, 'tools', f'{name}.py'), *map(str, argv)]

    def sweep(self, label: str) -> str:
        return osp.join(self.study.sweep_dir(label, self.seeds[0]), 'robustness.json')

    def plan_compare(self) -> Plan:
        return Plan(self.tool('compare_robustness', *[self.sweep(m[0]) for m in MODELS], '--labels',
                              *[m[0] for m in MODELS], '--out-dir', self.results, '--bootstrap', self.args.bootstrap),
                    [osp.join(self.results, f'robustness_table.{ext}') for ext in ('md', 'csv')], log_dir=self.results)

    def plan_sheet(self) -> Plan:
        out, p = osp.join(self.results, 'detection_sheet.png'), self.p
        return Plan(self.tool('analysis/detection_sheet', '--config', *[osp.join(REPO, m[2]) for m in MODELS],
                              '--checkpoint', *[last_checkpoint(self.study.work_dir('detect', m[0], self.seeds[0]))
                                                for m in MODELS],
                              '--labels', *[m[0] for m in MODELS], '--out', out, '--num-images', p['sheet_images'],
                              '--seed', SEED, '--tile-size', *p['tile_size'], '--cfg-options',
                              *[o for o in self.study.det_data() if o.startswith('test_dataloader')]),
                    [out], log_dir=self.results)

    def steps(self) -> list:
        key = f'_s{self.seeds[0]}'
        return self.study.steps(report=False) + [
            Step('compare', self.plan_compare, [f'robustness_{m[0]}{key}' for m in MODELS], 'comparison table'),
            Step('sheet', self.plan_sheet, ['data_voc'] + [f'train_{m[0]}{key}' for m in MODELS], 'detection sheet',
                 2),
            Step('table', lambda: Plan(outputs=[osp.join(self.results, f) for f in ('table3.md', 'table3.csv',
                                                                                    'demo_run.json')]),
                 ['compare', 'sheet'], 'Table 3', 0.1, after=self.write_table)]

    def write_table(self) -> dict:
        with open(osp.join(self.results, 'robustness_table.csv')) as f:
            table = {r['model']: [float(r[c]) for c in COLUMNS] for r in csv.DictReader(f) if r['row'] == 'value'}
        if sorted(table) != sorted(m[0] for m in MODELS):
            raise StageError(f'robustness_table.csv holds models {sorted(table)}, expected {[m[0] for m in MODELS]}')
        voc = self.p['data']['voc']
        data = (f'the VOCdevkit {self.study.voc_root}' if self.args.data_root else
                f'the generated VOC set ({voc["num_train"]} trainval / {voc["num_test"]} test images, '
                f'{voc["image_size"][0]}x{voc["image_size"][1]} px, {voc["style"]} style; preset {self.args.preset})')
        print(write_table_with_paper(
            osp.join(self.results, 'table3'), table, PAPER_TABLE3, COLUMNS,
            f'Detection performance (% mAP, VOC 11-point) on the test split of {data}',
            'The paper (Table 3; real Pascal VOC 2007 test set, fully trained models):'), flush=True)
        # the comparison's table with its paired image-bootstrap intervals, its Holm-adjusted image-sampling lines
        # (family stated) and the note that one training seed per model gives no verdict between the models
        with open(osp.join(self.results, 'robustness_table.md')) as f:
            compared = f.read().rstrip()
        sampling = [line[2:] for line in compared.splitlines()
                    if line.startswith('- ') and re.search(r'(within|beyond) test-image sampling$', line)]
        print(f'\nWith intervals (test-image bootstrap, {self.args.bootstrap} resamples; one training seed per model: '
              'no verdict between the models, --train-seeds 0 1 2 gives one):', compared, sep='\n')
        write_json_atomic(osp.join(self.results, 'demo_run.json'), self.runner.run_record(
            preset=self.args.preset, settings=self.p, data=data, table=table, image_sampling=sampling,
            model_verdict='none: one training seed per model (--train-seeds runs the seed study)',
            threads=self.args.threads, cpu_capability=torch.backends.cpu.get_cpu_capability(),
            kernels=cpu_kernels(self.env)))
        return dict(table=table)

    def run(self) -> None:
        if self.args.restart:
            for name in ('stages', 'data', 'configs', 'pretrain', 'detect', 'robustness'):  # only the demo's own
                if osp.isdir(osp.join(self.work, name)):
                    print(f'--restart: removing {osp.join(self.work, name)}', flush=True)
                    shutil.rmtree(osp.join(self.work, name))
        if self.args.train_seeds:  # the seed study: its own report (means, paired differences, verdicts)
            self.study.run()
            with open(osp.join(self.study.results, 'study.md')) as f:
                print(f.read().rstrip(), flush=True)
            self.runner = self.study.runner
        else:
            self.env = self.study.environment()  # a fixed thread count: not cores / jobs (the table would differ)
            self.runner = StageRunner(self.steps(), osp.join(self.work, 'stages'), self.args.jobs, self.env, REPO)
            self.runner.run()
        print(f'Done. Results in {self.results}', *self.runner.timing_table(), sep='\n', flush=True)


def _raise_interrupt(signum, frame):
    raise StagesInterrupted()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_writable_folder(args.results_dir, 'results folder', '--results-dir')
        check_writable_folder(args.work_dir, 'work folder', '--work-dir')
        for option, root, check, layout in (('--data-root', args.data_root, check_vocdevkit, 'a Pascal VOC'), (
                '--imagenet-root', args.imagenet_root, check_imagenet_root, 'an ImageNet')):
            try:
                if root:
                    check(root)
            except FileNotFoundError as err:
                raise StageError(f'{option} {osp.abspath(root)} is not {layout} layout: {err}') from None
        signal.signal(signal.SIGTERM, _raise_interrupt)
        Demo(args).run()
    except (StageError, FileNotFoundError) as err:  # FileNotFoundError: a checkpoint a finished step did not leave
        print(f'\ndemo.py: error: {err}', file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print('\ndemo.py: interrupted. The finished steps are kept; rerun the same command to continue from them '
              '(--restart starts over).', file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
