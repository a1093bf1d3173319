# ResNet-18+DoReFa (Table 2 reference; Zhou et al. 2016): (W, A, G) = (1, 4, 32), "as suggested in their paper".
# Every convolution of the residual stages (both 3x3 of each block and the 1x1 downsample shortcuts) is a DoReFaConv:
# binary weights sign(w) * mean|w| per layer, inputs clipped to [0, 1] and quantized to 4 bits, full-precision
# gradients. As in DoReFa-Net the first conv (backbone.conv1, it sees the normalised image) and the last fc
# (head.fc, an nn.Linear) stay full precision. Trained like the reference model (He et al.'s scheme, from scratch);
# to start from the full-precision ResNet-18 instead: --cfg-options load_from=work_dirs/resnet18_imagenet/epoch_90.pth
_base_ = './resnet18_imagenet.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        quant=dict(conv_cfg=dict(type='DoReFaConv', w_bits=1, a_bits=4, g_bits=32), include=['layer*'])))
