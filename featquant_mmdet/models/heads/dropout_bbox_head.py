"""Fast R-CNN box head of py-faster-rcnn: fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> cls / reg.

mmdet's ``Shared2FCBBoxHead`` has the same two shared fcs but no dropout; this subclass adds py-faster-rcnn's
dropout (ratio 0.5, active in training only) and keeps mmdet's parameter names ``shared_fcs.0`` (fc6) and
``shared_fcs.1`` (fc7), so the fc6/fc7 of a classifier checkpoint can be loaded into it.
"""
from typing import Tuple

import torch
import torch.nn as nn
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS

from .cls_heads import rename_legacy_zf_fc_keys


@MODELS.register_module()
class DropoutShared2FCBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` with dropout after the ReLU of each shared fc.

    Args:
        dropout_ratio: probability of zeroing an activation after fc6 and after fc7 (py-faster-rcnn: 0.5).
        **kwargs: as for ``Shared2FCBBoxHead`` (``fc_out_channels``, ``roi_feat_size``, ``num_classes``, ...).
    """

    def __init__(self, dropout_ratio: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f'dropout_ratio must be in [0, 1), got {dropout_ratio!r}')
        if self.with_avg_pool:
            raise ValueError('DropoutShared2FCBBoxHead follows py-faster-rcnn, which flattens the pooled RoI '
                             'features into fc6: with_avg_pool must be False')
        self.dropout = nn.Dropout(p=dropout_ratio)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a ZF classifier checkpoint from before its fc6/fc7 were named shared_fcs.0/1, loaded with prefix='head.'
        rename_legacy_zf_fc_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """RoI features ``(num_rois, C, s, s)`` -> (cls_score ``(num_rois, num_classes + 1)``, bbox_pred)."""
        # Shared2FCBBoxHead has no shared convs and no branch-specific convs/fcs: only the shared fcs remain
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = self.dropout(self.relu(fc(x)))
        cls_score = self.fc_cls(x) if self.with_cls else None
        bbox_pred = self.fc_reg(x) if self.with_reg else None
        return cls_score, bbox_pred
