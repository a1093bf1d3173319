"""featquant_mmdet: feature quantization (SF, POW, HPOW) for distortion-robust detectors and classifiers.

An MMDetection 3.x plugin. Importing the package registers every component a config needs (conv layers in
mmengine's ``MODELS``; backbones, heads, datasets, transforms, metrics and hooks in mmdet's registries as soon as
mmdet is imported: :mod:`featquant_mmdet.registration`), so any config can use them with::

    custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

The pure parts (``featquant_mmdet.ops``, ``featquant_mmdet.layers``, ``featquant_mmdet.distortions.functional``)
import without mmdet, and ``ops``/``layers`` with torch alone (a GPU machine without OpenMMLab runs the layer tests
and benchmarks from a checkout); ``featquant_mmdet.analysis`` is opt-in (not imported here).
"""
from . import layers  # noqa: F401  (quantizing convs; registered in mmengine's MODELS where mmengine is installed)

__version__ = '0.1.0'
__all__ = ['register_all_modules', '__version__']

try:
    import mmengine  # noqa: F401
except ModuleNotFoundError as err:  # torch alone: ops and layers only
    if err.name != 'mmengine':
        raise
    HAS_OPENMMLAB = False
else:
    HAS_OPENMMLAB = True

if HAS_OPENMMLAB:
    from .version_check import check_dependency_versions

    check_dependency_versions()  # a clear error for an mmcv / mmdet / mmengine out of range, before mmdet is imported

    from .compat import patch_mmengine_checkpoint_loading, patch_mmengine_cpu_distributed
    from .package_configs import patch_mmengine_package_configs
    from .registration import register_all_modules, register_when_mmdet_loads

    patch_mmengine_checkpoint_loading()
    patch_mmengine_cpu_distributed()  # gloo and no device ids where there is no CUDA (tools/dist_*.sh on CPU)
    patch_mmengine_package_configs()  # `_base_ = 'featquant_mmdet::...'`
    register_when_mmdet_loads()
