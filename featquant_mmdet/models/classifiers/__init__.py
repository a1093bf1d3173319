"""The image classifier of the pretraining configs (the classifier-to-detector hand-off is in ``handoff``)."""
from .image_classifier import ClsDataPreprocessor, ImageClassifier

__all__ = ['ClsDataPreprocessor', 'ImageClassifier']
