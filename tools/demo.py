"""The project's main job end to end: the paper's Table 3 (ZF vs ZF-POW-1 under Mix.Minor / Mix.Heavy) and a
Figure-5-style sheet, on an embedded dataset generated on the spot (or on a real VOCdevkit).

    python tools/demo.py                       # full preset on generated data -> results/demo/
    python tools/demo.py --preset tiny         # a reduced run (seconds of training) to check the flow
    python tools/demo.py --data-root data/VOCdevkit [--imagenet-root data/imagenet]   # the same flow on real data
    python tools/demo.py --restart             # start over instead of reusing finished steps

A recipe over :mod:`featquant_mmdet.engine.stages`: every step runs one of the project's tools in a subprocess
(data generators, tools/train.py, tools/convert_classifier_to_backbone.py, tools/robustness.py --distortions mix,
tools/compare_robustness.py, tools/analysis/detection_sheet.py), then Table 3 is written. ``--cfg-options`` only set the
data root (and the classifier's class count), image scale, schedule, pretrained weights, seed and workers. One console
line per step and a progress line; each tool's full output in ``<its work dir>/<step>.log`` (docs/demo.md).
"""
import argparse
import csv
import os
import os.path as osp
import shutil
import signal
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

from featquant_mmdet.datasets.imagenet import class_folders  # noqa: E402
from featquant_mmdet.datasets.layouts import check_imagenet_root, check_vocdevkit  # noqa: E402
from featquant_mmdet.engine.loading import last_checkpoint  # noqa: E402
from featquant_mmdet.engine.stages import (Plan, StageError, StageRunner, StagesInterrupted, Step,  # noqa: E402
                                           check_writable_folder)
from featquant_mmdet.evaluation.robustness.report import write_table_with_paper  # noqa: E402
from featquant_mmdet.fileio import write_json_atomic  # noqa: E402

MODELS = (  # (key, row label, pretraining config, detector config)
    ('zf', 'ZF', 'configs/pretrain/zf_imagenet.py', 'configs/faster_rcnn_zf_voc.py'),
    ('zf_pow1', 'ZF+POW-1', 'configs/pretrain/zf_pow1_imagenet.py', 'configs/faster_rcnn_zf_pow1_voc.py'))
COLUMNS = ('Original', 'Mix.Minor', 'Mix.Heavy')
PAPER_TABLE3 = {'ZF': (58.7, 50.0, 14.3), 'ZF+POW-1': (58.7, 52.2, 17.6)}  # real VOC 2007, fully trained models
# `full`: clean mAP >= 50 %, Mix.Heavy < Mix.Minor < Original within 20 min on 2 CPU cores; `tiny` checks the flow.
# Pretraining keeps ZF's gradient clipping (no normalisation layer: lr 0.01 at batch 16 diverges without it); det_lr is
# 5x py-faster-rcnn's for a 200-iteration schedule; 320x240 keeps objects near the anchors' size (128-512 px).
PRESETS = {
    'tiny': dict(voc_train=16, voc_test=4, voc_size=(192, 144), cls_train_per_class=4, cls_val_per_class=1,
                 cls_size=64, cls_scale=64, cls_epochs=1, cls_batch=8, cls_lr=0.01, det_scale=(192, 144), det_iters=4,
                 det_lr=0.001, det_clip=10.0, sheet_images=1, tile_size=(160, 120), workers=0),
    'full': dict(voc_train=300, voc_test=80, voc_size=(320, 240), cls_train_per_class=40, cls_val_per_class=10,
                 cls_size=80, cls_scale=64, cls_epochs=3, cls_batch=16, cls_lr=0.01, det_scale=(320, 240),
                 det_iters=200, det_lr=0.005, det_clip=10.0, sheet_images=3, tile_size=(320, 240), workers=1)}
