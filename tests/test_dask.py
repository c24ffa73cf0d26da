"""pyconv on Dask arrays (docs/dask.rst): every op, gradient and module, lazily.

Every Dask result is compared with the in-memory call on the same data: the
shape, the dtype and the values.  Values are compared within the suite's
float tolerance (``helpers.assert_close``), not bitwise: a block may take
another kernel path than the whole array (direct loops, implicit GEMM, BLAS
are chosen from the block's own sizes), which sums the same products in
another order.  A window that reads one wrong input element, or a padding
mode applied at a chunk border, is an O(1) error and fails.  On the
``reference`` backend, whose per-element loop order does not depend on the
sizes, forward results are checked bitwise.

Chunkings are drawn at random (seeded per case): one-element chunks, chunks
smaller than the halo, uneven chunks and whole axes, on the batch, channel
and spatial axes.  The wide matrix runs on Dask's threaded scheduler; a
representative subset runs on a ``dask.distributed`` ``LocalCluster`` with
two process workers, started once for the session.  Dask, distributed and
zarr come with the ``test`` extra: none of these tests is skipped.
"""

from __future__ import annotations

import itertools
import os

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyconv
from pyconv import _registry
from pyconv import functional as F
from pyconv import grad as pgrad
from pyconv._dask import _tasks
from pyconv._windows import pieces, source_index

from helpers import assert_close, randn
from test_functional import CONV_GRID, TCONV_GRID

CONV = {1: pyconv.conv1d, 2: pyconv.conv2d, 3: pyconv.conv3d}
TCONV = {1: pyconv.conv_transpose1d, 2: pyconv.conv_transpose2d, 3: pyconv.conv_transpose3d}
MODES = ("zeros", "reflect", "replicate", "circular")


# --------------------------------------------------------------------------
# helpers

def random_chunks(rng, shape, small=2, max_blocks=200):
    """A random chunking of ``shape``: per axis whole, ones, smaller than ``small``, uneven.

    Drawn again while it has more than ``max_blocks`` blocks (test time).
    """
    while True:
        chunks = _draw_chunks(rng, shape, small)
        if np.prod([len(c) for c in chunks]) <= max_blocks:
            return chunks


def _draw_chunks(rng, shape, small):
    out = []
    for n in shape:
        style = rng.integers(4) if n > 1 else 0
        if style == 0:
            out.append((n,))
        elif style == 1:
            out.append((1,) * n)
        else:
            top = max(1, small - 1) if style == 2 else max(1, n - 1)
            sizes = []
            while sum(sizes) < n:
                sizes.append(int(min(rng.integers(1, top + 1), n - sum(sizes))))
            out.append(tuple(sizes))
    return tuple(out)


def chunked(rng, a, small=2):
    """``a`` as a Dask array with a random chunking."""
    return da.from_array(a, chunks=random_chunks(rng, a.shape, small))


def check(lazy, expected, label="", scheduler="threads", rtol=None):
    """``lazy`` is a Dask array matching ``expected`` in shape, dtype and values."""
    assert isinstance(lazy, da.Array), f"{label}: got {type(lazy).__name__}"
    assert lazy.shape == expected.shape, f"{label}: shape {lazy.shape} != {expected.shape}"
    assert lazy.dtype == expected.dtype, f"{label}: dtype {lazy.dtype} != {expected.dtype}"
    got = lazy.compute(scheduler=scheduler)
    assert got.dtype == expected.dtype, label
    assert_close(got, expected, label=label, rtol=rtol)
    return got


def _explode(block):
    raise AssertionError("a Dask source was computed while the graph was built")


