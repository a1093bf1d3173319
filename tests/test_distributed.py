"""Multi-process runs on CPUs: mmengine's pytorch launcher without CUDA (featquant_mmdet/compat.py), and the real
tools under torchrun (tools/dist_train.sh, tools/dist_test.sh, tools/robustness.py --launcher pytorch) with two
processes on generated VOC data."""
import json
import os
import os.path as osp
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as torch_dist
import torch.nn as nn

import featquant_mmdet  # noqa: F401  (applies the compat patches)
from featquant_mmdet import compat

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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


@pytest.mark.skipif(not osp.isdir('/proc/self/task'), reason='counts threads through /proc (Linux)')
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU-only path: this machine has CUDA')
def test_exit_handler_joins_gloo_threads_of_a_group_held_in_a_cycle(launcher_env):
    """The handler registered at exit leaves no gloo worker thread behind even when, as in a Runner, the DDP wrapper
    that holds the group sits in a reference cycle (a worker outliving the interpreter aborts the process)."""
    from mmengine.dist.utils import _init_dist_pytorch
    from mmengine.model import MMDistributedDataParallel

    def threads():
        return len(os.listdir('/proc/self/task'))

    before = threads()
    _init_dist_pytorch('nccl')
    ddp = MMDistributedDataParallel(module=nn.Linear(3, 2), device_ids=[0], broadcast_buffers=False)
    ddp(torch.ones(4, 3)).sum().backward()
    cycle = {'model': ddp}
    cycle['self'] = cycle
    del ddp, cycle
    assert threads() > before  # gloo's workers and its transport loop
    compat._destroy_process_group()
    assert not torch_dist.is_initialized()
    assert threads() == before


# ---------------------------------------------------------------------------------------------- the real tools
# Two processes of one image each against one process with the same total batch of two images. mmdet normalises a
# batch's losses over all its sampled anchors/RoIs (a pooled mean), DDP averages the per-process means; the two are
# the same only when every image has the same number of samples. The single-process reference is therefore one
# image per iteration with gradient accumulation over 2 iterations (``optim_wrapper.accumulative_counts=2``): it
# sums loss/2 of the two images, as DDP averages the two gradients, and the samplers give it the same images in the
# same order (DefaultSampler: one shuffled permutation; rank r takes every other index from r, one process takes
# them in order). The random draws that would still differ (dropout, flips, anchor/RoI sampling: rank 1 starts from
# the seed, the single process from the state after image 1) are switched off or made exhaustive below, and both
# runs use one thread per process. Then the weights are bitwise equal (measured; scaling a gradient by 1/2 is
# exact in floating point and a sum of two terms does not depend on their order). With batch_size=2 in one process
# instead (pooled mean) the weights differ after 3 iterations by up to 146 % of a tensor's largest value (the RPN
# classifier's bias), which is why that is not the reference.
IMAGE_SIZE = (192, 160)
NPROC = 2
EPOCHS = 2  # of the 2 * NPROC training images: a new sampler order in the second (set_epoch)
ITERS = EPOCHS * 2  # optimizer steps of the 2-process run (NPROC images each)


def tool_options(data_root, max_iters):
    from featquant_mmdet.engine.study import loader_options, voc_data_options
    options = [f'train_cfg.max_iters={max_iters}', 'train_cfg.val_begin=100000',
               'param_scheduler.0.milestones=[100000]',
               f'default_hooks.checkpoint.interval={max_iters}', 'default_hooks.logger.interval=1',
               'randomness.seed=0', *voc_data_options(data_root, IMAGE_SIZE), *loader_options()]
    options += [
        # no randomness left in a training step (see above)
        'model.roi_head.bbox_head.dropout_ratio=0.0', 'train_dataloader.dataset.pipeline.3.prob=0.0',
        'model.train_cfg.rpn.sampler.num=100000', 'model.train_cfg.rcnn.sampler.num=100000',
        # speed: 64 proposals per image, fc6/fc7 of 256 instead of 4096
        'model.train_cfg.rpn_proposal.max_per_img=64', 'model.roi_head.bbox_head.fc_out_channels=256',
        # the exponent penalty weighs in (alpha starts off 0, where |alpha| and alpha^2 have no gradient); the
        # statistics hook runs every iteration
        'model.backbone.quant.conv_cfg.alpha_init=0.05', 'custom_hooks.0.l1=0.01', 'custom_hooks.0.l2=0.01',
        'custom_hooks.1.interval=1',
        # every detection kept: predictions to compare even when the tiny detector is unsure of everything
        'model.test_cfg.rcnn.score_thr=0.0']
    return options


