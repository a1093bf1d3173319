# Runtime of the ImageNet pretraining configs: mmdet's runtime without its detection visualizer/hook.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

default_hooks = dict(
    _delete_=True,
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    rng_state=dict(type='RNGStateHook'))  # exact --resume (featquant_mmdet/engine/reproducibility.py)

# no fixed name: the Runner names it after the experiment, so runs in one process keep their own log dirs
visualizer = dict(_delete_=True, type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
randomness = dict(seed=0)  # reproducible runs (README, "What is reproducible"); randomness.seed=N for another one
