# ResNet-50+HPOW: the power function with exponents from a hypernetwork
# of the input's channel means and stds (eq. 7). Section 3.2: for ResNet-50 only before the 3x3 convolutions.
_base_ = ['./resnet50_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='HPowConv', num_portions=1), kernel_size=3)))