CONFIG = osp.join(REPO, 'configs', 'faster_rcnn_zf_pow1_voc.py')
# The 2-process training runs the 2-GPU schedule's config (it differs from CONFIG only in the schedule keys:
# tests/test_schedules.py) with CONFIG's lr and no warm-up, so that its weights compare with one process of CONFIG.
CONFIG_2GPU = osp.join(REPO, 'configs', f'faster_rcnn_zf_pow1_voc_{NPROC}xb1.py')
SAME_LR_AS_CONFIG = ['optim_wrapper.optimizer.lr=0.001', 'param_scheduler.1.start_factor=1.0']

# A write audit for the sweep's subprocesses: every file opened for writing (or renamed into place) under a folder,
# with the RANK of the process that did it (sys.addaudithook; loaded through sitecustomize on PYTHONPATH).
WRITE_AUDIT = '''
import os, sys
_log, _dir = os.environ.get('FEATQUANT_WRITE_AUDIT'), os.environ.get('FEATQUANT_WRITE_AUDIT_DIR')
if _log and _dir:
    _dir = os.path.realpath(_dir)
    def _hook(event, args):
        path = None
        if event == 'open' and isinstance(args[0], (str, bytes, os.PathLike)) and (
                (isinstance(args[1], str) and any(c in args[1] for c in 'wax+'))
                or args[2] & (os.O_WRONLY | os.O_RDWR)):
            path = args[0]
        elif event == 'os.rename':
            path = args[1]
        if path is not None:
            path = os.path.realpath(os.fsdecode(path))
            if path.startswith(_dir + os.sep):
                with open(_log, 'a') as f:
                    f.write(os.environ.get('RANK', '-') + ' ' + event + ' ' + path + chr(10))
    sys.addaudithook(_hook)
'''


def shared_dir(tmp_path_factory, name):
    """A folder shared by the pytest-xdist workers of this session (pytest-xdist's recipe for a once-per-session
    fixture: the parent of the workers' base temp folders), so that ``make test`` (-n auto) trains once."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
    return root / name


def once(tmp_path_factory, name, build):
    """``build(folder)`` once per session across xdist workers; a ``done`` file marks a finished build."""
    from filelock import FileLock
    folder = shared_dir(tmp_path_factory, name)
    with FileLock(str(folder) + '.lock'):
        if not (folder / 'done').is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / 'done').write_text('')
    return folder


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    from featquant_mmdet.datasets.synthetic_voc import make_voc_dataset
    folder = once(tmp_path_factory, 'distributed_voc', lambda d: make_voc_dataset(
        str(d), num_train=2 * NPROC, num_test=2, image_size=IMAGE_SIZE, seed=0))
    return str(folder / 'VOCdevkit')


@pytest.fixture(scope='module')
def tools_env():
    """The tools' environment: the repo importable, no CUDA (the CPU path on any machine), one thread per process."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable)
    return env


def run(cmd, env, expect_rc=0, timeout=300):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if expect_rc is not None:
        assert proc.returncode == expect_rc, f'{" ".join(map(str, cmd[:4]))} ... exit {proc.returncode}:\n' \
                                             f'{output[-6000:]}'
    print(f'{osp.basename(str(cmd[1]))} {" ".join(map(str, cmd[2:4]))}: {time.perf_counter() - start:.1f} s')
    return proc, output


def torchrun(*args):
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={NPROC}', '--master_addr=127.0.0.1',
            f'--master_port={free_port()}', *map(str, args)]


