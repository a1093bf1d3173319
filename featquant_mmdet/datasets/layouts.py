"""Checks that a folder holds a dataset in the layout the configs read, before anything is trained on it."""
import os.path as osp

from .imagenet import class_folders, find_split_layout
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
    """An ImageNet layout the configs read (``ann_file='auto'``): ``train/<wnid>/`` class folders (the class list)
    and a layout of ``val`` (``val.txt`` or mmpretrain's ``meta/val.txt`` with ``val/``, or ``val/<wnid>/``;
    :func:`~featquant_mmdet.datasets.imagenet.find_split_layout`); FileNotFoundError naming what is missing."""
    root = osp.abspath(root)
    train = osp.join(root, 'train')
    missing = [] if osp.isdir(train) and class_folders(train) else ['train/<wnid>/ class folders (the class list)']
    try:
        find_split_layout(root, 'val')
    except FileNotFoundError:
        if not missing:
            raise
        missing.append('val/ with val.txt or meta/val.txt, or val/<wnid>/ class folders')
    if missing:
        raise FileNotFoundError(f'missing {"; ".join(missing)}')
    return root
