"""Image classifier (backbone -> optional neck -> head) with mmengine's ``BaseModel`` data flow.

mmdet trains detectors only; this is the classification counterpart the paper's ILSVRC-12 pretraining needs, run by
the same Runner and tools (``python tools/train.py configs/pretrain/zf_pow1_imagenet.py``).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModel, ImgDataPreprocessor
from mmengine.structures import BaseDataElement


@MODELS.register_module()
class ClsDataPreprocessor(ImgDataPreprocessor):
    """Turn a list of CHW uint8 BGR image tensors into one normalised float batch, ``(x[::-1] - mean) / std``.

    mmengine's ``ImgDataPreprocessor`` does the normalisation and channel flip; this subclass refuses what would
    be silently wrong for classification: images of different sizes (mmengine would zero-pad them into one batch,
    a classifier needs equal crops) and non-3-channel images when ``bgr_to_rgb`` is asked. No batch augmentation.

    Args:
        mean, std: per-channel statistics in the *output* channel order (RGB when ``bgr_to_rgb``), 0-255 scale.
        bgr_to_rgb: flip BGR (OpenCV decoding) to RGB before normalising.
    """

    def __init__(self, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375), bgr_to_rgb: bool = True,
                 non_blocking: bool = False):
        super().__init__(mean=mean, std=std, pad_size_divisor=1, pad_value=0, bgr_to_rgb=bgr_to_rgb,
                         non_blocking=non_blocking)

    def forward(self, data: dict, training: bool = False) -> Union[dict, list]:
        inputs = data.get('inputs') if isinstance(data, dict) else None
        if isinstance(inputs, (list, tuple)):
            self._check_images(inputs)
        return super().forward(data, training)

    def _check_images(self, images: Sequence[torch.Tensor]) -> None:
        if len(images) == 0:
            raise ValueError('ClsDataPreprocessor got an empty list of images')
        shapes = []
        for index, img in enumerate(images):
            if not isinstance(img, torch.Tensor) or img.dim() != 3:
                what = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
                raise ValueError(f'image {index} must be a CHW tensor, got {what}')
            if self._channel_conversion and img.shape[0] != 3:
                raise ValueError(f'bgr_to_rgb needs 3-channel images, image {index} has shape {tuple(img.shape)}')
            shapes.append(tuple(img.shape))
        if len(set(shapes)) > 1:
            raise ValueError(f'a classification batch needs images of one size (crop them in the pipeline, e.g. '
                             f'RandomResizedCrop or CenterCrop), got shapes {sorted(set(shapes))}')


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Backbone, optional neck and a classification head (``LinearClsHead``, ``ZFClsHead``).

    ``forward(inputs, data_samples, mode)``:
      - ``'tensor'``: logits, (N, num_classes);
      - ``'loss'``: dict of losses (``loss_cls``); data samples must carry ``gt_label``;
      - ``'predict'``: the data samples with ``pred_score`` (softmax, (num_classes,)) and ``pred_label`` (1,).

    Args:
        backbone: config of any registered backbone (mmdet's ``ResNet``, ``QuantResNet``, ``ZF``); the head reads
            its last output.
        head: config of the head.
        neck: optional config of a neck between them.
        data_preprocessor: config of the preprocessor, default ``ClsDataPreprocessor`` with ImageNet statistics.
    """

    # what the predictions carry (tools/test.py picks its result dumper by this)
    prediction_fields = ('pred_score', 'pred_label')

    def __init__(self, backbone: dict, head: dict, neck: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ClsDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # built from mmdet's registry here so that the model also builds outside a Runner's default scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)

    def extract_feat(self, inputs: torch.Tensor):
        feats = self.backbone(inputs)
        return self.neck(feats) if self.neck is not None else feats

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], List[BaseDataElement], torch.Tensor]:
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            if data_samples is None:
                raise ValueError("mode='loss' needs data_samples carrying gt_label")
            return self.head.loss(self.extract_feat(inputs), data_samples)
        if mode == 'predict':
            return self.head.predict(self.extract_feat(inputs), data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
