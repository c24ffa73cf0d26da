"""Property tests (hypothesis) that need no oracle, on every backend.

* the adjoint identity <conv(x, w), z> = <x, conv_transpose(z, w)>,
* linearity in the input, the weight and the bias,
* groups = concatenation of independent convolutions (conv and transposed),
* the output-shape formulas of docs/semantics.rst ("Output size"),
* pyconv.grad against central finite differences (float64),
* every non-reference backend against the reference,
* the caller's arrays are never modified, and any array layout (views,
  negative strides, Fortran order, read-only, big-endian, lists) gives the
  same answer as a contiguous array.

Example counts are bounded (``PYCONV_HYPOTHESIS_EXAMPLES``, default 25) and
derandomized so the CI run is fast and reproducible.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyconv
from pyconv import grad as pgrad

from helpers import assert_close, conv_out, randn, tconv_out

EXAMPLES = int(os.environ.get("PYCONV_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

CONV = {1: pyconv.conv1d, 2: pyconv.conv2d, 3: pyconv.conv3d}
TCONV = {1: pyconv.conv_transpose1d, 2: pyconv.conv_transpose2d, 3: pyconv.conv_transpose3d}


@dataclass
class Geometry:
    """A valid conv geometry and its adjoint transposed geometry."""

    nd: int
    n: int
    groups: int
    cin_g: int
    cout_g: int
    size: tuple          # conv input spatial size S
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    seed: int

    @property
    def cin(self):
        return self.cin_g * self.groups

    @property
    def cout(self):
        return self.cout_g * self.groups

    @property
    def out(self):
        return tuple(conv_out(S, K, s, p, d) for S, K, s, p, d in
                     zip(self.size, self.kernel, self.stride, self.padding, self.dilation))

    @property
    def output_padding(self):
        """What makes conv_transpose(conv output) have the conv input's shape."""
        return tuple(S - tconv_out(O, K, s, p, 0, d) for S, O, K, s, p, d in
                     zip(self.size, self.out, self.kernel, self.stride, self.padding,
                         self.dilation))

    @property
    def conv_kw(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    @property
    def tconv_kw(self):
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    @property
    def x_shape(self):
        return (self.n, self.cin) + self.size

    @property
    def w_shape(self):
        return (self.cout, self.cin_g) + self.kernel

    @property
    def y_shape(self):
        return (self.n, self.cout) + self.out

    def arrays(self, dtype=np.float64):
        rng = np.random.default_rng(self.seed)
        return (randn(rng, self.x_shape, dtype), randn(rng, self.w_shape, dtype),
                randn(rng, (self.cout,), dtype), randn(rng, self.y_shape, dtype))


@st.composite
def geometries(draw, max_nd=3):
    nd = draw(st.integers(1, max_nd))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = []
    limit = {1: 9, 2: 6, 3: 4}[nd]
    for k, p, d in zip(kernel, padding, dilation):
        eff = d * (k - 1) + 1
        lo = max(1, eff - 2 * p)
        size.append(draw(st.integers(lo, max(lo, limit))))
    return Geometry(nd=nd, n=draw(st.integers(1, 2)), groups=groups,
                    cin_g=draw(st.integers(1, 2)), cout_g=draw(st.integers(1, 2)),
                    size=tuple(size), kernel=kernel, stride=stride, padding=padding,
                    dilation=dilation, seed=draw(st.integers(0, 2**31 - 1)))


def dot(a, b):
    return np.vdot(np.conj(a), b) if np.iscomplexobj(a) else float(np.sum(a * b))


def close_scalar(a, b, scale, rtol=1e-10, label=""):
    assert abs(a - b) <= rtol * max(1.0, scale), f"{label}: {a!r} != {b!r} (scale {scale:g})"


# --------------------------------------------------------------------------

@SETTINGS
@given(g=geometries())
def test_output_shapes(g, backend):
    x, w, b, _ = g.arrays()
    y = CONV[g.nd](x, w, b, **g.conv_kw, backend=backend)
    assert y.shape == g.y_shape
    z = TCONV[g.nd](y, w, None, **g.tconv_kw, backend=backend)
    assert z.shape == g.x_shape
    # the transposed formula with any legal output_padding
    op = tuple(min(s - 1, 1) for s in g.stride)
    z = TCONV[g.nd](x, _tweight(g), None,
                    stride=g.stride, padding=0, output_padding=op, groups=g.groups,
                    dilation=g.dilation, backend=backend)
    expected = (g.n, g.cin_g * g.groups) + tuple(
        tconv_out(S, K, s, 0, o, d) for S, K, s, o, d in
        zip(g.size, g.kernel, g.stride, op, g.dilation))
    assert z.shape == expected


def _tweight(g):
    """A transposed-layout weight (C_in, C_out/groups, *K) for input x of g."""
    rng = np.random.default_rng(g.seed + 1)
    return rng.standard_normal((g.cin, g.cin_g) + g.kernel)


@SETTINGS
@given(g=geometries())
def test_adjoint_identity(g, backend):
    x, w, _, z = g.arrays()
    lhs = dot(CONV[g.nd](x, w, **g.conv_kw, backend=backend), z)
    rhs = dot(x, TCONV[g.nd](z, w, **g.tconv_kw, backend=backend))
    scale = float(np.sum(np.abs(x)) * np.sum(np.abs(w)) * np.max(np.abs(z)))
    close_scalar(lhs, rhs, scale, 1e-12, f"adjoint {g}")


@SETTINGS
@given(g=geometries(), a=st.floats(-2, 2), c=st.floats(-2, 2))
def test_linearity(g, a, c, backend):
    x, w, b, z = g.arrays()
    rng = np.random.default_rng(g.seed + 7)
    x2 = rng.standard_normal(x.shape)
    w2 = rng.standard_normal(w.shape)
    f = CONV[g.nd]
    kw = dict(g.conv_kw, backend=backend)
    assert_close(f(a * x + c * x2, w, **kw), a * f(x, w, **kw) + c * f(x2, w, **kw),
                 np.float64, f"linear in x {g}", rtol=1e-10)
    assert_close(f(x, a * w + c * w2, **kw), a * f(x, w, **kw) + c * f(x, w2, **kw),
                 np.float64, f"linear in w {g}", rtol=1e-10)
    bias_shape = (1, -1) + (1,) * g.nd
    assert_close(f(x, w, b, **kw), f(x, w, **kw) + b.reshape(bias_shape), np.float64,
                 f"bias {g}", rtol=1e-12)
    t = TCONV[g.nd]
    tkw = dict(g.tconv_kw, backend=backend)
    z2 = rng.standard_normal(z.shape)
    assert_close(t(a * z + c * z2, w, **tkw), a * t(z, w, **tkw) + c * t(z2, w, **tkw),
                 np.float64, f"transposed linear in x {g}", rtol=1e-10)
    bt = rng.standard_normal(g.cin)
    assert_close(t(z, w, bt, **tkw), t(z, w, **tkw) + bt.reshape(bias_shape), np.float64,
                 f"transposed bias {g}", rtol=1e-12)


@SETTINGS
@given(g=geometries())
def test_groups_are_independent_convs(g, backend):
    x, w, b, z = g.arrays()
    G = g.groups
    full = CONV[g.nd](x, w, b, **g.conv_kw, backend=backend)
    kw = dict(g.conv_kw, groups=1)
    parts = [CONV[g.nd](x[:, j * g.cin_g:(j + 1) * g.cin_g], w[j * g.cout_g:(j + 1) * g.cout_g],
                        b[j * g.cout_g:(j + 1) * g.cout_g], **kw, backend=backend)
             for j in range(G)]
    assert_close(full, np.concatenate(parts, axis=1), np.float64, f"groups conv {g}")
    # transposed: input block j uses weight rows j and writes output block j
    full_t = TCONV[g.nd](z, w, **g.tconv_kw, backend=backend)
    tkw = dict(g.tconv_kw, groups=1)
    parts_t = [TCONV[g.nd](z[:, j * g.cout_g:(j + 1) * g.cout_g],
                           w[j * g.cout_g:(j + 1) * g.cout_g], **tkw, backend=backend)
               for j in range(G)]
    assert_close(full_t, np.concatenate(parts_t, axis=1), np.float64, f"groups tconv {g}")


@SETTINGS
@given(g=geometries())
def test_grad_finite_differences(g, backend):
    """Each pyconv.grad function is the gradient of <op(x, w), gy> (central differences)."""
    x, w, _, gy = g.arrays()
    rng = np.random.default_rng(g.seed + 3)
    nd = g.nd
    h = 1e-3

    def fd(f, a, v):
        return (f(a + h * v) - f(a - h * v)) / (2 * h)

    conv = CONV[nd]
    loss_x = lambda a: dot(conv(a, w, **g.conv_kw, backend=backend), gy)  # noqa: E731
    loss_w = lambda a: dot(conv(x, a, **g.conv_kw, backend=backend), gy)  # noqa: E731
    gi = getattr(pgrad, f"conv{nd}d_input")(x.shape, w, gy, **g.conv_kw, backend=backend)
    gw = getattr(pgrad, f"conv{nd}d_weight")(x, w.shape, gy, **g.conv_kw, backend=backend)
    assert gi.shape == x.shape and gw.shape == w.shape
    for grad, loss, a in ((gi, loss_x, x), (gw, loss_w, w)):
        v = rng.standard_normal(a.shape)
        scale = float(np.sum(np.abs(grad)) * np.max(np.abs(v))) + 1.0
        close_scalar(fd(loss, a, v), dot(grad, v), scale, 1e-9, f"conv grad {g}")

    # transposed: input z (the conv output shape), output the conv input shape
    tconv = TCONV[nd]
    z = gy
    gz = x  # grad_output of the transposed op has the transposed output's shape
    loss_z = lambda a: dot(tconv(a, w, **g.tconv_kw, backend=backend), gz)  # noqa: E731
    loss_tw = lambda a: dot(tconv(z, a, **g.tconv_kw, backend=backend), gz)  # noqa: E731
    tgi = getattr(pgrad, f"conv_transpose{nd}d_input")(z.shape, w, gz, **g.tconv_kw,
                                                       backend=backend)
    tgw = getattr(pgrad, f"conv_transpose{nd}d_weight")(z, w.shape, gz, **g.tconv_kw,
                                                        backend=backend)
    assert tgi.shape == z.shape and tgw.shape == w.shape
    for grad, loss, a in ((tgi, loss_z, z), (tgw, loss_tw, w)):
        v = rng.standard_normal(a.shape)
        scale = float(np.sum(np.abs(grad)) * np.max(np.abs(v))) + 1.0
        close_scalar(fd(loss, a, v), dot(grad, v), scale, 1e-9, f"tconv grad {g}")


@SETTINGS
@given(g=geometries())
def test_backend_matches_reference(g, backend, dtype):
    if backend == "reference":
        pytest.skip("the reference is the oracle itself")
    dt = np.dtype(dtype).name
    x, w, b, z = g.arrays(np.dtype(dt))
    bt = np.random.default_rng(g.seed).standard_normal(g.cin).astype(dt)
    nd = g.nd
    pairs = [
        ("conv", lambda B: CONV[nd](x, w, b, **g.conv_kw, backend=B)),
        ("conv_transpose", lambda B: TCONV[nd](z, w, bt, **g.tconv_kw, backend=B)),
        ("conv_input", lambda B: getattr(pgrad, f"conv{nd}d_input")(x.shape, w, z, **g.conv_kw,
                                                                    backend=B)),
        ("conv_weight", lambda B: getattr(pgrad, f"conv{nd}d_weight")(x, w.shape, z, **g.conv_kw,
                                                                      backend=B)),
        ("conv_transpose_weight",
         lambda B: getattr(pgrad, f"conv_transpose{nd}d_weight")(z, w.shape, x, **g.tconv_kw,
                                                                 backend=B)),
    ]
    for name, call in pairs:
        got = call(backend)
        ref = call("reference")
        assert got.dtype == ref.dtype == np.dtype(dt)
        scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
        assert_close(got, ref, dt, f"{backend} vs reference, {name}, {g}", scale=scale)


# --------------------------------------------------------------------------
# input layouts and immutability

def _layouts(a):
    """The same values in many layouts (name, array-like)."""
    out = []
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    out.append(("strided-view", view))
    rev = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    out.append(("negative-stride", rev))
    out.append(("fortran", np.asfortranarray(a)))
    ro = a.copy()
    ro.setflags(write=False)
    out.append(("read-only", ro))
    out.append(("big-endian", a.astype(a.dtype.newbyteorder(">"))))
    out.append(("list", a.tolist()))
    out.append(("broadcast", np.broadcast_to(a[:1], a.shape) if a.shape[0] == 1 else a))
    return out


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_layouts_equal_contiguous(nd, backend, rng):
    S = (6, 5, 4)[:nd]
    K = (3, 2, 2)[:nd]
    x = rng.standard_normal((2, 4) + S)
    w = rng.standard_normal((6, 2) + K)
    b = rng.standard_normal(6)
    kw = dict(stride=2, padding=1, groups=2)
    y0 = CONV[nd](x, w, b, **kw, backend=backend)
    wt = rng.standard_normal((4, 3) + K)
    t0 = TCONV[nd](x, wt, b, **kw, backend=backend)
    for (xn, xl), (wn, wl), (bn, bl) in zip(_layouts(x), _layouts(w), _layouts(b)):
        y = CONV[nd](xl, wl, bl, **kw, backend=backend)
        assert type(y) is np.ndarray and y.dtype == np.float64
        assert_close(y, y0, np.float64, f"conv layouts {xn}/{wn}/{bn}")
        t = TCONV[nd](xl, _layouts(wt)[[n for n, _ in _layouts(wt)].index(wn)][1], bl, **kw,
                      backend=backend)
        assert_close(t, t0, np.float64, f"conv_transpose layouts {xn}/{wn}/{bn}")


def test_expanded_weight(backend, rng):
    """test_conv_noncontig_weights: a stride-0 (broadcast) weight equals its copy."""
    x = rng.standard_normal((2, 3, 7, 6))
    w = np.broadcast_to(rng.standard_normal((1, 1, 3, 3)), (6, 1, 3, 3))
    y = pyconv.conv2d(x, w, groups=3, backend=backend)
    assert_close(y, pyconv.conv2d(x, np.ascontiguousarray(w), groups=3, backend=backend),
                 np.float64, "expanded weight")


@pytest.mark.parametrize("dt", ["float16", "float32", "float64", "complex64", "complex128"])
def test_inputs_never_modified(dt, backend, rng):
    x = randn(rng, (2, 4, 6, 5), dt)
    w = randn(rng, (4, 2, 3, 2), dt)
    b = randn(rng, (4,), dt)
    gy = randn(rng, (2, 4, 4, 4), dt)
    wt = randn(rng, (4, 2, 3, 2), dt)
    copies = [a.copy() for a in (x, w, b, gy, wt)]
    m = pyconv.Conv2d(4, 4, (3, 2), groups=2, padding=1, padding_mode="reflect",
                      dtype=np.dtype(dt), rng=0)
    mw, mb = m.weight.copy(), m.bias.copy()
    pyconv.conv2d(x, w, b, groups=2, backend=backend)
    pyconv.conv2d(x, w, b, groups=2, padding="same", backend=backend)
    pyconv.conv2d(x, w, b, groups=2, padding=1, padding_mode="circular", backend=backend)
    pyconv.conv_transpose2d(x, wt, b, groups=2, stride=2, backend=backend)
    pgrad.conv2d_input(x.shape, w, gy, groups=2, backend=backend)
    pgrad.conv2d_weight(x, w.shape, gy, groups=2, backend=backend)
    pgrad.conv_transpose2d_weight(gy, wt.shape, pyconv.conv_transpose2d(gy, wt, groups=2,
                                                                        backend=backend),
                                  groups=2, backend=backend)
    with pyconv.use_backend(backend):
        m(x)
    for a, c in zip((x, w, b, gy, wt), copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(m.weight, mw)
    np.testing.assert_array_equal(m.bias, mb)


def test_output_is_fresh_array(backend, rng):
    """The result never aliases an input (even for 1x1 kernels / N=0 / C=0)."""
    x = rng.standard_normal((1, 2, 4))
    w = np.ones((2, 1, 1))
    y = pyconv.conv1d(x, w, groups=2, backend=backend)
    assert not np.shares_memory(y, x)
    y[...] = 0
    assert np.any(x != 0)
    x0 = rng.standard_normal((0, 2, 4))
    y0 = pyconv.conv1d(x0, w, groups=2, backend=backend)
    assert y0.shape == (0, 2, 4) and not np.shares_memory(y0, x0)


@settings(max_examples=max(5, EXAMPLES // 2), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=geometries(max_nd=2))
def test_unbatched_equals_batched(g, backend):
    x, w, b, z = g.arrays()
    y = CONV[g.nd](x[0], w, b, **g.conv_kw, backend=backend)
    assert_close(y, CONV[g.nd](x[:1], w, b, **g.conv_kw, backend=backend)[0], np.float64,
                 f"unbatched conv {g}", rtol=0)
    t = TCONV[g.nd](z[0], w, **g.tconv_kw, backend=backend)
    assert_close(t, TCONV[g.nd](z[:1], w, **g.tconv_kw, backend=backend)[0], np.float64,
                 f"unbatched tconv {g}", rtol=0)


@settings(max_examples=max(5, EXAMPLES // 2), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(L=st.integers(3, 12), k=st.integers(1, 6), d=st.integers(1, 3))
def test_same_padding_split(L, k, d, backend):
    """'same' == explicit asymmetric zero padding (extra element on the right)."""
    rng = np.random.default_rng(L * 100 + k * 10 + d)
    x = rng.standard_normal((1, 2, L))
    w = rng.standard_normal((3, 2, k))
    total = d * (k - 1)
    left, right = total // 2, total - total // 2
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    expected = pyconv.conv1d(xp, w, dilation=d, backend=backend)
    got = pyconv.conv1d(x, w, padding="same", dilation=d, backend=backend)
    assert got.shape == (1, 3, L)
    assert_close(got, expected, np.float64, f"same L={L} k={k} d={d}")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_equals_numpy_pad(mode, backend, rng):
    """Module padding modes == np.pad (reflect/edge/wrap) + a valid conv."""
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    for nd, pads in ((1, (2,)), (2, (1, 2)), (3, (1, 0, 2))):
        S = (5, 4, 3)[:nd]
        x = rng.standard_normal((2, 2) + S)
        m = getattr(pyconv, f"Conv{nd}d")(2, 3, 2, padding=pads, padding_mode=mode,
                                          dtype=np.float64, rng=1)
        xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pads), mode=np_mode)
        expected = CONV[nd](xp, m.weight, m.bias, backend=backend)
        with pyconv.use_backend(backend):
            got = m(x)
        assert_close(got, expected, np.float64, f"{mode} nd={nd}")
        # the functional padding_mode keyword gives the same
        got_f = CONV[nd](x, m.weight, m.bias, padding=pads, padding_mode=mode, backend=backend)
        assert_close(got_f, expected, np.float64, f"functional {mode} nd={nd}")


def test_semantics_padding_examples(backend):
    """§5 index maps on [0,1,2,3,4] read back through a 1-tap identity kernel."""
    x = np.arange(5.0).reshape(1, 1, 5)
    w = np.ones((1, 1, 1))
    expect = {"reflect": [2, 1, 0, 1, 2, 3, 4, 3, 2],
              "replicate": [0, 0, 0, 1, 2, 3, 4, 4, 4],
              "circular": [3, 4, 0, 1, 2, 3, 4, 0, 1]}
    for mode, vals in expect.items():
        y = pyconv.conv1d(x, w, padding=2, padding_mode=mode, backend=backend)
        np.testing.assert_array_equal(y.ravel(), vals, err_msg=mode)
        m = pyconv.Conv1d(1, 1, 1, padding=2, padding_mode=mode, bias=False, dtype=np.float64)
        m.weight = w.copy()
        with pyconv.use_backend(backend):
            np.testing.assert_array_equal(m(x).ravel(), vals, err_msg=mode)