def state_dict(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


# A hook that appends the image ids of every training batch to <work_dir>/images_rank<R>.jsonl, imported by the
# trainings below through custom_imports (the runs are the real tools; nothing in the training is replaced).
RECORD_HOOK = '''
import json, os
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class RecordImageIds(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        ids = [sample.img_id for sample in data_batch['data_samples']]
        with open(os.path.join(runner.work_dir, f'images_rank{runner.rank}.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter, ids=ids)) + chr(10))
'''


def recording_config(folder, config):
    """A config in ``folder`` that is ``config`` plus the image-id recorder (after the config's own hooks:
    custom_hooks.0/1 keep their meaning)."""
    (folder / 'record_image_ids.py').write_text(RECORD_HOOK)
    path = folder / osp.basename(config)
    path.write_text(f"_base_ = '{config}'\n"
                    "custom_imports = dict(imports=['featquant_mmdet', 'record_image_ids'], allow_failed_imports=False)\n"
                    "custom_hooks = _base_.custom_hooks + [dict(type='RecordImageIds')]\n")
    return path


def recorded_ids(work_dir, rank):
    lines = (work_dir / f'images_rank{rank}.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r['iter'] for r in records] == list(range(len(records)))
    assert all(len(r['ids']) == 1 for r in records)  # one image per GPU
    return [r['ids'][0] for r in records]


@pytest.fixture(scope='module')
def ddp_training(voc_root, tools_env, tmp_path_factory):
    """``tools/dist_train.sh`` of the 2-GPU config (CONFIG_2GPU, with the image-id recorder): 2 CPU processes x 1
    image, ITERS iterations (EPOCHS epochs); its work dir."""

    def train(work_dir):
        child = recording_config(work_dir, CONFIG_2GPU)
        env = dict(tools_env, PORT=str(free_port()),
                   PYTHONPATH=str(work_dir) + os.pathsep + tools_env['PYTHONPATH'])
        _, out = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), child, str(NPROC), '--work-dir', work_dir,
                      '--cfg-options', *tool_options(voc_root, ITERS), *SAME_LR_AS_CONFIG], env)
        assert 'Distributed training: True' in out
        assert osp.isfile(work_dir / f'iter_{ITERS}.pth'), out[-3000:]

    return once(tmp_path_factory, 'distributed_train', train)


@pytest.fixture(scope='module')
def single_training(voc_root, tools_env, tmp_path_factory):
    """``tools/train.py`` of the 1-GPU config (CONFIG, with the image-id recorder) in one process: one image per
    iteration, gradients accumulated over NPROC iterations (see above), NPROC * ITERS iterations; its work dir."""
    work_dir = tmp_path_factory.mktemp('single')
    child = recording_config(work_dir, CONFIG)
    env = dict(tools_env, PYTHONPATH=str(work_dir) + os.pathsep + tools_env['PYTHONPATH'])
    run([sys.executable, osp.join(REPO, 'tools', 'train.py'), child, '--work-dir', work_dir, '--cfg-options',
         *tool_options(voc_root, NPROC * ITERS), f'optim_wrapper.accumulative_counts={NPROC}'], env)
    return work_dir


def test_dist_train_equals_single_process_with_the_same_total_batch(ddp_training, single_training):
    ddp = state_dict(ddp_training / f'iter_{ITERS}.pth')
    single = state_dict(single_training / f'iter_{NPROC * ITERS}.pth')
    assert ddp.keys() == single.keys()
    assert {f'backbone.conv{i}.alpha' for i in (3, 4, 5)} <= set(ddp)
    different = [k for k in ddp if not torch.equal(ddp[k], single[k])]
    assert not different, f'weights differ: {different}'
    # the run trained: the exponents moved away from their initial 0.05 (task gradient and penalty)
    assert not torch.equal(ddp['backbone.conv3.alpha'], torch.full_like(ddp['backbone.conv3.alpha'], 0.05))


