"""Runner-side pieces: hooks (registered in mmdet's ``HOOKS`` on import), config and model loading, the stage
runner of multi-step jobs."""
from .hooks import AlphaProjectionHook, AlphaRegularizationHook, AlphaStatsHook
from .reproducibility import RNGStateHook

__all__ = ['AlphaProjectionHook', 'AlphaRegularizationHook', 'AlphaStatsHook', 'RNGStateHook']
