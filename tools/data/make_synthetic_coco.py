"""Write a small synthetic COCO-format detection dataset (real JPEGs, instances_{train,val}.json) for tests.

    python tools/data/make_synthetic_coco.py data/coco_synth --num-train 8 --num-test 8 --image-size 128 96

The images and options are those of featquant_mmdet/datasets/synthetic_coco.py (``make_coco_dataset``, ``main``),
drawn as tools/data/make_synthetic_voc.py draws them.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from featquant_mmdet.datasets.synthetic_coco import main  # noqa: E402

if __name__ == '__main__':
    main()
