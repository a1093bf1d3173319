"""Models built from ``layers``: backbones, classifiers, heads; importing the package registers them in mmdet's
``MODELS``."""
from .backbones import ZF, QuantResNet
from .classifiers import ClsDataPreprocessor, ImageClassifier
from .heads import DropoutShared2FCBBoxHead, LinearClsHead, PortableSingleRoIExtractor, ZFClsHead
from .stability import StabilityTrainingClassifier, StabilityTrainingTwoStageDetector

__all__ = ['ZF', 'QuantResNet', 'ClsDataPreprocessor', 'ImageClassifier', 'DropoutShared2FCBBoxHead', 'LinearClsHead',
           'PortableSingleRoIExtractor', 'ZFClsHead', 'StabilityTrainingClassifier',
           'StabilityTrainingTwoStageDetector']
