# ResNet-50+SF-100: the scaled floor (eq. 2-3) with beta = 100.
# One beta for all channels. Section 3.2: for ResNet-50 only before the 3x3 convolutions.
_base_ = './resnet50_imagenet.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(backbone=dict(quant=dict(conv_cfg=dict(type='SFConv', beta=100.0), kernel_size=3)))