def poisoned(shape, dtype=np.float64, chunks=2):
    """A Dask array that fails if it is ever computed."""
    return da.zeros(shape, dtype=dtype, chunks=chunks).map_blocks(_explode, dtype=dtype)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster with two process workers (one thread each) and its client."""
    from distributed import Client, LocalCluster

    saved = {k: os.environ.get(k) for k in dask.config.get(
        "distributed.nanny.pre-spawn-environ", {})}
    cloudpickle.register_pickle_by_value(__import__(__name__))
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40)
    # the nanny leaves its worker environment (OMP_NUM_THREADS=1 ...) in this process
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    client = Client(lc, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        lc.close()
        cloudpickle.unregister_pickle_by_value(__import__(__name__))


# --------------------------------------------------------------------------
# the shared matrix on the threaded scheduler

@pytest.mark.parametrize("nd,S,K,stride,padding,dilation,groups", CONV_GRID,
                         ids=[f"{g[0]}d-s{g[3]}-p{g[4]}-d{g[5]}-g{g[6]}" for g in CONV_GRID])
def test_conv_matrix(nd, S, K, stride, padding, dilation, groups):
    rng = np.random.default_rng([nd, stride, padding, dilation, groups])
    x = rng.standard_normal((3, 2 * groups) + S)
    w = rng.standard_normal((2 * groups, 2) + K)
    b = rng.standard_normal(2 * groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check(CONV[nd](chunked(rng, x, dilation * 2), w, b, **kw), CONV[nd](x, w, b, **kw),
          f"conv{nd}d {kw}")


@pytest.mark.parametrize("nd,S,K,stride,padding,dilation,groups,op", TCONV_GRID,
                         ids=[f"{g[0]}d-s{g[3]}-p{g[4]}-d{g[5]}-g{g[6]}-op{g[7]}"
                              for g in TCONV_GRID])
def test_conv_transpose_matrix(nd, S, K, stride, padding, dilation, groups, op):
    rng = np.random.default_rng([nd, stride, padding, dilation, groups, op, 1])
    x = rng.standard_normal((3, 2 * groups) + S)
    w = rng.standard_normal((2 * groups, 3) + K)
    b = rng.standard_normal(3 * groups)
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=groups,
              dilation=dilation)
    check(TCONV[nd](chunked(rng, x), w, b, **kw), TCONV[nd](x, w, b, **kw),
          f"conv_transpose{nd}d {kw}")


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", ["same", "valid", 1, 3])
def test_padding_modes_at_global_borders(nd, mode, padding):
    """Each mode pads the array's border only; chunks smaller than the pad included."""
    rng = np.random.default_rng([nd, MODES.index(mode), ["same", "valid", 1, 3].index(padding)])
    S = (11, 7, 5)[:nd]
    K = (4, 3, 2)[:nd]            # even kernels: 'same' pads asymmetrically
    if padding == 3:
        K = (3, 3, 1)[:nd]
    x = rng.standard_normal((2, 3) + S)
    w = rng.standard_normal((2, 3) + K)
    kw = dict(padding=padding, padding_mode=mode, dilation=2 if nd < 3 else 1)
    for trial in range(2):
        xd = chunked(rng, x, small=3)
        check(CONV[nd](xd, w, **kw), CONV[nd](x, w, **kw), f"{mode} {kw} chunks {xd.chunks}")


@pytest.mark.parametrize("mode", MODES[1:])
def test_padding_mode_with_strides_and_one_element_chunks(mode):
    rng = np.random.default_rng(MODES.index(mode))
    x = rng.standard_normal((1, 2, 9, 8))
    w = rng.standard_normal((3, 2, 3, 3))
    kw = dict(stride=(2, 3), padding=(2, 1), padding_mode=mode)
    xd = da.from_array(x, chunks=(1, 1, 1, 1))
    check(pyconv.conv2d(xd, w, **kw), pyconv.conv2d(x, w, **kw), mode)
    # circular may wrap a full input length
    if mode == "circular":
        kw = dict(padding=(9, 8), padding_mode=mode)
        check(pyconv.conv2d(da.from_array(x, chunks=(1, 2, 4, 3)), w, **kw),
              pyconv.conv2d(x, w, **kw), "circular full wrap")


def test_output_size_and_unbatched():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 5, 4))          # unbatched (C, D, H, W)
    w = rng.standard_normal((3, 2, 3, 2, 3))
    for size in [(13, 12, 12), (14, 14, 13), [2, 14, 13, 14], (15, 12, 12)]:
        kw = dict(stride=(2, 3, 3), padding=(0, 1, 0), output_size=size)
        try:
            expected = pyconv.conv_transpose3d(x, w, **kw)
        except ValueError as exc:
            with pytest.raises(ValueError) as got:
                pyconv.conv_transpose3d(poisoned(x.shape), w, **kw)
            assert str(got.value) == str(exc)
            continue
        check(pyconv.conv_transpose3d(chunked(rng, x), w, **kw), expected, f"{size}")
    x1 = rng.standard_normal((4, 17))              # unbatched 1-d
    w1 = rng.standard_normal((5, 4, 3))
    for kw in (dict(padding="same"), dict(stride=3, padding=2, dilation=2)):
        check(pyconv.conv1d(chunked(rng, x1), w1, **kw), pyconv.conv1d(x1, w1, **kw), f"{kw}")


