"""Caffe's local response normalisation in WITHIN_CHANNEL mode (the LRN of ZF as used by py-faster-rcnn).

PyTorch's ``nn.LocalResponseNorm`` normalises *across* channels; ZF's LRN normalises over a spatial window inside
each channel instead. Caffe computes it as square -> average pooling (``local_size`` x ``local_size`` window,
stride 1, zero padding ``(local_size - 1) / 2``, padded cells counted in the average) -> power -> product::

    y[c, i, j] = x[c, i, j] / (1 + alpha / n^2 * sum_{(p, q) in W(i, j)} x[c, p, q]^2) ^ beta,   n = local_size

where ``W(i, j)`` is the ``n x n`` window centred on ``(i, j)`` and cells outside the map count as zero.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def within_channel_lrn(x: torch.Tensor, local_size: int = 3, alpha: float = 5e-5, beta: float = 0.75) -> torch.Tensor:
    """Caffe WITHIN_CHANNEL LRN of an ``(N, C, H, W)`` tensor (formula in the module docstring)."""
    if x.dim() != 4:
        raise ValueError(f'within_channel_lrn expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}')
    # count_include_pad=True divides every window by n^2 like Caffe's AVE pooling (which never clips a stride-1,
    # pad-(n-1)/2 window), so the mean of squares equals sum / n^2
    mean_sq = F.avg_pool2d(x * x, local_size, stride=1, padding=(local_size - 1) // 2, count_include_pad=True)
    return x * (1 + alpha * mean_sq).pow(-beta)


class WithinChannelLRN(nn.Module):
    """Module form of :func:`within_channel_lrn`; Caffe's defaults for ZF are local_size 3, alpha 5e-5, beta 0.75.

    Args:
        local_size: side of the square spatial window; odd, so that the window is centred (Caffe requires it).
        alpha: scale of the summed squares (Caffe divides it by ``local_size ** 2``).
        beta: exponent of the normaliser.
    """

    def __init__(self, local_size: int = 3, alpha: float = 5e-5, beta: float = 0.75):
        super().__init__()
        if not isinstance(local_size, int) or local_size < 1 or local_size % 2 == 0:
            raise ValueError(f'local_size must be a positive odd integer (Caffe requires it), got {local_size!r}')
        self.local_size = local_size
        self.alpha = alpha
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return within_channel_lrn(x, self.local_size, self.alpha, self.beta)

    def extra_repr(self) -> str:
        return f'local_size={self.local_size}, alpha={self.alpha}, beta={self.beta}'
