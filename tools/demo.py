"""The project's main job end to end: the paper's Table 3 (ZF vs ZF-POW-1 under Mix.Minor / Mix.Heavy) and a
Figure-5-style sheet, on an embedded dataset generated on the spot (or on a real VOCdevkit).

    python tools/demo.py                       # full preset on generated data -> results/demo/
    python tools/demo.py --preset tiny         # a reduced run (seconds of training) to check the flow
    python tools/demo.py --data-root data/VOCdevkit [--imagenet-root data/imagenet]   # the same flow on real data
    python tools/demo.py --restart             # start over instead of reusing finished stages

Stages (each runs the project's real tools in a subprocess; the demo only chooses their arguments):

    1. generate the VOC / ImageNet-layout sets  tools/data/make_synthetic_voc.py, tools/data/make_synthetic_imagenet.py
    2. pretrain ZF and ZF-POW-1 classifiers     tools/train.py configs/pretrain/zf{,_pow1}_imagenet.py
    3. convert them to detector weights         tools/convert_classifier_to_backbone.py
    4. train Faster R-CNN ZF and ZF-POW-1       tools/train.py configs/faster_rcnn_zf{,_pow1}_voc.py
    5. evaluate on Original/Mix.Minor/Mix.Heavy tools/robustness.py --distortions mix; tools/compare_robustness.py
    6. draw the detection sheet                 tools/analysis/detection_sheet.py
    7. write and print Table 3                  <results>/table3.md, table3.csv, demo_run.json

The configs are used as they are; ``--cfg-options`` only set the data root (and the classifier's class count),
the image scale, the schedule (epochs/iterations, lr, the detector's gradient-norm clipping, checkpoint interval),
the pretrained weights (``load_from``), the seed and the dataloader workers. The ZF and ZF-POW-1 steps are
independent and run side by side (``--jobs 2``: their output lines are prefixed with the step name).

Every finished step leaves a marker (``<work dir>/stages/<step>.json``, written last) that records the step's
commands and the markers of the steps it used; a rerun skips a step whose marker matches and whose outputs exist,
and redoes it (and what depends on it) otherwise. An interrupted step is started again from the beginning (the
robustness sweep continues from its finished cells). ``--restart`` removes the demo's folders in the work dir first.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

STAGES = ('Generate the datasets', 'Pretrain the classifiers', 'Convert the classifiers to detector weights',
          'Train the detectors', 'Evaluate on Original / Mix.Minor / Mix.Heavy', 'Draw the detection sheet',
          'Write Table 3')

# (key, row label, pretraining config, detector config)
MODELS = (
    ('zf', 'ZF', 'configs/pretrain/zf_imagenet.py', 'configs/faster_rcnn_zf_voc.py'),
    ('zf_pow1', 'ZF+POW-1', 'configs/pretrain/zf_pow1_imagenet.py', 'configs/faster_rcnn_zf_pow1_voc.py'),
)
TABLE_COLUMNS = ('Original', 'Mix.Minor', 'Mix.Heavy')
# the paper's Table 3 (real Pascal VOC 2007 test set, fully trained models), shown next to the demo's numbers
PAPER_TABLE3 = {'ZF': (58.7, 50.0, 14.3), 'ZF+POW-1': (58.7, 52.2, 17.6)}

# Size knobs. `full` is tuned to meet the demo's targets (clean mAP >= 50 %, Mix.Heavy < Mix.Minor < Original) in
# at most 20 minutes on 2 CPU cores (measured: 8 min 15 s on 2 idle cores); `tiny` only exercises the flow (tests).
# - pretraining keeps the ZF configs' gradient-norm clipping (max_norm 10): ZF has no normalisation layer, and without
#   it lr 0.01 at batch 16 diverges to NaN within the first epoch (measurement in configs/pretrain/zf_imagenet.py).
# - det_lr: 5x py-faster-rcnn's 0.001 (one image per iteration) for a 200-iteration schedule; x0.1 at 75 %.
# - det_scale: with anchors of 128-512 px (stride 16, scales 8-32) and allowed_border=0, an image needs a side of
#   ~181 px before any anchor lies inside it; 320x240 keeps the objects (35-60 % of the short side) near anchor size.
PRESETS = {
    'tiny': dict(
        voc_train=16, voc_test=4, voc_size=(192, 144),
        cls_train_per_class=4, cls_val_per_class=1, cls_size=64,
        cls_scale=64, cls_epochs=1, cls_batch=8, cls_lr=0.01,
        det_scale=(192, 144), det_iters=4, det_lr=0.001, det_clip=10.0,
        sheet_images=1, tile_size=(160, 120), workers=0),
    'full': dict(
        voc_train=300, voc_test=80, voc_size=(320, 240),
        cls_train_per_class=40, cls_val_per_class=10, cls_size=80,
        cls_scale=64, cls_epochs=3, cls_batch=16, cls_lr=0.01,
        det_scale=(320, 240), det_iters=200, det_lr=0.005, det_clip=10.0,
        sheet_images=3, tile_size=(320, 240), workers=1),
}
SEED = 0


class DemoError(RuntimeError):
    """A failed step or bad input: the message says what went wrong and what to do."""


class DemoInterrupted(KeyboardInterrupt):
    pass


# ------------------------------------------------------------------------------------------------------------------
# arguments and checks


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Table 3 of the paper end to end: data, pretraining, detection training, robustness, sheet',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='full',
                        help='size of the run: full (the demo) or tiny (a reduced check of the flow)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='data, logs and checkpoints of every stage')
    parser.add_argument('--results-dir', default='results/demo', help='where the table and the sheet are written')
    parser.add_argument('--data-root', default=None,
                        help='a real VOCdevkit (holding VOC2007/) instead of the generated detection set')
    parser.add_argument('--imagenet-root', default=None,
                        help='an ImageNet-layout folder (train/<wnid>/, val/, val.txt) instead of the generated '
                             'classification set')
    parser.add_argument('--restart', action='store_true', help='remove the finished stages and start over')
    parser.add_argument('--det-iters', type=int, default=None, help='detector training iterations (preset)')
    parser.add_argument('--pretrain-epochs', type=int, default=None, help='classifier pretraining epochs (preset)')
    parser.add_argument('--det-scale', type=int, nargs=2, default=None, metavar=('LONG', 'SHORT'),
                        help='detector image scale: longer side <= LONG, shorter side <= SHORT (preset; the paper: '
                             '1000 600)')
    parser.add_argument('--workers', type=int, default=None, help='dataloader workers per loader (preset)')
    parser.add_argument('--train-seed', type=int, default=SEED,
                        help='seed of the pretraining and detector training (randomness.seed); the data and the '
                             'distortions keep seed 0, so runs with other training seeds (into other --work-dir / '
                             '--results-dir) show how much the table owes to training randomness')
    parser.add_argument('--jobs', type=int, default=2,
                        help='steps run side by side (the ZF and ZF-POW-1 steps are independent); their output lines '
                             'are prefixed with the step name, and they share the CPU cores (OMP_NUM_THREADS); '
                             '1: one step at a time, output as the tools print it')
    args = parser.parse_args(argv)
    for name in ('det_iters', 'pretrain_epochs'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {value}')
    if args.det_scale is not None and min(args.det_scale) < 32:
        parser.error(f'--det-scale sides must be >= 32 px, got {args.det_scale}')
    if args.train_seed < 0:
        parser.error(f'--train-seed must be >= 0, got {args.train_seed}')
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.workers is not None and args.workers < 0:
        parser.error(f'--workers must be >= 0, got {args.workers}')
    return args


def check_writable_folder(path: str, what: str, option: str) -> str:
    """Create ``path`` if needed and write a file into it; a clear error says which folder and what to pass."""
    path = osp.abspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix='.write-test-'):
            pass
    except OSError as err:
        raise DemoError(f'cannot write to the {what} {path} ({type(err).__name__}: {err.strerror or err}); pass '
                        f'{option} with a folder you can write to') from None
    return path


def check_voc_root(data_root: str) -> str:
    """A VOCdevkit: ``VOC2007/`` with JPEGImages/, Annotations/ and ImageSets/Main/{trainval,test}.txt."""
    from featquant_mmdet.datasets.strict_voc import check_voc_layout
    data_root = osp.abspath(data_root)
    voc = osp.join(data_root, 'VOC2007')
    try:
        for split in ('trainval', 'test'):
            check_voc_layout(data_root, voc, osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'JPEGImages',
                             'Annotations')
    except FileNotFoundError as err:
        raise DemoError(f'--data-root {data_root} is not a Pascal VOC layout: {err}') from None
    return data_root


def check_imagenet_root(root: str) -> str:
    """An ImageNet layout: ``train/<wnid>/`` class folders and ``val.txt`` with ``val/``."""
    from featquant_mmdet.datasets.imagenet import class_folders
    root = osp.abspath(root)
    layout = 'expected train/<wnid>/*.JPEG, val/ and val.txt ("<path relative to val/> <label>" lines)'
    problems = [p for p in ('train', 'val') if not osp.isdir(osp.join(root, p))]
    problems += [] if osp.isfile(osp.join(root, 'val.txt')) else ['val.txt']
    if problems:
        raise DemoError(f'--imagenet-root {root} is not an ImageNet layout: missing {", ".join(problems)}; {layout}')
    if not class_folders(osp.join(root, 'train')):
        raise DemoError(f'--imagenet-root {root}: train/ has no class folder; {layout}')
    return root


# ------------------------------------------------------------------------------------------------------------------
# steps


@dataclass
class Plan:
    """What a step runs (argv lists, interpreter first) and the files it leaves; ``clear``: folders emptied first."""

    commands: List[List[str]]
    outputs: List[str]
    clear: List[str] = field(default_factory=list)
    note: str = ''


@dataclass
class Step:
    name: str
    stage: int
    title: str
    deps: Sequence[str]
    plan: Callable[[], Plan]
    after: Optional[Callable[[], dict]] = None  # in-process work after the commands (returns info for the marker)


@dataclass
class Running:
    """A started step: its plan, key, process (None for in-process steps) and start time."""

    step: Step
    plan: Plan
    key: dict
    proc: Optional[subprocess.Popen]
    start: float
    cpu_s: float = 0.0

    def poll(self) -> Optional[int]:
        """The exit status once the process ended (reaped with its own CPU time), else None."""
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        reader = getattr(self.proc, 'reader', None)
        if reader is not None:
            reader.join()
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()


_PRINT_LOCK = threading.Lock()


def say(text: str) -> None:
    with _PRINT_LOCK:
        print(text, flush=True)


def forward_lines(stream, prefix: str) -> None:
    """Copy a child's output to ours line by line, each line prefixed (parallel steps stay readable)."""
    for line in stream:
        say(prefix + line.rstrip('\n'))
    stream.close()


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='microseconds')


