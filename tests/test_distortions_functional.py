"""The distortion functions and the strength table, on real photographs from skimage.data."""
import cv2
import numpy as np
import pytest

from featquant_mmdet.distortions import functional as F
from featquant_mmdet.distortions import levels as L


@pytest.fixture(scope='module')
def photos():
    """Three real photographs, BGR, 160 px wide."""
    images = L.calibration_images(160)
    return {name: images[name] for name in ('astronaut', 'coffee', 'chelsea')}


@pytest.fixture(scope='module')
def photo(photos):
    return photos['coffee']


def _saliency_for(img, name, seed=0):
    if name not in L.NEEDS_SALIENCY:
        return None
    return np.random.default_rng(seed).random(img.shape[:2], dtype=np.float32)


def _run(img, name, level, seed=0, **kwargs):
    return L.apply_distortion(img, name, level, np.random.default_rng(seed), saliency=_saliency_for(img, name),
                              **kwargs)


# --------------------------------------------------------------------------------------------- every type x level
@pytest.mark.parametrize('name', L.ALL_NAMES)
def test_every_level_keeps_shape_and_dtype_and_leaves_the_input_alone(photo, name):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    for img in (photo, gray, gray[:, :, None]):
        before = img.copy()
        for level in L.valid_levels(name):
            out = _run(img, name, level)
            assert out.shape == img.shape and out.dtype == np.uint8, (name, level, img.shape)
            np.testing.assert_array_equal(img, before)  # the input is never written to
            if level == 0:
                np.testing.assert_array_equal(out, img)


def test_strength_grows_with_level_on_real_photographs(photos):
    """The calibration criterion: mean 1 - SSIM rises and PSNR falls from level 1 to 4 for every type."""
    table = L.calibration_table(photos, L.DISTORTION_NAMES)
    for name, rows in table.items():
        ssim_loss = [r['one_minus_ssim'] for r in rows]
        psnr = [r['psnr'] for r in rows]
        assert len(rows) == L.NUM_LEVELS
        assert all(a < b for a, b in zip(ssim_loss, ssim_loss[1:])), (name, ssim_loss)
        assert all(a > b for a, b in zip(psnr, psnr[1:])), (name, psnr)
        assert ssim_loss[0] > 0.005, (name, ssim_loss)  # level 1 does something


@pytest.mark.parametrize('document', ['docs/distortions.md'])
def test_the_documented_strength_table_is_the_one_in_the_code(document):
    import os.path as osp
    doc = open(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), document)).read()
    table = doc.split('<!-- parameter table: begin -->\n')[1].split('\n<!-- parameter table: end -->')[0]
    assert table == L.parameter_table_markdown()


def test_mixtures_are_their_components_in_order(photo):
    rng = np.random.default_rng(3)
    expected = photo
    for (part, level), child in zip(L.MIXTURES['mix_heavy'], np.random.default_rng(3).spawn(5)):
        expected = L.apply_distortion(expected, part, level, child)
    np.testing.assert_array_equal(L.mix_heavy(photo, rng), expected)
    heavy = L.strength(photo, L.mix_heavy(photo, np.random.default_rng(0)))
    minor = L.strength(photo, L.mix_minor(photo, np.random.default_rng(0)))
    assert heavy['one_minus_ssim'] > minor['one_minus_ssim'] and heavy['psnr'] < minor['psnr']
    assert [p for p, _ in L.MIXTURES['mix']] == ['gaussian_noise_cbcr', 'salt_and_pepper', 'inpainting', 'jpeg']


@pytest.mark.parametrize('name', [n for n in L.ALL_NAMES if n not in ('defocus_blur', 'jpeg', 'jpeg2000',
                                                                        'targeted_occlusion')])
def test_random_draws_come_only_from_the_generator(photo, name):
    level = L.valid_levels(name)[-1]
    a, b = _run(photo, name, level, seed=7), _run(photo, name, level, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _run(photo, name, level, seed=8)), name


