# The paper's Table 2 (classification) by the paper's matching protocol (issue 27): the plain model and its four
# quantizers, classifiers trained from scratch on the generated photo-style data, each swept at the snapshot whose
# clean top-1 matches the others'. One command, resumable (results: docs/robustness_study.md, "Table 2"):
#
#   python tools/study.py configs/studies/table2.py --work-dir work_dirs/table2
#
# Architecture: ZF with the quantizer before conv3-conv5 (the paper's ZF-POW-1 placement), not ResNet-18, because
#   - targeted occlusion needs a saliency classifier of an architecture none of the compared models has: with ZF
#     models the paper's own Plain-18 (a plain ResNet-18) is neutral; with ResNet-18 models it would be the
#     reference model itself (the confound issue 27 removes);
#   - time: a ZF training here takes ~620 CPU-s (measured 2026-12-05, seed 0: 24 epochs, a validation and a snapshot
#     per epoch), a ResNet-18 one about twice that; the 25 ZF trainings alone are ~2.2 h on 2 cores (~4 h in all).
# Seed 0 ran first with HPowConv's raw hypernetwork input: ZF-HPOW diverged (NaN from epoch 2), so its matching
# refused; the other four were matched among themselves (`--seeds 0 --only ZF ZF-SF-100 ZF-POW-1 ZF-SF-POW`) and
# their unmatched snapshots deleted. HPowConv now reads the log of the statistics (hyper_input='log', measured in
# docs/robustness_study.md); seeds 1 and up run all five.
# Only zf_imagenet.py and zf_pow1_imagenet.py exist as ZF configs; SF-100, HPOW and SF-POW are the same ZF backbone
# with the resnet18_{sf100,hpow,sfpow}_imagenet.py conv_cfg dicts put in through --cfg-options (ZF's `quant` takes
# any registered quantizing conv). The POW-type variants inherit the exponents' regularisation and projection from
# zf_pow1_imagenet.py; HPOW computes its exponents per sample (its alpha statistics are of the last batch).
#
# Protocol: every classifier keeps a snapshot (weights only) and validates every epoch from epoch 8 on; per seed the
# snapshot of each model whose clean top-1 is closest to the best top-1 all five reach (target 'common': the paper's
# "snapshots of both models that provide the same classification accuracy") is swept, within 3 points (a
# difference of up to 3 of the 120 test images; ties: the later snapshot); the other snapshots are deleted (~0.24 GB
# each). The matching uses the clean test images, as the paper's (ILSVRC-12 validation) did.
#
# Columns: every distortion at levels 2 and 4, Mix., Mix.Minor, Mix.Heavy and targeted occlusion, all in top-1
# (with 6 classes top-5 is ~100 % everywhere; the paper reports occlusion in top-1 and the rest in top-5). Occlusion
# twice: masks from a plain ResNet-18 (the neutral saliency classifier, trained once with seed 100 on the same
# data) and, as a cross-check, from each model's own saliency ("Occ. (own)").
task = 'classification'
seeds = [0, 1, 2, 3, 4]
reference = 'ZF'
distortions = ['all', 'mix_minor', 'mix_heavy']  # all: the paper's distortions + Mix.; + targeted occlusion
levels = [2, 4]
saliency = dict(config='configs/pretrain/resnet18_imagenet.py', seed=100)
own_saliency = True
match = dict(pretrain='accuracy/top1', tolerance=3.0, target='common', interval=1, begin=8, prune=True)
threads = 1
jobs = 2
workers = 0
data = dict(imagenet=dict(num_train=40, num_val=20, image_size=80, style='photo'))
pretrain = dict(epochs=24, batch=16, lr=0.01, scale=64)
weights = dict(data=11.0, pretrain=290.0, train=620.0, robustness=115.0, robustness_own=45.0)  # CPU-s, seed 0
variants = [
    dict(name='ZF', config='configs/pretrain/zf_imagenet.py'),
    dict(name='ZF-SF-100', config='configs/pretrain/zf_imagenet.py',
         options=['model.backbone.quant.conv_cfg.type=SFConv', 'model.backbone.quant.conv_cfg.beta=100.0',
                  'model.backbone.quant.include=[conv3,conv4,conv5]']),
    dict(name='ZF-POW-1', config='configs/pretrain/zf_pow1_imagenet.py'),
    dict(name='ZF-HPOW', config='configs/pretrain/zf_pow1_imagenet.py', options=['model.backbone.quant.conv_cfg.type=HPowConv']),
    dict(name='ZF-SF-POW', config='configs/pretrain/zf_pow1_imagenet.py',
         options=['model.backbone.quant.conv_cfg.type=SFPowConv', 'model.backbone.quant.conv_cfg.beta=100.0']),
]
