# ResNet-18 classifier: mmdet's ResNet (through QuantResNet, plain without `quant`), global average pooling, linear.
# Inputs normalised like torchvision / mmdet's ResNet detectors (RGB, ImageNet mean and std), so the backbone can be
# handed to mmdet's ResNet Faster R-CNN configs unchanged.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='QuantResNet',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        # He et al. initialise the last BN of each block to 1, not 0
        zero_init_residual=False),  # no `quant`: a plain ResNet (the variants add quant=dict(...))
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
              loss=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
