"""DoReFa-Net baseline: quantizers (values and straight-through gradients), the conv layer, bad bit widths."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from featquant_mmdet.ops.dorefa import (quantize_activation, quantize_gradient, quantize_gradient_values,
                                        quantize_k, quantize_weight)


def test_quantize_k_values_and_straight_through_gradient():
    r = torch.tensor([0.0, 0.1, 0.2, 0.55, 0.9, 1.0], requires_grad=True)
    q = quantize_k(r, 2)  # 3 steps: round(3r) / 3 = round([0, .3, .6, 1.65, 2.7, 3]) / 3
    torch.testing.assert_close(q, torch.tensor([0, 0, 1, 2, 3, 3]) / 3.0)
    q.backward(torch.arange(1.0, 7.0))
    torch.testing.assert_close(r.grad, torch.arange(1.0, 7.0))  # identity gradient despite the rounding


def test_activation_quantizer_clips_to_unit_interval_and_passes_gradient_inside_only():
    x = torch.tensor([-0.7, 0.02, 0.31, 0.52, 0.97, 1.8], requires_grad=True)
    q = quantize_activation(x, 4)  # 15 steps: round(15 * clip(x, 0, 1)) / 15 = round([0, 0.3, 4.65, 7.8, 14.55, 15])
    torch.testing.assert_close(q, torch.tensor([0, 0, 5, 8, 15, 15]) / 15.0)
    q.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0]))
    full = torch.tensor([-0.7, 3.0])
    assert torch.equal(quantize_activation(full, 32), full)  # 32 bits: no clip, no rounding


def test_multi_bit_weight_quantizer_uses_tanh_normalisation():
    w = torch.tensor([-1.0, -0.2, 0.3, 1.0], requires_grad=True)
    # tanh(w) / (2 max|tanh w|) + 1/2 = [0, 0.3704, 0.6913, 1]; x3, rounded: [0, 1, 2, 3]; 2 * (./3) - 1:
    q = quantize_weight(w, 2)
    torch.testing.assert_close(q, torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    q.sum().backward()
    # straight-through rounding: the gradient is that of the unrounded map tanh(w) / max|tanh(w)|
    w_ref = w.detach().clone().requires_grad_(True)
    (torch.tanh(w_ref) / torch.tanh(w_ref).abs().max()).sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad)
    assert w.grad.abs().sum() > 0


def test_one_bit_weight_is_sign_times_mean_absolute_value_with_identity_gradient():
    w = torch.tensor([[-0.3, 0.0], [0.1, 0.5]], requires_grad=True)
    q = quantize_weight(w, 1)  # mean|w| = 0.9 / 4 = 0.225; sign(0) counts as +
    torch.testing.assert_close(q, torch.tensor([[-0.225, 0.225], [0.225, 0.225]]))
    q.backward(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    torch.testing.assert_close(w.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_gradient_quantizer_values_lie_on_the_grid_within_one_step_and_are_unbiased():
    torch.manual_seed(0)
    grad = torch.randn(3, 4, 5, 5)
    bits = 4
    levels = 2 ** bits - 1
    max_abs = grad.abs().amax(dim=(1, 2, 3), keepdim=True)  # per sample
    q = quantize_gradient_values(grad, bits)
    steps = (q / (2 * max_abs) + 0.5) * levels
    torch.testing.assert_close(steps, steps.round(), atol=1e-4, rtol=0)  # on the G-bit grid of each sample
    assert ((q - grad).abs() <= 2 * max_abs / levels + 1e-6).all()  # at most one step away
    assert not torch.equal(q, grad)
    # the uniform noise makes the rounding stochastic and unbiased (apart from the clip at +-max)
    mean = torch.stack([quantize_gradient_values(grad, bits) for _ in range(400)]).mean(0)
    assert (mean - grad).abs().max() < 0.25 * (2 * max_abs.max() / levels)
    assert torch.equal(quantize_gradient_values(grad, 32), grad)


def test_gradient_quantizer_is_identity_forward_and_quantizes_only_the_backward():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    upstream = torch.randn(2, 3, 4, 4)
    y = quantize_gradient(x, 2)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert not torch.allclose(x.grad, upstream)
    levels = 3
    max_abs = upstream.abs().amax(dim=(1, 2, 3), keepdim=True)
    steps = (x.grad / (2 * max_abs) + 0.5) * levels
    torch.testing.assert_close(steps, steps.round(), atol=1e-4, rtol=0)

    x.grad = None
    quantize_gradient(x, 32).backward(upstream)
    assert torch.equal(x.grad, upstream)


@pytest.mark.parametrize('bits', [0, -1, 17, 31, 64, 2.0, 4.5, True, '4', None])
def test_unsupported_bit_widths_raise_naming_the_accepted_ones(bits):
    with pytest.raises(ValueError, match=r'1\.\.16.*32'):
        quantize_weight(torch.ones(3), bits)
    with pytest.raises(ValueError, match='a_bits'):
        quantize_activation(torch.ones(3), bits)
    with pytest.raises(ValueError, match='g_bits'):
        quantize_gradient(torch.ones(3), bits)


@pytest.mark.parametrize('kwarg', ['w_bits', 'a_bits', 'g_bits'])
def test_doreFa_conv_rejects_bad_bit_widths_at_construction(kwarg):
    from featquant_mmdet.layers.dorefa_conv import DoReFaConv
    with pytest.raises(ValueError, match=kwarg):
        DoReFaConv(3, 4, 3, **{kwarg: 0})


def test_one_bit_conv_weight_takes_two_values_and_the_conv_computes_with_them():
    from mmcv.cnn import build_conv_layer
    torch.manual_seed(0)
    conv = build_conv_layer(dict(type='DoReFaConv', w_bits=1, a_bits=4, g_bits=32), 3, 8, 3, padding=1)
    assert type(conv).__name__ == 'DoReFaConv' and (conv.w_bits, conv.a_bits, conv.g_bits) == (1, 4, 32)
    wq = conv.quantized_weight()
    scale = conv.weight.abs().mean()
    values = torch.unique(wq)
    assert values.numel() == 2  # one binary layer, one scale
    torch.testing.assert_close(values, torch.stack([-scale, scale]).detach())

    x = torch.rand(2, 3, 9, 9) * 1.6 - 0.3  # partly outside [0, 1]: clipped first
    expected = F.conv2d(torch.round(x.clamp(0, 1) * 15) / 15, wq, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_conv_gradients_change_only_when_g_bits_below_32():
    from featquant_mmdet.layers.dorefa_conv import DoReFaConv
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    convs = {g: DoReFaConv(3, 4, 3, w_bits=2, a_bits=4, g_bits=g) for g in (32, 16, 4)}
    for conv in convs.values():
        conv.load_state_dict(convs[32].state_dict())
    outputs = {g: conv(x) for g, conv in convs.items()}
    for g in (16, 4):
        assert torch.equal(outputs[g], outputs[32])  # forward pass untouched
    upstream = torch.randn_like(outputs[32])
    for g in convs:
        outputs[g].backward(upstream)

    # G = 32 equals the gradient of the same computation with no gradient quantizer
    ref_weight = convs[32].weight.detach().clone().requires_grad_(True)
    F.conv2d(quantize_activation(x, 4), quantize_weight(ref_weight, 2), convs[32].bias.detach()).backward(upstream)
    torch.testing.assert_close(convs[32].weight.grad, ref_weight.grad)

    g32 = convs[32].weight.grad
    assert not torch.allclose(convs[4].weight.grad, g32)
    # more gradient bits, closer to full precision (cosine similarity)
    cos = {g: F.cosine_similarity(convs[g].weight.grad.flatten(), g32.flatten(), dim=0) for g in (16, 4)}
    assert cos[16] > 0.999 and cos[4] < cos[16]


def test_convert_convs_turns_a_model_into_dorefa_keeping_the_first_conv_full_precision():
    from featquant_mmdet.layers.convert import convert_convs
    from featquant_mmdet.layers.dorefa_conv import DoReFaConv
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module('conv1', nn.Conv2d(3, 8, 3, padding=1))
    model.add_module('relu1', nn.ReLU())
    model.add_module('conv2', nn.Conv2d(8, 8, 3, padding=1))
    model.add_module('relu2', nn.ReLU())
    model.add_module('conv3', nn.Conv2d(8, 4, 1))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_convs(model, dict(type='DoReFaConv', w_bits=1, a_bits=4, g_bits=32), include=['conv[23]'])
    assert sorted(converted) == ['conv2', 'conv3']
    assert type(model.conv1) is nn.Conv2d
    assert isinstance(model.conv2, DoReFaConv) and isinstance(model.conv3, DoReFaConv)
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k  # full-precision weights carried over
    assert torch.unique(model.conv2.quantized_weight()).numel() == 2
    out = model(torch.randn(1, 3, 6, 6))
    assert out.shape == (1, 4, 6, 6)
    with pytest.raises(ValueError):
        convert_convs(model, dict(type='DoReFaConv', w_bits=3), include=['conv1'], kernel_size=1)



# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize('config,full_precision_convs', [
    ('configs/pretrain/resnet18_dorefa_imagenet.py', ['backbone.conv1']),
    ('configs/pretrain/resnet50_dorefa_imagenet.py', ['backbone.conv1']),
    ('configs/faster_rcnn_zf_dorefa_voc.py', ['backbone.conv1', 'rpn_head.rpn_conv', 'rpn_head.rpn_cls',
                                               'rpn_head.rpn_reg']),
])
def test_dorefa_configs_quantize_all_but_the_first_conv_and_the_fcs(config, full_precision_convs, repo_root,
                                                                    mmdet_scope):
    from mmengine.config import Config

    from featquant_mmdet.layers.dorefa_conv import DoReFaConv
    from mmdet.registry import MODELS
    cfg = Config.fromfile(f'{repo_root}/{config}')
    model = MODELS.build(cfg.model)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    dorefa = {n for n, m in convs.items() if isinstance(m, DoReFaConv)}
    assert sorted(set(convs) - dorefa) == sorted(full_precision_convs)
    assert {(convs[n].w_bits, convs[n].a_bits, convs[n].g_bits) for n in dorefa} == {(1, 4, 32)}  # Table 2 note b
    assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear))  # fcs stay full precision
    for name in dorefa:  # binary: one magnitude per layer, both signs
        magnitude = convs[name].quantized_weight().detach().abs()
        assert torch.equal(magnitude, torch.full_like(magnitude, float(magnitude.flatten()[0]))), name
