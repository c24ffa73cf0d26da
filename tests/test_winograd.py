"""The Winograd paths of the cython backend: their matrices, their accuracy, the switch.

The shared matrix (``cython[winograd4]``, ``cython[winograd2]``) and
``test_cython_backend.py`` (rules, thread counts, workspace, Ctrl-C) cover
the paths like every other one; here are the properties of the algorithm
itself: the transform matrices compute a correlation exactly, the float32
error on adversarial inputs stays within the documented bound, and
``use_algorithms("exact")`` keeps every call off these paths.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyconv
import pyconv.grad

cy_mod = pytest.importorskip("pyconv._cy")
try:
    cy_mod.load()
except ImportError as exc:  # pragma: no cover - unbuilt checkout
    pytest.skip(f"cython backend unavailable: {exc}", allow_module_level=True)

from pyconv._cy.paths import winograd as wino  # noqa: E402
from pyconv._spec import ConvSpec  # noqa: E402

#: the documented bound (docs/backends.rst): worst float32 error relative to
#: the largest output, against a float64 GEMM, on the adversarial inputs below
F32_BOUND = {"winograd2": 3e-6, "winograd4": 1e-5, "winograd_oc": 1e-5}


@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5), (2, 2), (3, 4)])
def test_matrices_compute_a_correlation(m, r):
    """A^T [(G g) * (B^T d)] == sum_k g[k] d[i + k] for random d, g (float64)."""
    bt, g, at = wino.matrices(m, r)
    alpha = m + r - 1
    assert bt.shape == (alpha, alpha) and g.shape == (alpha, r) and at.shape == (m, alpha)
    rng = np.random.default_rng(m * 10 + r)
    for _ in range(5):
        d, taps = rng.standard_normal(alpha), rng.standard_normal(r)
        want = np.array([taps @ d[i:i + r] for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ taps) * (bt @ d)), want, rtol=1e-13, atol=1e-13)
    # B^T has small integer entries (the scales live in G)
    assert np.array_equal(bt, np.round(bt)) and np.abs(bt).max() <= 32


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_stride2_matrices_compute_a_strided_correlation(m):
    """winograd_oc's stride-2 transform: A^T [(G g) * (B^T d)] == sum_k g[k] d[2i + k]
    for the 2m + 1 inputs of a window (float64); at m = 2 every coefficient of
    B^T and A^T is 0 or +-1."""
    from pyconv._cy.paths.winograd_oc import stride2_matrices
    bt, g, at = stride2_matrices(m)
    alpha = 2 * m + 1
    assert bt.shape == (alpha, alpha) and g.shape == (alpha, 3) and at.shape == (m, alpha)
    rng = np.random.default_rng(m)
    for _ in range(5):
        d, taps = rng.standard_normal(alpha), rng.standard_normal(3)
        want = np.array([taps @ d[2 * i:2 * i + 3] for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ taps) * (bt @ d)), want, rtol=1e-13, atol=1e-13)
    if m == 2:
        assert set(np.unique(np.concatenate([bt.ravel(), at.ravel()]))) <= {-1.0, 0.0, 1.0}


def _layer(n, c, size, k=3, cout=None):
    nd = len(size)
    return ConvSpec(False, n, c, c if cout is None else cout, 1, size, size, (k,) * nd,
                    (1,) * nd, ((k // 2, k // 2),) * nd, (1,) * nd)


# long reductions: up to 768 input channels x 9 taps (3-d: 128 x 27); larger
# ones do not fit the workspace on these paths (the plans fall back)
ADVERSARIAL = [
    pytest.param(_layer(1, 512, (12, 12), cout=32), id="2d-512ch"),
    pytest.param(_layer(1, 768, (8, 8), cout=16), id="2d-768ch"),
    pytest.param(_layer(2, 64, (20, 20)), id="2d-64ch"),
    pytest.param(_layer(2, 512, (40,), cout=32), id="1d-512ch"),
    pytest.param(_layer(2, 512, (40,), k=5, cout=32), id="1d-k5-512ch"),
    pytest.param(_layer(1, 128, (6, 6, 6), cout=8), id="3d-128ch"),
    # 1-d dilated, on the (L/d, d) view
    pytest.param(ConvSpec(False, 2, 512, 32, 1, (256,), (192,), (2,), (1,), ((0, 0),), (64,)),
                 id="1d-dilated-k2-512ch"),
    pytest.param(ConvSpec(False, 2, 512, 32, 1, (256,), (256,), (3,), (1,), ((32, 32),),
                          (32,)), id="1d-dilated-k3-512ch"),
]


def _adversarial(spec, rng):
    """Mixed magnitudes: every input channel and weight scaled by 10**U(-3, 3)
    and a constant offset (a large common mode the transforms must cancel)."""
    x = rng.standard_normal(spec.input_shape)
    x *= 10.0 ** rng.uniform(-3, 3, (1, spec.in_channels) + (1,) * spec.nd)
    x += 100.0
    w = rng.standard_normal(spec.weight_shape)
    w *= 10.0 ** rng.uniform(-3, 3, spec.weight_shape[:2] + (1,) * spec.nd)
    return x, w


#: winograd_oc (2-d 3x3 only): the 2-d cases above, and deep layers on small
#: maps (its rule's class), up to 1024 input channels
def _layer_s2(n, c, size, cout):
    """A 3x3 stride-2 layer, padding 1 (ResNet's downsampling)."""
    out = tuple((s - 1) // 2 + 1 for s in size)
    return ConvSpec(False, n, c, cout, 1, size, out, (3, 3), (2, 2), ((1, 1),) * 2, (1, 1))


ADVERSARIAL_OC = [p for p in ADVERSARIAL if p.id.startswith("2d")] + [
    pytest.param(_layer(8, 512, (7, 7), cout=64), id="2d-7x7-512ch"),
    pytest.param(_layer(2, 1024, (7, 7), cout=32), id="2d-7x7-1024ch"),
    pytest.param(_layer(1, 256, (14, 14), cout=64), id="2d-14x14-256ch"),
    pytest.param(_layer(2, 256, (28, 28), cout=64), id="2d-28x28-256ch-local"),  # local rounds
    # stride 2: its class (28x28 -> 14x14), a long reduction, an odd map
    pytest.param(_layer_s2(8, 128, (28, 28), 64), id="2d-s2-28x28-128ch"),
    pytest.param(_layer_s2(1, 1024, (28, 28), 32), id="2d-s2-28x28-1024ch"),
    pytest.param(_layer_s2(2, 64, (29, 27), 48), id="2d-s2-29x27-64ch"),
]


@pytest.mark.parametrize("path,spec", [
    pytest.param(path, p.values[0], id=f"{path}-{p.id}")
    for path, cases in (("winograd4", ADVERSARIAL), ("winograd2", ADVERSARIAL),
                        ("winograd_oc", ADVERSARIAL_OC))
    for p in cases])
def test_float32_error_within_the_documented_bound(path, spec, rng):
    """Worst |winograd - GEMM| / max |GEMM| (float32 inputs, float64 GEMM oracle)."""
    cy = cy_mod.load()
    x, w = _adversarial(spec, rng)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    with cy_mod.force_paths("implicit"):
        want = cy.conv(x32.astype(np.float64), w32.astype(np.float64), None, spec)
    with cy_mod.force_paths(path):
        assert cy_mod.plan("conv", spec, np.float32).path == path
        got = cy.conv(x32, w32, None, spec)
        got64 = cy.conv(x32.astype(np.float64), w32.astype(np.float64), None, spec)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() / scale <= F32_BOUND[path]
    assert np.abs(got64 - want).max() / scale <= 1e-12


@pytest.mark.parametrize("spec", [
    _layer(2, 64, (28, 28)),                      # 98 tiles: two rounds of 49
    _layer(3, 96, (30, 26), cout=48),             # 168 tiles, 7x8 per image, rounds of 84
    ConvSpec(False, 2, 192, 96, 2, (28, 28), (28, 28), (3, 3), (1, 1), ((1, 1),) * 2,
             (1, 1)),                             # two groups of 96 -> 48
    _layer(4, 256, (14, 14), cout=64),            # 4 rounds of 16 tiles
    _layer(5, 64, (20, 20)),                      # 125 tiles: rounds of 63 and 62
    _layer_s2(1, 64, (56, 56), 128),              # stride 2: 196 tiles of 2x2
    _layer_s2(5, 96, (30, 26), 128),              # stride 2, 280 tiles, 15x13 outputs
], ids=["98-tiles", "168-tiles", "groups", "four-rounds", "short-round", "s2", "s2-odd"])
def test_local_rounds_match_the_two_passes(spec, rng):
    """winograd_oc's local rounds (each item transforms its round's input
    itself) give bitwise the results of its two passes over the same rounds,
    and of the two passes in their own rounds; both close to a float64 sum."""
    if cy_mod._build.simd_level() < 2:
        pytest.skip("local rounds are taken at AVX-512 only")
    from pyconv._cy import _winograd_oc
    from pyconv._cy._planning import geo
    from pyconv._cy.paths.winograd_oc import coefficients

    cy = cy_mod.load()
    p = cy_mod.plan("conv", spec, np.float32, paths=["winograd_oc"])
    assert p.path == "winograd_oc" and p.segments == 0      # local rounds taken
    assert p.items >= 2 * spec.groups
    x = rng.standard_normal(spec.input_shape).astype(np.float32)
    w = rng.standard_normal(spec.weight_shape).astype(np.float32)
    b = rng.standard_normal(spec.out_channels).astype(np.float32)
    with cy_mod.force_paths("winograd_oc"):
        got = cy.conv(x, w, b, spec)

    def two_passes(tc, rt, kbs):
        y = np.zeros(spec.output_shape, np.float32)
        _winograd_oc.conv(x, w, b, y, geo(spec), p.shape, tc, rt, p.blocks, 4, kbs,
                          coefficients(p.shape, spec.stride[0]), p.simd, 2)
        return y

    np.testing.assert_array_equal(got, two_passes(p.tile, p.slabs, 1))
    np.testing.assert_array_equal(got, two_passes(227, 1 << 20, 2))
    with cy_mod.force_paths("implicit"):
        want = cy.conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), spec)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("op, path, spec, exact_path", [
    ("conv", "winograd4", _layer(8, 64, (56, 56)), "implicit"),
    ("conv_weight", "winograd_w", _layer(8, 64, (56, 56)), "implicit"),
    ("conv", "winograd_oc", _layer(8, 512, (7, 7)), "ocvec"),
    ("conv", "winograd_oc", _layer_s2(8, 128, (28, 28), 256), "ocvec"),
], ids=["winograd4", "winograd_w", "winograd_oc", "winograd_oc-s2"])
def test_exact_algorithms_keep_calls_off_winograd(rng, op, path, spec, exact_path):
    """A layer the rule gives to a Winograd path runs on an exact path under "exact"."""
    # the micro-kernel level (AVX-512 for the stride-2 rule)
    if cy_mod._build.simd_level() < (2 if spec.stride[0] == 2 else 1):
        pytest.skip("this CPU's rules never take the Winograd path here")
    assert cy_mod.plan(op, spec, np.float32).path == path
    small = _layer(2, 8, (9, 9))
    x = rng.standard_normal(small.input_shape).astype(np.float32)
    w = rng.standard_normal(small.weight_shape).astype(np.float32)
    gy = rng.standard_normal(small.output_shape).astype(np.float32)

    def call():
        if op == "conv":
            return pyconv.conv2d(x, w, padding=1, backend="cython")
        return pyconv.grad.conv2d_weight(x, w.shape, gy, padding=1, backend="cython")

    with pyconv.use_algorithms("exact"):
        assert cy_mod.plan(op, spec, np.float32).path == exact_path
        # forcing does not override the user's switch either
        assert cy_mod.plan(op, spec, np.float32, paths=(path,)).path == exact_path
        with cy_mod.force_paths(path):
            got = call()
        exact = cy_mod.plan(op, small, np.float32).path     # the small call's exact path
    assert not exact.startswith("winograd")
    with cy_mod.force_paths(exact):
        want = call()
    np.testing.assert_array_equal(got, want)      # bitwise: the same exact path


