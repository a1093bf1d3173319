"""Multi-seed studies: train and sweep every (variant, seed) through the project's tools, then aggregate over seeds.

A study spec (a Python config file, e.g. configs/studies/evidence.py, or a dict) names the ``task``, the ``seeds``
and the ``variants``::

    task = 'detection'                 # or 'classification'
    seeds = [0, 1, 2, 3, 4]            # training seeds (randomness.seed); data and distortions keep data_seed
    reference = 'ZF'                   # the variant the others are compared with (default: the first)
    distortions = ['all']              # tools/robustness.py --distortions (names or presets)
    variants = [dict(name='ZF', pretrain='configs/pretrain/zf_imagenet.py',
                     config='configs/faster_rcnn_zf_voc_imagenet_init.py', options=[...], alpha_lr_mult=None), ...]

Detection variants pretrain a classifier (``pretrain``) and start the detector (``config``, an ``*_imagenet_init``
config) from it through the config-only hand-off (``model.backbone.init_cfg.checkpoint`` and
``model.roi_head.bbox_head.init_cfg.2.checkpoint``); classification variants train ``config`` only. ``options``
are ``--cfg-options`` of both trainings; ``alpha_lr_mult`` (a number, or ``'recommended'``: the spec's
``recommended_alpha_lr_mult``) sets ``optim_wrapper.paramwise_cfg.custom_keys['.alpha'].lr_mult`` in both through a
derived config file (``--cfg-options custom_keys..alpha.lr_mult=3`` does not reach the key:
mmengine splits it at every dot and adds an unused ``custom_keys['']['alpha']``).

Targeted occlusion (the twelfth distortion) needs a classifier whose saliency maps place the masks; the paper uses
a Plain-18 that none of the compared models is. ``saliency = dict(config='configs/pretrain/zf_imagenet.py',
seed=100)`` trains one such classifier once (step ``pretrain_saliency``: the pretraining schedule on the same data,
with a seed none of the variants uses) and hands it to every classifier sweep, whose ``all`` preset then includes
targeted occlusion. A model of the study itself would make the occlusion targeted at it alone.

Steps (:mod:`.stages`: done-markers, resume, progress with the time left, one log per step): the data generators,
then per (variant, seed) ``pretrain`` -> ``train`` -> ``robustness`` (tools/train.py, tools/robustness.py; with
``classifier_sweep`` also ``robustness_classifier`` of the pretrained classifier: the classification track), then
``report_<track>``: per column the mean and t-interval over seeds, the difference to the reference paired by seed and a
verdict (:mod:`featquant_mmdet.stats.seeds`), written by :mod:`.study_report` as Markdown, CSV and PNG. Every
command runs under :func:`.reproducibility.reproducible_env` with the spec's fixed ``threads``. The commands are the
checkout's ``tools/*.py`` (as for the demo): run from a clone of the repository.
"""
import hashlib
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

from ..fileio import write_json_atomic
from .loading import last_checkpoint
from .reproducibility import cpu_kernels, reproducible_env
from .stages import Plan, StageRunner, Step
# load_spec and parse_variant: the tools import them from here with Study
from .study_spec import REPO, repo_path, check_spec, load_spec, parse_variant  # noqa: F401

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def loader_options(names: Sequence[str] = LOADERS, workers: int = 0, settings: Sequence[str] = ()) -> List[str]:
    """``--cfg-options`` giving each loader in ``names`` the ``settings`` (``key=value`` under the loader) and
    ``workers`` processes (persistent when > 0)."""
    return [f'{name}.{s}' for name in names
            for s in (*settings, f'num_workers={workers}', f'persistent_workers={workers > 0}')]


def voc_data_options(voc_root: str, scale: Sequence[int]) -> List[str]:
    """``--cfg-options`` pointing the VOC detection configs' three loaders at ``voc_root`` (a VOCdevkit) and their
    resize (train pipeline step 2, val/test step 1) at ``scale`` = (long, short) side."""
    (w, h), steps = scale, (('train_dataloader', 2), ('val_dataloader', 1), ('test_dataloader', 1))
    return [f'{loader}.dataset.data_root={voc_root}/' for loader, _ in steps] + [
        f'{loader}.dataset.pipeline.{i}.scale=({w},{h})' for loader, i in steps]


