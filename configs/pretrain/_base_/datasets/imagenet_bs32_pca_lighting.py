# The ImageNet data of imagenet_bs32.py with He et al.'s colour augmentation: AlexNet's PCA lighting (alphastd 0.1,
# ImageNet's RGB eigenvalues/eigenvectors; featquant_mmdet.datasets.transforms.PCALighting) after the flip. Used by
# the ResNet pretraining configs. Pipeline indices 0-2 are those of imagenet_bs32.py (the same --cfg-options keys).
_base_ = './imagenet_bs32.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PCALighting', alphastd=0.1),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
