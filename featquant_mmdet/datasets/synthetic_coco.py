"""A small COCO-format detection dataset written to disk: the images of :mod:`.synthetic_voc` (real JPEGs, the
same drawn or photo objects, exact boxes) with ``instances_<split>.json`` annotations as mmdet's ``CocoDataset``
and ``CocoMetric`` read them.

Layout (``root``): ``images/train/*.jpg``, ``images/val/*.jpg``, ``annotations/instances_train.json``,
``annotations/instances_val.json``; category ids 1..C in class order, image ids 1..N (training first), boxes
``[x, y, w, h]`` in pixels with ``area = w * h``, ``iscrowd = 0``.

    python tools/data/make_synthetic_coco.py data/coco_synth --num-train 8 --num-test 8 --image-size 128 96
    # test config: data_root='data/coco_synth/', ann_file='annotations/instances_val.json',
    #              data_prefix=dict(img='images/val/'), metainfo=dict(classes=('bottle', 'car', 'tvmonitor'))

Image ``k`` of a split is drawn from ``numpy.random.default_rng((seed, split, k))`` exactly as the VOC generator
draws it, so the same arguments write the same files.
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from .photo_objects import DEFAULT_PHOTO_CLASSES, PHOTO_CLASSES, check_photo_classes
from .synthetic_voc import _MIN_IMAGE_SIDE, _SPLITS, DEFAULT_CLASSES, OBJECT_STYLES, STYLES, _image_size, draw_image

SPLITS = {'train': 'trainval', 'val': 'test'}  # COCO split name -> the VOC generator's split (its random stream)


def _check(num_train, num_test, classes, style) -> tuple:
    for arg, value in (('num_train', num_train), ('num_test', num_test)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'{arg} must be a positive integer, got {value!r}')
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    classes = tuple(classes if classes is not None else
                    (DEFAULT_PHOTO_CLASSES if style == 'photo' else DEFAULT_CLASSES))
    if style == 'photo':
        check_photo_classes(classes)
    elif not 1 <= len(classes) <= len(OBJECT_STYLES):
        raise ValueError(f'classes: between 1 and {len(OBJECT_STYLES)} class names are drawable, got {classes!r}')
    if len(set(classes)) != len(classes) or any(not isinstance(c, str) or not c or c != c.strip() for c in classes):
        raise ValueError(f'classes must be distinct non-empty names without surrounding spaces, got {classes!r}')
    return classes


def make_coco_dataset(root: str, num_train: int = 100, num_test: int = 30,
                      image_size: Union[int, Sequence[int]] = (320, 240), classes: Optional[Sequence[str]] = None,
                      seed: int = 0, style: str = 'shapes') -> str:
    """Write the dataset (see the module doc) under ``root``; returns ``root``.

    Args mean what they mean for :func:`.synthetic_voc.make_voc_dataset` (``num_test``: the ``val`` images).
    """
    width, height = _image_size(image_size)
    classes = _check(num_train, num_test, classes, style)
    categories = [dict(id=i + 1, name=name, supercategory='object') for i, name in enumerate(classes)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    next_image, next_ann = 1, 1
    for split, count in (('train', num_train), ('val', num_test)):
        folder = osp.join(root, 'images', split)
        os.makedirs(folder, exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            rng = np.random.default_rng((seed, _SPLITS[SPLITS[split]], index))
            img, objects = draw_image(rng, width, height, len(classes), style, classes if style == 'photo' else None)
            name = f'{next_image:012d}.jpg'
            if not cv2.imwrite(osp.join(folder, name), img, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                raise OSError(f'could not write {osp.join(folder, name)}')
            images.append(dict(id=next_image, file_name=name, width=width, height=height))
            for label, (x1, y1, x2, y2) in objects:  # pixel-exclusive ends: w = x2 - x1
                w, h = int(x2 - x1), int(y2 - y1)
                annotations.append(dict(id=next_ann, image_id=next_image, category_id=label + 1,
                                        bbox=[int(x1), int(y1), w, h], area=w * h, iscrowd=0))
                next_ann += 1
            next_image += 1
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


def main(argv=None) -> None:
    """The command line of ``tools/data/make_synthetic_coco.py``; bad values end with a usage error (exit 2)."""
    parser = argparse.ArgumentParser(description='Write a small synthetic COCO-format detection dataset',
                                     epilog='''example:
  python tools/data/make_synthetic_coco.py data/coco_synth --num-train 8 --num-test 8 --image-size 128 96''',
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', help='output folder: ROOT/images/{train,val}, ROOT/annotations/instances_*.json')
    parser.add_argument('--num-train', type=int, default=100, help='images of the train split')
    parser.add_argument('--num-test', type=int, default=30, help='images of the val split')
    parser.add_argument('--image-size', type=int, nargs=2, default=(320, 240), metavar=('WIDTH', 'HEIGHT'),
                        help=f'each side at least {_MIN_IMAGE_SIDE}')
    parser.add_argument('--style', choices=STYLES, default='shapes',
                        help='shapes: drawn objects; photo: objects cut from photographs (see --classes)')
    parser.add_argument('--classes', nargs='+', default=None,
                        help=f'shapes: 1 to {len(OBJECT_STYLES)} distinct names (default '
                             f'{" ".join(DEFAULT_CLASSES)}); photo: objects among {" ".join(PHOTO_CLASSES)}')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        root = make_coco_dataset(args.root, args.num_train, args.num_test, tuple(args.image_size), args.classes,
                                 args.seed, args.style)
    except ValueError as err:
        parser.error(str(err))
    print(f'wrote {args.num_train} train + {args.num_test} val images to {root} '
          f'(annotations/instances_{{train,val}}.json)')


if __name__ == '__main__':
    main()
