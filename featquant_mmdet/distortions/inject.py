"""Test-time injection: put a ``Distort`` step right after the image-loading step of a dataloader's pipeline.

Used by ``tools/test.py --distortion NAME [--level K] [--distortion-seed N]`` and the robustness sweep. The loading
step is found by its type (``LoadImageFromFile`` and friends, with or without a registry scope), not by position,
in the dataset's pipeline and in the datasets wrapped by ``ConcatDataset`` / ``RepeatDataset`` /
``ClassBalancedDataset`` / ``MultiImageMixDataset``; every pipeline that loads images gets the step.
"""
import inspect
from typing import Callable, List, Optional

from .levels import NEEDS_SALIENCY, check_name, resolve_level

# transforms that turn a path into results['img']
LOADING_TYPES = ('LoadImageFromFile', 'LoadImageFromNDArray', 'LoadImageFromWebcam', 'InferencerLoader',
                 'LoadMultiChannelImageFromFiles', 'LoadImageFromNDArrayPair')


def _type_name(step) -> str:
    t = step.get('type') if isinstance(step, dict) else None
    name = t if isinstance(t, str) else getattr(t, '__name__', '')
    return name.rsplit('.', 1)[-1]  # 'mmdet.LoadImageFromFile' -> 'LoadImageFromFile'


def _is_loading_step(step) -> bool:
    return _type_name(step) in LOADING_TYPES


def _pack_meta_keys(step) -> Optional[tuple]:
    """The meta keys a ``Pack*Inputs`` step will copy (its config's, else its class default), or None."""
    if 'meta_keys' in step:
        return tuple(step['meta_keys'])
    from mmdet.registry import TRANSFORMS
    cls = step['type'] if isinstance(step['type'], type) else TRANSFORMS.get(step['type'])
    if cls is None:
        return None
    param = inspect.signature(cls.__init__).parameters.get('meta_keys')
    return None if param is None or param.default is inspect.Parameter.empty else tuple(param.default)


def _dataset_pipelines(dataset_cfg, where: str) -> List[tuple]:
    """``[(pipeline list, where)]`` of ``dataset_cfg`` and the datasets it wraps."""
    found = []
    if not isinstance(dataset_cfg, dict):
        return found
    if isinstance(dataset_cfg.get('pipeline'), list):
        found.append((dataset_cfg['pipeline'], f'{where}.pipeline'))
    if isinstance(dataset_cfg.get('dataset'), dict):
        found += _dataset_pipelines(dataset_cfg['dataset'], f'{where}.dataset')
    for i, sub in enumerate(dataset_cfg.get('datasets') or []):
        found += _dataset_pipelines(sub, f'{where}.datasets[{i}]')
    return found


def inject_distortion(dataloader_cfg: dict, name: str, level: Optional[int] = None, seed: int = 0,
                      **distort_kwargs) -> dict:
    """Insert ``dict(type='Distort', name, level, seed, ...)`` after each image-loading step; in place, returned.

    ``level`` is validated first (an error lists the valid names and levels); ``None`` selects a mixture's fixed
    strength. The loading step's ``channel_order`` (mmcv's default ``'bgr'``) is passed on, and ``'distortion'`` is
    added to the meta keys of the ``Pack*Inputs`` steps of the same pipelines, so predictions record what was
    applied. ``distort_kwargs`` go to ``Distort`` (``classifier``/``checkpoint`` for ``targeted_occlusion``).
    Raises ``ValueError`` when no pipeline has a loading step.
    """
    check_name(name)
    level = resolve_level(name, level)
    if name in NEEDS_SALIENCY and level > 0 and distort_kwargs.get('classifier') is None:
        raise ValueError(f'{name!r} needs the classifier whose saliency map picks the occluded clusters: pass '
                         f'classifier=<config file> and checkpoint=<weights> to inject_distortion')
    return inject_transform(
        dataloader_cfg,
        lambda load: dict(type='Distort', name=name, level=level, seed=seed,
                          channel_order=load.get('channel_order', 'bgr'), **distort_kwargs),
        what=f'distortion {name!r}')


def inject_transform(dataloader_cfg: dict, make_step: Callable[[dict], dict], what: str = 'a transform') -> dict:
    """Insert ``make_step(loading_step)`` right after the image-loading step of every pipeline; in place, returned.

    The mechanism shared by :func:`inject_distortion` and other test-time image transforms (the corruption family of
    the robustness sweep): ``'distortion'`` is added to the meta keys of the ``Pack*Inputs`` steps of the same
    pipelines. Raises ``ValueError`` naming ``what`` when no pipeline has a loading step.
    """
    if not isinstance(dataloader_cfg, dict) or not isinstance(dataloader_cfg.get('dataset'), dict):
        raise ValueError(f'injecting {what} needs a dataloader config with a `dataset` dict, got '
                         f'{type(dataloader_cfg).__name__}' +
                         (f' with keys {sorted(dataloader_cfg)}' if isinstance(dataloader_cfg, dict) else ''))
    pipelines = _dataset_pipelines(dataloader_cfg['dataset'], 'dataset')
    injected = 0
    for pipeline, _ in pipelines:
        loads = [i for i, step in enumerate(pipeline) if _is_loading_step(step)]
        if not loads:
            continue
        load = loads[0]
        pipeline.insert(load + 1, make_step(pipeline[load]))
        injected += 1
        for pack in pipeline[load + 2:]:
            if isinstance(pack, dict) and _type_name(pack).startswith('Pack'):
                keys = _pack_meta_keys(pack)
                if keys is not None and 'distortion' not in keys:
                    pack['meta_keys'] = keys + ('distortion', )
    if not injected:
        searched = ', '.join(where for _, where in pipelines) or 'no pipeline at all'
        steps = '; '.join(f'{where}: [' + ', '.join(_type_name(s) or repr(s) for s in p) + ']' for p, where in
                          pipelines)
        raise ValueError(f'cannot inject {what}: no image-loading step ({", ".join(LOADING_TYPES)}) in '
                         f'{searched}' + (f' ({steps})' if steps else ''))
    return dataloader_cfg
