"""Tests specific to the ``cython`` backend (the shared matrix runs it too).

* every path of the plan (GEMM, pointwise, direct, multi-tile, slabs, image
  blocks, conv_weight partials) against the reference backend, over a grid
  of geometries: d = 1..3, both dtypes, groups, dilation, strides,
  asymmetric padding, transposed crops with a negative ``hi``;
* bitwise identical results for 1 and 2 threads;
* concurrent calls from several Python threads;
* the workspace bound (planned bytes, and peak RSS of a subprocess);
* an output of more than 2**31 elements (slow).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pyconv
from pyconv._spec import ConvSpec

cy_mod = pytest.importorskip("pyconv._cy")
try:
    CY = cy_mod.load()
except ImportError as exc:  # pragma: no cover - unbuilt checkout
    pytestmark = pytest.mark.skip(reason=f"cython backend unavailable: {exc}")
    CY = None

from pyconv._reference import load as _load_reference  # noqa: E402

REF = _load_reference()


# ---------------------------------------------------------------------------
# helpers

def conv_spec(n, cin, cout, size, k, stride=None, pad=None, dil=None, groups=1):
    """A conv spec; ``pad`` is per dim (lo, hi)."""
    nd = len(size)
    stride = stride or (1,) * nd
    pad = pad or ((0, 0),) * nd
    dil = dil or (1,) * nd
    out = tuple((i + lo + hi - d * (kk - 1) - 1) // s + 1
                for i, (lo, hi), kk, s, d in zip(size, pad, k, stride, dil))
    return ConvSpec(False, n, cin, cout, groups, tuple(size), out, tuple(k), tuple(stride),
                    tuple(pad), tuple(dil))


def transposed_spec(n, cin, cout, size, k, stride=None, pad=None, dil=None, groups=1):
    """A transposed spec; ``pad`` is per dim (lo, hi), hi may be negative."""
    nd = len(size)
    stride = stride or (1,) * nd
    pad = pad or ((0, 0),) * nd
    dil = dil or (1,) * nd
    out = tuple((i - 1) * s - lo - hi + d * (kk - 1) + 1
                for i, (lo, hi), kk, s, d in zip(size, pad, k, stride, dil))
    return ConvSpec(True, n, cin, cout, groups, tuple(size), out, tuple(k), tuple(stride),
                    tuple(pad), tuple(dil))


def arrays(spec, dtype, rng, bias=True):
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    b = rng.standard_normal(spec.out_channels).astype(dtype) if bias else None
    return x, w, b


def assert_close(got, want, dtype, what=""):
    assert got.dtype == np.dtype(dtype), (what, got.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if not (err <= tol * scale).all():
        idx = np.unravel_index(int(np.argmax(err)), err.shape)
        raise AssertionError(
            f"{what}: max error {err.max():.3g} (tol {tol * scale:.3g}) at {idx}: "
            f"got {got[idx]!r}, want {want[idx]!r}")


def run_all(op, spec, dtype, rng, bias=True):
    """(cython result, reference result) of one primitive."""
    if op == "conv_weight":
        x = rng.standard_normal(spec.input_shape).astype(dtype)
        gy = rng.standard_normal(spec.output_shape).astype(dtype)
        return CY.conv_weight(x, gy, spec), REF.conv_weight(x, gy, spec)
    x, w, b = arrays(spec, dtype, rng, bias)
    fn = getattr(CY, op)
    return fn(x, w, b, spec), getattr(REF, op)(x, w, b, spec)


# ---------------------------------------------------------------------------
# geometry grid (small: the reference is Python loops)

CONV_GRID = [
    # 1-d
    conv_spec(2, 3, 8, (11,), (3,)),
    conv_spec(2, 8, 16, (13,), (3,), (2,), ((2, 1),)),
    conv_spec(1, 9, 12, (17,), (4,), (3,), ((0, 3),), (2,)),
    conv_spec(3, 16, 16, (10,), (1,)),                       # pointwise
    conv_spec(2, 6, 6, (12,), (5,), (1,), ((2, 2),), (1,), 6),   # depthwise
    conv_spec(2, 6, 9, (12,), (3,), (2,), ((1, 0),), (2,), 3),   # thin groups
    conv_spec(2, 16, 32, (9,), (2,), (1,), ((0, 0),), (4,), 2),  # dilated, groups
    conv_spec(2, 8, 8, (5,), (3,), (1,), ((4, 4),)),         # padding > kernel
    # 2-d
    conv_spec(2, 4, 8, (7, 6), (3, 3), (1, 1), ((1, 1), (1, 1))),
    conv_spec(1, 8, 16, (9, 8), (3, 2), (2, 1), ((2, 0), (0, 1)), (1, 2)),
    conv_spec(2, 12, 24, (6, 7), (2, 3), (1, 2), ((1, 2), (2, 1)), (2, 1), 3),
    conv_spec(2, 4, 4, (6, 6), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 4),
    conv_spec(2, 16, 8, (5, 4), (1, 1)),
    # 3-d
    conv_spec(1, 4, 8, (5, 4, 6), (3, 2, 3), (1, 1, 2), ((1, 1), (0, 1), (1, 0))),
    conv_spec(2, 8, 16, (4, 5, 5), (2, 2, 2), (2, 1, 1), ((0, 1), (1, 1), (1, 1)), (1, 2, 1)),
    conv_spec(1, 6, 6, (4, 4, 5), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3, (1, 1, 1), 6),
    conv_spec(1, 16, 16, (3, 4, 5), (1, 1, 1)),
]

TRANSPOSED_GRID = [
    transposed_spec(2, 8, 4, (6,), (3,), (2,), ((1, 0),)),
    transposed_spec(2, 8, 16, (7,), (4,), (2,), ((1, 1),)),
    transposed_spec(1, 16, 8, (5,), (3,), (3,), ((2, -1),), (2,)),   # negative hi
    transposed_spec(2, 16, 16, (9,), (1,)),                           # pointwise
    transposed_spec(2, 6, 6, (8,), (3,), (2,), ((1, 0),), (1,), 6),   # depthwise
    transposed_spec(2, 16, 8, (6,), (2,), (1,), ((0, 0),), (3,), 2),
    transposed_spec(2, 8, 8, (4, 5), (3, 3), (2, 2), ((1, 0), (1, -1))),
    transposed_spec(1, 12, 6, (4, 4), (4, 2), (2, 3), ((1, 2), (0, 0)), (1, 2), 3),
    transposed_spec(9, 16, 8, (3, 3), (4, 4), (2, 2), ((1, 1), (1, 1))),  # image blocks
    transposed_spec(2, 4, 4, (3, 4), (3, 3), (1, 2), ((0, 0), (1, 0)), (1, 1), 4),
    transposed_spec(1, 8, 8, (3, 4, 3), (2, 3, 2), (2, 1, 2), ((0, -1), (1, 1), (0, 0))),
    transposed_spec(1, 16, 8, (12, 3, 3), (3, 3, 3), (2, 2, 2), ((1, 0),) * 3),  # slabs
    transposed_spec(2, 8, 16, (2, 3, 3), (2, 2, 2), (2, 2, 2), ((0, 0),) * 3, (1, 1, 1), 2),
]


def _id(spec):
    kind = "T" if spec.transposed else "C"
    return (f"{kind}{spec.nd}d-n{spec.batch}-c{spec.in_channels}-{spec.out_channels}"
            f"-g{spec.groups}-s{'x'.join(map(str, spec.in_size))}"
            f"-k{'x'.join(map(str, spec.kernel_size))}"
            f"-st{'x'.join(map(str, spec.stride))}-d{'x'.join(map(str, spec.dilation))}"
            f"-p{'_'.join(f'{a}.{b}' for a, b in spec.padding)}")


DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]


@pytest.fixture(params=[True, False], ids=["microkernel", "blas"])
def packed(request, monkeypatch):
    """Micro-kernel paths (conv: implicit/packed; conv_transpose: phases, even
    on small images) or the BLAS paths (im2col + GEMM; GEMM + col2im)."""
    monkeypatch.setattr(cy_mod, "PACKED", request.param)
    monkeypatch.setattr(cy_mod, "PHASE_MIN_POSITIONS", 1)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", CONV_GRID, ids=_id)
def test_conv_matches_reference(spec, dtype, rng, packed):
    got, want = run_all("conv", spec, dtype, rng)
    assert_close(got, want, dtype, f"conv {spec}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", CONV_GRID, ids=_id)
def test_conv_weight_matches_reference(spec, dtype, rng, packed):
    got, want = run_all("conv_weight", spec, dtype, rng)
    assert_close(got, want, dtype, f"conv_weight {spec}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", TRANSPOSED_GRID, ids=_id)
def test_conv_transpose_matches_reference(spec, dtype, rng, packed):
    got, want = run_all("conv_transpose", spec, dtype, rng)
    assert_close(got, want, dtype, f"conv_transpose {spec}")


def test_grid_covers_every_path(monkeypatch):
    """The grid above reaches each path of the plan (guards the grid itself)."""
    seen = set()
    for packed in (True, False):
        monkeypatch.setattr(cy_mod, "PACKED", packed)
        for spec in CONV_GRID:
            for op in ("conv", "conv_weight"):
                p = cy_mod.plan(op, spec, np.float32, 2)
                seen.add((op, p.path))
    if cy_mod._packed_params(4)[0] >= 1:
        assert ("conv", "implicit") in seen and ("conv", "packed") in seen
        assert ("conv_weight", "implicit") in seen
        assert ("conv", "strided1d") in seen
        monkeypatch.setattr(cy_mod, "PACKED", True)
        monkeypatch.setattr(cy_mod, "PHASE_MIN_POSITIONS", 1)
        for spec in TRANSPOSED_GRID:
            seen.add(("conv_transpose", cy_mod.plan("conv_transpose", spec, np.float32).path))
        assert ("conv_transpose", "phases") in seen
        monkeypatch.setattr(cy_mod, "PACKED", False)
    for spec in TRANSPOSED_GRID:
        p = cy_mod.plan("conv_transpose", spec, np.float32, 2)
        seen.add(("conv_transpose", p.path))
        if p.images > 1:
            seen.add(("conv_transpose", "images"))
        if p.slabs > 1:
            seen.add(("conv_transpose", "slabs"))
    for op in ("conv", "conv_weight", "conv_transpose"):
        for path in ("gemm", "pointwise", "direct"):
            assert (op, path) in seen, (op, path)
    assert ("conv_transpose", "images") in seen
    assert ("conv_transpose", "slabs") in seen


@pytest.fixture
def tiny_tiles(monkeypatch):
    """Force many small tiles (and so many work items and partials)."""
    monkeypatch.setattr(cy_mod, "TILE_BYTES", 1)
    monkeypatch.setattr(cy_mod, "MIN_TILE", 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    ("conv", conv_spec(2, 8, 8, (23,), (3,), (1,), ((1, 2),))),
    ("conv", conv_spec(2, 8, 16, (7, 9), (3, 3), (2, 1), ((1, 1), (0, 2)))),
    ("conv", conv_spec(1, 8, 8, (10, 4, 5), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3)),
    ("conv", conv_spec(2, 16, 16, (7, 5), (1, 1))),
    ("conv", conv_spec(2, 8, 16, (101,), (5,), (2,), ((2, 2),))),
    ("conv", conv_spec(1, 8, 8, (90,), (4,), (3,), ((5, 1),), (2,))),
    ("conv_weight", conv_spec(3, 8, 8, (23,), (3,), (2,), ((1, 2),))),
    ("conv_weight", conv_spec(2, 8, 16, (7, 9), (3, 3), (1, 1), ((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(2, 16, 16, (7, 5), (1, 1))),
    ("conv_transpose", transposed_spec(1, 8, 8, (19,), (4,), (2,), ((1, 0),))),
    ("conv_transpose", transposed_spec(1, 8, 8, (5, 7), (3, 3), (2, 2), ((1, -1), (1, 0)))),
    ("conv_transpose", transposed_spec(1, 8, 8, (4, 3, 5), (3, 3, 3), (2, 2, 2), ((1, 1),) * 3)),
], ids=lambda c: c[0] + "-" + _id(c[1]))
def test_many_tiles_match_reference(case, dtype, rng, tiny_tiles, packed):
    op, spec = case
    p = cy_mod.plan(op, spec, dtype, 2)
    assert p.path != "direct"
    if p.path in ("gemm", "packed", "strided1d"):
        assert p.tile < max(np.prod(spec.out_size), np.prod(spec.in_size))
    if p.path == "implicit":
        assert p.items > spec.batch
    got, want = run_all(op, spec, dtype, rng)
    assert_close(got, want, dtype, f"{op} {spec}")


@pytest.mark.parametrize("op,spec", [
    ("conv", conv_spec(2, 8, 16, (9, 8), (3, 3), (1, 1), ((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(2, 8, 16, (9, 8), (3, 3), (2, 1), ((1, 1), (1, 1)))),
    ("conv_transpose", transposed_spec(2, 16, 8, (5, 6), (3, 3), (2, 2), ((1, 0), (1, 1)))),
])
def test_read_only_inputs_untouched(op, spec, rng, packed):
    """Read-only inputs are accepted and never written."""
    if op == "conv_weight":
        args = [rng.standard_normal(spec.input_shape).astype(np.float32),
                rng.standard_normal(spec.output_shape).astype(np.float32)]
    else:
        args = list(arrays(spec, np.float32, rng))
    copies = [a.copy() for a in args]
    for a in args:
        a.setflags(write=False)
    got = getattr(CY, op)(*args, spec)
    want = getattr(REF, op)(*copies, spec)
    for a, c in zip(args, copies):
        assert a.tobytes() == c.tobytes()
    assert_close(got, want, np.float32, op)


def test_empty_and_degenerate(rng):
    spec = conv_spec(0, 4, 8, (5,), (3,))
    x, w, b = arrays(spec, np.float32, rng)
    assert CY.conv(x, w, b, spec).shape == (0, 8, 3)
    assert CY.conv_weight(x, np.zeros((0, 8, 3), np.float32), spec).shape == (8, 4, 3)
    assert not CY.conv_weight(x, np.zeros((0, 8, 3), np.float32), spec).any()
    t = transposed_spec(0, 8, 4, (5,), (3,))
    x, w, b = arrays(t, np.float32, rng)
    assert CY.conv_transpose(x, w, b, t).shape == (0, 4, 7)


# ---------------------------------------------------------------------------
# threads

AGNOSTIC_CASES = [
    ("conv", conv_spec(4, 16, 32, (40, 30), (3, 3), (1, 1), ((1, 1), (1, 1)))),
    ("conv", conv_spec(1, 16, 16, (12,), (3,))),              # one item: BLAS threads
    ("conv", conv_spec(1, 512, 512, (256,), (1,))),           # pointwise, one tile
    ("conv", conv_spec(3, 12, 12, (300,), (9,), (1,), ((4, 4),), (1,), 12)),
    ("conv", conv_spec(4, 16, 32, (1000,), (5,), (2,), ((2, 2),))),   # strided 1-d
    ("conv_weight", conv_spec(4, 16, 32, (40, 30), (3, 3), (1, 1), ((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(8, 32, 64, (2000,), (5,))),
    ("conv_weight", conv_spec(3, 12, 12, (300,), (9,), (1,), ((4, 4),), (1,), 12)),
    ("conv_transpose", transposed_spec(2, 32, 16, (9, 9, 9), (3, 3, 3), (2, 2, 2),
                                       ((1, 0),) * 3)),
    ("conv_transpose", transposed_spec(16, 32, 16, (8, 8), (4, 4), (2, 2), ((1, 1),) * 2)),
    ("conv_transpose", transposed_spec(1, 64, 32, (50,), (4,), (2,), ((1, 1),))),
    ("conv_transpose", transposed_spec(3, 6, 6, (50,), (4,), (2,), ((1, 1),), (1,), 6)),
]


@pytest.fixture
def restore_threads():
    yield
    pyconv.set_num_threads(None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AGNOSTIC_CASES, ids=lambda c: c[0] + "-" + _id(c[1]))
def test_bitwise_identical_for_1_and_2_threads(case, dtype, rng, restore_threads, packed):
    op, spec = case
    # the cutting of the work never depends on the thread count
    p1, p2 = cy_mod.plan(op, spec, dtype, 1), cy_mod.plan(op, spec, dtype, 2)
    assert (p1.path, p1.tile, p1.slabs, p1.slots, p1.items, p1.images) == \
           (p2.path, p2.tile, p2.slabs, p2.slots, p2.items, p2.images)
    if op == "conv_weight":
        x = rng.standard_normal(spec.input_shape).astype(dtype)
        gy = rng.standard_normal(spec.output_shape).astype(dtype)
        call = lambda: CY.conv_weight(x, gy, spec)  # noqa: E731
    else:
        x, w, b = arrays(spec, dtype, rng)
        call = lambda: getattr(CY, op)(x, w, b, spec)  # noqa: E731
    results = []
    for n in (1, 2, 1, 2, 3):
        pyconv.set_num_threads(n)
        results.append(call())
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()


def test_plan_threads_rule():
    """OpenMP threads = min(n, items), BLAS always one thread; small work is cut finer."""
    many = conv_spec(8, 64, 64, (56, 56), (3, 3), (1, 1), ((1, 1), (1, 1)))
    p = cy_mod.plan("conv", many, np.float32, 2)
    assert (p.omp_threads, p.blas_threads) == (2, 1)
    p = cy_mod.plan("conv", many, np.float32, 1)
    assert (p.omp_threads, p.blas_threads) == (1, 1)
    # a single image is cut into at least TARGET_ITEMS tiles when it has room
    one = conv_spec(1, 64, 64, (4096,), (3,))
    p = cy_mod.plan("conv", one, np.float32, 2)
    assert p.items >= cy_mod.TARGET_ITEMS and p.omp_threads == 2
    tiny = conv_spec(1, 512, 512, (40,), (1,))
    p = cy_mod.plan("conv", tiny, np.float32, 2)
    assert p.items == 1 and (p.omp_threads, p.blas_threads) == (1, 1)


def test_blas_threads_restored_after_call(rng, restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()
              if i["user_api"] == "blas"]
    pyconv.set_num_threads(2)
    spec = conv_spec(4, 16, 32, (40, 30), (3, 3), (1, 1), ((1, 1), (1, 1)))
    x, w, b = arrays(spec, np.float32, rng)
    CY.conv(x, w, b, spec)
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info()
             if i["user_api"] == "blas"]
    assert before == after


def test_concurrent_calls_from_python_threads(rng):
    cases = []
    for op, spec in AGNOSTIC_CASES[:8]:
        if op == "conv_weight":
            x = rng.standard_normal(spec.input_shape).astype(np.float32)
            gy = rng.standard_normal(spec.output_shape).astype(np.float32)
            args = (x, gy, spec)
        else:
            x, w, b = arrays(spec, np.float32, rng)
            args = (x, w, b, spec)
        cases.append((op, args, getattr(CY, op)(*args)))
    errors = []

    def worker(offset):
        try:
            for i in range(12):
                op, args, want = cases[(i + offset) % len(cases)]
                got = getattr(CY, op)(*args)
                if got.tobytes() != want.tobytes():
                    errors.append((offset, i, op))
        except Exception as exc:  # report, don't hang the test
            errors.append((offset, "raised", repr(exc)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


# ---------------------------------------------------------------------------
# memory

@pytest.mark.parametrize("op,spec", [
    ("conv", conv_spec(2, 256, 8, (64, 64, 64), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3)),
    ("conv", conv_spec(1, 4096, 4096, (20000,), (3,))),
    ("conv_weight", conv_spec(8, 256, 512, (64, 64), (5, 5))),
    ("conv_weight", conv_spec(64, 2048, 2048, (64,), (7,))),
    ("conv_transpose", transposed_spec(2, 16, 512, (64, 64, 64), (4, 4, 4), (2, 2, 2))),
    ("conv_transpose", transposed_spec(64, 2048, 1024, (3, 3), (5, 5), (3, 3))),
])
@pytest.mark.parametrize("nthreads", [1, 2, 16])
def test_planned_workspace_is_bounded(op, spec, nthreads):
    for dtype in (np.float32, np.float64):
        p = cy_mod.plan(op, spec, dtype, nthreads)
        assert p.workspace <= cy_mod.WORKSPACE_BYTES, p


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from pyconv import _cy
    from pyconv._spec import ConvSpec
    op = sys.argv[1]
    cy = _cy.load()
    if op == "conv":
        # 1 x 96 x 96 x 96 input, 96 channels: im2col of the whole problem
        # would be 96*27 x 96**3 floats = 9.2 GB
        spec = ConvSpec(False, 1, 96, 8, 1, (96, 96, 96), (96, 96, 96), (3, 3, 3),
                        (1, 1, 1), ((1, 1),) * 3, (1, 1, 1))
        x = np.ones(spec.input_shape, np.float32)
        w = np.ones(spec.weight_shape, np.float32)
        out_bytes = np.prod(spec.output_shape) * 4
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        y = cy.conv(x, w, None, spec)
        assert float(y[0, 0, 5, 5, 5]) == 96 * 27
    else:
        # transposed: col of the whole problem would be 32*64 x 48**3 = 0.9 GB
        spec = ConvSpec(True, 1, 32, 32, 1, (48, 48, 48), (96, 96, 96), (4, 4, 4),
                        (2, 2, 2), ((1, 1),) * 3, (1, 1, 1))
        x = np.ones(spec.input_shape, np.float32)
        w = np.ones(spec.weight_shape, np.float32)
        out_bytes = np.prod(spec.output_shape) * 4
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        y = cy.conv_transpose(x, w, None, spec)
        assert float(y[0, 0, 5, 5, 5]) == 32 * 8
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(int(peak - base), int(out_bytes))
""")


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_peak_memory_bounded(op):
    """Extra peak RSS of a big call <= output size + 64 MiB (checked in a subprocess)."""
    env = dict(os.environ, PYCONV_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, op], capture_output=True,
                         text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    extra, out_bytes = map(int, res.stdout.split())
    assert extra <= out_bytes + cy_mod.WORKSPACE_BYTES, (extra, out_bytes)


