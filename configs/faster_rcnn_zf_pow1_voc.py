# ZF-POW-1 (paper Section 3.3): the baseline with the power function of learnable exponents (eq. 4-5, one set of
# exponents per input channel, Lambda = 1) before conv3, conv4 and conv5.
_base_ = ['./faster_rcnn_zf_voc.py', './_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='PowConv'), include=('conv3', 'conv4', 'conv5'))))
