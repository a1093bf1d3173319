"""Classification data transforms."""
from .cls_transforms import PackClsInputs, RandomResizedCrop

__all__ = ['PackClsInputs', 'RandomResizedCrop']
