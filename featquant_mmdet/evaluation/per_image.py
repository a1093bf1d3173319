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
* :class:`PerImageCOCO` (a ``CocoMetric`` with the configured one's settings and annotations): pycocotools'
  ``COCOeval.evaluate()`` run once, kept as :class:`~featquant_mmdet.stats.coco_records.COCORecords` (any
  ``<iou type>_<item>`` key CocoMetric reports on the full set, unrounded, tested);
* :class:`PerImageAccuracy`: per image whether the label is among the top-k scores
  (:class:`~featquant_mmdet.stats.correctness.Correctness`), with ``torch.topk`` as the plugin's ``Accuracy``.

For another metric :func:`add_per_image_recorder` returns the reason instead of a recorder, and the sweep records it.
"""
import os.path as osp
import tempfile
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.evaluation.metrics import CocoMetric, VOCMetric
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


@METRICS.register_module()
class PerImageCOCO(CocoMetric):
    """Keeps ``(gt, result)`` per image as ``CocoMetric`` does; ``compute_metrics`` evaluates them once with
    pycocotools (``COCOeval.evaluate()``, CocoMetric's ``catIds``, ``imgIds``, ``maxDets`` and ``iouThrs``), writes
    the records to ``out_path`` (``.npz``) and returns ``{}``. ``metric_key``: the key the file's ``value`` reports
    (``coco/bbox_mAP``, ``coco/bbox_mAP_50``, ...). ``saved`` as :class:`PerImageVOC`'s, with ``metrics``: every
    ``<prefix>/<iou type>_<item>`` key unrounded (``CocoMetric`` rounds its output to 3 decimals)."""

    default_prefix = 'per_image'

    def __init__(self, out_path: Optional[str] = None, metric_key: str = 'coco/bbox_mAP', **kwargs):
        from ..stats.coco_records import parse_metric
        iou_type, _ = parse_metric(metric_key)
        kwargs.setdefault('metric', iou_type)
        super().__init__(**kwargs)
        if iou_type not in self.metrics:
            raise ValueError(f'PerImageCOCO: {metric_key!r} needs metric={iou_type!r}, got {self.metrics}')
        self.out_path = out_path
        self.metric_key = metric_key
        self.ann_file: Optional[str] = None
        self.saved: Optional[dict] = None

    @classmethod
    def like(cls, metric: CocoMetric, metric_key: str) -> 'PerImageCOCO':
        """A recorder with the settings of a built ``CocoMetric``, sharing its loaded annotations."""
        recorder = cls(metric_key=metric_key, metric=metric.metrics, proposal_nums=metric.proposal_nums,
                       iou_thrs=metric.iou_thrs, backend_args=metric.backend_args,
                       collect_device=metric.collect_device)
        recorder._coco_api = metric._coco_api  # None: converted from the dataset's annotations, as CocoMetric does
        return recorder

    def check_images(self, image_ids: Sequence) -> None:
        """The annotation file must hold every image of the test set (a :class:`StatsInputError` names one that
        it lacks); nothing to check when the annotations are converted from the dataset."""
        from ..stats.coco_records import check_images_annotated
        if self._coco_api is not None:
            check_images_annotated(self._coco_api, image_ids, self.ann_file)

    def compute_metrics(self, results: list) -> dict:
        from mmdet.datasets.api_wrappers import COCO
        from mmengine.fileio import load

        from ..stats.coco_records import evaluate_records, parse_metric
        if self.out_path is None:
            raise RuntimeError('PerImageCOCO has no out_path: set it before the test pass')
        gts, preds = zip(*results)
        self.check_images([p['img_id'] for p in preds])
        iou_type, _ = parse_metric(self.metric_key)
        with tempfile.TemporaryDirectory() as tmp:
            prefix = osp.join(tmp, 'results')
            if self._coco_api is None:
                self._coco_api = COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=prefix))
            if self.cat_ids is None:
                self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
            if self.img_ids is None:
                self.img_ids = self._coco_api.get_img_ids()
            predictions = load(self.results2json(preds, prefix)[iou_type])
        if iou_type == 'segm':
            for p in predictions:  # as CocoMetric: mask areas, not box areas
                p.pop('bbox')
        records = evaluate_records(self._coco_api, predictions, iou_type, self.cat_ids, self.img_ids,
                                   self.proposal_nums, self.iou_thrs, self.metric_key, self.ann_file)
        records.save(self.out_path)
        self.saved = _saved_record(self.out_path, records)
        prefix = self.metric_key.rpartition('/')[0]
        self.saved['metrics'] = {f'{prefix}/{iou_type}_{item}': v for item, v in records.stats().items()}
        return {}


def _coco_ann_file(evaluator_cfg) -> Optional[str]:
    """The ``ann_file`` of the CocoMetric in a ``test_evaluator`` config (for messages), if one names it."""
    cfgs = evaluator_cfg.get('metrics', evaluator_cfg) if isinstance(evaluator_cfg, dict) else evaluator_cfg
    for cfg in [cfgs] if isinstance(cfgs, dict) else list(cfgs or []):
        if isinstance(cfg, dict) and 'Coco' in str(cfg.get('type')) and cfg.get('ann_file'):
            return str(cfg['ann_file'])
    return None


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
    ``(None, why not)`` (a VOC key other than ``mAP``; a COCO key that is not ``<bbox|segm>_<item>``; no
    matching metric)."""
    prefix, _, name = metric_key.partition('/')
    for metric in metrics:
        if isinstance(metric, CocoMetric) and metric.prefix == prefix:
            from ..stats.checks import StatsInputError
            from ..stats.coco_records import parse_metric
            try:
                iou_type, _ = parse_metric(metric_key)
            except StatsInputError as err:
                return None, f'{err}: no intervals'
            if iou_type not in metric.metrics:
                return None, f'CocoMetric evaluates {metric.metrics}, not {iou_type} ({metric_key!r}): no intervals'
            return PerImageCOCO.like(metric, metric_key), ''
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
    return None, (f'per-image data are kept for VOCMetric (mAP), CocoMetric and Accuracy only; the test evaluator '
                  f'has {types}: no intervals for {metric_key!r}')


def add_per_image_recorder(evaluator, metric_key: str, dataset=None,
                           evaluator_cfg=None) -> Tuple[Optional[BaseMetric], str]:
    """Append the recorder to an mmengine ``Evaluator`` (after the configured metrics, so it never shadows their
    keys), with the evaluator's ``dataset_meta``: ``(recorder, '')`` or ``(None, why not)``.

    ``dataset``: the test dataset; a COCO recorder checks that the annotation file of ``CocoMetric`` (named from
    ``evaluator_cfg``, the ``test_evaluator`` config) holds every image of it, before anything is evaluated
    (:class:`~featquant_mmdet.stats.checks.StatsInputError` naming one image it lacks)."""
    recorder, why = per_image_recorder(evaluator.metrics, metric_key)
    if isinstance(recorder, PerImageCOCO) and dataset is not None:
        recorder.ann_file = recorder.ann_file or _coco_ann_file(evaluator_cfg)
        recorder.check_images([dataset.get_data_info(i)['img_id'] for i in range(len(dataset))])
    if recorder is not None:
        recorder.dataset_meta = evaluator.dataset_meta
        evaluator.metrics.append(recorder)
    return recorder, why
