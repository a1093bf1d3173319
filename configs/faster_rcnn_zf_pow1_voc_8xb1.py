# ZF-POW-1 (faster_rcnn_zf_pow1_voc.py) on 8 GPUs x 1 image: the schedule of faster_rcnn_zf_voc_8xb1.py.
_base_ = ['./faster_rcnn_zf_voc_8xb1.py', './_base_/alpha_regularization.py']
model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='PowConv'), include=('conv3', 'conv4', 'conv5'))))
