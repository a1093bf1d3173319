"""The fused maps against the eager reference: values and eq. 6 gradients, the layers, the switch between the
paths, and ``torch.compile`` of a whole model containing the layers.

Runs on the CPU, with Inductor's C++ backend and with the hand-written kernel (ops/native.py; its own properties:
tests/test_native_maps.py); ``tests/test_layers_cuda.py`` repeats the comparison on a GPU. Compiling
costs seconds per new input rank/dtype: the cases share ranks and dtypes so that the file compiles few kernels
(about 1-2 minutes on 2 loaded cores the first time, much less with Inductor's on-disk cache).
"""
import shutil

import pytest
import torch
import torch.nn as nn

from featquant_mmdet.layers.quant_conv import HPowConv, PowConv, SFConv, SFPowConv
from featquant_mmdet.ops import path
from featquant_mmdet.ops.quantize import floor_signed_power, scaled_floor, signed_power

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# The CPU's fused maps are the C++ kernel by default (ops/native.py); this file also runs the compiled maps on the CPU
# (FEATQUANT_FUSED_MAPS=compiled: Inductor's C++), the code path that CUDA takes by default. Tests marked
# BOTH_BACKENDS run with each; the others with the compiled maps.
BOTH_BACKENDS = pytest.mark.parametrize('cpu_backend', ['compiled', 'kernel'], indirect=True)


@pytest.fixture(autouse=True)
def cpu_backend(request, monkeypatch):
    backend = getattr(request, 'param', 'compiled')
    if backend == 'compiled':
        monkeypatch.setenv(path.ENV_VAR, 'compiled')  # fused=True runs the compiled maps on the CPU too
    else:
        monkeypatch.delenv(path.ENV_VAR, raising=False)
    return backend


TOL = dict(rtol=1e-5, atol=1e-5)


