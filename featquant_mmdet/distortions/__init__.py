"""Image distortions: pure functions (``functional``), the strength table (``levels``) and thin pipeline transforms
(``transforms``, registered in mmdet's ``TRANSFORMS`` by :mod:`featquant_mmdet.registration`).

The package imports with NumPy and OpenCV alone: ``transforms``, ``inject`` and ``occlusion`` (which need mmcv,
mmdet or torch) are imported where used.
"""
from . import functional, levels

__all__ = ['functional', 'levels']
