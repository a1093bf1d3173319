# ILSVRC-12 in the ImageNet layout (featquant_mmdet.datasets.imagenet): data/imagenet/train/<wnid>/*.JPEG for
# training, data/imagenet/val.txt ("<path> <label>", paths relative to val/) for validation; the class order is the
# sorted wnid folders of train/. Another root: --cfg-options train_dataloader.dataset.data_root=DIR
# val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
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
        ann_file='val.txt',
        data_prefix=dict(img_path='val'),
        classes_dir='train',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
