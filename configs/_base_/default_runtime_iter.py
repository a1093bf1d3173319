# Runtime of the VOC detectors: mmdet's default runtime with iteration-based snapshots and logs, exact --resume and a
# fixed seed.
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

# iteration-based snapshots (py-faster-rcnn: SNAPSHOT_ITERS 10000; the *_Nxb1.py configs snapshot every 10000 images)
# and logs. rng_state: torch's generator state in each checkpoint, restored by --resume (exact resume; README "Train
# and test")
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3),
    rng_state=dict(type='RNGStateHook'))
log_processor = dict(by_epoch=False)
# a fixed seed: two runs on one machine with the same thread count give bitwise the same weights (README, "What is
# reproducible"); mmengine would draw a new seed per run without it. --cfg-options randomness.seed=N for another one
randomness = dict(seed=0)
