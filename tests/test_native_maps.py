"""The CPU's C++ maps kernel (featquant_mmdet/ops/native.py): built here, chosen by default on the CPU, exact zeros
of eq. 6 on ReLU features, results independent of the thread count, no process-wide floating-point side effect, the
layouts it leaves to the eager path, and a failed build. Values and gradients against the eager reference, layers
included: tests/test_fused_maps.py (BOTH_BACKENDS)."""
import importlib.util
import os.path as osp
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from featquant_mmdet.layers import quant_conv
from featquant_mmdet.layers.quant_conv import PowConv, portioned_power_map
from featquant_mmdet.ops import native, path
from featquant_mmdet.ops.quantize import floor_signed_power, signed_power

HAS_COMPILER = any(shutil.which(cc) for cc in ('c++', 'g++'))


def _relu_features(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).relu_()


def _step(x, alpha, fused, beta=None, threads=None):
    x, alpha = x.clone().requires_grad_(), alpha.clone().requires_grad_()
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        y = signed_power(x, alpha, fused) if beta is None else floor_signed_power(x, beta, alpha, fused)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))
    finally:
        torch.set_num_threads(previous)
    return y.detach(), x.grad, alpha.grad, _kind(y.grad_fn)


def _kind(grad_fn) -> str:
    """'kernel' for the C++ autograd function (a CppNode), else the Python node's class name."""
    return 'kernel' if 'NativePower' in grad_fn.name() else type(grad_fn).__name__


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine: the eager path runs')
def test_kernel_builds_here_and_is_the_cpu_default(monkeypatch):
    assert native.available(), repr(native._state.get('error'))
    monkeypatch.delenv(path.ENV_VAR, raising=False)
    x, alpha = _relu_features((2, 3, 4, 5)), torch.tensor([-0.5, 0.2, 1.0]).view(3, 1, 1)
    assert _step(x, alpha, None)[3] == 'kernel'
    monkeypatch.setenv(path.ENV_VAR, '0')
    assert _step(x, alpha, None)[3] == '_SignedPowerBackward'


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_relu_features_zeros_give_exact_zero_gradients_and_match_eager():
    x = _relu_features((2, 16, 9, 11))  # half exact zeros, as after a ReLU (the kernel's special lanes)
    alpha = torch.linspace(-1.0, 1.5, 16).view(16, 1, 1)
    y, grad_x, grad_alpha, kind = _step(x, alpha, True)
    y_e, grad_x_e, grad_alpha_e, _ = _step(x, alpha, False)
    assert kind == 'kernel'
    zeros = x == 0
    assert zeros.float().mean() > 0.3
    assert (y[zeros] == 0).all() and (grad_x[zeros] == 0).all()
    torch.testing.assert_close(y, y_e, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_x, grad_x_e, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_alpha, grad_alpha_e, rtol=1e-5, atol=1e-5 * float(grad_alpha_e.abs().max()))


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
@pytest.mark.parametrize('case', ['per-channel', 'per-sample-portions', 'floor-power'])
def test_results_do_not_depend_on_the_thread_count(case):
    x = torch.randn(3, 8, 7, 9, generator=torch.Generator().manual_seed(2))
    beta = None
    if case == 'per-channel':
        alpha = torch.rand(8, 1, 1, generator=torch.Generator().manual_seed(3)) - 0.5
    elif case == 'floor-power':
        alpha, beta = torch.rand(8, 1, 1) - 0.5, torch.full((8, 1, 1), 10.0)
    else:
        x, alpha = x.unsqueeze(1), torch.rand(3, 4, 8, 1, 1, generator=torch.Generator().manual_seed(3)) - 0.5
    one, four = _step(x, alpha, True, beta, threads=1), _step(x, alpha, True, beta, threads=4)
    assert one[3] == 'kernel'
    for a, b in zip(one[:3], four[:3]):
        assert torch.equal(a, b)


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_loading_the_kernel_leaves_subnormal_arithmetic_alone():
    """Built without -ffast-math: its startup code would switch the whole process to flush-to-zero."""
    assert native.available()
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal in float32
    assert float(tiny / 10) != 0.0
    x = torch.tensor([[[[1e-39, -3e-40, 2.0]]]])
    y = signed_power(x, torch.zeros(1, 1, 1), fused=True)  # alpha = 0: the identity, subnormal inputs included
    assert torch.equal(y, x)


