"""Heads: classifier heads, the RoI head's dropout bbox head and the portable RoI-pool extractor."""
from .cls_heads import LinearClsHead, ZFClsHead
from .dropout_bbox_head import DropoutShared2FCBBoxHead
from .roi_pool_extractor import PortableSingleRoIExtractor

__all__ = ['LinearClsHead', 'ZFClsHead', 'DropoutShared2FCBBoxHead', 'PortableSingleRoIExtractor']
