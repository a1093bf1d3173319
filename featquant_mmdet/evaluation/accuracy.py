"""Top-k classification accuracy (the paper reports top-5, and top-1 for targeted occlusion).

    top-k = 100 / N * #{ i : y_i is among the k highest scores of sample i }
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric


def check_topk(topk: Sequence[int]) -> tuple:
    topk = (topk, ) if isinstance(topk, int) else tuple(topk)
    if not topk or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in topk):
        raise ValueError(f'topk must be positive ints, e.g. (1, 5), got {topk!r}')
    return topk


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Percentage of samples whose label is among their ``k`` best scores, for each ``k`` in ``topk``.

    Args:
        scores: (N, num_classes) scores (probabilities or logits).
        labels: (N,) integer labels.
    """
    topk = check_topk(topk)
    if scores.dim() != 2 or labels.dim() != 1 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f'need scores (N, num_classes) and labels (N,), got {tuple(scores.shape)} and '
                         f'{tuple(labels.shape)}')
    num_classes = scores.shape[1]
    if max(topk) > num_classes:
        raise ValueError(f'top-{max(topk)} accuracy needs at least {max(topk)} classes, the scores have '
                         f'{num_classes} (it would be 100% by definition): lower topk')
    if scores.shape[0] == 0:
        raise ValueError('no sample to compute the accuracy of')
    best = scores.topk(max(topk), dim=1).indices  # (N, maxk), best first
    hits = best == labels.reshape(-1, 1)
    return {k: float(hits[:, :k].any(dim=1).float().mean() * 100) for k in topk}


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy (%) of ``pred_score`` against ``gt_label``; keys ``accuracy/top1``, ``accuracy/top5``.

    Args:
        topk: the k of each reported accuracy.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = check_topk(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for index, sample in enumerate(data_samples):
            missing = [k for k in ('pred_score', 'gt_label') if k not in sample]
            if missing:
                raise KeyError(f'Accuracy needs pred_score and gt_label in each data sample; sample {index} lacks '
                               f'{missing} (keys: {sorted(sample)})')
            self.results.append(dict(pred_score=torch.as_tensor(sample['pred_score']).detach().cpu().float(),
                                     gt_label=torch.as_tensor(sample['gt_label']).detach().cpu().reshape(-1)[:1]))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        scores = torch.stack([r['pred_score'] for r in results])
        labels = torch.cat([r['gt_label'] for r in results]).long()
        return {f'top{k}': acc for k, acc in topk_accuracy(scores, labels, self.topk).items()}
