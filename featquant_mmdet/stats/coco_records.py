"""Per-image COCO records: pycocotools' COCO metrics (AP, AP50, AP75, AP_s/m/l, AR@100, ...) of any multiset of
test images without matching boxes again.

``COCOeval.evaluate()`` matches, per image, category and area range, the image's top ``maxDets[-1]`` detections
(sorted by score) to its ground truth at every IoU threshold t (``evaluateImg``); it is run ONCE on the full set
(:func:`coco_records`) and what ``accumulate()`` reads is kept per detection: its score, image, category, rank in
its image's list and a status per (area range a, threshold t): ``0`` false positive, ``1`` true positive
(matched, not ignored), ``2``/``3`` ignored (``dtIgnore``: unmatched outside the area range / matched to an
ignored ground truth: ``iscrowd`` or outside the range); and per image, category and area range the number of
non-ignored ground-truth boxes (``gtIgnore == 0``). No gt ids, no pickle.

``accumulate()`` + ``summarize()`` then give, per category k, area range a and maxDet m, with the detections of
rank < m of all images sorted by score (a stable sort of the per-image lists concatenated in image-id order, as
pycocotools does) and ``w_i`` the multiplicity of image i (a bootstrap resample counts each copy)::

    TP_j = sum_{d <= j} w_d tp_d     FP_j = sum_{d <= j} w_d fp_d     npig = sum_i w_i npig_i
    rc_j = TP_j / npig               pr_j = TP_j / (TP_j + FP_j + eps)
    q(r) = max_{j: rc_j >= r} pr_j  (0 if none)   for r in 0, 0.01, .., 1 (101 points)
    AP_{t,k} = mean_r q(r)           recall_{t,k} = TP_last / npig
    AP = mean over t and the categories with npig > 0 (no ground truth: -1, left out; none at all: -1)

``q(r)`` is what pycocotools' envelope + ``searchsorted(rc, r, 'left')`` computes; the max is reached at a true
positive, so only true positives (and false-positive corrections) are visited per resample: the false positives
before each true positive are summed per image once per cell (a sparse image x event matrix), which keeps the
work linear in detections + resamples x true positives. A resample equals pycocotools on a dataset where the
drawn images are repeated (new ids): a copy ties with its original and adds a dominated point (tested); only
exact score ties between detections of different status are ordered differently from such a dataset.

Metric keys (:data:`STATS`): mmdet ``CocoMetric``'s ``<prefix>/<iou type>_<item>``, e.g. ``coco/bbox_mAP``,
``coco/bbox_mAP_50``, ``coco/bbox_AR@100``; values are fractions as ``COCOeval.stats`` (mmdet rounds its reported
values to 3 decimals; the records keep them exact).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .checks import StatsInputError, check_counts
from .records import FORMAT, save_npz

# mmdet CocoMetric's item -> (index in COCOeval.stats, 'ap' or 'ar', area label, maxDets index or the value 100,
# IoU threshold or None for the mean over all)
STATS = {
    'mAP': (0, 'ap', 'all', 100, None),
    'mAP_50': (1, 'ap', 'all', 2, 0.5),
    'mAP_75': (2, 'ap', 'all', 2, 0.75),
    'mAP_s': (3, 'ap', 'small', 2, None),
    'mAP_m': (4, 'ap', 'medium', 2, None),
    'mAP_l': (5, 'ap', 'large', 2, None),
    'AR@100': (6, 'ar', 'all', 0, None),
    'AR@300': (7, 'ar', 'all', 1, None),
    'AR@1000': (8, 'ar', 'all', 2, None),
    'AR_s@1000': (9, 'ar', 'small', 2, None),
    'AR_m@1000': (10, 'ar', 'medium', 2, None),
    'AR_l@1000': (11, 'ar', 'large', 2, None),
}
IOU_TYPES = ('bbox', 'segm')
FP, TP, IGNORED, IGNORED_MATCHED = 0, 1, 2, 3
_EPS = np.spacing(1)
_TARGET_ELEMENTS = 1 << 21  # events x resamples per chunk: ~16 MB per float64 work array


def parse_metric(metric: str) -> Tuple[str, str]:
    """``'coco/bbox_mAP_50'`` -> ``('bbox', 'mAP_50')``; a clear error lists the accepted names."""
    name = str(metric).split('/')[-1]
    iou_type, _, item = name.partition('_')
    if iou_type not in IOU_TYPES or item not in STATS:
        raise StatsInputError(f'COCO per-image records give <prefix>/<{"|".join(IOU_TYPES)}>_<item> with item one '
                              f'of {", ".join(STATS)} (mmdet CocoMetric keys), not {metric!r}')
    return iou_type, item


def check_images_annotated(coco_gt, image_ids: Sequence, ann_file: Optional[str] = None) -> None:
    """Every image the predictions name must be an image of the annotation file; the error names one that is not."""
    known = coco_gt.imgs
    missing = [i for i in image_ids if i not in known]
    if missing:
        where = ann_file or 'the COCO annotations'
        raise StatsInputError(f'{where} has no image {missing[0]!r} (named by {len(missing)} of the predicted '
                              f'images); it has {len(known)} images, e.g. {sorted(known)[:3]}: annotations and '
                              'test set must be the same images')


def evaluate_records(coco_gt, predictions: List[dict], iou_type: str = 'bbox', cat_ids: Optional[Sequence] = None,
                     img_ids: Optional[Sequence] = None, max_dets: Sequence[int] = (100, 300, 1000),
                     iou_thrs=None, metric: Optional[str] = None, ann_file: Optional[str] = None,
                     meta: Optional[dict] = None) -> 'COCORecords':
    """pycocotools' ``COCOeval(coco_gt, coco_gt.loadRes(predictions), iou_type).evaluate()`` with the parameters
    mmdet's ``CocoMetric`` sets (``catIds``, ``imgIds``, ``maxDets`` = its ``proposal_nums``, ``iouThrs``), as
    records. ``predictions``: COCO result dicts (``image_id``, ``category_id``, ``bbox`` or ``segmentation``,
    ``score``); images they name that ``coco_gt`` lacks are an error."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    check_images_annotated(coco_gt, sorted({p['image_id'] for p in predictions}, key=str), ann_file)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        if predictions:
            coco_dt = coco_gt.loadRes(predictions)
        else:  # loadRes cannot load an empty list: no detection at all
            coco_dt = COCO()
            coco_dt.dataset = dict(images=list(coco_gt.dataset['images']), annotations=[],
                                   categories=list(coco_gt.dataset.get('categories', [])))
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
        if cat_ids is not None:
            coco_eval.params.catIds = list(cat_ids)
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        coco_eval.params.maxDets = list(max_dets)
        if iou_thrs is not None:
            coco_eval.params.iouThrs = iou_thrs
        coco_eval.evaluate()
    return coco_records(coco_eval, metric=metric or f'coco/{iou_type}_mAP', meta=meta)


