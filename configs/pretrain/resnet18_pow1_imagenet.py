# ResNet-18+POW-1: the power function with learnable exponents (eq. 4-6),
# one exponent per input channel (Lambda = 1). Section 3.2: for ResNet-18 before every convolution.
_base_ = ['./resnet18_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='PowConv', num_portions=1))))
