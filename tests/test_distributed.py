"""Multi-process runs on CPUs: mmengine's pytorch launcher without CUDA (featquant_mmdet/compat.py), and the real
tools under torchrun (tools/dist_train.sh, tools/dist_test.sh, tools/robustness.py --launcher pytorch) with two
processes on generated VOC data."""
import os
import socket

import pytest
import torch
import torch.distributed as torch_dist
import torch.nn as nn

import featquant_mmdet  # noqa: F401  (applies the compat patches)
from featquant_mmdet import compat


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def launcher_env(monkeypatch):
    """The environment torchrun gives a process of a one-process group; the group is destroyed afterwards."""
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    for var, value in (('RANK', '0'), ('LOCAL_RANK', '0'), ('WORLD_SIZE', '1')):
        monkeypatch.setenv(var, value)
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


class _SetDeviceReached(Exception):
    pass


def _raise_on_set_device(index):
    raise _SetDeviceReached(index)


# ---------------------------------------------------------------------------------------------- the compat patch
def test_patch_is_installed_and_idempotent():
    from mmengine.dist import utils as dist_utils
    from mmengine.model import MMDistributedDataParallel
    before = (dist_utils._init_dist_pytorch, MMDistributedDataParallel.__init__)
    assert compat.patch_mmengine_cpu_distributed() is True
    assert (dist_utils._init_dist_pytorch, MMDistributedDataParallel.__init__) == before
    assert dist_utils._init_dist_pytorch.__wrapped__.__module__ == 'mmengine.dist.utils'


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU-only path: this machine has CUDA')
def test_without_cuda_pytorch_launcher_uses_gloo_and_ddp_gets_no_device_ids(launcher_env, monkeypatch):
    from mmengine.dist.utils import _init_dist_pytorch
    from mmengine.model import MMDistributedDataParallel
    monkeypatch.setattr(torch.cuda, 'set_device', _raise_on_set_device)
    # what Runner.setup_env -> init_dist('pytorch', backend='nccl') (mmdet's default env_cfg) calls; init_dist itself
    # would also set the multiprocessing start method of the test process
    _init_dist_pytorch('nccl')
    assert torch_dist.get_backend() == 'gloo'
    # what Runner.wrap_model does; DDP itself refuses device_ids for a CPU module
    ddp = MMDistributedDataParallel(module=nn.Linear(3, 2), device_ids=[0], broadcast_buffers=False)
    assert ddp.device_ids is None
    ddp(torch.ones(4, 3)).sum().backward()  # a CPU DDP step: gradients all-reduced through gloo
    assert ddp.module.weight.grad is not None


def test_with_cuda_reported_mmengine_code_runs_unchanged(launcher_env, monkeypatch):
    """The patch is a no-op when CUDA is available: mmengine's own code path (set_device, nccl, device_ids)."""
    from mmengine.dist.utils import _init_dist_pytorch
    from mmengine.model import MMDistributedDataParallel
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', _raise_on_set_device)
    with pytest.raises(_SetDeviceReached) as reached:
        _init_dist_pytorch('nccl')
    assert reached.value.args == (0, )
    assert not torch_dist.is_initialized()

    torch_dist.init_process_group('gloo')  # a group to build DDP in (the GPU path would have nccl)
    with pytest.raises(ValueError, match=r'device_ids .*\[0\].*cpu'):
        MMDistributedDataParallel(module=nn.Linear(3, 2), device_ids=[0])  # device_ids passed through
