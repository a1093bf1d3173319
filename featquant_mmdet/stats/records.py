"""Per-image files of a sweep's cells: one ``.npz`` per cell, no pickle, and the one reader of every kind.

A file holds named arrays (always ``image_ids``) and a JSON ``meta`` with ``format`` (:data:`FORMAT`) and ``kind``;
:func:`load_per_image` returns the kind's records object, which has ``num_images``, ``value(counts)`` (the cell's
metric on a multiset of images, all once by default) and ``values(counts)`` (one per resample row).

Kinds (:data:`KINDS`): ``voc`` (:class:`.voc_matches.VOCMatches`), ``classification``
(:class:`.correctness.Correctness`), ``coco`` (:class:`.coco_records.COCORecords`). The kind modules import this
one, never the reverse at import time: :func:`load_per_image` imports the kind's module when a file of it is read.
"""
import importlib
import json
import os
import os.path as osp
from typing import Dict, Sequence, Tuple

import numpy as np

from .checks import StatsInputError

FORMAT = 'featquant-per-image/1'
# kind -> (module of this package, class with ``from_arrays(arrays, meta)``)
KINDS = {
    'voc': ('voc_matches', 'VOCMatches'),
    'classification': ('correctness', 'Correctness'),
    'coco': ('coco_records', 'COCORecords'),
}


def save_npz(path: str, arrays: Dict[str, np.ndarray], meta: dict) -> str:
    """``np.savez_compressed`` to a temporary file beside ``path`` and ``os.replace`` (readers never see half)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.tmp')
    with open(tmp, 'wb') as f:
        np.savez_compressed(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    os.replace(tmp, path)
    return path


def load_npz(path: str, required: Sequence[str]) -> Tuple[Dict[str, np.ndarray], dict]:
    """Arrays and meta of a per-image file; a clear error names the file and what is missing."""
    if not osp.isfile(path):
        raise StatsInputError(f'per-image file not found: {path}')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise StatsInputError(f'{path} is not a per-image results file (.npz): {err}') from None
    if 'meta' not in arrays:
        raise StatsInputError(f'{path} is not a per-image results file: no meta entry')
    meta = json.loads(str(arrays.pop('meta')))
    if meta.get('format') != FORMAT:
        raise StatsInputError(f'{path}: format {meta.get("format")!r}, expected {FORMAT!r}')
    missing = [k for k in required if k not in arrays]
    if missing:
        raise StatsInputError(f'{path}: per-image data incomplete, missing {missing}')
    meta['file'] = path
    return arrays, meta


def load_per_image(path: str):
    """A cell's per-image file as its kind's records object (see :data:`KINDS`)."""
    arrays, meta = load_npz(path, ('image_ids', ))
    kind = meta.get('kind')
    if kind not in KINDS:
        raise StatsInputError(f'{path}: unknown per-image kind {kind!r}; accepted: {", ".join(KINDS)}')
    module, name = KINDS[kind]
    cls = getattr(importlib.import_module(f'{__package__}.{module}'), name)
    return cls.from_arrays(arrays, meta)