def test_output_chunks_follow_input_chunks():
    """'same' keeps the chunks, stride 2 halves them, a 2x upsampling doubles them."""
    x = da.zeros((2, 3, 40, 30), chunks=(1, 3, 10, 15))
    w = np.ones((4, 3, 3, 3))
    assert pyconv.conv2d(x, w, padding="same").chunks == ((1, 1), (4,), (10,) * 4, (15, 15))
    assert pyconv.conv2d(x, w, stride=2, padding=1).chunks[2:] == ((5,) * 4, (8, 7))
    up = pyconv.conv_transpose2d(x, np.ones((3, 2, 4, 4)), stride=2, padding=1)
    assert up.chunks[2:] == ((20,) * 4, (30, 30))


def test_zero_size_chunks_and_empty_arrays():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 12))
    w = rng.standard_normal((4, 3, 3))
    xd = da.from_array(x, chunks=((1, 0, 1), 3, (5, 0, 4, 3, 0)))
    check(pyconv.conv1d(xd, w, padding=2, padding_mode="reflect"),
          pyconv.conv1d(x, w, padding=2, padding_mode="reflect"), "zero-size chunk")
    check(pyconv.conv_transpose1d(xd, w.transpose(1, 0, 2).copy(), stride=2),
          pyconv.conv_transpose1d(x, w.transpose(1, 0, 2).copy(), stride=2), "zero chunk T")
    gy = rng.standard_normal((2, 4, 10))
    gyd = da.from_array(gy, chunks=((0, 2), 4, (3, 0, 7)))
    check(pgrad.conv1d_weight(xd, w.shape, gyd), pgrad.conv1d_weight(x, w.shape, gy), "gw")
    e = np.zeros((0, 3, 12))
    check(pyconv.conv1d(da.from_array(e), w, padding=1), pyconv.conv1d(e, w, padding=1),
          "empty batch")
    check(pgrad.conv1d_weight(da.from_array(e), w.shape, np.zeros((0, 4, 10))),
          pgrad.conv1d_weight(e, w.shape, np.zeros((0, 4, 10))), "empty batch gw")


@pytest.mark.parametrize("dtypes", [
    ("float32", "float32"), ("float16", "float16"), ("float32", "float64"),
    ("int64", "float32"), ("bool", "int32"), ("complex64", "complex64"),
    ("complex128", "float64"), ("float64", "complex128")])
def test_dtypes_follow_in_memory_rules(dtypes):
    rng = np.random.default_rng(len(dtypes[0]) * 7 + len(dtypes[1]))
    xt, wt = (np.dtype(t) for t in dtypes)

    def draw(shape, dt):
        if dt.kind in "biu":
            return rng.integers(0, 2 if dt.kind == "b" else 4, shape).astype(dt)
        return randn(rng, shape, dt)

    x = draw((2, 4, 9, 7), xt)
    w = draw((3, 4, 3, 2), wt)
    b = draw((3,), wt)
    xd = chunked(rng, x)
    check(pyconv.conv2d(xd, w, b, padding=1, stride=(2, 1)),
          pyconv.conv2d(x, w, b, padding=1, stride=(2, 1)), f"conv {dtypes}")
    wt_ = draw((4, 2, 2, 3), wt)
    check(pyconv.conv_transpose2d(xd, wt_, None, stride=2, padding=1),
          pyconv.conv_transpose2d(x, wt_, None, stride=2, padding=1), f"convT {dtypes}")
    gy = draw(pyconv.conv2d(x, w, padding=1).shape, wt)
    check(pgrad.conv2d_weight(xd, w.shape, chunked(rng, gy), padding=1),
          pgrad.conv2d_weight(x, w.shape, gy, padding=1), f"weight grad {dtypes}")


# --------------------------------------------------------------------------
# gradients: all twelve functions

