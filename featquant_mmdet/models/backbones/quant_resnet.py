"""mmdet's ResNet with feature quantization in front of chosen convolutions (Section 3.2 of the paper).

Not a copy of ResNet: the network is built by ``mmdet.models.ResNet`` and its ``nn.Conv2d`` modules are then
swapped for a quantizing conv (``SFConv``, ``PowConv``, ``HPowConv``, ``SFPowConv``, ``DoReFaConv``, ...) by
``featquant_mmdet.layers.convert.convert_convs``, which keeps geometry and weights. The paper's placements:

- ResNet-18, every convolution:       ``quant=dict(conv_cfg=dict(type='PowConv'))``
- ResNet-50, only before the 3x3 convs: ``quant=dict(conv_cfg=dict(type='PowConv'), kernel_size=3)``
"""
from typing import Optional

from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS

from featquant_mmdet.layers.convert import convert_convs

QUANT_KEYS = ('conv_cfg', 'include', 'exclude', 'kernel_size')


@MODELS.register_module()
class QuantResNet(ResNet):
    """``ResNet(**kwargs)`` whose selected convs quantize their input: ``U_d = sum_c W_cd * q(X_c)``.

    Args:
        quant: ``dict(conv_cfg=..., include=None, exclude=None, kernel_size=None)``, the arguments of
            ``convert_convs``: ``conv_cfg`` the quantizing conv's config, ``include``/``exclude`` fnmatch patterns
            on module names (e.g. ``'layer4.*'``), ``kernel_size`` keeps only convs of that kernel (3: the 3x3
            convs). ``None``: a plain ResNet.
        **kwargs: mmdet ``ResNet`` arguments (depth, out_indices, frozen_stages, norm_cfg, init_cfg, ...).

    Attributes:
        quantized_convs: names of the converted convs, in module order.
    """

    def __init__(self, *args, quant: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.quantized_convs = []
        if quant is None:
            return
        if not isinstance(quant, dict) or 'conv_cfg' not in quant:
            raise ValueError(f'quant must be a dict with a conv_cfg (and optional include, exclude, kernel_size), '
                             f'got {quant!r}')
        unknown = sorted(set(quant) - set(QUANT_KEYS))
        if unknown:
            raise ValueError(f'unknown quant keys {unknown}; accepted: {list(QUANT_KEYS)}')
        self.quantized_convs = convert_convs(self, **quant)
        # the swapped-in convs are new parameters: freeze the frozen stages again
        self._freeze_stages()
