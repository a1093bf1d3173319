# ZF classifier on ILSVRC-12 from random initialisation (the paper's ZF baseline before detection, Section 3.3).
_base_ = [
    './_base_/models/zf.py', './_base_/datasets/imagenet_bs32.py', './_base_/schedules/imagenet_bs256.py',
    './_base_/default_runtime.py'
]
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)

# ZF has no batch normalisation and sees mean-subtracted, unscaled pixels: He et al.'s lr 0.1 (set for BN ResNets)
# does not train it. Measured on the synthetic ImageNet (6 classes, 64 px crops, batch 16, lr scaled by 16/256, 60
# iterations): 0.1 -> loss spikes to 19 and ends at chance (1.71, ln 6 = 1.79); 0.01 -> 2.44 to 0.44. Zeiler &
# Fergus trained ZF with lr 0.01 and weight decay 5e-4 (the AlexNet recipe); schedule and batch stay He et al.'s.
# Without normalisation layers, the first gradients from the Kaiming initialisation are large (total norm 60-150 at
# batch 16-64) and lr 0.01 overshoots: clip the gradient norm at 10. Measured on the synthetic ImageNet
# (tools/data/make_synthetic_imagenet.py, 6 classes, seed 0), lr 0.01 without auto_scale_lr, 1 thread, mean loss of
# the last 5 iterations (chance: ln 6 = 1.79), without -> with clipping:
#   224 crops (this config's) of 256 px images, batch 64, 30 iterations: diverges (loss 7e24) -> 1.39
#   64 crops of 80 px images, batch 256 (the base batch of this lr), 30 iterations: 2.14 (after a spike to 4.2) -> 0.95
#   64 crops, 40 iterations: batch 64: 2.15 -> 0.99 (ZF-POW-1: 2.10 -> 0.96); batch 16: NaN at iteration 11 -> 1.74
# At batch 16 with auto_scale_lr's lr (0.000625) clipping changes little (1.53 -> 1.56). A linear warm-up instead
# (20 iterations from lr x 0.001, batch 16, no clipping) avoided the NaN but ended at 2.20: no warm-up here.
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=5e-4), clip_grad=dict(max_norm=10, norm_type=2))
