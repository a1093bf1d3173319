"""Objects cut from real photographs, on photographic backgrounds: the ``photo`` style of the synthetic datasets.

The drawn shapes of the ``shapes`` style (flat colours, regular textures, dark outlines) survive distortions far
better than real objects do. Here every object is a region of a photograph that an installed package ships, with
its true outline (or, where no outline can be cut reliably, its hand-specified box):

============  ==========================================  =================================================
class         photograph                                   outline
============  ==========================================  =================================================
person        ``skimage.data.astronaut``                   GrabCut from a hand-specified rectangle
cat           ``skimage.data.chelsea``                     hand-specified box (the head fills the frame)
horse         ``skimage.data.horse`` (a silhouette)        the silhouette, filled with a crop of chelsea's fur
cup           ``skimage.data.coffee``                      GrabCut (cup, saucer and spoon)
coin          ``skimage.data.coins`` (24 coins)            Otsu threshold, holes filled, one component per coin
rocket        ``skimage.data.rocket``                      GrabCut from a hand-specified rectangle
============  ==========================================  =================================================

GrabCut runs once per process (cached) on a half-size copy with OpenCV's RNG seeded, so the outlines are the same on
every run. Backgrounds are crops of photographs that hold none of the objects (grass, gravel, brick, moon, the Hubble
deep field, an immunohistochemistry slide, the coffee table's wood), rescaled, flipped and recoloured.

Pasting: the object is scaled so that its longer side is the requested size, flipped at random, its colours jittered
a little, and copied where its (binary, resized) mask is set; the annotation box is that mask's bounding box.

How much the mixtures change them (20 generated 320x240 VOC test images per style, ``apply_distortion`` with seed i;
zero-normalised correlation of each object's box crop, clean vs distorted, mean ± sd over the objects):

=========  ======  ============  ===========  ===============
mixture    style   1 - SSIM      PSNR (dB)    object ZNCC
=========  ======  ============  ===========  ===============
Mix.Minor  shapes  0.41 ± 0.09   20.5 ± 1.4   0.89 ± 0.08
Mix.Minor  photo   0.35 ± 0.10   21.3 ± 1.6   0.88 ± 0.09
Mix.Heavy  shapes  0.58 ± 0.09   17.1 ± 1.1   0.72 ± 0.10
Mix.Heavy  photo   0.64 ± 0.11   17.7 ± 1.7   0.61 ± 0.15
=========  ======  ============  ===========  ===============

Mix.Heavy leaves less of a photographed object than of a drawn one (correlation 0.61 vs 0.72); what that does to a
detector's mAP is not measured here.
"""
from functools import lru_cache
from typing import Tuple

import cv2
import numpy as np

PHOTO_CLASSES = ('person', 'cat', 'horse', 'cup', 'coin', 'rocket')
# the Pascal VOC names among them, so that the 20-class VOC configs read them (VOCDataset skips unknown names)
DEFAULT_PHOTO_CLASSES = ('person', 'cat', 'horse')

# (x, y, width, height) in the photograph's pixels
_GRABCUT_RECTS = {'astronaut': (0, 15, 340, 497), 'coffee': (60, 5, 520, 390), 'rocket': (290, 40, 80, 380)}
_CAT_BOX = (0, 0, 451, 300)  # chelsea: the whole photograph is the cat's head
_FUR_CROP = (130, 0, 200, 90)  # chelsea's forehead fur
_BACKGROUND_PHOTOS = ('grass', 'gravel', 'brick', 'moon', 'hubble_deep_field', 'immunohistochemistry', 'coffee_wood')
_WOOD_CROP = (0, 250, 120, 150)  # coffee: table top left of the saucer


@lru_cache(maxsize=None)
def _skimage_photo(name: str) -> np.ndarray:
    """A bundled scikit-image image as BGR uint8 (grey and binary ones as three equal channels)."""
    from skimage import data as skdata
    img = np.asarray(getattr(skdata, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3][..., ::-1])


