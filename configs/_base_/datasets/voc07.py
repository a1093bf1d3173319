# Pascal VOC 2007: train on trainval, test on test, 11-point mAP (py-faster-rcnn's voc_2007_trainval /
# voc_2007_test). mmdet::_base_/datasets/voc0712.py without VOC 2012, with one image per batch and
# StrictVOCDataset, which checks the data root, every XML and every listed image before training starts.
#
# Overrides used by the tests and the demo (pipeline indices are part of this file's interface):
#   train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
#   train_dataloader.dataset.pipeline.2.scale="(W,H)"  val_dataloader.dataset.pipeline.1.scale="(W,H)"
#   test_dataloader.dataset.pipeline.1.scale="(W,H)"   (Resize: longer side <= W, shorter side <= H)
dataset_type = 'StrictVOCDataset'
data_root = 'data/VOCdevkit/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    # SCALES=(600,), MAX_SIZE=1000: shorter side 600 unless the longer one would pass 1000
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),  # USE_FLIPPED
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    # after Resize, so that the boxes stay in original image coordinates for evaluation
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=1,  # IMS_PER_BATCH
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        # images without a usable box are skipped as in py-faster-rcnn's filter_roidb; difficult boxes are
        # ignored (USE_DIFF False); no minimum box size (mmdet's voc0712 ignores boxes under 32 px)
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