def _features(shape, seed=0, dtype=torch.float32):
    """ReLU-like features with exact zeros, tiny and large magnitudes and negative values."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * 2
    x[x.abs() < 0.3] = 0.0  # exact zeros: eq. 6 gives 0 for both gradients there
    flat = x.view(-1)
    flat[:6] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e3, -7.5])
    return x.to(dtype)


def _grads(op, x, params, grad_out, fused):
    x = x.clone().requires_grad_()
    params = [p.clone().requires_grad_() for p in params]
    y = op(x, *params, fused=fused)
    y.backward(grad_out)
    return y.detach(), x.grad, [p.grad for p in params]


def _assert_paths_agree(op, x, params, seed=1, tol=TOL):
    y_e = op(x, *params, fused=False)
    grad_out = torch.randn(y_e.shape, generator=torch.Generator().manual_seed(seed))
    ref = _grads(op, x, params, grad_out, fused=False)
    got = _grads(op, x, params, grad_out, fused=True)
    torch.testing.assert_close(got[0], ref[0], **tol)
    torch.testing.assert_close(got[1], ref[1], **tol)
    for g, r in zip(got[2], ref[2]):
        torch.testing.assert_close(g, r, rtol=tol['rtol'], atol=tol['atol'] * max(1.0, float(r.abs().max())))
    return got


# -------------------------------------------------------------------------------------------------------- the ops
@BOTH_BACKENDS
@pytest.mark.parametrize('alpha_values', [(-1.0, 0.0, 5.0), (-0.7, 0.4, 1.9)], ids=['range-ends', 'inside'])
def test_power_fused_equals_eager_per_channel_including_zero_and_range_ends(alpha_values):
    x = _features((2, 3, 5, 6))
    if max(alpha_values) == 5.0:
        x = x.clamp(-20, 20)  # |x|^6 stays well inside float32 at the upper end of the range
    alpha = torch.tensor(alpha_values).view(3, 1, 1)
    y, grad_x, (grad_alpha,) = _assert_paths_agree(signed_power, x, [alpha])
    zeros = x == 0
    assert zeros.any() and (y[zeros] == 0).all() and (grad_x[zeros] == 0).all()  # the x == 0 rule
    assert torch.isfinite(grad_alpha).all()


@BOTH_BACKENDS
def test_power_fused_equals_eager_per_sample_and_per_portion_exponents():
    x = _features((2, 1, 3, 4, 5))  # Lambda > 1: x (N, 1, C, H, W) against alpha (N, Lambda, C, 1, 1)
    alpha = torch.rand(2, 4, 3, 1, 1, generator=torch.Generator().manual_seed(3)) * 2 - 0.8
    _, grad_x, (grad_alpha,) = _assert_paths_agree(signed_power, x, [alpha])
    assert grad_x.shape == x.shape and grad_alpha.shape == alpha.shape


@BOTH_BACKENDS
def test_floor_and_floor_power_fused_equal_eager():
    x = _features((2, 3, 5, 6))
    beta = torch.tensor([100.0, 7.0, 1.0]).view(3, 1, 1)
    _assert_paths_agree(lambda x_, fused: scaled_floor(x_, beta, fused), x, [])
    alpha = torch.tensor([-0.6, 0.0, 1.3]).view(3, 1, 1)
    _assert_paths_agree(lambda x_, a, fused: floor_signed_power(x_, beta, a, fused), x, [alpha])


@BOTH_BACKENDS
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_inputs_agree_and_keep_their_dtype_gradient(dtype):
    # what autocast hands the map: a half-precision activation; the map computes in float32 on both paths
    x = _features((2, 3, 5, 6), dtype=dtype)
    alpha = torch.tensor([-0.5, 0.2, 1.0]).view(3, 1, 1)
    y, grad_x, _ = _assert_paths_agree(signed_power, x, [alpha])
    assert y.dtype == torch.float32 and grad_x.dtype == dtype


@BOTH_BACKENDS
def test_inference_path_is_plain_ops_and_equal():
    x = _features((2, 3, 5, 6))
    alpha = torch.tensor([-0.5, 0.2, 1.0]).view(3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(signed_power(x, alpha, fused=True), signed_power(x, alpha, fused=False), **TOL)
        assert signed_power(x, alpha).grad_fn is None


# ----------------------------------------------------------------------------------------------------- the layers
LAYERS = {
    'SFConv': lambda fused: SFConv(3, 4, 3, padding=1, beta=10.0, fused=fused),
    'PowConv': lambda fused: PowConv(3, 4, 3, padding=1, fused=fused),
    'PowConv-L4-ME': lambda fused: PowConv(3, 4, 3, padding=1, num_portions=4, memory_efficient=True, fused=fused),
    'SFPowConv-L2': lambda fused: SFPowConv(3, 4, 3, padding=1, beta=10.0, num_portions=2, fused=fused),
    'HPowConv': lambda fused: HPowConv(3, 4, 3, padding=1, fused=fused),
}


def _layer_pair(name):
    torch.manual_seed(0)
    eager = LAYERS[name](False)
    with torch.no_grad():
        for pname, p in eager.named_parameters():
            if 'alpha' in pname:
                p.uniform_(-0.6, 0.8)
            if 'hyper_fc2.weight' in pname:
                p.normal_(0, 0.3)
    fused = LAYERS[name](True)
    fused.load_state_dict(eager.state_dict())
    return eager, fused


def _layer_step(layer, x, autocast=False):
    x = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = layer(x)
    out.float().square().sum().backward()
    return out.detach().float(), x.grad, {n: p.grad.clone() for n, p in layer.named_parameters()}


@BOTH_BACKENDS
@pytest.mark.parametrize('name', sorted(LAYERS))
def test_layers_fused_equal_eager(name):
    eager, fused = _layer_pair(name)
    x = _features((2, 3, 6, 7)).clamp(-3, 3)
    ref, got = _layer_step(eager, x), _layer_step(fused, x)
    torch.testing.assert_close(got[0], ref[0], **TOL)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-4, atol=1e-4)
    for key in ref[2]:
        torch.testing.assert_close(got[2][key], ref[2][key], rtol=1e-4, atol=1e-4 * max(1, ref[2][key].abs().max()))


@BOTH_BACKENDS
def test_layer_under_bfloat16_autocast_fused_equals_eager():
    eager, fused = _layer_pair('PowConv')
    x = _features((2, 3, 6, 7)).clamp(-3, 3)
    ref, got = _layer_step(eager, x, autocast=True), _layer_step(fused, x, autocast=True)
    # the conv runs in bfloat16 on both paths; the maps agree in float32, so the outputs agree to bfloat16 rounding
    torch.testing.assert_close(got[0], ref[0], rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-2, atol=1e-2)


def test_torch_compile_of_a_model_with_the_layers_trains_like_eager():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), PowConv(4, 4, 3, padding=1),
                          nn.ReLU(), SFPowConv(4, 2, 1, beta=10.0, memory_efficient=True))
    with torch.no_grad():
        model[2].alpha.uniform_(-0.6, 0.8)
        model[4].alpha.uniform_(-0.6, 0.8)
    x = torch.randn(2, 3, 6, 6)
    out_e = model(x)
    out_e.square().sum().backward()
    grads_e = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model)
    out_c = compiled(x)
    out_c.square().sum().backward()
    torch.testing.assert_close(out_c, out_e, **TOL)
    for g_c, p, g_e in zip([p.grad for p in model.parameters()], model.parameters(), grads_e):
        torch.testing.assert_close(g_c, g_e, rtol=1e-4, atol=1e-4 * max(1.0, float(g_e.abs().max())))
    # the ReLU before PowConv makes exact zeros: eq. 6's x == 0 rule kept inside the compiled graph (finite grads)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# --------------------------------------------------------------------------------------------- choosing the path
def test_setting_resolution(monkeypatch):
    cpu, cuda, mps = torch.device('cpu'), torch.device('cuda'), torch.device('mps')
    monkeypatch.delenv(path.ENV_VAR, raising=False)
    assert [path.choose(None, d) for d in (cpu, cuda, mps)] == ['kernel', 'compiled', 'eager']  # auto
    assert [path.choose(True, d) for d in (cpu, cuda, mps)] == ['kernel', 'compiled', 'compiled']
    assert path.choose(False, cuda) == 'eager'
    monkeypatch.setenv(path.ENV_VAR, 'off')
    assert path.choose(None, cuda) == 'eager' and path.choose(None, cpu) == 'eager'
    assert path.choose(True, cuda) == 'compiled'  # the argument wins over the environment
    monkeypatch.setenv(path.ENV_VAR, 'fused')
    assert path.choose(None, cpu) == 'kernel' and path.choose(False, cpu) == 'eager'
    monkeypatch.setenv(path.ENV_VAR, 'compiled')
    assert path.choose(None, cpu) == 'compiled' and path.choose(True, cpu) == 'compiled'
    assert path.choose(False, cpu) == 'eager'
    monkeypatch.setenv(path.ENV_VAR, 'maybe')
    with pytest.raises(ValueError, match=r"FEATQUANT_FUSED_MAPS='maybe': accepted are auto"):
        path.choose(None, cpu)


def test_layer_rejects_a_bad_fused_setting():
    with pytest.raises(TypeError, match='fused must be None'):
        PowConv(3, 4, 3, fused='yes')


def test_environment_variable_selects_the_path(monkeypatch):
    x = _features((2, 3, 5, 6)).requires_grad_()
    alpha = torch.zeros(3, 1, 1)
    monkeypatch.setenv(path.ENV_VAR, 'compiled')
    assert type(signed_power(x, alpha).grad_fn).__name__.startswith('FusedSignedPower')
    monkeypatch.setenv(path.ENV_VAR, '0')
    assert type(signed_power(x, alpha).grad_fn).__name__.startswith('_SignedPower')
    if any(shutil.which(cc) for cc in ('c++', 'g++')):
        monkeypatch.setenv(path.ENV_VAR, '1')
        assert 'NativePower' in signed_power(x, alpha).grad_fn.name()  # the CPU's fused maps: the C++ kernel
