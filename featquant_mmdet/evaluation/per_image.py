"""Per-image results of a test pass, kept beside the configured metric: what a bootstrap needs to recompute the
metric on any multiset of test images (:mod:`featquant_mmdet.stats`).

Two mmengine metrics, added to the test loop's ``Evaluator`` next to the configured one (the robustness sweep does
it, :func:`add_per_image_recorder`), so they see the same data samples and go through mmengine's own collection:
``process`` runs on every rank, ``BaseMetric.evaluate`` gathers the results of all ranks in dataset order
(``collect_results``, padding dropped) and calls ``compute_metrics`` on rank 0 only, which writes ``out_path`` and
returns ``{}`` (no key added to the evaluator's output).

* :class:`PerImageVOC` (a ``VOCMetric`` with the configured one's settings): per image ``(img_id, ann, dets)``,
  matched once into :class:`~featquant_mmdet.stats.voc_matches.VOCMatches` (``pascal_voc/mAP`` on the full set
  equals ``VOCMetric``'s, tested);
* :class:`PerImageAccuracy`: per image whether the label is among the top-k scores
  (:class:`~featquant_mmdet.stats.correctness.Correctness`), with ``torch.topk`` as the plugin's ``Accuracy``.

COCO-style metrics are not supported (COCO mAP is not a function of per-image match records alone in this form):
:func:`add_per_image_recorder` returns the reason instead of a recorder, and the sweep records it.
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.evaluation.metrics import VOCMetric
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from .accuracy import Accuracy, check_topk


def _saved_record(path: str, obj) -> dict:
    return {'path': path, 'num_images': obj.num_images, 'value': float(obj.value())}


@METRICS.register_module()
class PerImageVOC(VOCMetric):
    """Keeps ``(img_id, ann, dets)`` per image as ``VOCMetric`` builds them; ``compute_metrics`` writes the VOC
    match records to ``out_path`` (``.npz``) and returns ``{}``. ``saved``: ``{path, num_images, value}`` of the
    last file written (rank 0), ``value`` being the mAP recomputed from the file's records on all images."""

    default_prefix = 'per_image'

    def __init__(self, out_path: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.out_path = out_path
        self.saved: Optional[dict] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            super().process(data_batch, [sample])
            ann, dets = self.results.pop()
            self.results.append((str(sample.get('img_id', sample.get('img_path'))), ann, dets))

    def compute_metrics(self, results: list) -> dict:
        from ..stats.voc_matches import match_records_from_metric
        if self.out_path is None:
            raise RuntimeError('PerImageVOC has no out_path: set it before the test pass')
        matches = match_records_from_metric(self, [(ann, dets) for _, ann, dets in results],
                                            image_ids=[i for i, _, _ in results], meta={'metric': 'mAP'})
        matches.save(self.out_path)
        self.saved = _saved_record(self.out_path, matches)
        return {}


def _image_key(sample: dict, index: int) -> str:
    """A classification image's id: the last two components of its path (``<wnid>/<name>`` or ``val/<name>``),
    independent of where the data root is mounted; the sample index when there is no path."""
    path = sample.get('img_path')
    if not path:
        return str(sample.get('sample_idx', index))
    return '/'.join(osp.normpath(str(path)).split(osp.sep)[-2:])


@METRICS.register_module()
class PerImageAccuracy(BaseMetric):
    """Keeps per image ``(image id, top-k hits)``; ``compute_metrics`` writes the correctness to ``out_path``
    (``.npz``) and returns ``{}``. ``metric``: the key the file's ``value`` reports (e.g. ``accuracy/top5``)."""

    default_prefix = 'per_image'

    def __init__(self, topk: Sequence[int] = (1, 5), metric: str = 'accuracy/top1', out_path: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = check_topk(topk)
        self.metric = metric
        self.out_path = out_path
        self.saved: Optional[dict] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for index, sample in enumerate(data_samples):
            score = torch.as_tensor(sample['pred_score']).detach().cpu().float()
            label = int(torch.as_tensor(sample['gt_label']).reshape(-1)[0])
            best = score.topk(min(max(self.topk), score.numel())).indices
            hits = best == label
            self.results.append((_image_key(sample, len(self.results)),
                                 tuple(bool(hits[:k].any()) for k in self.topk)))

    def compute_metrics(self, results: List[tuple]) -> dict:
        from ..stats.correctness import Correctness
        if self.out_path is None:
            raise RuntimeError('PerImageAccuracy has no out_path: set it before the test pass')
        correct = {k: [r[1][i] for r in results] for i, k in enumerate(self.topk)}
        cells = Correctness(correct, [r[0] for r in results], self.metric)
        cells.save(self.out_path)
        self.saved = _saved_record(self.out_path, cells)
        return {}


def per_image_recorder(metrics: Sequence[BaseMetric], metric_key: str) -> Tuple[Optional[BaseMetric], str]:
    """A recorder with the settings of the configured metric that reports ``metric_key``: ``(recorder, '')``, or
    ``(None, why not)`` (COCO metrics; a VOC key other than ``mAP``; no matching metric)."""
    prefix, _, name = metric_key.partition('/')
    for metric in metrics:
        if isinstance(metric, VOCMetric) and (metric.prefix or 'pascal_voc') == prefix:
            if name != 'mAP':
                return None, (f'per-image data recompute VOCMetric\'s mAP only, the sweep\'s metric is '
                              f'{metric_key!r}: no intervals')
            if metric.scale_ranges is not None or metric.metric != 'mAP':
                return None, 'per-image VOC data need VOCMetric(metric="mAP", scale_ranges=None): no intervals'
            recorder = PerImageVOC(iou_thrs=metric.iou_thrs, eval_mode=metric.eval_mode,
                                   collect_device=metric.collect_device)
            return recorder, ''
        if isinstance(metric, Accuracy) and (metric.prefix or 'accuracy') == prefix:
            k = name[3:] if name.startswith('top') else ''
            if not k.isdigit() or int(k) not in metric.topk:
                return None, f'per-image correctness covers {metric.topk}, not {metric_key!r}: no intervals'
            return PerImageAccuracy(metric.topk, metric=f'accuracy/{name}', collect_device=metric.collect_device), ''
    types = sorted({type(m).__name__ for m in metrics})
    return None, (f'per-image data are kept for VOCMetric (mAP) and Accuracy only; the test evaluator has {types} '
                  f'(COCO-style metrics are not supported): no intervals for {metric_key!r}')


def add_per_image_recorder(evaluator, metric_key: str) -> Tuple[Optional[BaseMetric], str]:
    """Append the recorder to an mmengine ``Evaluator`` (after the configured metrics, so it never shadows their
    keys), with the evaluator's ``dataset_meta``: ``(recorder, '')`` or ``(None, why not)``."""
    recorder, why = per_image_recorder(evaluator.metrics, metric_key)
    if recorder is not None:
        recorder.dataset_meta = evaluator.dataset_meta
        evaluator.metrics.append(recorder)
    return recorder, why
