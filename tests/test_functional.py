"""The six functional ops: signatures, argument forms, and every argument
against an independent NumPy implementation of the formulas in docs/semantics.rst
("What is computed"), on every backend."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

import pyconv
from pyconv import _spec

from helpers import assert_close, conv_out, np_conv, np_conv_transpose, tconv_out

CONV_PARAMS = ["input", "weight", "bias", "stride", "padding", "dilation", "groups",
               "padding_mode", "backend"]
TCONV_PARAMS = ["input", "weight", "bias", "stride", "padding", "output_padding", "groups",
                "dilation", "output_size", "backend"]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_signatures(nd):
    for name, names, kwonly in ((f"conv{nd}d", CONV_PARAMS, {"padding_mode", "backend"}),
                                (f"conv_transpose{nd}d", TCONV_PARAMS,
                                 {"output_size", "backend"})):
        sig = inspect.signature(getattr(pyconv, name))
        assert list(sig.parameters) == names, name
        for p in sig.parameters.values():
            assert (p.kind is inspect.Parameter.KEYWORD_ONLY) == (p.name in kwonly), (name, p)
        defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1,
                    "output_padding": 0, "padding_mode": "zeros", "backend": None,
                    "output_size": None}
        for pname, value in defaults.items():
            if pname in sig.parameters:
                assert sig.parameters[pname].default == value, (name, pname)


def test_public_names():
    for name in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
                 "ConvTranspose2d", "ConvTranspose3d", "grad", "backends", "get_backend",
                 "set_backend", "use_backend", "set_num_threads", "BackendUnavailableError"):
        assert hasattr(pyconv, name), name
    assert pyconv.conv2d is pyconv.functional.conv2d


def test_positional_order_transposed(backend, rng):
    """groups comes before dilation in the transposed family."""
    x = rng.standard_normal((1, 4, 5))
    w = rng.standard_normal((4, 1, 3))
    by_kw = pyconv.conv_transpose1d(x, w, None, stride=2, padding=1, output_padding=1, groups=2,
                                    dilation=3, backend=backend)
    by_pos = pyconv.conv_transpose1d(x, w, None, 2, 1, 1, 2, 3, backend=backend)
    assert_close(by_pos, by_kw, np.float64, "positional", rtol=0)
    assert by_kw.shape == (1, 2, tconv_out(5, 3, 2, 1, 1, 3))
    y1 = pyconv.conv1d(x, rng.standard_normal((2, 2, 3)), None, 2, 1, 2, 2, backend=backend)
    assert y1.shape == (1, 2, conv_out(5, 3, 2, 1, 2))


# --------------------------------------------------------------------------
# every argument vs the NumPy oracle

def _grid_conv():
    for nd in (1, 2, 3):
        S = (8, 6, 4)[:nd]
        for (stride, padding, dilation, groups) in itertools.product(
                (1, 2), (0, 1), (1, 2), (1, 2)):
            K = (3, 2, 2)[:nd]
            eff_ok = all(s + 2 * padding >= dilation * (k - 1) + 1 for s, k in zip(S, K))
            if eff_ok:
                yield nd, S, K, stride, padding, dilation, groups


CONV_GRID = list(_grid_conv())


@pytest.mark.parametrize("nd,S,K,stride,padding,dilation,groups", CONV_GRID,
                         ids=[f"{g[0]}d-s{g[3]}-p{g[4]}-d{g[5]}-g{g[6]}" for g in CONV_GRID])
def test_conv_grid(nd, S, K, stride, padding, dilation, groups, backend):
    rng = np.random.default_rng(hash((nd, stride, padding, dilation, groups)) % 2**32)
    x = rng.standard_normal((2, 2 * groups) + S)
    w = rng.standard_normal((2 * groups, 2) + K)
    b = rng.standard_normal(2 * groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = getattr(pyconv, f"conv{nd}d")(x, w, b, **kw, backend=backend)
    assert_close(y, np_conv(x, w, b, **kw), np.float64, f"conv{nd}d {kw}")


def _grid_tconv():
    for nd in (1, 2, 3):
        S = (5, 4, 3)[:nd]
        K = (3, 2, 2)[:nd]
        for (stride, padding, dilation, groups, op) in itertools.product(
                (1, 3), (0, 1), (1, 2), (1, 2), (0, 1)):
            if op >= stride and op >= dilation:
                continue
            if any(tconv_out(s, k, stride, padding, op, dilation) < 1 for s, k in zip(S, K)):
                continue
            yield nd, S, K, stride, padding, dilation, groups, op


TCONV_GRID = list(_grid_tconv())


@pytest.mark.parametrize("nd,S,K,stride,padding,dilation,groups,op", TCONV_GRID,
                         ids=[f"{g[0]}d-s{g[3]}-p{g[4]}-d{g[5]}-g{g[6]}-op{g[7]}"
                              for g in TCONV_GRID])
def test_conv_transpose_grid(nd, S, K, stride, padding, dilation, groups, op, backend):
    rng = np.random.default_rng(hash((nd, stride, padding, dilation, groups, op)) % 2**32)
    x = rng.standard_normal((2, 2 * groups) + S)
    w = rng.standard_normal((2 * groups, 3) + K)
    b = rng.standard_normal(3 * groups)
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=groups,
              dilation=dilation)
    y = getattr(pyconv, f"conv_transpose{nd}d")(x, w, b, **kw, backend=backend)
    assert_close(y, np_conv_transpose(x, w, b, **kw), np.float64, f"conv_transpose{nd}d {kw}")


def test_output_padding_cells_get_contributions(backend):
    """#8816: output_padding selects the shape; extra cells are not forced to zero."""
    x = np.ones((1, 1, 3))
    w = np.ones((1, 1, 3))
    y = pyconv.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1, backend=backend)
    # full (uncropped) length 7: [1,1,2,1,2,1,1]; crop 1 at the start, 1-1=0 at the end
    np.testing.assert_array_equal(y.ravel(), [1, 2, 1, 2, 1, 1])


