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

from .quant import quantize_convs


@MODELS.register_module()
class QuantResNet(ResNet):
    """``ResNet(**kwargs)`` whose selected convs quantize their input: ``U_d = sum_c W_cd * q(X_c)``.

    Args:
        quant: ``dict(conv_cfg=..., include=None, exclude=None, kernel_size=None)``, the arguments of
            ``convert_convs`` (:mod:`.quant`): ``include``/``exclude`` fnmatch patterns on module names (e.g.
            ``'layer4.*'``), ``kernel_size`` keeps only convs of that kernel (3: the 3x3 convs). ``None``: a plain
            ResNet.
        **kwargs: mmdet ``ResNet`` arguments (depth, out_indices, frozen_stages, norm_cfg, init_cfg, ...).

    Attributes:
        quantized_convs: names of the converted convs, in module order.
    """

    def __init__(self, *args, quant: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.quantized_convs = quantize_convs(self, quant)
        if self.quantized_convs:  # the swapped-in convs are new parameters: freeze the frozen stages again
            self._freeze_stages()
