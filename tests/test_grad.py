"""pyconv.grad: against PyTorch (golden), finite differences, the bias relation,
shapes, and the complex (conjugate) convention, on every backend."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import pyconv
from pyconv import grad as pgrad

from helpers import assert_close, golden, randn, tuplify
from test_golden import GRAD, check

CASES, ARRAYS = golden()


# --------------------------------------------------------------------------
# golden: torch.nn.grad (real) and autograd (transposed, complex)

@pytest.mark.parametrize("case", GRAD)
def test_golden_grad(case, backend):
    fn = getattr(pgrad, case["fn"])
    args = [tuple(a) if kind == "size" else ARRAYS[a]
            for a, kind in zip(case["args"], case["arg_kinds"])]
    got = fn(*args, **tuplify(case["kwargs"]), backend=backend)
    check(case, got)


def test_golden_grad_cases_cover_everything():
    fns = {c["fn"] for c in CASES if c["kind"] == "grad"}
    assert len(fns) == 12
    conj = [c for c in CASES if c["kind"] == "grad" and c["complex_convention"]]
    assert {c["fn"] for c in conj} == fns  # complex cases for every function
    assert all(c["complex_convention"] == "conjugate" for c in conj)


def test_bias_grad_relation():
    """torch's bias gradient is grad_output summed over batch and space."""
    seen = 0
    for case in CASES:
        if case["kind"] != "grad" or not case.get("bias_grad") or not case["id"].endswith("input"):
            continue
        gy = ARRAYS[case["args"][2]]
        expected = ARRAYS[case["bias_grad"]]
        got = gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
        assert_close(got, expected, case["dtype"], case["id"])
        seen += 1
    assert seen > 50


# --------------------------------------------------------------------------
# signatures (mirror torch.nn.grad; transposed ones follow the transposed op order)

@pytest.mark.parametrize("nd", [1, 2, 3])
def test_signatures(nd):
    conv = ["stride", "padding", "dilation", "groups"]
    tconv = ["stride", "padding", "output_padding", "groups", "dilation"]
    for name, first, rest in (
            (f"conv{nd}d_input", ["input_size", "weight", "grad_output"], conv),
            (f"conv{nd}d_weight", ["input", "weight_size", "grad_output"], conv),
            (f"conv_transpose{nd}d_input", ["input_size", "weight", "grad_output"], tconv),
            (f"conv_transpose{nd}d_weight", ["input", "weight_size", "grad_output"], tconv)):
        sig = inspect.signature(getattr(pgrad, name))
        params = list(sig.parameters)
        assert params[:len(first) + len(rest)] == first + rest, name
        assert "backend" in sig.parameters, name
        assert sig.parameters["backend"].kind is inspect.Parameter.KEYWORD_ONLY


# --------------------------------------------------------------------------
# finite differences on fixed geometries (the hypothesis version is in test_properties)

FD_CASES = [
    (1, (2, 2, 9), (3, 2, 4), dict(stride=2, padding=2)),
    (1, (1, 4, 10), (4, 1, 3), dict(stride=3, padding=1, dilation=2, groups=4)),
    (2, (2, 4, 7, 6), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                                         groups=2)),
    (3, (1, 2, 4, 5, 3), (2, 2, 2, 3, 1), dict(stride=2, padding=(0, 1, 1))),
]


def _real_dot(a, b):
    return float(np.real(np.sum(np.conj(a) * b)))


@pytest.mark.parametrize("dt", ["float64", "complex128"])
@pytest.mark.parametrize("nd,xs,ws,kw", FD_CASES, ids=[f"{c[0]}d-{i}" for i, c in
                                                      enumerate(FD_CASES)])
