# ZF-POW-1 started from the ZF-POW-1 ImageNet classifier (the paper's Table 3; faster_rcnn_zf_pow1_voc_imagenet_init.py)
# on 8 GPUs x 1 image: the schedule of faster_rcnn_zf_voc_8xb1.py. The same --cfg-options keys for another checkpoint.
#   bash tools/dist_train.sh configs/faster_rcnn_zf_pow1_voc_imagenet_init_8xb1.py 8
_base_ = './faster_rcnn_zf_pow1_voc_8xb1.py'

classifier = 'work_dirs/zf_pow1_imagenet/epoch_90.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=classifier, prefix='backbone.')),
    roi_head=dict(
        bbox_head=dict(init_cfg=[
            dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
            dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
            dict(type='Pretrained', checkpoint=classifier, prefix='head.'),
        ])))
