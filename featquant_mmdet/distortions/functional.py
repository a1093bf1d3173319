"""The paper's image distortions (Section 3.1) as pure functions on uint8 images.

Every function takes a ``uint8`` array of shape ``HxW``, ``HxWx1`` or ``HxWx3`` and returns a new array of the same
shape and dtype; the input is never modified. Randomness comes only from the ``numpy.random.Generator`` passed in as
``rng`` (no global state), so the same generator state gives byte-identical output. Colour images are BGR by default
(mmcv's order); the functions whose result depends on the order take ``channel_order='bgr' | 'rgb'``.

Accepted input, and what is refused:

* ``uint8`` only: float images raise ``TypeError`` (scale and round them to 0-255 ``uint8`` first);
* 1 or 3 channels: RGBA/other channel counts raise ``ValueError`` (drop the alpha channel, ``img[..., :3]``);
* non-contiguous arrays (crops, channel flips, transposes) are accepted: they are copied to contiguous memory;
* images smaller than a kernel work (borders are reflected as often as needed).

Strength parameters per level live in :mod:`featquant_mmdet.distortions.levels`; this module is only the math.
"""
import functools
import string
from typing import Callable, Optional

import cv2
import numpy as np

from .convolution import (FFT_MIN_KERNEL, FFT_MIN_PIXELS, convolve, disk_kernel, disk_spectrum,  # noqa: F401
                          fft_shape, motion_blur_kernel, round_to_uint8)

CHANNEL_ORDERS = ('bgr', 'rgb')

# values per block of the noise functions (~128 KiB of float32 per temporary)
_NOISE_BLOCK = 32768


# ----------------------------------------------------------------------------------------------- input handling
def check_image(img: np.ndarray, op: str = 'distortion') -> np.ndarray:
    """Return ``img`` as a C-contiguous uint8 array of shape HxW, HxWx1 or HxWx3, or raise a clear error."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f'{op}: expected a numpy.ndarray image, got {type(img).__name__}')
    if img.dtype != np.uint8:
        raise TypeError(f'{op}: expected a uint8 image (values 0-255), got dtype {img.dtype}; convert float images '
                        f'with np.clip(img * 255, 0, 255).round().astype(np.uint8) (if they are in [0, 1])')
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))):
        raise ValueError(f'{op}: expected an image of shape HxW, HxWx1 or HxWx3, got shape {img.shape}; for RGBA '
                         f'images distort img[..., :3] and put the alpha channel back')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{op}: got an empty image of shape {img.shape}')
    return np.ascontiguousarray(img)


def _check_rng(rng, op: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f'{op}: rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), '
                        f'got {type(rng).__name__}')
    return rng


def _check_channel_order(channel_order: str, op: str) -> str:
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f'{op}: channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}')
    return channel_order


def image_op(func: Callable) -> Callable:
    """Validate the image argument, run ``func`` on an HxW / HxWx3 view and restore an HxWx1 input's shape."""

    @functools.wraps(func)
    def wrapper(img, *args, **kwargs):
        img = check_image(img, func.__name__)
        if 'rng' in kwargs:
            _check_rng(kwargs['rng'], func.__name__)
        if 'channel_order' in kwargs:
            _check_channel_order(kwargs['channel_order'], func.__name__)
        if img.ndim == 3 and img.shape[2] == 1:
            return func(img[:, :, 0], *args, **kwargs)[:, :, None]
        return func(img, *args, **kwargs)

    return wrapper


def _is_color(img: np.ndarray) -> bool:
    return img.ndim == 3



def _bgr_planes(img: np.ndarray, channel_order: str) -> list:
    """The planes of a colour image in B, G, R order (so that random draws go to the same colour either way)."""
    planes = cv2.split(img)
    return planes if channel_order == 'bgr' else planes[::-1]


def _merge_bgr(planes: list, channel_order: str) -> np.ndarray:
    return cv2.merge(planes if channel_order == 'bgr' else planes[::-1])


