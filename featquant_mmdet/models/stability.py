"""Stability training (Zheng et al., CVPR 2016), the second reference method of the paper's Table 2.

Fine-tuning objective, with ``I' = I + eps``, ``eps ~ N(0, sigma^2)`` per pixel and channel::

    L(I, I') = L_task(I) + lambda * KL( p(y | I) || p(y | I') )

with the paper's (and Zheng et al.'s classification) hyper-parameters ``sigma = 0.04``, ``lambda = 0.01``, and only
the last fully-connected layer trained. ``sigma`` is on the ``[0, 1]`` image scale; mmdet models see 0-255 pixels
normalised per channel as ``(x - mean_c) / std_c``, so the noise is added to the normalised batch with standard
deviation ``sigma * 255 / std_c`` (``sigma * 255`` when the preprocessor does not normalise), i.e. exactly
``N(0, (255 sigma)^2)`` on the 0-255 pixels. Padding added by the preprocessor gets no noise. The task loss is the
model's own loss on the clean batch; the KL term is back-propagated through both branches, as in Zheng et al.

* classifiers: :class:`StabilityTrainingClassifier`, an :class:`ImageClassifier` whose ``loss`` adds the term on
  the class logits;
* two-stage detectors: :class:`StabilityTrainingTwoStageDetector`, a ``TwoStageDetector`` (Faster R-CNN) whose
  ``loss`` adds the term on the RoI classification scores: the RoI head is run on the same sampled RoIs for the
  clean and the noisy feature maps, and the KL is averaged over RoIs.

The extra term is logged as its own key, ``loss_stability`` (already multiplied by ``lambda``). Stochastic layers of
the classification module (dropout before the last fc) use the same random mask in both branches, so the term
measures the effect of the input noise only (it is exactly 0 for ``sigma = 0``).

Why subclasses and not a wrapper holding the model (``classifier=dict(...)``) or a hook: a subclass has exactly the
plain model's parameter names, so ``load_from`` a plain checkpoint works unchanged and the fine-tuned checkpoint
loads into the plain config for testing (``tools/test.py configs/pretrain/resnet18_imagenet.py CKPT``); a wrapper
would prefix every key (``classifier.backbone...``), and a hook would have to patch the model's ``loss`` at run time.
A config switches any classifier/detector config to stability training by changing ``model.type`` only::

    model = dict(type='StabilityTrainingClassifier', sigma=0.04, lam=0.01, trainable=('head.fc.*', ))

Fine-tuning only ``trainable`` (fnmatch patterns on parameter names): every other parameter gets
``requires_grad=False`` and BatchNorm layers without trainable parameters stay in eval mode (their running
statistics are part of the frozen model too), so nothing outside ``trainable`` changes. ``trainable=('*', )``
trains the whole model with the extra term.
"""
import contextlib
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .classifiers.image_classifier import ImageClassifier

# Zheng et al. 2016, classification (used by the paper for Table 2)
DEFAULT_SIGMA = 0.04
DEFAULT_LAMBDA = 0.01
PIXEL_RANGE = 255.0  # mmdet's images are 0-255 before normalisation; sigma is on the [0, 1] scale


def stability_divergence(clean_logits: Tensor, noisy_logits: Tensor) -> Tensor:
    """``mean_rows KL(softmax(clean) || softmax(noisy)) = mean sum_y p(y|I) (log p(y|I) - log p(y|I'))``.

    Rows are samples (classification) or RoIs (detection); zero iff the two distributions are equal.
    """
    if clean_logits.shape != noisy_logits.shape or clean_logits.dim() != 2:
        raise ValueError(f'stability_divergence needs two (N, num_classes) logit tensors of one shape, got '
                         f'{tuple(clean_logits.shape)} and {tuple(noisy_logits.shape)}')
    if clean_logits.shape[0] == 0:
        return clean_logits.sum() * 0.0
    return F.kl_div(F.log_softmax(noisy_logits, dim=1), F.log_softmax(clean_logits, dim=1),
                    reduction='batchmean', log_target=True)


