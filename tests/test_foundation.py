"""The plugin's foundation: registration by import and through custom_imports, the torch.load fix, mmcv ops, the
setup script. The torch-only import of ops/layers: test_layers_without_mm.py; the patches of mmengine: test_compat.py."""
import ast
import json
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_WITH_MMDET_BASES = osp.join(REPO_ROOT, 'configs', 'faster_rcnn_zf_voc.py')

# One entry per component the plugin registers, with the arguments it needs; the test fails for a registered type
# that is missing here. The detector comes from a shipped config through the `featquant_mmdet::` prefix.
EVERY_TYPE_CONFIG = """
_base_ = 'featquant_mmdet::faster_rcnn_zf_stability_voc.py'   # StabilityTrainingTwoStageDetector, ZF, RoI pool, head
classifiers = [
    dict(type='ImageClassifier', data_preprocessor=dict(type='ClsDataPreprocessor'),
         backbone=dict(type='ZF', quant=dict(conv_cfg=dict(type='HPowConv'), include=['conv3'])),
         head=dict(type='ZFClsHead', num_classes=3, hidden_channels=16)),
    dict(type='StabilityTrainingClassifier', data_preprocessor=dict(type='ClsDataPreprocessor'),
         backbone=dict(type='QuantResNet', depth=18, quant=dict(conv_cfg=dict(type='SFPowConv'))),
         head=dict(type='LinearClsHead', num_classes=3, in_channels=512)),
]
convs = [dict(type=name) for name in ('SFConv', 'PowConv', 'SFPowConv', 'HPowConv', 'DoReFaConv')]
pipeline = [
    dict(type='RandomResizedCrop', scale=32), dict(type='PCALighting'), dict(type='Distort', name='jpeg', level=2),
    dict(type='RandomDistort', prob=1.0), dict(type='ImageCorruption', name='ic:gaussian_noise', severity=1),
    dict(type='PackClsInputs'),
]
datasets = [
    dict(type='ImageNetDataset', data_root='nowhere', lazy_init=True),
    dict(type='StrictVOCDataset', data_root='nowhere', ann_file='ImageSets/Main/test.txt', lazy_init=True),
]
metrics = [dict(type='Accuracy'), dict(type='PerImageAccuracy'), dict(type='PerImageVOC'), dict(type='PerImageCOCO')]
hooks = [dict(type='AlphaRegularizationHook', l2=1e-4), dict(type='AlphaStatsHook'), dict(type='AlphaProjectionHook'),
         dict(type='RNGStateHook')]
"""

