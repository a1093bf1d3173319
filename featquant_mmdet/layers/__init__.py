"""Layers built on ``ops``: quantizing convolutions, normalisation, and the conversion utility.

Needs only torch; the conv layers are registered in mmengine's ``MODELS`` when mmengine is installed
(:mod:`.registry`), and :func:`.convert.convert_convs` needs mmcv when called.
"""
from .convert import convert_convs
from .dorefa_conv import DoReFaConv
from .lrn import WithinChannelLRN, within_channel_lrn
from .quant_conv import HPowConv, PowConv, QuantConv2d, SFConv, SFPowConv

__all__ = [
    'DoReFaConv', 'HPowConv', 'PowConv', 'QuantConv2d', 'SFConv', 'SFPowConv', 'WithinChannelLRN', 'convert_convs',
    'within_channel_lrn'
]
