"""Hooks: the exponents' regularisation, projection onto their valid range, and statistics."""
from .alpha_hooks import AlphaRegularizationHook, AlphaStatsHook
from .alpha_projection import AlphaProjectionHook

__all__ = ['AlphaProjectionHook', 'AlphaRegularizationHook', 'AlphaStatsHook']