def test_layouts_the_kernel_leaves_to_the_eager_path():
    x = torch.randn(2, 3, 4, 5)
    alpha = torch.rand(3, 1, 1) - 0.5
    assert native.layout_supported(x, alpha)
    assert native.layout_supported(x.unsqueeze(1), torch.rand(2, 4, 3, 1, 1))  # per sample and per portion
    assert native.layout_supported(x, torch.tensor(0.3))  # one exponent for all channels
    assert not native.layout_supported(x.double(), alpha.double())  # float64
    assert not native.layout_supported(x, torch.rand(3, 4, 1))  # exponents varying over space
    assert not native.layout_supported(x[0], alpha)  # 3-d input
    assert not native.layout_supported(x, alpha, beta=torch.rand(3, 4, 1) + 1)
    # and the ops still compute them, on the eager path
    y, _, _, kind = _step(x.double(), alpha.double(), True)
    assert kind == '_SignedPowerBackward'
    torch.testing.assert_close(y, _step(x.double(), alpha.double(), False)[0])


def test_a_failed_build_warns_once_and_the_eager_path_runs(monkeypatch):
    def broken():
        raise OSError('g++: not found')

    monkeypatch.setattr(native, '_state', {})
    monkeypatch.setattr(native, '_build', broken)
    x, alpha = torch.randn(2, 3, 4, 5), torch.tensor([-0.5, 0.2, 1.0]).view(3, 1, 1)
    with pytest.warns(RuntimeWarning, match=r'the CPU maps kernel cannot be built: OSError: g\+\+: not found; '
                                            r'the eager maps run on the CPU'):
        y, grad_x, grad_alpha, kind = _step(x, alpha, True)
    assert kind == '_SignedPowerBackward'
    reference = _step(x, alpha, False)
    for a, b in zip((y, grad_x, grad_alpha), reference[:3]):
        assert torch.equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning
        assert _step(x, alpha, True)[3] == '_SignedPowerBackward'


