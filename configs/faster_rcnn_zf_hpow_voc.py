# ZF + HPOW: the power function with exponents from a hypernetwork on the input's channel mean and std (eq. 7)
# before conv3, conv4 and conv5.
_base_ = ['./faster_rcnn_zf_voc.py', './_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='HPowConv'), include=('conv3', 'conv4', 'conv5'))))
