# Faster R-CNN + ResNet-50+POW-1 on Pascal VOC 2007: the ResNet counterpart of ZF-POW-1 (paper Section 3.3), with the
# quantized ResNet-50 of configs/pretrain/resnet50_pow1_imagenet.py (power function before every 3x3 conv).
#
# FPN (mmdet's faster-rcnn_r50_fpn), not C4: with FPN the whole ResNet-50, all four stages, is `backbone`, so the
# classifier's quantized backbone is handed over under one prefix and quantized by one conversion. C4 moves stage 4
# into the RoI head (mmdet's ResLayer), which would need a second quantized module outside the backbone and a
# second key mapping for the pretrained weights.
#
# Starts from the ImageNet classifier's checkpoint itself, no conversion (mmdet's Pretrained init takes its
# backbone.* keys; stem and stage 1 stay frozen, as in mmdet's ResNet detectors):
#   python tools/train.py configs/pretrain/resnet50_pow1_imagenet.py
#   python tools/train.py configs/faster_rcnn_r50_pow1_voc.py
# Optional strict check of keys and shapes first (the Pretrained init only warns):
#   python tools/convert_classifier_to_backbone.py work_dirs/resnet50_pow1_imagenet/epoch_90.pth \
#       --config configs/faster_rcnn_r50_pow1_voc.py
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch (no pretraining):
#   --cfg-options model.backbone.init_cfg=None model.backbone.frozen_stages=-1
# Data and schedule are those of the ZF detectors (configs/_base_/datasets/voc07.py, _base_/schedules/
# schedule_zf_voc_70k.py), with the same --cfg-options keys for data root, image scale and schedule.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/datasets/voc07.py',
    './_base_/schedules/schedule_zf_voc_70k.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/alpha_regularization.py',
]
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='QuantResNet',
        quant=dict(conv_cfg=dict(type='PowConv', num_portions=1), kernel_size=3),
        init_cfg=dict(type='Pretrained', checkpoint='work_dirs/resnet50_pow1_imagenet/epoch_90.pth',
                      prefix='backbone.')),
    roi_head=dict(bbox_head=dict(num_classes=20)))
# exact --resume: torch's generator state in each checkpoint (featquant_mmdet/engine/reproducibility.py)
default_hooks = dict(rng_state=dict(type='RNGStateHook'))
randomness = dict(seed=0)  # reproducible runs (README, "What is reproducible")
