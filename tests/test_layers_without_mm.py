"""``featquant_mmdet.ops`` and ``featquant_mmdet.layers`` with torch alone (a GPU machine without mmcv/mmdet/mmengine).

The subprocesses install an import blocker for mmengine, mmcv and mmdet before anything is imported, so importing
them fails exactly as on a machine where they are not installed (``ModuleNotFoundError``).
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

BLOCKER = textwrap.dedent('''
    import sys

    class BlockOpenMMLab:
        """Import fails for mmengine, mmcv and mmdet, as where they are not installed."""

        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('mmengine', 'mmcv', 'mmdet'):
                raise ModuleNotFoundError(f'No module named {name!r}', name=name)
            return None

    sys.meta_path.insert(0, BlockOpenMMLab())
    try:
        import mmengine  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit('the blocker does not work')
''')

WORKLOAD = textwrap.dedent('''
    import torch
    from featquant_mmdet.layers import HPowConv, PowConv, SFConv, SFPowConv, DoReFaConv
    from featquant_mmdet.ops import signed_power

    torch.manual_seed(0)
    for layer in (PowConv(4, 8, 3, padding=1, num_portions=2), SFPowConv(4, 8, 3), SFConv(4, 8, 3), HPowConv(4, 8, 1),
                  DoReFaConv(4, 8, 3), PowConv(4, 8, 3, memory_efficient=True, fused=False)):
        x = torch.relu(torch.randn(2, 4, 6, 6)).requires_grad_()
        layer(x).square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all(), type(layer).__name__
        assert all(p.grad is not None for p in layer.parameters() if p.requires_grad), type(layer).__name__
    try:
        PowConv(4, 8, 3, alpha_init=5.5)
    except ValueError as err:
        assert '[-1.0, 5.0]' in str(err), err
    else:
        raise AssertionError('alpha_init=5.5 accepted')
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'mmcv', 'mmdet'))
    assert not loaded, loaded
    print('torch-only OK')
''')

# Stands in for a top-level featquant_mmdet/__init__.py that imports nothing from OpenMMLab: the package object
# without running that file, so that ops/ and layers/ are imported exactly as `import featquant_mmdet.layers` would.
BARE_PACKAGE = textwrap.dedent('''
    import types
    package = types.ModuleType('featquant_mmdet')
    package.__path__ = [{package_dir!r}]
    sys.modules['featquant_mmdet'] = package
''')


def _run(script, repo_root, subprocess_env):
    return subprocess.run([sys.executable, '-c', script], cwd=repo_root, env=subprocess_env, capture_output=True,
                          text=True, timeout=300)


def test_ops_and_layers_import_and_run_with_torch_alone(repo_root, subprocess_env):
    script = BLOCKER + BARE_PACKAGE.format(package_dir=osp.join(repo_root, 'featquant_mmdet')) + WORKLOAD
    proc = _run(script, repo_root, subprocess_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'torch-only OK' in proc.stdout


# What a GPU machine without OpenMMLab runs from a checkout, in one process (one torch import for both tests below):
# the layers imported through the package (``import featquant_mmdet.layers``), then benchmarks/bench_quant_conv_gpu.py
# (here on the CPU, one round of the layer table at batch 1, one thread), the import blocker in place throughout.
BENCHMARK = textwrap.dedent('''
    print('--- benchmark ---', flush=True)
    import runpy
    sys.argv = ['bench_quant_conv_gpu.py', '--device', 'cpu', '--repeats', '1', '--warmup', '0', '--batches', '1',
                '--threads', '1', '--skip', 'zf', 'memory', '--malloc', 'system']
    runpy.run_path('benchmarks/bench_quant_conv_gpu.py', run_name='__main__')
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'mmcv', 'mmdet'))
    assert not loaded, loaded
''')


@pytest.fixture(scope='module')
def through_the_package(repo_root):
    """(exit status, stdout before the benchmark, the benchmark's stdout, stderr) of BLOCKER + WORKLOAD + BENCHMARK."""
    env = dict(os.environ, PYTHONPATH=repo_root + os.pathsep + os.environ.get('PYTHONPATH', ''))  # subprocess_env
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = _run(BLOCKER + WORKLOAD + BENCHMARK, repo_root, env)
    layers, _, bench = proc.stdout.partition('--- benchmark ---')
    return proc.returncode, layers, bench, proc.stderr


def test_import_featquant_mmdet_layers_through_the_package_with_torch_alone(through_the_package):
    returncode, layers, bench, stderr = through_the_package
    assert 'torch-only OK' in layers, stderr[-3000:]


def test_layers_are_registered_in_mmengine_when_it_is_there():
    pytest.importorskip('mmengine')
    from mmengine.registry import MODELS

    from featquant_mmdet.layers import DoReFaConv, HPowConv, PowConv, SFConv, SFPowConv
    for cls in (DoReFaConv, HPowConv, PowConv, SFConv, SFPowConv):
        assert MODELS.get(cls.__name__) is cls


def test_benchmark_torch_zf_mirrors_the_zf_backbone(repo_root):
    """benchmarks/bench_quant_conv_gpu.py builds ZF from torch modules; it must have the backbone's layers."""
    pytest.importorskip('mmdet')
    from featquant_mmdet.models.backbones.zf import ZF
    spec = importlib.util.spec_from_file_location('bench_gpu', osp.join(repo_root, 'benchmarks',
                                                                         'bench_quant_conv_gpu.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ours = bench.TorchZF(pow_layers=bench.POW_LAYERS)
    theirs = ZF(quant=dict(conv_cfg=dict(type='PowConv'), include=bench.POW_LAYERS))

    def describe(model):
        return {name: (type(m).__name__, getattr(m, 'weight', torch.empty(0)).shape, getattr(m, 'stride', None),
                       getattr(m, 'padding', None), getattr(m, 'ceil_mode', None), getattr(m, 'local_size', None))
                for name, m in model.named_modules() if name}
    assert describe(ours) == describe(theirs)
    torch.manual_seed(0)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x)[-1])


def test_the_gpu_benchmark_runs_with_torch_alone(through_the_package):
    """benchmarks/bench_quant_conv_gpu.py is what a GPU machine without OpenMMLab runs from a checkout: the whole
    script (here on the CPU, one round, the layer table) with the import blocker in place."""
    returncode, layers, bench, stderr = through_the_package
    assert returncode == 0, stderr[-3000:]
    assert 'malloc: system' in bench and 'R50 layer4 3x3' in bench
    assert 'PowConv L=1, worst shape/batch/dtype' in bench  # the targets, met or missed
