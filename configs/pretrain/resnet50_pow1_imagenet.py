# ResNet-50+POW-1: the power function with learnable exponents (eq. 4-6),
# one exponent per input channel (Lambda = 1). Section 3.2: for ResNet-50 only before the 3x3 convolutions.
_base_ = ['./resnet50_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='PowConv', num_portions=1), kernel_size=3)))
