"""Which maps run where (featquant_mmdet/ops/path.py): ``describe()`` for each path on the CPU, the fallback of the
compiled maps at every point they can fail, the one-line reason when the CPU kernel cannot be built, and the line in
a training log's environment header.

The compiled maps run on the CPU with ``FEATQUANT_FUSED_MAPS=compiled``: the code path CUDA takes by default
(ops/fused.py). Failures are injected by replacing the compiled function (what ``torch.compile`` returns) with one
that raises at the chosen call, as a compiler or a Triton kernel would; between failures it is ``torch.compile``
with dynamo's ``eager`` backend (traced and guarded like the real one, no code generation: seconds, not minutes).
"""
import functools
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from featquant_mmdet.layers.quant_conv import PowConv, SFPowConv
from featquant_mmdet.ops import describe, fused, kernels, native, path

pytestmark = pytest.mark.usefixtures('one_torch_thread')
HAS_COMPILER = any(shutil.which(cc) for cc in ('c++', 'g++'))


@pytest.fixture
def fresh_path_state(monkeypatch):
    """No compiled map has run or failed in this process yet (restored afterwards)."""
    monkeypatch.setattr(path, '_compile_failures', {})
    monkeypatch.setattr(path, '_compile_working', set())


class InjectedCompiler:
    """Stands in for ``torch.compile`` of the maps: traces with dynamo's eager backend, raises where ``fails`` says.

    ``fails(name, args, step)`` -> True at the call that must fail; ``calls`` lists (step, name) of calls that ran.
    """

    def __init__(self, fails):
        self.fails, self.step, self.calls = fails, 0, []

    @functools.lru_cache(maxsize=None)
    def compiled(self, name):
        traced = torch.compile(getattr(kernels, name), backend='eager', dynamic=True, fullgraph=True)

        def run(*args):
            if self.fails(name, args, self.step):
                raise RuntimeError(f'injected compiler failure in {name}')
            self.calls.append((self.step, name))
            return traced(*args)
        return run


def _inject(monkeypatch, fails) -> InjectedCompiler:
    compiler = InjectedCompiler(fails)
    monkeypatch.setattr(fused, '_compiled', compiler.compiled)
    return compiler


