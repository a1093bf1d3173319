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
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=5e-4))
