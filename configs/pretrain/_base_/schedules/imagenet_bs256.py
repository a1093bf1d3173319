# He et al. (2016): SGD lr 0.1, momentum 0.9, weight decay 1e-4, lr / 10 every 30 epochs, 90 epochs, batch 256.
# The power convs' exponents (`alpha`) are regularised by AlphaRegularizationHook's L1 + L2 penalty alone (paper
# Section 2), not by weight decay as well. lr_mult: the exponents' own learning-rate multiplier (a finite number
# >= 0, checked by AlphaProjectionHook).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
                     paramwise_cfg=dict(custom_keys={'.alpha': dict(lr_mult=1.0, decay_mult=0.0)}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=90, milestones=[30, 60], gamma=0.1)]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# lr = 0.1 * (GPUs x images per GPU) / 256, applied by the Runner at the start of training
auto_scale_lr = dict(enable=True, base_batch_size=256)
