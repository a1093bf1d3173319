"""featquant_mmdet: feature quantization (SF, POW, HPOW) for distortion-robust detectors and classifiers.

An MMDetection 3.x plugin. Importing the package registers every component a config needs, the plain way: the
quantizing convs in mmengine's ``MODELS``, then backbones, heads, datasets, transforms, metrics and hooks in mmdet's
registries (:func:`register_all_modules`, which can also be called explicitly), so any config can use them with::

    custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

It also applies the plugin's few patches of mmengine (:mod:`featquant_mmdet.compat`: each says what it fixes and
for which versions; ``FEATQUANT_NO_PATCHES=1`` turns them all off).

Layers, bottom to top: a module imports from its own layer and those below it, never from one above (the table
is checked by tests/test_foundation.py):

    ops, layers                  torch only: they import and run where OpenMMLab is not installed (this file then
                                 imports nothing else)
    compat, fileio, malloc, package_configs, version_check, stats, distortions.functional, .levels, .convolution
    loading                      configs, models and runners (mmengine, mmdet), for every layer above
    models, datasets, distortions  the registered components
    evaluation                   metrics, corruptions, the robustness sweep
    engine.hooks, engine.reproducibility  the registered hooks
    analysis                     the paper's analyses (opt-in: not imported here)
    engine, registration         the tools' command lines, the stage runner and studies (they use every layer)
"""
from . import layers  # noqa: F401  (quantizing convs; registered in mmengine's MODELS where mmengine is installed)
from .registration import register_all_modules

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

    from .compat import apply_patches

    apply_patches()  # before any config is read: `_base_ = 'featquant_mmdet::...'` needs one of them
    register_all_modules()
