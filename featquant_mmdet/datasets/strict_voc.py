"""Pascal VOC dataset that checks its files up front and names the bad one.

mmdet's ``VOCDataset`` silently drops objects whose class is not configured, fails on a broken XML with a bare
parser message that names no file, and finds a missing image only when the loader reaches it mid-training.
``StrictVOCDataset`` runs the checks below while the dataset is built (``load_data_list``), i.e. before the first
training iteration, and raises an error that names the file and what is accepted.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Sequence

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


def check_voc_annotation(xml_path: str, classes: Sequence[str]) -> None:
    """Raise a clear error naming ``xml_path`` when it is missing, is not XML, or holds an unusable object.

    An object is unusable when its ``<name>`` is not one of ``classes`` (mmdet would drop it silently), its
    ``<bndbox>`` lacks a numeric xmin/ymin/xmax/ymax, or its ``<difficult>`` is not 0/1; a ``<size>`` needs whole
    numbers.
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
        for field in _BOX_FIELDS:
            text = None if box is None else box.findtext(field)
            try:
                float(text)
            except (TypeError, ValueError):
                raise ValueError(f'VOC annotation {xml_path!r}: object #{index} ({name}) needs a numeric '
                                 f'<bndbox><{field}>, got {text!r}') from None


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
            check_voc_annotation(img_info['xml_path'], self._metainfo['classes'])
            img_path = osp.join(self.sub_data_root, img_info['file_name'])
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'image {img_path!r} of id {img_info["img_id"]!r} (listed in '
                                        f'{self.ann_file!r}) does not exist')
        return super().parse_data_info(img_info)