GRAD_CONV_CASES = [dict(), dict(stride=2, padding=1, dilation=2), dict(groups=2, padding="same")]
GRAD_TCONV_CASES = [dict(), dict(stride=2, padding=1, output_padding=1),
                    dict(groups=2, stride=3, dilation=2, output_padding=2)]


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("case", range(3))
def test_conv_gradients(nd, case):
    kw = GRAD_CONV_CASES[case]
    g = kw.get("groups", 1)
    rng = np.random.default_rng([nd, case, 11])
    S, K = (10, 7, 5)[:nd], (3, 2, 3)[:nd]
    x = randn(rng, (3, 2 * g) + S)
    w = randn(rng, (2 * g, 2) + K)
    gy = randn(rng, CONV[nd](x, w, **kw).shape)
    name_i, name_w = f"conv{nd}d_input", f"conv{nd}d_weight"
    fi, fw = getattr(pgrad, name_i), getattr(pgrad, name_w)
    check(fi(x.shape, w, chunked(rng, gy), **kw), fi(x.shape, w, gy, **kw), name_i)
    expected = fw(x, w.shape, gy, **kw)
    check(fw(chunked(rng, x), w.shape, chunked(rng, gy), **kw), expected, name_w)
    check(fw(x, w.shape, chunked(rng, gy), **kw), expected, name_w + " (numpy input)")
    check(fw(chunked(rng, x), w.shape, gy, **kw), expected, name_w + " (numpy grad)")


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("case", range(3))
def test_conv_transpose_gradients(nd, case):
    kw = GRAD_TCONV_CASES[case]
    g = kw.get("groups", 1)
    rng = np.random.default_rng([nd, case, 12])
    S, K = (6, 5, 4)[:nd], (3, 2, 3)[:nd]
    x = randn(rng, (3, 2 * g) + S)
    w = randn(rng, (2 * g, 2) + K)
    gy = randn(rng, TCONV[nd](x, w, **kw).shape)
    name_i, name_w = f"conv_transpose{nd}d_input", f"conv_transpose{nd}d_weight"
    fi, fw = getattr(pgrad, name_i), getattr(pgrad, name_w)
    check(fi(x.shape, w, chunked(rng, gy), **kw), fi(x.shape, w, gy, **kw), name_i)
    check(fw(chunked(rng, x), w.shape, chunked(rng, gy), **kw), fw(x, w.shape, gy, **kw),
          name_w)


def test_gradients_unbatched_and_complex():
    rng = np.random.default_rng(5)
    x = randn(rng, (4, 9, 8), np.complex128)      # unbatched (C, H, W)
    w = randn(rng, (2, 4, 3, 3), np.complex128)
    gy = randn(rng, pyconv.conv2d(x, w, padding=1, stride=2).shape, np.complex128)
    kw = dict(padding=1, stride=2)
    check(pgrad.conv2d_input(x.shape, w, chunked(rng, gy), **kw),
          pgrad.conv2d_input(x.shape, w, gy, **kw), "complex input grad")
    check(pgrad.conv2d_weight(chunked(rng, x), w.shape, chunked(rng, gy), **kw),
          pgrad.conv2d_weight(x, w.shape, gy, **kw), "complex weight grad")
    wt = randn(rng, (4, 3, 2, 2), np.complex128)
    gyt = randn(rng, pyconv.conv_transpose2d(x, wt, stride=2).shape, np.complex128)
    check(pgrad.conv_transpose2d_weight(chunked(rng, x), wt.shape, chunked(rng, gyt), stride=2),
          pgrad.conv_transpose2d_weight(x, wt.shape, gyt, stride=2), "complex T weight grad")