def write_json_atomic(path: str, data: dict) -> None:
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def children_cpu_seconds() -> float:
    """User + system CPU time of the finished child processes (with the machine shared, wall time alone misleads)."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def banner(text: str) -> None:
    say('\n' + '=' * 100 + f'\n{text}\n' + '=' * 100)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint mmengine's Runner saved last in ``work_dir`` (its ``last_checkpoint`` file)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise DemoError(f'no checkpoint in {work_dir} (no last_checkpoint file): the training step did not finish')
    with open(pointer) as f:
        path = f.read().strip()
    if not osp.isabs(path):
        path = osp.join(work_dir, osp.basename(path))
    if not osp.isfile(path):
        raise DemoError(f'{pointer} names {path}, which does not exist')
    return path


class Demo:

    def __init__(self, args):
        self.args = args
        self.py = sys.executable
        self.jobs = args.jobs
        self.preset = dict(PRESETS[args.preset])
        for knob, key in (('det_iters', 'det_iters'), ('pretrain_epochs', 'cls_epochs'), ('workers', 'workers'),
                          ('det_scale', 'det_scale')):
            if getattr(args, knob) is not None:
                self.preset[key] = getattr(args, knob)
        self.work = osp.abspath(args.work_dir)
        self.results = osp.abspath(args.results_dir)
        self.markers = osp.join(self.work, 'stages')
        self.voc_root = osp.abspath(args.data_root) if args.data_root else osp.join(self.work, 'data', 'VOCdevkit')
        self.imagenet_root = (osp.abspath(args.imagenet_root) if args.imagenet_root else
                              osp.join(self.work, 'data', 'imagenet'))
        self.timings: Dict[str, dict] = {}
        self.steps = self._steps()

    # ---- options shared by the commands

    def _workers(self, loaders: Sequence[str]) -> List[str]:
        n = self.preset['workers']
        return [f'{loader}.num_workers={n}' for loader in loaders] + \
               [f'{loader}.persistent_workers={n > 0}' for loader in loaders]

    def det_data_options(self) -> List[str]:
        """Data root and image scale of the detector configs (configs/_base_/datasets/voc07.py's documented keys)."""
        w, h = self.preset['det_scale']
        opts = [f'{loader}.dataset.data_root={self.voc_root}/' for loader in
                ('train_dataloader', 'val_dataloader', 'test_dataloader')]
        opts += [f'train_dataloader.dataset.pipeline.2.scale=({w},{h})',
                 f'val_dataloader.dataset.pipeline.1.scale=({w},{h})',
                 f'test_dataloader.dataset.pipeline.1.scale=({w},{h})']
        return opts

    def num_classification_classes(self) -> int:
        from featquant_mmdet.datasets.imagenet import class_folders
        return len(class_folders(osp.join(self.imagenet_root, 'train')))

    # ---- the steps

    def _steps(self) -> List[Step]:
        steps = [Step('data_voc', 1, 'detection set (VOC 2007 layout)', (), self.plan_data_voc),
                 Step('data_imagenet', 1, 'classification set (ImageNet layout)', (), self.plan_data_imagenet)]
        for key, label, pre_cfg, det_cfg in MODELS:
            steps.append(Step(f'pretrain_{key}', 2, label, ('data_imagenet', ),
                              lambda key=key, cfg=pre_cfg: self.plan_pretrain(key, cfg)))
        for key, label, pre_cfg, det_cfg in MODELS:
            steps.append(Step(f'convert_{key}', 3, label, (f'pretrain_{key}', ),
                              lambda key=key, cfg=det_cfg: self.plan_convert(key, cfg)))
        for key, label, pre_cfg, det_cfg in MODELS:
            steps.append(Step(f'train_{key}', 4, label, ('data_voc', f'convert_{key}'),
                              lambda key=key, cfg=det_cfg: self.plan_train(key, cfg)))
        for key, label, pre_cfg, det_cfg in MODELS:
            steps.append(Step(f'robustness_{key}', 5, label, ('data_voc', f'train_{key}'),
                              lambda key=key, cfg=det_cfg: self.plan_robustness(key, cfg)))
        steps.append(Step('compare', 5, 'comparison table (tools/compare_robustness.py)',
                          tuple(f'robustness_{m[0]}' for m in MODELS), self.plan_compare))
        steps.append(Step('sheet', 6, 'Figure-5-style sheet', ('data_voc', ) + tuple(f'train_{m[0]}' for m in MODELS),
                          self.plan_sheet))
        steps.append(Step('table', 7, 'Table 3', ('compare', 'sheet'), self.plan_table, after=self.write_table))
        return steps

    def plan_data_voc(self) -> Plan:
        if self.args.data_root:
            return Plan([], [], note=f'using --data-root {self.voc_root}')
        p = self.preset
        root = osp.join(self.work, 'data')
        cmd = [self.py, osp.join(REPO, 'tools', 'data', 'make_synthetic_voc.py'), root,
               '--num-train', str(p['voc_train']), '--num-test', str(p['voc_test']),
               '--image-size', *map(str, p['voc_size']), '--seed', str(SEED)]
        voc = osp.join(root, 'VOCdevkit', 'VOC2007', 'ImageSets', 'Main')
        return Plan([cmd], [osp.join(voc, 'trainval.txt'), osp.join(voc, 'test.txt')],
                    clear=[osp.join(root, 'VOCdevkit')])

    def plan_data_imagenet(self) -> Plan:
        if self.args.imagenet_root:
            return Plan([], [], note=f'using --imagenet-root {self.imagenet_root}')
        p = self.preset
        cmd = [self.py, osp.join(REPO, 'tools', 'data', 'make_synthetic_imagenet.py'), self.imagenet_root,
               '--num-train', str(p['cls_train_per_class']), '--num-val', str(p['cls_val_per_class']),
               '--image-size', str(p['cls_size']), '--seed', str(SEED), '--overwrite']
        return Plan([cmd], [osp.join(self.imagenet_root, 'val.txt')], clear=[self.imagenet_root])

    def plan_pretrain(self, key: str, config: str) -> Plan:
        p = self.preset
        work_dir = osp.join(self.work, 'pretrain', key)
        root, s, epochs = self.imagenet_root, p['cls_scale'], p['cls_epochs']
        loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
        opts = [f'{loader}.dataset.data_root={root}' for loader in loaders]
        opts += [f'model.head.num_classes={self.num_classification_classes()}']
        opts += [f'train_dataloader.dataset.pipeline.1.scale={s}']
        for loader in ('val_dataloader', 'test_dataloader'):
            opts += [f'{loader}.dataset.pipeline.1.scale={s}', f'{loader}.dataset.pipeline.2.crop_size={s}']
        opts += [f'train_dataloader.batch_size={p["cls_batch"]}', f'val_dataloader.batch_size={p["cls_batch"]}',
                 f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
                 f'param_scheduler.0.end={epochs}', f'param_scheduler.0.milestones=[{max(1, round(0.75 * epochs))}]',
                 'auto_scale_lr.enable=False', f'optim_wrapper.optimizer.lr={p["cls_lr"]}',
                 f'default_hooks.checkpoint.interval={epochs}', 'default_hooks.checkpoint.save_best=None',
                 'default_hooks.checkpoint.save_optimizer=False', 'default_hooks.logger.interval=10',
                 f'randomness.seed={self.args.train_seed}']
        opts += self._workers(loaders)
        cmd = [self.py, osp.join(REPO, 'tools', 'train.py'), osp.join(REPO, config), '--work-dir', work_dir,
               '--cfg-options', *opts]
        return Plan([cmd], [osp.join(work_dir, 'last_checkpoint')], clear=[work_dir])

    def converted_path(self, key: str) -> str:
        return osp.join(self.work, 'checkpoints', f'{key}_imagenet_converted.pth')

    def plan_convert(self, key: str, det_config: str) -> Plan:
        src = last_checkpoint(osp.join(self.work, 'pretrain', key))
        dst = self.converted_path(key)
        cmd = [self.py, osp.join(REPO, 'tools', 'convert_classifier_to_backbone.py'), src, dst,
               '--config', osp.join(REPO, det_config)]
        return Plan([cmd], [dst])

    def plan_train(self, key: str, config: str) -> Plan:
        p = self.preset
        work_dir = osp.join(self.work, 'detect', key)
        iters = p['det_iters']
        opts = self.det_data_options()
        opts += [f'train_cfg.max_iters={iters}', f'train_cfg.val_begin={iters + 1}',  # the sweep evaluates
                 f'param_scheduler.0.milestones=[{max(1, round(0.75 * iters))}]',
                 f'optim_wrapper.optimizer.lr={p["det_lr"]}', f'optim_wrapper.clip_grad.max_norm={p["det_clip"]}',
                 f'load_from={self.converted_path(key)}',
                 f'default_hooks.checkpoint.interval={iters}', 'default_hooks.checkpoint.save_optimizer=False',
                 'default_hooks.logger.interval=10', f'randomness.seed={self.args.train_seed}']
        opts += self._workers(('train_dataloader', 'val_dataloader', 'test_dataloader'))
        cmd = [self.py, osp.join(REPO, 'tools', 'train.py'), osp.join(REPO, config), '--work-dir', work_dir,
               '--cfg-options', *opts]
        return Plan([cmd], [osp.join(work_dir, 'last_checkpoint')], clear=[work_dir])

    def robustness_json(self, key: str) -> str:
        return osp.join(self.work, 'robustness', key, 'robustness.json')

    def plan_robustness(self, key: str, config: str) -> Plan:
        checkpoint = last_checkpoint(osp.join(self.work, 'detect', key))
        opts = self.det_data_options() + self._workers(('test_dataloader', ))
        opts += ['default_hooks.logger.interval=10']
        cmd = [self.py, osp.join(REPO, 'tools', 'robustness.py'), osp.join(REPO, config), checkpoint,
               '--distortions', 'mix', '--seed', str(SEED), '--work-dir', osp.dirname(self.robustness_json(key)),
               '--cfg-options', *opts]
        # not cleared: the sweep resumes from its finished cells and starts afresh for another checkpoint itself
        return Plan([cmd], [self.robustness_json(key)])

    def plan_compare(self) -> Plan:
        cmd = [self.py, osp.join(REPO, 'tools', 'compare_robustness.py'),
               *[self.robustness_json(m[0]) for m in MODELS], '--labels', *[m[1] for m in MODELS],
               '--out-dir', self.results]
        outputs = [osp.join(self.results, f) for f in
                   ('robustness_table.md', 'robustness_table.csv', 'robustness_levels.png')]
        return Plan([cmd], outputs)

    def sheet_path(self) -> str:
        return osp.join(self.results, 'detection_sheet.png')

    def plan_sheet(self) -> Plan:
        p = self.preset
        test_scale = [o for o in self.det_data_options() if o.startswith('test_dataloader')]
        cmd = [self.py, osp.join(REPO, 'tools', 'analysis', 'detection_sheet.py'),
               '--config', *[osp.join(REPO, m[3]) for m in MODELS],
               '--checkpoint', *[last_checkpoint(osp.join(self.work, 'detect', m[0])) for m in MODELS],
               '--labels', *[m[1] for m in MODELS], '--out', self.sheet_path(),
               '--num-images', str(p['sheet_images']), '--seed', str(SEED),
               '--tile-size', *map(str, p['tile_size']), '--cfg-options', *test_scale]
        return Plan([cmd], [self.sheet_path()])

    def table_paths(self) -> Dict[str, str]:
        return {ext: osp.join(self.results, f'table3.{ext}') for ext in ('md', 'csv')}

    def plan_table(self) -> Plan:
        return Plan([], [*self.table_paths().values(), osp.join(self.results, 'demo_run.json')])

    # ---- Table 3

    def table_rows(self) -> Dict[str, List[float]]:
        """``{model label: [Original, Mix.Minor, Mix.Heavy]}`` in % mAP, from compare_robustness.py's CSV."""
        import csv
        path = osp.join(self.results, 'robustness_table.csv')
        with open(path) as f:
            rows = list(csv.DictReader(f))
        table = {}
        for row in rows:
            if row['row'] == 'value':
                missing = [c for c in TABLE_COLUMNS if not row.get(c)]
                if missing:
                    raise DemoError(f'{path}: model {row["model"]} has no {", ".join(missing)} value')
                table[row['model']] = [float(row[c]) for c in TABLE_COLUMNS]
        labels = [m[1] for m in MODELS]
        if sorted(table) != sorted(labels):
            raise DemoError(f'{path} holds models {sorted(table)}, expected {labels}')
        return {label: table[label] for label in labels}

    def write_table(self) -> dict:
        table = self.table_rows()
        paths = self.table_paths()
        head = '| Models | ' + ' | '.join(TABLE_COLUMNS) + ' |'
        lines = [f'Detection performance (% mAP, VOC 11-point) on the test split of {self.data_description()}',
                 '', head, '|---|' + '---|' * len(TABLE_COLUMNS)]
        lines += [f'| {label} | ' + ' | '.join(f'{v:.1f}' for v in values) + ' |' for label, values in table.items()]
        lines += ['', 'The paper (Table 3; real Pascal VOC 2007 test set, fully trained models):', '', head,
                  '|---|' + '---|' * len(TABLE_COLUMNS)]
        lines += [f'| {label} | ' + ' | '.join(f'{v:.1f}' for v in values) + ' |'
                  for label, values in PAPER_TABLE3.items()]
        markdown = '\n'.join(lines) + '\n'
        with open(paths['md'], 'w') as f:
            f.write(markdown)
        with open(paths['csv'], 'w') as f:
            f.write('model,' + ','.join(TABLE_COLUMNS) + '\n')
            f.writelines(f'{label},' + ','.join(f'{v:.4f}' for v in values) + '\n' for label, values in table.items())
        print(markdown, flush=True)
        return dict(table=table)

    def data_description(self) -> str:
        if self.args.data_root:
            return f'the VOCdevkit {self.voc_root}'
        p = self.preset
        return (f'the generated VOC set ({p["voc_train"]} trainval / {p["voc_test"]} test images, '
                f'{p["voc_size"][0]}x{p["voc_size"][1]} px; preset {self.args.preset})')

    # ---- running

    def marker_path(self, name: str) -> str:
        return osp.join(self.markers, f'{name}.json')

    def step_key(self, step: Step, plan: Plan) -> dict:
        deps = {}
        for dep in step.deps:
            marker = read_json(self.marker_path(dep))
            deps[dep] = marker['finished_at'] if marker else None
        # the interpreter path is left out: another venv location does not change what a step computes
        return dict(commands=[cmd[1:] for cmd in plan.commands], deps=deps)

    def is_done(self, step: Step, plan: Plan, key: dict) -> Optional[dict]:
        marker = read_json(self.marker_path(step.name))
        if marker is None or marker.get('key') != key or marker.get('outputs') != plan.outputs:
            return None
        return marker if all(osp.exists(p) for p in plan.outputs) else None

    def launch(self, step: Step, cmd: List[str]) -> subprocess.Popen:
        """Start ``cmd``; with parallel jobs its output lines are prefixed with the step name by a reader thread."""
        say(f'{self.prefix(step)}$ {" ".join(cmd)}')
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
        env.setdefault('PYTHONUNBUFFERED', '1')
        if self.jobs == 1:
            return subprocess.Popen(cmd, cwd=REPO, env=env)  # the terminal's own stream: progress as it is
        # steps running side by side share the cores instead of oversubscribing them
        env.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // self.jobs)))
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors='replace', bufsize=1)
        proc.reader = threading.Thread(target=forward_lines, args=(proc.stdout, self.prefix(step)), daemon=True)
        proc.reader.start()
        return proc

    def prefix(self, step: Step) -> str:
        return f'[{step.name}] ' if self.jobs > 1 else ''

    def start_step(self, step: Step) -> Optional[Running]:
        """Skip the step when its marker matches, else clear its unfinished outputs and start its command."""
        header = f'[stage {step.stage}/{len(STAGES)}] {STAGES[step.stage - 1]}: {step.title}'
        plan = step.plan()
        if len(plan.commands) > 1:
            raise DemoError(f'step {step.name} has {len(plan.commands)} commands; a step runs at most one')
        key = self.step_key(step, plan)
        done = self.is_done(step, plan, key)
        if done is not None:
            when = done['finished_at'][:19].replace('T', ' ')
            banner(f'{header} -- skipped, done on {when} UTC in {done["wall_s"]:.0f} s')
            self.timings[step.name] = dict(status='skipped', wall_s=0.0, previous_wall_s=done['wall_s'])
            return None
        banner(header + (f' ({plan.note})' if plan.note else ''))
        for folder in plan.clear:
            if osp.isdir(folder):
                say(f'{self.prefix(step)}removing the unfinished output {folder}')
                shutil.rmtree(folder)
        proc = self.launch(step, plan.commands[0]) if plan.commands else None
        return Running(step, plan, key, proc, time.perf_counter())

    def finish_step(self, run: 'Running') -> None:
        """After the command succeeded: in-process work, outputs checked, then the marker (last)."""
        step, plan = run.step, run.plan
        info = step.after() if step.after else {}
        wall = time.perf_counter() - run.start
        self.timings[step.name] = dict(status='ran', wall_s=wall, cpu_s=run.cpu_s)
        if step.name == 'table':
            self.write_run_record(info)
        missing = [p for p in plan.outputs if not osp.exists(p)]
        if missing:
            raise DemoError(f'step {step.name} finished but did not write {missing}')
        # a redone step invalidates what used it: their keys name this step's new finishing time
        write_json_atomic(self.marker_path(step.name), dict(key=run.key, outputs=plan.outputs, wall_s=wall,
                                                            cpu_s=run.cpu_s, finished_at=now_utc(), **info))
        say(f'[stage {step.stage}/{len(STAGES)}] {step.name} done in {wall:.1f} s (CPU time of its processes: '
            f'{run.cpu_s:.1f} s)')

    def run_steps(self) -> None:
        """Run the steps in order, up to ``jobs`` at a time once the steps they use have finished."""
        pending, running, finished, failures = list(self.steps), [], set(), []
        try:
            while pending or running:
                while not failures and len(running) < self.jobs:
                    ready = next((s for s in pending if all(d in finished for d in s.deps)), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    run = self.start_step(ready)
                    if run is not None and run.proc is None:
                        self.finish_step(run)
                    if run is None or run.proc is None:
                        finished.add(ready.name)
                    else:
                        running.append(run)
                if not running:
                    break
                time.sleep(0.1)
                for run in list(running):
                    code = run.poll()
                    if code is None:
                        continue
                    running.remove(run)
                    if code == 0:
                        self.finish_step(run)
                        finished.add(run.step.name)
                    elif code < 0 and -code in (signal.SIGINT, signal.SIGTERM):
                        raise DemoInterrupted()
                    else:
                        failures.append((run.step.name, code, ' '.join(run.plan.commands[0])))
                        if running:
                            say(f'step {run.step.name} failed; waiting for {", ".join(r.step.name for r in running)} '
                                'to finish (Ctrl-C stops them)')
        except BaseException:
            for run in running:
                run.stop()
            raise
        if failures:
            name, code, cmd = failures[0]
            raise DemoError(f'step {name} failed: the command exited with status {code}:\n  {cmd}\nIts output is '
                            'above. Fix the cause and rerun the same demo command: the finished steps are reused.')

    def write_run_record(self, info: dict) -> None:
        import torch
        device = (f'cuda ({torch.cuda.get_device_name(0)})' if torch.cuda.is_available() else
                  f'cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})')
        record = dict(command=' '.join([osp.relpath(sys.argv[0], REPO) if sys.argv else 'tools/demo.py'] +
                                       sys.argv[1:]),
                      preset=self.args.preset, settings=self.preset, data=self.data_description(), device=device,
                      finished_at=now_utc(), table=info.get('table'),
                      load_average=dict(start=self.load_at_start, end=os.getloadavg()),
                      steps={name: t for name, t in self.timings.items()},
                      files=dict(table=self.table_paths(), sheet=self.sheet_path(),
                                 comparison=osp.join(self.results, 'robustness_table.md')))
        write_json_atomic(osp.join(self.results, 'demo_run.json'), record)

    def restart(self) -> None:
        """Remove what the demo made in the work dir (only its own folders: the work dir may hold other things)."""
        for name in ('stages', 'data', 'pretrain', 'checkpoints', 'detect', 'robustness'):
            path = osp.join(self.work, name)
            if osp.isdir(path):
                print(f'--restart: removing {path}', flush=True)
                shutil.rmtree(path)

    def run(self) -> None:
        if self.args.restart:
            self.restart()
        os.makedirs(self.markers, exist_ok=True)
        self.load_at_start = os.getloadavg()
        start, cpu_start = time.perf_counter(), children_cpu_seconds()
        self.run_steps()
        total, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_start
        banner(f'Done in {total:.0f} s. Results in {self.results}')
        print(f'  {"step":<20} {"wall":>9} {"CPU":>9}')
        for name, t in self.timings.items():
            shown = (f'{t["wall_s"]:7.1f} s {t["cpu_s"]:7.1f} s' if t['status'] == 'ran' else
                     f'skipped (took {t["previous_wall_s"]:.0f} s)')
            print(f'  {name:<20} {shown}')
        print(f'  {"total":<20} {total:7.1f} s {cpu:7.1f} s', flush=True)
        for path in (*self.table_paths().values(), self.sheet_path(), osp.join(self.results, 'robustness_table.md'),
                     osp.join(self.results, 'demo_run.json')):
            print(f'  wrote {path}')


def _raise_interrupt(signum, frame):
    raise DemoInterrupted()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        demo = Demo(args)
        check_writable_folder(args.results_dir, 'results folder', '--results-dir')
        check_writable_folder(args.work_dir, 'work folder', '--work-dir')
        if args.data_root:
            check_voc_root(args.data_root)
        if args.imagenet_root:
            check_imagenet_root(args.imagenet_root)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        demo.run()
    except DemoError as err:
        print(f'\ndemo.py: error: {err}', file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print('\ndemo.py: interrupted. The finished stages are kept; rerun the same command to continue from them '
              '(--restart starts over).', file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
