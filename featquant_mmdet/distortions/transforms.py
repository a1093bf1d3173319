"""Pipeline transforms over :mod:`featquant_mmdet.distortions.levels`: ``Distort`` (test time) and ``RandomDistort``.

Deterministic by design: the generator of an image is seeded with
``SeedSequence([seed, blake2b(identity, name, level)])``, where the identity is the image's file (the last two
components of ``img_path``, so moving the data root keeps the draws), else its ``img_id``, else a hash of its
pixels. The draws therefore depend only on (seed, image, distortion, level): not on the worker that loads the
image, the worker count, the order, or how many images came before; the same command gives byte-identical images.
"""
import hashlib
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from .levels import ALL_NAMES, MIXTURE_NAMES, NEEDS_SALIENCY, NUM_LEVELS, apply_distortion, check_name, resolve_level


def image_identity(results: dict) -> str:
    """A stable name of the image in ``results``: ``img_path``'s last two components, else ``img_id``, else a hash
    of its pixels (so that in-memory images are still deterministic)."""
    path = results.get('img_path')
    if isinstance(path, str) and path:
        parts = osp.normpath(path).replace('\\', '/').split('/')
        return 'path:' + '/'.join(parts[-2:])
    if results.get('img_id') is not None:
        return f'id:{results["img_id"]}'
    img = np.ascontiguousarray(results['img'])
    return 'pixels:' + hashlib.blake2b(img.tobytes() + repr(img.shape).encode(), digest_size=16).hexdigest()


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'the distortion seed must be a non-negative integer, got {seed!r}')
    return int(seed)


def image_rng(seed: int, identity: str, name: str, level: int) -> np.random.Generator:
    """The generator of (global ``seed``, image ``identity``, distortion ``name``, ``level``).

    ``PCG64(SeedSequence([seed, int(blake2b(identity, name, level))]))``: a cryptographic hash, unlike Python's
    ``hash()``, is the same in every process.
    """
    _check_seed(seed)
    key = f'{identity}\0{name}\0{level}'.encode()
    digest = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), 'little')
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), digest])))


def _as_uint8(img: np.ndarray):
    """``(uint8 image, restore)``: float images from ``LoadImageFromFile(to_float32=True)`` round-trip through uint8."""
    if img.dtype == np.uint8:
        return img, lambda out: out
    if np.issubdtype(img.dtype, np.floating) and img.size and 0 <= img.min() and img.max() <= 255:
        dtype = img.dtype
        return np.rint(img).astype(np.uint8), lambda out: out.astype(dtype)
    raise TypeError(f'distortions need uint8 images or floats in [0, 255] (LoadImageFromFile(to_float32=True)), '
                    f'got dtype {img.dtype}' + (f' with range [{img.min()}, {img.max()}]' if img.size else ''))


def _record(results: dict, entry: dict) -> None:
    """``results['distortion']``: the dict of what was applied; a list of dicts when several were applied."""
    previous = results.get('distortion')
    if previous is None:
        results['distortion'] = entry
    else:
        results['distortion'] = (previous if isinstance(previous, list) else [previous]) + [entry]


def _label_of(results: dict, label_key: str) -> int:
    if label_key not in results or results[label_key] is None:
        raise KeyError(f'targeted_occlusion needs the ground-truth label in results[{label_key!r}] (set label_key '
                       f'to the key your dataset uses); the results have {sorted(results)}')
    label = np.asarray(results[label_key]).reshape(-1)
    if label.size != 1 and len(set(label.tolist())) != 1:
        raise ValueError(f'targeted_occlusion targets one class, but results[{label_key!r}] holds the labels '
                         f'{label.tolist()}')
    return int(label[0])


class _DistortBase(BaseTransform):
    """What ``Distort`` and ``RandomDistort`` share: argument checks, the per-image generator, the record."""

    def __init__(self, seed: int, channel_order: str, classifier=None, checkpoint: Optional[str] = None,
                 label_key: str = 'gt_label', device: str = 'cpu', input_size=None):
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' (mmcv's default) or 'rgb', got {channel_order!r}")
        self.seed = _check_seed(seed)
        self.channel_order = channel_order
        self.classifier = classifier
        self.checkpoint = checkpoint
        self.label_key = label_key
        self.device = device
        self.input_size = input_size
        self._saliency_fn = None  # built on first use, in the worker process

    def _saliency(self, img: np.ndarray, results: dict) -> np.ndarray:
        from .occlusion import GradientSaliency
        label = _label_of(results, self.label_key)
        if self._saliency_fn is None:
            self._saliency_fn = GradientSaliency(self.classifier, self.checkpoint, self.device, self.input_size)
        return self._saliency_fn(img, label, self.channel_order)

    def _distort(self, results: dict, name: str, level: int, seed: int) -> dict:
        img, restore = _as_uint8(results['img'])
        rng = image_rng(seed, image_identity(results), name, level)
        saliency = self._saliency(img, results) if name in NEEDS_SALIENCY and level > 0 else None
        out = apply_distortion(img, name, level, rng, channel_order=self.channel_order, saliency=saliency)
        results['img'] = restore(out)
        # every distortion keeps the size, so boxes/masks stay valid; img_shape is refreshed for the record
        results['img_shape'] = out.shape[:2]
        _record(results, dict(name=name, level=level, seed=seed))
        return results

    def __getstate__(self):
        # a built classifier is not sent to dataloader workers; each builds its own on first use
        state = self.__dict__.copy()
        state['_saliency_fn'] = None
        return state


