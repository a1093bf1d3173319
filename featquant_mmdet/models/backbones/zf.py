"""ZF net (Zeiler & Fergus) as used by py-faster-rcnn, with optional quantizing convolutions on any of its convs.

Layers (names as in py-faster-rcnn's ZF prototxt; ``(kernel, stride, pad)``)::

    conv1  96 ch (7, 2, 3) -> ReLU -> norm1 (LRN) -> pool1 max (3, 2, 1)     stage 0, stride 4
    conv2 256 ch (5, 2, 2) -> ReLU -> norm2 (LRN) -> pool2 max (3, 2, 1)     stage 1, stride 16
    conv3 384 ch (3, 1, 1) -> ReLU                                           stage 2, stride 16
    conv4 384 ch (3, 1, 1) -> ReLU                                           stage 3, stride 16
    conv5 256 ch (3, 1, 1) -> ReLU                                           stage 4, stride 16

The LRNs are Caffe's WITHIN_CHANNEL mode (:class:`~featquant_mmdet.layers.lrn.WithinChannelLRN`) and the pools use
Caffe's ceil rounding of the output size, so an ``H x W`` image gives the same conv5 map as py-faster-rcnn
(e.g. 39 x 64 for 600 x 1000).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.model.weight_init import kaiming_init
from torch.nn.modules.batchnorm import _BatchNorm

from ...layers.lrn import WithinChannelLRN
from .quant import quantize_convs

# (out_channels, kernel_size, stride, padding) of conv1..conv5
ZF_CONVS = ((96, 7, 2, 3), (256, 5, 2, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))
CONV_NAMES = tuple(f'conv{i + 1}' for i in range(len(ZF_CONVS)))
NUM_POOLED_STAGES = 2  # conv1 and conv2 are followed by LRN and max pooling


@MODELS.register_module()
class ZF(BaseModule):
    """ZF backbone of py-faster-rcnn (total stride 16), optionally with quantizing convs such as POW.

    Args:
        in_channels: channels of the input image.
        out_indices: stages whose outputs are returned (0..4 = after pool1, pool2, conv3, conv4, conv5 + ReLU).
        frozen_stages: conv1..conv{frozen_stages} are frozen (no gradient, eval mode); -1 or 0 freezes nothing.
        norm_eval: keep BatchNorm layers (if a quantizing conv brings any) in eval mode while training.
        quant: ``dict(conv_cfg=dict(type='PowConv', ...), include=('conv3', 'conv4', 'conv5'))``: the convs that
            become quantizing convs (any registered conv type: SFConv, PowConv, HPowConv, SFPowConv, DoReFaConv),
            converted after the plain network is built, as :class:`QuantResNet` does (:mod:`.quant`); the others
            stay ``nn.Conv2d``. ZF-POW-1 is the example above.
        init_cfg: None for Kaiming (fan-out, ReLU) initialisation of the convs, as for training from scratch; or
            an mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` to load
            the backbone of a classifier checkpoint.
    """

    out_channels_of_stage = tuple(c[0] for c in ZF_CONVS)

    def __init__(self,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (4, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 quant: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        num_stages = len(ZF_CONVS)
        out_indices = tuple(out_indices)
        if not out_indices or any(not isinstance(i, int) or not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f'ZF out_indices must be stage indices in 0..{num_stages - 1}, got {out_indices!r}')
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'ZF frozen_stages must be an int in -1..{num_stages}, got {frozen_stages!r}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        channels = in_channels
        for name, (out_channels, kernel_size, stride, padding) in zip(CONV_NAMES, ZF_CONVS):
            self.add_module(name, nn.Conv2d(channels, out_channels, kernel_size, stride=stride, padding=padding))
            channels = out_channels
        self.relu = nn.ReLU(inplace=True)
        for i in range(1, NUM_POOLED_STAGES + 1):
            self.add_module(f'norm{i}', WithinChannelLRN(local_size=3, alpha=5e-5, beta=0.75))
            # ceil_mode: Caffe rounds pooled sizes up
            self.add_module(f'pool{i}', nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True))
        # the plain convs drew their weights from the global generator as quantizing convs built directly would;
        # the conversion copies them and draws nothing from it, so a seeded run initialises as before
        with torch.random.fork_rng(devices=[]):
            self.quantized_convs = quantize_convs(self, quant)
        self._freeze_stages()

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map."""
        return tuple(self.out_channels_of_stage[i] for i in self.out_indices)

    def _freeze_stages(self) -> None:
        for name in CONV_NAMES[:max(self.frozen_stages, 0)]:
            conv = getattr(self, name)
            conv.eval()
            for param in conv.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        if self.init_cfg is not None:
            super().init_weights()
            return
        # default without a config, so that `init_cfg.type=Pretrained` can be set with --cfg-options alone
        for name in CONV_NAMES:
            kaiming_init(getattr(self, name), mode='fan_out', nonlinearity='relu')
        self._is_init = True

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for stage, name in enumerate(CONV_NAMES):
            x = self.relu(getattr(self, name)(x))
            if stage < NUM_POOLED_STAGES:
                x = getattr(self, f'pool{stage + 1}')(getattr(self, f'norm{stage + 1}')(x))
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
