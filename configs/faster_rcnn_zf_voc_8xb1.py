# Faster R-CNN ZF (faster_rcnn_zf_voc.py) on 8 GPUs x 1 image: the paper's schedule for a total batch of 8, the
# same 70k images and lr per image (_base_/schedules/schedule_zf_voc_70k_8xb1.py), snapshots every 10k images.
#   bash tools/dist_train.sh configs/faster_rcnn_zf_voc_8xb1.py 8
_base_ = [
    './_base_/models/faster_rcnn_zf.py',
    './_base_/datasets/voc07.py',
    './_base_/schedules/schedule_zf_voc_70k_8xb1.py',
    './_base_/default_runtime_iter.py',
]
default_hooks = dict(checkpoint=dict(interval=1250))