def input_noise_std(data_preprocessor: nn.Module, sigma: float) -> Tensor:
    """Standard deviation, in the model's (normalised) input space, of ``N(0, sigma)`` noise on [0, 1] images.

    ``sigma * 255 / std_c`` per channel (shape (C, 1, 1)) for a normalising mmengine ``ImgDataPreprocessor``;
    ``sigma * 255`` otherwise.
    """
    std = getattr(data_preprocessor, 'std', None) if getattr(data_preprocessor, '_enable_normalize', False) else None
    if std is None:
        return torch.tensor(sigma * PIXEL_RANGE)
    return sigma * PIXEL_RANGE / std


def add_input_noise(inputs: Tensor, noise_std: Tensor, data_samples: Optional[Sequence] = None) -> Tensor:
    """``inputs + N(0, noise_std^2)``; with data samples carrying ``img_shape``, the padding stays noise-free."""
    noise = torch.randn_like(inputs) * noise_std.to(inputs)
    if data_samples is not None:
        for noise_i, sample in zip(noise, data_samples):
            img_shape = sample.metainfo.get('img_shape') if hasattr(sample, 'metainfo') else None
            if img_shape is not None:
                height, width = img_shape[:2]
                noise_i[..., height:, :] = 0
                noise_i[..., :, width:] = 0
    return inputs + noise


def freeze_all_but(model: nn.Module, trainable: Sequence[str]) -> List[str]:
    """Set ``requires_grad=False`` on every parameter whose name matches none of the fnmatch ``trainable`` patterns.

    Returns the names left trainable. Raises ``ValueError`` for a pattern matching no parameter (listing some).
    """
    if isinstance(trainable, str) or not trainable:
        raise ValueError(f'trainable must be a non-empty list/tuple of fnmatch patterns on parameter names '
                         f"(e.g. ('head.fc.*', )), got {trainable!r}")
    names = [name for name, _ in model.named_parameters()]
    for pattern in trainable:
        if not fnmatch.filter(names, pattern):
            last = ', '.join(names[-6:])
            raise ValueError(f'trainable pattern {pattern!r} matches no parameter of {type(model).__name__} '
                             f'({len(names)} parameters, the last ones: {last})')
    kept = []
    for name, param in model.named_parameters():
        keep = any(fnmatch.fnmatchcase(name, pattern) for pattern in trainable)
        param.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept


