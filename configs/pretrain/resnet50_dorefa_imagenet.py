# ResNet-50+DoReFa (Table 2 reference; Zhou et al. 2016): (W, A, G) = (1, 4, 32).
# Unlike the paper's own methods (only before the 3x3 convs of ResNet-50), DoReFa quantizes every layer but the
# first and the last: all convs of the residual stages (1x1, 3x3 and the downsample shortcuts) are DoReFaConv;
# backbone.conv1 and head.fc stay full precision. See resnet18_dorefa_imagenet.py.
_base_ = './resnet50_imagenet.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        quant=dict(conv_cfg=dict(type='DoReFaConv', w_bits=1, a_bits=4, g_bits=32), include=['layer*'])))
