"""The cells of a sweep: ``clean``, every (distortion, level) and every fixed-strength mixture; the presets of
``--distortions`` and the checks of names and levels."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ...distortions import levels
from ..corruptions import COMMON_CORRUPTIONS, NUM_SEVERITIES, PREFIX
from .errors import RobustnessError

# The distortion presets of ``--distortions`` are defined in ``distortion_presets`` and nowhere else.
PRESET_NAMES = ('all', 'mix', 'corruptions')


@dataclass(frozen=True)
class Cell:
    """One evaluation of the sweep: ``distortion=None`` is the clean pass; ``level=None`` a fixed-strength one."""

    distortion: Optional[str] = None
    level: Optional[int] = None

    @property
    def key(self) -> str:
        if self.distortion is None:
            return 'clean'
        return self.distortion if self.level is None else f'{self.distortion}@{self.level}'

    @classmethod
    def from_key(cls, key: str) -> 'Cell':
        if key == 'clean':
            return cls()
        name, sep, level = key.partition('@')
        return cls(name, int(level)) if sep else cls(name)


def mixture_names() -> Tuple[str, ...]:
    """The fixed-strength mixtures, in the paper's column order (Table 2's Mix., Table 3's Minor and Heavy)."""
    return tuple(levels.MIXTURE_NAMES)


def saliency_distortions() -> Tuple[str, ...]:
    """Distortions that need a classifier's saliency map of the ground-truth class (targeted occlusion)."""
    return tuple(levels.NEEDS_SALIENCY)


def corruption_names() -> Tuple[str, ...]:
    """The optional family: the 15 common-benchmark corruptions, ``ic:<name>`` (severities 1-5)."""
    return tuple(PREFIX + n for n in COMMON_CORRUPTIONS)


def is_corruption(name: Optional[str]) -> bool:
    return name is not None and name.startswith(PREFIX)


def distortion_presets(task: str = 'classification') -> Dict[str, Tuple[str, ...]]:
    """The presets of ``--distortions`` for a model type: the paper's columns.

    =========  ==========================================  ==========================================
    preset     classifiers (Table 2, Figure 4)             detectors (Table 3)
    =========  ==========================================  ==========================================
    ``all``    every distortion + ``mix``                  every distortion but targeted occlusion
                                                           + ``mix_minor`` + ``mix_heavy``
    ``mix``    ``mix`` (Table 2's Mix.)                    ``mix_minor`` + ``mix_heavy``
    ``corruptions``  the 15 ``ic:<name>`` corruptions of ImageNet-C / Pascal-C (severities 1-5), both types
    =========  ==========================================  ==========================================

    The preset ``mix`` shadows the mixture of the same name, which is what it means for classifiers; detectors
    are evaluated on Table 3's two mixtures instead.
    """
    names = tuple(levels.DISTORTION_NAMES)
    corruptions = corruption_names()
    if task == 'classification':
        return {'all': names + ('mix', ), 'mix': ('mix', ), 'corruptions': corruptions}
    mixtures = ('mix_minor', 'mix_heavy')
    return {'all': tuple(n for n in names if n not in saliency_distortions()) + mixtures, 'mix': mixtures,
            'corruptions': corruptions}


def sweep_levels(name: Optional[str] = None) -> Tuple[int, ...]:
    """The strengths a sweep evaluates for ``name`` (the distorted ones; the clean cell stands for level 0):
    1..4 for the paper's distortions, 1..5 for the ``ic:`` corruptions. (``levels.valid_levels`` is what a
    pipeline accepts, level 0 included.)"""
    if is_corruption(name):
        return tuple(range(1, NUM_SEVERITIES + 1))
    return tuple(range(1, levels.NUM_LEVELS + 1))


def _accepted_names() -> Tuple[str, ...]:
    return tuple(levels.DISTORTION_NAMES) + mixture_names() + corruption_names()


def resolve_distortions(names: Sequence[str], task: str = 'classification', has_saliency: bool = False,
                        notes: Optional[list] = None) -> List[str]:
    """Expand presets and check names; the order is kept and duplicates dropped.

    Targeted occlusion targets the ground-truth class of an image, so it is for classifiers only, and needs a
    saliency classifier: the ``all`` preset leaves it out otherwise (a line in ``notes`` says so), naming it is an
    error.
    """
    if isinstance(names, str):
        names = [names]
    accepted = _accepted_names()
    if not names:
        raise RobustnessError(f'no distortion given; accepted: presets {", ".join(PRESET_NAMES)} or names '
                              f'{", ".join(accepted)}')
    presets = distortion_presets(task)
    out: List[str] = []
    for name in names:
        for item in presets.get(name, (name, )):
            if item not in accepted:
                hint = f' (did you mean ic:{item}, the common-benchmark corruption?)' if (
                    'ic:' + item) in accepted else ''
                raise RobustnessError(f'unknown distortion {item!r}{hint}; accepted: presets '
                                      f'{", ".join(PRESET_NAMES)} or names {", ".join(accepted)}')
            if item in saliency_distortions() and (task != 'classification' or not has_saliency):
                why = ('it occludes what a classifier finds salient for the ground-truth class, which a detection '
                       'image does not have' if task != 'classification' else
                       'it needs the classifier whose saliency map picks the occluded clusters: pass '
                       '--saliency-classifier and --saliency-checkpoint (the paper uses a Plain-18)')
                if name in presets:
                    if notes is not None:
                        notes.append(f'preset {name!r}: {item} left out ({why})')
                    continue
                raise RobustnessError(f'distortion {item!r} cannot be evaluated here: {why}')
            if item not in out:
                out.append(item)
    return out


def resolve_levels(strengths: Sequence[int], names: Sequence[str] = ()) -> List[int]:
    """Check the strengths (sorted, duplicates dropped) against every distortion with levels in ``names``."""
    leveled = [n for n in names if n not in mixture_names()] or [None]
    for name in leveled:
        accepted = sweep_levels(name)
        if not strengths:
            raise RobustnessError(f'no level given; accepted levels: {list(accepted)}')
        bad = [lv for lv in strengths if not isinstance(lv, int) or isinstance(lv, bool) or lv not in accepted]
        if bad:
            whose = f' of {name}' if name is not None else ''
            hint = (' (the ic: corruptions have severities 1-5: sweep them apart from the paper\'s distortions)'
                    if any(is_corruption(n) for n in leveled) else '')
            raise RobustnessError(f'unknown distortion level(s) {bad}; accepted levels{whose}: {list(accepted)} '
                                  f'(the clean cell, level 0, is always evaluated){hint}')
    return sorted(set(strengths))


def plan_cells(distortions: Sequence[str], strengths: Sequence[int]) -> List[Cell]:
    """``clean``, every (distortion, level) and every mixture, in the given distortion order."""
    cells = [Cell()]
    for name in distortions:
        if name in mixture_names():
            cells.append(Cell(name))
        else:
            cells.extend(Cell(name, level) for level in strengths)
    return cells


def cells_by_distortion(cells: Dict[str, dict]) -> Dict[str, Dict[Optional[int], str]]:
    """``{distortion: {level or None: cell key}}`` of the distorted cells, in insertion order."""
    out: Dict[str, Dict[Optional[int], str]] = {}
    for key in cells:
        cell = Cell.from_key(key)
        if cell.distortion is not None:
            out.setdefault(cell.distortion, {})[cell.level] = key
    return out