# ---------------------------------------------------------------------------
# facts

def test_info_reports_build():
    info = CY.info()
    for key in ("openmp", "threads", "simd", "target_clones", "blas"):
        assert key in info
    assert info["threads"] == pyconv.get_num_threads()
    if os.environ.get("PYCONV_FAIL_NO_OPENMP", "").strip() == "1":
        assert info["openmp"] is True


def test_registered_and_available():
    entry = {b["name"]: b for b in pyconv.backends()}["cython"]
    assert entry["available"], entry["reason"]


# ---------------------------------------------------------------------------
# > 2**31 elements (int64 index math end to end)

@pytest.mark.slow
def test_output_over_2_31_elements_transposed():
    """conv_transpose1d, 1x1 kernel, stride 8: 268M inputs -> 2.1G+ outputs."""
    n_in = 2**28 + 5
    spec = ConvSpec(True, 1, 1, 1, 1, (n_in,), ((n_in - 1) * 8 + 1,), (1,), (8,),
                    ((0, 0),), (1,))
    assert np.prod(spec.output_shape) > 2**31
    x = (np.arange(n_in, dtype=np.int64) % 1024).astype(np.float32)
    w = np.full((1, 1, 1), 2.0, np.float32)
    y = CY.conv_transpose(x.reshape(1, 1, -1), w, np.array([1.0], np.float32), spec)
    flat = y.reshape(-1)
    del y
    for i in (0, 1, 7, 8, 2**28 - 3, 2**28 + 4):
        assert flat[8 * i] == 2 * (i % 1024) + 1, i
        if 8 * i + 1 < flat.size:
            assert flat[8 * i + 1] == 1.0
    assert flat[-1] == 2 * ((n_in - 1) % 1024) + 1
    assert flat[2**31 + 8] == 2 * (((2**31 + 8) // 8) % 1024) + 1
    del flat


@pytest.mark.slow
def test_output_over_2_31_elements_conv_padding():
    """conv1d, 1x1 kernel, 2**30 zeros of padding on each side of a short input."""
    pad = 2**30 + 3
    spec = ConvSpec(False, 1, 1, 1, 1, (1000,), (1000 + 2 * pad,), (1,), (1,),
                    ((pad, pad),), (1,))
    assert np.prod(spec.output_shape) > 2**31
    x = np.arange(1000, dtype=np.float32).reshape(1, 1, -1)
    y = CY.conv(x, np.full((1, 1, 1), 3.0, np.float32), np.array([0.5], np.float32), spec)
    flat = y.reshape(-1)
    del y
    assert flat[0] == 0.5 and flat[pad - 1] == 0.5 and flat[-1] == 0.5
    assert flat[pad] == 0.5 and flat[pad + 999] == 3 * 999 + 0.5
    assert flat[pad + 1000] == 0.5
