# ILSVRC-12 (featquant_mmdet.datasets.imagenet), found in any of the layouts users have (ann_file='auto'), for each of
# train/ and val/ the first of:
#   data/imagenet/val.txt + val/*.JPEG      ILSVRC-12 / Caffe: "<path relative to val/> <label>" lines (flat val/)
#   data/imagenet/meta/val.txt + val/       mmpretrain's meta/train.txt, meta/val.txt
#   data/imagenet/val/<wnid>/*.JPEG         torchvision's ImageFolder (class folders, no list)
# and the same for train (train.txt, meta/train.txt, train/<wnid>/). The class order is the sorted wnid folders of
# train/. None of them: an error naming the three paths tried. Another list: ann_file=PATH, e.g.
#   --cfg-options val_dataloader.dataset.ann_file=my_val.txt test_dataloader.dataset.ann_file=my_val.txt
# Another root: --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
#   test_dataloader.dataset.data_root=DIR
# JPEG decoding: mmcv's LoadImageFromFile, imdecode_backend='cv2' (OpenCV, the default), 'pillow' or 'turbojpeg'
# (needs PyTurboJPEG); e.g. --cfg-options train_dataloader.dataset.pipeline.0.imdecode_backend=pillow. Images/s per
# loader worker of each, side by side with torchvision's ImageFolder: benchmarks/bench_imagenet_pipeline.py.
# 32 images per GPU; 8 GPUs give He et al.'s batch of 256 (auto_scale_lr rescales the lr for other totals).
dataset_type = 'ImageNetDataset'
data_root = 'data/imagenet/'
backend_args = None

# He et al. / Inception: random area 8-100% and aspect 3/4-4/3, resized to 224, horizontal flip
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
# the paper's validation: one 256x256 centre crop of the image resized to a shorter side of 256
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='ResizeShortestEdge', scale=256),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackClsInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='auto',
        data_prefix=dict(img_path='train'),
        classes_dir='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='auto',
        data_prefix=dict(img_path='val'),
        classes_dir='train',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