def test_finite_differences(nd, xs, ws, kw, dt, backend):
    """grad = d/dt Re<op(x + t v), gy> for every direction v (conjugate convention)."""
    rng = np.random.default_rng(sum(xs) + len(dt))
    conv = getattr(pyconv, f"conv{nd}d")
    tconv = getattr(pyconv, f"conv_transpose{nd}d")
    x = randn(rng, xs, dt)
    w = randn(rng, ws, dt)
    y = conv(x, w, **kw, backend=backend)
    gy = randn(rng, y.shape, dt)
    out_pad = tuple(s - ((o - 1) * st - 2 * p + d * (k - 1) + 1) for s, o, st, p, d, k in zip(
        xs[2:], y.shape[2:], _n(kw.get("stride", 1), nd), _n(kw.get("padding", 0), nd),
        _n(kw.get("dilation", 1), nd), ws[2:]))
    tkw = dict(stride=kw.get("stride", 1), padding=kw.get("padding", 0), output_padding=out_pad,
               groups=kw.get("groups", 1), dilation=kw.get("dilation", 1))
    h = 1e-4

    def check_dir(loss, a, grad, label):
        v = randn(rng, a.shape, dt)
        fd = (loss(a + h * v) - loss(a - h * v)) / (2 * h)
        an = _real_dot(grad, v)
        assert abs(fd - an) <= 1e-7 * (1 + abs(an)), f"{label}: fd {fd} vs grad {an}"

    gi = getattr(pgrad, f"conv{nd}d_input")(xs, w, gy, **kw, backend=backend)
    gw = getattr(pgrad, f"conv{nd}d_weight")(x, ws, gy, **kw, backend=backend)
    assert gi.shape == xs and gw.shape == ws and gi.dtype == gw.dtype == np.dtype(dt)
    check_dir(lambda a: _real_dot(gy, conv(a, w, **kw, backend=backend)), x, gi, "conv_input")
    check_dir(lambda a: _real_dot(gy, conv(x, a, **kw, backend=backend)), w, gw, "conv_weight")

    # transposed op: input z with y's shape, output x's shape
    z, gz = gy, randn(rng, xs, dt)
    tgi = getattr(pgrad, f"conv_transpose{nd}d_input")(z.shape, w, gz, **tkw, backend=backend)
    tgw = getattr(pgrad, f"conv_transpose{nd}d_weight")(z, ws, gz, **tkw, backend=backend)
    assert tgi.shape == z.shape and tgw.shape == ws
    check_dir(lambda a: _real_dot(gz, tconv(a, w, **tkw, backend=backend)), z, tgi,
              "conv_transpose_input")
    check_dir(lambda a: _real_dot(gz, tconv(z, a, **tkw, backend=backend)), w, tgw,
              "conv_transpose_weight")


def _n(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


# --------------------------------------------------------------------------
# relations between the functions

def test_input_grad_is_transposed_conv(backend, rng):
    """conv input gradient == conv_transpose(gy, w) with the regrowing output_padding."""
    x = rng.standard_normal((2, 4, 10, 9))
    w = rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=3, padding=1, dilation=2, groups=2)
    y = pyconv.conv2d(x, w, **kw, backend=backend)
    gy = rng.standard_normal(y.shape)
    gi = pgrad.conv2d_input(x.shape, w, gy, **kw, backend=backend)
    # (O-1)*s - 2p + d(K-1) + 1 = (3-1)*3 - 2 + 4 + 1 = 9 -> op (1, 0)
    assert y.shape[2:] == (3, 3)
    t = pyconv.conv_transpose2d(gy, w, stride=3, padding=1, output_padding=(1, 0), groups=2,
                                dilation=2, backend=backend)
    assert_close(gi, t, np.float64, "conv2d_input vs conv_transpose2d")
    # and the transposed op's input gradient is the conv
    gt = pgrad.conv_transpose2d_input(y.shape, w, x, stride=3, padding=1, output_padding=(1, 0),
                                      groups=2, dilation=2, backend=backend)
    assert_close(gt, pyconv.conv2d(x, w, **kw, backend=backend), np.float64,
                 "conv_transpose2d_input vs conv2d")


def test_transposed_weight_grad_swaps_roles(backend, rng):
    """conv_transpose weight grad(x, gy) == conv weight grad with input gy, grad_output x."""
    z = rng.standard_normal((2, 6, 4, 4))
    w_shape = (6, 2, 3, 3)
    gy = rng.standard_normal((2, 4, 9, 9))
    kw = dict(stride=2, padding=0, groups=2)
    a = pgrad.conv_transpose2d_weight(z, w_shape, gy, **kw, output_padding=0, dilation=1,
                                      backend=backend)
    b = pgrad.conv2d_weight(gy, w_shape, z, **kw, backend=backend)
    assert_close(a, b, np.float64, "transposed weight grad")


def test_remainder_positions_get_zero_gradient(backend, rng):
    """Input positions a strided conv never reads have zero input gradient."""
    w = rng.standard_normal((1, 1, 2))
    gy = rng.standard_normal((1, 1, 3))
    gi = pgrad.conv1d_input((1, 1, 8), w, gy, stride=3, backend=backend)
    assert gi.shape == (1, 1, 8)
    assert gi[0, 0, 2] == 0 and gi[0, 0, 5] == 0 and np.all(gi[0, 0, 8:] == 0)
    gi9 = pgrad.conv1d_input((1, 1, 9), w, gy, stride=3, backend=backend)
    assert gi9.shape == (1, 1, 9) and gi9[0, 0, 8] == 0
    assert_close(gi9[..., :8], gi, np.float64, "floor remainder")


