# He et al. (2016): SGD lr 0.1, momentum 0.9, weight decay 1e-4, lr / 10 every 30 epochs, 90 epochs, batch 256.
# The power convs' exponents (`alpha`) are regularised by AlphaRegularizationHook's L1 + L2 penalty alone (paper
# Section 2), not by weight decay as well.
# lr_mult: the exponents' own learning-rate multiplier (a finite number >= 0, checked by AlphaProjectionHook; the
# detection schedule uses the same). Measured in docs/alpha.md, ZF-POW-1 on the generated ImageNet (6 classes, 64 px,
# batch 16, lr 0.01, 300 iterations, 6-8 seeds), lr_mult -> top-1 % (mean ± standard error), alpha mean / min:
#   1 -> 97.2 ± 0.6, -0.02 / -0.2..-0.5;   3 -> 95.6 ± 0.7, -0.05 / -0.5..-1;   10 -> 93.5 ± 1.9, -0.15 / -1;
#   30 -> 73 (1 seed), 100 -> 20 (loss diverged).  Plain ZF: 95.7 ± 0.9.  3 moves alpha 2.5x as far as 1 with the
# plain model's accuracy; from 10 on accuracy suffers. (At lr_mult 1 an alpha step is 1/15-1/18 of the conv weights'
# relative step in ZF, 1/5-1/120 in ResNet-18: `tools/analysis/alpha_report.py drift`.)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
                     paramwise_cfg=dict(custom_keys={'.alpha': dict(lr_mult=3.0, decay_mult=0.0)}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=90, milestones=[30, 60], gamma=0.1)]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# lr = 0.1 * (GPUs x images per GPU) / 256, applied by the Runner at the start of training
auto_scale_lr = dict(enable=True, base_batch_size=256)