# ---------------------------------------------------------------------------------------------------------- describe
@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine: tested below where it is missing')
def test_describe_kernel_available_and_loaded_from_cache_by_a_new_process(monkeypatch, subprocess_env):
    monkeypatch.delenv(path.ENV_VAR, raising=False)
    assert native.available()
    build_dir = native._state['dir']
    how = r'(built|loaded from cache)'
    said = describe(['cpu'])
    assert re.fullmatch(rf'cpu: C\+\+ kernel \(the default on cpu; {how} in {re.escape(build_dir)}\)', said)
    subprocess_env.pop(path.ENV_VAR, None)
    proc = subprocess.run([sys.executable, '-c', 'from featquant_mmdet.ops import describe; print(describe(["cpu"]))'],
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f'cpu: C++ kernel (the default on cpu; loaded from cache in {build_dir})'
    assert 'building' not in proc.stderr and 'cannot be built' not in proc.stderr


def test_describe_forced_eager_never_builds_the_kernel(monkeypatch):
    monkeypatch.setattr(native, '_state', {})
    monkeypatch.setenv(path.ENV_VAR, '0')
    assert describe(['cpu', 'cuda']) == ('cpu: eager maps (forced by FEATQUANT_FUSED_MAPS=0)\n'
                                         'cuda: eager maps (forced by FEATQUANT_FUSED_MAPS=0)')
    assert native._state == {}  # not built, not loaded
    x = torch.randn(2, 3, 4, 5).requires_grad_()
    assert PowConv(3, 4, 3).mapped_input(x).grad_fn.name() == '_SignedPowerBackward'
    assert native._state == {}


def test_describe_compiled_before_after_and_after_a_failure(monkeypatch, fresh_path_state):
    monkeypatch.setenv(path.ENV_VAR, 'compiled')
    forced = 'torch.compile, forced by FEATQUANT_FUSED_MAPS=compiled'
    assert describe(['cpu']) == f'cpu: compiled maps ({forced}; not run yet)'
    compiler = _inject(monkeypatch, lambda name, args, step: step == 1)
    x, alpha = torch.randn(2, 3, 4, 5), torch.rand(3, 1, 1)
    from featquant_mmdet.ops import signed_power
    signed_power(x.requires_grad_(), alpha).sum().backward()
    assert [name for _, name in compiler.calls] == ['power_forward', 'power_backward']
    assert describe(['cpu']) == f'cpu: compiled maps ({forced}; ran)'
    compiler.step = 1
    with pytest.warns(RuntimeWarning, match='the compiled maps failed on cpu after earlier compiled calls ran'):
        signed_power(x, alpha)
    assert describe(['cpu']) == ('cpu: eager maps (the compiled maps failed, power_forward: RuntimeError: injected '
                                 'compiler failure in power_forward)')


def test_describe_rejects_a_bad_setting_naming_the_accepted_ones(monkeypatch):
    monkeypatch.setenv(path.ENV_VAR, 'turbo')
    with pytest.raises(ValueError, match=r"FEATQUANT_FUSED_MAPS='turbo': accepted are auto \(default\), "
                                         r"1/on/true/fused, compiled, 0/off/false/eager"):
        describe()


# ------------------------------------------------------------------------------- the compiled maps' every fallback
FIRST_SHAPE, SECOND_SHAPE = (2, 3, 6, 7), (2, 3, 8, 5)
# step 0: first shape; 1: a new shape; 2: the new shape in bfloat16 under autocast (what AMP hands the map: a new
# dtype, a recompile); 3: the first shape again, float32
POINTS = {
    'forward-first-call': lambda name, args, step: name.endswith('forward') and step == 0,
    'forward-new-shape': lambda name, args, step: name.endswith('forward') and args[0].shape[-2:] == SECOND_SHAPE[-2:],
    'forward-amp-recompile': lambda name, args, step: name.endswith('forward') and args[0].dtype == torch.bfloat16,
    'backward-first-call': lambda name, args, step: name.endswith('backward') and step == 0,
    'backward-later-call': lambda name, args, step: name.endswith('backward') and step == 1,
}
FAILING_STEP = {'forward-first-call': 0, 'forward-new-shape': 1, 'forward-amp-recompile': 2,
                'backward-first-call': 0, 'backward-later-call': 1}
LAYERS = {'PowConv': lambda: PowConv(3, 4, 3, padding=1, num_portions=2),
          'SFPowConv': lambda: SFPowConv(3, 4, 3, padding=1, beta=10.0)}


def _map_nodes(t) -> set:
    """The names of the autograd nodes of ``t``'s graph."""
    names, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node.name() not in names:
            names.add(node.name())
            todo += [n for n, _ in node.next_functions]
    return names


def _step(layer, x, amp):
    x = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        out = layer(x)
    out.float().square().sum().backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    layer.zero_grad()
    return out.detach().float(), x.grad, grads


@pytest.mark.parametrize('layer_name', sorted(LAYERS))
@pytest.mark.parametrize('point', list(POINTS))
def test_a_compiled_map_failing_anywhere_falls_back_with_one_warning_and_eager_gradients(
        point, layer_name, monkeypatch, fresh_path_state):
    """The layer in its default setting (auto, here the compiled maps as on CUDA) trains four steps; the injected
    failure hits one call. That call's values and gradients, and every later step's, equal the eager layer's."""
    monkeypatch.setenv(path.ENV_VAR, 'compiled')
    compiler = _inject(monkeypatch, POINTS[point])
    torch.manual_seed(0)
    layer, reference = LAYERS[layer_name](), LAYERS[layer_name]()
    with torch.no_grad():
        layer.alpha.uniform_(-0.6, 0.8)
    reference.fused = False
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(FIRST_SHAPE, generator=gen), torch.randn(SECOND_SHAPE, generator=gen),
              torch.randn(SECOND_SHAPE, generator=gen).bfloat16(), torch.randn(FIRST_SHAPE, generator=gen)]
    failing = FAILING_STEP[point]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for step, x in enumerate(inputs):
            compiler.step = step
            amp = x.dtype == torch.bfloat16
            reference.load_state_dict(layer.state_dict())
            got, ref = _step(layer, x, amp), _step(reference, x, amp)
            tol = dict(rtol=2e-2, atol=2e-2) if amp else dict(rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(got[0], ref[0], **tol)
            torch.testing.assert_close(got[1], ref[1], **tol)
            for key in ref[2]:
                torch.testing.assert_close(got[2][key], ref[2][key], rtol=tol['rtol'],
                                           atol=tol['atol'] * max(1.0, float(ref[2][key].abs().max())))
            for p, grad in zip(layer.parameters(), got[2].values()):
                p.grad = grad
            optimizer.step()
            optimizer.zero_grad()
            nodes = _map_nodes(layer.mapped_input(x.float().requires_grad_()))
            compiled = any(n.startswith('Fused') for n in nodes)
            assert compiled == (step < failing) and compiled != ('_SignedPowerBackward' in nodes), nodes
    ours = [w for w in caught if 'featquant_mmdet' in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert 'injected compiler failure in ' in message
    assert 'FEATQUANT_FUSED_MAPS=0' in message and 'FEATQUANT_FUSED_MAPS=1' in message
    assert ('at its first use' if failing == 0 and point.startswith('forward') else
            'after earlier compiled calls ran') in message
    ran = {step for step, _ in compiler.calls}
    assert set(range(failing)) <= ran and max(ran, default=0) <= failing  # compiled until the failure, never after
    assert describe(['cpu']).startswith('cpu: eager maps (the compiled maps failed, ')


def test_an_error_the_eager_maps_raise_too_is_the_callers_and_keeps_the_compiled_maps(monkeypatch,
                                                                                      fresh_path_state):
    """Exponents that do not broadcast against x fail compiled and op by op alike: raised, no fallback, no warning."""
    monkeypatch.setenv(path.ENV_VAR, 'compiled')
    _inject(monkeypatch, lambda name, args, step: False)
    from featquant_mmdet.ops import signed_power
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(RuntimeError, match='size of tensor'):
            signed_power(torch.randn(2, 3, 4, 5), torch.rand(4, 1, 1))
    assert path.compiled_usable(torch.device('cpu'))


# ------------------------------------------------------------------------------ the CPU kernel cannot be built
WORKLOAD = textwrap.dedent('''
    import torch
    from featquant_mmdet.layers import PowConv
    from featquant_mmdet.ops import describe

    x = torch.relu(torch.randn(2, 4, 6, 6)).requires_grad_()
    layer = PowConv(4, 8, 3, padding=1)
    print('map:', layer.mapped_input(x).grad_fn.name())
    layer(x).square().sum().backward()
    assert torch.isfinite(layer.alpha.grad).all()
    print(describe(['cpu']))
''')


def _venv_without_ninja(root) -> str:
    """A virtual environment whose bin/ holds no ninja, seeing this one's packages (torch) through a .pth file."""
    import site
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(root)], check=True, timeout=120)
    packages = glob.glob(osp.join(str(root), 'lib', 'python*', 'site-packages'))[0]
    with open(osp.join(packages, 'outer.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    return osp.join(str(root), 'bin', 'python')


@pytest.mark.skipif(not HAS_COMPILER, reason='needs a C++ compiler to take away piece by piece')
@pytest.mark.parametrize('missing', ['compiler', 'compiler-on-path', 'ninja', 'build'])
def test_a_kernel_that_cannot_be_built_says_why_in_one_line_and_the_eager_maps_run(missing, tmp_path,
                                                                                   subprocess_env, monkeypatch,
                                                                                   capsys):
    """A fresh TORCH_EXTENSIONS_DIR each time (no cached build to load); each case fails before or at compiling.

    The workload runs in this process as in a new one (the kernel not tried yet; its state, the environment and
    torch's record of extensions built in this process restored afterwards), except 'ninja': that needs an
    interpreter with no ninja beside it (a virtual environment of its own), so it runs in a subprocess."""
    env = {'TORCH_EXTENSIONS_DIR': str(tmp_path / 'extensions'), path.ENV_VAR: None}  # None: unset
    python = None  # this process
    tools = tmp_path / 'bin'
    tools.mkdir()
    if missing == 'compiler':
        env['CXX'] = str(tmp_path / 'no' / 'c++')
        reason = f"no C\\+\\+ compiler: CXX='{re.escape(env['CXX'])}' not found on PATH"
    elif missing == 'compiler-on-path':  # ninja there, no c++: the case the warning used to show ninja's command for
        env['CXX'] = None
        os.symlink(shutil.which('ninja', path=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']),
                   tools / 'ninja')
        env['PATH'] = str(tools)
        reason = r"no C\+\+ compiler: 'c\+\+' \(set CXX to choose one\) not found on PATH"
    elif missing == 'ninja':
        env['CXX'] = None
        os.symlink(shutil.which('c++'), tools / 'c++')
        env['PATH'] = str(tools)
        python = _venv_without_ninja(tmp_path / 'venv')
        reason = r'no ninja on PATH \(install it: pip install ninja\)'
    else:  # the real compiler, refusing a flag: a real build error
        env['CXX'] = str(tools / 'c++')
        with open(env['CXX'], 'w') as f:
            f.write(f'#!/bin/sh\nexec {shutil.which("c++")} "$@" -fno-such-flag\n')
        os.chmod(env['CXX'], 0o755)
        reason = (r"build error \(c\+\+: error: unrecognized command-line option .-fno-such-flag.*\), the compiler's "
                  r"output in (?P<log>\S+featquant_build_error\.log)")
    if python:
        subprocess_env.update((name, value) for name, value in env.items() if value is not None)
        for name in [name for name, value in env.items() if value is None]:
            subprocess_env.pop(name, None)
        proc = subprocess.run([python, '-c', WORKLOAD], env=subprocess_env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        said = [line for line in proc.stderr.splitlines() if 'cannot be built' in line]
        stdout, stderr = proc.stdout, proc.stderr
    else:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.setattr(native, '_state', {})
        from torch.utils.cpp_extension import JIT_EXTENSION_VERSIONER  # the failed build would bump its version
        monkeypatch.setattr(JIT_EXTENSION_VERSIONER, 'entries', dict(JIT_EXTENSION_VERSIONER.entries))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            exec(compile(WORKLOAD, '<workload>', 'exec'), {})
        said = [f'{w.category.__name__}: {w.message}' for w in caught if 'cannot be built' in str(w.message)]
        stdout, stderr = capsys.readouterr().out, '\n'.join(said)
    assert len(said) == 1, stderr[-3000:]
    warning = re.search(f'RuntimeWarning: featquant_mmdet: the CPU maps kernel cannot be built: {reason}; the eager '
                        f'maps run on the CPU$', said[0])
    assert warning, said[0]
    out = stdout.splitlines()
    assert out[0] == 'map: _SignedPowerBackward'  # the eager maps trained the step
    assert re.fullmatch(f'cpu: eager maps \\(the C\\+\\+ kernel cannot be built: {reason}\\)', out[1]), out[1]
    if missing == 'build':
        with open(warning.group('log')) as f:
            assert '-fno-such-flag' in f.read()  # the compiler's whole output, for the user to read
    assert not glob.glob(str(tmp_path / 'extensions' / '*' / '*.so'))


# ------------------------------------------------------------------------------------------- the training log
def test_a_training_log_names_the_maps_path_in_its_environment_header(tmp_path, load_tool, monkeypatch):
    """tools/train.py, the real Runner, two iterations of a ZF-POW-1 classifier on generated images."""
    pytest.importorskip('mmdet')
    from featquant_mmdet.datasets.synthetic_imagenet import make_imagenet_dataset
    monkeypatch.delenv(path.ENV_VAR, raising=False)
    root = str(tmp_path / 'imagenet')
    make_imagenet_dataset(root, num_train_per_class=2, num_val_per_class=1, image_size=72, seed=0)
    options = ['model.head.num_classes=6', 'model.head.hidden_channels=64', 'train_cfg.max_epochs=1',
               'train_dataloader.batch_size=4', 'train_dataloader.dataset.indices=8',
               'train_dataloader.dataset.pipeline.1.scale=32', 'default_hooks.checkpoint.save_optimizer=False',
               'default_hooks.checkpoint.save_best=None', 'val_cfg=None', 'val_dataloader=None',
               'val_evaluator=None', 'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None']
    options += [f'train_dataloader.dataset.data_root={root}', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False']
    work_dir = tmp_path / 'work'
    load_tool('train').main([osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'pretrain',
                                      'zf_pow1_imagenet.py'), '--work-dir', str(work_dir), '--cfg-options', *options])
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        text = f.read()
    header = text[text.index('Runtime environment:'):]
    header = header[:header.index('-' * 60)]
    assert f'    featquant_maps: {describe(["cpu"], one_line=True)}\n' in header
    expected = 'C++ kernel (the default on cpu; ' if HAS_COMPILER else 'eager maps (the C++ kernel cannot be built'
    assert f'featquant_maps: cpu: {expected}' in header
    assert 'Iter(train) [2/2]' in text or 'Epoch(train) [1][2/2]' in text  # and it trained