def test_empty_gradients(backend, rng):
    w = rng.standard_normal((3, 2, 3, 3))
    gi = pgrad.conv2d_input((0, 2, 5, 5), w, np.zeros((0, 3, 3, 3)), backend=backend)
    assert gi.shape == (0, 2, 5, 5)
    gw = pgrad.conv2d_weight(np.zeros((0, 2, 5, 5)), (3, 2, 3, 3), np.zeros((0, 3, 3, 3)),
                             backend=backend)
    assert gw.shape == (3, 2, 3, 3) and np.all(gw == 0)
    tgw = pgrad.conv_transpose2d_weight(np.zeros((0, 3, 3, 3)), (3, 2, 3, 3),
                                        np.zeros((0, 2, 5, 5)), backend=backend)
    assert tgw.shape == (3, 2, 3, 3) and np.all(tgw == 0)


@pytest.mark.parametrize("dt", ["float16", "float32", "float64", "complex64"])
def test_grad_dtypes(dt, backend, rng):
    x = randn(rng, (2, 2, 6), dt)
    w = randn(rng, (3, 2, 3), dt)
    gy = randn(rng, (2, 3, 4), dt)
    assert pgrad.conv1d_input(x.shape, w, gy, backend=backend).dtype == np.dtype(dt)
    assert pgrad.conv1d_weight(x, w.shape, gy, backend=backend).dtype == np.dtype(dt)
    # float16: computed in float32, rounded once
    if dt == "float16":
        exact = pgrad.conv1d_weight(x.astype(np.float64), w.shape, gy.astype(np.float64),
                                    backend="reference")
        got = pgrad.conv1d_weight(x, w.shape, gy, backend=backend)
        assert_close(got, exact.astype(np.float16), "float16", "fp16 weight grad")


def test_grad_output_shape_checked(front_layer, rng):
    w = rng.standard_normal((3, 2, 3))
    with pytest.raises(ValueError, match="grad_output"):
        pgrad.conv1d_input((2, 2, 6), w, rng.standard_normal((2, 3, 5)), backend=front_layer)
    with pytest.raises(ValueError, match="grad_output"):
        pgrad.conv1d_weight(rng.standard_normal((2, 2, 6)), (3, 2, 3),
                            rng.standard_normal((2, 3, 3)), backend=front_layer)
    with pytest.raises(ValueError, match="grad_output"):
        pgrad.conv_transpose1d_input((2, 2, 6), rng.standard_normal((2, 3, 3)),
                                     rng.standard_normal((2, 3, 7)), backend=front_layer)


def test_sizes_must_be_full_shapes(front_layer, rng):
    w = rng.standard_normal((6, 2, 3))
    gy = rng.standard_normal((1, 6, 7))
    with pytest.raises((ValueError, TypeError)):
        pgrad.conv1d_input((9,), w, gy, backend=front_layer)
    with pytest.raises(TypeError):
        pgrad.conv1d_input(9, w, gy, backend=front_layer)
    with pytest.raises((ValueError, TypeError)):
        pgrad.conv1d_weight(rng.standard_normal((1, 2, 9)), (3,), gy, backend=front_layer)


def test_any_input_size_consistent_with_grad_output(backend, rng):
    """input_size anywhere in [min, min + s - 1] is accepted (the implied op)."""
    w = rng.standard_normal((2, 1, 3))
    gy = rng.standard_normal((1, 2, 4))
    for L in (9, 10):  # stride 2, K 3: min 9, max 10
        assert pgrad.conv1d_input((1, 1, L), w, gy, stride=2, backend=backend).shape == (1, 1, L)
    with pytest.raises(ValueError):
        pgrad.conv1d_input((1, 1, 12), w, gy, stride=2, backend=backend)


def test_grad_input_size_of_wrong_rank_names_input_size(front_layer):
    with pytest.raises(ValueError, match="input_size"):
        pgrad.conv1d_input((9,), np.ones((6, 2, 3)), np.ones((1, 6, 7)), backend=front_layer)
    with pytest.raises(ValueError, match="input_size"):
        pgrad.conv_transpose2d_input((2, 3), np.ones((2, 6, 3, 3)), np.ones((1, 6, 7, 7)),
                                     backend=front_layer)
