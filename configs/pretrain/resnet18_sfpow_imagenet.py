# ResNet-18+SF-POW: the scaled floor (beta = 100) and the power function
# (Lambda = 1). Section 3.2: for ResNet-18 before every convolution.
_base_ = ['./resnet18_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='SFPowConv', beta=100.0, num_portions=1))))
