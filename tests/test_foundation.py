"""The plugin's foundation: registration through custom_imports, the torch.load fix, mmcv ops, the setup script."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn


def test_every_module_of_the_package_is_imported():
    import pkgutil

    import featquant_mmdet
    names = [m.name for m in pkgutil.walk_packages(featquant_mmdet.__path__, prefix='featquant_mmdet.')]
    assert names, 'the package has no submodules'
    missing = [n for n in names if n not in sys.modules]
    assert not missing, f'not imported by `import featquant_mmdet`: {missing}'


def test_custom_imports_from_a_config_outside_the_repo(tmp_path, subprocess_env, repo_root):
    """A config in an unrelated folder, loaded by a process started there, gets every plugin component."""
    cfg = tmp_path / 'elsewhere' / 'my_config.py'
    cfg.parent.mkdir()
    cfg.write_text(textwrap.dedent("""
        custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
        default_scope = 'mmdet'
        model = dict(type='ZF')
        conv = dict(type='PowConv')
    """))
    script = textwrap.dedent(f"""
        import sys
        from mmengine.config import Config
        from mmengine.registry import MODELS as ROOT_MODELS
        from mmdet.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
        assert 'featquant_mmdet' not in sys.modules
        cfg = Config.fromfile({str(cfg)!r})
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
        print('OK', type(backbone).__name__, type(conv).__name__)
    """)
    env = dict(subprocess_env)
    env.pop('PYTHONPATH')  # the installed (editable) package, not the checkout on the path
    out = subprocess.run([sys.executable, '-c', script], cwd=cfg.parent, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'OK ZF PowConv' in out.stdout


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


def test_tools_mirror_mmdet_arguments(load_tool):
    train, test = load_tool('train'), load_tool('test')
    a = train.parse_args(['c.py', '--work-dir', 'w', '--resume', '--amp', '--cfg-options', 'a.b=1',
                          '--launcher', 'slurm'])
    assert (a.work_dir, a.resume, a.amp, a.cfg_options, a.launcher) == ('w', 'auto', True, {'a.b': 1}, 'slurm')
    a = test.parse_args(['c.py', 'k.pth', '--out', 'r.pkl', '--show-dir', 'vis', '--launcher', 'mpi',
                         '--distortion', 'motion_blur', '--level', '3', '--distortion-seed', '7'])
    assert (a.out, a.show_dir, a.launcher, a.distortion, a.level, a.distortion_seed) == \
        ('r.pkl', 'vis', 'mpi', 'motion_blur', 3, 7)
    a = test.parse_args(['c.py', 'k.pth', '--distortion', 'targeted_occlusion', '--occlusion-classifier', 'cls.py',
                         '--occlusion-checkpoint', 'cls.pth'])
    assert (a.occlusion_classifier, a.occlusion_checkpoint) == ('cls.py', 'cls.pth')
    with pytest.raises(SystemExit):
        train.parse_args(['c.py', '--launcher', 'bogus'])


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