# ---------------------------------------------------------------------------- what a fresh interpreter observes
# Import side effects (registration, the default scope, sys.meta_path, the first import of pkg_resources) are seen
# only in a fresh interpreter. Each costs ~15-25 s of `import mmdet` on a loaded CI machine, so two processes make
# every observation in sequence, each check in its own section (its result and its stderr recorded apart) and in an
# order where no check sees another's effects: IN_REPO (the checkout on PYTHONPATH) imports featquant_mmdet first;
# ELSEWHERE (an unrelated folder, the installed package) imports mmdet.registry first, then featquant_mmdet through
# a config's custom_imports. The tests below read the sections' results.
FRESH_HARNESS = textwrap.dedent("""
    import contextlib, io, json, os, sys, traceback, warnings
    warnings.simplefilter('always')  # every warning shown, as the tools' users would see them
    RESULTS = {}

    def section(name):
        def run(check):
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    value = check()
                RESULTS[name] = dict(ok=True, value=value, stderr=err.getvalue())
            except BaseException:
                RESULTS[name] = dict(ok=False, error=traceback.format_exc()[-3000:], stderr=err.getvalue()[-3000:])
        return run

    def registering_check(finders):
        import featquant_mmdet
        added = [f for f in sys.meta_path if f not in finders]  # six, imported by a dependency, adds its own
        ours = [f for f in added
                if (getattr(f, '__module__', None) or type(f).__module__).startswith('featquant_mmdet')]
        assert not ours and all(f in sys.meta_path for f in finders), f'import hooks: {ours}'
        package = os.path.dirname(featquant_mmdet.__file__)
        registering = []
        for folder, _, files in os.walk(package):
            for name in files:
                path = os.path.join(folder, name)
                if name.endswith('.py') and '.register_module(' in open(path).read():
                    module = os.path.relpath(path[:-3], os.path.dirname(package)).replace(os.sep, '.')
                    registering.append(module[:-len('.__init__')] if module.endswith('.__init__') else module)
        assert len(registering) >= 15, registering
        missing = [m for m in registering if m not in sys.modules and not m.startswith('featquant_mmdet.analysis')]
        assert not missing, f'not imported by `import featquant_mmdet`: {missing}'
        analysis = [m for m in sys.modules if m.startswith('featquant_mmdet.analysis')]
        assert not analysis, f'the analyses are opt-in, yet imported: {analysis}'
        return len(registering)

    def load_config_with_mmdet_bases(tool):
        # mmengine imports pkg_resources (which warns) to find the mmdet:: bases: not yet imported before this
        assert 'pkg_resources' not in sys.modules, 'pkg_resources imported by an earlier section'
        if tool:
            from featquant_mmdet.engine.cli import quiet_warnings
            quiet_warnings()
        from featquant_mmdet.engine.loading import load_config
        load_config(CONFIG_WITH_MMDET_BASES)
        assert 'pkg_resources' in sys.modules
""")

IN_REPO_CHECKS = textwrap.dedent("""
    @section('registering')
    def _():
        return registering_check(list(sys.meta_path))

    @section('explicit_scope')
    def _():
        import featquant_mmdet
        from mmengine.registry import DefaultScope
        from mmdet.registry import MODELS
        assert DefaultScope.get_current_instance() is None  # importing registers, it sets no scope
        featquant_mmdet.register_all_modules(init_default_scope=True)
        assert DefaultScope.get_current_instance().scope_name == 'mmdet'
        assert type(MODELS.build(dict(type='ZF'))).__name__ == 'ZF'

    @section('tool_warning')
    def _():
        load_config_with_mmdet_bases(tool=True)

    @section('every_type')
    def _():
        import featquant_mmdet
        from mmcv.cnn import build_conv_layer
        from mmengine.config import Config
        from mmengine.registry import Registry, init_default_scope
        import mmdet.registry
        registries = [r for r in vars(mmdet.registry).values() if isinstance(r, Registry)]
        registered = {name for registry in registries + [r.parent for r in registries if r.parent is not None]
                      for name, cls in registry.module_dict.items() if cls.__module__.startswith('featquant_mmdet.')}
        init_default_scope('mmdet')
        cfg = Config.fromfile(EVERY_TYPE_CONFIG_FILE)
        built = [mmdet.registry.MODELS.build(cfg.model)] + [mmdet.registry.MODELS.build(c) for c in cfg.classifiers]
        built += [build_conv_layer(c, 4, 4, 3) for c in cfg.convs]
        for c in cfg.pipeline:
            try:
                built.append(mmdet.registry.TRANSFORMS.build(c))
            except ImportError as err:  # the optional imagecorruptions package is missing: found, refused by its class
                assert c.type == 'ImageCorruption' and 'needs the optional package imagecorruptions' in str(err), err
                built.append(mmdet.registry.TRANSFORMS.get(c.type).__new__(mmdet.registry.TRANSFORMS.get(c.type)))
        built += [mmdet.registry.DATASETS.build(c) for c in cfg.datasets]
        built += [mmdet.registry.METRICS.build(c) for c in cfg.metrics]
        built += [mmdet.registry.HOOKS.build(c) for c in cfg.hooks]
        types = {type(m).__name__ for obj in built for m in (obj.modules() if hasattr(obj, 'modules') else [obj])}
        missing = sorted(registered - types)
        assert not missing, f'registered but not in the config (add them to EVERY_TYPE_CONFIG): {missing}'
        return sorted(registered)
""")