# ------------------------------------------------------------------------------------------- individual functions
def test_motion_blur_kernel_is_a_normalised_symmetric_line():
    for size in (1, 3, 9, 23):
        for angle in np.linspace(0, 180, 13):
            k = F.motion_blur_kernel(size, angle)
            assert k.shape == (size, size) and np.isclose(k.sum(), 1) and (k > 0).sum() == size
            np.testing.assert_array_equal(k, k[::-1, ::-1])
    np.testing.assert_array_equal(np.nonzero(F.motion_blur_kernel(7, 0))[0], [3] * 7)  # horizontal
    np.testing.assert_array_equal(np.nonzero(F.motion_blur_kernel(7, 90))[1], [3] * 7)  # vertical
    diagonal = F.motion_blur_kernel(7, 45)
    assert diagonal[6, 0] > 0 and diagonal[0, 6] > 0  # 45 deg CCW: bottom-left to top-right
    with pytest.raises(ValueError, match='odd'):
        F.motion_blur_kernel(4, 0)


def test_fft_convolution_equals_the_direct_one(photo):
    """Large kernels go through the packed-DFT path; it must match cv2.filter2D up to rounding."""
    for kernel in (F.motion_blur_kernel(23, 33), F.disk_kernel(8)):
        assert kernel.shape[0] >= F.FFT_MIN_KERNEL and photo.size // 3 >= F.FFT_MIN_PIXELS
        direct = cv2.filter2D(photo, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        assert np.abs(F.convolve(photo, kernel).astype(int) - direct).max() <= 1


def test_defocus_kernel_is_a_disk():
    k = F.disk_kernel(5)
    assert k.shape == (11, 11) and np.isclose(k.sum(), 1)
    assert k[5, 5] == k.max() and k[0, 0] == 0 and k[5, 0] > 0  # inside the radius on the axis, not the corner
    with pytest.raises(ValueError, match='positive'):
        F.disk_kernel(0)


@pytest.mark.parametrize('func, ext, flag', [(F.jpeg, '.jpg', cv2.IMWRITE_JPEG_QUALITY),
                                              (F.jpeg2000, '.jp2', cv2.IMWRITE_JPEG2000_COMPRESSION_X1000)])
def test_codecs_are_the_real_round_trip_in_bgr(photo, func, ext, flag):
    value = 10
    out = func(photo, value)
    expected = cv2.imdecode(cv2.imencode(ext, photo, [flag, value])[1], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - photo).mean() > 1  # lossy
    rgb = np.ascontiguousarray(photo[..., ::-1])
    np.testing.assert_array_equal(func(rgb, value, channel_order='rgb'), expected[..., ::-1])


def test_chromatic_aberration_shifts_red_and_blue_in_opposite_directions(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    img = cv2.merge([gray, gray, gray])
    out = F.chromatic_aberration(img, 4.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out[..., 1], gray)
    g = gray.astype(np.float64)
    (bx, by), _ = cv2.phaseCorrelate(g, out[..., 0].astype(np.float64))
    (rx, ry), _ = cv2.phaseCorrelate(g, out[..., 2].astype(np.float64))
    assert np.hypot(bx, by) == pytest.approx(4.0, abs=0.5) and np.hypot(rx, ry) == pytest.approx(4.0, abs=0.5)
    assert bx == pytest.approx(-rx, abs=0.5) and by == pytest.approx(-ry, abs=0.5)


def test_salt_and_pepper_sets_the_given_fraction_of_whole_pixels(photo):
    out = F.salt_and_pepper(photo, 0.1, rng=np.random.default_rng(0))
    changed = np.any(out != photo, axis=2)
    black, white = np.all(out == 0, axis=2), np.all(out == 255, axis=2)
    assert np.all(black | white | ~changed)  # a hit pixel is black or white in all channels
    assert (black | white).mean() == pytest.approx(0.1, abs=0.01)
    assert black.mean() == pytest.approx(white.mean(), abs=0.01)


def test_fft_noise_is_the_fourier_domain_recipe_and_rician(photo):
    """|IDFT(DFT(I) + complex Gaussian)| computed literally with numpy's FFT has the same statistics as ours."""
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    sigma, (h, w) = 12.0, gray.shape
    rng = np.random.default_rng(1)
    spectrum_noise = sigma * np.sqrt(h * w) * (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w)))
    literal = np.clip(np.rint(np.abs(np.fft.ifft2(np.fft.fft2(gray) + spectrum_noise))), 0, 255) - gray
    ours = F.fft_noise(gray, sigma, rng=np.random.default_rng(0)).astype(float) - gray
    dark = gray < 25
    assert dark.sum() > 500
    assert ours.mean() == pytest.approx(literal.mean(), abs=0.3)
    assert ours.std() == pytest.approx(literal.std(), rel=0.03)
    assert ours[dark].mean() == pytest.approx(literal[dark].mean(), abs=0.6)
    assert ours[dark].mean() > 2  # the magnitude brightens dark pixels: not zero-mean Gaussian noise
    # on black, the result is Rayleigh: mean sigma sqrt(pi / 2), skewed to the right
    black = F.fft_noise(np.zeros((200, 200), np.uint8), 10, rng=np.random.default_rng(0)).astype(float)
    assert black.mean() == pytest.approx(10 * np.sqrt(np.pi / 2), abs=0.15)
    assert ((black - black.mean()) ** 3).mean() > 0


