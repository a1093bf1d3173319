"""DoReFa-Net convolution (Zhou et al. 2016): k-bit weights, inputs and output gradients.

``DoReFaConv`` is an ``nn.Conv2d`` (same constructor, plus ``w_bits``, ``a_bits``, ``g_bits``) computing::

    y = conv(q_A(x), q_W(w)) + b,      and in the backward pass   dL/dy  <-  f_G(dL/dy)

with the quantizers of :mod:`featquant_mmdet.ops.dorefa`. The paper's reference setting is
``(W, A, G) = (1, 4, 32)``: binary weights (``sign(w) * mean|w|``), 4-bit inputs clipped to ``[0, 1]``, full
precision gradients. The bias is not quantized.

Which layers stay full precision
--------------------------------
As in DoReFa-Net, the first convolution (it sees the normalised image, which the ``[0, 1]`` activation clip would
destroy) and the last fully-connected layer (an ``nn.Linear``, never touched by conv conversion) keep full
precision; every other convolution is a ``DoReFaConv``. A config chooses the layers through the conversion utility,
which swaps matching ``nn.Conv2d`` modules in any model and copies their weights::

    from featquant_mmdet.layers.convert import convert_convs
    convert_convs(model, dict(type='DoReFaConv', w_bits=1, a_bits=4, g_bits=32),
                  include=['backbone.layer*'])            # ResNet: every conv of the residual stages

(``include``/``exclude`` are fnmatch patterns on module names; ``kernel_size=3`` restricts to 3x3 convs). For
ResNet, ``backbone.layer*`` covers all residual-stage convs including the 1x1 downsample shortcuts, leaving the stem
``backbone.conv1`` in full precision; for the ZF detector ``backbone.conv2``..``conv5`` leaves ``conv1``.
"""
import torch.nn as nn
from torch import Tensor

from ..ops.dorefa import check_bits, quantize_activation, quantize_gradient, quantize_weight
from .registry import register_in_mmengine


class DoReFaConv(nn.Conv2d):
    """``nn.Conv2d`` with DoReFa-quantized weights (``w_bits``), inputs (``a_bits``) and output gradients (``g_bits``).

    Each bit width is an integer in 1..16, or 32 for full precision (that quantizer becomes the identity).
    The full-precision weight is what is stored and trained; the quantized weight is recomputed every forward.
    """

    def __init__(self, *args, w_bits: int = 1, a_bits: int = 4, g_bits: int = 32, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_bits = check_bits(w_bits, 'w_bits')
        self.a_bits = check_bits(a_bits, 'a_bits')
        self.g_bits = check_bits(g_bits, 'g_bits')

    def quantized_weight(self) -> Tensor:
        """The weight the convolution actually uses (straight-through gradient to ``self.weight``)."""
        return quantize_weight(self.weight, self.w_bits)

    def forward(self, x: Tensor) -> Tensor:
        out = self._conv_forward(quantize_activation(x, self.a_bits), self.quantized_weight(), self.bias)
        return quantize_gradient(out, self.g_bits)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, w_bits={self.w_bits}, a_bits={self.a_bits}, g_bits={self.g_bits}'


register_in_mmengine(DoReFaConv)
