"""featquant_mmdet: feature quantization (SF, POW, HPOW) for distortion-robust detectors and classifiers.

An MMDetection 3.x plugin. Importing the package registers every component a config needs (conv layers in
mmengine's ``MODELS``; backbones, heads, datasets, transforms, metrics and hooks in mmdet's registries as soon as
mmdet is imported: :mod:`featquant_mmdet.registration`), so any config can use them with::

    custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

The pure parts (``featquant_mmdet.ops``, ``featquant_mmdet.distortions.functional``) import without mmdet;
``featquant_mmdet.analysis`` is opt-in (not imported here).
"""
from . import layers  # noqa: F401  (quantizing convs, registered in mmengine's MODELS)
from .compat import patch_mmengine_checkpoint_loading
from .layers import dorefa_conv, quant_conv  # noqa: F401  (registered by their import, as long as layers' own
#                                                           __init__ does not import them)
from .registration import register_all_modules, register_when_mmdet_loads

__version__ = '0.1.0'
__all__ = ['register_all_modules', '__version__']

patch_mmengine_checkpoint_loading()
register_when_mmdet_loads()
