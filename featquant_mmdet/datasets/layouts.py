"""Checks that a folder holds a dataset in the layout the configs read, before anything is trained on it."""
import os.path as osp

from .imagenet import class_folders
from .strict_voc import check_voc_layout


def check_vocdevkit(data_root: str) -> str:
    """A VOCdevkit: ``VOC2007/`` with ``JPEGImages/``, ``Annotations/`` and ``ImageSets/Main/{trainval,test}.txt``;
    FileNotFoundError naming what is missing (and a VOC2007 folder given for the folder above it)."""
    data_root = osp.abspath(data_root)
    voc = osp.join(data_root, 'VOC2007')
    for split in ('trainval', 'test'):
        check_voc_layout(data_root, voc, osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'JPEGImages',
                         'Annotations')
    return data_root


def check_imagenet_root(root: str) -> str:
    """An ImageNet layout: ``train/<wnid>/`` class folders and ``val.txt`` with ``val/``; FileNotFoundError naming
    what is missing."""
    root = osp.abspath(root)
    layout = 'expected train/<wnid>/*.JPEG, val/ and val.txt ("<path relative to val/> <label>" lines)'
    missing = [p for p in ('train', 'val') if not osp.isdir(osp.join(root, p))]
    missing += [] if osp.isfile(osp.join(root, 'val.txt')) else ['val.txt']
    if missing:
        raise FileNotFoundError(f'missing {", ".join(missing)}; {layout}')
    if not class_folders(osp.join(root, 'train')):
        raise FileNotFoundError(f'train/ has no class folder; {layout}')
    return root
