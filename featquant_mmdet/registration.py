"""Registration of the plugin's components in mmdet's registries: importing the modules that define them.

``import featquant_mmdet`` calls :func:`register_all_modules` where mmdet is installed, as mmdet's own projects do
by importing their packages; the quantizing convs register in mmengine's root ``MODELS`` as soon as
:mod:`featquant_mmdet.layers` is imported (torch and mmengine only). The packages below are the whole list: each
one's ``__init__`` imports the modules that register components (the distortion transforms are a module of their
own, so that ``distortions`` stays importable with NumPy and OpenCV alone). ``featquant_mmdet.analysis`` is not
registered: it is opt-in.

Like ``mmdet.utils.register_all_modules``, the function can also make a default scope current (``'mmdet'``: the
plugin's types live in mmdet's registries), which code that builds models outside a Runner needs::

    import featquant_mmdet
    featquant_mmdet.register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)      # mmdet.registry.MODELS
"""
import importlib

REGISTERING_MODULES = ('featquant_mmdet.models', 'featquant_mmdet.datasets', 'featquant_mmdet.distortions.transforms',
                       'featquant_mmdet.evaluation', 'featquant_mmdet.engine')


def register_all_modules(init_default_scope: bool = False) -> None:
    """Register mmdet's components and the plugin's in mmdet's registries (idempotent).

    Args:
        init_default_scope: also make ``'mmdet'`` the current default scope, as
            ``mmdet.utils.register_all_modules(init_default_scope=True)`` does.
    """
    from mmdet.utils import register_all_modules as register_mmdet_modules
    register_mmdet_modules(init_default_scope=init_default_scope)
    for name in REGISTERING_MODULES:
        importlib.import_module(name)