def test_weight_gradient_is_deterministic(cluster):
    """The partial sums reduce in a fixed tree: every scheduler gives the same bits."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3, 40, 30)).astype(np.float32)
    gy = rng.standard_normal((4, 5, 38, 28)).astype(np.float32)
    lazy = pgrad.conv2d_weight(da.from_array(x, chunks=(1, 3, 7, 9)), (5, 3, 3, 3),
                               da.from_array(gy, chunks=(2, 5, 5, 6)))
    runs = [lazy.compute(scheduler=s) for s in ("sync", "threads", cluster, "threads")]
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])
    assert_close(runs[0], pgrad.conv2d_weight(x, (5, 3, 3, 3), gy))


# --------------------------------------------------------------------------
# modules, Dask weights and biases

def test_modules():
    rng = np.random.default_rng(4)
    cases = [(pyconv.Conv1d(3, 4, 3, stride=2, padding=2, padding_mode="circular", rng=0),
              (2, 3, 13), {}),
             (pyconv.Conv2d(3, 4, 4, padding="same", padding_mode="reflect", rng=1),
              (3, 9, 8), {}),
             (pyconv.Conv3d(2, 4, 3, groups=2, dilation=(1, 2, 1), rng=2), (1, 2, 6, 7, 5), {}),
             (pyconv.ConvTranspose1d(3, 2, 3, stride=2, padding=1, rng=3), (2, 3, 7),
              {"output_size": [14]}),
             (pyconv.ConvTranspose2d(4, 2, 4, stride=2, padding=1, groups=2, rng=4),
              (1, 4, 5, 6), {}),
             (pyconv.ConvTranspose3d(2, 3, 2, stride=2, output_padding=1, rng=5),
              (2, 4, 3, 4), {})]
    for m, shape, kw in cases:
        x = rng.standard_normal(shape).astype(np.float32)
        check(m(chunked(rng, x), **kw), m(x, **kw), repr(m))


def test_dask_weight_and_bias():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 11, 9))
    w = rng.standard_normal((6, 4, 3, 3))
    b = rng.standard_normal(6)
    expected = pyconv.conv2d(x, w, b, padding=1)
    wd = da.from_array(w, chunks=(2, 4, 3, 3))       # output channels chunked: fine
    check(pyconv.conv2d(chunked(rng, x), wd, da.from_array(b, chunks=2), padding=1),
          expected, "dask weight")
    check(pyconv.conv2d(x, wd, b, padding=1), expected, "numpy input, dask weight")
    bad = da.from_array(w, chunks=(6, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d\(\): a Dask weight must be one chunk along "
                                         r"the axes the convolution sums over \(axes \[1, 2, 3\]"):
        pyconv.conv2d(chunked(rng, x), bad)
    wt = rng.standard_normal((4, 3, 3, 3))
    expected = pyconv.conv_transpose2d(x, wt, stride=2)
    check(pyconv.conv_transpose2d(chunked(rng, x), da.from_array(wt, chunks=(4, 1, 3, 3)),
                                  stride=2), expected, "dask transposed weight")
    with pytest.raises(ValueError, match=r"axes \[0, 2, 3\].*weight.rechunk\(\{0: -1\}\)"):
        pyconv.conv_transpose2d(x, da.from_array(wt, chunks=(2, 3, 3, 3)), stride=2)
    with pytest.raises(ValueError, match="conv2d_input.*axes \\[0, 2, 3\\]"):
        pgrad.conv2d_input(x.shape, da.from_array(w, chunks=(3, 4, 3, 3)),
                           np.zeros((2, 6, 9, 7)))


# --------------------------------------------------------------------------
# bad input: the in-memory errors, at graph-build time

BAD_CALLS = [
    ("conv2d", (2, 3, 8, 8), (4, 2, 3, 3), {}),                       # channels
    ("conv2d", (2, 4, 8, 8), (4, 2, 3, 3), dict(groups=3)),
    ("conv2d", (2, 3, 8, 8), (4, 3, 3, 3), dict(stride=0)),
    ("conv2d", (2, 3, 8, 8), (4, 3, 3, 3), dict(padding="full")),
    ("conv2d", (2, 3, 8, 8), (4, 3, 3, 3), dict(padding="same", stride=2)),
    ("conv2d", (2, 3, 8, 8), (4, 3, 3, 3), dict(padding=8, padding_mode="reflect")),
    ("conv2d", (2, 3, 2, 8), (4, 3, 3, 3), {}),                       # kernel too large
    ("conv2d", (3, 8, 8), (4, 3, 3), {}),                             # ranks
    ("conv1d", (2, 3, 8), (4, 3, 3), dict(dilation=1.5)),
    ("conv_transpose2d", (2, 3, 8, 8), (3, 2, 3, 3), dict(output_padding=2)),
    ("conv_transpose2d", (2, 3, 8, 8), (3, 2, 3, 3), dict(output_size=(30, 30))),
    ("conv_transpose1d", (2, 3, 8), (3, 2, 3), dict(padding="same")),
    ("conv_transpose3d", (2, 4, 3, 3, 3), (3, 2, 1, 1, 1), {}),
]


@pytest.mark.parametrize("op,xs,ws,kw", BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in
                                                        enumerate(BAD_CALLS)])
def test_errors_are_the_in_memory_ones(op, xs, ws, kw):
    f = getattr(pyconv, op)
    w = np.ones(ws)
    with pytest.raises((ValueError, TypeError)) as expected:
        f(np.zeros(xs), w, **kw)
    with pytest.raises(expected.type) as got:
        f(poisoned(xs), w, **kw)
    assert str(got.value) == str(expected.value)


def test_grad_errors_are_the_in_memory_ones():
    gy = np.zeros((2, 4, 6, 6))
    w = np.ones((4, 3, 3, 3))
    for call in (lambda g: pgrad.conv2d_input((2, 3, 8, 9), w, g),
                 lambda g: pgrad.conv2d_input((2, 3, 8), w, g),
                 lambda g: pgrad.conv2d_weight(np.zeros((2, 3, 8, 9)), (4, 3, 3, 3), g),
                 lambda g: pgrad.conv_transpose2d_weight(np.zeros((2, 4, 8, 8)), (4, 3, 3),
                                                         g)):
        with pytest.raises((ValueError, TypeError)) as expected:
            call(gy)
        with pytest.raises(expected.type) as got:
            call(poisoned(gy.shape))
        assert str(got.value) == str(expected.value)


def test_unsupported_dtype_and_collections():
    with pytest.raises(TypeError, match="input has unsupported dtype <U1"):
        pyconv.conv1d(da.from_array(np.array([[["a", "b", "c"]]])), np.ones((1, 1, 2)))
    with pytest.raises(TypeError, match="weight has unsupported dtype object"):
        pyconv.conv1d(poisoned((1, 1, 3)), np.ones((1, 1, 2), dtype=object))
    delayed = dask.delayed(np.ones)((1, 1, 3))
    with pytest.raises(TypeError, match=r"conv1d\(\): input is a Dask Delayed; pyconv "
                                        "accepts dask.array.Array"):
        pyconv.conv1d(delayed, np.ones((1, 1, 2)))


def test_unknown_chunk_sizes():
    x = da.from_array(np.ones((4, 2, 9)), chunks=(2, 2, 3))
    keep = da.from_array(np.array([True, False, True, True]), chunks=2)
    unknown = x[keep]
    assert np.isnan(unknown.shape[0])
    with pytest.raises(ValueError, match=r"conv1d\(\): input has unknown \(NaN\) chunk sizes.*"
                                         r"input.compute_chunk_sizes\(\)"):
        pyconv.conv1d(unknown, np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="grad_output has unknown"):
        pgrad.conv1d_input((3, 2, 9), np.ones((1, 2, 3)), unknown[:, :1, :7])
    known = unknown.compute_chunk_sizes()
    check(pyconv.conv1d(known, np.ones((1, 2, 3))),
          pyconv.conv1d(x.compute()[[0, 2, 3]], np.ones((1, 2, 3))), "after compute_chunk_sizes")


def test_backend_is_fixed_when_the_graph_is_built(monkeypatch):
    seen = []
    real = F.run

    def spy(prim, call, x, w, b=None, backend=None):
        seen.append(backend)
        return real(prim, call, x, w, b, backend)

    monkeypatch.setattr(F, "run", spy)
    x = da.from_array(np.ones((2, 1, 8)), chunks=(1, 1, 3))
    with pyconv.use_backend("reference"):
        lazy = pyconv.conv1d(x, np.ones((1, 1, 3)), padding=1)
    lazy.compute(scheduler="threads")
    assert seen and set(seen) == {"reference"}
    seen.clear()
    pyconv.conv1d(x, np.ones((1, 1, 3)), backend="cython").compute(scheduler="sync")
    assert set(seen) == {"cython"}
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        pyconv.conv1d(poisoned((2, 1, 8)), np.ones((1, 1, 3)), backend="nope")


# --------------------------------------------------------------------------
# each backend runs the blocks

def test_every_backend(backend):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 4, 10, 9)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    kw = dict(stride=2, padding=1, groups=2)
    xd = chunked(rng, x)
    check(pyconv.conv2d(xd, w, **kw, backend=backend),
          pyconv.conv2d(x, w, **kw, backend=backend), f"conv on {backend}")
    wt = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    check(pyconv.conv_transpose2d(xd, wt, stride=2, backend=backend),
          pyconv.conv_transpose2d(x, wt, stride=2, backend=backend), f"convT on {backend}")


def test_reference_backend_is_bitwise_exact():
    """The reference loops sum each element in a size-independent order: same bits."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    wt = rng.standard_normal((3, 2, 3, 2))
    for xd in (da.from_array(x, chunks=(1, 2, 1, 1)), da.from_array(x, chunks=(2, 1, 4, 3))):
        for kw in (dict(padding=2, padding_mode="reflect", stride=2), dict(padding="same"),
                   dict(padding=1, dilation=2, padding_mode="circular")):
            np.testing.assert_array_equal(
                pyconv.conv2d(xd, w, **kw, backend="reference").compute(),
                pyconv.conv2d(x, w, **kw, backend="reference"))
        kw = dict(stride=3, padding=1, output_padding=2, dilation=2)
        np.testing.assert_array_equal(
            pyconv.conv_transpose2d(xd, wt, **kw, backend="reference").compute(),
            pyconv.conv_transpose2d(x, wt, **kw, backend="reference"))


