"""featquant_mmdet: feature quantization (SF, POW, HPOW) for distortion-robust detectors and classifiers.

An MMDetection 3.x plugin. Importing the package registers every component (conv layers in mmengine's
``MODELS``; backbones, detectors' helpers, datasets, transforms, metrics and hooks in mmdet's registries), so any
config can use them with::

    custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
"""
import importlib
import pkgutil

from .compat import patch_mmengine_checkpoint_loading, patch_mmengine_cpu_distributed

__version__ = '0.1.0'

patch_mmengine_checkpoint_loading()
patch_mmengine_cpu_distributed()


def _register_all_modules() -> None:
    """Import every submodule so that their ``@register_module`` decorators run.

    Discovery instead of a hand-kept import list: a new module is registered by existing, and a module that fails
    to import fails ``import featquant_mmdet`` loudly instead of silently missing from the registries.
    """
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + '.'):
        importlib.import_module(info.name)


_register_all_modules()
