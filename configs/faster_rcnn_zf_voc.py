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
#
# The paper's single-GPU schedule (1 image per iteration, lr 0.001, 70k iterations). On N GPUs use the config of the
# total batch, faster_rcnn_zf_voc_{2,4,8}xb1.py: the same images seen and lr per image (docs/cluster.md)
#   bash tools/dist_train.sh configs/faster_rcnn_zf_voc_8xb1.py 8
_base_ = [
    './_base_/models/faster_rcnn_zf.py',
    './_base_/datasets/voc07.py',
    './_base_/schedules/schedule_zf_voc_70k.py',
    './_base_/default_runtime_iter.py',
]
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
