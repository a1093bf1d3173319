# ZF + SF-100: the scaled floor (eq. 2-3, beta = 100) before conv3, conv4 and conv5 instead of POW.
_base_ = './faster_rcnn_zf_voc.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='SFConv', beta=100.0), include=('conv3', 'conv4', 'conv5'))))