def _build_directory():
    from torch.utils import cpp_extension
    return cpp_extension._get_build_directory(native._build_name(), verbose=False)


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_a_lock_file_left_by_a_killed_build_is_removed_before_the_loader_runs(monkeypatch):
    """torch < 2.14 waits while ``build_dir/lock`` exists, and a build killed half-way leaves it: every later process
    hung. Emulated here with a loader that refuses to start while the file exists (torch 2.14 itself does not wait)."""
    from torch.utils import cpp_extension
    assert native.available()
    build_dir = _build_directory()
    assert native._build_name().startswith('featquant_maps_cpu_')
    assert torch.__version__.split('+')[0].replace('.', '_') in native._build_name()
    open(osp.join(build_dir, 'lock'), 'w').close()  # what the killed build left
    load = cpp_extension.load

    def old_torch_load(*args, build_directory, **kwargs):
        if osp.exists(osp.join(build_directory, 'lock')):
            raise AssertionError('torch < 2.14 would wait here forever')
        return load(*args, build_directory=build_directory, **kwargs)

    monkeypatch.setattr(cpp_extension, 'load', old_torch_load)
    monkeypatch.setattr(native, '_state', {})
    assert native.available()  # a load of the cached build, no warning of a failed build
    assert 'error' not in native._state


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_a_second_process_waits_for_a_build_in_progress_and_says_so(subprocess_env):
    fcntl = pytest.importorskip('fcntl')
    assert native.available()
    script = 'from featquant_mmdet.ops import native; assert native.available(); print("loaded")'
    import select
    with open(osp.join(_build_directory(), 'featquant.flock'), 'a') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as a process building the kernel holds it
        proc = subprocess.Popen([sys.executable, '-c', script], env=subprocess_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        said = ''
        while 'waiting for another process' not in said:  # however long its imports take on a loaded machine
            assert select.select([proc.stderr], [], [], 300)[0], 'the second process said nothing in 300 s'
            line = proc.stderr.readline()
            assert line or proc.poll() is None, f'it ended without waiting: {said[-2000:]}'
            said += line
        assert proc.poll() is None  # still waiting while the lock is held
        fcntl.flock(handle, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (said + err)[-2000:]
    assert out.strip() == 'loaded'
    assert 'waiting for another process building the CPU maps kernel in' in said


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_layer_with_portions_and_memory_efficient_backward_uses_the_kernel():
    torch.manual_seed(0)
    layer = PowConv(8, 8, 3, padding=1, num_portions=4, memory_efficient=True, fused=True)
    reference = PowConv(8, 8, 3, padding=1, num_portions=4, memory_efficient=True, fused=False)
    with torch.no_grad():
        layer.alpha.uniform_(-0.6, 0.8)
    reference.load_state_dict(layer.state_dict())
    x = _relu_features((2, 8, 6, 7))
    grads = []
    for module in (layer, reference):
        xi = x.clone().requires_grad_()
        module(xi).square().sum().backward()
        grads.append((xi.grad, module.alpha.grad, module.weight.grad))
    for got, ref in zip(*grads):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(ref.abs().max())))
    alpha = layer.alpha.detach().requires_grad_()
    mapped = portioned_power_map(x, alpha, True)
    assert mapped.shape == (2, 32, 6, 7) and _kind(mapped.grad_fn) == 'kernel'
    accumulate = mapped.grad_fn.next_functions[1][0]  # the layers' layout goes straight in: no view/squeeze nodes
    assert type(accumulate).__name__ == 'AccumulateGrad' and accumulate.variable is alpha


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
@pytest.mark.parametrize('layer_type', ['SFPowConv', 'HPowConv'])
def test_floor_power_and_per_sample_exponents_of_the_layers_match_eager(layer_type):
    """The layers' layout (featquant_mmdet.ops.native.portioned_power): SF-POW's floor scales and HPOW's per-sample
    exponents (N, Lambda, C), Lambda = 2, against the same layer on the eager path."""
    torch.manual_seed(0)
    kwargs = dict(num_portions=2) if layer_type == 'HPowConv' else dict(num_portions=2, beta=8.0)
    layers = [getattr(quant_conv, layer_type)(6, 8, 3, padding=1, fused=fused, **kwargs) for fused in (True, False)]
    layers[1].load_state_dict(layers[0].state_dict())
    x = torch.randn(3, 6, 5, 7, generator=torch.Generator().manual_seed(5))
    results = []
    for layer in layers:
        xi = x.clone().requires_grad_()
        mapped = layer.mapped_input(xi)
        results.append((_kind(mapped.grad_fn), mapped.detach()))
        layer(xi).square().sum().backward()
        results[-1] += (xi.grad, *(p.grad for p in layer.parameters()))
    assert results[0][0] == 'kernel' and results[1][0] != 'kernel'
    for got, ref in zip(results[0][1:], results[1][1:]):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(ref.abs().max())))


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_double_backward_through_the_kernel_is_a_clear_error():
    x = torch.randn(2, 3, 4, 5).requires_grad_()
    alpha = torch.tensor([-0.5, 0.2, 1.0]).view(3, 1, 1).requires_grad_()
    y = signed_power(x, alpha, fused=True)
    with pytest.raises(RuntimeError, match=r'no double backward \(create_graph=True\).*fused=False'):
        torch.autograd.grad(y.square().sum(), alpha, create_graph=True)
    grad_eager, = torch.autograd.grad(signed_power(x, alpha, fused=False).square().sum(), alpha, create_graph=True)
    assert grad_eager.requires_grad  # the eager path it names has one


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_exponents_outside_the_range_are_clamped_by_the_kernel_with_the_eager_gradients():
    """The kernel takes the stored exponents and clamps them itself: outside [-1, 5] gradient 0, on a bound eq. 6."""
    x = torch.randn(2, 5, 4, 3, generator=torch.Generator().manual_seed(4)).clamp(-20, 20)
    alpha = torch.tensor([-1.5, -1.0, 0.3, 5.0, 5.5]).view(5, 1, 1)
    got, ref = _step(x, alpha, True), _step(x, alpha, False)
    assert got[3] == 'kernel' and ref[3] == '_SignedPowerBackward'
    torch.testing.assert_close(got[0], ref[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
    grad_alpha = got[2].flatten()
    assert grad_alpha[0] == 0 and grad_alpha[4] == 0 and (grad_alpha[1:4] != 0).all()
    torch.testing.assert_close(got[2], ref[2], rtol=1e-5, atol=1e-5 * float(ref[2].abs().max()))


def _load_benchmark(path):
    """A benchmarks/ script as a module, to call its ``main(argv)`` in this process (no second torch import)."""
    spec = importlib.util.spec_from_file_location('featquant_bench_' + osp.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not HAS_COMPILER, reason='no C++ compiler on this machine')
def test_kernel_revision_benchmark_builds_an_earlier_kernel_and_refuses_an_unknown_revision(repo_root, monkeypatch,
                                                                                           capsys):
    """benchmarks/bench_native_kernel.py, its main() run here as its command line would: the kernel source of the
    last commit that changed it built beside the current one (one round; about 25 s to build once, then cached under
    that commit's name, unlike HEAD's, which changes with every commit), every row timed; a bad --ref in one line."""
    script = osp.join(repo_root, 'benchmarks', 'bench_native_kernel.py')
    bench = _load_benchmark(script)
    monkeypatch.setattr(sys, 'argv', [script])  # argparse's prog, as when run as a script
    ref = bench.git('log', '-n', '1', '--format=%h', '--', bench.SOURCE).strip()
    threads = torch.get_num_threads()
    try:
        bench.main(['--ref', ref, '--repeats', '1', '--threads', '1'])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert f'ref = {ref}, now = this tree' in out
    rows = [line.split() for line in out.splitlines() if line.startswith(('ZF conv', 'R50 layer'))]
    assert len(rows) == 6 * 2 * 2 and all(float(v) > 0 for row in rows for v in row[-4:])
    with pytest.raises(SystemExit) as bad:
        bench.main(['--ref', 'no-such-revision'])
    assert bad.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].startswith(
        'bench_native_kernel.py: error: git show no-such-revision:featquant_mmdet/ops/csrc/maps_cpu.cpp')
