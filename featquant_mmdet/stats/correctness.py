"""Per-image correctness of a classifier: top-k accuracy of any multiset of test images.

For image i, ``correct_k[i] = 1`` when its label is among its k best scores (the plugin's ``Accuracy`` metric);
a multiset with multiplicities ``w`` (a bootstrap resample) has::

    top-k = 100 * sum_i w_i correct_k[i] / sum_i w_i          (percent, as ``accuracy/top<k>``)
"""
from typing import Dict, Optional, Sequence

import numpy as np

from .checks import StatsInputError, check_counts
from .records import FORMAT, save_npz


def correct_at_k(scores: np.ndarray, labels: np.ndarray, topk: Sequence[int] = (1, 5)) -> Dict[int, np.ndarray]:
    """``{k: bool (N,)}``: whether each sample's label is among its k highest scores (ties: stable order, as
    ``torch.topk`` on distinct scores)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise StatsInputError(f'need scores (N, num_classes) and labels (N,), got {scores.shape} and {labels.shape}')
    if max(topk) > scores.shape[1]:
        raise StatsInputError(f'top-{max(topk)} needs at least {max(topk)} classes, the scores have '
                              f'{scores.shape[1]}')
    order = np.argsort(-scores, axis=1, kind='stable')[:, :max(topk)]
    hits = order == labels[:, None]
    return {k: hits[:, :k].any(axis=1) for k in topk}


def correctness_from_accuracy_results(results: Sequence[dict], topk: Sequence[int] = (1, 5),
                                      image_ids: Optional[Sequence[str]] = None, metric: str = 'accuracy/top1',
                                      meta: Optional[dict] = None) -> 'Correctness':
    """Per-image correctness from the plugin's ``Accuracy`` metric's ``results`` (dicts of ``pred_score``,
    ``gt_label`` tensors), with ``torch.topk`` as ``topk_accuracy`` ranks them (ties included)."""
    import torch
    if not results:
        raise StatsInputError('no per-image classification results')
    scores = torch.stack([torch.as_tensor(r['pred_score']).float() for r in results])
    labels = torch.cat([torch.as_tensor(r['gt_label']).reshape(-1)[:1] for r in results]).long()
    best = scores.topk(max(topk), dim=1).indices
    hits = (best == labels.reshape(-1, 1)).numpy()
    ids = [str(i) for i in range(len(results))] if image_ids is None else image_ids
    return Correctness({k: hits[:, :k].any(axis=1) for k in topk}, ids, metric, meta)


class Correctness:
    """Per-image correctness of one cell: ``correct`` maps a metric key (``accuracy/top1``) or k to a bool array
    (n_images,); ``metric`` is the key ``value`` / ``values`` report (percent)."""

    kind = 'classification'

    def __init__(self, correct: Dict, image_ids: Sequence[str], metric: str = 'accuracy/top1',
                 meta: Optional[dict] = None):
        self.correct = {_key(k): np.asarray(v, dtype=bool).reshape(-1) for k, v in correct.items()}
        self.image_ids = [str(i) for i in image_ids]
        self.meta = dict(meta or {})
        for key, arr in self.correct.items():
            if arr.shape != (len(self.image_ids), ):
                raise StatsInputError(f'{self.meta.get("file", "per-image correctness")}: {key} has {arr.shape[0]} '
                                      f'entries for {len(self.image_ids)} images')
        self.metric = _key(metric)
        if self.metric not in self.correct:
            raise StatsInputError(f'{self.meta.get("file", "per-image correctness")}: no per-image data for '
                                  f'{self.metric!r}; it has {sorted(self.correct)}')

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def with_metric(self, metric: str) -> 'Correctness':
        return Correctness(self.correct, self.image_ids, metric, self.meta)

    def value(self, counts: Optional[np.ndarray] = None) -> float:
        """Accuracy (%) on the multiset ``counts`` (n_images,) (all images once by default)."""
        hits = self.correct[self.metric]
        if counts is None:
            return float(hits.mean() * 100) if hits.size else float('nan')
        counts = check_counts(counts, self.num_images)
        return float(counts @ hits / counts.sum() * 100)

    def values(self, counts: np.ndarray) -> np.ndarray:
        """Accuracy (%) of many multisets: ``counts`` (B, n_images) -> (B,)."""
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.num_images:
            raise StatsInputError(f'counts must be (resamples, {self.num_images}), got {counts.shape}')
        hits = self.correct[self.metric].astype(np.float64)
        return counts @ hits / counts.sum(axis=1) * 100

    def save(self, path: str) -> str:
        meta = dict(self.meta, format=FORMAT, kind=self.kind, metric=self.metric, keys=sorted(self.correct))
        meta.pop('file', None)
        arrays = {f'correct_{i}': self.correct[k] for i, k in enumerate(sorted(self.correct))}
        arrays['image_ids'] = np.array(self.image_ids, dtype=str)
        return save_npz(path, arrays, meta)

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> 'Correctness':
        keys = meta.get('keys') or []
        missing = [f'correct_{i}' for i in range(len(keys)) if f'correct_{i}' not in arrays]
        if not keys or missing:
            raise StatsInputError(f'{meta.get("file")}: per-image correctness incomplete '
                                  f'(keys {keys}, missing {missing})')
        correct = {k: arrays[f'correct_{i}'] for i, k in enumerate(keys)}
        return cls(correct, arrays['image_ids'].tolist(), meta.get('metric', keys[0]), meta)


def _key(k) -> str:
    """``1`` / ``'top1'`` / ``'accuracy/top1'`` -> ``'accuracy/top1'``."""
    if isinstance(k, (int, np.integer)):
        return f'accuracy/top{int(k)}'
    k = str(k)
    return k if '/' in k else f'accuracy/{k}'
