"""Datasets and data transforms (registered in mmdet's registries on import); the synthetic-data generators
(``synthetic_voc``, ``synthetic_imagenet``) are tools' modules, imported where used."""
from .imagenet import ImageNetDataset
from .strict_voc import StrictVOCDataset
from .transforms import PackClsInputs, RandomResizedCrop

__all__ = ['ImageNetDataset', 'StrictVOCDataset', 'PackClsInputs', 'RandomResizedCrop']