def coco_records(coco_eval, image_ids: Optional[Sequence[str]] = None, metric: str = 'coco/bbox_mAP',
                 meta: Optional[dict] = None) -> 'COCORecords':
    """The records of a ``COCOeval`` whose ``evaluate()`` has run (``evalImgs`` set; ``accumulate`` not needed).

    Detections, ground-truth counts and statuses are taken from ``evalImgs`` as they are; images are those of
    ``params.imgIds`` in its (sorted) order, named ``image_ids`` (default: ``str`` of the COCO ids).
    """
    p = coco_eval.params
    if not getattr(coco_eval, 'evalImgs', None):
        raise StatsInputError('COCOeval has no evalImgs: run evaluate() first (on at least one image)')
    if not p.useCats:
        raise StatsInputError('COCO per-image records need params.useCats=1 (per-category AP)')
    iou_type, _ = parse_metric(metric)
    cat_ids, img_ids = list(p.catIds), list(p.imgIds)
    n_k, n_a, n_i, n_t = len(cat_ids), len(p.areaRng), len(img_ids), len(p.iouThrs)
    if len(coco_eval.evalImgs) != n_k * n_a * n_i:
        raise StatsInputError(f'COCOeval.evalImgs has {len(coco_eval.evalImgs)} entries, expected categories x '
                              f'area ranges x images = {n_k} x {n_a} x {n_i}')
    npig = np.zeros((n_i, n_k, n_a), np.int32)
    scores, images, cats, ranks, codes = [], [], [], [], []
    evals = coco_eval.evalImgs
    for k in range(n_k):
        for i in range(n_i):
            per_area = [evals[(k * n_a + a) * n_i + i] for a in range(n_a)]
            if per_area[0] is None:  # no ground truth and no detection (for every area range alike)
                continue
            for a, e in enumerate(per_area):
                npig[i, k, a] = np.count_nonzero(np.asarray(e['gtIgnore']) == 0)
            n_d = len(per_area[0]['dtScores'])
            if n_d == 0:
                continue
            if any(e['dtIds'] != per_area[0]['dtIds'] for e in per_area):
                raise StatsInputError(f'COCOeval: image {img_ids[i]} category {cat_ids[k]}: detections differ '
                                      'between area ranges')
            code = np.empty((n_d, n_a, n_t), np.uint8)
            for a, e in enumerate(per_area):
                matched = np.asarray(e['dtMatches']).reshape(n_t, n_d) != 0  # gt id or 0, read as pycocotools
                ignored = np.asarray(e['dtIgnore']).reshape(n_t, n_d).astype(bool)
                code[:, a, :] = (matched + 2 * ignored).T
            scores.append(np.asarray(per_area[0]['dtScores'], np.float64))
            images.append(np.full(n_d, i, np.int32))
            cats.append(np.full(n_d, k, np.int32))
            ranks.append(np.arange(n_d, dtype=np.int32))
            codes.append(code)
    cat = lambda parts, shape, dtype: np.concatenate(parts) if parts else np.zeros(shape, dtype)  # noqa: E731
    info = dict(meta or {})
    info.update(iou_type=iou_type, cat_ids=[int(c) for c in cat_ids], iou_thrs=[float(t) for t in p.iouThrs],
                rec_thrs=[float(r) for r in p.recThrs], max_dets=[int(m) for m in p.maxDets],
                area_rngs=[[float(x) for x in r] for r in p.areaRng], area_labels=list(p.areaRngLbl))
    ids = [str(i) for i in img_ids] if image_ids is None else [str(i) for i in image_ids]
    return COCORecords(cat(scores, (0, ), np.float64), cat(images, (0, ), np.int32), cat(cats, (0, ), np.int32),
                       cat(ranks, (0, ), np.int32), cat(codes, (0, n_a, n_t), np.uint8), npig, ids, metric, info)