def standard_normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """``N(0, 1)`` float32 samples of ``shape`` by the Box-Muller transform of ``rng``'s float32 uniforms.

    ``z1 = r cos(2 pi u2)``, ``z2 = r sin(2 pi u2)``, ``r = sqrt(-2 ln(1 - u1))``, ``u1, u2 ~ U[0, 1)``: exact
    Gaussians (up to float32 resolution, which caps |z| at 5.8), about three times faster than
    ``Generator.standard_normal`` because the transcendental functions vectorise.
    """
    size = int(np.prod(shape))
    half = (size + 1) // 2
    u = rng.random((2, half), dtype=np.float32)
    # in place: fresh temporaries of this size cost more (page faults) than the arithmetic
    radius, angle = u[0], u[1]
    np.negative(radius, out=radius)
    np.log1p(radius, out=radius)
    radius *= np.float32(-2)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2 * np.pi)
    out = np.empty(2 * half, np.float32)
    np.cos(angle, out=out[:half])
    out[:half] *= radius
    np.sin(angle, out=out[half:])
    out[half:] *= radius
    return out[:size].reshape(shape)



# --------------------------------------------------------------------------------------- signal processing loss
@image_op
def motion_blur(img: np.ndarray, kernel_size: int, *, rng: np.random.Generator,
                angle: Optional[float] = None) -> np.ndarray:
    """Motion blur [M.Blur]: convolution with a line of ``kernel_size`` px at a random angle.

    ``I' = I * K_line(kernel_size, a)``, ``a ~ U[0, 180)`` degrees drawn from ``rng`` (or ``angle`` if given).
    """
    if angle is None:
        angle = rng.uniform(0.0, 180.0)
    return convolve(img, motion_blur_kernel(kernel_size, angle))


