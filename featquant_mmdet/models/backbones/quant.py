"""The backbones' ``quant`` argument: which convs of the built (plain) backbone become quantizing convs.

``quant=dict(conv_cfg=..., include=None, exclude=None, kernel_size=None)`` holds the arguments of
:func:`featquant_mmdet.layers.convert.convert_convs`: ``conv_cfg`` the quantizing conv's config (``SFConv``,
``PowConv``, ``HPowConv``, ``SFPowConv``, ``DoReFaConv``, ...), ``include`` / ``exclude`` fnmatch patterns on module
names (ZF: ``('conv3', 'conv4', 'conv5')``; ResNet: ``'layer4.*'``), ``kernel_size`` keeps only convs of that kernel
(3: ResNet's 3x3 convs). ``None``: the plain backbone. One way for every backbone, QuantResNet's and ZF's alike.
"""
from typing import List, Optional

from torch import nn

from ...layers.convert import convert_convs

QUANT_KEYS = ('conv_cfg', 'include', 'exclude', 'kernel_size')


def quantize_convs(backbone: nn.Module, quant: Optional[dict]) -> List[str]:
    """Convert the convs of ``backbone`` that ``quant`` selects (in place); returns their names."""
    if quant is None:
        return []
    if not isinstance(quant, dict) or 'conv_cfg' not in quant:
        raise ValueError(f'quant must be a dict with a conv_cfg (and optional include, exclude, kernel_size), '
                         f'got {quant!r}')
    unknown = sorted(set(quant) - set(QUANT_KEYS))
    if unknown:
        hint = (" (ZF's former quant.layers is quant.include, e.g. include=('conv3', 'conv4', 'conv5'))"
                if 'layers' in unknown else '')
        raise ValueError(f'unknown quant keys {unknown}; accepted: {list(QUANT_KEYS)}{hint}')
    return convert_convs(backbone, **quant)
