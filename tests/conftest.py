import functools
import importlib.util
import os
import os.path as osp
import shutil
import sys
import tempfile

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# What a run writes under the temporary directory at its peak: 3.6 GB measured with 2 workers (ZF checkpoints are
# 0.2-0.5 GB each). setup.cfg has pytest delete the directories of passed tests.
TMP_PEAK_BYTES = 4 * 2 ** 30


def pytest_report_header(config):
    """Free space under the temporary directory, with a warning where a run would not fit (a full disk otherwise
    shows up as a flood of unrelated-looking 'No space left on device' errors)."""
    tmp = tempfile.gettempdir()
    free = shutil.disk_usage(tmp).free
    line = (f'temporary directory {tmp}: {free / 2 ** 30:.1f} GiB free, '
            f'a run needs about {TMP_PEAK_BYTES / 2 ** 30:.0f} GiB')
    if free < TMP_PEAK_BYTES:
        line += ' -- WARNING: too little, tests that write checkpoints will fail with "No space left on device"'
    return line


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture
def subprocess_env():
    """Environment for running the tools in a subprocess: the repo importable, one thread per process (2 cores)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    return env


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: a second OpenMP thread only adds barrier waits on the shared 2-core machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def mmdet_scope():
    """Make 'mmdet' the current default scope, as a Runner with ``default_scope='mmdet'`` does, so that configs
    naming mmdet/mmcv types (pipelines, data preprocessors) build outside a Runner.

    A module opts in with ``pytestmark = pytest.mark.usefixtures('mmdet_scope')``, one test by naming it as an
    argument. The scope is left set afterwards, as a Runner leaves it. ``init_default_scope`` does nothing when
    'mmdet' is current already and switches to it when another scope is.
    """
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('train')``, ``load_tool('analysis/synthetic_shift')``: the script ``tools/<name>.py`` as a module,
    so that a test calls its ``main(argv)`` in process with the arguments a user types. Each script is executed
    once per session: the tools keep no state at module level."""

    @functools.cache
    def load(name):
        path = osp.join(REPO_ROOT, 'tools', f'{name}.py')
        if not osp.isfile(path):
            raise FileNotFoundError(f'no tool {path}: name a script under tools/ without ".py", '
                                    f"such as 'train' or 'analysis/synthetic_shift'")
        spec = importlib.util.spec_from_file_location('featquant_tool_' + name.replace('/', '_'), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope='session')
def pretrain_model_cfg():
    """``pretrain_model_cfg(config, num_classes, **overrides)``: the ``model`` of ``configs/pretrain/<config>``
    with a head of ``num_classes`` outputs and the given top-level model keys replaced (a ConfigDict to build
    with mmdet's ``MODELS``)."""
    from mmengine.config import Config

    def model_cfg(config, num_classes, **overrides):
        cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'pretrain', config))
        cfg.model.head.num_classes = num_classes
        cfg.model.update(overrides)
        return cfg.model

    return model_cfg


@pytest.fixture(scope='session')
def labelled_batch():
    """``labelled_batch(n, size, num_classes, seed=0)``: a classifier's data-loader batch of ``n`` random uint8
    ``(3, size, size)`` images, image ``i`` labelled ``i % num_classes`` (the input of its data preprocessor)."""
    import torch
    from mmengine.structures import BaseDataElement

    def batch(n, size, num_classes, seed=0):
        g = torch.Generator().manual_seed(seed)
        images = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)]
        samples = [BaseDataElement(gt_label=torch.tensor([i % num_classes])) for i in range(n)]
        return dict(inputs=images, data_samples=samples)

    return batch
