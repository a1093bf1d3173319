"""The strength table: four levels per distortion (level 0 = clean), the mixtures, and ``apply_distortion``.

The eleven distortions of ``DISTORTION_NAMES`` and the mixture ``mix`` are the twelve columns of the paper's Table 2
(Section 3.1); ``mix_minor`` and ``mix_heavy`` are the detection mixtures of Table 3 / Figure 5. The mixtures have one
fixed strength each. Level ``k`` of a distortion is ``LEVELS[name][1][k - 1]``, the keyword arguments of its function
``LEVELS[name][0]`` in :mod:`featquant_mmdet.distortions.functional`. The table was calibrated so that the distortion
strength measured against the clean image (1 - SSIM, and the PSNR drop) grows with the level on real photographs
(skimage.data, matplotlib's grace_hopper); :func:`print_calibration_table` prints the measurement and
docs/distortions.md records it. Pixel sizes (kernels, shifts) are absolute, for images of 300-500 px per side
like VOC and ImageNet crops.
"""
from types import MappingProxyType
from typing import Optional, Sequence

import numpy as np

from . import functional as F

# name -> (function, levels 1..4). Table 2's column order.
LEVELS = MappingProxyType({
    # line kernel length (px), random angle
    'motion_blur': (F.motion_blur, (dict(kernel_size=5), dict(kernel_size=9), dict(kernel_size=15),
                                    dict(kernel_size=23))),
    # disk radius (px)
    'defocus_blur': (F.defocus_blur, (dict(radius=1.5), dict(radius=3), dict(radius=5), dict(radius=8))),
    # libjpeg quality
    'jpeg': (F.jpeg, (dict(quality=30), dict(quality=15), dict(quality=8), dict(quality=3))),
    # OpenJPEG target rate in 1/1000 of lossless
    'jpeg2000': (F.jpeg2000, (dict(rate_x1000=40), dict(rate_x1000=15), dict(rate_x1000=6), dict(rate_x1000=2))),
    # red/blue shift (px)
    'chromatic_aberration': (F.chromatic_aberration, (dict(shift=1), dict(shift=2), dict(shift=3.5),
                                                      dict(shift=6))),
    # fraction of pixels set to 0/255
    'salt_and_pepper': (F.salt_and_pepper, (dict(amount=0.01), dict(amount=0.03), dict(amount=0.07),
                                            dict(amount=0.15))),
    # per-pixel std of the Fourier-domain noise (8-bit units)
    'ngrn': (F.fft_noise, (dict(sigma=5), dict(sigma=10), dict(sigma=18), dict(sigma=30))),
    # std of the noise on Y (8-bit units)
    'gaussian_noise_y': (F.gaussian_noise_y, (dict(sigma=8), dict(sigma=16), dict(sigma=28), dict(sigma=45))),
    # std of the noise on Cb and Cr (8-bit units)
    'gaussian_noise_cbcr': (F.gaussian_noise_cbcr, (dict(sigma=10), dict(sigma=20), dict(sigma=35),
                                                    dict(sigma=55))),
    # number of strings, their height (fraction of the short side) and opacity
    'inpainting': (F.inpainting, (dict(num_strings=3, text_height=(0.05, 0.10), alpha=(0.4, 0.7)),
                                  dict(num_strings=6, text_height=(0.06, 0.12), alpha=(0.5, 0.8)),
                                  dict(num_strings=10, text_height=(0.07, 0.14), alpha=(0.6, 0.9)),
                                  dict(num_strings=16, text_height=(0.08, 0.16), alpha=(0.7, 1.0)))),
    # number of occluded clusters, mask side (fraction of sqrt(H W)); needs a saliency map
    'targeted_occlusion': (F.occlude_salient_clusters, (dict(num_clusters=1, mask_size=0.15),
                                                        dict(num_clusters=2, mask_size=0.15),
                                                        dict(num_clusters=4, mask_size=0.15),
                                                        dict(num_clusters=8, mask_size=0.15))),
})

NUM_LEVELS = 4

# name -> the (type, level) components applied in order. The mixtures have one fixed strength each (level 1;
# level 0 = clean), as in the paper's tables.
MIXTURES = MappingProxyType({
    # Table 2's Mix. (Section 3.1): "Additive Gaussian noise in CbCr channels, Salt and pepper, Inpainting and
    # Jpeg compression"
    'mix': (('gaussian_noise_cbcr', 2), ('salt_and_pepper', 2), ('inpainting', 2), ('jpeg', 2)),
    # Table 3 / Figure 5: "minor distortion (Inpainting, Random noise)"
    'mix_minor': (('inpainting', 2), ('ngrn', 2)),
    # Table 3 / Figure 5: "heavy distortion (Inpainting, Random noise, Salt & Pepper noise, blurring, Jpeg
    # compression)"
    'mix_heavy': (('inpainting', 3), ('ngrn', 3), ('salt_and_pepper', 3), ('defocus_blur', 3), ('jpeg', 3)),
})