def test_box_muller_normals_are_standard_normal():
    z = F.standard_normal(np.random.default_rng(0), (300001, ))
    assert z.dtype == np.float32 and z.shape == (300001, )
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3) < 0.05  # Gaussian kurtosis


def _ycrcb_change(before, after, conversion):
    """std over pixels of the change in (Y, Cr, Cb)."""
    a = cv2.cvtColor(before, conversion).astype(float)
    b = cv2.cvtColor(after, conversion).astype(float)
    return (b - a).reshape(-1, 3).std(axis=0)


@pytest.mark.parametrize('order', ['bgr', 'rgb'])
def test_luma_noise_leaves_chroma_alone_and_chroma_noise_leaves_luma_alone(photo, order):
    # keep away from 0 and 255 so that saturation does not leak noise into the other components
    img = (photo.astype(np.float32) * 0.6 + 50).astype(np.uint8)
    conversion = cv2.COLOR_BGR2YCrCb
    if order == 'rgb':
        img, conversion = np.ascontiguousarray(img[..., ::-1]), cv2.COLOR_RGB2YCrCb
    sigma = 10.0
    y_noise = F.gaussian_noise_y(img, sigma, rng=np.random.default_rng(0), channel_order=order)
    dy, dcr, dcb = _ycrcb_change(img, y_noise, conversion)
    assert dy == pytest.approx(sigma, rel=0.1) and dcr < 1 and dcb < 1
    c_noise = F.gaussian_noise_cbcr(img, sigma, rng=np.random.default_rng(0), channel_order=order)
    dy, dcr, dcb = _ycrcb_change(img, c_noise, conversion)
    assert dy < 1 and dcr == pytest.approx(sigma, rel=0.1) and dcb == pytest.approx(sigma, rel=0.1)
    # the wrong channel order puts chroma noise into luma: the order argument matters
    wrong = 'rgb' if order == 'bgr' else 'bgr'
    swapped = F.gaussian_noise_cbcr(img, sigma, rng=np.random.default_rng(0), channel_order=wrong)
    assert _ycrcb_change(img, swapped, conversion)[0] > 3