# --------------------------------------------------------------------------
# threads per task

def test_threads_per_task_threaded(monkeypatch):
    seen = []
    real = F.run

    def spy(*args, **kwargs):
        seen.append(pyconv.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "run", spy)
    x = da.ones((4, 2, 30), chunks=(1, 2, 10))
    w = np.ones((3, 2, 3))
    pyconv.set_num_threads(4)
    try:
        with dask.config.set(num_workers=2):
            pyconv.conv1d(x, w).compute(scheduler="threads")
        assert seen and set(seen) == {2}
        seen.clear()
        with dask.config.set(num_workers=8):
            pyconv.conv1d(x, w).compute(scheduler="threads")
        assert set(seen) == {1}
        seen.clear()
        pyconv.conv1d(x, w).compute(scheduler="sync")    # one task at a time: all 4
        assert set(seen) == {4}
        assert pyconv.get_num_threads() == 4              # the caller's setting is untouched
    finally:
        pyconv.set_num_threads(None)


def _record_threads():
    import pyconv.functional as fn

    real = getattr(fn, "_unspied_run", fn.run)
    fn._unspied_run = real
    fn._seen_threads = []

    def spy(*args, **kwargs):
        fn._seen_threads.append(pyconv.get_num_threads())
        return real(*args, **kwargs)

    fn.run = spy