ELSEWHERE_CHECKS = textwrap.dedent("""
    FINDERS = list(sys.meta_path)

    @section('custom_imports')
    def _():
        from mmengine.config import Config
        from mmengine.registry import MODELS as ROOT_MODELS
        from mmdet.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
        FINDERS[:] = list(sys.meta_path)  # as they are before featquant_mmdet is imported
        assert 'featquant_mmdet' not in sys.modules
        cfg = Config.fromfile(CUSTOM_IMPORTS_CONFIG_FILE)
        assert 'featquant_mmdet' in sys.modules
        # conv layers live in mmengine's root registry, like mmcv's own 'Conv'
        for name in ('SFConv', 'PowConv', 'HPowConv', 'SFPowConv'):
            assert ROOT_MODELS.get(name) is not None, name
        for registry, names in ((MODELS, ('ZF', 'ImageClassifier')), (TRANSFORMS, ('Distort', )),
                                (DATASETS, ('ImageNetDataset', )), (METRICS, ('Accuracy', )),
                                (HOOKS, ('AlphaRegularizationHook', ))):
            for name in names:
                assert registry.get(name) is not None, (registry.name, name)
        from mmcv.cnn import build_conv_layer
        conv = build_conv_layer(cfg.conv, 8, 4, 3, padding=1)
        import torch
        assert conv(torch.rand(1, 8, 5, 5)).shape == (1, 4, 5, 5)
        from mmdet.utils import register_all_modules
        register_all_modules()
        backbone = MODELS.build(cfg.model)
        return [type(backbone).__name__, type(conv).__name__, os.getcwd()]

    @section('registering')
    def _():  # imported by custom_imports above, after mmdet.registry
        return registering_check(FINDERS)

    @section('plain_warning')
    def _():
        load_config_with_mmdet_bases(tool=False)
""")