def test_two_gpu_schedule_in_two_processes_sees_the_images_of_the_one_gpu_schedule(ddp_training, single_training):
    """``faster_rcnn_zf_pow1_voc_2xb1.py`` under ``tools/dist_train.sh ... 2`` against ``faster_rcnn_zf_pow1_voc.py``
    in one process, EPOCHS epochs each (the 2xb1 config in half the iterations): per epoch the two ranks take
    disjoint halves of the one process's images, in its order interleaved (rank r: positions r, r + 2, ...), so
    together they see the same images (the recorder of the two trainings above: the real tools, nothing in the
    training replaced)."""
    num_train = 2 * NPROC
    single, ranks = recorded_ids(single_training, 0), [recorded_ids(ddp_training, rank) for rank in range(NPROC)]
    assert len(single) == EPOCHS * num_train and all(len(r) == EPOCHS * num_train // NPROC for r in ranks)
    per_rank = num_train // NPROC
    for epoch in range(EPOCHS):
        seen = single[epoch * num_train:(epoch + 1) * num_train]
        halves = [r[epoch * per_rank:(epoch + 1) * per_rank] for r in ranks]
        assert sorted(seen) == sorted(sum(halves, [])) and len(set(seen)) == num_train  # every image once
        assert [seen[i::NPROC] for i in range(NPROC)] == halves
    assert single[:num_train] != single[num_train:]  # a new order each epoch (the sampler's set_epoch)


def test_dist_train_alpha_stats_written_once_per_iteration(ddp_training):
    files = list(ddp_training.glob('*/alpha_stats.jsonl'))
    assert len(files) == 1
    iters = [json.loads(line)['iter'] for line in files[0].read_text().splitlines()]
    assert iters == list(range(1, ITERS + 1))


def test_dist_test_equals_single_process_test(ddp_training, voc_root, tools_env, tmp_path):
    """``tools/dist_test.sh ... --distortion mix_heavy --level 1``: the same predictions and mAP as tools/test.py."""
    checkpoint = ddp_training / f'iter_{ITERS}.pth'
    args = ['--distortion', 'mix_heavy', '--level', '1', '--cfg-options', *tool_options(voc_root, ITERS)]
    env = dict(tools_env, PORT=str(free_port()))
    _, dist_out = run(['bash', osp.join(REPO, 'tools', 'dist_test.sh'), CONFIG, checkpoint, str(NPROC),
                       '--work-dir', tmp_path / 'dist', '--out', tmp_path / 'dist.pkl', *args], env)
    _, single_out = run([sys.executable, osp.join(REPO, 'tools', 'test.py'), CONFIG, checkpoint,
                         '--work-dir', tmp_path / 'single', '--out', tmp_path / 'single.pkl', *args], tools_env)
    dist, single = (pickle.load(open(tmp_path / f'{name}.pkl', 'rb')) for name in ('dist', 'single'))
    assert [r['img_id'] for r in dist] == [r['img_id'] for r in single] == ['000005', '000006']
    for d, s in zip(dist, single):
        assert d['distortion'] == s['distortion']
        assert len(s['pred_instances']['scores']) > 0
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(torch.as_tensor(d['pred_instances'][key]), torch.as_tensor(s['pred_instances'][key]))
    metric = re.compile(r'Iter\(test\).*?(pascal_voc/mAP: \S+)')
    assert metric.search(dist_out).group(1) == metric.search(single_out).group(1)


def test_dist_sweep_writes_one_results_file_from_rank_0(ddp_training, voc_root, tools_env, tmp_path):
    (tmp_path / 'audit').mkdir()
    (tmp_path / 'audit' / 'sitecustomize.py').write_text(WRITE_AUDIT)
    work_dir, audit_log = tmp_path / 'sweep', tmp_path / 'writes.log'
    env = dict(tools_env, FEATQUANT_WRITE_AUDIT=str(audit_log), FEATQUANT_WRITE_AUDIT_DIR=str(work_dir))
    env['PYTHONPATH'] = str(tmp_path / 'audit') + os.pathsep + env['PYTHONPATH']
    run(torchrun(osp.join(REPO, 'tools', 'robustness.py'), CONFIG, ddp_training / f'iter_{ITERS}.pth',
                 '--distortions', 'mix_heavy', '--launcher', 'pytorch', '--work-dir', work_dir,
                 '--cfg-options', *tool_options(voc_root, ITERS)), env)
    results = json.loads((work_dir / 'robustness.json').read_text())
    assert set(results['cells']) == {'clean', 'mix_heavy'}
    assert len(results['runs']) == 1 and sorted(results['runs'][0]['evaluated']) == ['clean', 'mix_heavy']
    assert sorted(p.name for p in work_dir.glob('robustness*')) == ['robustness.cells', 'robustness.json',
                                                                    'robustness.lock']
    assert sorted(p.name for p in (work_dir / 'robustness.cells').iterdir()) == ['clean.npz', 'mix_heavy.npz']
    assert not list(work_dir.glob('.robustness*'))  # no temporary file left
    writes = [line.split(' ', 2) for line in audit_log.read_text().splitlines()]
    sweep_writes = [(rank, event, path) for rank, event, path in writes
                    if 'robustness' in osp.basename(path) or 'robustness.cells' in path]  # + per-image files
    assert ('0', 'os.rename', str(work_dir / 'robustness.json')) in sweep_writes
    assert {rank for rank, _, _ in sweep_writes} == {'0'}, sweep_writes


# Another process holding a work dir's sweep lock: the real SweepLock (robustness/lock.py, standard library only,
# loaded alone so that the holder starts in a moment), held until the test kills it.
HOLD_LOCK = """
import importlib, sys, time, types
package = types.ModuleType('robustness_alone')
package.__path__ = [sys.argv[1]]
sys.modules['robustness_alone'] = package
importlib.import_module('robustness_alone.lock').SweepLock(sys.argv[2]).acquire()
print('held', flush=True)
time.sleep(600)
"""


def test_dist_sweep_refused_while_another_sweep_holds_the_work_dir(ddp_training, voc_root, tools_env, tmp_path):
    """Another process holds the sweep lock of the work dir (as a running sweep does: tests/test_robustness.py has
    the tool itself as the holder); a distributed sweep on the same work dir is then refused on every rank, naming
    the holder, and leaves the work dir as it was."""
    from featquant_mmdet.evaluation import robustness as rb
    work_dir = tmp_path / 'sweep'
    work_dir.mkdir()
    sweep = [osp.join(REPO, 'tools', 'robustness.py'), CONFIG, ddp_training / f'iter_{ITERS}.pth',
             '--distortions', 'mix_heavy', '--work-dir', work_dir, '--cfg-options', *tool_options(voc_root, ITERS)]
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, osp.dirname(rb.__file__),
                               str(work_dir / 'robustness.json')], stdout=subprocess.PIPE, text=True)
    lock = work_dir / 'robustness.lock'
    try:
        assert holder.stdout.readline() == 'held\n', 'the holder did not take the lock'
        assert json.loads(lock.read_text())['pid'] == holder.pid
        proc, _ = run(torchrun('--log-dir', tmp_path / 'ranks', '--redirects', '3', *sweep[:5], '--launcher',
                               'pytorch', *sweep[5:]), tools_env, expect_rc=None)
        assert proc.returncode != 0
        assert json.loads(lock.read_text())['pid'] == holder.pid  # the holder's record is untouched
        assert holder.poll() is None  # and it still holds the lock
        assert not (work_dir / 'robustness.json').exists()
        rank_logs = {p.parent.name: p.read_text() for p in (tmp_path / 'ranks').glob('*/attempt_0/*/stderr.log')}
        assert set(rank_logs) == {'0', '1'}
        refusal = f'in use by another robustness sweep (pid {holder.pid} on host'
        assert refusal in rank_logs['0']
        assert 'Traceback' not in rank_logs['0']
    finally:
        holder.kill()
        holder.communicate()
    # every rank is refused with the holder named (rank 0 tried the lock and broadcast the outcome)
    assert refusal in rank_logs['1'] and 'Traceback' not in rank_logs['1']


