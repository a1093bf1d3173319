"""Write a small synthetic ImageNet-format classification dataset (train/<wnid>/, val/, val.txt) for tests and the
demo.

    python tools/data/make_synthetic_imagenet.py data/imagenet --num-train 20 --num-val 5 --image-size 96
    # writes data/imagenet/..., the default data root of configs/pretrain/*.py

The images and options are those of featquant_mmdet/datasets/synthetic_imagenet.py (``make_imagenet_dataset``,
``main``).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.datasets.synthetic_imagenet import main  # noqa: E402

if __name__ == '__main__':
    main()
