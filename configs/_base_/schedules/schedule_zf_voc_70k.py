# py-faster-rcnn's ZF end2end solver, the paper's detection schedule: 1 GPU x 1 image per iteration, SGD, base_lr
# 0.001, momentum 0.9, weight_decay 5e-4, lr x0.1 at iteration 50k of 70k (about 70% of the schedule); 70k images
# seen (about 14 epochs of VOC07 trainval's 5011 images). Snapshots every 10k iterations: default_hooks in
# configs/_base_/default_runtime_iter.py.
#
# The same schedule for several GPUs (total batch B = GPUs x images per GPU), linear scaling with a warm-up
# (Goyal et al. 2017): schedule_zf_voc_70k_{2,4,8}xb1.py, used by configs/faster_rcnn_zf*_voc*_{2,4,8}xb1.py:
#   lr = 0.001 B (lr per image 0.001), max_iters = 70000 / B, milestone = 50000 / B (the same 70k images seen and
#   the same step after 50k images), plus a linear warm-up over the first 4000 images (4000 / B iterations, about
#   6% of the schedule) from the paper's lr 0.001 (start_factor 1 / B) up to 0.001 B.
#
# Overrides for short runs: train_cfg.max_iters=N param_scheduler.0.milestones="[M]" (M about 0.7 N)

# validation (VOC07 test) once, at the end; mmengine also validates at the last iteration of a shorter run
train_cfg = dict(type='IterBasedTrainLoop', max_iters=70000, val_interval=70000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# no warm-up: py-faster-rcnn has none
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[50000], gamma=0.1)]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=0.0005),
    # Caffe's lr_mult 2 / decay_mult 0 on every bias of the ZF prototxt; the power convs' exponents (`alpha`) are
    # regularised by AlphaRegularizationHook's L1 + L2 penalty alone (paper Section 2), not by weight decay as well.
    # lr_mult: the exponents' own learning-rate multiplier (a finite number >= 0, checked by AlphaProjectionHook),
    # the same as in pretraining (configs/pretrain/_base_/schedules/imagenet_bs256.py, where the measurements are):
    # 1. The evidence study (docs/robustness_study.md, 5 seeds) found 3 (alpha moves 2.5x as far) 11.1 [-21.7, -0.5]
    # mAP points below 1 in these detectors, with no robustness gained. At lr_mult 1 an alpha step here is
    # 1/14-1/20 of the conv weights' relative step (alpha_report.py drift from the pretrained ZF-POW-1).
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0,
                       custom_keys={'.alpha': dict(lr_mult=1.0, decay_mult=0.0)}))

# base_batch_size: the total batch the lr above is for (1 image per iteration). tools/train.py --auto-scale-lr
# multiplies the lr by (GPUs x images per GPU) / base_batch_size (mmengine's Runner.scale_lr) and leaves the
# iterations: on N GPUs use the *_{2,4,8}xb1.py configs, whose iterations are scaled too.
auto_scale_lr = dict(enable=False, base_batch_size=1)
