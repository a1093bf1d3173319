"""Registration of the plugin's components in mmdet's registries, run once mmdet is imported.

``import featquant_mmdet`` registers everything a config needs. The quantizing convs go into mmengine's root
``MODELS`` at once (:mod:`featquant_mmdet.layers` needs torch and mmengine only). Everything else subclasses or
registers into mmdet, so importing it would make ``import featquant_mmdet.ops`` (which runs this package's
``__init__`` first) import mmdet too. Those packages are therefore imported by :func:`register_all_modules` when
mmdet itself is imported -- at once if it already is, else right after ``import mmdet`` finishes, which every
config that uses them goes through (mmengine's registries defer their own imports the same way, through
``Registry(locations=...)``). The packages below are the whole list: each one's ``__init__`` imports the modules
that register components (the distortion transforms are a module of their own, so that ``distortions`` stays
importable with NumPy and OpenCV alone). ``featquant_mmdet.analysis`` is not registered: it is opt-in.
"""
import importlib
import importlib.abc
import importlib.util
import sys

REGISTERING_MODULES = ('featquant_mmdet.models', 'featquant_mmdet.datasets', 'featquant_mmdet.distortions.transforms',
                       'featquant_mmdet.evaluation', 'featquant_mmdet.engine')


def register_all_modules() -> None:
    """Import the modules that register the plugin's components in mmdet's registries (idempotent)."""
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


class _RegisterAfterMmdet(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``mmdet`` is about to be imported, it hands out the normal spec with a loader
    that runs :func:`register_all_modules` right after mmdet's ``__init__``, then leaves ``sys.meta_path``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'mmdet':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            register_all_modules()

        spec.loader.exec_module = exec_then_register
        return spec


def register_when_mmdet_loads() -> None:
    """:func:`register_all_modules` now if mmdet is imported, else as soon as it is."""
    if 'mmdet' in sys.modules:
        register_all_modules()
    elif not any(isinstance(finder, _RegisterAfterMmdet) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterMmdet())
