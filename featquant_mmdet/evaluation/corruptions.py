"""The 15 corruptions of the common robustness benchmark (ImageNet-C, Pascal-C, COCO-C) as a deterministic transform.

Computed by the optional package ``imagecorruptions-imaug`` (``pip install -r requirements/optional.txt``), the
maintained fork of Michaelis et al.'s ``imagecorruptions``, at severities 1-5, so that a sweep over them
(``tools/robustness.py ... --distortions corruptions --levels 1 2 3 4 5``) gives mPC numbers comparable with the
published Pascal-C / COCO-C tables. Names in a sweep carry the prefix ``ic:`` (``ic:gaussian_noise``), apart from
the paper's own distortions of the same name.

The package draws from NumPy's global generator; :func:`corrupt_image` seeds it, for the duration of one call only,
from the same key as the paper's distortions (:func:`featquant_mmdet.distortions.transforms.image_rng`: seed, image,
name, severity), so a corrupted image depends on nothing else, whichever worker loads it.
"""
import contextlib
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

PREFIX = 'ic:'
# imagecorruptions.get_corruption_names('common'), in the benchmark's order
COMMON_CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur', 'motion_blur',
                      'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast', 'elastic_transform', 'pixelate',
                      'jpeg_compression')
NUM_SEVERITIES = 5
# corruptions that take their own seed (glass_blur draws inside a numba function, whose generator is separate)
_SEEDED = ('glass_blur', 'impulse_noise')


def import_imagecorruptions():
    """The ``imagecorruptions`` module, or an ImportError saying how to get it."""
    try:
        import imagecorruptions
    except ImportError as err:
        raise ImportError('the corruption family (ic:<name>) needs the optional package imagecorruptions-imaug: '
                          'pip install -r requirements/optional.txt '
                          f'({type(err).__name__}: {err})') from None
    return imagecorruptions


def check_corruption(name: str, severity: int) -> str:
    """The bare corruption name of ``name`` (with or without ``ic:``), checked with its severity."""
    bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if bare not in COMMON_CORRUPTIONS:
        raise ValueError(f'unknown corruption {name!r}; valid: {", ".join(PREFIX + n for n in COMMON_CORRUPTIONS)}')
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f'corruption severity must be 1-{NUM_SEVERITIES}, got {severity!r}')
    return bare


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """Seed NumPy's global generator inside the block and put its previous state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def corrupt_image(img: np.ndarray, name: str, severity: int, seed: int, channel_order: str = 'bgr') -> np.ndarray:
    """``imagecorruptions.corrupt`` of a uint8 HxWx3 image (same size back), deterministic in ``seed`` (32 bits)."""
    bare = check_corruption(name, severity)
    module = import_imagecorruptions()
    rgb = img[..., ::-1] if channel_order == 'bgr' and img.ndim == 3 else img
    kwargs = {'seed': seed} if bare in _SEEDED else {}
    with _numpy_global_seed(seed):
        out = module.corrupt(np.ascontiguousarray(rgb), severity=int(severity), corruption_name=bare, **kwargs)
    out = np.ascontiguousarray(out[..., ::-1] if channel_order == 'bgr' else out)
    if out.shape[:2] != img.shape[:2]:  # keep the size, so that boxes stay valid
        import cv2
        out = cv2.resize(out, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return out


@TRANSFORMS.register_module()
class ImageCorruption(BaseTransform):
    """One common-benchmark corruption at a fixed severity (``dict(type='ImageCorruption', name='fog', severity=3)``).

    Required keys: ``img`` (uint8), ``img_path`` or ``img_id``. Modified: ``img``. Added: ``distortion`` =
    ``dict(name='ic:<name>', level=severity, seed=seed)``, as the paper's ``Distort`` records it.
    """

    def __init__(self, name: str, severity: int, seed: int = 0, channel_order: str = 'bgr'):
        self.name = check_corruption(name, severity)
        self.severity = int(severity)
        self.seed = int(seed)
        self.channel_order = channel_order
        import_imagecorruptions()  # fail when the pipeline is built, not in a dataloader worker

    def transform(self, results: dict) -> dict:
        from featquant_mmdet.distortions.transforms import image_identity, image_rng
        key = PREFIX + self.name
        rng = image_rng(self.seed, image_identity(results), key, self.severity)
        img = results['img']
        results['img'] = corrupt_image(img, self.name, self.severity, int(rng.integers(2**32)), self.channel_order)
        entry = dict(name=key, level=self.severity, seed=self.seed)
        previous = results.get('distortion')
        results['distortion'] = entry if previous is None else (
            previous if isinstance(previous, list) else [previous]) + [entry]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(name={self.name!r}, severity={self.severity}, seed={self.seed})'


def inject_corruption(dataloader_cfg: dict, name: str, severity: int, seed: int = 0) -> dict:
    """Insert an ``ImageCorruption`` step after each image-loading step (in place), like ``inject_distortion``."""
    from featquant_mmdet.distortions.inject import inject_transform
    bare = check_corruption(name, severity)
    return inject_transform(
        dataloader_cfg,
        lambda load: dict(type='ImageCorruption', name=bare, severity=int(severity), seed=seed,
                          channel_order=load.get('channel_order', 'bgr')),
        what=f'corruption {name!r}')