SEED = 0  # data and distortions


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Table 3 of the paper end to end: data, pretraining, detection '
                                     'training, robustness, sheet',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='full', help='full (the demo) or tiny (a check)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='data, logs and checkpoints of every step')
    parser.add_argument('--results-dir', default='results/demo', help='where the table and the sheet are written')
    parser.add_argument('--data-root', help='a real VOCdevkit (holding VOC2007/) instead of the generated set')
    parser.add_argument('--imagenet-root', help='an ImageNet-layout folder (train/<wnid>/, val/, val.txt) instead of '
                                                'the generated classification set')
    parser.add_argument('--restart', action='store_true', help='remove the finished steps and start over')
    parser.add_argument('--det-iters', type=int, help='detector training iterations (preset)')
    parser.add_argument('--pretrain-epochs', type=int, help='classifier pretraining epochs (preset)')
    parser.add_argument('--det-scale', type=int, nargs=2, metavar=('LONG', 'SHORT'),
                        help='detector image scale (preset; the paper: 1000 600)')
    parser.add_argument('--workers', type=int, help='dataloader workers per loader (preset)')
    parser.add_argument('--train-seed', type=int, default=SEED,
                        help='seed of the pretraining and detector training (randomness.seed); data and distortions '
                             'keep seed 0, so other training seeds show how much the table owes to training noise')
    parser.add_argument('--jobs', type=int, default=2, help='steps run side by side (ZF and ZF-POW-1 are '
                                                            'independent); they share the cores (OMP_NUM_THREADS)')
    args = parser.parse_args(argv)
    for name, minimum in (('det_iters', 1), ('pretrain_epochs', 1), ('workers', 0), ('train_seed', 0), ('jobs', 1)):
        value = getattr(args, name)
        if value is not None and value < minimum:
            parser.error(f'--{name.replace("_", "-")} must be >= {minimum}, got {value}')
    if args.det_scale is not None and min(args.det_scale) < 32:
        parser.error(f'--det-scale sides must be >= 32 px, got {args.det_scale}')
    return args