# the single distortions, with levels 1..NUM_LEVELS, in Table 2's column order
DISTORTION_NAMES = tuple(LEVELS)
# the fixed-strength mixtures: Table 2's Mix., Table 3's Mix.Minor and Mix.Heavy
MIXTURE_NAMES = tuple(MIXTURES)
# every name ``apply_distortion`` and the ``Distort`` transform accept
ALL_NAMES = DISTORTION_NAMES + MIXTURE_NAMES
# the paper's column titles
DISPLAY_NAMES = MappingProxyType({
    'motion_blur': 'M.Blur', 'defocus_blur': 'D.Blur', 'jpeg': 'Jpeg', 'jpeg2000': 'Jpeg2K',
    'chromatic_aberration': 'Aber.', 'salt_and_pepper': 'S.&P.', 'ngrn': 'NGRN', 'gaussian_noise_y': 'Y+N',
    'gaussian_noise_cbcr': 'CC+N', 'inpainting': 'Inp.', 'targeted_occlusion': 'Occ.', 'mix': 'Mix.',
    'mix_minor': 'Mix.Minor', 'mix_heavy': 'Mix.Heavy'})
# types whose draws need more than an rng (a classifier's saliency map)
NEEDS_SALIENCY = ('targeted_occlusion', )
_RANDOM_FUNCTIONS = (F.motion_blur, F.chromatic_aberration, F.salt_and_pepper, F.fft_noise,
                     F.gaussian_noise_y, F.gaussian_noise_cbcr, F.inpainting)
_COLOR_ORDER_FUNCTIONS = (F.jpeg, F.jpeg2000, F.chromatic_aberration, F.fft_noise, F.gaussian_noise_y,
                          F.gaussian_noise_cbcr, F.inpainting)


def check_name(name: str) -> str:
    if name not in ALL_NAMES:
        raise ValueError(f'unknown distortion {name!r}; valid names: {", ".join(DISTORTION_NAMES)} (levels '
                         f'0-{NUM_LEVELS}) and the fixed-strength mixtures {", ".join(MIXTURE_NAMES)}')
    return name


def valid_levels(name: str) -> tuple:
    """Levels accepted for ``name`` (0 = clean): 0-4 for a distortion, 0-1 for a mixture."""
    check_name(name)
    return tuple(range(NUM_LEVELS + 1)) if name in LEVELS else (0, 1)


def resolve_level(name: str, level: Optional[int]) -> int:
    """Validate ``level`` for ``name``; ``None`` selects a mixture's fixed strength (level 1)."""
    levels = valid_levels(name)
    if level is None:
        if name in MIXTURES:
            return 1
        raise ValueError(f'distortion {name!r} needs a level: one of {", ".join(map(str, levels[1:]))} '
                         f'(0 = clean)')
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or int(level) not in levels:
        hint = ('; the mixtures have one fixed strength: leave the level unset' if name in MIXTURES else '')
        raise ValueError(f'invalid level {level!r} for distortion {name!r}; valid levels: '
                         f'{", ".join(map(str, levels))} (0 = clean){hint}')
    return int(level)


def apply_distortion(img: np.ndarray, name: str, level: Optional[int], rng: np.random.Generator, *,
                     channel_order: str = 'bgr', saliency: Optional[np.ndarray] = None) -> np.ndarray:
    """Distort ``img`` (uint8, HxW / HxWx1 / HxWx3) with distortion ``name`` at ``level`` (0 = a clean copy).

    ``rng`` supplies every random draw; mixtures give each component its own child generator
    (``rng.spawn``), so a component's draws do not depend on the components before it. ``saliency`` (HxW) is
    required by ``targeted_occlusion`` only; build it with :class:`featquant_mmdet.distortions.occlusion.
    GradientSaliency`.
    """
    level = resolve_level(name, level)
    img = F.check_image(img, f'apply_distortion({name!r})')
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f'rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), '
                        f'got {type(rng).__name__}')
    if level == 0:
        return img.copy()
    if name in MIXTURES:
        components = MIXTURES[name]
        out = img
        for (part, part_level), part_rng in zip(components, rng.spawn(len(components))):
            out = apply_distortion(out, part, part_level, part_rng, channel_order=channel_order)
        return out
    func, params = LEVELS[name]
    kwargs = dict(params[level - 1])
    if func in _RANDOM_FUNCTIONS:
        kwargs['rng'] = rng
    if func in _COLOR_ORDER_FUNCTIONS:
        kwargs['channel_order'] = channel_order
    if name in NEEDS_SALIENCY:
        if saliency is None:
            raise ValueError(f'{name!r} needs the saliency map of a classifier for the ground-truth class: pass '
                             f'saliency=GradientSaliency(config, checkpoint)(img, label) '
                             f'(featquant_mmdet.distortions.occlusion), or use '
                             f'Distort(name={name!r}, classifier=..., checkpoint=...)')
        return func(img, saliency, **kwargs)
    return func(img, **kwargs)


def mix(img: np.ndarray, rng: np.random.Generator, channel_order: str = 'bgr') -> np.ndarray:
    """Mix. (Table 2): CbCr noise, salt & pepper, inpainting, JPEG (all level 2)."""
    return apply_distortion(img, 'mix', 1, rng, channel_order=channel_order)


