"""A small, easy Pascal VOC 2007 dataset written to disk: real JPEGs, VOC XML annotations and ImageSets lists.

Two styles. ``shapes`` (the default): backgrounds are crops of the natural photographs bundled with scikit-image
(``skimage.data``), rescaled, flipped and recoloured; on them sit 1-3 large, non-overlapping objects. Each class has
its own shape, colour and texture (e.g. a red disk with rings, a blue square with a checkerboard), outlined in a dark
border, so a detector learns them quickly. ``photo``: objects cut from real photographs (a person, a cat, a horse,
..., with their true outlines) on photographs without objects (:mod:`.photo_objects`); they suffer from distortions
as real images do. In both, boxes are the tight bounding boxes of the pasted masks, so they are exact.

Everything is drawn from ``numpy.random.default_rng((seed, split, index))``: the same arguments write the same
files, and image ``k`` of a split does not depend on how many images were asked for.

    python tools/data/make_synthetic_voc.py data --num-train 200 --num-test 50 --image-size 320 240
    # writes data/VOCdevkit/VOC2007/..., the default data root of configs/faster_rcnn_zf_voc.py
    python tools/data/make_synthetic_voc.py data --style photo   # person, cat, horse cut from photographs

(``main`` is that tool's command line; ``python -m featquant_mmdet.datasets.synthetic_voc`` runs it too, with a
RuntimeWarning from runpy because importing the package has already imported this module.)
"""
import argparse
import os
import os.path as osp
import xml.etree.ElementTree as ET
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .photo_objects import (DEFAULT_PHOTO_CLASSES, PHOTO_CLASSES, check_photo_classes, paste_photo_object,
                            photo_background)

# Names are labels only; VOC class names let the 20-class VOC configs run on this data unchanged.
DEFAULT_CLASSES = ('bottle', 'car', 'tvmonitor')
STYLES = ('shapes', 'photo')

# (shape, BGR colour, texture) of the i-th class
OBJECT_STYLES = (
    ('disk', (40, 40, 220), 'rings'),
    ('square', (220, 90, 30), 'checker'),
    ('triangle', (40, 190, 40), 'stripes'),
    ('diamond', (30, 210, 230), 'dots'),
    ('cross', (200, 40, 200), 'checker'),
    ('hexagon', (230, 230, 230), 'stripes'),
)

