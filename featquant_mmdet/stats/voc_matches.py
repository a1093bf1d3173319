"""Per-image VOC match records: mAP of any multiset of test images without re-matching boxes.

mmdet's ``eval_map`` (what ``VOCMetric`` calls) matches each image's detections to its ground truth per class
(``tpfp_default``: a detection is a true positive when its best-overlapping ground-truth box has IoU >= thr and is
not taken yet; matched to an ignored (difficult) box it is neither TP nor FP), then per class sorts all detections
by score and computes::

    recall_k    = cumTP_k / n_gt          precision_k = cumTP_k / max(cumTP_k + cumFP_k, eps)
    AP (11points) = 1/11 sum_{t in 0, .1, .., 1} max_{k: recall_k >= t} precision_k
    AP (area)     = sum_k (recall_k - recall_{k-1}) * max_{j >= k} precision_j
    mAP           = mean of AP over the classes with n_gt > 0 (mean over IoU thresholds too, as VOCMetric)

Matching depends on one image only, so it is done ONCE per image (:func:`match_records`, reusing mmdet's
``tpfp_default`` / ``tpfp_imagenet``); a record is ``(score, tp, fp, class, image)`` per detection, plus the
number of non-ignored ground-truth boxes per image and class. A multiset of images (a bootstrap resample repeats
images) is then a weight per image: cumTP and n_gt become weighted sums, which is exactly what ``eval_map`` gives
on the list with the repeated images (a repeated detection ties with its copy; the merged step leaves both APs
unchanged). :meth:`VOCMatches.map` recomputes one multiset with mmdet's ``average_precision`` (bit-identical to
``VOCMetric`` on the full set); :meth:`VOCMatches.map_batch` does many resamples at once, vectorised (same
formulas, tested equal to the former).

Storage (:meth:`VOCMatches.save`): one ``.npz`` per cell (records sorted class-major as mmdet orders them, ``n_gt``
per image and class, the image ids and a JSON ``meta``), no pickle.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .checks import StatsInputError, check_counts
from .records import FORMAT, load_per_image, save_npz  # noqa: F401 (load_per_image: its former home)

TPFP_KINDS = ('default', 'imagenet')
EVAL_MODES = ('11points', 'area')
# np.arange(0, 1 + 1e-3, 0.1) as mmdet's average_precision iterates it (0.30000000000000004 etc.: recall
# comparisons must use the very same thresholds)
ELEVEN_POINTS = np.arange(0, 1 + 1e-3, 0.1)
_EPS32 = np.finfo(np.float32).eps


def _tpfp_fn(kind: str):
    from mmdet.evaluation.functional.mean_ap import tpfp_default, tpfp_imagenet
    if kind not in TPFP_KINDS:
        raise StatsInputError(f'tpfp kind {kind!r} not supported; accepted: {TPFP_KINDS}')
    return tpfp_default if kind == 'default' else tpfp_imagenet


def _iou_list(iou_thrs) -> List[float]:
    ious = [float(iou_thrs)] if isinstance(iou_thrs, (int, float)) else [float(t) for t in iou_thrs]
    if not ious or any(not 0 < t <= 1 for t in ious):
        raise StatsInputError(f'iou_thrs must be one or more values in (0, 1], got {iou_thrs!r}')
    return ious


def match_records(results: Sequence[Tuple[dict, list]], num_classes: int, iou_thrs=0.5,
                  eval_mode: str = '11points', use_legacy_coordinate: bool = True, tpfp: str = 'default',
                  image_ids: Optional[Sequence[str]] = None, meta: Optional[dict] = None) -> 'VOCMatches':
    """Match every image's detections once, as ``eval_map`` would.

    Args:
        results: ``VOCMetric.results``: one ``(ann, dets)`` per image, ``ann`` with ``bboxes`` (n, 4), ``labels``
            (n,) and optionally ``bboxes_ignore`` / ``labels_ignore`` (difficult boxes), ``dets`` a list of
            ``num_classes`` arrays (k, 5) of ``x1, y1, x2, y2, score``.
        num_classes: the dataset's class count (``len(dataset_meta['classes'])``).
        iou_thrs, eval_mode, use_legacy_coordinate: as ``VOCMetric`` (which uses legacy coordinates, i.e.
            ``w = x2 - x1 + 1``) passes them to ``eval_map``; no ``scale_ranges`` (VOCMetric's mAP cannot
            average per-scale lists either).
        tpfp: ``'default'`` (what VOCMetric uses) or ``'imagenet'`` (``eval_map``'s choice for ImageNet DET/VID).
        image_ids: one id per image (default ``'0'``, ``'1'``, ...): the identity checked when cells are compared.
    """
    ious = _iou_list(iou_thrs)
    if eval_mode not in EVAL_MODES:
        raise StatsInputError(f'eval_mode {eval_mode!r} not supported; accepted: {EVAL_MODES}')
    if not isinstance(num_classes, int) or num_classes < 1:
        raise StatsInputError(f'num_classes must be a positive int, got {num_classes!r}')
    fn = _tpfp_fn(tpfp)
    n_img = len(results)
    ids = [str(i) for i in range(n_img)] if image_ids is None else [str(i) for i in image_ids]
    if len(ids) != n_img:
        raise StatsInputError(f'{len(ids)} image ids for {n_img} images')
    for index, (ann, dets) in enumerate(results):
        if len(dets) != num_classes:
            raise StatsInputError(f'image {ids[index]}: {len(dets)} per-class detection arrays, expected '
                                  f'{num_classes} (one per class)')
    n_gt = np.zeros((n_img, num_classes), dtype=np.int64)
    scores, tps, fps, labels, images = [], [], [], [], []
    for c in range(num_classes):
        for i, (ann, dets) in enumerate(results):
            gt_bboxes = np.asarray(ann['bboxes']).reshape(-1, 4)[np.asarray(ann['labels']) == c]
            if ann.get('labels_ignore', None) is not None:
                ignore = np.asarray(ann['bboxes_ignore']).reshape(-1, 4)[np.asarray(ann['labels_ignore']) == c]
            else:
                ignore = np.empty((0, 4), dtype=np.float32)
            n_gt[i, c] = gt_bboxes.shape[0]
            det = np.asarray(dets[c]).reshape(-1, 5)
            if det.shape[0] == 0:
                continue
            tp = np.empty((det.shape[0], len(ious)), dtype=np.uint8)
            fp = np.empty_like(tp)
            for t, thr in enumerate(ious):
                tp_t, fp_t = fn(det, gt_bboxes, ignore, thr, None, use_legacy_coordinate)
                tp[:, t], fp[:, t] = tp_t[0], fp_t[0]
            scores.append(det[:, 4])
            tps.append(tp)
            fps.append(fp)
            labels.append(np.full(det.shape[0], c, dtype=np.int32))
            images.append(np.full(det.shape[0], i, dtype=np.int32))
    cat = lambda parts, shape, dtype: np.concatenate(parts) if parts else np.zeros(shape, dtype)  # noqa: E731
    info = dict(meta or {})
    info.update(iou_thrs=ious, eval_mode=eval_mode, use_legacy_coordinate=bool(use_legacy_coordinate), tpfp=tpfp,
                num_classes=num_classes)
    return VOCMatches(scores=cat(scores, (0, ), np.float32), tp=cat(tps, (0, len(ious)), np.uint8),
                      fp=cat(fps, (0, len(ious)), np.uint8), labels=cat(labels, (0, ), np.int32),
                      images=cat(images, (0, ), np.int32), n_gt=n_gt, image_ids=ids, meta=info)


def match_records_from_metric(metric, results: Sequence[Tuple[dict, list]],
                              image_ids: Optional[Sequence[str]] = None, meta: Optional[dict] = None):
    """:func:`match_records` with the settings of a built mmdet ``VOCMetric`` (its ``results`` list)."""
    if getattr(metric, 'scale_ranges', None) is not None:
        raise StatsInputError('per-image VOC records need VOCMetric(scale_ranges=None) (per-scale mAP is not '
                              'averaged by VOCMetric either)')
    if getattr(metric, 'metric', 'mAP') != 'mAP':
        raise StatsInputError(f'per-image VOC records need VOCMetric(metric="mAP"), got {metric.metric!r}')
    classes = metric.dataset_meta.get('classes') or metric.dataset_meta.get('CLASSES')
    return match_records(results, len(classes), metric.iou_thrs, metric.eval_mode, True, 'default', image_ids,
                         meta)


class VOCMatches:
    """The match records of one cell (see the module doc); ``map`` / ``map_batch`` give mAP as ``VOCMetric``'s
    ``mAP`` (a fraction in [0, 1])."""

    kind = 'voc'

    def __init__(self, scores, tp, fp, labels, images, n_gt, image_ids: Sequence[str], meta: dict):
        self.scores = np.asarray(scores)
        self.tp = np.asarray(tp, dtype=np.uint8).reshape(len(self.scores), -1)
        self.fp = np.asarray(fp, dtype=np.uint8).reshape(len(self.scores), -1)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.images = np.asarray(images, dtype=np.int32)
        self.n_gt = np.asarray(n_gt, dtype=np.int64)
        self.image_ids = [str(i) for i in image_ids]
        self.meta = dict(meta)
        self.iou_thrs = _iou_list(self.meta['iou_thrs'])
        self.eval_mode = self.meta['eval_mode']
        self.num_classes = int(self.meta['num_classes'])
        n = len(self.scores)
        if not (self.tp.shape == self.fp.shape == (n, len(self.iou_thrs)) and self.labels.shape == (n, )
                and self.images.shape == (n, ) and self.n_gt.shape == (len(self.image_ids), self.num_classes)):
            raise StatsInputError(f'inconsistent VOC match records ({self.meta.get("file", "in memory")}): '
                                  f'{n} scores, tp {self.tp.shape}, fp {self.fp.shape}, labels {self.labels.shape},'
                                  f' images {self.images.shape}, n_gt {self.n_gt.shape} for '
                                  f'{len(self.image_ids)} images x {self.num_classes} classes')
        if n and (self.images.min() < 0 or self.images.max() >= self.num_images):
            raise StatsInputError(f'VOC match records ({self.meta.get("file", "in memory")}): image index out '
                                  f'of range [0, {self.num_images})')
        # per class, the records in eval_map's order: vstack in image order, then np.argsort(-score) (the same
        # call on the same array, so ties resolve as in VOCMetric)
        self._by_class = []
        for c in range(self.num_classes):
            idx = np.flatnonzero(self.labels == c)
            idx = idx[np.argsort(-self.scores[idx])]
            self._by_class.append((self.images[idx], self.tp[idx].T.astype(np.float32),
                                   self.fp[idx].T.astype(np.float32)))

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    # ---------------------------------------------------------------------------------------------------------
    def map(self, counts: Optional[np.ndarray] = None) -> float:
        """mAP of the multiset of images with multiplicity ``counts`` (n_images,), all images once by default;
        per class with mmdet's ``average_precision``."""
        from mmdet.evaluation.functional.mean_ap import average_precision
        counts = np.ones(self.num_images, np.int64) if counts is None else check_counts(counts, self.num_images)
        n_gt = counts @ self.n_gt  # (C,)
        means = []
        for t in range(len(self.iou_thrs)):
            aps = []
            for c, (img, tp, fp) in enumerate(self._by_class):
                w = counts[img].astype(np.float64)
                keep = w > 0
                tp_c = np.cumsum(tp[t][keep] * w[keep]).astype(np.float32)  # exact integers
                fp_c = np.cumsum(fp[t][keep] * w[keep]).astype(np.float32)
                recalls = tp_c / np.maximum(np.array([n_gt[c]]), _EPS32)
                precisions = tp_c / np.maximum(tp_c + fp_c, _EPS32)
                if n_gt[c] > 0:
                    aps.append(average_precision(recalls, precisions, self.eval_mode))
            means.append(np.array(aps).mean().item() if aps else 0.0)
        return sum(means) / len(means)

    def value(self, counts: Optional[np.ndarray] = None) -> float:
        """The cell's metric (``pascal_voc/mAP``) on a multiset of images."""
        return self.map(counts)

    def map_batch(self, counts: np.ndarray, block: int = 256) -> np.ndarray:
        """mAP of many multisets at once: ``counts`` (B, n_images) -> (B,), in blocks of ``block`` resamples.

        Only the points of the PR curve at true positives matter (a false positive lowers precision at an
        unchanged recall, dominated by the point before it), and there the cumulative counts are linear in the
        image weights ``w`` (a resample's row of ``counts``). Per threshold and class, with the records in
        eval_map's order and the k-th true positive at record ``j_k`` (:meth:`_tp_points`)::

            cumTP_k = sum_{k' <= k} w[image of TP k']          (a cumsum over the TPs' image weights)
            cumFP_k = sum_{k' <= k} (S @ w)_{k'}                (S[k', i]: FP records of image i between
                                                                 the TPs k'-1 and k', a sparse matrix)

        so time and memory are linear in records + images (times B); per block one (n_images, block) weight
        matrix, per class (n_tp, block) arrays. The counts are exact integers, cast to float32 as eval_map has
        them, then the AP of every row (:func:`_ap_batch`): the same values as the former dense formulation
        (:func:`.voc_reference.map_batch_dense`, quadratic; tested equal).
        """
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.num_images:
            raise StatsInputError(f'counts must be (resamples, {self.num_images}), got {counts.shape}')
        points = self._tp_points()
        n_gt = counts.astype(np.float64) @ self.n_gt  # (B, C)
        has_gt = n_gt > 0
        n_valid = has_gt.sum(axis=1)
        # cumulative counts are integers <= (images in a resample) x (records of one image): exact in float32
        # below 2^24, as the float32 counts eval_map computes with
        exact32 = counts.size == 0 or int(counts.sum(axis=1).max()) * self._max_records_per_image < 2 ** 24
        dtype = np.float32 if exact32 else np.float64
        out = np.zeros(counts.shape[0])
        for lo in range(0, counts.shape[0], block):
            hi = min(lo + block, counts.shape[0])
            rows = counts[lo:hi].astype(dtype)  # (b, n_images)
            weights = np.ascontiguousarray(rows.T)  # (n_images, b)
            for t in range(len(self.iou_thrs)):
                ap = np.zeros((hi - lo, self.num_classes))
                for c, (tp_images, fp_segments) in enumerate(points[t]):
                    if tp_images.size:
                        tp_cum = np.cumsum(rows[:, tp_images], axis=1)  # (b, n_tp)
                        fp_cum = np.cumsum(np.ascontiguousarray((fp_segments.astype(dtype) @ weights).T), axis=1)
                        ap[:, c] = _ap_batch(tp_cum.astype(np.float32), fp_cum.astype(np.float32), n_gt[lo:hi, c],
                                             self.eval_mode)
                total = np.where(has_gt[lo:hi], ap, 0.0).sum(axis=1)
                out[lo:hi] += np.where(n_valid[lo:hi] > 0, total / np.maximum(n_valid[lo:hi], 1), 0.0)
        return out / len(self.iou_thrs)

    def _tp_points(self):
        """``points[t][c] = (tp_images, S)``: the image of each true positive of threshold t, class c (in eval_map's
        order) and the sparse (n_tp, n_images) counts of false-positive records between consecutive true
        positives (before the first one for row 0; those after the last TP never matter). O(records), cached."""
        if getattr(self, '_points', None) is None:
            from scipy.sparse import csr_matrix
            points = []
            for t in range(len(self.iou_thrs)):
                points.append([])
                for img, tp, fp in self._by_class:
                    pos = np.flatnonzero(tp[t])
                    fp_pos = np.flatnonzero(fp[t])
                    fp_pos = fp_pos[fp_pos < (pos[-1] if pos.size else 0)]
                    rows = np.searchsorted(pos, fp_pos)  # the TP each FP record precedes
                    segments = csr_matrix((np.ones(fp_pos.size, np.float32), (rows, img[fp_pos])),
                                          shape=(pos.size, self.num_images))
                    segments.sum_duplicates()
                    points[t].append((img[pos].astype(np.intp), segments))
            self._points = points
            self._max_records_per_image = int(np.bincount(self.images).max()) if self.images.size else 0
        return self._points

    def values(self, counts: np.ndarray) -> np.ndarray:
        return self.map_batch(counts)

    def subset(self, indices: Sequence[int], image_ids: Optional[Sequence[str]] = None) -> 'VOCMatches':
        """The records of the images ``indices`` (repeats allowed: a repeated image is a new image with the same
        records), in that order: what :func:`match_records` gives on ``[results[i] for i in indices]``. O(records)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0 or indices.min() < 0 or indices.max() >= self.num_images:
            raise StatsInputError(f'subset: need image indices in [0, {self.num_images}), got {indices.size} '
                                  f'indices' + (f' in [{indices.min()}, {indices.max()}]' if indices.size else ''))
        if getattr(self, '_by_image', None) is None:  # records by image, their order kept within an image
            order = np.argsort(self.images, kind='stable')
            self._by_image = order, np.searchsorted(self.images[order], np.arange(self.num_images + 1))
        order, starts = self._by_image
        lengths = starts[indices + 1] - starts[indices]
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rec = order[np.repeat(starts[indices], lengths) + offsets]  # image-major in the new order
        new_image = np.repeat(np.arange(indices.size), lengths)
        by_class = np.argsort(self.labels[rec], kind='stable')  # class-major, as match_records stores them
        rec, new_image = rec[by_class], new_image[by_class]
        ids = [self.image_ids[i] for i in indices] if image_ids is None else image_ids
        return VOCMatches(self.scores[rec], self.tp[rec], self.fp[rec], self.labels[rec], new_image,
                          self.n_gt[indices], ids, self.meta)

    # ---------------------------------------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> 'VOCMatches':
        """The records of a loaded per-image file (:func:`.records.load_per_image`)."""
        required = ('scores', 'tp', 'fp', 'labels', 'images', 'n_gt')
        missing = [k for k in required if k not in arrays]
        if missing:
            raise StatsInputError(f'{meta.get("file")}: per-image VOC data incomplete, missing {missing}')
        return cls(arrays['scores'], arrays['tp'], arrays['fp'], arrays['labels'], arrays['images'],
                   arrays['n_gt'], arrays['image_ids'].tolist(), meta)

    def save(self, path: str) -> str:
        """Write the records to ``path`` (``.npz``) atomically; returns the path."""
        meta = dict(self.meta, format=FORMAT, kind=self.kind)
        meta.pop('file', None)
        arrays = dict(scores=self.scores, tp=self.tp, fp=self.fp, labels=self.labels, images=self.images,
                      n_gt=self.n_gt.astype(np.int32), image_ids=np.array(self.image_ids, dtype=str))
        return save_npz(path, arrays, meta)


def _ap_batch(tp_cum: np.ndarray, fp_cum: np.ndarray, n_gt: np.ndarray, mode: str) -> np.ndarray:
    """AP of every row of cumulative TP/FP counts (B, n) with ``n_gt`` (B,) positives, as ``average_precision``
    computes it for one row (recall in float64, precision in float32 as ``eval_map`` has them)."""
    recalls = tp_cum.astype(np.float64) / np.maximum(n_gt, _EPS32)[:, None]
    precisions = tp_cum / np.maximum(tp_cum + fp_cum, _EPS32)
    # the precision envelope: max over the positions at or after k (recall never decreases along a row)
    envelope = np.maximum.accumulate(precisions[:, ::-1], axis=1)[:, ::-1]
    if mode == 'area':
        steps = np.diff(recalls, axis=1, prepend=0.0)
        return (steps * envelope).sum(axis=1)
    # 11 points: the first position with recall >= thr is the number of positions with recall < thr, i.e. with
    # fewer than j + 1 thresholds <= recall (one searchsorted and a per-row histogram instead of 11 passes)
    b, n = recalls.shape
    below = np.searchsorted(ELEVEN_POINTS, recalls, side='right')  # thresholds <= recall, 0..11
    hist = np.bincount((np.arange(b)[:, None] * 12 + below).ravel(), minlength=b * 12).reshape(b, 12)
    first = np.cumsum(hist, axis=1)[:, :11]  # (b, 11): positions with recall < ELEVEN_POINTS[j]
    picked = np.take_along_axis(envelope, np.minimum(first, n - 1), axis=1)
    picked = np.where(first < n, picked, 0).astype(np.float64)
    ap = np.zeros(b)
    for j in range(11):  # summed in threshold order, as average_precision does
        ap += picked[:, j]
    return ap / 11
