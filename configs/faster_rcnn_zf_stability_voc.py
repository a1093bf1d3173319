# ZF Faster R-CNN + stability training (Zheng et al. 2016): fine-tune the RoI classifier
# (roi_head.bbox_head.fc_cls) of the trained detector with
#   loss = detector losses(I) + 0.01 * mean_RoIs KL(p(y|RoI, I) || p(y|RoI, I')),  I' = I + N(0, 0.04) on [0, 1],
# the RoI head run on the same sampled RoIs (and the same dropout masks) for the clean and the noisy feature maps
# (featquant_mmdet.models.stability.StabilityTrainingTwoStageDetector). Everything else stays frozen.
#
#   python tools/train.py configs/faster_rcnn_zf_voc.py              # the reference detector first
#   python tools/train.py configs/faster_rcnn_zf_stability_voc.py    # then the fine-tuning
#
# The checkpoint keeps FasterRCNN's parameter names (test it with this config or faster_rcnn_zf_voc.py).
# Another starting checkpoint: --cfg-options load_from=CKPT; the data keys are those of faster_rcnn_zf_voc.py.
_base_ = './faster_rcnn_zf_voc.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(type='StabilityTrainingTwoStageDetector', sigma=0.04, lam=0.01,
             trainable=('roi_head.bbox_head.fc_cls.*', ))
load_from = 'work_dirs/faster_rcnn_zf_voc/iter_70000.pth'

# Fine-tuning schedule (our choice, the paper gives none): 10k iterations at the ZF schedule's base lr (0.001),
# divided by 10 after 7k.
train_cfg = dict(max_iters=10000, val_interval=10000)
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[7000], gamma=0.1)]
