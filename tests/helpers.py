"""Helpers shared by the test modules: tolerances, comparisons, the golden fixture."""

from __future__ import annotations

import functools
import itertools
import json
import math
import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
GOLDEN = os.path.join(DATA, "golden.npz")

#: relative tolerance per dtype; the absolute tolerance is ``rtol * scale``
#: where ``scale`` is the largest magnitude of the expected values (>= 1).
RTOL = {
    "float16": 4e-3,
    "float32": 1e-5,
    "float64": 1e-12,
    "complex64": 2e-5,
    "complex128": 1e-12,
}


def tolerance(dtype):
    return RTOL[np.dtype(dtype).name]


def assert_close(got, expected, dtype=None, label="", rtol=None, scale=None):
    """Scale-aware comparison; the message shows the first mismatching index.

    ``|got - expected| <= rtol * |expected| + rtol * scale`` elementwise, with
    ``scale = max(1, max |expected|)`` unless given.
    """
    got = np.asarray(got)
    expected = np.asarray(expected)
    if dtype is None:
        dtype = expected.dtype
    if rtol is None:
        rtol = tolerance(dtype)
    assert got.shape == expected.shape, (
        f"{label}: shape {got.shape} != expected {expected.shape}")
    if expected.size == 0:
        return
    g = got.astype(np.complex128 if np.iscomplexobj(got) or np.iscomplexobj(expected)
                   else np.float64)
    e = expected.astype(g.dtype)
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(e))))
    err = np.abs(g - e)
    bound = rtol * np.abs(e) + rtol * scale
    bad = ~(err <= bound)  # also catches NaN
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{label}: {int(bad.sum())}/{bad.size} elements differ "
            f"(rtol={rtol:g}, scale={scale:.3g}); first mismatch at index {idx}: "
            f"got {g[idx]!r}, expected {e[idx]!r}; max abs error {float(err.max()):.3g}")


