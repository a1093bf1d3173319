# ZF Faster R-CNN started from the ZF ImageNet classifier (configs/pretrain/zf_imagenet.py), as in the paper
# (Table 3), with mmdet's Pretrained init and no conversion step: the classifier's checkpoint gives the backbone
# (prefix 'backbone.') and the RoI head's fc6/fc7 (prefix 'head.': the classifier's ZFClsHead names them
# shared_fcs.0/1 as the box head does). fc_cls / fc_reg keep mmdet's Normal inits (mmengine applies Pretrained
# after the other inits; it logs the classifier's fc8 as unexpected and fc_cls/fc_reg as missing: expected).
#
#   python tools/train.py configs/pretrain/zf_imagenet.py
#   python tools/train.py configs/faster_rcnn_zf_voc_imagenet_init.py
#
# Another classifier checkpoint (both places): --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#   model.roi_head.bbox_head.init_cfg.2.checkpoint=CKPT
# Optional strict check of keys and shapes (the Pretrained init only warns):
#   python tools/convert_classifier_to_backbone.py CKPT --config configs/faster_rcnn_zf_voc.py
_base_ = './faster_rcnn_zf_voc.py'

classifier = 'work_dirs/zf_imagenet/epoch_90.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=classifier, prefix='backbone.')),
    roi_head=dict(
        bbox_head=dict(init_cfg=[
            dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
            dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
            dict(type='Pretrained', checkpoint=classifier, prefix='head.'),
        ])))