def _collect_threads(n):
    import pyconv.functional as fn

    seen = list(fn._seen_threads)
    fn.run = fn._unspied_run
    pyconv.set_num_threads(n)
    return seen


def test_threads_per_task_distributed(cluster):
    """A worker with one thread gives each task all of the worker's pyconv threads."""
    x = da.ones((4, 2, 30), chunks=(1, 2, 10))
    cluster.run(_record_threads)
    cluster.run(pyconv.set_num_threads, 3)
    pyconv.conv1d(x, np.ones((3, 2, 3))).compute(scheduler=cluster)
    seen = cluster.run(_collect_threads, None)
    counts = [t for per_worker in seen.values() for t in per_worker]
    assert len(counts) == 12 and set(counts) == {3}     # 4 x 3 blocks
    slots = cluster.run(lambda: _tasks.task_slots())   # outside a task: not a worker thread
    assert all(s >= 1 for s in slots.values())


# --------------------------------------------------------------------------
# the representative subset on dask.distributed

def _distributed_cases(rng):
    """(label, lazy call, in-memory call) pairs covering every op family once."""
    f32 = np.float32
    x3 = rng.standard_normal((3, 4, 12, 10, 9)).astype(f32)
    w3 = rng.standard_normal((4, 2, 3, 3, 2)).astype(f32)
    kw3 = dict(padding=(2, 1, 1), padding_mode="reflect", stride=(2, 1, 2), groups=2)
    wt3 = rng.standard_normal((4, 3, 4, 4, 4)).astype(f32)
    x2 = rng.standard_normal((3, 4, 17, 15)).astype(f32)
    w2 = rng.standard_normal((5, 4, 3, 3)).astype(f32)
    gy2 = rng.standard_normal((3, 5, 9, 15)).astype(f32)
    kw2 = dict(stride=(2, 1), padding=1)
    x1 = rng.standard_normal((4, 50)).astype(f32)                  # unbatched
    wt1 = rng.standard_normal((4, 2, 3)).astype(f32)
    gyt1 = rng.standard_normal(pyconv.conv_transpose1d(x1, wt1, stride=3).shape).astype(f32)
    m = pyconv.Conv1d(4, 6, 5, padding="same", padding_mode="circular", rng=0)
    return {
        "conv3d-reflect-strided-groups": (
            lambda a: pyconv.conv3d(a(x3, 3), w3, **kw3), lambda: pyconv.conv3d(x3, w3, **kw3)),
        "conv_transpose3d-upsampling": (
            lambda a: pyconv.conv_transpose3d(a(x3, 3), wt3, stride=2, padding=1),
            lambda: pyconv.conv_transpose3d(x3, wt3, stride=2, padding=1)),
        "conv2d_weight": (
            lambda a: pgrad.conv2d_weight(a(x2), w2.shape, a(gy2), **kw2),
            lambda: pgrad.conv2d_weight(x2, w2.shape, gy2, **kw2)),
        "conv2d_input": (
            lambda a: pgrad.conv2d_input(x2.shape, w2, a(gy2), **kw2),
            lambda: pgrad.conv2d_input(x2.shape, w2, gy2, **kw2)),
        "conv_transpose1d_weight-unbatched": (
            lambda a: pgrad.conv_transpose1d_weight(a(x1), wt1.shape, a(gyt1), stride=3),
            lambda: pgrad.conv_transpose1d_weight(x1, wt1.shape, gyt1, stride=3)),
        "Conv1d-module-circular": (lambda a: m(a(x1[None])), lambda: m(x1[None])),
    }


