"""Registration of the layers in mmengine's ``MODELS``, done only where mmengine is installed.

The layers are plain ``torch.nn`` modules; mmengine is needed only to build them from configs
(``build_conv_layer(dict(type='PowConv'), ...)``). Each layer module calls :func:`register_in_mmengine` at its
bottom, so importing it registers its layers when mmengine is there and leaves a torch-only machine untouched.
"""
from typing import Type


def register_in_mmengine(*classes: Type) -> bool:
    """Register ``classes`` (under their class names) in ``mmengine.registry.MODELS``; False without mmengine.

    Only a missing mmengine is tolerated: any other error while importing it is raised.
    """
    try:
        from mmengine.registry import MODELS
    except ModuleNotFoundError as err:
        if err.name != 'mmengine':
            raise
        return False
    for cls in classes:
        MODELS.register_module(module=cls)
    return True
