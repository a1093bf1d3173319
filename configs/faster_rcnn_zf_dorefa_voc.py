# ZF + DoReFa (Zhou et al. 2016), (W, A, G) = (1, 4, 32): conv2..conv5 of the ZF backbone are DoReFaConv (binary
# weights, inputs clipped to [0, 1] and quantized to 4 bits); conv1 (it sees the image) stays full precision as in
# DoReFa-Net, and so do the RPN and the RoI head (only convolutions are converted).
# Caveat: ZF has no BatchNorm and its inputs are mean-subtracted 0-255 pixels, so the [0, 1] clip of DoReFa's
# activations saturates unless the weights learn a matching scale; DoReFa-Net's own AlexNet adds BatchNorm.
_base_ = './faster_rcnn_zf_voc.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        quant=dict(conv_cfg=dict(type='DoReFaConv', w_bits=1, a_bits=4, g_bits=32),
                   include=('conv2', 'conv3', 'conv4', 'conv5'))))
