"""The quantizing convs on a CUDA device: same values and gradients as on the CPU, finite under autocast, and the
compiled (fused, the CUDA default) maps equal to the eager ones.

Skipped where no GPU is visible (CI has none); run on a GPU machine with ``pytest tests/test_layers_cuda.py``; needs
only torch (and pytest): no mmcv/mmdet/mmengine.
"""
import pytest
import torch

from featquant_mmdet.layers.dorefa_conv import DoReFaConv
from featquant_mmdet.layers.quant_conv import HPowConv, PowConv, SFConv, SFPowConv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')

LAYERS = {
    'SFConv': lambda: SFConv(16, 32, 3, padding=1, beta=100.0),
    'PowConv': lambda: PowConv(16, 32, 3, padding=1),
    'PowConv-L4': lambda: PowConv(16, 32, 3, padding=1, num_portions=4),
    'PowConv-ME': lambda: PowConv(16, 32, 3, padding=1, memory_efficient=True),
    'HPowConv': lambda: HPowConv(16, 32, 3, padding=1),
    'SFPowConv': lambda: SFPowConv(16, 32, 3, padding=1),
    'DoReFaConv': lambda: DoReFaConv(16, 32, 3, padding=1, w_bits=1, a_bits=4, g_bits=32),
}


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(2, 16, 12, 12, generator=g))  # ReLU features: half exact zeros
    x[0, 0, 0, :4] = torch.tensor([1e-30, 1e6, -1e-30, 0.0]).abs()
    return x, torch.randn(2, 32, 12, 12, generator=g)


def _step(layer, x, grad_out):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.backward(grad_out)
    grads = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    return out.detach(), x.grad.detach(), grads


@pytest.mark.parametrize('name', sorted(LAYERS))
def test_cuda_matches_cpu(name):
    torch.manual_seed(0)
    cpu = LAYERS[name]()
    if hasattr(cpu, 'fused'):
        cpu.fused = False  # the CPU reference is the eager path (no C++ kernel build on the GPU machine's clock)
    with torch.no_grad():  # non-trivial exponents so the power is not the identity
        for pname, p in cpu.named_parameters():
            if 'alpha' in pname:
                p.uniform_(-0.5, 0.5)
    gpu = LAYERS[name]().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x, g = _inputs()
    x[0, 0, 0, 1] = 10.0  # keep values where float32 on both devices agrees tightly
    out_c, gx_c, gp_c = _step(cpu, x, g)
    out_g, gx_g, gp_g = _step(gpu, x.cuda(), g.cuda())
    tol = dict(rtol=1e-3, atol=1e-3)
    if name in ('SFConv', 'SFPowConv'):
        # floor(beta x) may land on the other side of an integer on another device: compare with a looser bound
        tol = dict(rtol=1e-2, atol=5e-2)
    assert torch.allclose(out_g.cpu(), out_c, **tol)
    assert torch.allclose(gx_g.cpu(), gx_c, **tol)
    assert gp_c.keys() == gp_g.keys()
    for key in gp_c:
        assert torch.allclose(gp_g[key].cpu(), gp_c[key], rtol=1e-2, atol=1e-2), key


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', sorted(LAYERS))
def test_cuda_autocast_is_finite_and_close(name, dtype):
    torch.manual_seed(0)
    layer = LAYERS[name]().cuda()
    x, g = _inputs(1)
    if dtype == torch.float16:
        # float16 cannot hold 1e6 (max 65504): the conv itself would overflow, quantized or plain
        x = x.clamp(max=1e3)
    x, g = x.cuda(), g.cuda()
    ref, _, _ = _step(layer, x, g)
    layer.zero_grad()
    xx = x.clone().requires_grad_(True)
    with torch.autocast('cuda', dtype=dtype):
        out = layer(xx)
    out.float().backward(g)
    assert torch.isfinite(out).all()
    assert torch.isfinite(xx.grad).all()
    for pname, p in layer.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), pname
    scale = ref.abs().max().clamp_min(1.0)
    assert (out.float() - ref).abs().max() / scale < 0.05


@pytest.mark.parametrize('autocast', [None, torch.float16, torch.bfloat16], ids=['fp32', 'fp16', 'bf16'])
@pytest.mark.parametrize('name', sorted(set(LAYERS) - {'DoReFaConv'}))
def test_cuda_fused_maps_equal_eager_maps(name, autocast):
    """The compiled (Triton) maps, the CUDA default, against the eager reference on the same GPU."""
    torch.manual_seed(0)
    eager = LAYERS[name]()
    with torch.no_grad():
        for pname, p in eager.named_parameters():
            if 'alpha' in pname:
                p.uniform_(-0.5, 0.5)
    eager.fused = False
    fused = LAYERS[name]()
    fused.load_state_dict(eager.state_dict())
    fused.fused = True
    eager, fused = eager.cuda(), fused.cuda()
    x, g = _inputs(2)
    x = x.clamp(max=1e3).cuda()  # float16 autocast: the conv cannot hold 1e6
    results = []
    for layer in (eager, fused):
        xx = x.clone().requires_grad_(True)
        with torch.autocast('cuda', dtype=autocast or torch.float32, enabled=autocast is not None):
            out = layer(xx)
        out.float().backward(g.cuda())
        results.append((out.float(), xx.grad, {n: p.grad for n, p in layer.named_parameters()}))
    tol = dict(rtol=1e-4, atol=1e-4) if autocast is None else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(results[1][0], results[0][0], **tol)
    torch.testing.assert_close(results[1][1], results[0][1], **tol)
    for key, ref in results[0][2].items():
        scale = max(1.0, float(ref.abs().max()))
        torch.testing.assert_close(results[1][2][key], ref, rtol=tol['rtol'], atol=tol['atol'] * scale)


def test_cuda_default_is_the_fused_path(monkeypatch):
    monkeypatch.delenv('FEATQUANT_FUSED_MAPS', raising=False)
    layer = PowConv(16, 32, 3, padding=1).cuda()
    x = torch.rand(2, 16, 8, 8, device='cuda', requires_grad=True)
    assert type(layer.mapped_input(x).grad_fn).__name__.startswith('FusedSignedPower')
