# ResNet-50 classifier: the ResNet-18 classifier with bottleneck blocks (2048-d pooled features).
_base_ = './resnet18.py'
model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
