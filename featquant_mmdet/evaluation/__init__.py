"""Metrics (registered in mmdet's registries on import), the common-corruption transform and the robustness sweep
(``robustness``, imported where used)."""
from .accuracy import Accuracy
from .corruptions import ImageCorruption

__all__ = ['Accuracy', 'ImageCorruption']