class Demo:

    def __init__(self, args):
        self.args, self.py = args, sys.executable
        self.p = dict(PRESETS[args.preset])
        for knob, key in (('det_iters', 'det_iters'), ('pretrain_epochs', 'cls_epochs'), ('workers', 'workers'),
                          ('det_scale', 'det_scale')):
            if getattr(args, knob) is not None:
                self.p[key] = getattr(args, knob)
        self.work, self.results = osp.abspath(args.work_dir), osp.abspath(args.results_dir)
        self.voc_root = osp.abspath(args.data_root) if args.data_root else osp.join(self.work, 'data', 'VOCdevkit')
        self.imagenet_root = osp.abspath(args.imagenet_root or osp.join(self.work, 'data', 'imagenet'))

    def tool(self, name: str, *argv) -> list:
        return [self.py, osp.join(REPO, 'tools', f'{name}.py'), *map(str, argv)]

    def loaders(self, names=('train_dataloader', 'val_dataloader', 'test_dataloader'), settings=()) -> list:
        n = self.p['workers']
        return [f'{name}.{s}' for name in names for s in (*settings, f'num_workers={n}', f'persistent_workers={n > 0}')]

    def det_data(self) -> list:
        """Data root and image scale of the detector configs (configs/_base_/datasets/voc07.py's documented keys)."""
        (w, h), loaders = self.p['det_scale'], (('train_dataloader', 2), ('val_dataloader', 1), ('test_dataloader', 1))
        return [f'{loader}.dataset.data_root={self.voc_root}/' for loader, _ in loaders] + [
            f'{loader}.dataset.pipeline.{i}.scale=({w},{h})' for loader, i in loaders]

    def plan_data_voc(self) -> Plan:
        if self.args.data_root:
            return Plan(note=f'using --data-root {self.voc_root}')
        p, root = self.p, osp.join(self.work, 'data')
        lists = [osp.join(root, 'VOCdevkit', 'VOC2007', 'ImageSets', 'Main', f'{s}.txt') for s in ('trainval', 'test')]
        return Plan(self.tool('data/make_synthetic_voc', root, '--num-train', p['voc_train'], '--num-test',
                              p['voc_test'], '--image-size', *p['voc_size'], '--seed', SEED),
                    lists, [osp.join(root, 'VOCdevkit')], root)

    def plan_data_imagenet(self) -> Plan:
        if self.args.imagenet_root:
            return Plan(note=f'using --imagenet-root {self.imagenet_root}')
        root, p = self.imagenet_root, self.p
        return Plan(self.tool('data/make_synthetic_imagenet', root, '--num-train', p['cls_train_per_class'],
                              '--num-val', p['cls_val_per_class'], '--image-size', p['cls_size'], '--seed', SEED,
                              '--overwrite'),
                    [osp.join(root, 'val.txt')], [root], osp.join(self.work, 'data'))

    def plan_train(self, key: str, config: str, pretrain: bool) -> Plan:
        """Pretraining of the classifier (``pretrain``) or training of the detector from the converted weights."""
        p, work_dir = self.p, osp.join(self.work, 'pretrain' if pretrain else 'detect', key)
        n = p['cls_epochs'] if pretrain else p['det_iters']
        opts = ['default_hooks.logger.interval=10', 'default_hooks.checkpoint.save_optimizer=False',
                f'default_hooks.checkpoint.interval={n}', f'param_scheduler.0.milestones=[{max(1, round(0.75 * n))}]',
                f'randomness.seed={self.args.train_seed}']
        if pretrain:
            s, root = p['cls_scale'], self.imagenet_root
            opts += self.loaders(settings=[f'dataset.data_root={root}']) + [
                f'model.head.num_classes={len(class_folders(osp.join(root, "train")))}', f'train_cfg.max_epochs={n}',
                f'train_cfg.val_interval={n}', f'param_scheduler.0.end={n}', 'auto_scale_lr.enable=False',
                f'optim_wrapper.optimizer.lr={p["cls_lr"]}', 'default_hooks.checkpoint.save_best=None',
                f'train_dataloader.batch_size={p["cls_batch"]}', f'val_dataloader.batch_size={p["cls_batch"]}',
                f'train_dataloader.dataset.pipeline.1.scale={s}'] + [
                f'{loader}.dataset.pipeline.{i}.{k}={s}' for loader in ('val_dataloader', 'test_dataloader')
                for i, k in ((1, 'scale'), (2, 'crop_size'))]
        else:
            opts += self.det_data() + self.loaders() + [
                f'train_cfg.max_iters={n}', f'train_cfg.val_begin={n + 1}',  # the sweep evaluates
                f'optim_wrapper.optimizer.lr={p["det_lr"]}', f'optim_wrapper.clip_grad.max_norm={p["det_clip"]}',
                f'load_from={self.converted(key)}']
        return Plan(self.tool('train', osp.join(REPO, config), '--work-dir', work_dir, '--cfg-options', *opts),
                    [osp.join(work_dir, 'last_checkpoint')], [work_dir], work_dir)

    def converted(self, key: str) -> str:
        return osp.join(self.work, 'checkpoints', f'{key}_imagenet_converted.pth')

    def plan_convert(self, key: str, det_config: str) -> Plan:
        return Plan(self.tool('convert_classifier_to_backbone', last_checkpoint(osp.join(self.work, 'pretrain', key)),
                              self.converted(key), '--config', osp.join(REPO, det_config)), [self.converted(key)],
                    log_dir=osp.dirname(self.converted(key)))

    def sweep(self, key: str) -> str:
        return osp.join(self.work, 'robustness', key)

    def plan_robustness(self, key: str, config: str) -> Plan:
        # not cleared: the sweep resumes from its finished cells and starts afresh for another checkpoint itself
        return Plan(self.tool('robustness', osp.join(REPO, config), last_checkpoint(osp.join(self.work, 'detect', key)),
                              '--distortions', 'mix', '--seed', SEED, '--work-dir', self.sweep(key), '--cfg-options',
                              *self.det_data(), *self.loaders(['test_dataloader']), 'default_hooks.logger.interval=10'),
                    [osp.join(self.sweep(key), 'robustness.json')], log_dir=self.sweep(key))

    def plan_compare(self) -> Plan:
        return Plan(self.tool('compare_robustness', *[osp.join(self.sweep(m[0]), 'robustness.json') for m in MODELS],
                              '--labels', *[m[1] for m in MODELS], '--out-dir', self.results),
                    [osp.join(self.results, f'robustness_table.{ext}') for ext in ('md', 'csv')], log_dir=self.results)

    def plan_sheet(self) -> Plan:
        out = osp.join(self.results, 'detection_sheet.png')
        return Plan(self.tool('analysis/detection_sheet', '--config', *[osp.join(REPO, m[3]) for m in MODELS],
                              '--checkpoint', *[last_checkpoint(osp.join(self.work, 'detect', m[0])) for m in MODELS],
                              '--labels', *[m[1] for m in MODELS], '--out', out, '--num-images', self.p['sheet_images'],
                              '--seed', SEED, '--tile-size', *self.p['tile_size'], '--cfg-options',
                              *[o for o in self.det_data() if o.startswith('test_dataloader')]),
                    [out], log_dir=self.results)

    def steps(self) -> list:
        steps = [Step('data_voc', self.plan_data_voc, title='Generate the datasets: detection set (VOC 2007 layout)'),
                 Step('data_imagenet', self.plan_data_imagenet,
                      title='Generate the datasets: classification set (ImageNet layout)')]
        for stage, weight, deps, plan in (
                ('pretrain', 4, lambda k: ['data_imagenet'], lambda k, m: self.plan_train(k, m[2], pretrain=True)),
                ('convert', 0.5, lambda k: [f'pretrain_{k}'], lambda k, m: self.plan_convert(k, m[3])),
                ('train', 4, lambda k: ['data_voc', f'convert_{k}'], lambda k, m: self.plan_train(k, m[3], False)),
                ('robustness', 3, lambda k: ['data_voc', f'train_{k}'], lambda k, m: self.plan_robustness(k, m[3]))):
            steps += [Step(f'{stage}_{m[0]}', lambda plan=plan, m=m: plan(m[0], m), deps(m[0]), f'{stage} {m[1]}',
                           weight) for m in MODELS]
        return steps + [
            Step('compare', self.plan_compare, [f'robustness_{m[0]}' for m in MODELS], 'comparison table'),
            Step('sheet', self.plan_sheet, ['data_voc'] + [f'train_{m[0]}' for m in MODELS], 'detection sheet', 2),
            Step('table', lambda: Plan(outputs=[osp.join(self.results, f) for f in ('table3.md', 'table3.csv',
                                                                                    'demo_run.json')]),
                 ['compare', 'sheet'], 'Table 3', 0.1, after=self.write_table)]

    def write_table(self) -> dict:
        with open(osp.join(self.results, 'robustness_table.csv')) as f:
            table = {r['model']: [float(r[c]) for c in COLUMNS] for r in csv.DictReader(f) if r['row'] == 'value'}
        if sorted(table) != sorted(m[1] for m in MODELS):
            raise StageError(f'robustness_table.csv holds models {sorted(table)}, expected {[m[1] for m in MODELS]}')
        p = self.p
        data = (f'the VOCdevkit {self.voc_root}' if self.args.data_root else
                f'the generated VOC set ({p["voc_train"]} trainval / {p["voc_test"]} test images, '
                f'{p["voc_size"][0]}x{p["voc_size"][1]} px; preset {self.args.preset})')
        print(write_table_with_paper(
            osp.join(self.results, 'table3'), table, PAPER_TABLE3, COLUMNS,
            f'Detection performance (% mAP, VOC 11-point) on the test split of {data}',
            'The paper (Table 3; real Pascal VOC 2007 test set, fully trained models):'), flush=True)
        write_json_atomic(osp.join(self.results, 'demo_run.json'), self.runner.run_record(
            preset=self.args.preset, settings=p, data=data, table=table))
        return dict(table=table)

    def run(self) -> None:
        if self.args.restart:
            for name in ('stages', 'data', 'pretrain', 'checkpoints', 'detect', 'robustness'):  # only the demo's own
                if osp.isdir(osp.join(self.work, name)):
                    print(f'--restart: removing {osp.join(self.work, name)}', flush=True)
                    shutil.rmtree(osp.join(self.work, name))
        env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=os.pathsep.join(filter(None, [
            REPO, os.environ.get('PYTHONPATH')])))
        env.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // self.args.jobs)))  # share the cores
        self.runner = StageRunner(self.steps(), osp.join(self.work, 'stages'), self.args.jobs, env, REPO)
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
