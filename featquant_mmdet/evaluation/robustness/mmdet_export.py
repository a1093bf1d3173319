"""The sweep's results in mmdet's robustness layout (``tools/analysis_tools/test_robustness.py`` writes it,
``robustness_eval.py`` reads it)::

    {distortion: {severity: metrics}}      severity 0 = the clean cell (repeated under every distortion, as
                                           test_robustness.py does), 1.. = the sweep's levels

``metrics`` is the evaluator's output dict of the cell (``{'pascal_voc/mAP': ..., 'pascal_voc/AP50': ...}``, what
``runner.test()`` returns there too). A mixture, having one fixed strength, is written as severity 1. The format
follows the extension (mmengine's ``dump``): ``.pkl`` keeps integer severities (what robustness_eval.py indexes
with), ``.json`` / ``.yaml`` turn them into strings.
"""
import os
import os.path as osp

from .cells import cells_by_distortion
from .errors import RobustnessError

EXPORT_FORMATS = ('.pkl', '.pickle', '.json', '.yaml', '.yml')


def check_export_path(path: str) -> str:
    """A writable file name with an extension mmengine's ``dump`` knows."""
    ext = osp.splitext(path)[1].lower()
    if ext not in EXPORT_FORMATS:
        raise RobustnessError(f'--export-mmdet {path}: unknown extension {ext or "(none)"!r}; accepted: '
                              f'{", ".join(EXPORT_FORMATS)} (mmdet\'s test_robustness.py writes .pkl)')
    folder = osp.dirname(osp.abspath(path))
    if osp.exists(folder) and not os.access(folder, os.W_OK):
        raise RobustnessError(f'--export-mmdet {path}: folder {folder} is not writable')
    return path


def mmdet_layout(results: dict) -> dict:
    """``{distortion: {severity: metrics}}`` of a results dict (clean as severity 0 under every distortion)."""
    cells = results['cells']
    if 'clean' not in cells:
        raise RobustnessError('the results have no clean cell: nothing to export')
    clean = dict(cells['clean']['metrics'])
    out = {}
    for name, by_level in cells_by_distortion(cells).items():
        entry = {0: clean}
        for level, key in sorted(by_level.items(), key=lambda kv: kv[0] or 1):
            entry[1 if level is None else int(level)] = dict(cells[key]['metrics'])
        out[name] = entry
    if not out:
        out['None'] = {0: clean}  # test_robustness.py's name for a clean-only evaluation
    return out


def export_mmdet(results: dict, path: str) -> str:
    """Write :func:`mmdet_layout` to ``path`` (format by extension); returns the path."""
    from mmengine.fileio import dump
    check_export_path(path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    dump(mmdet_layout(results), path)
    return path
