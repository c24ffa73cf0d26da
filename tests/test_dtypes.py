"""Dtypes (docs/semantics.rst, "Dtypes"): NumPy promotion, ints/bools -> float64, float16 via
float32, complex via the shared real decomposition (checked against a direct
complex computation), and TypeError for everything else."""

from __future__ import annotations

import numpy as np
import pytest

import pyconv
from pyconv import grad as pgrad

from helpers import assert_close, np_conv, np_conv_transpose, randn


GEOMS = [
    (1, (2, 4, 9), (6, 2, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    (2, (1, 3, 6, 5), (3, 1, 2, 3), dict(stride=(1, 2), padding=(1, 0), groups=3)),
    (3, (1, 2, 4, 3, 5), (2, 2, 2, 1, 3), dict(stride=2, padding=1, dilation=(1, 1, 2))),
]
TGEOMS = [
    (1, (2, 4, 5), (4, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2, dilation=2)),
    (2, (1, 3, 4, 3), (3, 1, 2, 3), dict(stride=(3, 2), padding=(0, 1), output_padding=(2, 1),
                                         groups=3)),
    (3, (1, 2, 3, 2, 3), (2, 2, 2, 2, 1), dict(stride=2, padding=(1, 0, 0), dilation=2)),
]


@pytest.mark.parametrize("nd,xs,ws,kw", GEOMS, ids=["1d", "2d", "3d"])
def test_numpy_oracle_agrees_with_reference(nd, xs, ws, kw, rng):
    """The oracle itself is right: it matches the reference backend on real data."""
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    assert_close(getattr(pyconv, f"conv{nd}d")(x, w, b, **kw, backend="reference"),
                 np_conv(x, w, b, **kw), np.float64, "oracle conv")


@pytest.mark.parametrize("dt", ["complex64", "complex128"])
@pytest.mark.parametrize("nd,xs,ws,kw", GEOMS, ids=["1d", "2d", "3d"])
def test_complex_conv_vs_direct(nd, xs, ws, kw, dt, backend, rng):
    x, w, b = randn(rng, xs, dt), randn(rng, ws, dt), randn(rng, (ws[0],), dt)
    y = getattr(pyconv, f"conv{nd}d")(x, w, b, **kw, backend=backend)
    assert y.dtype == np.dtype(dt)
    assert_close(y, np_conv(x, w, b, **kw), dt, f"complex conv{nd}d")
    # no conjugation of the weight: a purely imaginary weight gives i * conv(x, |w|)
    y2 = getattr(pyconv, f"conv{nd}d")(x, 1j * w.real, **kw, backend=backend)
    assert_close(y2, 1j * np_conv(x, w.real, **kw), dt, "no conjugation")


@pytest.mark.parametrize("dt", ["complex64", "complex128"])
@pytest.mark.parametrize("nd,xs,ws,kw", TGEOMS, ids=["1d", "2d", "3d"])
def test_complex_conv_transpose_vs_direct(nd, xs, ws, kw, dt, backend, rng):
    x, w = randn(rng, xs, dt), randn(rng, ws, dt)
    b = randn(rng, (ws[1] * kw.get("groups", 1),), dt)
    y = getattr(pyconv, f"conv_transpose{nd}d")(x, w, b, **kw, backend=backend)
    assert y.dtype == np.dtype(dt)
    assert_close(y, np_conv_transpose(x, w, b, **kw), dt, f"complex conv_transpose{nd}d")


def test_real_oracle_transposed(rng):
    for nd, xs, ws, kw in TGEOMS:
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        assert_close(getattr(pyconv, f"conv_transpose{nd}d")(x, w, **kw, backend="reference"),
                     np_conv_transpose(x, w, **kw), np.float64, f"oracle tconv{nd}d")


@pytest.mark.parametrize("combo", ["complex-real", "real-complex", "complex-realbias",
                                   "real-real-complexbias"])
def test_mixed_complex_real(combo, backend, rng):
    x = rng.standard_normal((2, 2, 7))
    w = rng.standard_normal((3, 2, 3))
    b = rng.standard_normal(3)
    if combo == "complex-real":
        x = x + 1j * rng.standard_normal(x.shape)
    elif combo == "real-complex":
        w = w + 1j * rng.standard_normal(w.shape)
    elif combo == "complex-realbias":
        x = (x + 1j * rng.standard_normal(x.shape)).astype(np.complex64)
        w = w.astype(np.float32)
        b = b.astype(np.float32)
    else:
        b = b + 1j
    y = pyconv.conv1d(x, w, b, backend=backend)
    assert y.dtype == np.result_type(x, w, b)
    assert_close(y, np_conv(x, w, b), y.dtype, combo)


def test_complex_modules_and_grad(backend, rng):
    m = pyconv.Conv2d(2, 3, 3, padding=1, dtype=np.complex128, rng=0)
    x = randn(rng, (1, 2, 5, 4), "complex128")
    with pyconv.use_backend(backend):
        y = m(x)
    assert_close(y, np_conv(x, m.weight, m.bias, padding=1), "complex128", "complex module")
    gy = randn(rng, y.shape, "complex128")
    gi = pgrad.conv2d_input(x.shape, m.weight, gy, padding=1, backend=backend)
    # conjugate convention: conv_transpose(gy, conj(w))
    assert_close(gi, np_conv_transpose(gy, np.conj(m.weight), padding=1), "complex128",
                 "complex input grad")


# --------------------------------------------------------------------------
# promotion

DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64",
          "complex64", "complex128"]


def expected_dtype(*dts):
    r = np.result_type(*[np.dtype(d) for d in dts])
    return np.dtype(np.float64) if r.kind in "biu" else r


def _values(rng, shape, dt):
    dt = np.dtype(dt)
    if dt.kind == "b":
        return rng.random(shape) > 0.5
    if dt.kind in "iu":
        return rng.integers(0, 4, shape).astype(dt)
    return randn(rng, shape, dt)


@pytest.mark.parametrize("xdt,wdt", [(a, b) for a in DTYPES for b in DTYPES
                                     if DTYPES.index(a) <= DTYPES.index(b) or a == "float16"],
                         ids=lambda v: v)
def test_promotion_table(xdt, wdt, backend):
    rng = np.random.default_rng(len(xdt) * 31 + len(wdt))
    x = _values(rng, (1, 2, 6), xdt)
    w = _values(rng, (2, 2, 3), wdt)
    exp = expected_dtype(xdt, wdt)
    y = pyconv.conv1d(x, w, backend=backend)
    assert y.dtype == exp, f"{xdt} * {wdt}: {y.dtype} != {exp}"
    ref = np_conv(x.astype(np.complex128 if exp.kind == "c" else np.float64),
                  w.astype(np.complex128 if exp.kind == "c" else np.float64))
    assert_close(y, ref.astype(exp), exp, f"{xdt} * {wdt}")
    t = pyconv.conv_transpose1d(x, w, backend=backend)
    assert t.dtype == exp


@pytest.mark.parametrize("bdt", ["int64", "float16", "float64", "complex64"])
def test_bias_participates_in_promotion(bdt, backend, rng):
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    w = rng.standard_normal((2, 2, 3)).astype(np.float32)
    b = _values(rng, (2,), bdt)
    y = pyconv.conv1d(x, w, b, backend=backend)
    assert y.dtype == expected_dtype("float32", bdt)
    t = pyconv.conv_transpose1d(x, w, b, backend=backend)
    assert t.dtype == expected_dtype("float32", bdt)


def test_ints_computed_in_float64(backend):
    x = np.full((1, 1, 3), 2**40, np.int64)
    w = np.full((1, 1, 3), 2**20, np.int64)
    y = pyconv.conv1d(x, w, backend=backend)
    assert y.dtype == np.float64
    assert_close(y, np.array([[[3.0 * 2**60]]]), "float64")
    # the sum of products is exact here; the transform algorithms (a forced
    # Winograd path) round differently, so exactness is the exact paths' promise
    with pyconv.use_algorithms("exact"):
        assert pyconv.conv1d(x, w, backend=backend).item() == 3.0 * 2**60
    big = np.array([[[2**53 + 1, 0]]], np.int64)
    assert pyconv.conv1d(big, np.ones((1, 1, 1), np.int64), backend=backend).dtype == np.float64


# --------------------------------------------------------------------------
# float16

def test_float16_accumulates_in_float32(backend):
    """2048 + 1 - 2048 is 0 in float16 arithmetic but 1 with float32 accumulation."""
    x = np.array([[[2048.0, 1.0, -2048.0]]], np.float16)
    w = np.ones((1, 1, 3), np.float16)
    y = pyconv.conv1d(x, w, backend=backend)
    assert y.dtype == np.float16 and y.item() == 1.0
    t = pyconv.conv_transpose1d(x.reshape(1, 3, 1), np.ones((3, 1, 1), np.float16),
                                backend=backend)
    assert t.dtype == np.float16 and t.item() == 1.0


@pytest.mark.parametrize("nd,xs,ws,kw", GEOMS, ids=["1d", "2d", "3d"])
def test_float16_rounded_once(nd, xs, ws, kw, backend, rng):
    x, w = randn(rng, xs, "float16"), randn(rng, ws, "float16")
    y = getattr(pyconv, f"conv{nd}d")(x, w, **kw, backend=backend)
    exact = np_conv(x.astype(np.float64), w.astype(np.float64), **kw)
    assert y.dtype == np.float16
    # within one float16 rounding (half an ulp plus float32 accumulation noise)
    ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(y.astype(np.float64) - exact) <= ulp * 0.5 + 1e-5 * np.abs(exact)
                  + 1e-6)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_float16_overflow_is_inf(backend):
    x = np.full((1, 1, 2), 60000.0, np.float16)
    y = pyconv.conv1d(x, np.ones((1, 1, 2), np.float16), backend=backend)
    assert y.dtype == np.float16 and np.isinf(y).all()


