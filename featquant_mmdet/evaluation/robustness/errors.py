"""The errors of a robustness sweep (standard library only: the lock imports them without torch or mmdet)."""


class RobustnessError(ValueError):
    """Bad input to a robustness sweep (names, levels, files, config): raised before any evaluation."""


class SweepLockedError(RobustnessError):
    """Another sweep holds the lock of the results file: raised before anything is read or evaluated."""