def _crop(img: np.ndarray, rect: Tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = rect
    return img[y:y + h, x:x + w]


def grabcut_mask(img: np.ndarray, rect: Tuple[int, int, int, int], scale: float = 0.5,
                 iterations: int = 5) -> np.ndarray:
    """The foreground of ``img`` inside ``rect`` by GrabCut (OpenCV), run at ``scale``; its largest component, uint8."""
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mask = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(0)  # GrabCut's k-means initialisation
    cv2.grabCut(small, mask, tuple(int(v * scale) for v in rect), np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                cv2.GC_INIT_WITH_RECT)
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.resize(fg, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    return _largest_component(fg)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count < 2:
        raise ValueError('empty mask')
    return (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    return (mask | (1 - flood[1:-1, 1:-1])).astype(np.uint8)


def _tight(patch: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Crop ``patch`` and ``mask`` to the mask's bounding box."""
    ys, xs = np.nonzero(mask)
    sl = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.ascontiguousarray(patch[sl]), np.ascontiguousarray(mask[sl])


@lru_cache(maxsize=None)
def photo_object_sources(class_name: str) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """The ``(BGR patch, uint8 mask)`` pairs of ``class_name``, each cropped to its mask's bounding box."""
    if class_name == 'person':
        img = _skimage_photo('astronaut')
        return (_tight(img, grabcut_mask(img, _GRABCUT_RECTS['astronaut'])), )
    if class_name == 'cup':
        img = _skimage_photo('coffee')
        return (_tight(img, grabcut_mask(img, _GRABCUT_RECTS['coffee'])), )
    if class_name == 'rocket':
        img = _skimage_photo('rocket')
        return (_tight(img, grabcut_mask(img, _GRABCUT_RECTS['rocket'])), )
    if class_name == 'cat':
        patch = _crop(_skimage_photo('chelsea'), _CAT_BOX)
        return ((np.ascontiguousarray(patch), np.ones(patch.shape[:2], np.uint8)), )
    if class_name == 'horse':
        mask = (_skimage_photo('horse')[..., 0] == 0).astype(np.uint8)  # the black silhouette
        fur = cv2.resize(_crop(_skimage_photo('chelsea'), _FUR_CROP), (mask.shape[1], mask.shape[0]),
                         interpolation=cv2.INTER_CUBIC)
        return (_tight(fur, _largest_component(mask)), )
    if class_name == 'coin':
        grey = _skimage_photo('coins')[..., 0]
        _, binary = cv2.threshold(cv2.GaussianBlur(grey, (5, 5), 0), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(binary)
        coins = []
        for k in range(1, count):
            x, y, w, h, area = stats[k]
            if area >= 300 and 0.6 < w / h < 1.6:  # a coin, not noise or two touching coins
                coin = _fill_holes((labels == k).astype(np.uint8))
                coins.append(_tight(_skimage_photo('coins'), coin))
        return tuple(coins)
    raise ValueError(f'unknown photo object class {class_name!r}; known: {", ".join(PHOTO_CLASSES)}')


def check_photo_classes(classes) -> Tuple[str, ...]:
    classes = tuple(classes)
    unknown = [c for c in classes if c not in PHOTO_CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f'classes of the photo style: distinct names among {", ".join(PHOTO_CLASSES)} (the '
                         f'objects that exist), got {classes!r}')
    return classes


def photo_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float32 BGR background: a random crop of a photograph without objects, rescaled, flipped, recoloured."""
    name = _BACKGROUND_PHOTOS[rng.integers(len(_BACKGROUND_PHOTOS))]
    photo = _crop(_skimage_photo('coffee'), _WOOD_CROP) if name == 'coffee_wood' else _skimage_photo(name)
    ph, pw = photo.shape[:2]
    crop_h = max(8, int(ph * rng.uniform(0.4, 1.0)))
    crop_w = min(pw, max(8, int(crop_h * width / height)))
    y0, x0 = rng.integers(0, ph - crop_h + 1), rng.integers(0, pw - crop_w + 1)
    img = cv2.resize(photo[y0:y0 + crop_h, x0:x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img[..., rng.permutation(3)].astype(np.float32)
    return img * rng.uniform(0.7, 1.2, size=3) * rng.uniform(0.7, 1.0) + rng.uniform(0, 40)


def paste_photo_object(img: np.ndarray, class_name: str, x0: int, y0: int, size: int, rng: np.random.Generator,
                       return_mask: bool = False):
    """Paste an object of ``class_name`` inside the ``size`` square at (x0, y0); return its tight box (x1, y1, x2,
    y2), ends exclusive (and, with ``return_mask``, the image-sized uint8 mask of the pasted pixels)."""
    sources = photo_object_sources(class_name)
    patch, mask = sources[int(rng.integers(len(sources)))]
    h, w = mask.shape
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    patch = cv2.resize(patch, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    if rng.random() < 0.5:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    patch = patch.astype(np.float32) * rng.uniform(0.85, 1.15, size=3)
    # centre the scaled object in its square
    ox, oy = x0 + (size - new_w) // 2, y0 + (size - new_h) // 2
    region = img[oy:oy + new_h, ox:ox + new_w]
    on = mask > 0
    region[on] = patch[on]
    ys, xs = np.nonzero(mask)
    box = (ox + int(xs.min()), oy + int(ys.min()), ox + int(xs.max()) + 1, oy + int(ys.max()) + 1)
    if not return_mask:
        return box
    full = np.zeros(img.shape[:2], np.uint8)
    full[oy:oy + new_h, ox:ox + new_w] = mask
    return box, full
