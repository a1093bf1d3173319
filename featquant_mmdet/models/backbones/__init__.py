"""Backbones: ZF (py-faster-rcnn) and ResNet with quantizing convs."""
from .quant_resnet import QuantResNet
from .zf import ZF

__all__ = ['QuantResNet', 'ZF']
