"""Figure-5-style sheet: detections of several models on clean and distorted versions of a few test images.

Rows are the image versions (``clean`` = Original, then e.g. Mix.Minor and Mix.Heavy), columns are (image, model)
pairs, so the models sit side by side on the same distorted pixels::

                 | img 1: ZF | img 1: ZF+POW-1 | img 2: ZF | img 2: ZF+POW-1 |
    Original     |   tile    |      tile       |   tile    |      tile       |
    Mix.Minor    |   tile    |      tile       |   ...
    Mix.Heavy    |   ...

The distorted images are exactly those the robustness evaluation scored: the :class:`~featquant_mmdet.distortions.
transforms.Distort` transform itself is applied to the loaded image with its ``img_path``, so its generator is seeded
by (seed, image file, distortion, level) as in the test pipeline that
:func:`~featquant_mmdet.distortions.inject.inject_distortion` builds. Detections come from ``mmdet.apis.
inference_detector`` (the config's test pipeline, e.g. its Resize) and are drawn by mmdet's ``DetLocalVisualizer``
(class and confidence, green text as in the paper's Figure 5).

Layout, in pixels: a ``HEADER_HEIGHT`` band of column titles on top, a ``LABEL_WIDTH`` band of row titles on the
left, tiles of ``tile_size`` separated by ``GAP``; see :func:`sheet_size`.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np

HEADER_HEIGHT = 28
LABEL_WIDTH = 96
GAP = 4
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)
DETECTION_TEXT_COLOR = (0, 200, 0)  # RGB: the paper's green class/confidence labels
DEFAULT_VERSIONS = ('clean', 'mix_minor', 'mix_heavy')


def version_title(key: str) -> str:
    """Row title of an image version: ``Original`` for ``clean``, else the paper's column title (Mix.Heavy, ...)."""
    from featquant_mmdet.distortions.levels import DISPLAY_NAMES
    from featquant_mmdet.evaluation.robustness import Cell
    if key == 'clean':
        return 'Original'
    cell = Cell.from_key(key)
    title = DISPLAY_NAMES.get(cell.distortion, cell.distortion)
    return title if cell.level is None else f'{title} L{cell.level}'


def check_versions(keys: Sequence[str]) -> List[str]:
    """Validate image versions: ``clean``, a mixture (``mix_minor``) or ``name@level`` (``motion_blur@3``), as the
    robustness results name their cells; errors list what is accepted."""
    from featquant_mmdet.distortions.levels import ALL_NAMES, NEEDS_SALIENCY, resolve_level
    from featquant_mmdet.evaluation.robustness import Cell
    if not keys:
        raise ValueError('no image version given; accepted: clean, a mixture (mix, mix_minor, mix_heavy) or '
                         'NAME@LEVEL such as motion_blur@3')
    out = []
    for key in keys:
        try:
            cell = Cell.from_key(key)
        except ValueError:
            raise ValueError(f'image version {key!r}: the level after "@" must be an integer (e.g. motion_blur@3)')
        if cell.distortion is not None:
            if cell.distortion not in ALL_NAMES:
                raise ValueError(f'unknown distortion {cell.distortion!r} in image version {key!r}; accepted: clean, '
                                 f'{", ".join(ALL_NAMES)} (NAME@LEVEL for those with levels)')
            if cell.distortion in NEEDS_SALIENCY:
                raise ValueError(f'image version {key!r}: {cell.distortion} needs a classifier saliency map and is '
                                 'not drawn on detection sheets')
            resolve_level(cell.distortion, cell.level)  # raises with the valid levels
        out.append(key)
    return out


def distorted_image(img: np.ndarray, img_path: str, key: str, seed: int = 0) -> np.ndarray:
    """The image version ``key`` of ``img`` (BGR uint8 as loaded from ``img_path``), as the test pipeline makes it.

    Runs the ``Distort`` transform on ``dict(img=img, img_path=img_path)``: the same code and the same seeding
    (seed, the path's last two components, name, level) as ``inject_distortion``'s step after the image loading.
    """
    from featquant_mmdet.distortions.transforms import Distort
    from featquant_mmdet.evaluation.robustness import Cell
    cell = Cell.from_key(key)
    if cell.distortion is None:
        return img.copy()
    results = Distort(name=cell.distortion, level=cell.level, seed=seed)(dict(img=img.copy(), img_path=img_path))
    return results['img']