DISTRIBUTED_CASES = list(_distributed_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("case", DISTRIBUTED_CASES)
def test_distributed(case, cluster):
    rng = np.random.default_rng(DISTRIBUTED_CASES.index(case))
    lazy, in_memory = _distributed_cases(rng)[case]
    check(lazy(lambda a, small=2: chunked(rng, a, small)), in_memory(), case,
          scheduler=cluster)


# --------------------------------------------------------------------------
# the window arithmetic, and a property test over random 1-d geometries

@pytest.mark.parametrize("mode", MODES[1:])
def test_source_index_is_np_pad(mode):
    numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    for size in (1, 2, 5):
        for lo in range(0, size + 1):
            hi = lo
            if mode == "reflect" and lo >= size:
                continue
            expected = np.pad(np.arange(size), (lo, hi), mode=numpy_mode)
            got = source_index(np.arange(-lo, size + hi), size, mode)
            np.testing.assert_array_equal(got, expected)


def test_pieces_cover_runs_in_order():
    bounds = [0, 3, 3, 4, 9]          # one empty chunk
    assert pieces(bounds, [(2, 6)]) == [(0, 2, 3), (2, 0, 1), (3, 0, 2)]
    assert pieces(bounds, [(7, 9), (0, 1)]) == [(3, 3, 5), (0, 0, 1)]
    assert pieces(bounds, []) == []


GEOMETRY = st.fixed_dictionaries({
    "size": st.integers(1, 14), "kernel": st.integers(1, 4), "stride": st.integers(1, 3),
    "dilation": st.integers(1, 3), "padding": st.integers(0, 5),
    "output_padding": st.integers(0, 2), "mode": st.sampled_from(MODES),
    "cuts": st.lists(st.integers(1, 13), max_size=6), "batch_cut": st.booleans()})


@settings(max_examples=int(os.environ.get("PYCONV_HYPOTHESIS_EXAMPLES", "25")) * 6,
          deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(g=GEOMETRY)
def test_random_1d_geometries(g):
    """Any 1-d geometry and chunking: the Dask result or error is the in-memory one."""
    rng = np.random.default_rng(g["size"] * 31 + g["kernel"])
    n = g["size"]
    cuts = sorted({c for c in g["cuts"] if c < n})
    chunks = tuple(np.diff([0] + cuts + [n]).tolist())
    x = rng.standard_normal((2, 2, n))
    xd = da.from_array(x, chunks=((1, 1) if g["batch_cut"] else (2,), (2,), chunks))
    w = rng.standard_normal((3, 2, g["kernel"]))
    kw = dict(stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
              padding_mode=g["mode"])
    calls = [(pyconv.conv1d, w, kw),
             (pyconv.conv_transpose1d, w.transpose(1, 0, 2).copy(),
              dict(stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
                   output_padding=g["output_padding"]))]
    for f, weight, args in calls:
        try:
            expected = f(x, weight, **args)
        except ValueError as exc:
            with pytest.raises(ValueError) as got:
                f(xd, weight, **args)
            assert str(got.value) == str(exc)
            continue
        check(f(xd, weight, **args), expected, f"{f.__name__} {args} chunks {chunks}",
              scheduler="sync")


@pytest.mark.slow
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_random_chunkings_many(nd):
    """Many random chunkings of one strided, dilated, padded geometry per dim count."""
    rng = np.random.default_rng(nd)
    S = (23, 13, 9)[:nd]
    x = rng.standard_normal((3, 4) + S)
    w = rng.standard_normal((4, 2) + (3,) * nd)
    for mode, trial in itertools.product(MODES, range(10)):
        kw = dict(stride=2, padding=2, dilation=2, groups=2, padding_mode=mode)
        check(CONV[nd](chunked(rng, x, 5), w, **kw), CONV[nd](x, w, **kw), f"{mode} {trial}")
        kwt = dict(stride=3, padding=1, dilation=2, output_padding=1, groups=2)
        check(TCONV[nd](chunked(rng, x, 5), w, **kwt), TCONV[nd](x, w, **kwt), f"T {trial}")


def test_registry_context_threads_is_local():
    """The per-task thread limit is context-local and restored."""
    before = pyconv.get_num_threads()
    with _registry.context_threads(1):
        assert pyconv.get_num_threads() == 1
    assert pyconv.get_num_threads() == before


def test_docs_page_examples():
    """The ``>>>`` examples of docs/dask.rst run and print what the page says."""
    import doctest

    from test_docs import DOCS, _examples

    source = _examples("dask.rst")
    assert source.count(">>>") >= 5
    test = doctest.DocTestParser().get_doctest(source, {}, "dask.rst",
                                               os.path.join(DOCS, "dask.rst"), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