class Study:
    """The steps of a checked spec under ``work_dir``; :meth:`run` runs them and returns the report's data."""

    def __init__(self, spec: dict, work_dir: str, results_dir: str, out=sys.stdout):
        self.spec = check_spec(spec)
        self.work, self.results, self.out = osp.abspath(work_dir), osp.abspath(results_dir), out
        self.py = sys.executable
        self.voc_root = osp.abspath(spec['voc_root'] or osp.join(self.work, 'data', 'VOCdevkit'))
        self.imagenet_root = osp.abspath(spec['imagenet_root'] or osp.join(self.work, 'data', 'imagenet'))
        self.variants = {v['name']: v for v in spec['variants']}
        self.reference = spec['reference'] or spec['variants'][0]['name']
        self.match = spec['match']

    # ---- commands

    def tool(self, name: str, *argv) -> List[str]:
        return [self.py, osp.join(REPO, 'tools', f'{name}.py'), *map(str, argv)]

    def derived_config(self, config: str, variant: dict) -> str:
        """``config`` itself, or a child config setting the exponents' lr multiplier (named by its content)."""
        mult = variant.get('alpha_lr_mult')
        mult = self.spec['recommended_alpha_lr_mult'] if mult == 'recommended' else mult
        if mult is None:
            return repo_path(config)
        text = (f'_base_ = [{repo_path(config)!r}]\n'
                f"optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{'.alpha': dict(lr_mult={float(mult)!r})}}))\n")
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        path = osp.join(self.work, 'configs', f'{osp.splitext(osp.basename(config))[0]}_{digest}.py')
        if not osp.isfile(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(text)
        return path

    def loaders(self, names=LOADERS, settings=()) -> List[str]:
        return loader_options(names, self.spec['workers'], settings)

    def det_data(self) -> List[str]:
        return voc_data_options(self.voc_root, self.spec['detect']['scale'])

    def cls_data(self, names=LOADERS) -> List[str]:
        from ..datasets.imagenet import class_folders
        s, root = self.spec['pretrain']['scale'], self.imagenet_root
        opts = self.loaders(names, [f'dataset.data_root={root}']) + [
            f'model.head.num_classes={len(class_folders(osp.join(root, "train")))}']
        if 'train_dataloader' in names:
            opts.append(f'train_dataloader.dataset.pipeline.1.scale={s}')
        return opts + [f'{loader}.dataset.pipeline.{i}.{k}={s}' for loader in ('val_dataloader', 'test_dataloader')
                       if loader in names for i, k in ((1, 'scale'), (2, 'crop_size'))]

    def work_dir(self, stage: str, name: str, seed: int) -> str:
        return osp.join(self.work, stage, f'{name}_s{seed}')

    def plan_data_voc(self) -> Plan:
        if self.spec['voc_root']:
            return Plan(note=f'using {self.voc_root}')
        d, root = self.spec['data']['voc'], osp.join(self.work, 'data')
        lists = [osp.join(self.voc_root, 'VOC2007', 'ImageSets', 'Main', f'{s}.txt') for s in ('trainval', 'test')]
        return Plan(self.tool('data/make_synthetic_voc', root, '--num-train', d['num_train'], '--num-test',
                              d['num_test'], '--image-size', *d['image_size'], '--seed', self.spec['data_seed'],
                              '--style', d['style']), lists, [self.voc_root], root)

    def plan_data_imagenet(self) -> Plan:
        if self.spec['imagenet_root']:
            return Plan(note=f'using {self.imagenet_root}')
        d, root = self.spec['data']['imagenet'], self.imagenet_root
        return Plan(self.tool('data/make_synthetic_imagenet', root, '--num-train', d['num_train'], '--num-val',
                              d['num_val'], '--image-size', d['image_size'], '--seed', self.spec['data_seed'],
                              '--style', d['style'], '--overwrite'), [osp.join(root, 'val.txt')], [root],
                    osp.join(self.work, 'data'))

    def plan_pretrain(self, name: str, seed: int, config: str, stage: str = 'pretrain') -> Plan:
        """A classifier's training (the detection track's pretraining, the classification track's model, or the
        saliency classifier: ``name`` None)."""
        p, work_dir = self.spec['pretrain'], self.work_dir(stage, name or 'classifier', seed)
        v = self.variants[name] if name else {}
        n = p['epochs']
        every = [f'default_hooks.checkpoint.interval={n}', f'train_cfg.val_interval={n}']
        if self.matched_metric(stage):  # periodic snapshots, each validated (recorded in vis_data/scalars.json)
            k, begin = self.match['interval'], self.match['begin']
            every = [f'default_hooks.checkpoint.interval={k}', f'default_hooks.checkpoint.save_begin={begin}',
                     'default_hooks.checkpoint.max_keep_ckpts=-1', f'train_cfg.val_interval={k}',
                     f'train_cfg.val_begin={begin}']
        opts = ['default_hooks.logger.interval=10', 'default_hooks.checkpoint.save_optimizer=False',
                every[0], f'param_scheduler.0.milestones=[{max(1, round(0.75 * n))}]',
                f'randomness.seed={seed}', f'train_cfg.max_epochs={n}', *every[1:],
                f'param_scheduler.0.end={n}', 'auto_scale_lr.enable=False', f'optim_wrapper.optimizer.lr={p["lr"]}',
                'default_hooks.checkpoint.save_best=None', f'train_dataloader.batch_size={p["batch"]}',
                f'val_dataloader.batch_size={p["batch"]}'] + self.cls_data()
        return Plan(self.tool('train', self.derived_config(config, v), '--work-dir', work_dir, '--cfg-options', *opts,
                              *v.get('options', [])), [osp.join(work_dir, 'last_checkpoint')], [work_dir], work_dir)

    def plan_detect(self, name: str, seed: int) -> Plan:
        d, v, work_dir = self.spec['detect'], self.variants[name], self.work_dir('detect', name, seed)
        n, ckpt = d['iters'], self.checkpoint('pretrain', name, seed)
        every = [f'default_hooks.checkpoint.interval={n}', f'train_cfg.val_begin={n + 1}']
        if self.matched_metric('detect'):
            k = self.match['detect_interval'] or max(1, n // 10)
            every = [f'default_hooks.checkpoint.interval={k}', f'train_cfg.val_begin={k}',
                     f'train_cfg.val_interval={k}', 'default_hooks.checkpoint.max_keep_ckpts=-1']
        opts = ['default_hooks.logger.interval=10', 'default_hooks.checkpoint.save_optimizer=False',
                every[0], f'param_scheduler.0.milestones=[{max(1, round(0.75 * n))}]',
                f'randomness.seed={seed}', f'train_cfg.max_iters={n}', *every[1:],
                f'optim_wrapper.optimizer.lr={d["lr"]}', f'optim_wrapper.clip_grad.max_norm={d["clip"]}',
                f'model.backbone.init_cfg.checkpoint={ckpt}', f'model.roi_head.bbox_head.init_cfg.2.checkpoint={ckpt}'
                ] + self.det_data() + self.loaders()
        return Plan(self.tool('train', self.derived_config(v['config'], v), '--work-dir', work_dir, '--cfg-options',
                              *opts, *v.get('options', [])), [osp.join(work_dir, 'last_checkpoint')], [work_dir],
                    work_dir)

    def sweep_dir(self, name: str, seed: int, track: Optional[str] = None) -> str:
        extra = track is not None and track != self.spec['task']
        return self.work_dir('robustness_classifier' if extra else 'robustness', name, seed)

    def plan_robustness(self, name: str, seed: int, track: Optional[str] = None) -> Plan:
        """The sweep of the trained model of ``track`` (default the spec's task; ``classification`` in a detection
        study: the pretrained classifier)."""
        v, spec = self.variants[name], self.spec
        detection = (track or spec['task']) == 'detection'
        sweep = self.sweep_dir(name, seed, track)
        if detection:
            config, trained, opts = v['config'], self.work_dir('detect', name, seed), (
                self.det_data() + self.loaders(['test_dataloader']))
            distortions, extra = spec['distortions'], []
        else:
            in_detection = spec['task'] == 'detection'
            config = v['pretrain'] if in_detection else v['config']
            trained = self.work_dir('pretrain' if in_detection else 'train', name, seed)
            opts = self.cls_data(('test_dataloader', ))
            distortions = spec['classifier_distortions'] if in_detection else spec['distortions']
            extra = self.saliency_args()
        # the variant's options build the model it trained (e.g. table2's SF-100: ZF's config + the quantizer);
        # not cleared: the sweep resumes from its finished cells and starts afresh for another checkpoint itself
        stage = osp.basename(osp.dirname(trained))
        return Plan(self.tool('robustness', self.derived_config(config, v), self.checkpoint(stage, name, seed),
                              '--distortions', *distortions, '--levels', *spec['levels'], '--seed',
                              spec['data_seed'], *extra, '--work-dir', sweep, '--cfg-options', *opts,
                              'default_hooks.logger.interval=10', *v.get('options', [])),
                    [osp.join(sweep, 'robustness.json')], log_dir=sweep)

    def saliency_args(self) -> List[str]:
        """``--saliency-classifier``/``--saliency-checkpoint`` of the study's saliency classifier (none without one):
        the config its training wrote out (with the data's class count) and its last checkpoint."""
        saliency = self.spec['saliency']
        if saliency is None:
            return []
        trained = self.work_dir('saliency', 'classifier', saliency['seed'])
        config = osp.join(trained, osp.basename(saliency['config']))
        return ['--saliency-classifier', config, '--saliency-checkpoint', last_checkpoint(trained)]

    # ---- matched snapshots (featquant_mmdet.engine.snapshots)

    def matched_metric(self, stage: str) -> Optional[str]:
        """The metric a ``stage``'s runs are matched on (classifiers: ``pretrain``/``train``, detectors: ``detect``),
        or None (their last checkpoint is used)."""
        if self.match is None or stage not in ('pretrain', 'train', 'detect'):
            return None
        return self.match['detect' if stage == 'detect' else 'pretrain']

    def match_path(self, stage: str, seed: int) -> str:
        """The matching's record, named by its settings and the matched variants (other settings or another set of
        variants, e.g. a spec that drops one: another file, the step reruns)."""
        digest = hashlib.sha256(repr((sorted(self.match.items()), sorted(self.variants))).encode()).hexdigest()[:8]
        return osp.join(self.work, 'match', f'{stage}_s{seed}_{digest}.json')

    def checkpoint(self, stage: str, name: str, seed: int) -> str:
        """The run's matched snapshot where the stage is matched, else its last checkpoint."""
        if self.matched_metric(stage):
            from ..fileio import read_json
            record = read_json(self.match_path(stage, seed))
            if record is None:
                raise StageError(f'{name} seed {seed}: no matched snapshot yet ({self.match_path(stage, seed)})')
            return record['matches'][name]['checkpoint']
        return last_checkpoint(self.work_dir(stage, name, seed))

    def run_match(self, stage: str, seed: int) -> dict:
        """Match the seed's runs of ``stage`` (one line naming a run and what it lacks, else the record), then
        delete the unmatched snapshots (``prune``)."""
        from .snapshots import match_runs, matches_to_json, prune, snapshots
        key, m = self.matched_metric(stage), self.match
        label = {name: f'{name} seed {seed} ({stage})' for name in self.variants}
        runs = {name: snapshots(self.work_dir(stage, name, seed), key, label[name]) for name in self.variants}
        by_label = match_runs({label[n]: snaps for n, snaps in runs.items()}, m['target'], m['tolerance'],
                              label[self.reference], key)
        matches = {name: by_label[label[name]] for name in self.variants}
        record = dict(stage=stage, seed=seed, metric=key, target=m['target'], tolerance=m['tolerance'],
                      matches=matches_to_json(matches), candidates={
                          n: [[s.step, s.value] for s in snaps] for n, snaps in runs.items()})
        write_json_atomic(self.match_path(stage, seed), record)
        if m['prune']:
            for name, match in matches.items():
                prune(self.work_dir(stage, name, seed), [match.snapshot.path])
        return dict(matches=record['matches'])

    def plan_own_occlusion(self, name: str, seed: int) -> Plan:
        """Targeted occlusion of a classifier by its own saliency (the cross-check of the study's neutral one)."""
        v, spec = self.variants[name], self.spec
        stage = 'pretrain' if spec['task'] == 'detection' else 'train'
        config = self.derived_config(v['pretrain'] if stage == 'pretrain' else v['config'], v)
        trained, ckpt = self.work_dir(stage, name, seed), self.checkpoint(stage, name, seed)
        sweep = self.work_dir('occlusion_own', name, seed)
        return Plan(self.tool('robustness', config, ckpt, '--distortions', 'targeted_occlusion', '--levels',
                              *spec['levels'], '--seed', spec['data_seed'], '--saliency-classifier',
                              osp.join(trained, osp.basename(config)), '--saliency-checkpoint', ckpt,
                              '--work-dir', sweep, '--cfg-options', *self.cls_data(('test_dataloader', )),
                              'default_hooks.logger.interval=10', *v.get('options', [])),
                    [osp.join(sweep, 'robustness.json')], log_dir=sweep)

    # ---- steps

    def steps(self, report: bool = True) -> List[Step]:
        """Data, then per (variant, seed) training and sweep(s), then (``report``) the aggregation per track."""
        spec, w = self.spec, self.spec['weights']
        detection = spec['task'] == 'detection'
        steps = [Step('data_imagenet', self.plan_data_imagenet, title='generate the ImageNet-format set',
                      weight=w['data'])]
        if detection:
            steps.append(Step('data_voc', self.plan_data_voc, title='generate the VOC-format set', weight=w['data']))
        saliency = spec['saliency']
        if saliency is not None:
            steps.append(Step('pretrain_saliency', lambda: self.plan_pretrain(
                None, saliency['seed'], saliency['config'], 'saliency'), ['data_imagenet'],
                'train the saliency classifier of targeted occlusion', w['pretrain']))
        classifier_deps = ['pretrain_saliency'] if saliency is not None else []
        # matched snapshots: per seed a match step once its runs are trained; every sweep waits for every match of
        # its stage, so a run that cannot be matched stops the study before any sweep
        stages = [st for st in (('pretrain', 'detect') if detection else ('train', )) if self.matched_metric(st)]
        matches = {st: [f'match_{st}_s{seed}' for seed in spec['seeds']] for st in stages}
        sweeps = [] if self.match is not None else steps
        for seed in spec['seeds']:
            for name, v in self.variants.items():
                key = f'{name}_s{seed}'
                cls_stage = 'pretrain' if detection else 'train'
                if detection:
                    steps += [
                        Step(f'pretrain_{key}', lambda n=name, s=seed, c=v['pretrain']: self.plan_pretrain(n, s, c),
                             ['data_imagenet'], f'pretrain {name} seed {seed}', w['pretrain']),
                        Step(f'train_{key}', lambda n=name, s=seed: self.plan_detect(n, s),
                             ['data_voc', f'pretrain_{key}'] + ([f'match_pretrain_s{seed}'] if 'pretrain' in matches
                                                                else []), f'train {name} seed {seed}', w['train'])]
                else:
                    steps.append(Step(f'train_{key}', lambda n=name, s=seed, c=v['config']:
                                      self.plan_pretrain(n, s, c, 'train'), ['data_imagenet'],
                                      f'train {name} seed {seed}', w['train']))
                sweeps.append(Step(f'robustness_{key}', lambda n=name, s=seed: self.plan_robustness(n, s),
                                   [f'train_{key}'] + matches.get('detect' if detection else 'train', [])
                                   + ([] if detection else classifier_deps), f'robustness {name} seed {seed}',
                                   w['robustness']))
                if spec['classifier_sweep']:
                    sweeps.append(Step(f'robustness_classifier_{key}', lambda n=name, s=seed: self.plan_robustness(
                        n, s, 'classification'), [f'pretrain_{key}'] + matches.get('pretrain', []) + classifier_deps,
                        f'classifier robustness {name} seed {seed}', w['robustness_classifier']))
                if spec['own_saliency']:
                    sweeps.append(Step(f'occlusion_own_{key}', lambda n=name, s=seed: self.plan_own_occlusion(n, s),
                                       [f'{cls_stage}_{key}'] + matches.get(cls_stage, []),
                                       f'occlusion of {name} seed {seed} by its own saliency', w['robustness_own']))
            for st in stages:
                runs = [f'{"pretrain" if st == "pretrain" else "train"}_{n}_s{seed}' for n in self.variants]
                steps.append(Step(f'match_{st}_s{seed}', lambda st=st, s=seed: Plan(outputs=[self.match_path(st, s)]),
                                  runs, f'match the {st} snapshots of seed {seed} on {self.matched_metric(st)}',
                                  0.1, after=lambda st=st, s=seed: self.run_match(st, s)))
        if sweeps is not steps:
            steps += sweeps
        for track in self.tracks() if report else []:
            prefix = 'robustness_classifier_' if track != spec['task'] else 'robustness_'
            deps = [s.name for s in steps if s.name.startswith(prefix)
                    and (track != spec['task'] or not s.name.startswith('robustness_classifier_'))]
            if track == 'classification':
                deps += [s.name for s in steps if s.name.startswith('occlusion_own_')]
            outputs = [osp.join(self.results_of(track), f) for f in ('study.md', 'study.csv', 'study.png')]
            steps.append(Step(f'report_{track}', lambda o=outputs: Plan(outputs=o), deps,
                              f'aggregate the {track} track over seeds', 0.1,
                              after=lambda t=track: self.write_report(t)))
        return steps

    def tracks(self) -> List[str]:
        """The spec's task, and ``classification`` too in a detection study that sweeps its classifiers."""
        return [self.spec['task']] + (['classification'] if self.spec['classifier_sweep'] else [])

    def results_of(self, track: str) -> str:
        return self.results if track == self.spec['task'] else osp.join(self.results, track)

    def sweep_paths(self, track: Optional[str] = None) -> Dict[str, Dict[int, str]]:
        return {name: {seed: osp.join(self.sweep_dir(name, seed, track), 'robustness.json')
                       for seed in self.spec['seeds']} for name in self.variants}

    def write_report(self, track: str) -> dict:
        from .study_report import aggregate_runs, alpha_runs, append_alpha_section, write_report
        out = self.results_of(track)
        os.makedirs(out, exist_ok=True)
        runs = aggregate_runs(self.sweep_paths(track), self.spec['columns'] if track == self.spec['task'] else None)
        if track == 'classification' and self.spec['own_saliency']:
            self.add_own_occlusion(runs)
        _, lines = write_report(runs, out, self.reference, self.spec['level'],
                                f'{track} track, {len(self.spec["seeds"])} training seed'
                                + ('s' if len(self.spec['seeds']) != 1 else ''))
        stage = 'train' if self.spec['task'] == 'classification' else (
            'detect' if track == 'detection' else 'pretrain')
        from ..analysis.alpha_trajectory import trajectory_report
        what = 'detector training' if stage == 'detect' else 'classifier training'
        alpha = alpha_runs({name: {seed: self.work_dir(stage, name, seed) for seed in self.spec['seeds']}
                            for name in self.variants})
        table, _ = trajectory_report([(label, path) for label, _, path in alpha], out,
                                     title=f'alpha over {what}, one line per (variant, seed)')
        append_alpha_section(table, alpha, out, what)
        self.reports[track] = dict(runs=runs, verdicts=lines)
        matched = self.append_matched_section(track, out)
        return dict(verdicts=lines, runs={v: {str(s): r for s, r in by.items()} for v, by in runs.items()},
                    **({'matched': matched} if matched else {}))

    def add_own_occlusion(self, runs: dict) -> None:
        """``Occ. (own)``: each run's targeted occlusion by its own saliency, beside the neutral ``Occ.``."""
        from .study_report import aggregate_runs
        own = aggregate_runs({n: {s: osp.join(self.work_dir('occlusion_own', n, s), 'robustness.json')
                                  for s in self.spec['seeds']} for n in self.variants}, ['Occ.'])
        for name, by_seed in runs.items():
            for seed, row in by_seed.items():
                row['Occ. (own)'] = own[name][seed]['Occ.']

    def append_matched_section(self, track: str, out: str) -> Dict[str, dict]:
        """``matched_snapshots.md`` (and a section of ``study.md``): per run the snapshot swept (or handed to the
        detector) and its clean value, from the match records."""
        from ..fileio import read_json
        from .snapshots import match_table
        stages = ['pretrain', 'detect'] if self.spec['task'] == 'detection' else ['train']
        stages = [st for st in stages if self.matched_metric(st) and (track == 'detection' or st != 'detect')]
        if not stages:
            return {}
        md, matched = [''], {}
        for st in stages:
            key, m = self.matched_metric(st), self.match
            what = {'train': 'classifiers swept', 'pretrain': 'classifiers (swept in the classification track, '
                    'handed to the detectors)', 'detect': 'detectors swept'}[st]
            md += [f'Matched snapshots, {what}: per seed the snapshot whose {key} is closest to the target '
                   f'({m["target"]!r}; tolerance {m["tolerance"]:g}; ties: the later snapshot), of snapshots every '
                   f'{m["interval"] if st != "detect" else m["detect_interval"] or "tenth of the"} '
                   f'{"epoch(s) from epoch " + str(m["begin"]) if st != "detect" else "iterations"}:', '']
            for seed in self.spec['seeds']:
                record = read_json(self.match_path(st, seed))
                matched[f'{st}_s{seed}'] = record['matches']
                from .snapshots import Match, Snapshot
                rows = {f'{n} s{seed}': Match(f'{n} s{seed}', Snapshot(r['step'], r['checkpoint'], r['value']),
                                              r['target'], r['distance'],
                                              Snapshot(r['final_step'], f'step {r["final_step"]}', r['final_value']))
                        for n, r in record['matches'].items()}
                md += [f'Seed {seed}: target {key} {next(iter(record["matches"].values()))["target"]:.2f}', '']
                md += match_table(rows, key) + ['']
        with open(osp.join(out, 'matched_snapshots.md'), 'w') as f:
            f.write('\n'.join(md[1:]))
        with open(osp.join(out, 'study.md'), 'a') as f:
            f.write('\n'.join(md))
        return matched

    def environment(self, env: Optional[dict] = None) -> Dict[str, str]:
        """The commands' environment: ``env`` (default this process's) with the repository on the path and the
        spec's fixed thread count (and ``cpu_capability``), so a result does not depend on the machine's cores."""
        base = dict(os.environ if env is None else env, PYTHONUNBUFFERED='1', PYTHONPATH=os.pathsep.join(
            filter(None, [REPO, os.environ.get('PYTHONPATH')])))
        return reproducible_env(base, self.spec['threads'], self.spec['cpu_capability'])

    def run(self, env: Optional[dict] = None) -> Dict[str, List[str]]:
        """Run (or resume) every step; writes ``study_run.json``; returns the verdict lines per track."""
        import torch
        from ..fileio import read_json
        self.env = self.environment(env)
        self.reports: Dict[str, dict] = {}
        os.makedirs(self.results, exist_ok=True)
        self.runner = StageRunner(self.steps(), osp.join(self.work, 'stages'), self.spec['jobs'], self.env, REPO,
                                  out=self.out)
        self.runner.run()
        verdicts = {t: read_json(self.runner.marker_path(f'report_{t}'))['verdicts'] for t in self.tracks()}
        runs = {t: read_json(self.runner.marker_path(f'report_{t}'))['runs'] for t in self.tracks()}
        write_json_atomic(osp.join(self.results, 'study_run.json'), self.runner.run_record(
            spec=self.spec, threads=self.spec['threads'], cpu_capability=torch.backends.cpu.get_cpu_capability(),
            kernels=cpu_kernels(self.env), runs=runs, verdicts=verdicts))
        return verdicts
