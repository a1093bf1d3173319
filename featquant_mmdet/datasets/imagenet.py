"""ImageNet-format classification dataset (ILSVRC-12) for mmengine's Runner, in the layouts users have.

Relative to ``data_root``, for a split folder ``<split>`` (``data_prefix=dict(img_path='<split>')``):

- annotation-list form: ``ann_file`` with one ``<path> <label>`` line per image, the path relative to ``<split>/``:
  ILSVRC-12 / Caffe's ``val.txt`` next to a flat ``val/`` (``ILSVRC2012_val_00000001.JPEG 65``), or mmpretrain's
  ``meta/train.txt`` / ``meta/val.txt``;
- folder form (``ann_file=''``): ``<split>/<wnid>/*.JPEG``, torchvision's ``ImageFolder`` layout (ILSVRC-12's
  ``train/``, and ``val/`` when the validation images are sorted into class folders);
- ``ann_file='auto'`` (the configs' setting): the first that exists of ``<split>.txt``, ``meta/<split>.txt`` and
  ``<split>/<wnid>/`` (:func:`find_split_layout`); none is an error naming the three paths tried.

The class list, and with it the label order, is the sorted sub-folder names of ``classes_dir`` (the training
folder) unless ``metainfo=dict(classes=[...])`` gives it. Labels must mean the same in train and val, so what
could silently shift them is an error that names what does not match: class folders that differ from the class
list, empty class folders, annotation labels that disagree with the wnid folder in their path, and listed images that
do not exist. Decoding every image header as well (``verify_images=True``) is off by default: on ILSVRC-12 it reads
1.3M files at every start of every rank; run it once on a new copy of the data (a file that does not decode
otherwise fails when the pipeline loads it).
"""
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
_MAX_LISTED = 10  # names shown in an error message before "... and N more"


def _listing(names: Sequence[str]) -> str:
    names = list(names)
    shown = ', '.join(names[:_MAX_LISTED])
    return shown + (f' ... and {len(names) - _MAX_LISTED} more' if len(names) > _MAX_LISTED else '')


def class_folders(folder: str) -> List[str]:
    """Sorted names of the sub-folders of ``folder`` (the wnids of an ImageNet split)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'class folder root not found: {folder} (expected <root>/<wnid>/*.JPEG)')
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def image_files(folder: str, extensions: Sequence[str] = IMG_EXTENSIONS) -> List[str]:
    """Sorted names of the image files (by extension, case-insensitive) directly inside ``folder``."""
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_file() and entry.name.lower().endswith(tuple(extensions)))


def _file_names(folder: str) -> set:
    """Names of the files (and links to files) directly inside ``folder``; empty when it is not a folder."""
    try:
        return {entry.name for entry in os.scandir(folder) if entry.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def image_header_error(path: str) -> Optional[str]:
    """Why the image at ``path`` cannot be read, from its header only (cheap), or None when the header decodes."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return f'{type(exc).__name__}: {exc}'
    if width <= 0 or height <= 0:
        return f'empty image ({width}x{height})'
    return None


def unreadable_images(paths: Sequence[str], num_threads: int = 8) -> List[Tuple[str, str]]:
    """``(path, reason)`` for each image whose header does not decode (threads: the check is I/O bound)."""
    if len(paths) > 1000 and num_threads > 1:
        with ThreadPoolExecutor(num_threads) as pool:
            reasons = list(pool.map(image_header_error, paths, chunksize=256))
    else:
        reasons = [image_header_error(p) for p in paths]
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def parse_annotation_list(ann_file: str) -> List[Tuple[str, int]]:
    """``(path, label)`` pairs of a ``<path> <label>`` file (blank lines skipped); errors name the bad line."""
    pairs = []
    with open(ann_file) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise ValueError(f'{ann_file}:{line_no}: expected "<path> <integer label>", got {line!r}')
            pairs.append((parts[0], int(parts[1])))
    if not pairs:
        raise ValueError(f'annotation file {ann_file} lists no image (expected "<path> <label>" lines)')
    return pairs


AUTO = 'auto'


