# He et al. (2016): SGD lr 0.1, momentum 0.9, weight decay 1e-4, lr / 10 every 30 epochs, 90 epochs, batch 256.
# The power convs' exponents (`alpha`) are regularised by AlphaRegularizationHook's L1 + L2 penalty alone (paper
# Section 2), not by weight decay as well.
# lr_mult: the exponents' own learning-rate multiplier (a finite number >= 0, checked by AlphaProjectionHook; the
# detection schedule uses the same). 1, measured twice (docs/alpha.md, docs/robustness_study.md):
#   drawn shapes, ZF-POW-1, 300 iterations, 6-8 seeds: lr_mult 1 -> top-1 97.2 ± 0.6 %, 3 -> 95.6 ± 0.7, 10 -> 93.5
#     ± 1.9, 30 -> 73 (1 seed), 100 diverges; plain ZF 95.7 ± 0.9. 3 moves alpha 2.5x as far as 1 (mean -0.05 vs -0.02).
#   photo objects, the evidence study, 5 seeds paired: 3 against 1 costs 6.0 [-15.0, +3.0] top-1 points and, in the
#     detectors started from those classifiers, 11.1 [-21.7, -0.5] mAP points (mPC -9.3 [-16.1, -2.4]), with no
#     robustness gained (rPC +0.7 [-5.5, +6.9]).
# So 1: larger multipliers move alpha further but cost accuracy. (At lr_mult 1 an alpha step is 1/15-1/18 of the
# conv weights' relative step in ZF, 1/5-1/120 in ResNet-18: `tools/analysis/alpha_report.py drift`.)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
                     paramwise_cfg=dict(custom_keys={'.alpha': dict(lr_mult=1.0, decay_mult=0.0)}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, begin=0, end=90, milestones=[30, 60], gamma=0.1)]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# lr = 0.1 * (GPUs x images per GPU) / 256, applied by the Runner at the start of training
auto_scale_lr = dict(enable=True, base_batch_size=256)
