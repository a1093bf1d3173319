"""Hooks: the exponents' regularisation and statistics."""
from .alpha_hooks import AlphaRegularizationHook, AlphaStatsHook

__all__ = ['AlphaRegularizationHook', 'AlphaStatsHook']
