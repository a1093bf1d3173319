"""Targeted occlusion [Occ.]: black masks over the pixels a classifier relies on for the ground-truth class.

The paper (Section 3.1, after [44]) computes a gradient saliency map with a pre-trained classifier and occludes the
clusters of pixels that contribute most to the ground-truth class score. :class:`GradientSaliency` computes

    S(p) = max_c |d z_y / d I_c(p)|

(``z_y`` the logit of the ground-truth class ``y``, ``I_c(p)`` the 0-255 value of channel ``c`` at pixel ``p``) with
any classifier that follows the project's contract: an mmengine ``BaseModel`` whose ``data_preprocessor`` turns
``dict(inputs=[CHW uint8 BGR tensor])`` into a normalised batch and whose ``forward(x, mode='tensor')`` returns the
logits ``(N, num_classes)``. :func:`featquant_mmdet.distortions.functional.occlude_salient_clusters` then blacks
out the ``num_clusters`` (the level) most salient clusters; ``Distort(name='targeted_occlusion', level=k,
classifier=CONFIG, checkpoint=CKPT)`` does both in a pipeline, or, in Python::

    saliency = GradientSaliency(CONFIG, CKPT)(img, label)
    occluded = levels.apply_distortion(img, 'targeted_occlusion', k, rng, saliency=saliency)
"""
from typing import Optional, Union

import cv2
import numpy as np
import torch

from ..loading import build_model, load_weights_strict, read_state_dict
from . import functional as F


def build_classifier(classifier, checkpoint: Optional[str] = None, device: str = 'cpu') -> torch.nn.Module:
    """An eval-mode classifier from a config file / ``Config`` / model dict (+ checkpoint, loaded strictly), or a
    ready model (:func:`featquant_mmdet.loading.build_model`)."""
    if isinstance(classifier, torch.nn.Module):
        model = classifier
        if checkpoint is not None:
            load_weights_strict(model, read_state_dict(checkpoint), source=f'checkpoint {checkpoint}')
    else:
        model = build_model(classifier, checkpoint, device)
    if not hasattr(model, 'data_preprocessor'):
        raise TypeError(f'{type(model).__name__} has no data_preprocessor; targeted occlusion needs an mmengine '
                        f'BaseModel (data_preprocessor + forward(x, mode="tensor") -> logits)')
    return model.to(device).eval()


class GradientSaliency:
    """``S = max_c |d logit_y / d pixel|`` of a classifier, as an HxW float32 map for an HxW(x3) uint8 image.

    Args:
        classifier: config file / ``Config`` / model dict, or a built model (see :func:`build_classifier`).
        checkpoint: weights to load into it (required unless ``classifier`` is a trained model).
        device: where the classifier runs.
        input_size: resize the image to this ``(width, height)`` (or square side) before the classifier, for models
            that need a fixed input size; the map is resized back to the image size. ``None``: full resolution.
    """

    def __init__(self, classifier, checkpoint: Optional[str] = None, device: str = 'cpu',
                 input_size: Union[None, int, tuple] = None):
        if classifier is None:
            raise ValueError('targeted occlusion needs a classifier (config file + checkpoint, or a model) to '
                             'compute the saliency map of the ground-truth class')
        self.model = build_classifier(classifier, checkpoint, device)
        self.device = device
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else input_size

    def __call__(self, img: np.ndarray, label: int, channel_order: str = 'bgr') -> np.ndarray:
        img = F.check_image(img, 'GradientSaliency')
        if label is None:
            raise ValueError('targeted occlusion needs the ground-truth label of the image (got None)')
        label = int(label)
        h, w = img.shape[:2]
        bgr = img if img.ndim == 3 and img.shape[2] == 3 else cv2.cvtColor(img.reshape(h, w), cv2.COLOR_GRAY2BGR)
        if channel_order == 'rgb' and img.ndim == 3 and img.shape[2] == 3:
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if self.input_size is not None:
            bgr = cv2.resize(bgr, tuple(self.input_size), interpolation=cv2.INTER_AREA)
        preprocessor = self.model.data_preprocessor
        with torch.no_grad():
            data = preprocessor(dict(inputs=[torch.from_numpy(bgr).permute(2, 0, 1).contiguous()]), False)
        x = data['inputs'].detach().to(self.device).requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x, mode='tensor')
            if logits.dim() != 2 or not 0 <= label < logits.shape[1]:
                raise ValueError(f'label {label} is not a class of the classifier (logits of shape '
                                 f'{tuple(logits.shape)})')
            grad, = torch.autograd.grad(logits[0, label], x)
        grad = grad[0]
        # the preprocessor normalises (x - mean) / std: d/dpixel = d/dx / std (per channel)
        std = getattr(preprocessor, 'std', None)
        if isinstance(std, torch.Tensor) and std.numel() in (1, grad.shape[0]):
            grad = grad / std.reshape(-1, 1, 1).to(grad)
        saliency = grad.abs().amax(dim=0).cpu().numpy().astype(np.float32)
        sh, sw = bgr.shape[:2]
        saliency = saliency[:sh, :sw]  # a preprocessor may pad to a size divisor
        if saliency.shape != (h, w):
            saliency = cv2.resize(saliency, (w, h), interpolation=cv2.INTER_LINEAR)
        return saliency

