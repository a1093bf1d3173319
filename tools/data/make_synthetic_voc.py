"""Write a small synthetic Pascal VOC 2007 dataset (real JPEGs, VOC XML, ImageSets lists) for tests and the demo.

    python tools/data/make_synthetic_voc.py data --num-train 200 --num-test 50 --image-size 320 240
    # writes data/VOCdevkit/VOC2007/..., the default data root of configs/faster_rcnn_zf_voc.py
    python tools/data/make_synthetic_voc.py data --style photo   # objects cut from photographs: person, cat, horse

The images and options are those of featquant_mmdet/datasets/synthetic_voc.py (``make_voc_dataset``, ``main``).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.datasets.synthetic_voc import main  # noqa: E402

if __name__ == '__main__':
    main()