@functools.lru_cache(maxsize=1)
def golden():
    """(cases, arrays): the golden cases (list of dicts) and a key -> ndarray map."""
    with np.load(GOLDEN, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        pools = {name[len("pool/"):]: z[name] for name in z.files if name.startswith("pool/")}
    arrays = {}
    for key, (dt, offset, shape) in meta["arrays"].items():
        n = math.prod(shape)
        arr = pools[dt][offset:offset + n].reshape(shape)
        arr.setflags(write=False)
        arrays[key] = arr
    return meta["cases"], arrays


def tuplify(value):
    """JSON lists back to tuples (nested), everything else unchanged."""
    if isinstance(value, list):
        return tuple(tuplify(v) for v in value)
    if isinstance(value, dict):
        return {k: tuplify(v) for k, v in value.items()}
    return value


def randn(rng, shape, dtype=np.float64):
    """Standard normal array of ``dtype`` (complex: independent parts)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        re = rng.standard_normal(shape)
        im = rng.standard_normal(shape)
        return (re + 1j * im).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _per_dim(value, nd):
    return (value,) * nd if isinstance(value, int) else tuple(value)


def conv_spec(n, cin, cout, size, kernel, *, stride=1, padding=0, dilation=1, groups=1,
              transposed=False):
    """The :class:`~pyconv._spec.ConvSpec` a backend receives, built directly (the one
    spec helper of the tests).

    ``size`` is the op's input size; ``kernel``, ``stride`` and ``dilation`` an
    int or one per dim; ``padding`` an int (both sides), one int per dim, or one
    ``(lo, hi)`` pair per dim: specs may have asymmetric padding that no public
    call spells out ('same' with an even kernel, a transposed op's
    ``hi = padding - output_padding``, which may be negative).  The output size
    follows the formulas of docs/semantics.rst ("Output size") with lo + hi in
    place of 2*p.
    """
    from pyconv._spec import ConvSpec

    size = tuple(size)
    nd = len(size)
    kernel, stride, dilation = (_per_dim(v, nd) for v in (kernel, stride, dilation))
    if isinstance(padding, int):
        pads = ((padding, padding),) * nd
    else:
        pads = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
    if transposed:
        out = tuple((i - 1) * s - lo - hi + d * (k - 1) + 1
                    for i, (lo, hi), k, s, d in zip(size, pads, kernel, stride, dilation))
    else:
        out = tuple((i + lo + hi - d * (k - 1) - 1) // s + 1
                    for i, (lo, hi), k, s, d in zip(size, pads, kernel, stride, dilation))
    return ConvSpec(transposed, n, cin, cout, groups, size, out, kernel, stride, pads,
                    dilation)


def tconv_spec(n, cin, cout, size, kernel, **kwargs):
    """:func:`conv_spec` of a transposed convolution."""
    return conv_spec(n, cin, cout, size, kernel, transposed=True, **kwargs)


def conv_out(S, K, s=1, p=0, d=1):
    """Conv output size of one dim (docs/semantics.rst, "Output size")."""
    return (S + 2 * p - d * (K - 1) - 1) // s + 1


def tconv_out(S, K, s=1, p=0, op=0, d=1):
    """Transposed conv output size of one dim (docs/semantics.rst, "Output size")."""
    return (S - 1) * s - 2 * p + d * (K - 1) + op + 1


# --------------------------------------------------------------------------
# an independent NumPy oracle of docs/semantics.rst ("What is computed"), for any
# numeric dtype

def np_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Gather form with one einsum per kernel tap; complex-safe, no conjugation."""
    nd = w.ndim - 2
    s, p, d = ((v,) * nd if isinstance(v, int) else tuple(v) for v in (stride, padding, dilation))
    n, cin = x.shape[:2]
    cout, cin_g = w.shape[:2]
    K = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((pi, pi) for pi in p))
    out = tuple((xp.shape[2 + i] - d[i] * (K[i] - 1) - 1) // s[i] + 1 for i in range(nd))
    y = np.zeros((n, groups, cout // groups) + out, dtype=np.result_type(x, w, np.float64))
    wg = w.reshape((groups, cout // groups, cin_g) + K)
    for k in itertools.product(*(range(kk) for kk in K)):
        sl = tuple(slice(k[i] * d[i], k[i] * d[i] + s[i] * (out[i] - 1) + 1, s[i])
                   for i in range(nd))
        patch = xp[(slice(None), slice(None)) + sl].reshape((n, groups, cin_g) + out)
        y += np.einsum("ngc...,goc->ngo...", patch, wg[(Ellipsis,) + k])
    y = y.reshape((n, cout) + out)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nd)
    return y


def np_conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1):
    """Scatter form with one einsum per kernel tap."""
    nd = w.ndim - 2
    s, p, op, d = ((v,) * nd if isinstance(v, int) else tuple(v)
                   for v in (stride, padding, output_padding, dilation))
    n, cin = x.shape[:2]
    cin_g = cin // groups
    cout_g = w.shape[1]
    K = w.shape[2:]
    S = x.shape[2:]
    full = tuple((S[i] - 1) * s[i] + d[i] * (K[i] - 1) + 1 for i in range(nd))
    out = tuple(full[i] - 2 * p[i] + op[i] for i in range(nd))
    buf = np.zeros((n, groups, cout_g) + tuple(max(full[i], p[i] + out[i]) for i in range(nd)),
                   dtype=np.result_type(x, w, np.float64))
    xg = x.reshape((n, groups, cin_g) + S)
    wg = w.reshape((groups, cin_g, cout_g) + K)
    for k in itertools.product(*(range(kk) for kk in K)):
        sl = tuple(slice(k[i] * d[i], k[i] * d[i] + s[i] * (S[i] - 1) + 1, s[i])
                   for i in range(nd))
        buf[(slice(None), slice(None), slice(None)) + sl] += np.einsum(
            "ngc...,gco->ngo...", xg, wg[(Ellipsis,) + k])
    crop = tuple(slice(p[i], p[i] + out[i]) for i in range(nd))
    y = buf[(slice(None), slice(None), slice(None)) + crop].reshape((n, groups * cout_g) + out)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nd)
    return y