class COCORecords:
    """The per-image COCO records of one cell (see the module doc); ``value`` / ``values`` give ``metric``."""

    kind = 'coco'
    _ARRAYS = ('scores', 'images', 'cats', 'ranks', 'codes', 'npig')

    def __init__(self, scores, images, cats, ranks, codes, npig, image_ids: Sequence[str],
                 metric: str = 'coco/bbox_mAP', meta: Optional[dict] = None):
        self.meta = dict(meta or {})
        where = self.meta.get('file', 'COCO per-image records')
        for key in ('cat_ids', 'iou_thrs', 'rec_thrs', 'max_dets', 'area_rngs', 'area_labels'):
            if key not in self.meta:
                raise StatsInputError(f'{where}: meta lacks {key!r}')
        self.iou_thrs = np.asarray(self.meta['iou_thrs'], np.float64)
        self.rec_thrs = np.asarray(self.meta['rec_thrs'], np.float64)
        self.max_dets = [int(m) for m in self.meta['max_dets']]
        self.area_labels = list(self.meta['area_labels'])
        self.image_ids = [str(i) for i in image_ids]
        n_i, n_k, n_a, n_t = len(self.image_ids), len(self.meta['cat_ids']), len(self.area_labels), len(self.iou_thrs)
        self.scores = np.asarray(scores, np.float64).reshape(-1)
        n = self.scores.size
        self.images = np.asarray(images, np.int32).reshape(-1)
        self.cats = np.asarray(cats, np.int32).reshape(-1)
        self.ranks = np.asarray(ranks, np.int32).reshape(-1)
        self.codes = np.asarray(codes, np.uint8).reshape(n, n_a, n_t)
        self.npig = np.asarray(npig, np.int32).reshape(n_i, n_k, n_a)
        if not (self.images.shape == self.cats.shape == self.ranks.shape == (n, )):
            raise StatsInputError(f'{where}: per-detection arrays of different lengths')
        if n and (self.images.min() < 0 or self.images.max() >= n_i or self.cats.min() < 0
                  or self.cats.max() >= n_k or np.any(np.diff(self.cats) < 0)):
            raise StatsInputError(f'{where}: detections name images or categories out of range (or not '
                                  'category-major)')
        self.metric = metric
        self.iou_type, self.item = parse_metric(metric)
        if self.iou_type != self.meta.get('iou_type', self.iou_type):
            raise StatsInputError(f'{where}: records of {self.meta["iou_type"]} results, not {metric!r}')
        self._order: Dict[int, np.ndarray] = {}

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def with_metric(self, metric: str) -> 'COCORecords':
        """The same records reporting another key (``coco/bbox_mAP_50``, ...)."""
        return COCORecords(*(getattr(self, k) for k in self._ARRAYS), self.image_ids, metric, self.meta)

    def value(self, counts: Optional[np.ndarray] = None) -> float:
        """``metric`` on the multiset ``counts`` (n_images,) (all images once by default)."""
        counts = np.ones(self.num_images, np.int64) if counts is None else check_counts(counts, self.num_images)
        return float(self.values(counts[None])[0])

    def values(self, counts: np.ndarray) -> np.ndarray:
        """``metric`` of many multisets: ``counts`` (B, n_images) -> (B,)."""
        return self._stat(self.item, self._weights(counts))

    def stats(self, counts: Optional[np.ndarray] = None) -> Dict[str, float]:
        """All twelve ``COCOeval.stats`` on one multiset, by mmdet's item names (:data:`STATS`)."""
        counts = np.ones(self.num_images, np.int64) if counts is None else check_counts(counts, self.num_images)
        w = self._weights(counts[None])
        return {item: float(self._stat(item, w)[0]) for item in STATS}

    # ------------------------------------------------------------------------------------------------ accumulation

    def _weights(self, counts) -> np.ndarray:
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.num_images or not np.issubdtype(counts.dtype, np.integer):
            raise StatsInputError(f'counts must be integer (resamples, {self.num_images}), got {counts.shape} '
                                  f'{counts.dtype}')
        return counts.astype(np.float64)

    def _stat(self, item: str, w: np.ndarray) -> np.ndarray:
        """``COCOeval.stats[STATS[item][0]]`` per row of ``w`` (B, n_images): ``_summarize`` of pycocotools."""
        _, kind, area, m_index, iou = STATS[item]
        if m_index == 100:  # stats[0] is _summarize(1) with its default maxDets=100
            max_det = 100 if 100 in self.max_dets else None
        else:
            max_det = self.max_dets[m_index] if m_index < len(self.max_dets) else None
        t_idx = np.arange(len(self.iou_thrs)) if iou is None else np.flatnonzero(iou == self.iou_thrs)
        if max_det is None or area not in self.area_labels or t_idx.size == 0:
            return np.full(w.shape[0], -1.0)  # pycocotools: nothing selected, mean -1
        a = self.area_labels.index(area)
        npig = w @ self.npig[:, :, a].astype(np.float64)  # (B, K)
        valid = npig > 0
        n_valid = valid.sum(axis=1)
        if kind == 'ar':
            total = self._recall_sums(w, a, max_det, t_idx, npig)
        else:
            total = self._precision_sums(w, a, max_det, t_idx, npig) / len(self.rec_thrs)
        total = np.where(valid[:, None, :], total, 0.0).sum(axis=(1, 2))
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(n_valid > 0, total / (n_valid * len(t_idx)), -1.0)

    def _sorted(self, max_det: int) -> np.ndarray:
        """Indices of the detections of rank < max_det, per category by descending score (stable, as the
        concatenation of the per-image lists in image order that pycocotools mergesorts)."""
        if max_det not in self._order:
            idx = np.flatnonzero(self.ranks < max_det)
            self._order[max_det] = idx[np.lexsort((idx, -self.scores[idx], self.cats[idx]))]
        return self._order[max_det]

    def _recall_sums(self, w, a, max_det, t_idx, npig) -> np.ndarray:
        """sum over true positives of their weight / npig: (B, T', K) recalls (garbage where npig == 0)."""
        sel = np.flatnonzero(self.ranks < max_det)
        tp = self.codes[sel, a][:, t_idx] == TP  # (S, T')
        n_k = npig.shape[1]
        per_image = np.zeros((self.num_images, len(t_idx), n_k))
        for j in range(len(t_idx)):
            hit = sel[tp[:, j]]
            np.add.at(per_image[:, j, :], (self.images[hit], self.cats[hit]), 1.0)
        tps = np.einsum('bi,itk->btk', w, per_image)
        with np.errstate(invalid='ignore', divide='ignore'):
            return tps / npig[:, None, :]

    def _precision_sums(self, w, a, max_det, t_idx, npig) -> np.ndarray:
        """sum_r q(r) per (resample, threshold, category): (B, T', K) (see the module doc)."""
        order = self._sorted(max_det)
        code = self.codes[order, a][:, t_idx]  # (S, T') in sorted order
        cat = self.cats[order]
        img = self.images[order]
        tp = code == TP
        matched = (code & 1).astype(bool)
        in_x = (code == FP).any(axis=1)  # false positive at some threshold: inside the area range
        xm = matched & in_x[:, None]  # ... and matched at this one: not a false positive here
        n_b, n_k, n_t = w.shape[0], npig.shape[1], len(t_idx)
        out = np.zeros((n_b, n_t, n_k))
        union = np.flatnonzero(tp.any(axis=1) | xm.any(axis=1))  # events of any threshold
        if union.size == 0:
            return out
        # false-positive candidates summed per (next event, image): cumX at an event = cumsum within its category
        x_pos = np.flatnonzero(in_x)
        seg = np.searchsorted(union, x_pos)  # first event at or after the candidate
        keep = seg < union.size
        keep[keep] = cat[union[seg[keep]]] == cat[x_pos[keep]]  # an event of the same category
        from scipy.sparse import csr_matrix
        x_mat = csr_matrix((np.ones(int(keep.sum())), (seg[keep], img[x_pos[keep]])),
                           shape=(union.size, self.num_images))
        u_start = _group_starts(cat[union])
        # per-threshold events, grouped (threshold, category), in sorted order
        ev_t, ev_pos = np.nonzero((tp | xm).T)
        ev_u = np.searchsorted(union, ev_pos)
        ev_cat = cat[ev_pos]
        group = ev_t * n_k + ev_cat
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ev_start = np.repeat(starts, np.diff(np.r_[starts, group.size]))
        ev_tp = tp[ev_pos, ev_t].astype(np.float64)[:, None]
        ev_xm = xm[ev_pos, ev_t].astype(np.float64)[:, None] if xm.any() else None
        ev_img = img[ev_pos]
        n_groups = starts.size
        offset = 2.0 * (n_groups - 1 - np.repeat(np.arange(n_groups), np.diff(np.r_[starts, group.size])))[:, None]
        r_last = len(self.rec_thrs) - 1
        thr = self.rec_thrs
        chunk = max(1, _TARGET_ELEMENTS // max(group.size, union.size))
        wt = np.ascontiguousarray(w.T)  # (n_images, B)
        for b0 in range(0, n_b, chunk):
            wc = wt[:, b0:b0 + chunk]
            cum_x = _grouped_cumsum(x_mat @ wc, u_start)[ev_u]  # (E, Bc)
            we = wc[ev_img]
            cum_tp = _grouped_cumsum(we * ev_tp, ev_start)
            cum_fp = cum_x - _grouped_cumsum(we * ev_xm, ev_start) if ev_xm is not None else cum_x
            pr = cum_tp / (cum_fp + cum_tp + _EPS)
            n_gt = npig[b0:b0 + chunk].T[ev_cat]  # (E, Bc)
            with np.errstate(invalid='ignore', divide='ignore'):
                rc = np.nan_to_num(cum_tp / n_gt, nan=0.0, posinf=0.0)
            # envelope: suffix max within each group (offsets keep groups apart; rounding < 1e-12)
            env = np.maximum.accumulate((pr + offset)[::-1], axis=0)[::-1] - offset
            # number of recall thresholds <= rc: floor(100 rc) corrected by the two neighbouring thresholds
            j0 = np.minimum(np.floor(rc * r_last).astype(np.int64), r_last)
            n_le = j0 + (thr[j0] <= rc) + ((j0 < r_last) & (thr[np.minimum(j0 + 1, r_last)] <= rc))
            n_prev = np.empty_like(n_le)
            n_prev[1:] = n_le[:-1]
            n_prev[starts] = 0
            sums = np.add.reduceat(env * (n_le - n_prev), starts, axis=0)  # (groups, Bc)
            g_t, g_k = divmod(group[starts], n_k)
            out[b0:b0 + chunk, g_t, g_k] = sums.T
        return out

    # ------------------------------------------------------------------------------------------------------ files

    def save(self, path: str) -> str:
        meta = dict(self.meta, format=FORMAT, kind=self.kind, metric=self.metric)
        meta.pop('file', None)
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        arrays['image_ids'] = np.array(self.image_ids, dtype=str)
        return save_npz(path, arrays, meta)

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> 'COCORecords':
        missing = [k for k in cls._ARRAYS if k not in arrays]
        if missing:
            raise StatsInputError(f'{meta.get("file")}: COCO per-image records incomplete, missing {missing}')
        return cls(*(arrays[k] for k in cls._ARRAYS), arrays['image_ids'].tolist(), meta.get('metric',
                                                                                            'coco/bbox_mAP'), meta)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """For each element of a grouped (contiguous) key array, the index where its group starts."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.repeat(starts, np.diff(np.r_[starts, keys.size]))


def _grouped_cumsum(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 0 restarting at each group (``start``: each row's group start); exact for
    integer-valued float64 below 2**53."""
    cs = np.cumsum(x, axis=0)
    before = np.zeros_like(cs)
    before[1:] = cs[:-1]
    return cs - before[start]