def test_noise_on_grayscale(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    assert (F.gaussian_noise_y(gray, 10, rng=np.random.default_rng(0)).astype(float) - gray).std() > 8
    np.testing.assert_array_equal(F.gaussian_noise_cbcr(gray, 10, rng=np.random.default_rng(0)), gray)
    np.testing.assert_array_equal(F.chromatic_aberration(gray, 3, rng=np.random.default_rng(0)), gray)


def test_inpainting_only_touches_text_and_grows_with_level(photo):
    fractions = []
    for level in (1, 2, 3, 4):
        out = L.apply_distortion(photo, 'inpainting', level, np.random.default_rng(0))
        fractions.append(np.any(out != photo, axis=2).mean())
    assert 0 < fractions[0] < fractions[1] < fractions[2] < fractions[3] < 0.6


def test_occlusion_masks_the_most_salient_clusters_without_overlap():
    img = np.full((120, 160, 3), 200, np.uint8)
    saliency = np.zeros((120, 160), np.float32)
    saliency[20:30, 120:130] = 1.0  # strongest cluster
    saliency[90:100, 20:30] = 0.5  # second
    saliency[60, 80] = 0.2  # a lone pixel
    out = F.occlude_salient_clusters(img, saliency, num_clusters=2, mask_size=0.1)  # 14 px squares
    black = np.all(out == 0, axis=2)
    assert black[25, 125] and black[95, 25] and not black[60, 80]
    assert black.sum() == 2 * 14 * 14
    many = F.occlude_salient_clusters(img, saliency, num_clusters=200, mask_size=0.1)
    assert np.all(many == 0, axis=2).mean() > 0.5  # the greedy placement keeps tiling until no room is left


# ------------------------------------------------------------------------------------------------------ bad input
def test_images_smaller_than_a_kernel_work():
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 3), (2, 3, 3), (5, 4), (7, 1), (1, 9, 1)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        for name in L.ALL_NAMES:
            for level in L.valid_levels(name)[1:]:
                assert _run(img, name, level).shape == img.shape, (name, level, shape)


def test_non_contiguous_input_is_accepted(photo):
    view = photo[::2, ::-1]
    assert not view.flags.c_contiguous
    for name in ('motion_blur', 'ngrn', 'gaussian_noise_cbcr', 'jpeg'):
        np.testing.assert_array_equal(_run(view, name, 2), _run(np.ascontiguousarray(view), name, 2))


@pytest.mark.parametrize('img, error, match', [
    (np.zeros((8, 8, 3), np.float32), TypeError, 'uint8'),
    (np.zeros((8, 8, 4), np.uint8), ValueError, 'RGBA'),
    (np.zeros((2, 8, 8, 3), np.uint8), ValueError, 'HxW, HxWx1 or HxWx3'),
    (np.zeros((0, 8, 3), np.uint8), ValueError, 'empty'),
    ([[0, 1], [2, 3]], TypeError, 'numpy.ndarray'),
])
def test_bad_images_raise_clear_errors(img, error, match):
    with pytest.raises(error, match=match):
        L.apply_distortion(img, 'motion_blur', 1, np.random.default_rng(0))
    with pytest.raises(error, match=match):
        F.salt_and_pepper(img, 0.1, rng=np.random.default_rng(0))


def test_bad_names_levels_and_arguments_raise_clear_errors(photo):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match='unknown distortion .*motion_blur.*mix_heavy'):
        L.apply_distortion(photo, 'blur', 1, rng)
    for level in (5, -1, 1.5, '2', True):
        with pytest.raises(ValueError, match='valid levels: 0, 1, 2, 3, 4'):
            L.apply_distortion(photo, 'jpeg', level, rng)
    with pytest.raises(ValueError, match='needs a level'):
        L.apply_distortion(photo, 'jpeg', None, rng)
    with pytest.raises(ValueError, match='fixed strength'):
        L.apply_distortion(photo, 'mix_heavy', 3, rng)
    assert L.resolve_level('mix_heavy', None) == 1
    with pytest.raises(TypeError, match='numpy.random.Generator'):
        L.apply_distortion(photo, 'ngrn', 1, 0)
    with pytest.raises(TypeError, match='numpy.random.Generator'):
        F.motion_blur(photo, 5, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match='channel_order'):
        F.gaussian_noise_cbcr(photo, 5, rng=rng, channel_order='yuv')
    with pytest.raises(ValueError, match='saliency'):
        L.apply_distortion(photo, 'targeted_occlusion', 1, rng)
    with pytest.raises(ValueError, match='does not match'):
        F.occlude_salient_clusters(photo, np.zeros((3, 3)), 1, 0.1)
    with pytest.raises(ValueError, match='quality'):
        F.jpeg(photo, 101)