# ---------------------------------------------------------------------------------------------- Slurm scripts
FAKE_SRUN = '''#!/usr/bin/env bash
# records its arguments and the environment the training would get, runs nothing
printf '%s\\n' "$@" > "$SRUN_RECORD"
echo "PYTHONPATH=$PYTHONPATH" >> "$SRUN_RECORD.env"
echo "PWD=$PWD" >> "$SRUN_RECORD.env"
'''


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_scripts_build_mmdets_srun_command(script, tmp_path):
    """mmdet's srun line: one task per GPU, the partition and job name, the tool with --launcher=slurm and the
    extra arguments passed through; a missing argument is a usage line and exit 2."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    record = tmp_path / 'srun_args'
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', SRUN_RECORD=str(record), GPUS='16',
               GPUS_PER_NODE='8', CPUS_PER_TASK='6', SRUN_ARGS='--time=1:00:00 --qos=high', PYTHON='python3')
    config = 'configs/faster_rcnn_zf_pow1_voc_8xb1.py'
    fourth = 'work_dirs/x' if script == 'slurm_train.sh' else 'ckpt.pth'
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), 'gpu', 'job1', config, fourth,
                           '--cfg-options', 'randomness.seed=1'], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = record.read_text().splitlines()
    tool = 'tools/train.py' if script == 'slurm_train.sh' else 'tools/test.py'
    assert args[:7] == ['-p', 'gpu', '--job-name=job1', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                        '--cpus-per-task=6']
    assert args[7:10] == ['--kill-on-bad-exit=1', '--time=1:00:00', '--qos=high']
    expected = [config, '--work-dir=work_dirs/x'] if script == 'slurm_train.sh' else [config, 'ckpt.pth']
    assert args[10:] == ['python3', '-u', tool, *expected, '--launcher=slurm', '--cfg-options', 'randomness.seed=1']
    srun_env = dict(line.split('=', 1) for line in (tmp_path / 'srun_args.env').read_text().splitlines())
    assert srun_env['PWD'] == REPO and srun_env['PYTHONPATH'].split(os.pathsep)[0] == REPO
    # too few arguments: usage, exit 2, srun not called
    record.unlink()
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), 'gpu', 'job1'], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and f'usage: bash tools/{script} PARTITION JOB_NAME CONFIG' in proc.stderr
    assert not record.exists()