def run_fresh(checks, cwd, env, **constants):
    """Run ``checks`` (sections of :data:`FRESH_HARNESS`) in a fresh interpreter: ``{section: result}``."""
    script = FRESH_HARNESS + ''.join(f'{k} = {v!r}\n' for k, v in constants.items()) + checks + \
        '\nprint("RESULTS", json.dumps(RESULTS))\n'
    out = subprocess.run([sys.executable, '-c', script], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and 'RESULTS ' in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads(out.stdout.split('RESULTS ', 1)[1])


def fresh_env(pythonpath):
    """As conftest's (function-scoped) ``subprocess_env``, with or without the checkout on PYTHONPATH."""
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    if pythonpath:
        env['PYTHONPATH'] = REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    return env


@pytest.fixture(scope='module')
def in_repo(tmp_path_factory):
    config = tmp_path_factory.mktemp('every_type') / 'every_type.py'
    config.write_text(EVERY_TYPE_CONFIG)
    return run_fresh(IN_REPO_CHECKS, REPO_ROOT, fresh_env(pythonpath=True), EVERY_TYPE_CONFIG_FILE=str(config),
                     CONFIG_WITH_MMDET_BASES=CONFIG_WITH_MMDET_BASES)


@pytest.fixture(scope='module')
def elsewhere(tmp_path_factory):
    """A config in an unrelated folder, loaded by a process started there, with the installed (editable) package
    rather than the checkout on the path."""
    cfg = tmp_path_factory.mktemp('elsewhere') / 'my_config.py'
    cfg.write_text(textwrap.dedent("""
        custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
        default_scope = 'mmdet'
        model = dict(type='ZF')
        conv = dict(type='PowConv')
    """))
    return run_fresh(ELSEWHERE_CHECKS, str(cfg.parent), fresh_env(pythonpath=False),
                     CUSTOM_IMPORTS_CONFIG_FILE=str(cfg), CONFIG_WITH_MMDET_BASES=CONFIG_WITH_MMDET_BASES)


def section_result(results, name):
    result = results[name]
    assert result['ok'], f"section {name!r} failed:\n{result['error']}\nstderr:\n{result['stderr']}"
    return result


@pytest.mark.parametrize('process', ['in_repo', 'elsewhere'],
                         ids=['import featquant_mmdet first', 'mmdet.registry first, then custom_imports'])
def test_import_registers_every_registering_module_and_leaves_analysis_opt_in(process, request):
    """Every module with a ``register_module`` call is imported by ``import featquant_mmdet`` itself, whether mmdet
    was imported before or not, and no import hook is left in ``sys.meta_path``."""
    assert section_result(request.getfixturevalue(process), 'registering')['value'] >= 15


def test_a_config_with_every_registered_type_builds_after_import(in_repo):
    registered = section_result(in_repo, 'every_type')['value']
    assert len(registered) >= 30, registered  # 5 convs, 10 models, 6 transforms, 2 datasets, 4 metrics, 4 hooks
    assert {'PowConv', 'ZF', 'RNGStateHook'} <= set(registered)


def test_explicit_register_all_modules_sets_the_scope_like_mmdets(in_repo):
    section_result(in_repo, 'explicit_scope')


def test_custom_imports_from_a_config_outside_the_repo(elsewhere):
    """A config in an unrelated folder, loaded by a process started there, gets every plugin component."""
    backbone, conv, cwd = section_result(elsewhere, 'custom_imports')['value']
    assert (backbone, conv) == ('ZF', 'PowConv')
    assert osp.basename(cwd).startswith('elsewhere') and not osp.realpath(cwd).startswith(osp.realpath(REPO_ROOT))


def package_layers():
    """``{dotted name: layer}`` from the table in featquant_mmdet/__init__.py (0 = bottom)."""
    import featquant_mmdet
    doc = featquant_mmdet.__doc__
    rows = [line for line in doc[doc.index('Layers, bottom to top'):].splitlines() if re.match(r'^    \S', line)]
    layers = {}
    for layer, row in enumerate(rows):
        previous = ''
        for name in re.split(r'\s{2,}', row.strip())[0].split(','):
            name = name.strip()
            name = previous.rsplit('.', 1)[0] + name if name.startswith('.') else name  # '.levels' after 'a.b'
            layers[name] = layer
            previous = name
    return layers


def test_no_module_imports_from_a_layer_above_its_own():
    """Every import inside the package (module level or in a function) against the layer table of its __init__."""
    layers = package_layers()
    assert layers['ops'] == layers['layers'] == 0 and layers['engine'] == max(layers.values()), layers

    def layer_of(module):
        parts = module.split('.')[1:]
        for end in range(len(parts), 0, -1):
            if '.'.join(parts[:end]) in layers:
                return layers['.'.join(parts[:end])]
        return None

    package_dir = osp.dirname(osp.dirname(osp.abspath(__file__)))
    upward, unplaced = [], []
    for folder, _, files in os.walk(osp.join(package_dir, 'featquant_mmdet')):
        for file in sorted(f for f in files if f.endswith('.py')):
            path = osp.join(folder, file)
            module = osp.relpath(path[:-3], package_dir).replace(os.sep, '.').removesuffix('.__init__')
            if module == 'featquant_mmdet':
                continue
            own = layer_of(module)
            if own is None:
                unplaced.append(module)
                continue
            package = module if file == '__init__.py' else module.rsplit('.', 1)[0]
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]) if node.level \
                        else ''
                    target = '.'.join(p for p in (base, node.module) if p)
                    targets = [target + '.' + a.name for a in node.names]  # a module or a name in one
                elif isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                else:
                    continue
                for target in targets:
                    layer = layer_of(target) if target.startswith('featquant_mmdet.') else None
                    if layer is not None and layer > own:
                        upward.append(f'{module} imports {target} (line {node.lineno})')
    assert not unplaced, f'modules missing from the layer table of featquant_mmdet/__init__.py: {unplaced}'
    assert not upward, upward


