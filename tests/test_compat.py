"""The patches of mmengine (featquant_mmdet/compat.py): in place where the installed versions need them, left out
where upstream is already right (simulated with stand-ins of mmengine's code), all off with FEATQUANT_NO_PATCHES=1.

What each patch does is tested where it matters: checkpoint loading in test_foundation.py, CPU distributed runs in
test_distributed.py, ``featquant_mmdet::`` configs in test_packaging.py.
"""
import importlib.util
import os.path as osp
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

from featquant_mmdet import compat
from featquant_mmdet.malloc import resolve_setting
from featquant_mmdet.package_configs import CONFIG_SCOPE, PREFIX, config_path


def module_from_source(tmp_path, name, source):
    """A module defined in a real file (the checks read its source, as they read mmengine's)."""
    path = tmp_path / f'{name}.py'
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_patch_is_in_place_with_the_pinned_versions():
    """torch 2.14 + mmengine 0.10.7 (requirements/constraints.txt) need all three; applying again changes nothing."""
    from mmengine.config import Config
    from mmengine.dist import utils as dist_utils
    from mmengine.runner import checkpoint as ckpt_module
    before = (ckpt_module.torch, dist_utils._init_dist_pytorch, Config._get_cfg_path)
    assert compat.apply_patches() == dict(checkpoint_loading=True, cpu_distributed=True, package_configs=True)
    assert (ckpt_module.torch, dist_utils._init_dist_pytorch, Config._get_cfg_path) == before
    # the checks look at mmengine's own code, which still has each problem
    assert compat._torch_load_calls_without_weights_only(ckpt_module)
    assert compat._sets_cuda_device_unchecked(dist_utils._init_dist_pytorch.__wrapped__)
    assert not compat._resolves_package_configs(Config._get_cfg_path.__wrapped__)


OLD_CHECKPOINT_MODULE = '''
    import torch

    def load_from_local(filename, map_location=None):
        return torch.load(filename, map_location=map_location)
'''


def test_checkpoint_patch_leaves_an_mmengine_that_passes_weights_only_alone(tmp_path):
    fixed = module_from_source(tmp_path, 'fixed_checkpoint', OLD_CHECKPOINT_MODULE.replace(
        'map_location=map_location)', 'map_location=map_location, weights_only=False)'))
    assert compat.patch_mmengine_checkpoint_loading(fixed) is False
    assert fixed.torch is torch

    old = module_from_source(tmp_path, 'old_checkpoint', OLD_CHECKPOINT_MODULE)
    ckpt = tmp_path / 'meta.pth'
    torch.save(dict(meta=dict(epoch=np.int64(3))), ckpt)  # a numpy scalar: refused by weights_only=True
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        old.load_from_local(ckpt)
    assert compat.patch_mmengine_checkpoint_loading(old) is True
    assert old.load_from_local(ckpt)['meta']['epoch'] == 3
    assert torch.load.__module__ == 'torch.serialization'  # only the module's own view of torch changed


def test_checkpoint_patch_is_not_needed_before_torch_2_6(tmp_path, monkeypatch):
    old = module_from_source(tmp_path, 'old_checkpoint_torch25', OLD_CHECKPOINT_MODULE)
    monkeypatch.setattr(torch, '__version__', '2.5.1')
    assert compat.patch_mmengine_checkpoint_loading(old) is False
    assert old.torch is torch


# as mmengine 0.10.7: set_device for every process in the branch without NPU/MLU/MUSA
OLD_DIST_UTILS = '''
    import torch

    def is_npu_available():
        return False

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if is_npu_available():
            pass
        else:
            torch.cuda.set_device(0)
            torch.distributed.init_process_group(backend=backend, **kwargs)
'''
FIXED_DIST_UTILS = '''
    import torch

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available():
            torch.cuda.set_device(0)
        else:
            backend = 'gloo'
        torch.distributed.init_process_group(backend=backend, **kwargs)
'''