def find_split_layout(data_root: str, split: str) -> Tuple[str, str]:
    """``(ann_file, layout)`` of the images of ``split`` (a folder under ``data_root``): the annotation list relative
    to ``data_root`` (``''`` for class folders) and the layout's name. Tried in this order:

    1. ``<split>.txt`` (ILSVRC-12 / Caffe: ``val.txt``, paths relative to ``<split>/``);
    2. ``meta/<split>.txt`` (mmpretrain's ``meta/train.txt``, ``meta/val.txt``);
    3. ``<split>/<wnid>/`` class folders (torchvision's ``ImageFolder``).

    FileNotFoundError naming the three paths and what ``<split>/`` holds when none fits.
    """
    split = split.rstrip('/')
    candidates = ((f'{split}.txt', 'ILSVRC-12 list'), (osp.join('meta', f'{split}.txt'), 'mmpretrain list'))
    for ann_file, layout in candidates:
        if osp.isfile(osp.join(data_root, ann_file)):
            return ann_file, layout
    folder = osp.join(data_root, split)
    if osp.isdir(folder) and class_folders(folder):
        return '', 'class folders'
    if not osp.isdir(folder):
        found = f'{folder} does not exist'
    else:
        n_images = len(image_files(folder))
        found = f'{folder} has no class sub-folder' + (
            f' but {n_images} image files (a flat folder needs a list of "<file> <label>" lines)' if n_images else '')
    tried = '; '.join([f'{osp.join(data_root, a)} ({name})' for a, name in candidates]
                      + [f'{osp.join(folder, "<wnid>")}/*.JPEG (class folders, torchvision ImageFolder)'])
    raise FileNotFoundError(
        f'no ImageNet layout found for the split {split!r} under {data_root!r}: tried {tried}; {found}. Another '
        f'list: ann_file=PATH (relative to the data root; --cfg-options <loader>.dataset.ann_file=PATH)')