def mix_minor(img: np.ndarray, rng: np.random.Generator, channel_order: str = 'bgr') -> np.ndarray:
    """Mix.Minor (Table 3, Figure 5): inpainting, then non-Gaussian random noise (both level 2)."""
    return apply_distortion(img, 'mix_minor', 1, rng, channel_order=channel_order)


def mix_heavy(img: np.ndarray, rng: np.random.Generator, channel_order: str = 'bgr') -> np.ndarray:
    """Mix.Heavy (Table 3, Figure 5): inpainting, random noise, salt & pepper, defocus blur, JPEG (all level 3)."""
    return apply_distortion(img, 'mix_heavy', 1, rng, channel_order=channel_order)


def strength(clean: np.ndarray, distorted: np.ndarray) -> dict:
    """Distortion strength against the clean image: ``1 - SSIM`` (Gaussian-window SSIM) and PSNR (dB)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    channel_axis = 2 if clean.ndim == 3 else None
    ssim = structural_similarity(clean, distorted, channel_axis=channel_axis, data_range=255,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    with np.errstate(divide='ignore'):
        psnr = peak_signal_noise_ratio(clean, distorted, data_range=255)
    return dict(one_minus_ssim=float(1 - ssim), psnr=float(psnr))


def calibration_images(size: Optional[int] = None) -> dict:
    """The real photographs the table is calibrated on, as BGR uint8 (optionally resized to ``size`` px wide)."""
    import cv2
    import skimage.data
    images = {name: getattr(skimage.data, name)() for name in ('astronaut', 'coffee', 'chelsea', 'rocket')}
    try:
        import matplotlib.cbook
        with matplotlib.cbook.get_sample_data('grace_hopper.jpg') as f:
            images['grace_hopper'] = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    except (ImportError, OSError, ValueError):
        pass  # matplotlib's sample data is optional
    out = {}
    for name, rgb in images.items():
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        if size is not None:
            bgr = cv2.resize(bgr, (size, round(bgr.shape[0] * size / bgr.shape[1])), interpolation=cv2.INTER_AREA)
        out[name] = bgr
    return out


def _uniform_saliency(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # calibration without a classifier: occlusion strength only depends on how many masks are drawn
    return rng.random(img.shape[:2], dtype=np.float32)


def calibration_table(images: dict, names: Sequence[str] = ALL_NAMES, seed: int = 0) -> dict:
    """``{name: [mean strength at level 1, ..., level L]}`` over ``images`` (``targeted_occlusion`` on a random map).

    Each entry is ``dict(one_minus_ssim=..., psnr=...)`` averaged over the images.
    """
    table = {}
    for name in names:
        rows = []
        for level in valid_levels(name)[1:]:
            values = []
            for i, img in enumerate(images.values()):
                rng = np.random.default_rng([seed, i, ALL_NAMES.index(name), level])
                saliency = _uniform_saliency(img, rng) if name in NEEDS_SALIENCY else None
                values.append(strength(img, apply_distortion(img, name, level, rng, saliency=saliency)))
            rows.append({key: float(np.mean([v[key] for v in values])) for key in values[0]})
        table[name] = rows
    return table


def _format_params(params: dict) -> str:
    def value(v):
        return '-'.join(f'{x:g}' for x in v) if isinstance(v, tuple) else f'{v:g}'
    return ', '.join(f'{k}={value(v)}' for k, v in params.items())


def parameter_table_markdown() -> str:
    """The strength table (``LEVELS`` and ``MIXTURES``) as markdown, as docs/distortions.md shows it."""
    lines = ['| distortion | paper | function | ' + ' | '.join(f'level {k}' for k in range(1, NUM_LEVELS + 1)) + ' |',
             '|---|---|---|' + '---|' * NUM_LEVELS]
    for name, (func, params) in LEVELS.items():
        cells = ' | '.join(_format_params(p) for p in params)
        lines.append(f'| {name} | {DISPLAY_NAMES[name]} | `{func.__name__}` | {cells} |')
    for name, components in MIXTURES.items():
        parts = ' + '.join(f'{part}@{level}' for part, level in components)
        lines.append(f'| {name} | {DISPLAY_NAMES[name]} | mixture | {parts} (one fixed strength) |' +
                     ' |' * (NUM_LEVELS - 1))
    return '\n'.join(lines)


def print_calibration_table(size: int = 500) -> None:
    """Print the calibration measurement (docs/distortions.md) as a markdown table."""
    images = calibration_images(size)
    table = calibration_table(images)
    print(f'Mean over {", ".join(images)} ({size} px wide): 1 - SSIM / PSNR (dB) per level\n')
    print('| distortion | ' + ' | '.join(f'level {k}' for k in range(1, NUM_LEVELS + 1)) + ' |')
    print('|---|' + '---|' * NUM_LEVELS)
    for name, rows in table.items():
        cells = [f'{r["one_minus_ssim"]:.3f} / {r["psnr"]:.1f}' for r in rows] + [''] * (NUM_LEVELS - len(rows))
        print(f'| {name} | ' + ' | '.join(cells) + ' |')

