"""The SciPy mappings of docs/scipy.rst, over kernel sizes, modes and origins.

The page's doctests (run by test_docs.py) show each mapping once; here each
one is checked over odd and even kernels, every ndimage mode pyconv maps,
every valid ``origin``, 1-D and 2-D, batches and the resampling strides,
on every backend.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage, signal

import pyconv

from helpers import assert_close

KS = [1, 2, 3, 4, 5, 8]

#: ndimage mode -> (pyconv padding_mode or None, np.pad mode for the explicit pad)
MODES = {
    "constant": ("zeros", "constant"),
    "grid-constant": ("zeros", "constant"),
    "nearest": ("replicate", "edge"),
    "mirror": ("reflect", "reflect"),
    "wrap": ("circular", "wrap"),
    "grid-wrap": ("circular", "wrap"),
    "reflect": (None, "symmetric"),
    "grid-mirror": (None, "symmetric"),
}


def corr(x, h, backend, **kwargs):
    return pyconv.conv1d(x[None, None], h[None, None], backend=backend, **kwargs)[0, 0]


@pytest.fixture
def x(rng):
    return rng.standard_normal(23)


@pytest.mark.parametrize("k", KS)
def test_signal_correlate_and_convolve(k, x, rng, backend):
    h = rng.standard_normal(k)
    n = len(x)
    assert_close(corr(x, h, backend), signal.correlate(x, h, "valid"), np.float64, "valid")
    assert_close(corr(x, h, backend, padding="valid"), signal.correlate(x, h, "valid"),
                 np.float64, "'valid'")
    assert_close(corr(x, h, backend, padding=k - 1), signal.correlate(x, h, "full"),
                 np.float64, "full")
    same = signal.correlate(x, h, "same")
    assert_close(corr(x, h, backend, padding=k // 2)[:n], same, np.float64, "same, K//2")
    torch_same = corr(x, h, backend, padding="same")
    if k % 2:
        assert_close(torch_same, same, np.float64, "same, odd K")
    else:  # one sample apart
        assert not np.allclose(torch_same, same)
        assert_close(torch_same[:-1], same[1:], np.float64, "same, even K, shifted")
    flipped = h[::-1]
    for mode, padding in (("valid", 0), ("full", k - 1)):
        assert_close(corr(x, flipped, backend, padding=padding), signal.convolve(x, h, mode),
                     np.float64, f"convolve {mode}")
    assert_close(corr(x, flipped, backend, padding=k // 2)[:n], signal.convolve(x, h, "same"),
                 np.float64, "convolve same")


@pytest.mark.parametrize("k", [2, 3])
def test_signal_correlate_conjugates(k, x, rng, backend):
    h = rng.standard_normal(k) + 1j * rng.standard_normal(k)
    xc = x + 1j * rng.standard_normal(len(x))
    assert_close(corr(xc, np.conj(h), backend), signal.correlate(xc, h, "valid"),
                 np.complex128, "conjugated kernel")
    assert not np.allclose(corr(xc, h, backend), signal.correlate(xc, h, "valid"))


@pytest.mark.parametrize("kshape", [(3, 3), (2, 3), (4, 4), (1, 5)])
def test_signal_2d(kshape, rng, backend):
    img = rng.standard_normal((9, 10))
    k = rng.standard_normal(kshape)

    def corr2(a, w, **kwargs):
        return pyconv.conv2d(a[None, None], w[None, None], backend=backend, **kwargs)[0, 0]

    assert_close(corr2(img, k), signal.correlate(img, k, "valid"), np.float64, "valid 2-D")
    full = tuple(s - 1 for s in kshape)
    assert_close(corr2(img, k, padding=full), signal.correlate(img, k, "full"), np.float64,
                 "full 2-D")
    assert_close(corr2(img, np.ascontiguousarray(k[::-1, ::-1]), padding=full),
                 signal.convolve(img, k, "full"), np.float64, "convolve full 2-D")


def _origins(k):
    return range(-(k // 2), (k - 1) // 2 + 1)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("mode", list(MODES))
def test_ndimage_correlate1d(mode, k, x, rng, backend):
    h = rng.standard_normal(k)
    pmode, npmode = MODES[mode]
    for origin in _origins(k):
        expected = ndimage.correlate1d(x, h, mode=mode, origin=origin)
        left = k // 2 + origin
        padded = np.pad(x, (left, k - 1 - left), mode=npmode)
        assert_close(corr(padded, h, backend), expected, np.float64,
                     f"explicit pad, origin={origin}")
        same_origin = -1 if k % 2 == 0 else 0
        if pmode is not None:
            same = corr(x, h, backend, padding="same", padding_mode=pmode)
            if origin == same_origin:
                assert_close(same, expected, np.float64, f"'same', origin={origin}")
            elif k > 1:
                assert not np.allclose(same, expected), origin
    if pmode is not None:
        expected = ndimage.convolve1d(x, h, mode=mode)
        assert_close(corr(x, h[::-1], backend, padding="same", padding_mode=pmode), expected,
                     np.float64, "convolve1d")


def test_ndimage_cval(x, rng, backend):
    h = rng.standard_normal(5)
    expected = ndimage.correlate1d(x, h, mode="constant", cval=2.5)
    padded = np.pad(x, 2, mode="constant", constant_values=2.5)
    assert_close(corr(padded, h, backend), expected, np.float64, "cval")


@pytest.mark.parametrize("kshape", [(3, 3), (4, 3), (4, 4), (2, 5)])
@pytest.mark.parametrize("mode", ["constant", "nearest", "mirror", "wrap"])
def test_ndimage_2d(mode, kshape, rng, backend):
    img = rng.standard_normal((9, 10))
    k = rng.standard_normal(kshape)
    pmode = MODES[mode][0]

    def same(w):
        return pyconv.conv2d(img[None, None], np.ascontiguousarray(w)[None, None],
                             padding="same", padding_mode=pmode, backend=backend)[0, 0]

    origin = tuple(-1 if s % 2 == 0 else 0 for s in kshape)
    assert_close(same(k), ndimage.correlate(img, k, mode=mode, origin=origin), np.float64,
                 "correlate 2-D")
    assert_close(same(k[::-1, ::-1]), ndimage.convolve(img, k, mode=mode), np.float64,
                 "convolve 2-D")


def test_ndimage_batch_along_an_axis(rng, backend):
    """correlate1d(axis=-1) of a batch == conv1d of (B, 1, L); a bank gives channels."""
    xs = rng.standard_normal((5, 40)).astype(np.float32)
    bank = rng.standard_normal((3, 7)).astype(np.float32)
    out = pyconv.conv1d(xs[:, None], bank[:, None], padding="same", backend=backend)
    assert out.shape == (5, 3, 40)
    for f, h in enumerate(bank):
        assert_close(out[:, f], ndimage.correlate1d(xs, h, axis=-1, mode="constant"),
                     np.float32, f"filter {f}")
    imgs = rng.standard_normal((4, 8, 9))
    k = rng.standard_normal((3, 3))
    got = pyconv.conv2d(imgs[:, None], k[None, None], padding="same", padding_mode="replicate",
                        backend=backend)[:, 0]
    assert_close(got, ndimage.correlate(imgs, k[None], mode="nearest"), np.float64,
                 "batch of images")


@pytest.mark.parametrize("k,up,down", list(itertools.product([3, 4, 7], [1, 2, 3], [1, 2, 3])))
def test_upfirdn(k, up, down, x, rng, backend):
    h = rng.standard_normal(k)
    expected = signal.upfirdn(h, x, up=up, down=down)
    interpolated = pyconv.conv_transpose1d(x[None, None], h[None, None], stride=up,
                                           backend=backend)[0, 0]
    assert_close(interpolated[::down], expected, np.float64, "up, then every down-th")
    if up == 1:
        assert_close(corr(x, h[::-1], backend, padding=k - 1, stride=down), expected,
                     np.float64, "strided full correlation")
