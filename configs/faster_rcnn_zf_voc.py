# Faster R-CNN + ZF on Pascal VOC 2007 (py-faster-rcnn's ZF end2end setup; paper Section 3.3, "ZF").
#
#   python tools/train.py configs/faster_rcnn_zf_voc.py
#   python tools/test.py configs/faster_rcnn_zf_voc.py work_dirs/faster_rcnn_zf_voc/iter_70000.pth
#
# --cfg-options keys for another data root, image scale or schedule (short runs, generated data):
#   train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
#   train_dataloader.dataset.pipeline.2.scale="(W,H)" val_dataloader.dataset.pipeline.1.scale="(W,H)"
#   test_dataloader.dataset.pipeline.1.scale="(W,H)"
#   train_cfg.max_iters=N param_scheduler.0.milestones="[M]" default_hooks.checkpoint.interval=K
#   train_dataloader.num_workers=0 train_dataloader.persistent_workers=False (and the same for val/test)
# Generated data: python tools/data/make_synthetic_voc.py data  (writes data/VOCdevkit, the default root)
_base_ = [
    './_base_/models/faster_rcnn_zf.py',
    './_base_/datasets/voc07.py',
    './_base_/schedules/schedule_zf_voc_70k.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

# iteration-based snapshots (py-faster-rcnn: SNAPSHOT_ITERS 10000) and logs
# rng_state: torch's generator state in each checkpoint, restored by --resume (exact resume; README "Train and test")
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3),
    rng_state=dict(type='RNGStateHook'))
log_processor = dict(by_epoch=False)
# a fixed seed: two runs on one machine with the same thread count give bitwise the same weights (README, "What is
# reproducible"); mmengine would draw a new seed per run without it. --cfg-options randomness.seed=N for another one
randomness = dict(seed=0)
