"""convert_convs: pattern/kernel rules, weights carried over, any registered conv type, clear errors."""
import pytest
import torch
import torch.nn as nn

import featquant_mmdet  # noqa: F401  (registers every conv type, DoReFaConv included)
from featquant_mmdet.layers.convert import convert_convs
from featquant_mmdet.layers.quant_conv import PowConv, QuantConv2d


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def small_net():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module('stem', nn.Conv2d(3, 8, 3, padding=1))
    net.add_module('relu', nn.ReLU())
    block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 1))
    net.add_module('block', block)
    net.add_module('head', nn.Conv2d(8, 4, 1, stride=2))
    return net


def test_converts_matching_convs_copying_geometry_weights_and_modes():
    net = small_net()
    net.block[0].weight.requires_grad_(False)  # a frozen layer stays frozen
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 3, 8, 8)
    want = net(x)
    converted = convert_convs(net, dict(type='PowConv'), include=['block.*', 'head'])
    assert converted == ['block.0', 'block.2', 'head']
    assert type(net.stem) is nn.Conv2d and all(isinstance(net.get_submodule(n), PowConv) for n in converted)
    assert net.head.stride == (2, 2) and net.block[0].bias is None and not net.block[0].training
    assert not net.block[0].weight.requires_grad and net.block[0].alpha.requires_grad
    for k, v in before.items():
        assert torch.equal(net.state_dict()[k], v), k
    torch.testing.assert_close(net(x), want)  # alpha = 0 at init: identical function


def test_kernel_size_rule_picks_only_the_3x3_convs_of_mmdet_resnet50():
    from mmdet.models.backbones import ResNet
    resnet = ResNet(depth=50, base_channels=4, num_stages=2, strides=(1, 2), dilations=(1, 1),
                    out_indices=(1, ))
    converted = convert_convs(resnet, dict(type='SFConv', beta=100.0), kernel_size=3)
    assert converted == ['layer1.0.conv2', 'layer1.1.conv2', 'layer1.2.conv2', 'layer2.0.conv2', 'layer2.1.conv2',
                         'layer2.2.conv2', 'layer2.3.conv2']
    assert type(resnet.conv1) is nn.Conv2d  # the 7x7 stem is left alone
    assert resnet(torch.rand(1, 3, 32, 32))[0].shape == (1, 32, 4, 4)


@pytest.mark.parametrize('conv_type', ['SFConv', 'PowConv', 'HPowConv', 'SFPowConv', 'DoReFaConv'])
def test_any_registered_conv_type_works_and_the_model_still_trains(conv_type):
    net = small_net()
    converted = convert_convs(net, dict(type=conv_type), exclude=['stem'])
    assert converted == ['block.0', 'block.2', 'head']
    assert type(net.block[0]).__name__ == conv_type
    net(torch.rand(1, 3, 8, 8)).square().mean().backward()
    assert all(p.grad is not None for p in net.block[0].parameters())


def test_already_converted_convs_are_not_candidates_again():
    net = small_net()
    convert_convs(net, dict(type='PowConv'))
    with pytest.raises(ValueError, match='has no plain nn.Conv2d'):
        convert_convs(net, dict(type='SFConv'))
    assert sum(isinstance(m, QuantConv2d) for m in net.modules()) == 4


def test_pattern_that_matches_nothing_is_an_error_listing_the_candidates():
    net = small_net()
    with pytest.raises(ValueError, match=r"pattern 'blok.\*' matches no plain nn.Conv2d; the candidates are "
                                         r'\[stem, block.0, block.2, head\]'):
        convert_convs(net, dict(type='PowConv'), include=['blok.*'])
    with pytest.raises(ValueError, match="pattern 'tail'"):
        convert_convs(net, dict(type='PowConv'), exclude='tail')
    with pytest.raises(ValueError, match='select no conv'):
        convert_convs(net, dict(type='PowConv'), include=['head'], kernel_size=3)
    assert not any(isinstance(m, QuantConv2d) for m in net.modules())  # nothing half-converted


def test_bad_conv_cfg_and_rule_types():
    net = small_net()
    with pytest.raises(TypeError, match="conv_cfg must be a dict with a 'type'"):
        convert_convs(net, 'PowConv')
    with pytest.raises(KeyError, match='NoSuchConv'):
        convert_convs(net, dict(type='NoSuchConv'))
    with pytest.raises(TypeError, match='kernel_size must be an int'):
        convert_convs(net, dict(type='PowConv'), kernel_size='3x3')
    with pytest.raises(TypeError, match="unexpected keyword argument\\(s\\) \\['beta'\\]"):
        convert_convs(net, dict(type='PowConv', beta=3.0))
