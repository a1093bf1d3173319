# The detection track of the longer-training follow-up (configs/studies/evidence_long.py, docs/robustness_study.md
# "Longer training"). In the evidence study (configs/studies/evidence.py) the detectors started from classifiers
# pretrained 24 epochs, and those with exponents started at -0.5 (ZF-POW-1-sqrt) were 21-35 mAP points below ZF in
# every column; at 48 epochs the classifiers' clean gap closed (+2.0 [-8.8, +12.8] top-1). Does the detectors' gap
# close when they start from the 48-epoch classifiers? Same data, detection schedule and sweeps as the evidence
# study; only the pretraining is twice as long:
#
#   python tools/study.py configs/studies/evidence_long_detection.py --work-dir work_dirs/evidence_long_detection
#
# 1 h 19 min wall on 2 idle cores, measured (10 pretrainings of 325-356 s, 10 detectors of 178-191 s, their sweeps,
# 2 at a time, and the saliency classifier). Results: docs/robustness_study.md ("Longer training").
task = 'detection'
classifier_sweep = True  # the classifiers are trained as evidence_long.py's (same seeds, data and settings)
seeds = [0, 1, 2, 3, 4]
reference = 'ZF'
distortions = ['all']  # detectors: the distortions but targeted occlusion (needs a class) + Mix.Minor/Mix.Heavy
classifier_distortions = ['all', 'mix_minor', 'mix_heavy']
saliency = dict(config='configs/pretrain/resnet18_imagenet.py', seed=100)  # Plain-18 (was ZF before issue 27)
levels = [2, 4]
threads = 1
jobs = 2
workers = 0
data = dict(voc=dict(num_train=200, num_test=32, image_size=(320, 240), style='photo'),
            imagenet=dict(num_train=40, num_val=20, image_size=80, style='photo'))
pretrain = dict(epochs=48, batch=16, lr=0.01, scale=64)
detect = dict(iters=200, lr=0.005, clip=10.0, scale=(320, 240))
weights = dict(data=6.0, pretrain=350.0, train=195.0, robustness=320.0, robustness_classifier=25.0)
variants = [
    dict(name='ZF', pretrain='configs/pretrain/zf_imagenet.py', config='configs/faster_rcnn_zf_voc_imagenet_init.py'),
    dict(name='ZF-POW-1-sqrt', pretrain='configs/pretrain/zf_pow1_imagenet.py',
         config='configs/faster_rcnn_zf_pow1_voc_imagenet_init.py', alpha_lr_mult=1.0,
         options=['model.backbone.quant.conv_cfg.alpha_init=-0.5']),
]