def test_mmcv_ops_run_on_cpu():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))
    feat = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    out = RoIAlign((1, 1), spatial_scale=1.0, sampling_ratio=1, aligned=False)(feat, torch.tensor([[0., 0, 0, 2, 2]]))
    # one sample at the centre (1, 1) of the box: bilinear value of feat at (y=1, x=1) = 9
    assert out.item() == pytest.approx(9.0)


class _ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels, mode='tensor'):
        pred = self.linear(inputs)  # default_collate stacked the batch
        if mode == 'loss':
            return {'loss': ((pred.squeeze(1) - labels) ** 2).mean()}
        return pred


def _toy_runner(work_dir, max_iters, resume=False, load_from=None):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyModel(BaseModel):
        def __init__(self):
            super().__init__()
            self.toy = _ToyModel()

        def forward(self, inputs, labels, mode='tensor'):
            return self.toy(inputs, labels, mode)

    g = torch.Generator().manual_seed(0)
    xs = torch.rand(16, 2, generator=g)
    data = [dict(inputs=x, labels=x.sum()) for x in xs]
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False), batch_size=4,
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume, load_from=load_from, default_scope='mmdet', experiment_name=f'toy{max_iters}{resume}')


def test_runner_checkpoint_load_and_resume(tmp_path):
    import featquant_mmdet  # noqa: F401  (applies the fix)
    from mmengine.runner import load_checkpoint

    runner = _toy_runner(tmp_path, max_iters=4)
    runner.train()
    ckpt = tmp_path / 'iter_4.pth'
    assert ckpt.is_file()
    # the checkpoint carries mmengine's HistoryBuffer in its message hub: torch's safe default refuses it ...
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        torch.load(ckpt)
    # ... while mmengine's loading works, with the weights saved
    model = _ToyModel()
    state = load_checkpoint(model, str(ckpt), revise_keys=[(r'^toy\.', '')])
    trained = runner.model.toy.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key]), key
    assert state['meta']['iter'] == 4

    resumed = _toy_runner(tmp_path, max_iters=6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    assert (tmp_path / 'iter_6.pth').is_file()
    log = open(tmp_path / 'last_checkpoint').read().strip()
    assert log.endswith('iter_6.pth')


def test_fix_is_narrow():
    from mmengine.runner import checkpoint as ckpt_module

    import featquant_mmdet.compat as compat
    assert compat.patch_mmengine_checkpoint_loading() is True  # idempotent
    assert ckpt_module.torch.load is not torch.load
    assert torch.load.__module__ == 'torch.serialization'  # the process-wide torch.load is untouched


def test_tools_mirror_mmdet_arguments(load_tool, tmp_path):
    train, test = load_tool('train'), load_tool('test')
    files = {}
    for name in ('c.py', 'k.pth', 'cls.py', 'cls.pth'):
        files[name] = str(tmp_path / name)
        (tmp_path / name).write_text('')
    a = train.parse_args(['c.py', '--work-dir', 'w', '--resume', '--amp', '--cfg-options', 'a.b=1',
                          '--launcher', 'slurm'])
    assert (a.work_dir, a.resume, a.amp, a.cfg_options, a.launcher) == ('w', 'auto', True, {'a.b': 1}, 'slurm')
    a = test.parse_args([files['c.py'], files['k.pth'], '--out', 'r.pkl', '--show-dir', 'vis', '--launcher', 'mpi',
                         '--distortion', 'motion_blur', '--level', '3', '--distortion-seed', '7'])
    assert (a.out, a.show_dir, a.launcher, a.distortion, a.level, a.distortion_seed) == \
        ('r.pkl', 'vis', 'mpi', 'motion_blur', 3, 7)
    a = test.parse_args([files['c.py'], files['k.pth'], '--distortion', 'targeted_occlusion', '--level', '1',
                         '--saliency-classifier', files['cls.py'], '--saliency-checkpoint', files['cls.pth']])
    assert a.saliency == dict(config=files['cls.py'], checkpoint=files['cls.pth'])
    with pytest.raises(SystemExit):
        train.parse_args(['c.py', '--launcher', 'bogus'])


@pytest.mark.parametrize('extra, message', [
    (['--distortion', 'no_such'], "unknown distortion 'no_such'; valid names: motion_blur"),
    (['--distortion', 'jpeg'], "distortion 'jpeg' needs a level: one of 1, 2, 3, 4"),
    (['--distortion', 'jpeg', '--level', '7'], "invalid level 7 for distortion 'jpeg'; valid levels: 0, 1, 2, 3, 4"),
    (['--distortion', 'mix_heavy', '--level', '2'], 'the mixtures have one fixed strength'),
    (['--level', '2'], '--level needs --distortion'),
    (['--distortion', 'jpeg', '--level', '1', '--distortion-seed', '-1'], '--distortion-seed must be >= 0, got -1'),
    (['--distortion-seed', 'x'], "argument --distortion-seed: invalid int value: 'x'"),
    (['--distortion', 'targeted_occlusion', '--level', '1'],
     '--distortion targeted_occlusion needs --saliency-classifier and --saliency-checkpoint'),
    (['--saliency-classifier', '{cls}'], '--saliency-classifier and --saliency-checkpoint go together'),
    (['--saliency-classifier', '{cls}', '--saliency-checkpoint', '{missing}'],
     '--saliency-checkpoint file not found: '),
    (['--out', 'r.json'], "--out must be a .pkl or .pickle file, got 'r.json'"),
])
def test_test_tool_checks_its_arguments_before_loading_anything(extra, message, load_tool, tmp_path, capsys,
                                                                   monkeypatch):
    test = load_tool('test')
    monkeypatch.setattr(test, 'load_config', lambda args: pytest.fail('the config was loaded despite bad input'))
    config, checkpoint = tmp_path / 'c.py', tmp_path / 'k.pth'
    for path in (config, checkpoint):
        path.write_text('')
    extra = [e.format(cls=config, missing=tmp_path / 'missing.pth') for e in extra]
    with pytest.raises(SystemExit) as exit_info:
        test.main([str(config), str(checkpoint)] + extra)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ': error: ' in last and message in last, last  # '<prog>: error: ...' (prog: pytest's, in process)


@pytest.mark.parametrize('which', ['config', 'checkpoint'])
def test_test_tool_missing_files_are_usage_errors_without_a_traceback(which, load_tool, tmp_path, capsys):
    """A usage error (exit 2, the argparse line), not a FileNotFoundError raised while loading. In process: the
    script's own process is tests/test_tools_help.py's (``python tools/... --help``)."""
    existing = tmp_path / 'exists.py'
    existing.write_text('')
    argv = [str(tmp_path / 'missing.py'), str(existing)] if which == 'config' else [str(existing),
                                                                                    str(tmp_path / 'missing.pth')]
    with pytest.raises(SystemExit) as exit_info:
        load_tool('test').main(argv)
    assert exit_info.value.code == 2
    missing = argv[0] if which == 'config' else argv[1]
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f': error: {which} file not found: {missing}'), last  # '<prog>: error: ...'


