"""Swap chosen plain convolutions of a built model for any registered conv type, keeping geometry and weights.

::

    from featquant_mmdet.layers.convert import convert_convs
    convert_convs(resnet, dict(type='PowConv'), kernel_size=3)                  # ResNet-50 "+POW": 3x3 convs only
    convert_convs(zf, dict(type='SFConv', beta=100.), include=['conv[345]'])    # ZF conv3-conv5
    convert_convs(net, dict(type='DoReFaConv', w_bits=1, a_bits=4), include=['layer*'], exclude=['*downsample*'])

Rules: a module is a candidate when it is a *plain* 2-d convolution (``nn.Conv2d`` itself or mmcv's ``Conv2d``
wrapper; layers that already quantize are left alone). ``include`` (default: all) and ``exclude`` are fnmatch
patterns on the names of ``model.named_modules()``; ``kernel_size`` (an int ``k`` for k x k, or a pair) keeps only
convs of that kernel. Each pattern must match at least one candidate and the rules together must select at least
one conv, otherwise a ``ValueError`` lists the candidates: a typo must not silently leave a model unquantized.

Needs mmcv and mmengine (imported when called): the layers are built by ``mmcv.cnn.build_conv_layer``.
"""
from fnmatch import fnmatchcase
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn


def _plain_conv_types() -> tuple:
    from mmcv.cnn.bricks.wrappers import Conv2d as MMCVConv2d
    return (nn.Conv2d, MMCVConv2d)


def _as_patterns(patterns, name: str) -> Tuple[str, ...]:
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        patterns = (patterns, )
    patterns = tuple(patterns)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f'convert_convs: {name} must be an fnmatch pattern or a sequence of them, got {patterns!r}')
    return patterns


def _as_kernel_size(kernel_size) -> Optional[Tuple[int, int]]:
    if kernel_size is None:
        return None
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        return (kernel_size, kernel_size)
    if (isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2
            and all(isinstance(k, int) and not isinstance(k, bool) for k in kernel_size)):
        return tuple(kernel_size)
    raise TypeError(f'convert_convs: kernel_size must be an int (k for k x k) or a pair of ints, got {kernel_size!r}')


def _describe(names: Sequence[str], limit: int = 20) -> str:
    shown = ', '.join(names[:limit])
    return f'[{shown}{", ..." if len(names) > limit else ""}] ({len(names)} in all)'


def convert_convs(model: nn.Module,
                  conv_cfg: Dict,
                  include: Optional[Union[str, Sequence[str]]] = None,
                  exclude: Optional[Union[str, Sequence[str]]] = None,
                  kernel_size: Optional[Union[int, Tuple[int, int]]] = None) -> List[str]:
    """Replace the selected plain ``nn.Conv2d`` modules of ``model`` in place by ``build_conv_layer(conv_cfg, ...)``.

    The new layer gets the same in/out channels, kernel size, stride, padding, dilation, groups, bias and padding
    mode, a copy of the weight and bias (with their ``requires_grad``), the old layer's device, dtype and
    train/eval mode. Returns the converted module names, in ``named_modules`` order.
    """
    if not isinstance(conv_cfg, dict) or 'type' not in conv_cfg:
        raise TypeError(f"convert_convs: conv_cfg must be a dict with a 'type' (e.g. dict(type='PowConv')), "
                        f'got {conv_cfg!r}')
    from mmcv.cnn import build_conv_layer
    from mmengine.registry import MODELS
    layer_type = conv_cfg['type']
    if isinstance(layer_type, str):
        with MODELS.switch_scope_and_registry(None) as registry:  # where build_conv_layer looks
            if registry.get(layer_type) is None:
                raise KeyError(f'convert_convs: conv type {layer_type!r} is not registered in mmengine MODELS; '
                               f"accepted: a registered conv layer such as 'Conv2d', 'SFConv', 'PowConv', "
                               f"'HPowConv', 'SFPowConv', 'DoReFaConv' (import featquant_mmdet first)")
    include_p = _as_patterns(include, 'include')
    exclude_p = _as_patterns(exclude, 'exclude')
    kernel = _as_kernel_size(kernel_size)

    plain_types = _plain_conv_types()
    candidates = [name for name, m in model.named_modules() if type(m) in plain_types and name]
    if not candidates:
        raise ValueError(f'convert_convs: {type(model).__name__} has no plain nn.Conv2d to convert')
    for pattern in include_p + exclude_p:
        if not any(fnmatchcase(name, pattern) for name in candidates):
            raise ValueError(f'convert_convs: pattern {pattern!r} matches no plain nn.Conv2d; the candidates are '
                             f'{_describe(candidates)}')
    modules = dict(model.named_modules())
    selected = [
        name for name in candidates
        if (not include_p or any(fnmatchcase(name, p) for p in include_p))
        and not any(fnmatchcase(name, p) for p in exclude_p)
        and (kernel is None or tuple(modules[name].kernel_size) == kernel)
    ]
    if not selected:
        raise ValueError(f'convert_convs: include={list(include_p)}, exclude={list(exclude_p)}, '
                         f'kernel_size={kernel_size} select no conv; the candidates are {_describe(candidates)}')

    for name in selected:
        old = modules[name]
        extra = {} if old.padding_mode == 'zeros' else dict(padding_mode=old.padding_mode)
        new = build_conv_layer(conv_cfg, old.in_channels, old.out_channels, old.kernel_size, stride=old.stride,
                               padding=old.padding, dilation=old.dilation, groups=old.groups,
                               bias=old.bias is not None, **extra)
        if not isinstance(new, nn.Conv2d) or new.weight.shape != old.weight.shape:
            raise TypeError(f'convert_convs: conv_cfg {conv_cfg!r} built a {type(new).__name__} whose weight is not '
                            f'the nn.Conv2d weight of shape {tuple(old.weight.shape)}')
        new.to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(old.weight)
            if old.bias is not None:
                new.bias.copy_(old.bias)
        new.weight.requires_grad_(old.weight.requires_grad)
        if old.bias is not None:
            new.bias.requires_grad_(old.bias.requires_grad)
        new.train(old.training)
        parent_name, _, child_name = name.rpartition('.')
        setattr(model.get_submodule(parent_name) if parent_name else model, child_name, new)
    return selected