@DATASETS.register_module()
class ImageNetDataset(BaseDataset):
    """ILSVRC-12-format dataset; each item is ``dict(img_path=..., gt_label=int)``.

    Args:
        data_root: dataset root, e.g. ``'data/imagenet/'``.
        data_prefix: ``dict(img_path='train')``, the image folder relative to ``data_root``.
        ann_file: ``''`` for the folder form, ``'auto'`` for the first layout of :func:`find_split_layout` that
            exists, else the annotation list (e.g. ``'val.txt'``, ``'meta/val.txt'``), relative to ``data_root``.
        classes_dir: folder (relative to ``data_root``) whose sub-folders define the classes, ``'train'`` so that
            train and val share one label order; ``None``: the class sub-folders of ``img_path`` (folder form) or
            labels ``0..max`` named by their index (list form). Ignored when ``metainfo`` gives ``classes``.
        verify_images: decode every image header up front and fail listing the unreadable ones (off by default: a
            pass over every file; existence is checked either way, by the folder listing or per listed path).
        extensions: file name endings counted as images.
        **kwargs: ``mmengine.dataset.BaseDataset`` arguments (pipeline, test_mode, indices, ...).
    """

    METAINFO = dict(classes=None)

    def __init__(self, data_root: str = '', data_prefix: Optional[dict] = None, ann_file: str = '',
                 classes_dir: Optional[str] = 'train', verify_images: bool = False,
                 extensions: Sequence[str] = IMG_EXTENSIONS, **kwargs):
        self.classes_dir = classes_dir
        self.verify_images = verify_images
        self.extensions = tuple(e.lower() for e in extensions)
        data_prefix = data_prefix if data_prefix is not None else dict(img_path='')
        self.layout = 'class folders' if not ann_file else 'list'
        if ann_file == AUTO:
            ann_file, self.layout = find_split_layout(data_root, data_prefix.get('img_path', ''))
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ classes
    def _class_list(self) -> Optional[List[str]]:
        given = self._metainfo.get('classes')
        if given is not None:
            return list(given)
        if self.classes_dir is None:
            return None
        folder = self.classes_dir if osp.isabs(self.classes_dir) else osp.join(self.data_root, self.classes_dir)
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'classes_dir {folder} not found: it must be the training folder whose <wnid> sub-folders define '
                f'the classes (or pass metainfo=dict(classes=[...]), or classes_dir=None)')
        classes = class_folders(folder)
        if not classes:
            raise ValueError(f'classes_dir {folder} has no class sub-folders (expected {folder}/<wnid>/*.JPEG)')
        return classes

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        img_root = self.data_prefix.get('img_path', '') or self.data_root
        classes = self._class_list()
        if self.ann_file:
            data_list, classes = self._load_annotation_list(img_root, classes)
        else:
            data_list, classes = self._load_folders(img_root, classes)
        self._metainfo['classes'] = tuple(classes)
        if self.verify_images:
            bad = unreadable_images([info['img_path'] for info in data_list])
            if bad:
                raise ValueError(f'{len(bad)} of {len(data_list)} images in {img_root} cannot be read: '
                                 + _listing(f'{p} ({r})' for p, r in bad))
        return data_list

    def _load_folders(self, img_root: str, classes: Optional[List[str]]) -> Tuple[List[dict], List[str]]:
        found = class_folders(img_root)
        if classes is None:
            classes = found
        if not classes:
            raise ValueError(f'no class folders in {img_root} (expected {img_root}/<wnid>/*.JPEG)')
        missing = sorted(set(classes) - set(found))
        extra = sorted(set(found) - set(classes))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f'missing in {img_root}: {_listing(missing)}')
            if extra:
                parts.append(f'not among the classes: {_listing(extra)}')
            raise ValueError(f'the class folders of {img_root} differ from the {len(classes)} classes of '
                             f'{self._classes_origin()}; ' + '; '.join(parts))
        data_list, empty = [], []
        for label, wnid in enumerate(classes):
            names = image_files(osp.join(img_root, wnid), self.extensions)
            if not names:
                empty.append(wnid)
            data_list.extend(dict(img_path=osp.join(img_root, wnid, n), gt_label=label) for n in names)
        if empty:
            raise ValueError(f'{len(empty)} class folders in {img_root} hold no image '
                             f'({"/".join(self.extensions)}): {_listing(empty)}')
        return data_list, classes

    def _load_annotation_list(self, img_root: str,
                              classes: Optional[List[str]]) -> Tuple[List[dict], List[str]]:
        pairs = parse_annotation_list(self.ann_file)
        labels = sorted({label for _, label in pairs})
        if classes is None:
            classes = [str(i) for i in range(labels[-1] + 1)]
        out_of_range = [label for label in labels if not 0 <= label < len(classes)]
        if out_of_range:
            raise ValueError(f'{self.ann_file} has labels outside [0, {len(classes)}) of the classes of '
                             f'{self._classes_origin()}: {_listing(map(str, out_of_range))}')
        index_of = {wnid: i for i, wnid in enumerate(classes)}
        data_list, missing, disagree = [], [], []
        listed = {}  # folder -> names of its files: one listing per folder, not one stat per image (1.28M in train)
        for path, label in pairs:
            full = osp.join(img_root, path)
            folder, name = osp.split(full)
            if folder not in listed:
                listed[folder] = _file_names(folder)
            if name not in listed[folder]:
                missing.append(full)
            # "<wnid>/<file>" paths name their class: a label that disagrees means a shifted label order
            folder = osp.normpath(path).split(os.sep)[0] if osp.dirname(path) else None
            if folder in index_of and index_of[folder] != label:
                disagree.append(f'{path} labelled {label}, but {folder} is class {index_of[folder]}')
            data_list.append(dict(img_path=full, gt_label=label))
        if missing:
            raise FileNotFoundError(f'{len(missing)} images listed in {self.ann_file} do not exist: '
                                    + _listing(missing))
        if disagree:
            raise ValueError(f'{len(disagree)} labels in {self.ann_file} disagree with the class order of '
                             f'{self._classes_origin()}: ' + _listing(disagree))
        return data_list, classes

    def _classes_origin(self) -> str:
        if self._metainfo.get('classes') is not None:
            return 'metainfo'
        if self.classes_dir is None:
            return 'the image folder'
        return osp.join(self.data_root, self.classes_dir)

    def get_cat_ids(self, idx: int) -> List[int]:
        return [int(self.get_data_info(idx)['gt_label'])]
