import os
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


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