@pytest.mark.parametrize('source, needed', [(OLD_DIST_UTILS, True), (FIXED_DIST_UTILS, False)])
def test_cpu_distributed_patch_only_where_mmengine_sets_a_cuda_device_unchecked(source, needed, tmp_path):
    dist_utils = module_from_source(tmp_path, f'dist_utils_{needed}', source)

    class DDP:
        def __init__(self, module, device_ids=None):
            self.device_ids = device_ids

    original = (dist_utils._init_dist_pytorch, DDP.__init__)
    assert compat.patch_mmengine_cpu_distributed(dist_utils, DDP) is needed
    assert ((dist_utils._init_dist_pytorch, DDP.__init__) != original) is needed
    if needed:
        assert dist_utils._init_dist_pytorch.__wrapped__ is original[0]
        assert compat.patch_mmengine_cpu_distributed(dist_utils, DDP) is True  # idempotent
        assert dist_utils._init_dist_pytorch.__wrapped__ is original[0]


def test_the_checks_keep_the_patches_where_mmengine_ships_no_source():
    """An installation without .py files (compiled only): the checks cannot read the code and keep the patches."""
    module = types.ModuleType('compiled_checkpoint')
    module.torch = torch
    assert compat._torch_load_calls_without_weights_only(module)
    namespace = {}
    exec('def _init_dist_pytorch(backend):\n    pass', namespace)  # noqa: S102  (a function without a source file)
    assert compat._sets_cuda_device_unchecked(namespace['_init_dist_pytorch'])


def test_package_configs_patch_leaves_an_mmengine_that_resolves_the_prefix_alone():
    class FixedConfig:  # an mmengine that knows the package (what a registration mechanism would give)
        @staticmethod
        def _get_cfg_path(cfg_path, filename):
            if cfg_path.startswith(PREFIX):
                return config_path(cfg_path), CONFIG_SCOPE
            return cfg_path, None

    original = FixedConfig.__dict__['_get_cfg_path']
    assert compat.patch_mmengine_package_configs(FixedConfig) is False
    assert FixedConfig.__dict__['_get_cfg_path'] is original

    class OldConfig:  # as mmengine 0.10.7: a fixed map of OpenMMLab's packages
        @staticmethod
        def _get_cfg_path(cfg_path, filename):
            if '::' in cfg_path:
                raise AssertionError(f'mmengine does not support to load {cfg_path.split("::")[0]} config.')
            return cfg_path, None

    assert compat.patch_mmengine_package_configs(OldConfig) is True
    name = 'pretrain/zf_imagenet.py'
    assert OldConfig._get_cfg_path(PREFIX + name, '') == (config_path(name), 'mmdet')
    with pytest.raises(AssertionError, match='does not support'):
        OldConfig._get_cfg_path('mmpretrain::x/y.py', '')  # other prefixes: mmengine's own code



def test_package_base_configs_resolve_to_mmengines_path_without_the_metafile_search(monkeypatch):
    """``mmdet::_base_/...``: the same (path, scope) as mmengine's own resolution, without reading a metafile."""
    import glob
    import re

    import mmengine.config.utils as config_utils
    from mmengine.config import Config

    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    paths = sorted({m for f in glob.glob(osp.join(repo, 'configs', '**', '*.py'), recursive=True)
                    for m in re.findall(r"mmdet::_base_/[\w./-]+\.py", open(f).read())})
    assert len(paths) >= 3, paths
    expected = {p: Config._get_cfg_path.__wrapped__(p, '') for p in paths}  # mmengine's code, metafiles read
    monkeypatch.setattr(config_utils, '_get_cfg_metainfo', lambda *a: pytest.fail('read the metafiles'))
    for p in paths:
        assert Config._get_cfg_path(p, '') == expected[p]
        assert osp.isfile(expected[p][0]) and expected[p][1] == 'mmdet'
    errors = []
    for resolve in (Config._get_cfg_path, Config._get_cfg_path.__wrapped__):  # an absent package: mmengine's error
        with pytest.raises(Exception) as error:
            resolve('nosuchpkg::_base_/x.py', '')
        errors.append((type(error.value), str(error.value)))
    assert errors[0] == errors[1]


