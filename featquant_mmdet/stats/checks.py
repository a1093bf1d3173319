"""Checks of the inputs of the statistics: comparable test sets, distortion seeds, complete per-image data.

Every item checked is an *identity* dict such as ``{'file': path, 'image_ids': [...], 'distortion_seed': 0}``
(``file`` names the item in the error; any other key listed in ``fields`` is compared too). The errors are
:class:`StatsInputError` (a ``ValueError``) naming the file and what differs, raised before any table is made.
"""
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np


class StatsInputError(ValueError):
    """Per-image data that cannot be compared or used: mismatched test sets or seeds, missing data."""


def _name(identity: Mapping) -> str:
    return str(identity.get('file') or identity.get('label') or '<unnamed results>')


def describe_id_difference(ids_a: Sequence[str], ids_b: Sequence[str]) -> str:
    """A short account of how two lists of image ids differ (count, membership, order)."""
    ids_a, ids_b = [str(i) for i in ids_a], [str(i) for i in ids_b]
    if len(ids_a) != len(ids_b):
        extra = sorted(set(ids_b) - set(ids_a))[:3]
        lacking = sorted(set(ids_a) - set(ids_b))[:3]
        return (f'{len(ids_b)} test images instead of {len(ids_a)}'
                + (f' (e.g. extra {extra})' if extra else '') + (f' (e.g. lacking {lacking})' if lacking else ''))
    if set(ids_a) != set(ids_b):
        extra = sorted(set(ids_b) - set(ids_a))[:3]
        lacking = sorted(set(ids_a) - set(ids_b))[:3]
        return f'other test images: e.g. {extra} instead of {lacking}'
    first = next(i for i, (a, b) in enumerate(zip(ids_a, ids_b)) if a != b)
    return f'the same test images in another order (position {first}: {ids_b[first]!r} instead of {ids_a[first]!r})'


def check_same_identity(identities: Sequence[Mapping], fields: Iterable[str] = ('image_ids', 'distortion_seed'),
                        what: str = 'results') -> None:
    """All identities must agree on ``fields`` with the first one; the error names the file that differs.

    ``image_ids`` are compared as ordered lists (resamples index images by position); a field that one identity
    lacks and another has is a difference too (e.g. an old results file without per-image data).
    """
    if not identities:
        raise StatsInputError(f'no {what} given')
    first = identities[0]
    for ident in identities[1:]:
        for field in fields:
            a, b = first.get(field), ident.get(field)
            if field == 'image_ids':
                if a is None or b is None:
                    who = ident if b is None else first
                    raise StatsInputError(f'{_name(who)}: no image ids (per-image data missing: results written '
                                          'before per-image data were kept?); rerun its sweep')
                if [str(i) for i in a] != [str(i) for i in b]:
                    raise StatsInputError(f'{_name(ident)}: {describe_id_difference(a, b)} compared with '
                                          f'{_name(first)}: the {what} were not computed on the same test set')
            elif a != b:
                raise StatsInputError(f'{_name(ident)}: {field} {b!r} differs from {_name(first)}\'s {a!r}: the '
                                      f'{what} are not comparable')


def check_cells_present(cells: Mapping, needed: Sequence[str], identity: Mapping) -> None:
    """Every cell key in ``needed`` must have per-image data in ``cells`` (``{key: per-image object}``)."""
    missing = [k for k in needed if cells.get(k) is None]
    if missing:
        raise StatsInputError(f'{_name(identity)}: no per-image data for cell(s) {missing} (an old results file, '
                              'or a sweep that did not keep them); rerun the sweep to get intervals')


def check_cells_match_identity(cells: Mapping, identity: Mapping) -> None:
    """Each cell's per-image object must cover exactly the identity's image ids (in order)."""
    ids = identity.get('image_ids')
    for key, cell in cells.items():
        if ids is not None and list(cell.image_ids) != [str(i) for i in ids]:
            where = cell.meta.get('file') if getattr(cell, 'meta', None) else None
            raise StatsInputError(f'{where or _name(identity)}: cell {key!r}: '
                                  f'{describe_id_difference(ids, cell.image_ids)} compared with the results '
                                  'index: the per-image data belong to another test set')


def check_counts(counts, n: int) -> np.ndarray:
    """Multiplicities of a multiset of images: non-negative integers, one per image, not all zero."""
    counts = np.asarray(counts)
    if counts.shape != (n, ) or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise StatsInputError(f'counts must be {n} non-negative integers (image multiplicities), got shape '
                              f'{counts.shape} dtype {counts.dtype}')
    if counts.sum() == 0:
        raise StatsInputError('the multiset of images is empty')
    return counts.astype(np.int64)


def check_resamples(indices: np.ndarray, n: Optional[int] = None) -> np.ndarray:
    """A (B, n) matrix of image indices in [0, n)."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise StatsInputError(f'resamples must be a 2-D integer matrix (resamples, images), got {indices.shape}')
    n = indices.shape[1] if n is None else n
    if indices.shape[1] != n or (indices.size and (indices.min() < 0 or indices.max() >= n)):
        raise StatsInputError(f'resamples index {indices.shape[1]} images in [0, {n}): they were drawn for '
                              'another test set')
    return indices
