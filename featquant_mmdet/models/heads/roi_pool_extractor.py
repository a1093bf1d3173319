"""Caffe's RoI max pooling on every device, for the Fast R-CNN head of py-faster-rcnn.

mmcv's ``RoIPool`` has only a CUDA kernel, so ``roi_layer=dict(type='RoIPool', ...)`` cannot run on a CPU.
torchvision's ``roi_pool`` is the same Caffe ROIPooling (box corners rounded to feature cells, width
``x2 - x1 + 1`` cells, bin ``k`` covering ``[floor(k * w / s), ceil((k + 1) * w / s))``, max over each bin, empty
bins 0) with CPU and CUDA kernels; :class:`PortableSingleRoIExtractor` uses it for ``type='RoIPool'``.
"""
from typing import List, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS


class RoIPool(nn.Module):
    """Drop-in for ``mmcv.ops.RoIPool`` (same arguments) computed by ``torchvision.ops.roi_pool``.

    Args:
        output_size: pooled height and width (py-faster-rcnn's ZF: 6).
        spatial_scale: feature-map cells per image pixel (1/16 for ZF's conv5).
    """

    def __init__(self, output_size: Union[int, Tuple[int, int]], spatial_scale: float = 1.0):
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """``input`` (N, C, H, W), ``rois`` (K, 5) as (batch index, x1, y1, x2, y2) -> (K, C, *output_size)."""
        from torchvision.ops import roi_pool
        return roi_pool(input, rois.to(input.dtype), self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f'output_size={self.output_size}, spatial_scale={self.spatial_scale}'


@MODELS.register_module()
class PortableSingleRoIExtractor(SingleRoIExtractor):
    """mmdet's ``SingleRoIExtractor`` whose ``roi_layer=dict(type='RoIPool', ...)`` runs on CPU and GPU.

    Any other ``roi_layer`` type is taken from ``mmcv.ops`` as in mmdet.
    """

    def build_roi_layers(self, layer_cfg: dict, featmap_strides: List[int]) -> nn.ModuleList:
        if layer_cfg.get('type') == 'RoIPool':
            layer_cfg = dict(layer_cfg, type=RoIPool)
        return super().build_roi_layers(layer_cfg, featmap_strides)