NO_PATCHES_CHECK = '''
import sys
import featquant_mmdet
from mmengine.config import Config
from mmengine.dist import utils as dist_utils
from mmengine.model.wrappers.distributed import MMDistributedDataParallel
from mmengine.runner import checkpoint as ckpt_module
import torch
from featquant_mmdet.malloc import tune_malloc
from mmdet.registry import MODELS

assert ckpt_module.torch is torch
assert not hasattr(dist_utils._init_dist_pytorch, '__wrapped__')
assert not hasattr(MMDistributedDataParallel.__init__, '__wrapped__')
assert not hasattr(Config.__dict__['_get_cfg_path'].__func__, '__wrapped__')
assert tune_malloc() == 'system'
assert MODELS.get('ZF') is not None  # registration is no patch
try:
    Config._get_cfg_path('featquant_mmdet::pretrain/zf_imagenet.py', '')
except AssertionError as err:  # mmengine's own answer
    print('mmengine:', err)
# what the patches are there for fails again: mmengine's checkpoints on torch >= 2.6 ...
import numpy as np
from mmengine.runner import load_checkpoint
torch.save(dict(state_dict={}, meta=dict(epoch=np.int64(1))), sys.argv[1])
try:
    load_checkpoint(torch.nn.Linear(1, 1), sys.argv[1])
except Exception as err:
    print('checkpoint:', type(err).__name__, 'Weights only load failed' in str(err))
# ... and the pytorch launcher without CUDA
if not torch.cuda.is_available():
    import os
    os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='29555')
    try:
        dist_utils._init_dist_pytorch('nccl')
    except Exception as err:
        print('launcher:', type(err).__name__)
print('nothing patched')
'''


def test_no_patches_variable_turns_every_patch_off(subprocess_env, tmp_path):
    env = dict(subprocess_env, FEATQUANT_NO_PATCHES='1')
    env.pop('FEATQUANT_MALLOC', None)
    proc = subprocess.run([sys.executable, '-c', NO_PATCHES_CHECK, str(tmp_path / 'meta.pth')], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'mmengine: mmengine does not support to load featquant_mmdet config.' in proc.stdout
    assert 'checkpoint: UnpicklingError True' in proc.stdout
    if not torch.cuda.is_available():
        assert 'launcher: ' in proc.stdout
    assert proc.stdout.strip().endswith('nothing patched')


@pytest.mark.parametrize('value, disabled', [('', False), ('0', False), ('1', True), (' 1 ', True)])
def test_no_patches_values(value, disabled, monkeypatch):
    monkeypatch.setenv(compat.NO_PATCHES_ENV, value)
    monkeypatch.delenv('FEATQUANT_MALLOC', raising=False)
    assert compat.patches_disabled() is disabled
    assert compat.apply_patches() == dict.fromkeys(compat.PATCHES, not disabled)
    assert resolve_setting() == ('system' if disabled else 'tuned')
    monkeypatch.setenv('FEATQUANT_MALLOC', 'tuned')  # the malloc variable, when given, decides the malloc setting
    assert resolve_setting() == 'tuned'


def test_a_bad_no_patches_value_names_the_accepted_ones(monkeypatch, subprocess_env):
    monkeypatch.setenv(compat.NO_PATCHES_ENV, 'yes')
    with pytest.raises(ValueError, match=r"FEATQUANT_NO_PATCHES='yes': accepted are 1 \(no patches .*\) or 0 / unset"):
        compat.apply_patches()
    proc = subprocess.run([sys.executable, '-c', 'import featquant_mmdet'], capture_output=True, text=True,
                          env=dict(subprocess_env, FEATQUANT_NO_PATCHES='yes'), timeout=300)
    assert proc.returncode == 1 and "ValueError: environment variable FEATQUANT_NO_PATCHES='yes'" in proc.stderr


def test_patch_table_names_every_patch():
    """The module's table (what it fixes, where it applies) has a row per patch and says how to turn them off."""
    rows = [line.split()[0] for line in compat.__doc__.splitlines() if line.startswith('    ') and line.split()]
    assert set(compat.PATCHES) | {'malloc'} <= set(rows), rows
    assert isinstance(compat.PATCHES, dict) and all(isinstance(p, types.FunctionType) for p in compat.PATCHES.values())
    assert 'FEATQUANT_NO_PATCHES=1' in compat.__doc__
