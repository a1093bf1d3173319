# ResNet-18+HPOW: the power function with exponents from a hypernetwork
# of the input's channel means and stds (eq. 7). Section 3.2: for ResNet-18 before every convolution.
_base_ = ['./resnet18_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='HPowConv', num_portions=1))))
