# ZF-POW-1: ZF with the power function (learnable exponents, Lambda = 1) before its last three convolutions.
_base_ = ['./zf_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='PowConv', num_portions=1),
                                      layers=('conv3', 'conv4', 'conv5'))))
