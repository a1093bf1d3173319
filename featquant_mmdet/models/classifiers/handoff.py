"""Hand-off from ImageNet pretraining to detection: a detector config starts from a classifier checkpoint.

No conversion step: an ``ImageClassifier`` checkpoint holds ``backbone.*`` and ``head.*``, and mmdet's documented
``Pretrained`` init with a prefix takes what a detector needs straight from it (mmengine strips the prefix)::

    model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=CLASSIFIER, prefix='backbone.')))

ResNet: that is all (mmdet's ResNet and the classifier's ``QuantResNet`` share the parameter names). ZF: as
py-faster-rcnn does, the RoI head's fc6/fc7 (6x6x256 inputs, 4096 wide) start from the classifier's too. The
classifier's ``ZFClsHead`` names them as the RoI head does (``head.shared_fcs.0/1``), so a second ``Pretrained``
init with ``prefix='head.'`` on the box head loads them (:func:`bbox_head_init_cfg` writes that list)::

    model = dict(roi_head=dict(bbox_head=dict(init_cfg=[
        dict(type='Normal', std=0.01, override=dict(name='fc_cls')),     # mmdet's own inits of fc_cls / fc_reg
        dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
        dict(type='Pretrained', checkpoint=CLASSIFIER, prefix='head.')])))

mmengine runs a ``Pretrained`` init after the others, so fc_cls/fc_reg keep their Normal init and the shared fcs
end with the classifier's weights; it logs the classifier's ``fc8`` as unexpected and ``fc_cls``/``fc_reg`` as
missing, as expected. ZF classifier checkpoints written before the rename (``head.fc6/fc7``) load too
(``rename_legacy_zf_fc_keys`` in the heads).

mmengine's ``Pretrained`` init loads with ``strict=False`` and only *warns* about missing, unexpected or misshaped
keys. :func:`check_against_model` is the strict check (``tools/convert_classifier_to_backbone.py CLASSIFIER
--config DETECTOR`` runs it); :func:`convert_classifier_checkpoint` still writes the partial detector state dict
(``backbone.*`` and, for ZF, ``roi_head.bbox_head.shared_fcs.*``) for ``load_from=CONVERTED``, which loads
backbone and fc6/fc7 in one step as py-faster-rcnn's ``--weights``.
"""
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch

from ...loading import build_model_from_cfg, load_config
from ..heads.cls_heads import rename_legacy_zf_fc_keys

BACKBONE_PREFIX = 'backbone.'
CLASSIFIER_HEAD_PREFIX = 'head.'
BBOX_HEAD_PREFIX = 'roi_head.bbox_head.'
# classifier head fcs -> detector RoI head shared fcs (ZF: fc6/fc7 are 4096-d on 256x6x6 inputs in both)
ZF_FC_HANDOFF = ((CLASSIFIER_HEAD_PREFIX + 'shared_fcs.', BBOX_HEAD_PREFIX + 'shared_fcs.'), )
_MAX_LISTED = 20


class StateDictMismatchError(ValueError):
    """Keys or shapes of a state dict do not match a model; lists missing, unexpected and misshaped keys."""

    def __init__(self, what: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 misshaped: Sequence[str] = ()):
        self.missing, self.unexpected, self.misshaped = list(missing), list(unexpected), list(misshaped)
        parts = [what]
        for label, keys in (('missing keys', self.missing), ('unexpected keys', self.unexpected),
                            ('shape mismatches', self.misshaped)):
            if keys:
                shown = ', '.join(keys[:_MAX_LISTED])
                more = f' ... and {len(keys) - _MAX_LISTED} more' if len(keys) > _MAX_LISTED else ''
                parts.append(f'{label} ({len(keys)}): {shown}{more}')
        super().__init__('\n  '.join(parts))


def state_dict_of_checkpoint(checkpoint) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a Runner checkpoint (``{'state_dict': ...}``) or a bare state dict."""
    if isinstance(checkpoint, Mapping) and 'state_dict' in checkpoint:
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'expected a checkpoint with a "state_dict" or a state dict of tensors, got a '
                        f'{type(checkpoint).__name__}')
    not_tensors = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise TypeError(f'expected a checkpoint with a "state_dict" or a state dict of tensors; these entries are no '
                        f'tensors: {not_tensors[:10]}')
    # DataParallel / DistributedDataParallel wrappers prefix every key with "module."
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return dict(checkpoint)


def classifier_to_detector_state_dict(
        classifier_state: Mapping[str, torch.Tensor],
        fc_handoff: Optional[Iterable[Tuple[str, str]]] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Keep the classifier's ``backbone.*`` keys and rename the handed-over head fcs to the detector's names.

    Args:
        classifier_state: state dict of an ``ImageClassifier``.
        fc_handoff: ``(classifier prefix, detector prefix)`` pairs; ``None`` means ZF's fc6/fc7
            (``head.shared_fcs.0/1``, or ``head.fc6/fc7`` in older checkpoints) -> ``roi_head.bbox_head.shared_fcs.0/1``
            when the classifier has them (a ``ZFClsHead``), nothing otherwise; ``()`` hands over the backbone only.

    Raises:
        StateDictMismatchError: the state dict has no ``backbone.*`` key (not a classifier), or a requested
            prefix matches nothing.
    """
    classifier_state = dict(classifier_state)
    if fc_handoff is None:
        rename_legacy_zf_fc_keys(classifier_state, CLASSIFIER_HEAD_PREFIX)
    backbone = [(k, v) for k, v in classifier_state.items() if k.startswith(BACKBONE_PREFIX)]
    if not backbone:
        tops = sorted({k.split('.', 1)[0] + '.' for k in classifier_state})
        raise StateDictMismatchError(f'not a classifier checkpoint: no "{BACKBONE_PREFIX}*" key (top-level prefixes '
                                     f'found: {tops})', missing=[BACKBONE_PREFIX + '*'])
    converted = OrderedDict(backbone)
    if fc_handoff is None:
        has_zf_head = any(k.startswith(ZF_FC_HANDOFF[0][0]) for k in classifier_state)
        fc_handoff = ZF_FC_HANDOFF if has_zf_head else ()
    for src, dst in fc_handoff:
        matched = [(k, v) for k, v in classifier_state.items() if k.startswith(src)]
        if not matched:
            heads = sorted({k for k in classifier_state if not k.startswith(BACKBONE_PREFIX)})
            raise StateDictMismatchError(f'the classifier has no "{src}*" parameters to hand over as "{dst}*" '
                                         f'(its non-backbone keys: {heads})', missing=[src + '*'])
        converted.update((dst + k[len(src):], v) for k, v in matched)
    return converted