@image_op
def defocus_blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Defocus blur [D.Blur]: convolution with an anti-aliased disk of ``radius`` px, ``I' = I * K_disk(r)``."""
    kernel = disk_kernel(radius)
    k = kernel.shape[0]
    spectrum = None
    if k >= FFT_MIN_KERNEL and img.shape[0] * img.shape[1] >= FFT_MIN_PIXELS:
        spectrum = disk_spectrum(float(radius), fft_shape(img, k // 2))
    return convolve(img, kernel, spectrum)


def _codec_round_trip(img: np.ndarray, ext: str, params: list, channel_order: str) -> np.ndarray:
    # the codecs' colour transforms expect BGR input
    swap = _is_color(img) and channel_order == 'rgb'
    src = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if swap else img
    ok, buf = cv2.imencode(ext, src, params)
    if not ok:
        raise RuntimeError(f'this OpenCV build ({cv2.__version__}) could not encode {ext} images')
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if out is None or out.shape != src.shape:
        raise RuntimeError(f'{ext} round trip failed: decoded {None if out is None else out.shape}, '
                           f'expected {src.shape}')
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if swap else out


@image_op
def jpeg(img: np.ndarray, quality: int, *, channel_order: str = 'bgr') -> np.ndarray:
    """JPEG compression [Jpeg]: encode with OpenCV's libjpeg at ``quality`` (0-100) and decode again."""
    if not 0 <= int(quality) <= 100:
        raise ValueError(f'jpeg quality must be in [0, 100], got {quality}')
    return _codec_round_trip(img, '.jpg', [cv2.IMWRITE_JPEG_QUALITY, int(quality)], channel_order)


_JP2_MIN_SIDE = 32


@image_op
def jpeg2000(img: np.ndarray, rate_x1000: int, *, channel_order: str = 'bgr') -> np.ndarray:
    """JPEG2000 compression [Jpeg2K]: OpenJPEG round trip through OpenCV.

    ``rate_x1000`` is OpenCV's ``IMWRITE_JPEG2000_COMPRESSION_X1000`` (1-1000): the target size in thousandths of
    the lossless bit rate, so smaller means stronger compression.
    """
    if not 1 <= int(rate_x1000) <= 1000:
        raise ValueError(f'jpeg2000 rate_x1000 must be in [1, 1000], got {rate_x1000}')
    params = [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, int(rate_x1000)]
    h, w = img.shape[:2]
    if min(h, w) >= _JP2_MIN_SIDE:
        return _codec_round_trip(img, '.jp2', params, channel_order)
    # OpenJPEG's 6 wavelet resolutions need >= 32 px per side: code a reflected extension and crop it back
    padded = cv2.copyMakeBorder(img, 0, max(0, _JP2_MIN_SIDE - h), 0, max(0, _JP2_MIN_SIDE - w),
                                cv2.BORDER_REFLECT_101)
    return np.ascontiguousarray(_codec_round_trip(padded, '.jp2', params, channel_order)[:h, :w])


@image_op
def chromatic_aberration(img: np.ndarray, shift: float, *, rng: np.random.Generator,
                         channel_order: str = 'bgr') -> np.ndarray:
    """Chromatic aberration [Aber.]: the red and blue channels shifted by ``shift`` px in opposite directions.

    ``R'(p) = R(p - d)``, ``B'(p) = B(p + d)``, ``G' = G`` with ``d = shift (cos t, sin t)``, ``t ~ U[0, 2 pi)``
    (sub-pixel shifts by bilinear interpolation, replicated borders), like the coloured fringes of lateral
    aberration. A grayscale image has no colours to separate and is returned unchanged (as a copy).
    """
    if not _is_color(img):
        return img.copy()
    theta = rng.uniform(0.0, 2 * np.pi)
    dx, dy = shift * np.cos(theta), shift * np.sin(theta)
    h, w = img.shape[:2]
    blue, green, red = _bgr_planes(img, channel_order)
    red = cv2.warpAffine(red, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    blue = cv2.warpAffine(blue, np.float32([[1, 0, -dx], [0, 1, -dy]]), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return _merge_bgr([blue, green, red], channel_order)


# --------------------------------------------------------------------------------------------- statistical noise
@image_op
def salt_and_pepper(img: np.ndarray, amount: float, *, rng: np.random.Generator,
                    salt_ratio: float = 0.5) -> np.ndarray:
    """Salt & pepper noise [S.&P.]: a fraction ``amount`` of the pixels (all channels) set to 0 or 255.

    ``u ~ U[0, 1)`` per pixel; pepper (0) where ``u < amount (1 - salt_ratio)``, salt (255) where
    ``amount (1 - salt_ratio) <= u < amount``.
    """
    if not 0 <= amount <= 1 or not 0 <= salt_ratio <= 1:
        raise ValueError(f'salt_and_pepper needs amount and salt_ratio in [0, 1], got {amount}, {salt_ratio}')
    u = rng.random(img.shape[:2], dtype=np.float32)
    out = img.copy()
    pepper_below = np.float32(amount * (1 - salt_ratio))
    out[u < pepper_below] = 0
    out[(u >= pepper_below) & (u < np.float32(amount))] = 255
    return out


@image_op
def fft_noise(img: np.ndarray, sigma: float, *, rng: np.random.Generator,
              channel_order: str = 'bgr') -> np.ndarray:
    """Non-Gaussian random noise [NGRN]: Gaussian noise added in the Fourier domain, magnitude of the inverse DFT.

    ``I'_c = |IDFT(DFT(I_c) + N_c)|``, ``N_c(u) = sigma sqrt(H W) (a(u) + i b(u))``, ``a, b ~ N(0, 1)`` i.i.d. per
    frequency and channel. The noise is not Hermitian-symmetric, so the inverse DFT is complex and its magnitude
    is kept, as MRI does with k-space noise: the result is Rician, not Gaussian, ``I' ~ Rice(I, sigma)`` (biased
    upwards and skewed in dark regions, ``I' ~ N(I, sigma^2)`` only where ``I >> sigma``).

    Computed without the transforms: the unitary DFT maps i.i.d. circular complex Gaussian noise to i.i.d. circular
    complex Gaussian noise, so ``IDFT(DFT(I) + N) = I + n1 + i n2`` with ``n1, n2 ~ N(0, sigma^2)`` i.i.d. per
    pixel, exactly. With ``(n1, n2) = (r cos t, r sin t)`` from one Box-Muller draw (``r^2 = -2 sigma^2 ln(1 - u1)``,
    ``t = 2 pi u2``), ``I' = sqrt((I + n1)^2 + n2^2) = sqrt(I^2 + r^2 + 2 I r cos t)``: the sine is never needed.
    """
    if _is_color(img) and channel_order == 'rgb':  # draw in B, G, R order either way
        return np.ascontiguousarray(fft_noise(img[:, :, ::-1], sigma, rng=rng)[:, :, ::-1])
    # in blocks of rows that stay in cache: whole-image float temporaries cost more in page faults than the math
    rows = img.reshape(img.shape[0], -1)
    out = np.empty_like(rows)
    block = max(1, _NOISE_BLOCK // rows.shape[1])
    minus_two_var = np.float32(-2.0 * sigma * sigma)
    for start in range(0, rows.shape[0], block):
        part = rows[start:start + block]
        r_squared, cos_t = rng.random((2, *part.shape), dtype=np.float32)
        np.negative(r_squared, out=r_squared)
        np.log1p(r_squared, out=r_squared)
        r_squared *= minus_two_var
        cos_t *= np.float32(2 * np.pi)
        np.cos(cos_t, out=cos_t)
        intensity = part.astype(np.float32)
        cross = np.sqrt(r_squared)
        cross *= cos_t
        cross *= intensity
        cross *= np.float32(2)
        r_squared += cross
        intensity *= intensity
        r_squared += intensity
        np.maximum(r_squared, 0, out=r_squared)  # a float32 rounding below 0 where I + n1 ~ 0 and n2 ~ 0
        out[start:start + block] = round_to_uint8(np.sqrt(r_squared, out=r_squared))
    return out.reshape(img.shape)


# OpenCV's YCrCb <-> RGB (ITU-R BT.601, 8-bit): R = Y + 1.403 (Cr - 128), G = Y - 0.714 (Cr - 128) - 0.344 (Cb - 128),
# B = Y + 1.773 (Cb - 128). Noise added to (Cb, Cr) therefore moves (B, G, R) by this matrix times (n_cb, n_cr),
# and noise added to Y moves B, G and R by the same amount.
_CBCR_TO_BGR = np.float32([[1.773, 0.0],
                           [-0.344, -0.714],
                           [0.0, 1.403]])


@image_op
def gaussian_noise_y(img: np.ndarray, sigma: float, *, rng: np.random.Generator,
                     channel_order: str = 'bgr') -> np.ndarray:
    """Additive Gaussian noise on luma [Y+N]: ``Y' = Y + n``, ``n ~ N(0, sigma^2)`` per pixel, CbCr kept.

    Converting to YCbCr, adding ``n`` to Y and converting back equals adding ``n`` to each of B, G and R (the
    inverse transform has coefficient 1 on Y in every channel), which is what is computed. Grayscale images are
    their own luma. ``channel_order`` is accepted for symmetry with :func:`gaussian_noise_cbcr`; Y noise does not
    depend on it.
    """
    noise = standard_normal(rng, img.shape[:2])
    noise *= np.float32(sigma)
    if not _is_color(img):
        return cv2.add(img, noise, dtype=cv2.CV_8U)
    # cv2.add rounds to nearest and saturates to uint8 in one pass per channel
    return cv2.merge([cv2.add(plane, noise, dtype=cv2.CV_8U) for plane in cv2.split(img)])


@image_op
def gaussian_noise_cbcr(img: np.ndarray, sigma: float, *, rng: np.random.Generator,
                        channel_order: str = 'bgr') -> np.ndarray:
    """Additive Gaussian noise on chroma [CC+N]: ``Cb' = Cb + n_b``, ``Cr' = Cr + n_r``, ``n ~ N(0, sigma^2)``, Y kept.

    Computed directly in the image's colour space through the YCbCr -> BGR matrix (see ``_CBCR_TO_BGR``), which is
    why the channel order matters. A grayscale image has no chroma and is returned unchanged (as a copy).
    """
    if not _is_color(img):
        return img.copy()
    noise_cb, noise_cr = standard_normal(rng, (2, *img.shape[:2]))
    noise_cb *= np.float32(sigma)
    noise_cr *= np.float32(sigma)
    planes = _bgr_planes(img, channel_order)
    (b_cb, _), (g_cb, g_cr), (_, r_cr) = _CBCR_TO_BGR.tolist()
    b = cv2.addWeighted(planes[0], 1.0, noise_cb, b_cb, 0.0, dtype=cv2.CV_8U)
    g = cv2.addWeighted(planes[1], 1.0, cv2.addWeighted(noise_cb, g_cb, noise_cr, g_cr, 0.0), 1.0, 0.0,
                        dtype=cv2.CV_8U)
    r = cv2.addWeighted(planes[2], 1.0, noise_cr, r_cr, 0.0, dtype=cv2.CV_8U)
    return _merge_bgr([b, g, r], channel_order)


# --------------------------------------------------------------------------------------------------- occlusion
_TEXT_CHARS = np.array(list(string.ascii_letters + string.digits))
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX)
_FONT_PX_AT_SCALE_1 = 22  # cap height of the Hershey fonts at fontScale=1


@image_op
def inpainting(img: np.ndarray, num_strings: int, *, rng: np.random.Generator,
               text_height: tuple = (0.05, 0.12), alpha: tuple = (0.5, 0.9),
               length: tuple = (4, 12), channel_order: str = 'bgr') -> np.ndarray:
    """Inpainting [Inp.]: ``num_strings`` random strings drawn with random transparency.

    Each string: ``length`` random letters/digits, a random Hershey font, cap height ``U(text_height) * min(H, W)``
    px, stroke width ~ 1/8 of the height, a random colour, a random position (it may run off the border), and is
    alpha-blended, ``I' = a T + (1 - a) I`` on the text's pixels with ``a ~ U(alpha)``. Only each string's
    bounding box is touched, so the cost scales with the text area, not the image.
    """
    out = img.copy()
    h, w = out.shape[:2]
    color_img = _is_color(out)
    for _ in range(int(num_strings)):
        n_chars = int(rng.integers(length[0], length[1] + 1))
        text = ''.join(rng.choice(_TEXT_CHARS, n_chars))
        font = _FONTS[int(rng.integers(len(_FONTS)))]
        height_px = rng.uniform(*text_height) * min(h, w)
        scale = max(height_px / _FONT_PX_AT_SCALE_1, 0.1)
        thickness = max(1, int(round(height_px / 8)))
        color = rng.integers(0, 256, 3 if color_img else 1)  # B, G, R
        if color_img and channel_order == 'rgb':
            color = color[::-1]
        a = float(rng.uniform(*alpha))
        (tw, th), baseline = cv2.getTextSize(text, font, scale, thickness)
        # the origin is the baseline's left end; let up to a quarter of the string leave the image
        x = int(rng.integers(-tw // 4, max(w - 3 * tw // 4, -tw // 4 + 1)))
        y = int(rng.integers(th - th // 4, max(h + baseline + th // 4, th - th // 4 + 1)))
        x0, y0 = max(x - thickness, 0), max(y - th - thickness, 0)
        x1, y1 = min(x + tw + thickness, w), min(y + baseline + thickness, h)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = out[y0:y1, x0:x1]
        layer = roi.copy()
        cv2.putText(layer, text, (x - x0, y - y0), font, scale, [int(c) for c in color], thickness, cv2.LINE_AA)
        # where the layer equals the roi the blend returns the roi itself, so only text pixels change
        out[y0:y1, x0:x1] = cv2.addWeighted(layer, a, roi, 1.0 - a, 0.0)
    return out


@image_op
def occlude_salient_clusters(img: np.ndarray, saliency: np.ndarray, num_clusters: int,
                             mask_size: float) -> np.ndarray:
    """Targeted occlusion [Occ.]: black squares over the ``num_clusters`` most salient clusters of pixels.

    ``saliency`` is an HxW map (e.g. ``max_c |d score_gt / d pixel|``, see
    :mod:`featquant_mmdet.distortions.occlusion`). A mask is a square of side ``s = mask_size * sqrt(H W)``; the
    saliency a mask centred at ``p`` would cover, ``C(p) = sum_{|q - p|_inf <= s/2} S(q)``, is one box filter. Masks
    are placed greedily at the maximum of ``C``, each time excluding the centres whose square would overlap the
    ones already placed, so each mask covers a different cluster. Deterministic given the map.
    """
    saliency = np.asarray(saliency)
    if saliency.shape != img.shape[:2]:
        raise ValueError(f'occlude_salient_clusters: saliency map of shape {saliency.shape} does not match the '
                         f'image size {img.shape[:2]}')
    if not np.all(np.isfinite(saliency)):
        raise ValueError('occlude_salient_clusters: the saliency map has NaN or infinite values')
    h, w = img.shape[:2]
    side = max(1, int(round(mask_size * np.sqrt(h * w))))
    covered = cv2.boxFilter(saliency.astype(np.float32), -1, (side, side), normalize=False,
                            borderType=cv2.BORDER_CONSTANT)
    out = img.copy()
    for _ in range(int(num_clusters)):
        y, x = np.unravel_index(int(np.argmax(covered)), covered.shape)
        if not np.isfinite(covered[y, x]):
            break  # no room left for another mask
        y0, x0 = max(y - side // 2, 0), max(x - side // 2, 0)
        out[y0:y + side - side // 2, x0:x + side - side // 2] = 0
        # a centre closer than one side to this one would make its square overlap this square
        covered[max(y - side + 1, 0):y + side, max(x - side + 1, 0):x + side] = -np.inf
    return out