def test_input_gradient_matches_the_flipped_conv(rng):
    """conv_transpose on the Winograd path equals the stride-1 conv with the flipped,
    channel-swapped kernel (its definition), to rounding."""
    cy = cy_mod.load()
    spec = ConvSpec(True, 2, 48, 32, 1, (17, 23), (17, 23), (3, 3), (1, 1), ((1, 1),) * 2,
                    (1, 1))
    x = rng.standard_normal(spec.input_shape).astype(np.float32)
    w = rng.standard_normal(spec.weight_shape).astype(np.float32)
    conv = ConvSpec(False, 2, 48, 32, 1, (17, 23), (17, 23), (3, 3), (1, 1), ((1, 1),) * 2,
                    (1, 1))
    wflip = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    with cy_mod.force_paths("winograd4"):
        assert cy_mod.plan("conv_transpose", spec, np.float32).path == "winograd4"
        got = cy.conv_transpose(x, w, None, spec)
        want = cy.conv(x, wflip, None, conv)
    np.testing.assert_array_equal(got, want)


def test_non_finite_input_poisons_only_its_tiles():
    """A NaN in the input makes NaN outputs near it, finite ones far from it."""
    cy = cy_mod.load()
    spec = _layer(1, 8, (24, 24))
    x = np.ones(spec.input_shape, np.float32)
    x[0, 3, 2, 2] = np.nan
    w = np.ones(spec.weight_shape, np.float32)
    with cy_mod.force_paths("winograd4"):
        y = cy.conv(x, w, None, spec)
    assert np.isnan(y[0, :, 2, 2]).all()
    assert np.isfinite(y[0, :, 12:, 12:]).all()


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("n,cin,cout,length,k,d,pad,groups", [
    (2, 16, 24, 96, 2, 8, 0, 1),       # WaveNet-style: K2, no padding
    (1, 8, 12, 120, 3, 4, 4, 2),       # K3, 'same' padding, groups
    (1, 8, 8, 60, 3, 5, 10, 1),        # padding of two rows of the view
    (1, 4, 6, 40, 5, 4, 0, 1),         # F(4, 5)
])
def test_dilated_conv1d_on_its_2d_view(rng, transposed, n, cin, cout, length, k, d, pad,
                                       groups):
    """A 1-d dilated conv whose length and padding are multiples of the dilation runs
    on winograd4 as the 2-d conv of its (L/d, d) view, and so does its input
    gradient (conv_transpose, whose one phase is such a conv); both match the
    reference."""
    x = rng.standard_normal((n, cin, length)).astype(np.float32)
    w = rng.standard_normal((cin, cout // groups, k) if transposed
                            else (cout, cin // groups, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    kw = dict(dilation=d, padding=pad, groups=groups)
    fn = pyconv.conv_transpose1d if transposed else pyconv.conv1d
    out = (length - 1 - 2 * pad + d * (k - 1) + 1 if transposed
           else length + 2 * pad - d * (k - 1))
    spec = ConvSpec(transposed, n, cin, cout, groups, (length,), (out,), (k,), (1,),
                    ((pad, pad),), (d,))
    op = "conv_transpose" if transposed else "conv"
    assert wino.WINOGRAD4.as_conv(op, spec).kernel_size == (k, 1)
    with cy_mod.force_paths("winograd4"):
        assert cy_mod.plan(op, spec, np.float32).path == "winograd4"
        got = fn(x, w, b, backend="cython", **kw)
    want = fn(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
              backend="reference", **kw)
    assert got.shape == (n, cout, out)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("length,pad,stride", [(61, 0, 1), (60, 3, 1), (60, 0, 2)])
def test_dilated_conv1d_without_a_view_stays_off_winograd(length, pad, stride):
    """A length or padding that is not a multiple of the dilation, or a stride: no view."""
    spec = ConvSpec(False, 1, 8, 8, 1, (length,),
                    ((length + 2 * pad - 5 * 1 - 1) // stride + 1,), (2,), (stride,),
                    ((pad, pad),), (5,))
    assert wino.dilated_view(spec) is None
    with cy_mod.force_paths("winograd4"):
        assert cy_mod.plan("conv", spec, np.float32).path != "winograd4"