def check_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`StateDictMismatchError` unless ``given`` has exactly the keys and shapes of ``expected``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f'{k}: checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)}'
                 for k in expected if k in given and given[k].shape != expected[k].shape]
    if missing or unexpected or misshaped:
        raise StateDictMismatchError(what, missing, unexpected, misshaped)


def check_against_model(converted: Mapping[str, torch.Tensor], model: torch.nn.Module) -> None:
    """Check that ``converted`` covers the model's backbone exactly and, when it carries RoI-head fcs, that those
    are the model's ``roi_head.bbox_head.shared_fcs`` with the same shapes.

    ``model`` is the detector (or anything with the same state-dict names, such as another classifier).
    """
    model_state = model.state_dict()
    backbone_model = {k: v for k, v in model_state.items() if k.startswith(BACKBONE_PREFIX)}
    if not backbone_model:
        raise StateDictMismatchError(f'the model ({type(model).__name__}) has no "{BACKBONE_PREFIX}*" parameters')
    check_state_dict(backbone_model, {k: v for k, v in converted.items() if k.startswith(BACKBONE_PREFIX)},
                     f'the converted backbone does not match the backbone of the {type(model).__name__}')
    others = {k: v for k, v in converted.items() if not k.startswith(BACKBONE_PREFIX)}
    if others:
        # those in the model's namespace of the handed-over fcs must match one to one
        prefixes = sorted({k.rsplit('.', 1)[0] + '.' for k in others})
        expected = {k: v for k, v in model_state.items() if any(k.startswith(p) for p in prefixes)}
        check_state_dict(expected, others, f'the handed-over head fcs do not match the {type(model).__name__} '
                                           f'(prefixes {prefixes})')


def build_detector_from_config(config) -> torch.nn.Module:
    """Build (without initialising) the model of a detector config file or ``Config``."""
    return build_model_from_cfg(load_config(config) if isinstance(config, str) else config)


def convert_classifier_checkpoint(src: str, dst: Optional[str] = None, detector_config=None,
                                  fc_handoff: Optional[Iterable[Tuple[str, str]]] = None
                                  ) -> 'OrderedDict[str, torch.Tensor]':
    """Convert the classifier checkpoint ``src`` for detection; check it against ``detector_config`` when given
    (:class:`StateDictMismatchError` lists missing/unexpected/misshaped keys); save it to ``dst`` when given.

    The saved file is ``{'state_dict': <partial detector state dict>, 'meta': {...}}``, loadable by mmengine's
    ``Pretrained`` init with ``prefix='backbone.'`` (and ``'roi_head.bbox_head.'`` for ZF's fc6/fc7).
    """
    from mmengine.runner.checkpoint import _load_checkpoint  # mmengine's loader (patched for torch>=2.6)
    converted = classifier_to_detector_state_dict(state_dict_of_checkpoint(_load_checkpoint(src, 'cpu')),
                                                  fc_handoff)
    if detector_config is not None:
        check_against_model(converted, build_detector_from_config(detector_config))
    if dst is not None:
        import os
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        handed_over = sorted({k.rsplit('.', 1)[0] for k in converted if not k.startswith(BACKBONE_PREFIX)})
        torch.save(dict(state_dict=converted, meta=dict(source=str(src), handed_over=handed_over)), dst)
    return converted


def bbox_head_init_cfg(checkpoint: str, prefix: str = CLASSIFIER_HEAD_PREFIX) -> list:
    """``init_cfg`` of a ZF detector's RoI box head that starts fc6/fc7 (``shared_fcs.0/1``) from ``checkpoint``.

    ``checkpoint`` is a ZF classifier checkpoint (``prefix='head.'``, the default) or a file written by
    :func:`convert_classifier_checkpoint` (``prefix='roi_head.bbox_head.'``). mmdet's own inits of ``fc_cls``
    (Normal, std 0.01) and ``fc_reg`` (Normal, std 0.001) are kept; mmengine runs a ``Pretrained`` init after the
    others, so the shared fcs end up with the classifier's weights.
    """
    return [dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
            dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
            dict(type='Pretrained', checkpoint=checkpoint, prefix=prefix)]
