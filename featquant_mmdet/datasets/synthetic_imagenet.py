"""A small ImageNet-format classification dataset written to disk (real JPEG files), for tests and the demo.

Each image is one large object of its class on a natural-photo background. Objects and backgrounds are those of the
synthetic VOC generator (:mod:`featquant_mmdet.datasets.synthetic_voc`): class ``i`` has the shape, colour and
texture ``OBJECT_STYLES[i]`` in both, so a ZF classifier pretrained here has already seen the objects the synthetic
detection data holds (the default class names are those of the synthetic VOC data, in the same order). With
``style='photo'`` (``--style photo``) the objects are those cut from photographs (:mod:`.photo_objects`), all six by
default, the VOC generator's person, cat, horse first.

Layout (ILSVRC-12's)::

    <root>/train/<wnid>/<wnid>_<k>.JPEG
    <root>/val/<wnid>/ILSVRC2012_val_<k>.JPEG
    <root>/val.txt               "<wnid>/ILSVRC2012_val_<k>.JPEG <label>", paths relative to val/
    <root>/synset_words.txt      "<wnid> <class name>", one line per class in label order

wnids are ``n00000000``, ``n00000001``, ... so their sorted order is the class order. Every draw comes from
``numpy.random.default_rng((seed, split, class, k))``: the same arguments write the same files, and an image does
not depend on how many others were asked for.

    python tools/data/make_synthetic_imagenet.py data/imagenet --num-train 20 --num-val 5 --image-size 96

(``main`` is that tool's command line; ``python -m featquant_mmdet.datasets.synthetic_imagenet`` runs it too, with
a RuntimeWarning from runpy because importing the package has already imported this module.)
"""
import argparse
import os
import os.path as osp
import shutil
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from .synthetic_voc import DEFAULT_CLASSES as VOC_CLASSES
from .photo_objects import PHOTO_CLASSES, check_photo_classes, paste_photo_object, photo_background
from .synthetic_voc import OBJECT_STYLES, STYLES, _background, _image_size, _paste_object

# the synthetic VOC classes first (same styles), then other VOC names for the remaining styles: 6 classes, so
# that top-5 accuracy is not trivially 100%
_MORE_VOC_NAMES = ('chair', 'person', 'sofa', 'bird', 'boat', 'cat')
DEFAULT_CLASSES = (tuple(VOC_CLASSES) + tuple(c for c in _MORE_VOC_NAMES if c not in VOC_CLASSES))[:len(OBJECT_STYLES)]
_SPLITS = {'train': 0, 'val': 1}
_OBJECT_SIZE = (0.45, 0.8)  # side of the object as a fraction of the image's shorter side


def wnid_of(index: int) -> str:
    """The synthetic WordNet id of class ``index`` (sorted wnids give the class order)."""
    return f'n{index:08d}'


def draw_class_image(rng: np.random.Generator, width: int, height: int, label: int, style: str = 'shapes',
                     classes: Optional[Sequence[str]] = None) -> np.ndarray:
    """One BGR uint8 image: a background photo crop with one object of class ``label`` (``OBJECT_STYLES[label]``;
    photo style: the photo object ``classes[label]`` on a photo without objects)."""
    photo = style == 'photo'
    img = photo_background(rng, width, height) if photo else _background(rng, width, height)
    size = int(min(width, height) * rng.uniform(*_OBJECT_SIZE))
    x0, y0 = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
    if photo:
        paste_photo_object(img, classes[label], x0, y0, size, rng)
    else:
        _paste_object(img, OBJECT_STYLES[label], x0, y0, size, rng)
    img = img + rng.normal(0.0, 3.0, size=img.shape)  # a little sensor noise, as in the VOC images
    return np.clip(img, 0, 255).astype(np.uint8)