def test_tools_silence_the_pkg_resources_warning_of_mmengine_only_in_their_process(in_repo, elsewhere):
    """Loading a config with mmdet:: bases makes mmengine import pkg_resources, which warns; the tools filter that
    one warning, a process that only imports the package keeps it."""
    plain = section_result(elsewhere, 'plain_warning')['stderr']
    tool = section_result(in_repo, 'tool_warning')['stderr']
    assert 'pkg_resources is deprecated' in plain  # the warning exists (setuptools >= 80) ...
    assert 'pkg_resources is deprecated' not in tool  # ... and the tools do not show it


def test_setup_script_is_a_noop_when_ready(repo_root):
    venv = osp.dirname(osp.dirname(sys.executable))
    if not osp.isfile(osp.join(venv, '.featquant-ready')):
        pytest.skip('not running inside the environment made by tools/setup_env.sh')
    env = dict(os.environ, FEATQUANT_VENV=venv)
    out = subprocess.run(['bash', osp.join(repo_root, 'tools', 'setup_env.sh')], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'environment ready' in out.stdout
    assert 'creating' not in out.stdout and 'compile' not in out.stdout


def test_setup_script_reports_the_failed_step(tmp_path, repo_root):
    venv = tmp_path / 'venv'
    env = dict(os.environ, FEATQUANT_VENV=str(venv), PYTHON='/nonexistent/python3')
    out = subprocess.run(['bash', osp.join(repo_root, 'tools', 'setup_env.sh')], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert 'FAILED at step: check toolchain' in out.stderr
    assert 'NOT ready' in out.stderr and 'rerun' in out.stderr
    assert not (venv / '.featquant-ready').exists()


def test_runners_of_one_config_started_in_one_second_keep_their_own_folders(tmp_path, monkeypatch, repo_root):
    """Two runs of one config in one process within the same second (a study, a test session): mmengine names its
    Visualizer/logger instances by config stem + second, so without build_runner's own experiment name the second
    run would reuse the first's Visualizer and write into the first's (possibly deleted) folder."""
    import time
    import types

    import mmengine.runner.runner as mmengine_runner
    from featquant_mmdet.loading import build_runner, load_config

    frozen = types.SimpleNamespace(time=lambda: 1.8e9, strftime=time.strftime, localtime=time.localtime)
    monkeypatch.setattr(mmengine_runner, 'time', frozen)
    save_dirs = []
    for i, config in enumerate(['pretrain/zf_imagenet.py', 'pretrain/zf_imagenet.py', 'faster_rcnn_zf_voc.py',
                                'faster_rcnn_zf_voc.py']):  # the detector's visualizer is named by mmdet's runtime
        cfg = load_config(osp.join(repo_root, 'configs', config))
        cfg.work_dir = str(tmp_path / f'run{i}')
        runner = build_runner(cfg)
        backend = runner.visualizer._vis_backends['LocalVisBackend']
        save_dirs.append(backend._save_dir)
        assert backend._save_dir.startswith(cfg.work_dir), (i, backend._save_dir)
        assert runner.log_dir.startswith(cfg.work_dir)
    assert len({osp.basename(osp.dirname(d)) for d in save_dirs}) == 1  # all in the same second


def test_a_runner_formats_its_config_once(tmp_path, monkeypatch, repo_root):
    """mmengine formats the config with yapf (~1 s) to log it, dump it twice and put it in every checkpoint's meta:
    build_runner's config formats each content once, to the same text as mmengine's."""
    import mmengine.config.config as mmengine_config
    from featquant_mmdet.loading import build_runner, load_config
    from mmengine.config import Config

    path = osp.join(repo_root, 'configs', 'pretrain', 'zf_imagenet.py')
    calls = []
    real = mmengine_config.FormatCode
    monkeypatch.setattr(mmengine_config, 'FormatCode', lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = load_config(path, {'model.head.num_classes': 7})  # content no other test formats
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    assert len(calls) == 1  # log + config.py + vis_data/config.py, formatted once
    text = runner.cfg.pretty_text
    assert len(calls) == 1
    with open(osp.join(runner.log_dir, 'vis_data', 'config.py')) as f:
        assert f.read() == text
    plain = Config.fromfile(path)
    plain.merge_from_dict({'model.head.num_classes': 7, 'work_dir': cfg.work_dir,
                           'experiment_name': runner.cfg.experiment_name, 'visualizer.name': runner.cfg.visualizer.name})
    assert text == plain.pretty_text and len(calls) == 2  # a plain Config formats at every call, to the same text
    runner.cfg.merge_from_dict({'train_cfg.max_epochs': 3})
    assert 'max_epochs=3' in runner.cfg.pretty_text and len(calls) == 3  # another content: formatted again