def first_test_images(cfg, num_images: int) -> List[str]:
    """Paths of the first ``num_images`` images of the config's test dataset (built from ``test_dataloader``)."""
    import copy

    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise ValueError('the test dataset of the config is empty: no image to draw')
    return [dataset.get_data_info(i)['img_path'] for i in range(min(num_images, len(dataset)))]


def fit_tile(img: np.ndarray, tile_size: Tuple[int, int], background=BACKGROUND) -> np.ndarray:
    """``img`` scaled to fit ``tile_size`` = (width, height), aspect kept, centred on a ``background`` tile."""
    import cv2
    width, height = tile_size
    scale = min(width / img.shape[1], height / img.shape[0])
    new_w, new_h = max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (new_w, new_h), interpolation=interp)
    tile = np.empty((height, width, 3), np.uint8)
    tile[:] = background
    y0, x0 = (height - new_h) // 2, (width - new_w) // 2
    tile[y0:y0 + new_h, x0:x0 + new_w] = resized
    return tile


def sheet_size(num_rows: int, num_cols: int, tile_size: Tuple[int, int]) -> Tuple[int, int]:
    """(width, height) of a sheet::

        width  = LABEL_WIDTH + num_cols * (tile_w + GAP)
        height = HEADER_HEIGHT + num_rows * (tile_h + GAP)
    """
    return LABEL_WIDTH + num_cols * (tile_size[0] + GAP), HEADER_HEIGHT + num_rows * (tile_size[1] + GAP)


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, max_width: int) -> None:
    """Black text with its baseline at (x, y), shrunk until it fits ``max_width``."""
    import cv2
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    while scale > 0.25 and cv2.getTextSize(text, font, scale, thickness)[0][0] > max_width:
        scale -= 0.05
    cv2.putText(canvas, text, (x, y), font, scale, TEXT_COLOR, thickness, cv2.LINE_AA)


