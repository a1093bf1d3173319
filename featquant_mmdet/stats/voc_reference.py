"""The former, quadratic ``VOCMatches.map_batch`` (commit 7a0dc21), kept verbatim as the reference that the
linear one (:meth:`.voc_matches.VOCMatches.map_batch`) is tested equal to and benchmarked against
(benchmarks/bench_bootstrap.py). Not used by the library: at 4952 images it takes ~20 s and 512 MB per cell."""
import numpy as np

from .voc_matches import _EPS32, ELEVEN_POINTS


def map_batch_dense(records, counts: np.ndarray) -> np.ndarray:
    """The former, quadratic :meth:`VOCMatches.map_batch`, kept as the reference the linear one is tested and
    benchmarked against: per (threshold, class) dense (n_images, n_records) cumulative counts ``M_tp`` / ``M_fp`` at
    the true positives, then ``cumTP = W @ M_tp``, ``cumFP = W @ M_fp`` (one float32 matrix product)."""
    m_tp, m_fp, segments, start = [], [], [], 0
    for t in range(len(records.iou_thrs)):
        segments.append([])
        for img, tp, fp in records._by_class:
            pos = np.flatnonzero(tp[t])
            n = img.size
            seen_tp = np.zeros((records.num_images, n), np.float32)
            seen_tp[img, np.arange(n)] = tp[t]
            seen_fp = np.zeros((records.num_images, n + 1), np.float32)
            seen_fp[img, np.arange(1, n + 1)] = fp[t]
            m_tp.append(np.cumsum(seen_tp, axis=1)[:, pos])  # TP records at or before the k-th TP
            m_fp.append(np.cumsum(seen_fp, axis=1)[:, pos])  # FP records before it
            segments[t].append((start, start + pos.size))
            start += pos.size
    m_tp, m_fp = np.concatenate(m_tp, axis=1), np.concatenate(m_fp, axis=1)
    weights = np.asarray(counts).astype(np.float32)
    tp_cum, fp_cum = weights @ m_tp, weights @ m_fp  # (B, N)
    n_gt = np.asarray(counts).astype(np.float64) @ records.n_gt  # (B, C)
    has_gt = n_gt > 0
    n_valid = has_gt.sum(axis=1)
    out = np.zeros(weights.shape[0])
    for t in range(len(records.iou_thrs)):
        ap = np.zeros(n_gt.shape, dtype=np.float64)
        for c in range(records.num_classes):
            lo, hi = segments[t][c]
            if hi > lo:
                ap[:, c] = _ap_batch_loop(tp_cum[:, lo:hi], fp_cum[:, lo:hi], n_gt[:, c], records.eval_mode)
        total = np.where(has_gt, ap, 0.0).sum(axis=1)
        out += np.where(n_valid > 0, total / np.maximum(n_valid, 1), 0.0)
    return out / len(records.iou_thrs)


def _ap_batch_loop(tp_cum: np.ndarray, fp_cum: np.ndarray, n_gt: np.ndarray, mode: str) -> np.ndarray:
    """AP of every row of cumulative TP/FP counts (B, n) with ``n_gt`` (B,) positives, as ``average_precision``
    computes it for one row (recall in float64, precision in float32 as ``eval_map`` has them)."""
    recalls = tp_cum.astype(np.float64) / np.maximum(n_gt, _EPS32)[:, None]
    precisions = tp_cum / np.maximum(tp_cum + fp_cum, _EPS32)
    # the precision envelope: max over the positions at or after k (recall never decreases along a row)
    envelope = np.maximum.accumulate(precisions[:, ::-1], axis=1)[:, ::-1]
    if mode == 'area':
        steps = np.diff(recalls, axis=1, prepend=0.0)
        return (steps * envelope).sum(axis=1)
    n = recalls.shape[1]
    rows = np.arange(recalls.shape[0])
    ap = np.zeros(recalls.shape[0], dtype=np.float64)
    for thr in ELEVEN_POINTS:
        first = (recalls < thr).sum(axis=1)  # the first position with recall >= thr
        ap += np.where(first < n, envelope[rows, np.minimum(first, n - 1)], 0.0)
    return ap / 11
