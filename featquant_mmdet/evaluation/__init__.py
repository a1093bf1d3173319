"""Metrics (registered in mmdet's registries on import; the sweep's per-image recorders among them), the
common-corruption transform and the robustness sweep (``robustness``, imported where used)."""
from .accuracy import Accuracy
from .corruptions import ImageCorruption
from .per_image import PerImageAccuracy, PerImageVOC

__all__ = ['Accuracy', 'ImageCorruption', 'PerImageAccuracy', 'PerImageVOC']
