# ResNet-18+Stability (Table 2 reference; Zheng et al. 2016): fine-tune the last fc (head.fc) of the trained
# ResNet-18 with  loss = CE(I) + 0.01 * KL(p(y|I) || p(y|I')),  I' = I + N(0, 0.04) on the [0, 1] image scale
# (featquant_mmdet.models.stability). The rest of the network, BatchNorm statistics included, stays frozen.
#
#   python tools/train.py configs/pretrain/resnet18_imagenet.py            # the reference model first
#   python tools/train.py configs/pretrain/resnet18_stability_imagenet.py  # then the fine-tuning
#
# The checkpoint keeps the plain classifier's parameter names: test it with this config or resnet18_imagenet.py.
# Another starting checkpoint: --cfg-options load_from=CKPT
_base_ = './resnet18_imagenet.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(type='StabilityTrainingClassifier', sigma=0.04, lam=0.01, trainable=('head.fc.*', ))
load_from = 'work_dirs/resnet18_imagenet/epoch_90.pth'

# Fine-tuning schedule (neither the paper nor Zheng et al. give one for ResNet): 10 epochs from a tenth of the base
# lr, divided by 10 after 7; momentum, weight decay and batch size as in pretraining.
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=10, milestones=[7], gamma=0.1)]
train_cfg = dict(max_epochs=10)
