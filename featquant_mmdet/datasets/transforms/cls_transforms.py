"""Classification transforms that mmcv/mmdet lack: Inception-style random-resized crop, AlexNet's PCA lighting
and packing with a label.

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


# PCA of the RGB pixel values of ImageNet (0-255 scale), the colour augmentation of AlexNet that He et al. (2016) use
# ("the standard color augmentation in [21]"); values of fb.resnet.torch (datasets/imagenet.lua: eigval
# 0.2175, 0.0188, 0.0045 on the 0-1 scale), also mmpretrain's. Rows of the eigenvector matrix are the R, G, B
# channels, its columns the eigenvectors (the first, ~(-0.58, -0.58, -0.58), is brightness).
IMAGENET_PCA_EIGVAL = (55.46, 4.794, 1.148)
IMAGENET_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                       (-0.5808, -0.0045, -0.8140),
                       (-0.5836, -0.6948, 0.4203))


def lighting_shift(alpha: Sequence[float], eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                   eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC) -> np.ndarray:
    """The colour added to every pixel by PCA lighting, ``V (alpha * lambda)``: shape (3,), in ``eigvec``'s
    channel order (RGB for the ImageNet values)."""
    eigvec = np.asarray(eigvec, dtype=np.float64)
    eigval = np.asarray(eigval, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    if eigvec.shape != (3, 3) or eigval.shape != (3, ) or alpha.shape != (3, ):
        raise ValueError(f'PCA lighting needs 3 eigenvalues, a 3x3 eigenvector matrix and 3 alphas, got shapes '
                         f'{eigval.shape}, {eigvec.shape}, {alpha.shape}')
    return eigvec @ (alpha * eigval)


def pca_lighting(img: np.ndarray, alpha: Sequence[float], eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                 eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC, channel_order: str = 'bgr') -> np.ndarray:
    """AlexNet's PCA lighting (Krizhevsky et al. 2012) with given ``alpha``: ``img + V (alpha * lambda)`` per pixel.

    ``V`` / ``lambda``: eigenvectors (columns, rows in RGB order) and eigenvalues of the pixel covariance; the shift
    is reversed for an image in ``channel_order='bgr'`` (OpenCV / mmcv decoding). It is ``mmcv.adjust_lighting``'s
    formula (with ``to_rgb=False`` and a BGR-ordered ``eigvec``), with ``alpha`` given instead of drawn from numpy's
    global state, and the image's dtype kept: a uint8 image is rounded and clipped to [0, 255] (mmcv returns
    float32), so the pipeline after it sees the dtype it expects.
    """
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'PCA lighting needs an (H, W, 3) colour image, got shape {img.shape}')
    shift = lighting_shift(alpha, eigval, eigvec)
    if channel_order == 'bgr':
        shift = shift[::-1]
    out = img.astype(np.float32) + shift.astype(np.float32)
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(img.dtype) if np.issubdtype(img.dtype, np.floating) else out


@TRANSFORMS.register_module()
class PCALighting(BaseTransform):
    """AlexNet / He et al. colour augmentation: add ``V (alpha * lambda)`` to every pixel, ``alpha ~ N(0, alphastd^2)``
    per image (``pca_lighting``; ImageNet's eigenvalues and eigenvectors by default).

    ``alpha`` is drawn from numpy's global random state, as mmcv's random transforms draw theirs (mmengine seeds it
    per dataloader worker), so a seeded run is reproducible. ``alphastd=0`` leaves the image untouched.

    Required keys: img. Modified keys: img.

    Args:
        alphastd: standard deviation of ``alpha`` (0.1 in AlexNet and fb.resnet.torch).
        eigval: the 3 eigenvalues of the pixel covariance, 0-255 scale.
        eigvec: 3x3 eigenvectors as columns, rows in RGB order.
        channel_order: channel order of the image, ``'bgr'`` after ``LoadImageFromFile``.
    """

    def __init__(self, alphastd: float = 0.1, eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                 eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC, channel_order: str = 'bgr'):
        if not alphastd >= 0:
            raise ValueError(f'alphastd must be >= 0, got {alphastd}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        lighting_shift((0.0, 0.0, 0.0), eigval, eigvec)  # shapes checked at build, not in the first batch
        self.alphastd = float(alphastd)
        self.eigval = tuple(float(v) for v in eigval)
        self.eigvec = tuple(tuple(float(v) for v in row) for row in eigvec)
        self.channel_order = channel_order

    def transform(self, results: dict) -> dict:
        if self.alphastd == 0:
            return results
        alpha = np.random.normal(0.0, self.alphastd, size=3)
        results['img'] = pca_lighting(results['img'], alpha, self.eigval, self.eigvec, self.channel_order)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(alphastd={self.alphastd}, channel_order={self.channel_order!r})'


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
