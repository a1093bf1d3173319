# ResNet-50 on ILSVRC-12 with He et al.'s training scheme (the reference model of Table 2).
_base_ = [
    './_base_/models/resnet50.py', './_base_/datasets/imagenet_bs32_pca_lighting.py',
    './_base_/schedules/imagenet_bs256.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['featquant_mmdet'], allow_failed_imports=False)
