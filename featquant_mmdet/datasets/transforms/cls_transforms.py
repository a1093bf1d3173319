"""Classification transforms that mmcv/mmdet lack: Inception-style random-resized crop and packing with a label.

The rest of the ImageNet pipelines comes from mmcv/mmdet: ``LoadImageFromFile``, ``RandomFlip``,
``ResizeShortestEdge`` (validation: shorter edge to 256) and ``CenterCrop`` (the single 256x256 crop).
"""
import math
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.structures import BaseDataElement


def check_crop_ranges(scale: Tuple[float, float], ratio: Tuple[float, float]) -> None:
    """Raise ``ValueError`` unless ``scale`` is an area-fraction range in (0, 1] and ``ratio`` a positive range."""
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f'crop area range must satisfy 0 < min <= max <= 1 (fractions of the image), got {scale}')
    if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f'aspect ratio range must satisfy 0 < min <= max (width / height), got {ratio}')


def random_resized_crop_box(height: int, width: int, scale: Tuple[float, float] = (0.08, 1.0),
                            ratio: Tuple[float, float] = (3. / 4., 4. / 3.), rng=np.random,
                            max_attempts: int = 10) -> Tuple[int, int, int, int]:
    """Crop box ``(y, x, h, w)`` of the Inception / He et al. augmentation (as torchvision's RandomResizedCrop).

    Draw an area fraction ``s ~ U(scale)`` and an aspect ratio ``r = exp(U(log ratio))``; the crop is
    ``w = round(sqrt(s * H * W * r))``, ``h = round(sqrt(s * H * W / r))`` at a uniform position. After
    ``max_attempts`` draws that do not fit, fall back to the largest centred crop whose ratio is clamped to
    ``ratio``.

    Args:
        rng: anything with numpy's ``uniform(low, high)``: a ``numpy.random.Generator``, a ``RandomState``, or the
            ``numpy.random`` module (mmcv's transforms draw from its global state, seeded per dataloader worker).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f'cannot crop an empty image of {height}x{width}')
    check_crop_ranges(scale, ratio)
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(max_attempts):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y = min(int(rng.uniform(0, height - h + 1)), height - h)
            x = min(int(rng.uniform(0, width - w + 1)), width - w)
            return y, x, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area/aspect box (``random_resized_crop_box``) and resize it to ``scale``.

    Required keys: img. Modified keys: img, img_shape.

    Args:
        scale: output size, an int (square) or ``(width, height)``.
        crop_ratio_range: range of the crop's area fraction of the image.
        aspect_ratio_range: range of the crop's width / height.
        max_attempts: draws before the centred fallback.
        interpolation: mmcv interpolation of the resize.
    """

    def __init__(self, scale: Union[int, Sequence[int]] = 224,
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.), max_attempts: int = 10,
                 interpolation: str = 'bilinear', backend: str = 'cv2'):
        if isinstance(scale, int):
            scale = (scale, scale)
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f'scale must be a positive int or (width, height), got {scale}')
        self.scale = tuple(int(s) for s in scale)
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts
        self.interpolation = interpolation
        self.backend = backend
        check_crop_ranges(self.crop_ratio_range, self.aspect_ratio_range)  # fail at build, not in the first batch

    def transform(self, results: dict) -> dict:
        img = results['img']
        y, x, h, w = random_resized_crop_box(img.shape[0], img.shape[1], self.crop_ratio_range,
                                             self.aspect_ratio_range, np.random, self.max_attempts)
        crop = img[y:y + h, x:x + w]
        img = mmcv.imresize(crop, self.scale, interpolation=self.interpolation, backend=self.backend)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, crop_ratio_range={self.crop_ratio_range}, '
                f'aspect_ratio_range={self.aspect_ratio_range}, max_attempts={self.max_attempts}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack an image and its label for :class:`ImageClassifier`: ``inputs`` (CHW uint8 tensor) and a data sample.

    The data sample is an ``mmengine.structures.BaseDataElement`` with ``gt_label`` (long tensor of shape (1,),
    when the results carry ``gt_label``) and the ``meta_keys`` present in the results as metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape', 'flip',
                                                   'flip_direction')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError(f'PackClsInputs needs an "img" (load it with LoadImageFromFile first); keys: '
                           f'{sorted(results)}')
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if results.get('gt_label') is not None:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long).reshape(1)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