def test_same_padding_equalities(backend, rng):
    """test_conv1d_same_padding: 'same' vs explicit paddings."""
    for L in range(50, 55):
        for k in (1, 2, 3, 8):
            for d in (1, 2, 3):
                x = rng.standard_normal((1, 1, L))
                w = rng.standard_normal((1, 1, k))
                y = pyconv.conv1d(x, w, padding="same", dilation=d, backend=backend)
                assert y.shape == (1, 1, L), (L, k, d)
    x = rng.standard_normal((1, 1, 20))
    for k, kw, drop in ((3, dict(padding=1), 0), (4, dict(padding=3, dilation=2), 0),
                        (4, dict(padding=5, dilation=3), 1)):
        w = rng.standard_normal((1, 1, k))
        same = pyconv.conv1d(x, w, padding="same", dilation=kw.get("dilation", 1),
                             backend=backend)
        explicit = pyconv.conv1d(x, w, **kw, backend=backend)[..., drop:]
        assert_close(same, explicit, np.float64, f"same k={k} {kw}")
    # 2-D: (1,1,10,11) with (4,5): padding (2,2) then drop the first row
    x = rng.standard_normal((1, 1, 10, 11))
    w = rng.standard_normal((1, 1, 4, 5))
    assert_close(pyconv.conv2d(x, w, padding="same", backend=backend),
                 pyconv.conv2d(x, w, padding=(2, 2), backend=backend)[:, :, 1:],
                 np.float64, "same 2d asym")
    w = rng.standard_normal((1, 1, 3, 4))
    assert_close(pyconv.conv2d(x, w, padding="same", dilation=2, backend=backend),
                 pyconv.conv2d(x, w, padding=(2, 3), dilation=2, backend=backend),
                 np.float64, "same 2d dilated")
    w = rng.standard_normal((1, 1, 4, 4))
    assert_close(pyconv.conv2d(x, w, padding="same", dilation=3, backend=backend),
                 pyconv.conv2d(x, w, padding=5, dilation=3, backend=backend)[:, :, 1:, 1:],
                 np.float64, "same 2d d3")
    x = rng.standard_normal((1, 1, 10, 11, 12))
    w = rng.standard_normal((1, 1, 1, 2, 5))
    assert_close(pyconv.conv3d(x, w, padding="same", backend=backend),
                 pyconv.conv3d(x, w, padding=(0, 1, 2), backend=backend)[:, :, :, 1:],
                 np.float64, "same 3d")
    assert_close(pyconv.conv3d(x, w, padding="same", dilation=2, backend=backend),
                 pyconv.conv3d(x, w, padding=(0, 1, 4), dilation=2, backend=backend),
                 np.float64, "same 3d dilated")


