# ZF + SF-POW: scaled floor (beta = 100) and power function (Lambda = 1) before conv3, conv4 and conv5.
_base_ = ['./faster_rcnn_zf_voc.py', './_base_/alpha_regularization.py']
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        quant=dict(conv_cfg=dict(type='SFPowConv', beta=100.0, num_portions=1), include=('conv3', 'conv4', 'conv5'))))
