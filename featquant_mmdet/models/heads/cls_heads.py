"""Classification heads for :class:`~featquant_mmdet.models.classifiers.ImageClassifier`.

A head maps the backbone's last feature map to class logits ``z`` and trains them with cross-entropy,

    loss = -log softmax(z)_y,          pred_score = softmax(z),          pred_label = argmax(z).

``LinearClsHead`` is the ResNet head (global average pooling + one linear layer); ``ZFClsHead`` is the head of the
ZF net (pool5 to 6x6x256, fc6 4096, fc7 4096, fc8), whose fc6/fc7 have the shapes *and the names* of the Faster
R-CNN RoI head's two shared fcs (``shared_fcs.0/1``), so a detector config starts its RoI head from a classifier
checkpoint with mmengine's ``Pretrained`` init and ``prefix='head.'`` (see
``featquant_mmdet.models.classifiers.handoff``).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.structures import BaseDataElement

Features = Union[torch.Tensor, Tuple[torch.Tensor, ...]]


def last_feature_map(feats: Features, in_channels: int) -> torch.Tensor:
    """The feature map a head classifies: the last one a backbone (or neck) returns, checked to be (N, C, H, W)."""
    if isinstance(feats, (tuple, list)):
        if len(feats) == 0:
            raise ValueError('the backbone returned no feature map (empty tuple): check its out_indices')
        feats = feats[-1]
    if not isinstance(feats, torch.Tensor) or feats.dim() != 4:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ValueError(f'a classification head needs an (N, C, H, W) feature map, got {shape}')
    if feats.shape[1] != in_channels:
        raise ValueError(f'the head expects {in_channels} input channels (in_channels) but the last feature map has '
                         f'{feats.shape[1]}: set model.head.in_channels to the backbone\'s output channels')
    return feats


def gt_labels_of(data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
    """Stack the ``gt_label`` of each data sample into a (N,) long tensor; name the sample that has none."""
    labels = []
    for index, sample in enumerate(data_samples):
        if 'gt_label' not in sample:
            raise KeyError(f'data sample {index} has no gt_label (fields: {sorted(sample.keys())}); the training '
                           "pipeline must end with PackClsInputs on data that carry 'gt_label'")
        labels.append(torch.as_tensor(sample.gt_label).reshape(-1)[:1])
    return torch.cat(labels).long()


class ClsHead(BaseModule):
    """Shared part of the heads: cross-entropy loss and softmax predictions on the logits of ``forward``.

    Args:
        loss: config of the loss, any mmdet loss taking ``(logits, labels)``; default mmdet's CrossEntropyLoss.
    """

    def __init__(self, loss: Optional[dict] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.loss_module = MODELS.build(loss or dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))

    def loss(self, feats: Features, data_samples: Sequence[BaseDataElement]) -> dict:
        logits = self(feats)
        labels = gt_labels_of(data_samples).to(logits.device)
        num_classes = logits.shape[1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'gt_label must lie in [0, {num_classes}) for this {num_classes}-class head, got '
                             f'labels {sorted(set(labels.tolist()))}: set model.head.num_classes to the number of '
                             'classes of the dataset')
        return dict(loss_cls=self.loss_module(logits, labels))

    def predict(self, feats: Features,
                data_samples: Optional[Sequence[BaseDataElement]] = None) -> List[BaseDataElement]:
        scores = F.softmax(self(feats), dim=1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(scores.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score.detach()
            sample.pred_label = score.argmax().detach().reshape(1)
        return list(data_samples)


@MODELS.register_module()
class LinearClsHead(ClsHead):
    """Global average pooling and one linear layer: ``z = W mean_{h,w}(x) + b`` (the ResNet classifier).

    Args:
        num_classes: number of classes.
        in_channels: channels of the last feature map (512 for ResNet-18, 2048 for ResNet-50).
    """

    def __init__(self, num_classes: int, in_channels: int, loss: Optional[dict] = None,
                 init_cfg=dict(type='Normal', std=0.01, layer='Linear')):
        super().__init__(loss=loss, init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Features) -> torch.Tensor:
        return self.fc(self.pool(last_feature_map(feats, self.in_channels)).flatten(1))


# names of ZFClsHead's fc6/fc7 before they became ``shared_fcs.0/1`` (checkpoints of earlier versions)
LEGACY_ZF_FC_NAMES = (('fc6.', 'shared_fcs.0.'), ('fc7.', 'shared_fcs.1.'))


def rename_legacy_zf_fc_keys(state_dict: Dict[str, torch.Tensor], prefix: str = '') -> List[str]:
    """Rename, in place, ``{prefix}fc6.*`` / ``{prefix}fc7.*`` to ``{prefix}shared_fcs.0.*`` / ``.1.*`` (the names of
    ZF classifier checkpoints written before the rename); returns the renamed old keys.

    Refuses (``KeyError``) a state dict that holds both names of one layer: which one is meant is unknown.
    """
    renamed = []
    for old, new in LEGACY_ZF_FC_NAMES:
        old_keys = [k for k in state_dict if k.startswith(prefix + old)]
        if not old_keys:
            continue
        clash = [k for k in state_dict if k.startswith(prefix + new)]
        if clash:
            raise KeyError(f'the state dict holds both the old name {prefix + old}* and the new name {prefix + new}* '
                           f'of one layer ({old_keys[0]}, {clash[0]}): remove one of them')
        for key in old_keys:
            state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
        renamed += old_keys
    return renamed


@MODELS.register_module()
class ZFClsHead(ClsHead):
    """The ZF net's classifier: pool5 to 6x6, fc6 and fc7 (ReLU, dropout), fc8.

        z = fc8(drop(relu(fc7(drop(relu(fc6(vec(maxpool_6x6(x)))))))))

    pool5 is an adaptive *max* pool to ``pooled_size`` x ``pooled_size``: on the whole feature map it is what
    Faster R-CNN's RoI max pooling computes for a full-image RoI, so fc6 sees inputs of the same kind (and of the
    same 256*6*6 layout, flattened channel-major like mmdet's ``ConvFCBBoxHead``) in classification and detection.

    fc6 and fc7 are ``shared_fcs[0]`` and ``shared_fcs[1]`` (``head.shared_fcs.0.weight`` in a checkpoint), the names
    of the RoI head's fcs in mmdet's ``Shared2FCBBoxHead``; ``fc6`` / ``fc7`` remain as attribute aliases, and state
    dicts with the earlier names ``fc6.*`` / ``fc7.*`` still load (renamed on loading).

    Args:
        num_classes: number of classes (fc8 outputs).
        in_channels: channels of the last feature map (256 for ZF conv5).
        pooled_size: side of the pooled map (6, as py-faster-rcnn's RoI pooling of ZF).
        hidden_channels: width of fc6 and fc7 (4096).
        dropout: dropout probability after fc6 and fc7 (0.5).
    """

    def __init__(self, num_classes: int, in_channels: int = 256, pooled_size: int = 6,
                 hidden_channels: int = 4096, dropout: float = 0.5, loss: Optional[dict] = None,
                 init_cfg=(dict(type='Normal', std=0.005, layer='Linear'),
                           dict(type='Normal', std=0.01, override=dict(name='fc8')))):
        super().__init__(loss=loss, init_cfg=list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must lie in [0, 1), got {dropout}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.pool = nn.AdaptiveMaxPool2d(pooled_size)
        self.shared_fcs = nn.ModuleList([nn.Linear(in_channels * pooled_size * pooled_size, hidden_channels),
                                         nn.Linear(hidden_channels, hidden_channels)])
        self.fc8 = nn.Linear(hidden_channels, num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    @property
    def fc6(self) -> nn.Linear:
        return self.shared_fcs[0]

    @property
    def fc7(self) -> nn.Linear:
        return self.shared_fcs[1]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_legacy_zf_fc_keys(state_dict, prefix)  # checkpoints from before the rename
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, feats: Features) -> torch.Tensor:
        x = self.pool(last_feature_map(feats, self.in_channels)).flatten(1)
        x = self.dropout(self.relu(self.fc6(x)))
        x = self.dropout(self.relu(self.fc7(x)))
        return self.fc8(x)
