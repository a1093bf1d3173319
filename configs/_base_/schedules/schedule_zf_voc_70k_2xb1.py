# The paper's detection schedule (schedule_zf_voc_70k.py: 1 GPU x 1 image, lr 0.001, 70k iterations, step at 50k)
# for a total batch of 2 (2 GPUs x 1 image), scaled linearly (Goyal et al. 2017) so that the images seen and
# the lr per image are the paper's:
#   lr        0.001 x 2 = 0.002            (lr per image 0.001)
#   max_iters 70000 / 2 = 35000           (70000 images)
#   milestone 50000 / 2 = 25000           (lr x0.1 after 50000 images)
#   warm-up   linear from lr 0.001 (start_factor 1/2) to 0.002 over 4000 / 2 = 2000 iterations (the first 4000
#             images, 5.7% of the schedule, as Goyal et al.'s 5 of 90 epochs; py-faster-rcnn has no warm-up at lr
#             0.001; not measured at full scale: no GPU cluster was at hand)
# param_scheduler.0 stays the MultiStepLR (the override keys of the 1-GPU schedule keep their meaning); the two
# schedulers multiply, so their order does not matter.
_base_ = './schedule_zf_voc_70k.py'

train_cfg = dict(max_iters=35000, val_interval=35000)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[25000], gamma=0.1),
    dict(type='LinearLR', by_epoch=False, start_factor=1 / 2, begin=0, end=2000),
]
optim_wrapper = dict(optimizer=dict(lr=0.002))
# the lr above is for a total batch of 2: --auto-scale-lr on another GPU count rescales the lr only (not the
# iterations); pick the *_Nxb1.py config of your GPU count instead
auto_scale_lr = dict(enable=False, base_batch_size=2)