# --------------------------------------------------------------------------
# invalid dtypes

BAD = [
    ("object", lambda: np.empty((1, 1, 4), object)),
    ("str", lambda: np.full((1, 1, 4), "a")),
    ("bytes", lambda: np.full((1, 1, 4), b"a")),
    ("datetime64", lambda: np.zeros((1, 1, 4), "datetime64[s]")),
    ("timedelta64", lambda: np.zeros((1, 1, 4), "timedelta64[s]")),
    ("void", lambda: np.zeros((1, 1, 4), "V8")),
]
if np.dtype(np.longdouble).itemsize > 8:
    BAD.append(("longdouble", lambda: np.zeros((1, 1, 4), np.longdouble)))


@pytest.mark.parametrize("name,make", BAD, ids=[b[0] for b in BAD])
def test_invalid_dtypes_are_type_errors(name, make, front_layer):
    bad = make()
    good = np.ones((1, 1, 2))
    dtname = str(bad.dtype)
    pat = "|".join([__import__("re").escape(dtname), name, bad.dtype.name[:4]])
    with pytest.raises(TypeError, match=pat):
        pyconv.conv1d(bad, good, backend=front_layer)
    with pytest.raises(TypeError, match=pat):
        pyconv.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)).astype(bad.dtype)
                      if name != "object" else np.empty((1, 1, 2), object), backend=front_layer)
    with pytest.raises(TypeError):
        pyconv.conv1d(np.ones((1, 1, 4)), good, bad[0, 0, :1], backend=front_layer)
    with pytest.raises(TypeError):
        pyconv.conv_transpose1d(bad, good, backend=front_layer)
    with pytest.raises(TypeError):
        pgrad.conv1d_weight(bad, (1, 1, 2), np.ones((1, 1, 3)), backend=front_layer)


def test_ragged_list_is_type_error(front_layer):
    with pytest.raises(TypeError):
        pyconv.conv1d([[[1.0, 2.0], [1.0]]], np.ones((1, 1, 1)), backend=front_layer)


def test_lists_and_scalars_accepted(backend):
    y = pyconv.conv1d([[[1, 2, 3]]], [[[1.0, 1.0]]], [0.5], backend=backend)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, [[[3.5, 5.5]]])


def test_complex_bias_on_real_operands(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 8))
    w = rng.standard_normal((4, 3, 3))
    b = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    got = pyconv.conv1d(x, w, b, backend=backend)
    want = pyconv.conv1d(x, w, backend=backend) + b[None, :, None]
    assert got.dtype == np.complex128
    assert_close(got, want, np.complex128, "complex bias")
