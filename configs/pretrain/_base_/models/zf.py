# ZF classifier (Zeiler & Fergus, as py-faster-rcnn's ZF): conv1-conv5 (stride 16), pool5 to 6x6x256, fc6 4096,
# fc7 4096 (ReLU, dropout 0.5), fc8. The input normalisation is the one of the ZF detection configs
# (configs/_base_/models/faster_rcnn_zf.py: BGR mean subtraction, no scaling), so backbone and fc6/fc7 see the same
# inputs in pretraining and detection.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', mean=[102.9801, 115.9465, 122.7717], std=[1.0, 1.0, 1.0], bgr_to_rgb=False),
    backbone=dict(type='ZF', out_indices=(4, )),  # no `quant`: plain ZF (ZF-POW-1 adds quant=dict(...))
    head=dict(type='ZFClsHead', num_classes=1000, in_channels=256, pooled_size=6, hidden_channels=4096, dropout=0.5,
              loss=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
