# ZF-POW-1: ZF with the power function (learnable exponents, Lambda = 1) before its last three convolutions.
# Its optimiser is ZF's (lr 0.01, weight decay 5e-4, gradient-norm clipping at 10; see zf_imagenet.py, which
# measured the clipping for both models).
_base_ = ['./zf_imagenet.py', '../_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='PowConv', num_portions=1),
                                      include=('conv3', 'conv4', 'conv5'))))
