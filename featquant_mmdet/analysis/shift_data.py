"""Data of the synthetic moment-shift experiment (eq. 8-9): Hosking's generalized normal features, standardised
with their exact population moments, and sign-bit labels (see :mod:`.synthetic_shift` for the experiment).

    x = (1 - exp(-kappa * y)) / kappa,   y ~ N(0, 1),
    E[x] = (1 - exp(kappa^2 / 2)) / kappa,   Var[x] = exp(kappa^2) (exp(kappa^2) - 1) / kappa^2.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch


def _as_kappa_tensor(kappa, dtype=torch.float64) -> torch.Tensor:
    kappa = torch.as_tensor(kappa, dtype=dtype)
    if not torch.isfinite(kappa).all():
        raise ValueError('kappa must be finite')
    return kappa


def generalized_normal_moments(kappa) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and variance of ``x = (1 - exp(-kappa y)) / kappa``, ``y ~ N(0, 1)`` (kappa = 0: 0 and 1).

    Uses ``expm1`` so that small ``|kappa|`` keeps its precision (both expressions tend to the normal's 0 and 1).
    """
    kappa = _as_kappa_tensor(kappa)
    k2 = kappa * kappa
    safe = torch.where(kappa == 0, torch.ones_like(kappa), kappa)
    mean = torch.where(kappa == 0, torch.zeros_like(kappa), -torch.expm1(k2 / 2) / safe)
    var = torch.where(kappa == 0, torch.ones_like(kappa), torch.exp(k2) * torch.expm1(k2) / (safe * safe))
    return mean, var


def generalized_normal_transform(y: torch.Tensor, kappa) -> torch.Tensor:
    """Map standard normal draws ``y`` to the generalized normal: ``(1 - exp(-kappa y)) / kappa`` (eq. 9 inverted).

    ``kappa`` broadcasts against ``y`` (e.g. one value per feature on the last axis).
    """
    kappa = _as_kappa_tensor(kappa, dtype=y.dtype).to(y.device)
    safe = torch.where(kappa == 0, torch.ones_like(kappa), kappa)
    return torch.where(kappa == 0, y, -torch.expm1(-kappa * y) / safe)


def sample_standardized_generalized_normal(kappa: torch.Tensor, num_samples: int,
                                           generator: Optional[torch.Generator] = None,
                                           dtype=torch.float32) -> torch.Tensor:
    """Draw ``num_samples`` vectors whose feature m follows the generalized normal with shape ``kappa[..., m]``,
    standardised to mean 0 and variance 1 with the exact population moments.

    ``kappa`` has shape ``(..., M)``; the result has shape ``(..., num_samples, M)``.
    """
    kappa = _as_kappa_tensor(kappa)
    if kappa.ndim < 1:
        raise ValueError('kappa needs a feature axis (shape (..., M)), got a scalar')
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    shape = (*kappa.shape[:-1], num_samples, kappa.shape[-1])
    y = torch.randn(shape, generator=generator, dtype=torch.float64)
    k = kappa.unsqueeze(-2)
    mean, var = generalized_normal_moments(k)
    x = (generalized_normal_transform(y, k) - mean) / var.sqrt()
    return x.to(dtype)


def sign_labels(x: torch.Tensor, num_determinant: int) -> torch.Tensor:
    """Class labels ``sum_{n<N} 2^n 1(x_n >= 0)`` from the first N features of ``x`` (shape ``(..., M)``)."""
    if not 1 <= num_determinant <= x.shape[-1]:
        raise ValueError(f'num_determinant must be in [1, {x.shape[-1]}] (the number of features), '
                         f'got {num_determinant}')
    if num_determinant > 62:
        raise ValueError(f'num_determinant must be <= 62 (labels are int64), got {num_determinant}')
    bits = (x[..., :num_determinant] >= 0).long()
    weights = 2 ** torch.arange(num_determinant, device=x.device)
    return (bits * weights).sum(-1)


@dataclass
class ShiftData:
    """Inputs of all runs: ``train``, ``test_same`` (training kappas) and ``test_shifted`` (new kappas),
    each of shape (runs, samples, M), with the kappas that generated them (shape (runs, M))."""
    train: torch.Tensor
    test_same: torch.Tensor
    test_shifted: torch.Tensor
    kappa_train: torch.Tensor
    kappa_test: torch.Tensor


def make_shift_data(runs: int, num_train: int, num_test: int, num_features: int, seed: int = 0,
                    kappa_range: Tuple[float, float] = (-1.0, 1.0)) -> ShiftData:
    """Draw kappa ~ U(kappa_range) per feature and run, independently for training and shifted test data."""
    for name, value in (('runs', runs), ('num_train', num_train), ('num_test', num_test),
                        ('num_features', num_features)):
        if value < 1:
            raise ValueError(f'{name} must be >= 1, got {value}')
    low, high = kappa_range
    if not low <= high:
        raise ValueError(f'kappa_range must be (low, high) with low <= high, got {kappa_range}')
    gen = torch.Generator().manual_seed(seed)
    kappa_train = torch.empty(runs, num_features, dtype=torch.float64).uniform_(low, high, generator=gen)
    kappa_test = torch.empty(runs, num_features, dtype=torch.float64).uniform_(low, high, generator=gen)
    return ShiftData(
        train=sample_standardized_generalized_normal(kappa_train, num_train, gen),
        test_same=sample_standardized_generalized_normal(kappa_train, num_test, gen),
        test_shifted=sample_standardized_generalized_normal(kappa_test, num_test, gen),
        kappa_train=kappa_train, kappa_test=kappa_test)