class _FirstCallRecorder(contextlib.AbstractContextManager):
    """Records the RNG state before, the positional inputs and the output of a module's first call in the block."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.called = False
        self.rng_state = self.args = self.output = None
        self._handles = []

    def __enter__(self):
        self._handles = [self.module.register_forward_pre_hook(self._before),
                         self.module.register_forward_hook(self._after)]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        return False

    def _before(self, module, args):
        if not self.called:
            self.rng_state = _rng_state(args)

    def _after(self, module, args, output):
        if not self.called:
            self.called, self.args, self.output = True, args, output


def _first_tensor_device(obj) -> torch.device:
    """Device of the first tensor in (nested tuples/lists of) module inputs; CPU when there is none."""
    if isinstance(obj, Tensor):
        return obj.device
    if isinstance(obj, (tuple, list)):
        for item in obj:
            device = _first_tensor_device(item)
            if device.type != 'cpu':
                return device
    return torch.device('cpu')


def _rng_state(args) -> Tuple[Tensor, Optional[int], Optional[Tensor]]:
    """CPU RNG state plus, for inputs on a GPU, that GPU's RNG state (dropout draws from the inputs' device)."""
    device = _first_tensor_device(args)
    if device.type == 'cuda':
        return torch.get_rng_state(), device.index, torch.cuda.get_rng_state(device)
    return torch.get_rng_state(), None, None


@contextlib.contextmanager
def _replayed_rng(state):
    """Run the block with the RNG state ``state`` (same dropout masks as then); the global stream is left as is."""
    cpu_state, cuda_index, cuda_state = state
    with torch.random.fork_rng(devices=[] if cuda_index is None else [cuda_index]):
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, cuda_index)
        yield


class StabilityTrainingMixin:
    """Shared part: hyper-parameters, freezing, the noisy copy of a batch, BatchNorm of the frozen part in eval.

    The model class calls :meth:`_init_stability` at the end of ``__init__`` and adds ``loss_stability`` in ``loss``.
    """

    @staticmethod
    def _check_hyper_parameters(sigma: float, lam: float, trainable: Optional[Sequence[str]]) -> None:
        """Called before the (costly) model is built, so a typo in the config fails at once."""
        if trainable is not None and (isinstance(trainable, str) or not trainable):
            raise ValueError(f'trainable must be a non-empty list/tuple of fnmatch patterns on parameter names '
                             f"(e.g. ('head.fc.*', )), got {trainable!r}")
        if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or sigma < 0:
            raise ValueError(f'sigma (noise std on the [0, 1] image scale) must be a number >= 0, got {sigma!r}')
        if not isinstance(lam, (int, float)) or isinstance(lam, bool) or lam < 0:
            raise ValueError(f'lam (weight of the stability term) must be a number >= 0, got {lam!r}')

    def _init_stability(self, sigma: float, lam: float, trainable: Optional[Sequence[str]]) -> None:
        self._check_hyper_parameters(sigma, lam, trainable)
        self.sigma = float(sigma)
        self.lam = float(lam)
        self.trainable_parameters = freeze_all_but(self, trainable)
        self.trainable = tuple(trainable)

    def noisy_inputs(self, inputs: Tensor, data_samples: Optional[Sequence] = None) -> Tensor:
        """The perturbed batch ``I' = I + N(0, sigma)`` in the model's input space (see the module docstring)."""
        return add_input_noise(inputs, input_noise_std(self.data_preprocessor, self.sigma), data_samples)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            # running statistics of frozen BatchNorm layers must not drift either
            for module in self.modules():
                if isinstance(module, _BatchNorm) and not any(p.requires_grad for p in module.parameters()):
                    module.eval()
        return self


def _last_linear_of(module: nn.Module, prefix: str) -> Optional[str]:
    names = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    return f'{prefix}.{names[-1]}.*' if names else None


@MODELS.register_module()
class StabilityTrainingClassifier(StabilityTrainingMixin, ImageClassifier):
    """:class:`ImageClassifier` fine-tuned with stability training on its class logits.

    Args:
        sigma: std of the Gaussian input noise on the [0, 1] image scale (0.04).
        lam: weight lambda of ``KL(p(y|I) || p(y|I'))`` (0.01).
        trainable: fnmatch patterns of the parameters to fine-tune; ``None``: the head's last ``nn.Linear``
            (``head.fc`` of ``LinearClsHead``, ``head.fc8`` of ``ZFClsHead``).
        **kwargs: the ``ImageClassifier`` arguments (backbone, head, neck, data_preprocessor, init_cfg).
    """

    def __init__(self, *args, sigma: float = DEFAULT_SIGMA, lam: float = DEFAULT_LAMBDA,
                 trainable: Optional[Sequence[str]] = None, **kwargs):
        self._check_hyper_parameters(sigma, lam, trainable)
        super().__init__(*args, **kwargs)
        if trainable is None:
            trainable = _last_linear_of(self.head, 'head')
            if trainable is None:
                raise ValueError(f'stability training needs a classification output: the head '
                                 f'{type(self.head).__name__} has no nn.Linear layer to fine-tune; pass trainable=')
            trainable = (trainable, )
        self._init_stability(sigma, lam, trainable)

    def loss(self, inputs: Tensor, data_samples: Sequence) -> Dict[str, Tensor]:
        """Task losses on the clean batch plus ``loss_stability`` between clean and noisy logits."""
        with _FirstCallRecorder(self.head) as clean:
            losses = self.head.loss(self.extract_feat(inputs), data_samples)
        clean_logits = clean.output
        if not isinstance(clean_logits, Tensor) or clean_logits.dim() != 2:
            raise ValueError(f'stability training needs class logits (N, num_classes) from the head, '
                             f'{type(self.head).__name__} returned {type(clean_logits).__name__}')
        noisy_feats = self.extract_feat(self.noisy_inputs(inputs, data_samples))
        with _replayed_rng(clean.rng_state):
            noisy_logits = self.head(noisy_feats)
        losses['loss_stability'] = self.lam * stability_divergence(clean_logits, noisy_logits)
        return losses

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            if data_samples is None:
                raise ValueError("mode='loss' needs data_samples carrying gt_label")
            return self.loss(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)


@MODELS.register_module()
class StabilityTrainingTwoStageDetector(StabilityTrainingMixin, TwoStageDetector):
    """Two-stage detector (Faster R-CNN) fine-tuned with stability training on the RoI classification scores.

    ``loss_stability = lam * mean_RoIs KL(softmax(s(RoI | I)) || softmax(s(RoI | I')))`` over the RoIs the RoI
    head sampled for its own loss on the clean image, pooled once from the clean and once from the noisy features.

    Args:
        sigma, lam: as for :class:`StabilityTrainingClassifier`.
        trainable: fnmatch patterns of the parameters to fine-tune; default the RoI classifier
            ``roi_head.bbox_head.fc_cls`` (the layer producing the scores).
        **kwargs: the ``TwoStageDetector`` arguments (backbone, rpn_head, roi_head, train_cfg, ...), e.g. those of a
            ``FasterRCNN`` config with ``type`` changed.
    """

    def __init__(self, *args, sigma: float = DEFAULT_SIGMA, lam: float = DEFAULT_LAMBDA,
                 trainable: Optional[Sequence[str]] = ('roi_head.bbox_head.fc_cls.*', ), **kwargs):
        self._check_hyper_parameters(sigma, lam, trainable)
        super().__init__(*args, **kwargs)
        bbox_head = getattr(self.roi_head, 'bbox_head', None) if self.with_roi_head else None
        if bbox_head is None or not getattr(bbox_head, 'with_cls', False):
            raise ValueError('stability training needs a classification output: this detector has no RoI head '
                             'with a classifying bbox_head (roi_head=dict(bbox_head=dict(...)), with_cls=True)')
        if getattr(bbox_head, 'custom_cls_channels', False) or getattr(bbox_head.loss_cls, 'use_sigmoid', False):
            raise ValueError('stability training compares softmax class distributions: the bbox head must use a '
                             'softmax classifier (loss_cls=dict(type=\'CrossEntropyLoss\', use_sigmoid=False))')
        if not hasattr(self.roi_head, '_bbox_forward'):
            raise ValueError(f'stability training runs the RoI head on given RoIs through _bbox_forward (a '
                             f'StandardRoIHead); {type(self.roi_head).__name__} has none')
        self._init_stability(sigma, lam, trainable)

    def loss(self, batch_inputs: Tensor, batch_data_samples: Sequence) -> Dict[str, Tensor]:
        """The detector's losses on the clean batch plus ``loss_stability`` on the RoI class scores."""
        roi_head = self.roi_head
        with _FirstCallRecorder(roi_head.bbox_roi_extractor) as pooled, \
                _FirstCallRecorder(roi_head.bbox_head) as scored:
            losses = super().loss(batch_inputs, batch_data_samples)
        if not (pooled.called and scored.called):
            raise RuntimeError('the RoI head did not run its bbox branch during the loss: no scores to stabilise')
        if len(pooled.args) < 2:
            raise RuntimeError('the RoI extractor was not called as extractor(feats, rois): cannot rerun it on the '
                               'same RoIs')
        rois = pooled.args[1]
        clean_scores = scored.output[0]
        noisy_feats = self.extract_feat(self.noisy_inputs(batch_inputs, batch_data_samples))
        with _replayed_rng(scored.rng_state):
            noisy_scores = roi_head._bbox_forward(noisy_feats, rois)['cls_score']
        losses['loss_stability'] = self.lam * stability_divergence(clean_scores, noisy_scores)
        return losses