def test_valid_is_zero_padding(backend, rng):
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 2))
    assert_close(pyconv.conv2d(x, w, stride=2, padding="valid", dilation=2, backend=backend),
                 pyconv.conv2d(x, w, stride=2, padding=0, dilation=2, backend=backend),
                 np.float64, "valid", rtol=0)


def test_opinfo_error_inputs_as_pyconv(backend, rng):
    """§12.1 error_inputs: the dtype ones are promotions in pyconv; the rest raise."""
    x = rng.integers(0, 3, (1, 1, 4))
    w = rng.integers(0, 3, (1, 1, 2))
    y = pyconv.conv1d(x, w, np.ones(1, np.float32), backend=backend)
    assert y.dtype == np.float64
    y = pyconv.conv1d(x.astype(np.float32), w.astype(np.float32), np.ones(1, np.complex64),
                      backend=backend)
    assert y.dtype == np.complex64
    xf, wf = np.ones((1, 1, 4)), np.ones((1, 1, 2))
    for kw, pat in ((dict(stride=(-1,)), "stride"), (dict(padding=(-1,)), "padding"),
                    (dict(dilation=(-1,)), "dilation")):
        with pytest.raises(ValueError, match=pat):
            pyconv.conv1d(xf, wf, **kw, backend=backend)
    with pytest.raises(ValueError, match="weight"):
        pyconv.conv1d(xf, np.ones((1, 2)), backend=backend)
    with pytest.raises(ValueError, match="at least 3"):
        pyconv.conv1d(np.ones((1, 3, 4)), np.ones((2, 1, 2)), groups=3, backend=backend)


def test_weight_decides_nd(front_layer):
    """nd comes from the weight; the function name only decides the legal input ranks."""
    with pytest.raises(ValueError):
        pyconv.conv1d(np.ones((1, 2, 5)), np.ones((3, 2, 2, 2)), backend=front_layer)
    with pytest.raises(ValueError) as info:
        pyconv.conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 2, 2, 2, 2)), backend=front_layer)
    assert "3" in str(info.value)


def test_returns_ndarray(backend):
    y = pyconv.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), backend=backend)
    assert type(y) is np.ndarray and y.flags.c_contiguous