@TRANSFORMS.register_module()
class Distort(_DistortBase):
    """Apply one of the paper's distortions at a fixed level (``dict(type='Distort', name='motion_blur', level=3)``).

    Required keys: ``img`` (uint8, or float in [0, 255]). Used if present: ``img_path``, else ``img_id`` (the image's
    identity for the seed; without either, a hash of the pixels).
    Modified keys: ``img``, ``img_shape`` (unchanged size). Added keys: ``distortion`` =
    ``dict(name, level, seed)`` (a list of such dicts when several distortions ran).

    Args:
        name: a distortion (``levels.DISTORTION_NAMES``) or mixture (``mix``, ``mix_minor``, ``mix_heavy``).
        level: 1-4 (0: clean, still recorded); ``None`` for the fixed-strength mixtures.
        seed: global seed; the draws depend only on (seed, image, name, level).
        channel_order: ``'bgr'`` (mmcv's ``LoadImageFromFile`` default) or ``'rgb'``.
        classifier, checkpoint, label_key, device, input_size: ``targeted_occlusion`` only: the classifier
            (config file + checkpoint) whose saliency for the ground-truth class ``results[label_key]`` picks the
            occluded clusters; see :class:`featquant_mmdet.distortions.occlusion.GradientSaliency`.
    """

    def __init__(self, name: str, level: Optional[int] = None, seed: int = 0, channel_order: str = 'bgr',
                 classifier=None, checkpoint: Optional[str] = None, label_key: str = 'gt_label',
                 device: str = 'cpu', input_size=None):
        super().__init__(seed, channel_order, classifier, checkpoint, label_key, device, input_size)
        self.name = check_name(name)
        self.level = resolve_level(name, level)
        if name in NEEDS_SALIENCY and classifier is None and self.level > 0:
            raise ValueError(f'Distort(name={name!r}) needs classifier=<config file> and checkpoint=<weights> of '
                             f'the classifier whose saliency map picks the occluded clusters')

    def transform(self, results: dict) -> dict:
        return self._distort(results, self.name, self.level, self.seed)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(name={self.name!r}, level={self.level}, seed={self.seed})'


@TRANSFORMS.register_module()
class RandomDistort(_DistortBase):
    """Training-time augmentation: with probability ``prob``, one distortion of ``names`` at one of ``levels``.

    ``seed=None`` (default) draws the choice and the distortion from numpy's global generator, which mmengine seeds
    per worker and which moves on every epoch, so an image gets a new distortion each time it is loaded
    (reproducible under ``randomness=dict(seed=...)``). An integer ``seed`` makes the choice a fixed function of the
    image like :class:`Distort` (the same distortion every epoch). Records ``results['distortion']`` when applied.
    """

    def __init__(self, names: Sequence[str] = ('motion_blur', 'defocus_blur', 'jpeg', 'salt_and_pepper',
                                               'gaussian_noise_y', 'gaussian_noise_cbcr', 'inpainting'),
                 levels: Sequence[int] = (1, 2, 3, 4), prob: float = 0.5, seed: Optional[int] = None,
                 channel_order: str = 'bgr'):
        super().__init__(0 if seed is None else seed, channel_order)
        if isinstance(names, str):
            names = [names]
        if not names:
            raise ValueError(f'RandomDistort needs at least one name of {", ".join(ALL_NAMES)}')
        for name in names:
            check_name(name)
            if name in NEEDS_SALIENCY:
                raise ValueError(f'RandomDistort cannot use {name!r} (it needs a classifier); use Distort')
        if not levels:
            raise ValueError('RandomDistort needs at least one level (1-4)')
        if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= NUM_LEVELS
               for k in levels):
            raise ValueError(f'RandomDistort levels must be in 1-{NUM_LEVELS}, got {tuple(levels)}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.names = tuple(names)
        self.levels = tuple(int(k) for k in levels)
        self.prob = float(prob)
        self.fixed_seed = seed is not None

    def transform(self, results: dict) -> dict:
        if self.fixed_seed:
            choice = image_rng(self.seed, image_identity(results), 'RandomDistort', 0)
            if choice.random() >= self.prob:
                return results
            name = self.names[int(choice.integers(len(self.names)))]
            level = self.levels[int(choice.integers(len(self.levels)))]
            seed = self.seed
        else:
            if np.random.rand() >= self.prob:
                return results
            name = self.names[np.random.randint(len(self.names))]
            level = self.levels[np.random.randint(len(self.levels))]
            seed = int(np.random.randint(2**31))
        if name in MIXTURE_NAMES:
            level = 1  # the mixtures have one strength
        return self._distort(results, name, level, seed)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(names={self.names}, levels={self.levels}, prob={self.prob}, '
                f'seed={self.seed if self.fixed_seed else None})')
