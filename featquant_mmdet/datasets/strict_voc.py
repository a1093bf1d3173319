"""Pascal VOC dataset that checks its files up front and names the bad one.

mmdet's ``VOCDataset`` silently drops objects whose class is not configured, fails on a broken XML with a bare
parser message that names no file, and finds a missing image only when the loader reaches it mid-training.
``StrictVOCDataset`` runs the checks below while the dataset is built (``load_data_list``), i.e. before the first
training iteration (and before the first cell of a robustness sweep), and raises an error that names the file and
what is accepted: the layout, every XML (classes, numbers, boxes inside the image), and every image's file (not
empty, a decodable header, the size the XML gives, not truncated: JPEGs end with their end-of-image marker, PNGs with
their IEND chunk). The checks read headers and tails only, not whole images (about 0.1 ms an image). An image that
still fails later in the pipeline (changed on disk since, or broken in a way the header check cannot see) fails
with an error naming it, also from a data-loader worker, instead of a bare decoder message.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence, Tuple

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS

_VOC_LAYOUT = ('VOCdevkit/ layout: <data_root>/VOC2007/{JPEGImages/<id>.jpg, Annotations/<id>.xml, '
               'ImageSets/Main/<split>.txt}')
_BOX_FIELDS = ('xmin', 'ymin', 'xmax', 'ymax')


def check_voc_layout(data_root: str, sub_data_root: str, ann_file: str, img_subdir: str, ann_subdir: str) -> None:
    """Raise ``FileNotFoundError`` naming the first missing folder or list file of a VOC tree."""
    if data_root and not osp.isdir(data_root):
        raise FileNotFoundError(f'VOC data root {data_root!r} does not exist or is not a folder; expected the '
                                f'{_VOC_LAYOUT} (set it with --cfg-options train_dataloader.dataset.data_root=... '
                                'val_dataloader.dataset.data_root=... test_dataloader.dataset.data_root=...)')
    if not osp.isdir(sub_data_root):
        hint = ''
        if data_root and osp.isdir(osp.join(data_root, img_subdir)) and osp.isdir(osp.join(data_root, ann_subdir)):
            hint = (f'; {data_root!r} itself holds {img_subdir}/ and {ann_subdir}/, so it looks like a VOC2007 '
                    'folder: set data_root to the folder above it')
        elif data_root:
            hint = f'; {data_root!r} holds {sorted(os.listdir(data_root))[:10]}'
        raise FileNotFoundError(f'VOC folder {sub_data_root!r} does not exist; expected the {_VOC_LAYOUT}{hint}')
    for sub in (img_subdir, ann_subdir):
        if not osp.isdir(osp.join(sub_data_root, sub)):
            raise FileNotFoundError(f'VOC folder {osp.join(sub_data_root, sub)!r} does not exist; expected the '
                                    f'{_VOC_LAYOUT}')
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'VOC image list {ann_file!r} does not exist; expected the {_VOC_LAYOUT}')


class VOCDataError(ValueError):
    """A file of a VOC tree that cannot be used: the message names it and says what is accepted."""


def check_voc_annotation(xml_path: str, classes: Sequence[str],
                         image_size: Optional[Tuple[int, int]] = None) -> Optional[Tuple[int, int]]:
    """Raise a clear error naming ``xml_path`` when it is missing, is not XML, or holds an unusable object.

    An object is unusable when its ``<name>`` is not one of ``classes`` (mmdet would drop it silently), its
    ``<bndbox>`` lacks a numeric xmin/ymin/xmax/ymax, its box is empty or outside the image
    (``0 <= xmin < xmax <= width``, ``0 <= ymin < ymax <= height``; VOC's 1-based pixel coordinates), or its
    ``<difficult>`` is not 0/1; a ``<size>`` needs whole numbers. The image size is the XML's ``<size>``, else
    ``image_size`` (``(width, height)``), else the boxes are not checked against it.

    Returns the XML's ``(width, height)``, or None when it has no ``<size>``.
    """
    if not osp.isfile(xml_path):
        raise FileNotFoundError(f'VOC annotation {xml_path!r} does not exist (its image id is listed in the '
                                'ImageSets file)')
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise ValueError(f'VOC annotation {xml_path!r} is not valid XML: {err}') from err
    size = root.find('size')
    for field in ('width', 'height'):
        text = None if size is None else size.findtext(field)
        if size is not None and not (text or '').strip().isdigit():
            raise ValueError(f'VOC annotation {xml_path!r}: <size><{field}> must be a whole number, got {text!r}')
    xml_size = None if size is None else (int(size.findtext('width')), int(size.findtext('height')))
    width, height = xml_size or image_size or (None, None)
    for index, obj in enumerate(root.findall('object')):
        name = obj.findtext('name')
        if name not in classes:
            raise ValueError(f'VOC annotation {xml_path!r}: object #{index} has class name {name!r}, which is not '
                             f'one of the configured classes {tuple(classes)}; configure the dataset with '
                             'metainfo=dict(classes=(...)) to use other classes')
        difficult = obj.findtext('difficult')
        if difficult is not None and difficult.strip() not in ('0', '1'):
            raise ValueError(f'VOC annotation {xml_path!r}: object #{index} ({name}) has <difficult> {difficult!r}; '
                             'accepted are 0 and 1')
        box = obj.find('bndbox')
        coords = []
        for field in _BOX_FIELDS:
            text = None if box is None else box.findtext(field)
            try:
                coords.append(float(text))
            except (TypeError, ValueError):
                raise ValueError(f'VOC annotation {xml_path!r}: object #{index} ({name}) needs a numeric '
                                 f'<bndbox><{field}>, got {text!r}') from None
        xmin, ymin, xmax, ymax = coords
        inside = 0 <= xmin < xmax and 0 <= ymin < ymax
        if width is not None:
            inside = inside and xmax <= width and ymax <= height
        if not inside:
            bounds = '' if width is None else f' of the {width}x{height} image'
            raise VOCDataError(f'VOC annotation {xml_path!r}: object #{index} ({name}) has the box '
                               f'(xmin, ymin, xmax, ymax) = {tuple(coords)}, which is empty or outside the '
                               f'image{bounds}; accepted: 0 <= xmin < xmax <= width, 0 <= ymin < ymax <= height')
    return xml_size


_TAIL_BYTES = 4096
# (format, marker the file must end with up to trailing padding, what the marker is)
_END_MARKERS = {'JPEG': (b'\xff\xd9', 'the JPEG end-of-image marker FFD9'), 'PNG': (b'IEND', 'the PNG IEND chunk')}


def check_image_file(img_path: str) -> Tuple[int, int]:
    """``(width, height)`` from the header of ``img_path``; a :class:`VOCDataError` naming the file when it is empty,
    not a decodable image, or truncated (a JPEG without its end-of-image marker, a PNG without IEND, within the
    last 4 KiB). Reads the header and the tail only."""
    from PIL import Image, UnidentifiedImageError
    nbytes = osp.getsize(img_path)
    if nbytes == 0:
        raise VOCDataError(f'image {img_path!r} is empty (0 bytes); replace it with the image its XML describes')
    try:
        with Image.open(img_path) as img:
            fmt, size = img.format, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise VOCDataError(f'image {img_path!r} ({nbytes} bytes) is not a readable image ({err}); accepted are '
                           'image files OpenCV decodes (JPEG, PNG, ...)') from None
    if fmt in _END_MARKERS:
        marker, what = _END_MARKERS[fmt]
        with open(img_path, 'rb') as f:
            f.seek(max(0, nbytes - _TAIL_BYTES))
            tail = f.read()
        if marker not in tail:
            raise VOCDataError(f'image {img_path!r} ({fmt}, {nbytes} bytes) is truncated: it does not end with '
                               f'{what}; replace it with a complete copy')
    return size


@DATASETS.register_module()
class StrictVOCDataset(VOCDataset):
    """``VOCDataset`` that validates the data root, every listed XML and every listed image while loading.

    Same arguments as mmdet's ``VOCDataset``. The checks read local files (``backend_args=None``); with another
    file backend only the XML contents are checked (by the parent class, leniently).
    """

    def load_data_list(self) -> List[dict]:
        if self.backend_args is None:
            check_voc_layout(self.data_root, self.sub_data_root, self.ann_file, self.img_subdir, self.ann_subdir)
            with open(self.ann_file) as f:
                if not any(line.strip() for line in f):
                    raise ValueError(f'VOC image list {self.ann_file!r} lists no image id')
        return super().load_data_list()

    def parse_data_info(self, img_info: dict) -> dict:
        if self.backend_args is None:
            img_path = osp.join(self.sub_data_root, img_info['file_name'])
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'image {img_path!r} of id {img_info["img_id"]!r} (listed in '
                                        f'{self.ann_file!r}) does not exist')
            image_size = check_image_file(img_path)
            xml_size = check_voc_annotation(img_info['xml_path'], self._metainfo['classes'], image_size)
            if xml_size is not None and xml_size != image_size:
                raise VOCDataError(f'image {img_path!r} is {image_size[0]}x{image_size[1]} (width x height) but '
                                   f'its annotation {img_info["xml_path"]!r} gives <size> {xml_size[0]}x'
                                   f'{xml_size[1]}; the boxes are in the coordinates of <size>: fix the XML or '
                                   'the image')
        return super().parse_data_info(img_info)

    def prepare_data(self, idx):
        """The pipeline's output for image ``idx``; an error in the pipeline (loading, decoding, a transform) is
        raised again naming the image, also from a data-loader worker."""
        try:
            return super().prepare_data(idx)
        except Exception as err:
            info = self.get_data_info(idx)
            raise VOCDataError(f'image {info.get("img_path")!r} (id {info.get("img_id")!r}) failed in the data '
                               f'pipeline: {type(err).__name__}: {err}') from err