NATIVE = [
    (1, (2, 4, 11), (6, 2, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    (2, (2, 3, 7, 6), (3, 1, 3, 2), dict(stride=(1, 2), padding=(1, 0), groups=3)),
    (3, (1, 2, 5, 4, 4), (4, 2, 2, 2, 3), dict(stride=2, padding=(1, 0, 1))),
]


@pytest.mark.parametrize("nd,xs,ws,kw", NATIVE, ids=["1d", "2d", "3d"])
def test_native_dtypes(nd, xs, ws, kw, dtype, backend):
    """float32/float64 in, same dtype out, within the dtype's tolerance of float64 math."""
    rng = np.random.default_rng(nd)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = getattr(pyconv, f"conv{nd}d")(x, w, b, **kw, backend=backend)
    assert y.dtype == dtype
    assert_close(y, np_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                            **kw), dtype, f"conv{nd}d {np.dtype(dtype)}")
    wt = rng.standard_normal((xs[1], 2) + ws[2:]).astype(dtype)
    tkw = dict(stride=kw.get("stride", 1), padding=kw.get("padding", 0),
               groups=kw.get("groups", 1), dilation=kw.get("dilation", 1))
    t = getattr(pyconv, f"conv_transpose{nd}d")(x, wt, **tkw, backend=backend)
    assert t.dtype == dtype
    assert_close(t, np_conv_transpose(x.astype(np.float64), wt.astype(np.float64), **tkw),
                 dtype, f"conv_transpose{nd}d {np.dtype(dtype)}")
    gw = getattr(pyconv.grad, f"conv{nd}d_weight")(x, ws, y, **kw, backend=backend)
    assert gw.dtype == dtype and gw.shape == ws


def _conv_backend_cases():
    """PyTorch's test_conv_backend sweep: C_in 6, C_out 12, k 3, groups 3 or 6."""
    for nd in (1, 2, 3):
        S = (7, 8, 9)[:nd] if nd < 3 else (5, 6, 5)
        for n, cin in ((2, 6), (0, 6), (2, 0), (0, 0)):
            for groups in (3, 6):
                for stride, dilation in ((1, 1), (2, 1), (1, 2)):
                    for bias in (True, False):
                        yield nd, S, n, cin, groups, stride, dilation, bias


CONV_BACKEND = list(_conv_backend_cases())


@pytest.mark.parametrize("nd,S,n,cin,groups,stride,dilation,bias", CONV_BACKEND,
                         ids=[f"{c[0]}d-n{c[2]}-c{c[3]}-g{c[4]}-s{c[5]}-d{c[6]}-b{int(c[7])}"
                              for c in CONV_BACKEND])
def test_conv_backend_shapes(nd, S, n, cin, groups, stride, dilation, bias, backend):
    rng = np.random.default_rng(nd * 1000 + n * 100 + cin * 10 + groups + stride + dilation)
    K = (3,) * nd
    x = rng.standard_normal((n, cin) + S)
    w = rng.standard_normal((12, cin // groups) + K)
    b = rng.standard_normal(12) if bias else None
    kw = dict(stride=stride, dilation=dilation, groups=groups)
    y = getattr(pyconv, f"conv{nd}d")(x, w, b, **kw, backend=backend)
    O = tuple(conv_out(s, 3, stride, 0, dilation) for s in S)
    assert y.shape == (n, 12 if cin else 0) + O
    if y.size:
        assert_close(y, np_conv(x, w, b, **kw), np.float64, "conv_backend")
    if cin:  # the transposed op on the conv's output (C_in 12 -> C_out 6)
        wt = rng.standard_normal((12, cin // groups) + K)
        z = rng.standard_normal((n, 12) + O)
        t = getattr(pyconv, f"conv_transpose{nd}d")(z, wt, None, stride=stride, groups=groups,
                                                    dilation=dilation, backend=backend)
        assert t.shape == (n, cin) + tuple(tconv_out(o, 3, stride, 0, 0, dilation) for o in O)
        if t.size:
            assert_close(t, np_conv_transpose(z, wt, stride=stride, groups=groups,
                                              dilation=dilation), np.float64, "tconv_backend")


def test_empty_group_convs(backend):
    """test_group_conv_empty / test_(group_)convTranspose_empty."""
    x = np.zeros((0, 4, 4, 4), np.float32)
    with pyconv.use_backend(backend):
        assert pyconv.Conv2d(4, 4, 3, stride=2, padding=1, groups=4)(x).shape == (0, 4, 2, 2)
        assert pyconv.ConvTranspose2d(4, 4, 3, stride=2, padding=1, groups=4)(x).shape == \
            (0, 4, 7, 7)
        assert pyconv.ConvTranspose2d(4, 4, 3, stride=2, padding=1)(x).shape == (0, 4, 7, 7)


def test_transposed_view_input(backend, rng):
    """test_conv1d_issue_120547: a transposed-view input (1, 16, 1) with groups 16."""
    base = rng.standard_normal((1, 1, 16))
    x = base.transpose(0, 2, 1)
    w = rng.standard_normal((16, 1, 32))
    b = rng.standard_normal(16)
    y = pyconv.conv1d(x, w, b, stride=1, padding=16, groups=16, backend=backend)
    assert_close(y, np_conv(np.ascontiguousarray(x), w, b, padding=16, groups=16), np.float64,
                 "issue 120547")


def test_output_larger_than_memory_is_a_value_error_before_any_work(monkeypatch):
    # a 4 TiB output from a tiny input: named, in bytes, before a backend runs
    with pytest.raises(ValueError, match=r"conv_transpose1d\(\): the output of shape "
                                         r"\[1, 1, \d+\] \(float32\) would need 4\.0 TiB"):
        pyconv.conv_transpose1d(np.ones((1, 1, 2), np.float32), np.ones((1, 1, 1), np.float32),
                                stride=2**40)
    x = np.broadcast_to(np.ones(1), (10**7, 64, 1000))  # a read-only view of one element
    with pytest.raises(ValueError, match=r"conv1d\(\): the output .* would need"):
        pyconv.conv1d(x, np.ones((64, 64, 1)))
    with pytest.raises(ValueError, match=r"conv1d_input\(\): the output"):
        pyconv.grad.conv1d_input((10**7, 64, 1000), np.ones((64, 64, 1)),
                                 np.broadcast_to(np.ones(1), (10**7, 64, 1000)))
    # the limit is this machine's memory: a call below it runs
    monkeypatch.setattr(_spec, "_memory_bytes", lambda: 4 * 8 * 7)
    assert pyconv.conv1d(np.ones((1, 1, 9)), np.ones((4, 1, 3))).shape == (1, 4, 7)
    with pytest.raises(ValueError, match="more than this machine's 224 bytes"):
        pyconv.conv1d(np.ones((1, 1, 10)), np.ones((4, 1, 3)))


def test_padding_as_numpy_array(backend):
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 6))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    got = pyconv.conv2d(x, w, padding=np.array([1, 2]), backend=backend)
    want = pyconv.conv2d(x, w, padding=[1, 2], backend=backend)
    assert got.shape == (1, 3, 5, 8)
    np.testing.assert_array_equal(got, want)
    gx = pyconv.grad.conv2d_input(x.shape, w, np.ones_like(got), padding=np.array([1, 2]),
                                  backend=backend)
    assert gx.shape == x.shape


@pytest.mark.parametrize("bad", [1.5, None, True])
def test_non_int_padding_with_padding_mode_names_padding(bad, front_layer):
    with pytest.raises(TypeError, match="padding"):
        pyconv.conv1d(np.ones((1, 2, 10)), np.ones((3, 2, 3)), padding=bad,
                      padding_mode="reflect", backend=front_layer)


@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
def test_huge_parameters_are_rejected_before_any_backend(name, front_layer):
    with pytest.raises(ValueError, match=name):
        pyconv.conv1d(np.ones((1, 2, 10)), np.ones((3, 2, 3)), backend=front_layer,
                      **{name: 2**63})
    with pytest.raises(ValueError, match="output_padding"):
        pyconv.conv_transpose1d(np.ones((0, 2, 3)), np.ones((2, 2, 3)),
                                output_padding=10**20, backend=front_layer)


def test_a_pickled_call_leaves_its_kept_hash_behind():
    """A call keeps its hash (a memo key), which holds string hashes: those
    differ between processes, so a pickled call (a Dask task) must not carry it."""
    import pickle

    from pyconv._spec import conv_call

    call = conv_call("conv1d", 1, (2, 4, 32), (8, 4, 5), None, 1, "same", 1, 1, "reflect")
    hash(call)
    assert "_hash" in call.__dict__
    clone = pickle.loads(pickle.dumps(call))
    assert "_hash" not in clone.__dict__
    assert clone == call and hash(clone) == hash(call)


def test_memoised_validation_keeps_types_apart(front_layer, monkeypatch):
    """The validated geometry is memoised, but ``True`` is still not the stride 1."""
    monkeypatch.setattr(pyconv._registry, "resolve",
                        lambda *a, **k: pyconv._registry.load_backend("reference"))
    x, w = np.ones((1, 2, 9)), np.ones((3, 2, 3))
    for _ in range(2):
        assert pyconv.conv1d(x, w, stride=1).shape == (1, 3, 7)
        with pytest.raises(TypeError, match="stride"):
            pyconv.conv1d(x, w, stride=True)
        with pytest.raises(TypeError, match="stride"):
            pyconv.conv1d(x, w, stride=(True,))
        assert pyconv.conv1d(x, w, stride=np.int64(2)).shape == (1, 3, 4)
        with pytest.raises(ValueError, match="padding"):
            pyconv.conv1d(x, w, padding=-1)