def make_imagenet_dataset(root: str, classes: Optional[Sequence[str]] = None, num_train_per_class: int = 20,
                          num_val_per_class: int = 5, image_size: Union[int, Sequence[int]] = 96, seed: int = 0,
                          overwrite: bool = False, style: str = 'shapes') -> dict:
    """Write ``train/``, ``val/``, ``val.txt`` and ``synset_words.txt`` under ``root``.

    Args:
        root: dataset root (the configs' ``data/imagenet/``).
        classes: class names; class ``i`` is drawn as ``OBJECT_STYLES[i]`` (at most ``len(OBJECT_STYLES)``; default
            ``DEFAULT_CLASSES``). Photo style: names of photo objects (default all of ``PHOTO_CLASSES``, the VOC
            generator's photo classes first).
        num_train_per_class, num_val_per_class: images per class in each split (>= 1).
        image_size: ``(width, height)`` or one int; each side at least 64.
        seed: seed of every random draw.
        overwrite: remove an existing ``train/``, ``val/`` and lists first; without it an existing dataset is an
            error (stale files would mix into the new one).
        style: ``'shapes'`` (drawn objects, as the VOC generator's) or ``'photo'`` (objects cut from photographs).

    Returns:
        ``dict(root, wnids, classes, num_train, num_val)``.
    """
    width, height = _image_size(image_size)
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    if classes is None:
        classes = PHOTO_CLASSES if style == 'photo' else DEFAULT_CLASSES
    classes = tuple(classes)
    if style == 'photo':
        check_photo_classes(classes)
    elif not 1 <= len(classes) <= len(OBJECT_STYLES):
        raise ValueError(f'classes: between 1 and {len(OBJECT_STYLES)} class names are drawable, got {classes!r}')
    if len(set(classes)) != len(classes) or any(not isinstance(c, str) or not c.strip() for c in classes):
        raise ValueError(f'classes must be distinct non-empty names, got {classes!r}')
    for arg, value in (('num_train_per_class', num_train_per_class), ('num_val_per_class', num_val_per_class)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'{arg} must be a positive integer, got {value!r}')
    outputs = [osp.join(root, name) for name in ('train', 'val', 'val.txt', 'synset_words.txt')]
    existing = [p for p in outputs if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'{root} already holds {existing}; pass overwrite=True to replace them')
    for path in existing:
        shutil.rmtree(path) if osp.isdir(path) else os.remove(path)

    wnids = [wnid_of(i) for i in range(len(classes))]
    val_lines = []
    for split, count in (('train', num_train_per_class), ('val', num_val_per_class)):
        for label, wnid in enumerate(wnids):
            folder = osp.join(root, split, wnid)
            os.makedirs(folder, exist_ok=True)
            for k in range(count):
                rng = np.random.default_rng((seed, _SPLITS[split], label, k))
                img = draw_class_image(rng, width, height, label, style, classes)
                name = f'{wnid}_{k:05d}.JPEG' if split == 'train' else \
                    f'ILSVRC2012_val_{label * num_val_per_class + k + 1:08d}.JPEG'
                path = osp.join(folder, name)
                if not cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                    raise OSError(f'could not write {path}')
                if split == 'val':
                    val_lines.append(f'{wnid}/{name} {label}')
    with open(osp.join(root, 'val.txt'), 'w') as f:
        f.write('\n'.join(val_lines) + '\n')
    with open(osp.join(root, 'synset_words.txt'), 'w') as f:
        f.write(''.join(f'{w} {c}\n' for w, c in zip(wnids, classes)))
    return dict(root=root, wnids=wnids, classes=classes, num_train=num_train_per_class * len(classes),
                num_val=num_val_per_class * len(classes))


def main(argv=None) -> None:
    """The command line of ``tools/data/make_synthetic_imagenet.py``; bad values end with a usage error (exit 2)."""
    parser = argparse.ArgumentParser(description='Write a small synthetic ImageNet-format dataset', epilog='''example:
  python tools/data/make_synthetic_imagenet.py data/imagenet --num-train 20 --num-val 5 --image-size 96''',
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', help='output folder (the configs read data/imagenet/)')
    parser.add_argument('--style', choices=STYLES, default='shapes',
                        help='shapes: drawn objects; photo: objects cut from photographs (see --classes)')
    parser.add_argument('--classes', nargs='+', default=None,
                        help=f'shapes: 1 to {len(OBJECT_STYLES)} distinct names (class i is drawn as style i); photo: '
                             f'objects among {" ".join(PHOTO_CLASSES)} (default: all)')
    parser.add_argument('--num-train', type=int, default=20, help='training images per class')
    parser.add_argument('--num-val', type=int, default=5, help='validation images per class')
    parser.add_argument('--image-size', type=int, nargs='+', default=[96], metavar='SIDE',
                        help='one side (square) or WIDTH HEIGHT; each at least 64')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing dataset under ROOT')
    args = parser.parse_args(argv)
    if len(args.image_size) > 2:
        parser.error(f'--image-size takes one SIDE or WIDTH HEIGHT, got {len(args.image_size)} values')
    size = args.image_size[0] if len(args.image_size) == 1 else tuple(args.image_size)
    try:
        info = make_imagenet_dataset(args.root, args.classes, args.num_train, args.num_val, size, args.seed,
                                     args.overwrite, args.style)
    except FileExistsError as err:
        parser.error(f'{err.args[0]} (on the command line: --overwrite)')
    except ValueError as err:  # the generator's checks name the argument (num_train_per_class is --num-train, ...)
        parser.error(str(err))
    print(f'wrote {info["num_train"]} train + {info["num_val"]} val images of {len(info["wnids"])} classes to '
          f'{args.root}')


if __name__ == '__main__':
    main()
