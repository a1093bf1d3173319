# ResNet-50+Stability (Table 2 reference; Zheng et al. 2016): fine-tune the last fc (head.fc) of the trained
# ResNet-50 with sigma = 0.04, lambda = 0.01, everything else frozen (see resnet18_stability_imagenet.py).
#
#   python tools/train.py configs/pretrain/resnet50_imagenet.py
#   python tools/train.py configs/pretrain/resnet50_stability_imagenet.py
_base_ = './resnet50_imagenet.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(type='StabilityTrainingClassifier', sigma=0.04, lam=0.01, trainable=('head.fc.*', ))
load_from = 'work_dirs/resnet50_imagenet/epoch_90.pth'

# fine-tuning schedule of resnet18_stability_imagenet.py (our choice; the paper gives none)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=10, milestones=[7], gamma=0.1)]
train_cfg = dict(max_epochs=10)
