"""Convolution of uint8 images with the blur kernels of :mod:`.functional`: the kernels themselves (a DDA line
for motion blur, an anti-aliased disk for defocus) and a convolution that switches from OpenCV's direct filter to a
packed real DFT for large kernels (the same result, faster).

Split out of :mod:`.functional` (which re-exports the public names) to keep that module to the distortions' math.
"""
import functools
from typing import Optional

import cv2
import numpy as np

# OpenCV's filter2D switches to a DFT for kernels >= 11x11, but runs it per channel on complex spectra, which is
# slower here than a packed real DFT; below this size the direct convolution is the faster one.
FFT_MIN_KERNEL = 11
# below this many pixels the direct convolution is fast whatever the kernel, and avoids DFT bookkeeping
FFT_MIN_PIXELS = 96 * 96


def round_to_uint8(x: np.ndarray) -> np.ndarray:
    """Round a float array to the nearest integer and saturate to uint8 (in place on ``x``)."""
    np.add(x, 0.5, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


def motion_blur_kernel(size: int, angle: float) -> np.ndarray:
    """Normalised line kernel across a ``size`` x ``size`` box through its centre at ``angle`` degrees (CCW).

    One tap of weight ``1 / size`` per pixel step along the line's major axis, on the pixel nearest to the line on
    the minor axis (a DDA line, as ``cv2.line`` draws it): ``size`` non-zero taps, which is what OpenCV's direct
    ``filter2D`` pays for (an anti-aliased line would double them). Point-symmetric about the centre, so
    convolution equals correlation.
    """
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f'motion blur kernel size must be a positive odd integer, got {size}')
    center = (size - 1) // 2
    theta = np.deg2rad(angle)
    dx, dy = np.cos(theta), -np.sin(theta)  # image rows grow downwards
    offsets = np.arange(size) - center
    slope = dy / dx if abs(dx) >= abs(dy) else dx / dy
    # rounding half away from zero keeps the taps point-symmetric: minor(-t) = -minor(t)
    minor = center + np.sign(offsets * slope) * np.floor(np.abs(offsets * slope) + 0.5)
    kernel = np.zeros((size, size), np.float32)
    if abs(dx) >= abs(dy):  # mostly horizontal: one tap per column
        kernel[minor.astype(np.int64), offsets + center] = 1.0 / size
    else:  # mostly vertical: one tap per row
        kernel[offsets + center, minor.astype(np.int64)] = 1.0 / size
    return kernel


@functools.lru_cache(maxsize=32)
def disk_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased disk (defocus point-spread function) of ``radius`` px.

    ``K(i, j)`` = fraction of the pixel's area (8x8 supersampling) inside ``x^2 + y^2 <= r^2``, ``K /= sum(K)``.
    Cached per radius; the returned array is read-only.
    """
    radius = float(radius)
    if radius <= 0:
        raise ValueError(f'defocus radius must be positive, got {radius}')
    half = int(np.ceil(radius - 0.5))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    coords = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius ** 2
    size = 2 * half + 1
    kernel = inside.reshape(size, 8, size, 8).mean(axis=(1, 3))
    kernel = (kernel / kernel.sum()).astype(np.float32)
    kernel.setflags(write=False)
    return kernel


def _kernel_spectrum(kernel: np.ndarray, shape: tuple) -> np.ndarray:
    """Packed (CCS) DFT of ``kernel`` zero-padded to ``shape`` with its centre moved to the origin."""
    k = kernel.shape[0]
    r = k // 2
    padded = np.zeros(shape, np.float32)
    padded[:k, :k] = kernel
    padded = np.roll(padded, (-r, -r), axis=(0, 1))
    return cv2.dft(padded)


@functools.lru_cache(maxsize=16)
def disk_spectrum(radius: float, shape: tuple) -> np.ndarray:
    spectrum = _kernel_spectrum(disk_kernel(radius), shape)
    spectrum.setflags(write=False)
    return spectrum


def fft_shape(img: np.ndarray, r: int) -> tuple:
    return (cv2.getOptimalDFTSize(img.shape[0] + 2 * r), cv2.getOptimalDFTSize(img.shape[1] + 2 * r))


def convolve(img: np.ndarray, kernel: np.ndarray, spectrum: Optional[np.ndarray] = None) -> np.ndarray:
    """``img * kernel`` (point-symmetric odd square kernel) with reflected borders, rounded to uint8.

    Small kernels or images: ``cv2.filter2D``. Large kernels: the image is padded by the kernel radius (reflect-101),
    zero-padded to a fast DFT size, multiplied with the kernel's packed real spectrum and transformed back; the
    circular wrap-around only touches the padding, so the result equals the direct convolution.
    """
    k = kernel.shape[0]
    h, w = img.shape[:2]
    if k < FFT_MIN_KERNEL or h * w < FFT_MIN_PIXELS:
        return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    r = k // 2
    shape = fft_shape(img, r)
    if spectrum is None:
        spectrum = _kernel_spectrum(kernel, shape)
    padded = cv2.copyMakeBorder(img, r, r, r, r, cv2.BORDER_REFLECT_101)
    # one set of buffers for all planes (OpenCV writes into dst/c in place)
    buffer, spec, product, res = (np.zeros(shape, np.float32) for _ in range(4))
    out = []
    for plane in (cv2.split(padded) if padded.ndim == 3 else [padded]):
        buffer[:h + 2 * r, :w + 2 * r] = plane
        spec = cv2.dft(buffer, dst=spec)
        product = cv2.mulSpectrums(spec, spectrum, 0, c=product)
        res = cv2.idft(product, dst=res, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
        out.append(round_to_uint8(res[r:r + h, r:r + w]))
    return cv2.merge(out) if len(out) > 1 else out[0]