# bundled with scikit-image (no download); grey ones are tinted
_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera', 'grass', 'gravel', 'brick', 'moon', 'coins')
_SPLITS = {'trainval': 0, 'test': 1}
_MIN_IMAGE_SIDE = 64
_OBJECT_SIZE = (0.35, 0.6)  # side of an object as a fraction of the image's shorter side
_MAX_OBJECTS = 3


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as a BGR uint8 array."""
    from skimage import data as skdata
    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3][..., ::-1])


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    photo = _photo(_PHOTOS[rng.integers(len(_PHOTOS))])
    ph, pw = photo.shape[:2]
    crop_h = int(ph * rng.uniform(0.4, 1.0))
    crop_w = min(pw, int(crop_h * width / height))
    y0, x0 = rng.integers(0, ph - crop_h + 1), rng.integers(0, pw - crop_w + 1)
    img = cv2.resize(photo[y0:y0 + crop_h, x0:x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    # recolour: channel permutation, per-channel gain, contrast towards grey
    img = img[..., rng.permutation(3)].astype(np.float32)
    img = img * rng.uniform(0.6, 1.2, size=3) * rng.uniform(0.6, 1.0) + rng.uniform(0, 50)
    return np.clip(img, 0, 255)


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 mask of ``shape`` filling a ``size`` x ``size`` square (aspect of square/cross varies a little)."""
    mask = np.zeros((size, size), np.uint8)
    s = size - 1
    if shape == 'disk':
        cv2.circle(mask, (size // 2, size // 2), size // 2, 1, thickness=-1)
    elif shape == 'square':
        inset = int(s * rng.uniform(0.0, 0.15))
        vertical = rng.random() < 0.5
        cv2.rectangle(mask, (inset, 0) if vertical else (0, inset), (s - inset, s) if vertical else (s, s - inset),
                      1, thickness=-1)
    elif shape == 'triangle':
        cv2.fillPoly(mask, [np.array([(s // 2, 0), (s, s), (0, s)], np.int32)], 1)
    elif shape == 'diamond':
        cv2.fillPoly(mask, [np.array([(s // 2, 0), (s, s // 2), (s // 2, s), (0, s // 2)], np.int32)], 1)
    elif shape == 'cross':
        arm = int(s * rng.uniform(0.3, 0.4))
        lo, hi = (s - arm) // 2, (s + arm) // 2
        cv2.rectangle(mask, (lo, 0), (hi, s), 1, thickness=-1)
        cv2.rectangle(mask, (0, lo), (s, hi), 1, thickness=-1)
    elif shape == 'hexagon':
        angles = np.arange(6) * np.pi / 3
        pts = np.stack([s / 2 + s / 2 * np.cos(angles), s / 2 + s / 2 * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return mask


def _texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float pattern in [0, 1] of shape (size, size)."""
    period = max(4, int(size * rng.uniform(0.12, 0.2)))
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    if kind == 'rings':
        r = np.hypot(yy - size / 2, xx - size / 2)
        return ((r // (period / 2)) % 2).astype(np.float32)
    if kind == 'checker':
        return ((yy // period + xx // period) % 2).astype(np.float32)
    if kind == 'stripes':
        return ((yy // (period / 2)) % 2).astype(np.float32)
    if kind == 'dots':
        dy, dx = (yy % period) - period / 2, (xx % period) - period / 2
        return (np.hypot(dy, dx) < period / 4).astype(np.float32)
    raise ValueError(f'unknown texture {kind!r}')


def _paste_object(img: np.ndarray, style: Tuple[str, tuple, str], x0: int, y0: int, size: int,
                  rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """Draw an object with its top-left corner at (x0, y0); return its tight box (x1, y1, x2, y2), exclusive."""
    shape, colour, texture = style
    mask = _shape_mask(shape, size, rng)
    pattern = _texture(texture, size, rng)
    colour = np.asarray(colour, np.float32) * rng.uniform(0.85, 1.15)
    fill = colour * (0.65 + 0.35 * pattern[..., None])
    border = max(2, size // 25)
    # outside the patch counts as background, so shapes touching the patch edge get their outline there too
    interior = cv2.erode(mask, np.ones((2 * border + 1, 2 * border + 1), np.uint8), borderType=cv2.BORDER_CONSTANT,
                         borderValue=0)
    fill[(mask > 0) & (interior == 0)] = 20.0  # dark outline
    region = img[y0:y0 + size, x0:x0 + size]
    region[mask > 0] = fill[mask > 0]
    ys, xs = np.nonzero(mask)
    return x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1


def draw_image(rng: np.random.Generator, width: int, height: int, num_classes: int, style: str = 'shapes',
               classes: Optional[Sequence[str]] = None, return_masks: bool = False):
    """One BGR uint8 image and its objects as ``[(class_index, (x1, y1, x2, y2)), ...]`` (pixel-exclusive ends).

    ``style='photo'`` pastes the photo objects named ``classes`` (class ``i`` is ``classes[i]``); with
    ``return_masks`` (photo style) a third item lists the image-sized uint8 mask of each object's pasted pixels.
    """
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    photo = style == 'photo'
    if return_masks and not photo:
        raise ValueError('return_masks: only the photo style keeps the masks')
    if photo:
        classes = check_photo_classes(classes if classes is not None else DEFAULT_PHOTO_CLASSES[:num_classes])
        if len(classes) != num_classes:
            raise ValueError(f'num_classes {num_classes} but {len(classes)} photo classes {classes}')
    img = photo_background(rng, width, height) if photo else _background(rng, width, height)
    masks = []
    short = min(width, height)
    objects: List[Tuple[int, Tuple[int, int, int, int]]] = []
    placed: List[Tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, _MAX_OBJECTS + 1))):
        for _attempt in range(30):  # rejection sampling of a free spot
            size = int(short * rng.uniform(*_OBJECT_SIZE))
            x0, y0 = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
            margin = max(2, short // 40)
            if all(x0 + size + margin <= a or b + margin <= x0 or y0 + size + margin <= c or d + margin <= y0
                   for a, c, b, d in placed):
                break
        else:
            continue
        placed.append((x0, y0, x0 + size, y0 + size))
        label = int(rng.integers(num_classes))
        if photo:
            box, mask = paste_photo_object(img, classes[label], x0, y0, size, rng, return_mask=True)
            masks.append(mask)
        else:
            box = _paste_object(img, OBJECT_STYLES[label], x0, y0, size, rng)
        objects.append((label, box))
    if not objects:  # the first placement cannot fail: the image is empty then
        raise AssertionError('no object placed')
    img = img + rng.normal(0.0, 3.0, size=img.shape)  # a little sensor noise
    img = np.clip(img, 0, 255).astype(np.uint8)
    return (img, objects, masks) if return_masks else (img, objects)


def _annotation_xml(filename: str, width: int, height: int, objects, classes: Sequence[str]) -> ET.ElementTree:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC2007'
    ET.SubElement(root, 'filename').text = filename
    ET.SubElement(ET.SubElement(root, 'source'), 'database').text = 'featquant synthetic VOC'
    size = ET.SubElement(root, 'size')
    for tag, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, 'segmented').text = '0'
    for label, (x1, y1, x2, y2) in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = classes[label]
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        box = ET.SubElement(obj, 'bndbox')
        # VOC boxes are 1-based and inclusive: pixels x1..x2-1 (0-based) are xmin=x1+1 .. xmax=x2
        for tag, value in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2), ('ymax', y2)):
            ET.SubElement(box, tag).text = str(int(value))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def _image_size(image_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        width = height = int(image_size)
    elif isinstance(image_size, Sequence) and len(image_size) == 2:
        width, height = (int(v) for v in image_size)
    else:
        raise ValueError(f'image_size must be an int or (width, height), got {image_size!r}')
    if min(width, height) < _MIN_IMAGE_SIDE:
        raise ValueError(f'image_size {image_size!r}: both sides must be at least {_MIN_IMAGE_SIDE} pixels')
    return width, height


def make_voc_dataset(root: str, num_train: int = 100, num_test: int = 30,
                     image_size: Union[int, Sequence[int]] = (320, 240),
                     classes: Optional[Sequence[str]] = None, seed: int = 0, style: str = 'shapes') -> str:
    """Write ``<root>/VOCdevkit/VOC2007`` (JPEGImages, Annotations, ImageSets/Main/{trainval,test}.txt).

    Args:
        root: folder to write into; it gets a ``VOCdevkit`` folder (``root='data'`` gives the configs' default
            data root ``data/VOCdevkit/``).
        num_train: images listed in ``trainval.txt`` (ids 000001...).
        num_test: images listed in ``test.txt`` (the ids after the training ones).
        image_size: ``(width, height)`` or one int for square images; each side at least 64.
        classes: class names written into the XML. ``shapes`` style: class ``i`` is drawn as ``OBJECT_STYLES[i]``
            (default ``DEFAULT_CLASSES``); ``photo`` style: names of photo objects (``PHOTO_CLASSES``; default
            ``DEFAULT_PHOTO_CLASSES``, the VOC names person, cat, horse).
        seed: seed of every random draw.
        style: ``'shapes'`` (drawn objects) or ``'photo'`` (objects cut from photographs).

    Returns:
        The data root to give the configs (``<root>/VOCdevkit``).
    """
    width, height = _image_size(image_size)
    for arg, value in (('num_train', num_train), ('num_test', num_test)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'{arg} must be a positive integer, got {value!r}')
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    if classes is None:
        classes = DEFAULT_PHOTO_CLASSES if style == 'photo' else DEFAULT_CLASSES
    classes = tuple(classes)
    if style == 'photo':
        check_photo_classes(classes)
    elif not 1 <= len(classes) <= len(OBJECT_STYLES):
        raise ValueError(f'classes: between 1 and {len(OBJECT_STYLES)} class names are drawable, got {classes!r}')
    if len(set(classes)) != len(classes) or any(not isinstance(c, str) or not c or c != c.strip() for c in classes):
        raise ValueError(f'classes must be distinct non-empty names without surrounding spaces, got {classes!r}')

    data_root = osp.join(root, 'VOCdevkit')
    voc = osp.join(data_root, 'VOC2007')
    dirs = {name: osp.join(voc, name) for name in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main'))}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)

    next_id = 1
    for split, count in (('trainval', num_train), ('test', num_test)):
        ids = []
        for index in range(count):
            rng = np.random.default_rng((seed, _SPLITS[split], index))
            img, objects = draw_image(rng, width, height, len(classes), style, classes if style == 'photo' else None)
            img_id = f'{next_id:06d}'
            next_id += 1
            if not cv2.imwrite(osp.join(dirs['JPEGImages'], f'{img_id}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                raise OSError(f'could not write {osp.join(dirs["JPEGImages"], img_id + ".jpg")}')
            _annotation_xml(f'{img_id}.jpg', width, height, objects,
                            classes).write(osp.join(dirs['Annotations'], f'{img_id}.xml'), encoding='utf-8')
            ids.append(img_id)
        with open(osp.join(dirs[osp.join('ImageSets', 'Main')], f'{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    return data_root


def main(argv=None) -> None:
    """The command line of ``tools/data/make_synthetic_voc.py``; bad values end with a usage error (exit 2)."""
    parser = argparse.ArgumentParser(description='Write a small synthetic Pascal VOC 2007 dataset', epilog='''examples:
  python tools/data/make_synthetic_voc.py data --num-train 200 --num-test 50 --image-size 320 240
  python tools/data/make_synthetic_voc.py data --style photo   # objects cut from photographs: person, cat, horse''',
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', help='output folder; the dataset goes to ROOT/VOCdevkit/VOC2007')
    parser.add_argument('--num-train', type=int, default=100, help='images listed in trainval.txt')
    parser.add_argument('--num-test', type=int, default=30, help='images listed in test.txt')
    parser.add_argument('--image-size', type=int, nargs=2, default=(320, 240), metavar=('WIDTH', 'HEIGHT'),
                        help=f'each side at least {_MIN_IMAGE_SIDE}')
    parser.add_argument('--style', choices=STYLES, default='shapes',
                        help='shapes: drawn objects; photo: objects cut from photographs (see --classes)')
    parser.add_argument('--classes', nargs='+', default=None,
                        help=f'shapes: 1 to {len(OBJECT_STYLES)} distinct names (class i is drawn as style i; default '
                             f'{" ".join(DEFAULT_CLASSES)}); photo: objects among {" ".join(PHOTO_CLASSES)} (default '
                             f'{" ".join(DEFAULT_PHOTO_CLASSES)})')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        data_root = make_voc_dataset(args.root, args.num_train, args.num_test, tuple(args.image_size), args.classes,
                                     args.seed, args.style)
    except ValueError as err:  # the generator's checks name the argument (num_train is --num-train, ...)
        parser.error(str(err))
    print(f'wrote {args.num_train} trainval + {args.num_test} test images to {data_root}')


if __name__ == '__main__':
    main()