def compose_sheet(tiles: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str], col_titles: Sequence[str],
                  tile_size: Tuple[int, int]) -> np.ndarray:
    """Assemble ``tiles[row][col]`` (each ``tile_size``) with titles into one BGR image of :func:`sheet_size`."""
    rows, cols = len(tiles), len(tiles[0])
    if len(row_titles) != rows or len(col_titles) != cols or any(len(r) != cols for r in tiles):
        raise ValueError(f'compose_sheet: {rows} rows x {cols} columns of tiles need {rows} row titles and {cols} '
                         f'column titles, got {len(row_titles)} and {len(col_titles)}')
    width, height = sheet_size(rows, cols, tile_size)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    tile_w, tile_h = tile_size
    for c, title in enumerate(col_titles):
        _put_text(canvas, title, LABEL_WIDTH + c * (tile_w + GAP) + 4, HEADER_HEIGHT - 9, tile_w - 8)
    for r, title in enumerate(row_titles):
        y = HEADER_HEIGHT + r * (tile_h + GAP)
        _put_text(canvas, title, 4, y + tile_h // 2, LABEL_WIDTH - 8)
        for c, tile in enumerate(tiles[r]):
            if tile.shape != (tile_h, tile_w, 3):
                raise ValueError(f'tile ({r}, {c}) has shape {tile.shape}, expected {(tile_h, tile_w, 3)}')
            x = LABEL_WIDTH + c * (tile_w + GAP)
            canvas[y:y + tile_h, x:x + tile_w] = tile
    return canvas


def _default_device() -> str:
    import torch
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


def make_detection_sheet(models: Sequence[Tuple[str, str, str]], out_file: str,
                         image_paths: Optional[Sequence[str]] = None, num_images: int = 2,
                         versions: Sequence[str] = DEFAULT_VERSIONS, seed: int = 0, score_thr: float = 0.5,
                         tile_size: Tuple[int, int] = (320, 240),
                         cfg_options: Optional[dict] = None, device: Optional[str] = None) -> dict:
    """Draw the sheet of ``models`` = ``[(label, config file, checkpoint), ...]`` and write it to ``out_file`` (PNG).

    Args:
        image_paths: images to draw; default: the first ``num_images`` of the first config's test dataset.
        versions: rows: ``clean``, mixtures, ``name@level`` (see :func:`check_versions`).
        seed: the distortion seed of the robustness evaluation (``tools/robustness.py --seed``).
        score_thr: detections below this confidence are not drawn.
        tile_size: (width, height) of one tile; the image is fitted into it with its aspect kept.
        cfg_options: ``--cfg-options`` of every config (data root, test scale), as given to the evaluation.
        device: torch device; default ``cuda:0`` when CUDA is available, else ``cpu``.

    Returns:
        ``dict(out_file, size=(width, height), images, versions, labels, detections)`` where ``detections[v][i][m]``
        is the number of drawn detections of model ``m`` on image ``i`` in version ``v``.
    """
    import cv2
    import mmcv
    from mmengine.config import Config

    if not models:
        raise ValueError('no model given: pass (label, config, checkpoint) triples')
    for label, config, checkpoint in models:
        for what, path in (('config', config), ('checkpoint', checkpoint)):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{label}: {what} file not found: {path}')
    versions = check_versions(list(versions))
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f'score_thr must lie in [0, 1], got {score_thr}')
    if len(tile_size) != 2 or min(tile_size) < 32:
        raise ValueError(f'tile_size must be (width, height) with both at least 32 px, got {tuple(tile_size)}')
    if not out_file.lower().endswith('.png'):
        raise ValueError(f'the sheet is written as PNG: out_file must end with .png, got {out_file!r}')
    device = device or _default_device()

    if image_paths is None:
        if num_images < 1:
            raise ValueError(f'num_images must be at least 1, got {num_images}')
        cfg = Config.fromfile(models[0][1])
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        image_paths = first_test_images(cfg, num_images)
    image_paths = list(image_paths)
    missing = [p for p in image_paths if not osp.isfile(p)]
    if not image_paths or missing:
        raise FileNotFoundError(f'images not found: {missing}' if missing else 'no image given')
    images = [mmcv.imread(p, channel_order='bgr') for p in image_paths]
    # one distorted copy per (version, image), shared by all models
    inputs = [[distorted_image(img, path, key, seed) for img, path in zip(images, image_paths)] for key in versions]

    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer

    tiles = [[None] * (len(images) * len(models)) for _ in versions]
    counts = [[[0] * len(models) for _ in images] for _ in versions]
    visualizer = DetLocalVisualizer(name=f'detection_sheet_{os.getpid()}_{id(tiles)}',
                                    text_color=DETECTION_TEXT_COLOR, line_width=2)
    for m, (label, config, checkpoint) in enumerate(models):
        model = init_detector(config, checkpoint, device=device, cfg_options=dict(cfg_options or {}))
        visualizer.dataset_meta = model.dataset_meta
        for v, row in enumerate(inputs):
            for i, img in enumerate(row):
                sample = inference_detector(model, img)
                counts[v][i][m] = int((sample.pred_instances.scores >= score_thr).sum())
                visualizer.add_datasample('sheet', mmcv.bgr2rgb(img), sample, draw_gt=False,
                                          pred_score_thr=score_thr)
                drawn = mmcv.rgb2bgr(visualizer.get_image())
                tiles[v][i * len(models) + m] = fit_tile(drawn, tuple(tile_size))
        del model
    col_titles = [f'{osp.splitext(osp.basename(p))[0]}: {label}' for p in image_paths for label, _, _ in models]
    sheet = compose_sheet(tiles, [version_title(k) for k in versions], col_titles, tuple(tile_size))
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(out_file, sheet):
        raise OSError(f'could not write {out_file}')
    return dict(out_file=out_file, size=(sheet.shape[1], sheet.shape[0]), images=image_paths, versions=versions,
                labels=[label for label, _, _ in models], detections=counts)
