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
_TARGET_ELEMENTS = 1 << 18  # events x resamples per chunk: 2 MB per float64 work array (stays in cache)


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
        raise StatsInputError(f'{where} has no image {missing[0]!r} of the test set ({len(missing)} of '
                              f'{len(image_ids)} missing); it has {len(known)} images, e.g. {sorted(known)[:3]}: '
                              'annotations and test set must be the same images')


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
        tps = (w @ per_image.reshape(self.num_images, -1)).reshape(w.shape[0], len(t_idx), n_k)
        with np.errstate(invalid='ignore', divide='ignore'):
            return tps / npig[:, None, :]

    def _precision_sums(self, w, a, max_det, t_idx, npig) -> np.ndarray:
        """sum_r q(r) per (resample, threshold, category): (B, T', K) (see the module doc).

        Per category, the true positives of each threshold are the events; at an event, ``TP + FP`` is the number
        of detections up to it that are not ignored: those not ignored at some threshold (summed per image and
        event once, a sparse matrix) less those among them ignored at this threshold (rare: crowd boxes, area
        boundaries)."""
        from scipy.sparse import csr_matrix
        order = self._sorted(max_det)
        code = self.codes[order, a][:, t_idx]  # (S, T') in sorted order
        cat, img = self.cats[order], self.images[order]
        tp = code == TP
        counted = code <= TP  # FP or TP: not ignored
        in_x = counted.any(axis=1)
        n_b, n_k, n_t = w.shape[0], npig.shape[1], len(t_idx)
        out = np.zeros((n_b, n_t, n_k))
        union = np.flatnonzero(tp.any(axis=1))  # positions of the events of any threshold
        if union.size == 0:
            return out
        x_pos = np.flatnonzero(in_x)
        seg = np.searchsorted(union, x_pos)  # the first event at or after each counted detection ...
        keep = seg < union.size
        keep[keep] = cat[union[seg[keep]]] == cat[x_pos[keep]]  # ... of its category
        x_mat = csr_matrix((np.ones(int(keep.sum())), (seg[keep], img[x_pos[keep]])),
                           shape=(union.size, self.num_images))
        u_bound = np.searchsorted(cat[union], np.arange(n_k + 1))
        ev = _events(tp, cat, n_t)  # (k, t, pos) sorted
        e_bound = np.searchsorted(ev[0], np.arange(n_k + 1))
        ev_u = np.searchsorted(union, ev[2])
        cr = _events(in_x[:, None] & ~counted, cat, n_t)  # counted at some threshold, ignored at this one
        if cr[0].size:
            c_bound = np.searchsorted(cr[0], np.arange(n_k + 1))
            c_key, e_key = (cr[0] * n_t + cr[1]) * code.shape[0] + cr[2], (ev[0] * n_t + ev[1]) * code.shape[0]
            c_hi = np.searchsorted(c_key, e_key + ev[2], 'right')  # corrections up to the event, in its group
            c_lo = np.searchsorted(c_key, e_key)
        r_last = len(self.rec_thrs) - 1
        step = 1.0 / r_last
        uniform = np.array_equal(self.rec_thrs, np.arange(r_last + 1) * step)  # pycocotools' linspace(0, 1, 101)
        n_gt = np.where(npig > 0, npig, np.inf)  # rc = 0 where the category has no ground truth (left out)
        wt = np.ascontiguousarray(w.T)  # (n_images, B): the sparse products below read it row by row
        size = max(_TARGET_ELEMENTS, int(np.diff(e_bound).max()))
        buffers = [np.empty(size) for _ in range(4)]  # work arrays reused by every block (no allocation per block)
        for k in range(n_k):
            e0, e1 = e_bound[k], e_bound[k + 1]
            if e0 == e1:
                continue  # no true positive: AP 0 (where npig > 0)
            cum_x = x_mat[u_bound[k]:u_bound[k + 1]] @ wt  # (events of k, B): counted detections per segment ...
            np.cumsum(cum_x, axis=0, out=cum_x)  # ... and up to each event
            cum_x = np.ascontiguousarray(cum_x.T)
            img_k, u_k = img[ev[2][e0:e1]], ev_u[e0:e1] - u_bound[k]
            g_t = ev[1][e0:e1]
            starts = np.flatnonzero(np.r_[True, g_t[1:] != g_t[:-1]])
            bounds = list(zip(starts, np.r_[starts[1:], g_t.size]))
            if cr[0].size and c_bound[k + 1] > c_bound[k]:
                c0, c1 = c_bound[k], c_bound[k + 1]
                c_img = img[cr[2][c0:c1]]
                hi, lo = c_hi[e0:e1] - c0, c_lo[e0:e1] - c0
            else:
                c_img = None
            chunk = max(1, _TARGET_ELEMENTS // (e1 - e0))
            for b0 in range(0, n_b, chunk):
                wc = w[b0:b0 + chunk]
                shape = (wc.shape[0], e1 - e0)
                cum_tp, env, n_le, tmp = (buf[:shape[0] * shape[1]].reshape(shape) for buf in buffers)
                np.take(wc, img_k, axis=1, out=cum_tp)
                for s0, s1 in bounds:  # true positives up to each event, per threshold
                    np.cumsum(cum_tp[:, s0:s1], axis=1, out=cum_tp[:, s0:s1])
                np.take(cum_x[b0:b0 + chunk], u_k, axis=1, out=env)  # TP + FP at each event
                if c_img is not None:
                    cum_c = np.zeros((wc.shape[0], c_img.size + 1))
                    np.cumsum(wc[:, c_img], axis=1, out=cum_c[:, 1:])
                    env -= cum_c[:, hi] - cum_c[:, lo]
                env += _EPS
                np.divide(cum_tp, env, out=env)  # precision, then its suffix max within each group
                for s0, s1 in bounds:
                    rev = env[:, s0:s1][:, ::-1]
                    np.maximum.accumulate(rev, axis=1, out=rev)
                rc = cum_tp
                rc /= n_gt[b0:b0 + chunk, k, None]
                if uniform:  # thresholds <= rc: m = round(100 rc), then thr_m <= rc as searchsorted compares
                    np.multiply(rc, r_last, out=n_le)
                    np.rint(n_le, out=n_le)
                    np.multiply(n_le, step, out=tmp)
                    n_le += tmp <= rc
                else:
                    n_le[...] = np.searchsorted(self.rec_thrs, rc.ravel(), 'right').reshape(shape)
                d_n = tmp  # thresholds first reached at each event
                np.subtract(n_le[:, 1:], n_le[:, :-1], out=d_n[:, 1:])
                d_n[:, starts] = n_le[:, starts]
                env *= d_n
                out[b0:b0 + chunk, g_t[starts], k] = np.add.reduceat(env, starts, axis=1)
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


def _events(flags: np.ndarray, cat: np.ndarray, n_t: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(category, threshold, position)`` of the True entries of ``flags`` (positions x thresholds, positions
    sorted by category), sorted by category, threshold, position."""
    t, pos = np.nonzero(flags.T)  # sorted by (t, pos)
    k = cat[pos]
    order = np.argsort(k * n_t + t, kind='stable')
    return k[order], t[order], pos[order]
