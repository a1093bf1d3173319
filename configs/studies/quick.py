# A check of the study flow in a few minutes on 2 CPU cores (python tools/study.py --preset quick): the detection
# track of the evidence study (configs/studies/evidence.py: pretrain -> detector -> sweep) at toy sizes, 2 variants
# x 2 seeds, the two mixtures only. Its numbers say nothing about the models: the detectors train for 4 iterations.
task = 'detection'
seeds = [0, 1]
reference = 'ZF'
distortions = ['mix']
threads = 1
jobs = 2
data = dict(voc=dict(num_train=16, num_test=8, image_size=(192, 144)),
            imagenet=dict(num_train=4, num_val=2, image_size=64))
pretrain = dict(epochs=1, batch=8, lr=0.01, scale=64)
detect = dict(iters=4, lr=0.001, clip=10.0, scale=(192, 144))
variants = [
    dict(name='ZF', pretrain='configs/pretrain/zf_imagenet.py', config='configs/faster_rcnn_zf_voc_imagenet_init.py'),
    dict(name='ZF-POW-1', pretrain='configs/pretrain/zf_pow1_imagenet.py',
         config='configs/faster_rcnn_zf_pow1_voc_imagenet_init.py', alpha_lr_mult=3),
]
