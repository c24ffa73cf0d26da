"""Tests specific to the ``cython`` backend (the shared matrix runs it too, once
per path: see the ``backend`` fixture in conftest.py).

* every path, forced, against the reference backend on every case of a
  grid of geometries it supports (d = 1..3, both dtypes, groups, dilation,
  strides, asymmetric padding, transposed crops with a negative ``hi``),
  also with many small tiles, and the micro-kernels' AVX2 and baseline
  builds;
* the planner: each path is taken where its rule says, a forced path that
  does not apply falls back, the docstring lists the order the planner uses;
* bitwise identical results for 1, 2, 3 and 8 threads on every path, and
  kernels that survive absurd thread counts;
* concurrent calls from several Python threads;
* the workspace bound (planned bytes on every path, and peak RSS of a
  subprocess);
* Ctrl-C during a long call (a subprocess);
* an output of more than 2**31 elements (slow).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pyconv
from helpers import assert_close, conv_spec, tconv_spec
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
    conv_spec(2, 8, 16, (13,), (3,), stride=(2,), padding=((2, 1),)),
    conv_spec(1, 9, 12, (17,), (4,), stride=(3,), padding=((0, 3),), dilation=(2,)),
    conv_spec(3, 16, 16, (10,), (1,)),                       # pointwise
    conv_spec(2, 6, 6, (12,), (5,), stride=(1,), padding=((2, 2),), dilation=(1,),
              groups=6),   # depthwise
    conv_spec(2, 6, 9, (12,), (3,), stride=(2,), padding=((1, 0),), dilation=(2,),
              groups=3),   # thin groups
    conv_spec(2, 16, 32, (9,), (2,), stride=(1,), padding=((0, 0),), dilation=(4,),
              groups=2),  # dilated, groups
    conv_spec(2, 8, 8, (5,), (3,), stride=(1,), padding=((4, 4),)),         # padding > kernel
    # 2-d
    conv_spec(2, 4, 8, (7, 6), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1))),
    conv_spec(1, 8, 16, (9, 8), (3, 2), stride=(2, 1), padding=((2, 0), (0, 1)), dilation=(1, 2)),
    conv_spec(2, 12, 24, (6, 7), (2, 3), stride=(1, 2), padding=((1, 2), (2, 1)), dilation=(2, 1),
              groups=3),
    conv_spec(2, 4, 4, (6, 6), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1),
              groups=4),
    conv_spec(2, 20, 20, (7, 7), (7, 7), stride=(1, 1), padding=((3, 3), (3, 3)), dilation=(1, 1),
              groups=20),  # ConvNeXt
    conv_spec(1, 17, 34, (11, 9), (3, 5), stride=(2, 1), padding=((1, 0), (2, 2)),
              dilation=(1, 2), groups=17),  # x2 multiplier
    conv_spec(2, 9, 9, (19, 20), (5, 5), stride=(1, 1), padding=((2, 2), (2, 2)), dilation=(1, 1),
              groups=9),
    conv_spec(1, 18, 18, (3, 40), (3, 3), stride=(1, 3), padding=((1, 1), (0, 0)),
              dilation=(1, 1), groups=18),  # stride 3
    conv_spec(2, 16, 8, (5, 4), (1, 1)),
    # 3-d
    conv_spec(1, 4, 8, (5, 4, 6), (3, 2, 3), stride=(1, 1, 2), padding=((1, 1), (0, 1), (1, 0))),
    conv_spec(2, 8, 16, (4, 5, 5), (2, 2, 2), stride=(2, 1, 1), padding=((0, 1), (1, 1), (1, 1)),
              dilation=(1, 2, 1)),
    conv_spec(1, 6, 6, (4, 4, 5), (3, 3, 3), stride=(1, 1, 1), padding=((1, 1),) * 3,
              dilation=(1, 1, 1), groups=6),
    conv_spec(1, 16, 16, (3, 4, 5), (1, 1, 1)),
    # stride-1 3x3 layers with enough channels for the Winograd rules' taste
    conv_spec(2, 48, 48, (9, 22), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1))),
    conv_spec(1, 32, 40, (6, 5, 7), (3, 3, 3), stride=(1, 1, 1), padding=((1, 1), (0, 2), (1, 1))),
    conv_spec(3, 48, 64, (37,), (5,), stride=(1,), padding=((2, 2),)),
    # stride-2 3x3 layers (winograd_oc's 2x2 tiles of 5x5 windows): one with
    # odd output sizes (tiles past the map) and uneven padding, one with groups
    conv_spec(3, 16, 40, (13, 10), (3, 3), stride=(2, 2), padding=((1, 0), (0, 1))),
    conv_spec(1, 12, 18, (14, 15), (3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), groups=3),
]

TRANSPOSED_GRID = [
    tconv_spec(2, 8, 4, (6,), (3,), stride=(2,), padding=((1, 0),)),
    tconv_spec(2, 8, 16, (7,), (4,), stride=(2,), padding=((1, 1),)),
    tconv_spec(1, 16, 8, (5,), (3,), stride=(3,), padding=((2, -1),),
               dilation=(2,)),   # negative hi
    tconv_spec(2, 16, 16, (9,), (1,)),                           # pointwise
    tconv_spec(2, 6, 6, (8,), (3,), stride=(2,), padding=((1, 0),), dilation=(1,),
               groups=6),   # depthwise
    tconv_spec(2, 16, 8, (6,), (2,), stride=(1,), padding=((0, 0),), dilation=(3,), groups=2),
    tconv_spec(2, 8, 8, (4, 5), (3, 3), stride=(2, 2), padding=((1, 0), (1, -1))),
    tconv_spec(1, 12, 6, (4, 4), (4, 2), stride=(2, 3), padding=((1, 2), (0, 0)), dilation=(1, 2),
               groups=3),
    tconv_spec(9, 16, 8, (3, 3), (4, 4), stride=(2, 2), padding=((1, 1), (1, 1))),  # image blocks
    tconv_spec(2, 4, 4, (3, 4), (3, 3), stride=(1, 2), padding=((0, 0), (1, 0)), dilation=(1, 1),
               groups=4),
    tconv_spec(1, 8, 8, (3, 4, 3), (2, 3, 2), stride=(2, 1, 2), padding=((0, -1), (1, 1), (0, 0))),
    tconv_spec(1, 16, 8, (12, 3, 3), (3, 3, 3), stride=(2, 2, 2), padding=((1, 0),) * 3),  # slabs
    tconv_spec(2, 8, 16, (2, 3, 3), (2, 2, 2), stride=(2, 2, 2), padding=((0, 0),) * 3,
               dilation=(1, 1, 1), groups=2),
    # a size-1 axis whose last phase reads only padding (lo' = -1)
    tconv_spec(1, 8, 8, (1, 5, 5), (3, 3, 3), stride=(3, 2, 2), padding=((1, -1), (1, 1), (1, 1))),
    # stride 1: the input gradient of a 3x3 layer (the Winograd paths take it)
    tconv_spec(2, 48, 32, (10, 13), (3, 3), stride=(1, 1), padding=((1, 1), (0, 2))),
    tconv_spec(1, 16, 24, (5, 4, 6), (3, 3, 3), stride=(1, 1, 1), padding=((1, 1),) * 3),
    # batch 1 on the gemm path: blocks of output channels (uneven: 33 per
    # group), then slabs of rows; a vocoder-like K16 s8 and a 2-d K4 s2
    tconv_spec(1, 8, 66, (40,), (8,), stride=(2,), padding=((3, 3),), dilation=(1,), groups=2),
    tconv_spec(1, 16, 32, (9,), (16,), stride=(8,), padding=((4, 4),)),
    tconv_spec(1, 16, 48, (5, 5), (4, 4), stride=(2, 2), padding=((1, 1),) * 2),
]


def _id(spec):
    kind = "T" if spec.transposed else "C"
    return (f"{kind}{spec.nd}d-n{spec.batch}-c{spec.in_channels}-{spec.out_channels}"
            f"-g{spec.groups}-s{'x'.join(map(str, spec.in_size))}"
            f"-k{'x'.join(map(str, spec.kernel_size))}"
            f"-st{'x'.join(map(str, spec.stride))}-d{'x'.join(map(str, spec.dilation))}"
            f"-p{'_'.join(f'{a}.{b}' for a, b in spec.padding)}")


DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]

#: every path unit, in the planner's order
PATHS = [unit.name for unit in cy_mod.ORDER] if CY is not None else []
#: the paths that run on the register-blocked micro-kernels
MICROKERNEL_PATHS = ["implicit", "strided1d", "packed", "phases", "winograd4", "winograd2",
                     "winograd_w"]


def forced_plan(path, op, spec, dtype=np.float32, nthreads=2, simd=None):
    """The plan of ``op`` with ``path`` forced (and the SIMD level, if given)."""
    with cy_mod.force_paths(simd=simd):
        return cy_mod.plan(op, spec, dtype, nthreads, paths=(path,))


def path_cases(cases):
    """(path, op, spec) for every path and every case the path supports."""
    if CY is None:
        return []
    return [(path, op, spec) for path in PATHS for op, spec in cases
            if forced_plan(path, op, spec).path == path]


def _case_id(case):
    path, op, spec = case[:3]
    return f"{path}-{op}-{_id(spec)}"


GRID_CASES = ([("conv", s) for s in CONV_GRID] + [("conv_weight", s) for s in CONV_GRID]
              + [("conv_transpose", s) for s in TRANSPOSED_GRID])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", path_cases(GRID_CASES), ids=_case_id)
def test_every_path_matches_reference(case, dtype, rng):
    """Each path, forced, on every grid case it supports."""
    path, op, spec = case
    with cy_mod.force_paths(path):
        assert cy_mod.plan(op, spec, dtype).path == path
        got, want = run_all(op, spec, dtype, rng)
    assert_close(got, want, dtype, f"{path} {op} {spec}")


@pytest.mark.parametrize("simd", [0, 1], ids=["baseline", "avx2"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in path_cases(GRID_CASES)
                                  if c[0] in MICROKERNEL_PATHS], ids=_case_id)
def test_lower_simd_builds_match_reference(case, dtype, simd, rng):
    """The micro-kernels' AVX2 and baseline builds (each has its own register block)."""
    path, op, spec = case
    with cy_mod.force_paths(path, simd=simd):
        p = cy_mod.plan(op, spec, dtype)
        assert p.path == path and p.simd == min(simd, cy_mod._build.simd_level())
        got, want = run_all(op, spec, dtype, rng)
    assert_close(got, want, dtype, f"{path} simd={simd} {op} {spec}")


@pytest.fixture
def tiny_tiles(monkeypatch):
    """Force many small tiles (and so many work items and partials)."""
    monkeypatch.setattr(cy_mod._planning, "TILE_BYTES", 1)
    monkeypatch.setattr(cy_mod._planning, "MIN_TILE", 3)
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.winograd"], "BLOCK_BYTES", 1)
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.implicit"], "SLOT_POSITIONS", 1)
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.winograd_w"], "BLOCK_COLS", 1)
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.winograd_w"], "ROUND_COLS", 1)


MANY_TILES = [
    ("conv", conv_spec(2, 8, 8, (23,), (3,), stride=(1,), padding=((1, 2),))),
    ("conv", conv_spec(2, 8, 16, (7, 9), (3, 3), stride=(2, 1), padding=((1, 1), (0, 2)))),
    ("conv", conv_spec(1, 8, 8, (10, 4, 5), (3, 3, 3), stride=(1, 1, 1), padding=((1, 1),) * 3)),
    ("conv", conv_spec(2, 16, 16, (7, 5), (1, 1))),
    # batch 1, rows of 7: ocvec's tiles of 2 rows, the last one short
    ("conv", conv_spec(1, 8, 16, (9, 7), (3, 3), padding=((1, 1),) * 2)),
    ("conv", conv_spec(2, 8, 16, (101,), (5,), stride=(2,), padding=((2, 2),))),
    ("conv", conv_spec(1, 8, 8, (90,), (4,), stride=(3,), padding=((5, 1),), dilation=(2,))),
    ("conv", conv_spec(3, 8, 8, (17, 70), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(3, 8, 8, (23,), (3,), stride=(2,), padding=((1, 2),))),
    ("conv_weight", conv_spec(2, 8, 16, (7, 9), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(2, 16, 16, (7, 5), (1, 1))),
    ("conv_transpose", tconv_spec(1, 8, 8, (19,), (4,), stride=(2,), padding=((1, 0),))),
    ("conv_transpose", tconv_spec(2, 8, 8, (30, 9), (3, 3), stride=(1, 1),
                                  padding=((1, 1), (2, 0)))),
    ("conv_transpose", tconv_spec(1, 8, 8, (5, 7), (3, 3), stride=(2, 2),
                                  padding=((1, -1), (1, 0)))),
    ("conv_transpose", tconv_spec(1, 8, 8, (4, 3, 5), (3, 3, 3), stride=(2, 2, 2),
                                  padding=((1, 1),) * 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in path_cases(MANY_TILES) if c[0] != "direct"],
                         ids=_case_id)
def test_many_tiles_match_reference(case, dtype, rng, tiny_tiles):
    path, op, spec = case
    with cy_mod.force_paths(path):
        p = cy_mod.plan(op, spec, dtype, 2)
        assert p.path == path
        if path in ("gemm", "pointwise", "packed", "strided1d"):
            # several tiles (the micro-kernel paths: unless one panel holds them all)
            positions = max(np.prod(spec.out_size), np.prod(spec.in_size))
            panel = cy_mod._planning.target(dtype, p.simd).nr if path in MICROKERNEL_PATHS else 1
            assert p.tile < positions or positions <= panel
        if path == "implicit":
            assert p.items > (spec.batch if op == "conv_weight" else spec.batch * spec.groups)
        if path == "ocvec" and spec.batch == 1 and spec.nd == 2:
            assert p.tile < spec.out_size[0] and spec.out_size[0] % p.tile
        got, want = run_all(op, spec, dtype, rng)
    assert_close(got, want, dtype, f"{path} {op} {spec}")


@pytest.mark.parametrize("case", path_cases([
    ("conv", conv_spec(2, 8, 16, (9, 8), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))),
    ("conv", conv_spec(2, 8, 16, (20,), (3,), stride=(2,), padding=((1, 1),))),
    ("conv", conv_spec(2, 16, 16, (9, 8), (1, 1))),
    ("conv_weight", conv_spec(2, 8, 16, (9, 8), (3, 3), stride=(2, 1), padding=((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(2, 8, 16, (9, 8), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))),
    ("conv_transpose", tconv_spec(2, 16, 8, (5, 6), (3, 3), stride=(2, 2),
                                  padding=((1, 0), (1, 1)))),
    ("conv_transpose", tconv_spec(2, 16, 8, (5, 6), (1, 1))),
]), ids=_case_id)
def test_read_only_inputs_untouched(case, rng):
    """Read-only inputs are accepted and never written, on every path."""
    path, op, spec = case
    if op == "conv_weight":
        args = [rng.standard_normal(spec.input_shape).astype(np.float32),
                rng.standard_normal(spec.output_shape).astype(np.float32)]
    else:
        args = list(arrays(spec, np.float32, rng))
    copies = [a.copy() for a in args]
    for a in args:
        a.setflags(write=False)
    with cy_mod.force_paths(path):
        got = getattr(CY, op)(*args, spec)
    want = getattr(REF, op)(*copies, spec)
    for a, c in zip(args, copies):
        assert a.tobytes() == c.tobytes()
    assert_close(got, want, np.float32, op)


def test_phase_of_a_size_one_axis_reads_padding(rng):
    """Regression: on an input axis of size 1, a phase whose only tap reads
    position 1 of that axis (``output_padding``) must see zeros, not x[0]."""
    x = rng.standard_normal((1, 16, 1, 16, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32)
    kw = dict(stride=(3, 2, 2), padding=1, output_padding=(2, 0, 0))
    spec = tconv_spec(1, 16, 16, (1, 16, 16), (3, 3, 3), stride=(3, 2, 2),
                      padding=((1, -1), (1, 1), (1, 1)))
    with cy_mod.force_paths("phases"):     # batch 1: the rule would take gemm
        assert cy_mod.plan("conv_transpose", spec, np.float32).path == "phases"
        got = pyconv.conv_transpose3d(x, w, **kw, backend="cython")
    want = pyconv.conv_transpose3d(x, w, **kw, backend="reference")
    assert_close(got, want, np.float32, "conv_transpose3d")


def test_empty_and_degenerate(rng):
    spec = conv_spec(0, 4, 8, (5,), (3,))
    x, w, b = arrays(spec, np.float32, rng)
    assert CY.conv(x, w, b, spec).shape == (0, 8, 3)
    assert CY.conv_weight(x, np.zeros((0, 8, 3), np.float32), spec).shape == (8, 4, 3)
    assert not CY.conv_weight(x, np.zeros((0, 8, 3), np.float32), spec).any()
    t = tconv_spec(0, 8, 4, (5,), (3,))
    x, w, b = arrays(t, np.float32, rng)
    assert CY.conv_transpose(x, w, b, t).shape == (0, 4, 7)


# ---------------------------------------------------------------------------
# the planner: which path takes a call

def _plans(op, spec, simd=None):
    with cy_mod.force_paths(simd=simd):
        return cy_mod.plan(op, spec, np.float32, 2).path


# (op, spec, path at the CPU's micro-kernel level, path without micro-kernels),
# each from the rule the module docstring states for it
RULE_CASES = [
    # 2-d depthwise 3x3, stride 1, any channel multiplier: along the rows ->
    # dwrows (AVX-512 only: below that level, depthwise)
    ("conv", conv_spec(2, 32, 32, (14, 14), (3, 3), padding=((1, 1),) * 2, groups=32),
     "dwrows|depthwise", "direct"),
    ("conv", conv_spec(1, 8, 16, (7, 9), (3, 3), groups=8), "dwrows|depthwise", "direct"),
    # one input channel per group, 2-d or 3-d: channels as vector lanes -> depthwise
    ("conv", conv_spec(2, 32, 32, (14, 14), (7, 7), padding=((3, 3),) * 2, groups=32),
     "depthwise", "direct"),
    ("conv", conv_spec(2, 8, 16, (9, 9), (3, 3), stride=(2, 2), groups=8), "depthwise", "direct"),
    ("conv", conv_spec(1, 6, 6, (5, 6, 7), (3, 3, 3), groups=6), "depthwise", "direct"),
    # 1-d depthwise, at most 4 channel pairs per group (conv), one (conv_weight):
    # the loops -> direct
    ("conv", conv_spec(2, 32, 32, (64,), (3,), groups=32), "direct", "direct"),
    ("conv", conv_spec(2, 4, 4, (9, 9), (3, 3), groups=2), "direct", "direct"),
    ("conv", conv_spec(2, 32, 64, (64,), (3,), groups=32), "direct", "direct"),
    ("conv_weight", conv_spec(2, 32, 32, (64,), (3,), groups=32), "direct", "direct"),
    # ... wider groups with few output channels, and every conv_transpose: the
    # GEMM paths, some micro-kernel rows idle (ResNeXt's 4 x 4 groups)
    ("conv", conv_spec(2, 128, 128, (28, 28), (3, 3), padding=((1, 1),) * 2, groups=32),
     "implicit", "gemm"),
    ("conv", conv_spec(2, 64, 2, (28, 28), (3, 3), padding=((1, 1),) * 2), "implicit", "gemm"),
    ("conv", conv_spec(2, 128, 128, (28, 28), (3, 3), stride=(2, 2), groups=32), "gemm", "gemm"),
    ("conv_weight", conv_spec(2, 64, 2, (28, 28), (3, 3), padding=((1, 1),) * 2), "gemm", "gemm"),
    ("conv_weight", conv_spec(2, 128, 128, (28, 28), (3, 3), groups=32), "gemm", "gemm"),
    ("conv_transpose", tconv_spec(2, 32, 32, (64,), (4,), stride=(2,), groups=32),
     "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(1, 4, 16, (40, 40), (3, 3), stride=(2, 2)), "gemm", "gemm"),
    # dense, every stride 1 -> implicit (conv and conv_weight, any dims)
    ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "implicit", "gemm"),
    ("conv", conv_spec(1, 8, 8, (8, 8, 8), (3, 3, 3)), "implicit", "gemm"),
    ("conv_weight", conv_spec(2, 64, 64, (100,), (5,)), "implicit", "gemm"),
    # ... a weight gradient with fewer than 48 channels per group and at most
    # 9 taps: BLAS
    ("conv_weight", conv_spec(2, 16, 32, (100,), (5,)), "gemm", "gemm"),
    ("conv_weight", conv_spec(16, 96, 32, (14, 14), (4, 4)), "implicit", "gemm"),
    # a 1x1 conv with stride 1 is still "every stride 1"; pointwise is BLAS's
    ("conv", conv_spec(2, 16, 16, (20, 20), (1, 1)), "implicit", "pointwise"),
    ("conv_weight", conv_spec(2, 16, 16, (20, 20), (1, 1)), "pointwise", "pointwise"),
    # 1-d, stride 2..8 -> strided1d; stride 9 -> packed
    ("conv", conv_spec(2, 16, 32, (100,), (5,), stride=(2,)), "strided1d", "gemm"),
    ("conv", conv_spec(2, 16, 32, (100,), (5,), stride=(8,)), "strided1d", "gemm"),
    ("conv", conv_spec(2, 16, 32, (1000,), (9,), stride=(9,)), "packed", "gemm"),
    # ... but few output positions per image (a stride-2 conv onto 7x7): with
    # many channels, output channels as lanes; with few, BLAS
    ("conv", conv_spec(8, 256, 256, (14, 14), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "ocvec", "gemm"),
    ("conv", conv_spec(8, 16, 16, (14, 14), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "gemm", "gemm"),
    # deep layers on small maps (rows of at most 7, or a batch-1 8x8 / 14x14
    # map) -> ocvec; a batch-8 14x14 map fills the implicit GEMM's panels
    ("conv", conv_spec(1, 512, 512, (7, 7), (3, 3), padding=((1, 1),) * 2), "ocvec", "gemm"),
    ("conv", conv_spec(8, 256, 256, (7, 7), (5, 5), padding=((2, 2),) * 2), "ocvec", "gemm"),
    # ... but 3x3 ones with 8 to 64 tiles of 4x4 (128 with 256 channels) and 96
    # channels or more -> winograd_oc (float32; float64 keeps ocvec)
    ("conv", conv_spec(8, 512, 512, (7, 7), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(2, 96, 96, (7, 7), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(1, 256, 256, (14, 14), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(8, 256, 256, (14, 14), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(1, 64, 64, (28, 28), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(2, 128, 128, (28, 28), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    # ... up to 512 tiles (the rest of the list takes more: below), nor below
    # 48 channels per group
    ("conv", conv_spec(16, 128, 128, (14, 14), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(4, 128, 128, (28, 28), (3, 3), padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),

    ("conv", conv_spec(8, 512, 512, (7, 7), (3, 3), padding=((1, 1),) * 2, groups=16),
     "ocvec", "gemm"),
    ("conv", conv_spec(1, 64, 64, (7, 7), (3, 3), padding=((1, 1),) * 2), "ocvec", "gemm"),
    ("conv", conv_spec(1, 32, 32, (14, 14), (3, 3), padding=((1, 1),) * 2), "ocvec",
     "gemm"),
    ("conv", conv_spec(8, 128, 128, (14, 14), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "ocvec", "gemm"),
    # stride-2 3x3 layers with 49 to 2048 tiles of 2x2 outputs that fit the
    # map (even output sizes) and 48 channels or more -> winograd_oc
    # (AVX-512; below it, ocvec or packed as before); a 7x7 map's tiles
    # waste a quarter of their outputs (the ocvec case above), too few
    # channels stay on ocvec
    ("conv", conv_spec(8, 128, 256, (28, 28), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "winograd_oc|ocvec", "gemm"),
    ("conv", conv_spec(1, 256, 256, (28, 28), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "winograd_oc|ocvec", "gemm"),
    ("conv", conv_spec(8, 64, 128, (56, 56), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "winograd_oc|packed", "gemm"),
    ("conv", conv_spec(1, 32, 64, (28, 28), (3, 3), stride=(2, 2),
                       padding=((1, 1),) * 2), "ocvec", "gemm"),
    ("conv", conv_spec(8, 32, 32, (14, 14), (3, 3), padding=((1, 1),) * 2), "implicit",
     "gemm"),
    # 2-d / 3-d with a stride -> packed
    ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2)), "packed", "gemm"),
    ("conv", conv_spec(1, 8, 8, (9, 9, 9), (3, 3, 3), stride=(1, 1, 2)), "packed", "gemm"),
    # conv_weight with a stride: BLAS
    ("conv_weight", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2)), "gemm", "gemm"),
    # conv_transpose: >= 256 input positions, overlapping taps and (with a
    # stride) >= 8 images x groups, or images too large for tgemm -> phases
    ("conv_transpose", tconv_spec(8, 16, 8, (16, 16), (4, 4), stride=(2, 2)), "phases", "gemm"),
    ("conv_transpose", tconv_spec(8, 16, 8, (300,), (3,), stride=(2,)), "phases", "gemm"),
    ("conv_transpose", tconv_spec(4, 32, 32, (300,), (3,), stride=(2,), groups=2), "phases",
     "gemm"),
    # ... a smaller batch, fewer positions, or taps that never overlap (K <=
    # s), with one image's input within 2 MiB: micro-kernels reading the
    # weight in place (tgemm)
    ("conv_transpose", tconv_spec(1, 16, 8, (16, 16), (4, 4), stride=(2, 2)), "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(4, 128, 64, (256,), (4,), stride=(2,),
                                  padding=((1, 1),)), "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(1, 512, 256, (32,), (16,), stride=(8,),
                                  padding=((4, 4),)), "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(4, 512, 256, (100,), (16,), stride=(8,),
                                  padding=((4, 4),)), "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(4, 16, 8, (15, 15), (4, 4), stride=(2, 2)), "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(1, 16, 8, (16, 16), (2, 2), stride=(2, 2)), "tgemm", "gemm"),
    # ... but few input channels, at least twice as many outputs, over many
    # positions: the phases
    ("conv_transpose", tconv_spec(16, 16, 256, (7, 7), (3, 3), padding=((1, 1),) * 2),
     "phases", "gemm"),
    ("conv_transpose", tconv_spec(16, 32, 64, (14, 14), (4, 4), stride=(2, 2),
                                  padding=((1, 1),) * 2), "phases", "gemm"),
    ("conv_transpose", tconv_spec(4, 256, 128, (800,), (16,), stride=(8,),
                                  padding=((4, 4),)), "tgemm", "gemm"),
    ("conv_transpose", tconv_spec(1, 512, 256, (32, 32), (4, 4), stride=(2, 2),
                                  padding=((1, 1),) * 2), "tgemm", "gemm"),
    # ... larger images, a small batch: the phases
    ("conv_transpose", tconv_spec(4, 512, 256, (1100,), (16,), stride=(8,),
                                  padding=((4, 4),)), "phases", "gemm"),
    ("conv_transpose", tconv_spec(4, 32, 16, (16, 16, 16), (3, 3, 3), stride=(2, 2, 2),
                                  padding=((1, 0),) * 3), "phases", "gemm"),
    ("conv_transpose", tconv_spec(1, 32, 32, (128, 128), (3, 3), stride=(2, 2),
                                  padding=((1, 0),) * 2), "phases", "gemm"),
    # ... no overlap (K <= s) on large images: BLAS, cut into slabs and blocks
    # of output channels
    ("conv_transpose", tconv_spec(2, 64, 32, (16, 16, 16), (2, 2, 2), stride=(2, 2, 2)),
     "gemm", "gemm"),
    # a 1x1 transposed conv (no overlap) -> pointwise
    ("conv_transpose", tconv_spec(2, 16, 16, (20, 20), (1, 1)), "pointwise", "pointwise"),
    # Winograd (float32, stride 1, 3x3, enough channels and tiles): up to 512
    # tiles of 4x4 with output channels as lanes (winograd_oc); beyond, F(4x4)
    # for rows of 20 outputs or more, F(2x2) for narrower rows with more
    # channels
    ("conv", conv_spec(8, 64, 64, (56, 56), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd4", "gemm"),
    ("conv", conv_spec(1, 64, 64, (56, 56), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd_oc", "gemm"),
    ("conv", conv_spec(16, 256, 256, (14, 14), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(64, 256, 256, (14, 14), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd2",
     "gemm"),
    ("conv", conv_spec(1, 128, 128, (28, 28), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(1, 96, 96, (28, 28), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(4, 96, 96, (28, 28), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(16, 96, 96, (28, 28), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd4",
     "gemm"),
    ("conv", conv_spec(32, 64, 128, (1024,), (3,), stride=(1,),
                       padding=((1, 1),)), "winograd4", "gemm"),
    ("conv", conv_spec(32, 64, 128, (1024,), (5,), stride=(1,),
                       padding=((2, 2),)), "winograd4", "gemm"),
    ("conv", conv_spec(2, 32, 32, (32, 32, 32), (3, 3, 3), stride=(1, 1, 1),
                       padding=((1, 1),) * 3),
     "winograd4", "gemm"),
    ("conv_transpose", tconv_spec(8, 64, 64, (56, 56), (3, 3), stride=(1, 1),
                                  padding=((1, 1),) * 2),
     "winograd4", "gemm"),
    # with 32 channels a batch-1 14x14 map goes to ocvec (output channels as
    # lanes), and so does a batch-1 7x7 x 512 map (4 tiles of 4x4)
    ("conv", conv_spec(1, 32, 32, (14, 14), (3, 3), padding=((1, 1),) * 2),
     "ocvec", "gemm"),
    ("conv", conv_spec(1, 512, 512, (7, 7), (3, 3), padding=((1, 1),) * 2),
     "ocvec", "gemm"),
    # a 1-d dilated K2/K3 conv whose length and padding are multiples of the
    # dilation, on its (L/d, d) view: winograd4 from 128 channels and rows of
    # 32 (K2) / 16 (K3); narrower rows, fewer channels or a length that is
    # not a multiple: implicit
    ("conv", conv_spec(4, 128, 128, (16000,), (2,), dilation=(64,)), "winograd4", "gemm"),
    ("conv", conv_spec(1, 256, 256, (4096,), (3,), dilation=(16,), padding=((16, 16),)),
     "winograd4", "gemm"),
    ("conv", conv_spec(4, 128, 128, (16384,), (2,), dilation=(16,)), "implicit", "gemm"),
    ("conv", conv_spec(4, 64, 64, (16000,), (2,), dilation=(64,)), "implicit", "gemm"),
    ("conv", conv_spec(4, 128, 128, (16001,), (2,), dilation=(64,)), "implicit", "gemm"),
    ("conv_transpose", tconv_spec(4, 128, 128, (15936,), (2,), dilation=(64,)),
     "winograd4", "gemm"),
    # the weight gradient of a 2-d 3x3 stride-1 layer: winograd_w with 32 to
    # 256 channels and enough tiles, 14x14 maps from 128 channels ...
    ("conv_weight", conv_spec(8, 32, 32, (56, 56), (3, 3), padding=((1, 1),) * 2),
     "winograd_w", "gemm"),
    ("conv_weight", conv_spec(8, 16, 16, (56, 56), (3, 3), padding=((1, 1),) * 2),
     "gemm", "gemm"),
    ("conv_weight", conv_spec(8, 48, 32, (56, 56), (3, 3), padding=((1, 1),) * 2),
     "winograd_w", "gemm"),
    ("conv_weight", conv_spec(8, 64, 64, (56, 56), (3, 3), padding=((1, 1),) * 2),
     "winograd_w", "gemm"),
    ("conv_weight", conv_spec(16, 128, 128, (28, 28), (3, 3), padding=((1, 1),) * 2),
     "winograd_w", "gemm"),
    ("conv_weight", conv_spec(32, 256, 256, (14, 14), (3, 3), padding=((1, 1),) * 2),
     "winograd_w", "gemm"),
    # ... not with few tiles, 14x14 maps and fewer channels, 7x7 maps, thin
    # channels, more than 256 channels, nor a 5x5 kernel
    ("conv_weight", conv_spec(1, 128, 128, (28, 28), (3, 3), padding=((1, 1),) * 2),
     "implicit", "gemm"),
    ("conv_weight", conv_spec(32, 64, 64, (14, 14), (3, 3), padding=((1, 1),) * 2),
     "implicit", "gemm"),
    ("conv_weight", conv_spec(32, 256, 256, (7, 7), (3, 3), padding=((1, 1),) * 2),
     "implicit", "gemm"),
    ("conv_weight", conv_spec(8, 12, 12, (56, 56), (3, 3), padding=((1, 1),) * 2),
     "gemm", "gemm"),
    ("conv_weight", conv_spec(64, 512, 512, (14, 14), (3, 3), padding=((1, 1),) * 2),
     "implicit", "gemm"),
    ("conv_weight", conv_spec(8, 64, 64, (56, 56), (5, 5), padding=((2, 2),) * 2),
     "implicit", "gemm"),
    # ... too few channels, tiles, or not 3x3 / stride 1: the exact paths
    ("conv", conv_spec(8, 24, 24, (56, 56), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "implicit", "gemm"),
    ("conv", conv_spec(1, 96, 96, (14, 14), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd_oc",
     "gemm"),
    ("conv", conv_spec(1, 32, 32, (28, 28), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "implicit",
     "gemm"),
    ("conv", conv_spec(8, 16, 16, (56, 56), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "implicit", "gemm"),
    ("conv", conv_spec(1, 16, 16, (14, 14), (5, 5), stride=(1, 1),
                       padding=((2, 2),) * 2), "implicit", "gemm"),
    # ... but 2-d F(4x4) takes 5x5 kernels and narrower 3x3 layers from 16
    # channels and 196 tiles of 4x4
    ("conv", conv_spec(8, 64, 64, (56, 56), (5, 5), stride=(1, 1),
                       padding=((2, 2),) * 2), "winograd4", "gemm"),
    ("conv", conv_spec(8, 16, 16, (28, 28), (5, 5), stride=(1, 1),
                       padding=((2, 2),) * 2), "winograd4", "gemm"),
    ("conv", conv_spec(2, 32, 32, (56, 56), (3, 3), stride=(1, 1),
                       padding=((1, 1),) * 2), "winograd4", "gemm"),
    ("conv", conv_spec(2, 64, 64, (30, 30, 30), (3, 3, 3), stride=(1, 1, 1),
                       padding=((1, 1),) * 3, dilation=(2, 2, 2)), "implicit", "gemm"),
    ("conv_transpose", tconv_spec(1, 64, 64, (20, 20), (3, 3), stride=(1, 1),
                                  padding=((1, 1),) * 2),
     "phases", "gemm"),
    # stride 1 with a dilation, 1-d or 2-d (ASPP branches): dilated (the input
    # channels of the largest need a 19 MB packed weight, above the implicit
    # path's quarter of the workspace); 3-d, strided or thin ones: not
    ("conv", conv_spec(2, 2048, 256, (33, 33), (3, 3), padding=((24, 24),) * 2, dilation=(24, 24)),
     "dilated", "gemm"),
    ("conv", conv_spec(2, 256, 256, (65, 65), (3, 3), padding=((12, 12),) * 2, dilation=(12, 12)),
     "dilated", "gemm"),
    ("conv", conv_spec(1, 256, 256, (33, 33), (3, 3), padding=((2, 2),) * 2, dilation=(2, 2)),
     "dilated", "gemm"),
    ("conv", conv_spec(2, 128, 128, (28, 28), (3, 3), padding=((4, 4),) * 2, dilation=(4, 4)),
     "dilated", "gemm"),
    ("conv", conv_spec(2, 256, 256, (300,), (3,), padding=((128, 128),), dilation=(128,)),
     "dilated", "gemm"),
    # ... but a small dilation with few channels, or a 1-d conv whose taps
    # mostly read the input: implicit
    ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), padding=((2, 2),) * 2, dilation=(1, 2)),
     "implicit", "gemm"),
    ("conv", conv_spec(2, 64, 64, (65, 65), (3, 3), padding=((4, 4),) * 2, dilation=(4, 4)),
     "implicit", "gemm"),
    ("conv", conv_spec(1, 256, 256, (28, 28), (3, 3), padding=((2, 2),) * 2, dilation=(2, 2)),
     "implicit", "gemm"),
    ("conv", conv_spec(4, 128, 128, (4000,), (2,), dilation=(64,)), "implicit", "gemm"),
    ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2),
                       dilation=(2, 2)), "packed", "gemm"),
    ("conv", conv_spec(2, 4, 32, (30, 30), (3, 3), dilation=(2, 2)), "implicit", "gemm"),
    ("conv_weight", conv_spec(2, 64, 64, (30, 30), (3, 3), dilation=(2, 2)), "implicit", "gemm"),
    # strided weight gradients: implicit's phase slabs from 4096 output
    # positions with more than one tap (ResNet's stride-2 3x3 on 56x56, its 7x7
    # stem, a strided 1-d layer), gemm with fewer positions or a 1x1 kernel
    ("conv_weight", conv_spec(8, 64, 128, (56, 56), (3, 3), stride=(2, 2),
                              padding=((1, 1),) * 2), "implicit", "gemm"),
    ("conv_weight", conv_spec(2, 3, 64, (224, 224), (7, 7), stride=(2, 2),
                              padding=((3, 3),) * 2), "implicit", "gemm"),
    ("conv_weight", conv_spec(32, 64, 128, (1024,), (5,), stride=(2,), padding=((2, 2),)),
     "implicit", "gemm"),
    ("conv_weight", conv_spec(8, 128, 256, (28, 28), (3, 3), stride=(2, 2),
                              padding=((1, 1),) * 2), "gemm", "gemm"),
    ("conv_weight", conv_spec(8, 64, 128, (56, 56), (1, 1), stride=(2, 2)), "gemm", "gemm"),
    # 2**31 positions per image: BLAS's int would overflow -> direct
    ("conv", conv_spec(1, 16, 16, (2**31 + 2,), (3,)), "direct", "direct"),
    ("conv_transpose", tconv_spec(1, 16, 16, (2**30,), (3,), stride=(2,)), "direct", "direct"),
    # long kernels over long signals: the FFT cost model wins (single-channel
    # FIR, a dense long-kernel layer and its gradients, a large 2-d kernel)
    ("conv", conv_spec(8, 1, 1, (131072,), (1023,)), "fft", "fft"),
    ("conv", conv_spec(4, 32, 32, (16384,), (511,), padding=((255, 255),)), "fft", "fft"),
    ("conv_transpose", tconv_spec(4, 32, 32, (16384,), (511,), padding=((255, 255),)),
     "fft", "fft"),
    ("conv_weight", conv_spec(4, 32, 32, (16384,), (511,), padding=((255, 255),)), "fft", "fft"),
    ("conv", conv_spec(1, 8, 8, (256, 256), (31, 31), padding=((15, 15),) * 2), "fft", "fft"),
    # ... but not a long kernel over a short signal, nor fewer than 32 taps
    ("conv", conv_spec(4, 1, 1, (200,), (64,)), "direct", "direct"),
    ("conv", conv_spec(2, 64, 64, (4096,), (31,), padding=((15, 15),)), "implicit", "gemm"),
]


@pytest.mark.parametrize("op,spec,fast,slow", RULE_CASES, ids=lambda v: v if isinstance(
    v, str) else None)
def test_each_path_taken_where_its_rule_says(op, spec, fast, slow):
    level = cy_mod._build.simd_level()
    # "a|b": a at the AVX-512 level, b at the AVX2 level (rules measured at
    # AVX-512 only, or AVX-512's masked loads)
    fast, _, avx2 = fast.partition("|")
    if level < 2:
        fast = avx2 or fast
    assert _plans(op, spec) == (fast if level >= 1 else slow)
    assert _plans(op, spec, simd=0) == slow


def test_rules_reach_every_path():
    """The table above exercises every unit of the planner's order."""
    reached = set()
    for case in RULE_CASES:
        reached.update(case[2].split("|"), [case[3]])
    assert reached == set(PATHS)


def test_docstring_lists_the_paths_in_order():
    doc = cy_mod.__doc__
    section = doc[doc.index("Paths (the per-call choice"):doc.index("Forcing a path")]
    listed = [line.split("``")[1] for line in section.splitlines()
              if line[:3].strip().rstrip(".").isdigit() and "``" in line]
    assert listed == PATHS


@pytest.mark.parametrize("path", PATHS)
def test_forced_path_that_does_not_apply_falls_back(path):
    """A forced path runs where it is supported; elsewhere the normal order decides."""
    unsupported = {
        "depthwise": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), groups=8)),
        "direct": None,                                                  # supports all
        "implicit": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2))),
        "dilated": ("conv", conv_spec(1, 4, 8, (5, 6, 6), (3, 3, 3), dilation=(1, 2, 1))),
        "strided1d": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2))),
        "packed": ("conv_transpose", tconv_spec(1, 16, 8, (16, 16), (4, 4), stride=(2, 2))),
        "phases": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2))),
        "pointwise": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2))),
        "tgemm": ("conv_transpose", tconv_spec(2, 16, 16, (20, 20), (1, 1))),  # pointwise
        "gemm": ("conv", conv_spec(1, 16, 16, (2**31 + 2,), (3,))),
        "winograd4": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2))),
        "winograd2": ("conv_weight", conv_spec(2, 16, 32, (30, 30), (3, 3))),
        "winograd_w": ("conv_weight", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(2, 2))),
        "fft": ("conv", conv_spec(2, 16, 32, (30, 30), (1, 1))),           # nothing to transform
        "ocvec": ("conv", conv_spec(1, 8, 8, (6, 6, 6), (3, 3, 3))),     # 1-d and 2-d only
        "winograd_oc": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(3, 3))),
        "dwrows": ("conv", conv_spec(2, 16, 32, (30, 30), (3, 3))),     # not depthwise
    }[path]
    if unsupported is not None:
        op, spec = unsupported
        assert forced_plan(path, op, spec) == cy_mod.plan(op, spec, np.float32, 2)
    # ... and a depthwise conv (direct by the rules) runs on any path that computes conv
    # (winograd_oc and dwrows take 2-d 3x3 convs only: a 2-d one; dwrows at
    # the AVX-512 level only)
    spec = conv_spec(2, 8, 8, (40,), (3,), groups=8)
    if path in ("winograd_oc", "dwrows"):
        spec = conv_spec(2, 8, 8, (9, 9), (3, 3), groups=8)
    if path == "dwrows" and cy_mod._build.simd_level() < 2:
        return
    if "conv" in cy_mod.BY_NAME[path].ops and path not in ("pointwise",):
        assert forced_plan(path, "conv", spec).path == path


def test_force_paths_restores_and_validates():
    spec = conv_spec(2, 16, 32, (30, 30), (3, 3), stride=(1, 1), padding=((1, 1),) * 2)
    before = cy_mod.plan("conv", spec, np.float32, 2)
    with cy_mod.force_paths("gemm"):
        assert cy_mod.plan("conv", spec, np.float32, 2).path == "gemm"
        with cy_mod.force_paths("packed"):
            assert cy_mod.plan("conv", spec, np.float32, 2).path == "packed"
        assert cy_mod.plan("conv", spec, np.float32, 2).path == "gemm"
    assert cy_mod.plan("conv", spec, np.float32, 2) == before
    with pytest.raises(ValueError, match="unknown cython path.*'winograd'"):
        cy_mod.plan("conv", spec, np.float32, 2, paths=("winograd",))
    with pytest.raises(ValueError, match="unknown cython path"):
        with cy_mod.force_paths("no-such-path"):
            pass


def test_plan_threads_follow_items():
    """OpenMP threads = min(n, items); a single image is cut into TARGET_ITEMS items."""
    one = conv_spec(1, 64, 64, (4096,), (3,))
    for path in ("implicit", "gemm", "packed", "strided1d"):
        p = forced_plan(path, "conv", one, nthreads=2)
        assert p.items >= cy_mod._planning.TARGET_ITEMS and p.omp_threads == 2, p
    tiny = conv_spec(1, 512, 512, (40,), (1,))
    for path in ("pointwise", "gemm"):
        p = forced_plan(path, "conv", tiny, nthreads=2)
        assert p.items == 1 and p.omp_threads == 1, p
    # implicit: the one tile's output channels are cut into parts instead
    p = forced_plan("implicit", "conv", tiny, nthreads=2)
    assert p.items == p.blocks == cy_mod._planning.TARGET_ITEMS and p.omp_threads == 2, p
    p = forced_plan("direct", "conv", conv_spec(1, 3, 3, (40,), (3,), groups=3), nthreads=64)
    assert p.items == 3 and p.omp_threads == 3


@pytest.mark.parametrize("op", ["conv", "conv_transpose", "conv_weight"])
def test_small_calls_plan_one_thread(op):
    """Below SERIAL_MACS multiply-adds the planner uses one thread, from it two.

    The multiply-adds are counted here from the shapes (1-d, no padding:
    every tap of every output position is one product per channel pair),
    independently of ``ConvSpec.flops``.
    """
    n, cin, cout, k = 1, 16, 32, 4
    per_position = cin * cout * k            # products per output (conv) / input position
    threshold = cy_mod._planning.SERIAL_MACS
    assert threshold % per_position == 0
    for positions, want in ((threshold // per_position - 1, 1),
                            (threshold // per_position, 2)):
        if op == "conv_transpose":
            spec = tconv_spec(n, cin, cout, (positions,), (k,))
            macs = n * cin * cout * k * spec.in_size[0]
        else:
            spec = conv_spec(n, cin, cout, (positions + k - 1,), (k,))
            macs = n * cout * cin * k * spec.out_size[0]
        assert (macs < threshold) == (want == 1)
        p = cy_mod.plan(op, spec, np.float32, 2)
        assert p.items >= 2, p
        assert p.omp_threads == want, (macs, p)
        for q in p.parts:
            assert q.omp_threads <= want, (macs, q)
    # a forced path keeps the threads asked for (the tests run threads on small shapes)
    tiny = conv_spec(1, 16, 32, (200,), (4,))
    assert forced_plan("implicit", "conv", tiny, nthreads=2).omp_threads == 2


_NEIGHBOUR = "while True: pass"


def test_small_call_with_busy_neighbours_is_not_slowed_down(rng):
    """A tiny call with a CPU-bound process on every core finishes in bounded time.

    The bound is generous (a median of 2 ms over 50 calls, for a call of
    about 50 us): it guards the one-thread rule for small calls.  Two threads
    made this call wait at the end of its parallel region for a partner
    descheduled by a neighbour: 4-16 ms per call.  Speed itself is measured
    by the benchmark (``python -m pyconv bench``, "small call, busy").
    """
    import time
    x = rng.standard_normal((2, 4, 32)).astype(np.float32)
    w = rng.standard_normal((8, 4, 5)).astype(np.float32)
    want = pyconv.conv1d(x, w, backend="reference")
    neighbours = []
    try:
        for _ in range(os.cpu_count() or 1):
            neighbours.append(subprocess.Popen([sys.executable, "-c", _NEIGHBOUR]))
        time.sleep(0.2)
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            got = pyconv.conv1d(x, w, backend="cython")
            times.append(time.perf_counter() - t0)
    finally:
        for proc in neighbours:
            proc.kill()
        for proc in neighbours:
            proc.wait()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.median(times) < 2e-3, sorted(times)


def test_transpose_gemm_cuts_channels_before_rows():
    """conv_transpose on BLAS: a small batch is cut into blocks of output channels
    (GEMMs of at least BLOCK_ROWS rows), then into slabs of rows."""
    rows = sys.modules["pyconv._cy.paths.gemm"].BLOCK_ROWS
    # 2 x 33 channels x 8 taps: 264 rows per group -> 2 blocks, then 2 slabs
    p = forced_plan("gemm", "conv_transpose",
                    tconv_spec(1, 8, 66, (40,), (8,), stride=(2,), padding=((3, 3),),
                               dilation=(1,), groups=2))
    assert (p.blocks, p.slabs, p.items) == (2, 2, 8), p
    # a vocoder stage at batch 1: 256 x 16 rows -> TARGET_ITEMS blocks, no halo
    p = forced_plan("gemm", "conv_transpose",
                    tconv_spec(1, 512, 256, (32,), (16,), stride=(8,), padding=((4, 4),)))
    assert (p.blocks, p.slabs) == (cy_mod._planning.TARGET_ITEMS, 1), p
    # too few rows for two blocks: slabs only; a batch that gives the items: neither
    p = forced_plan("gemm", "conv_transpose",
                    tconv_spec(1, 16, 8, (12, 3, 3), (3, 3, 3), stride=(2, 2, 2),
                               padding=((1, 0),) * 3))
    assert 8 * 27 < 2 * rows and p.blocks == 1 and p.slabs > 1, p
    p = forced_plan("gemm", "conv_transpose",
                    tconv_spec(8, 512, 256, (300,), (16,), stride=(8,), padding=((4, 4),)))
    assert (p.blocks, p.slabs) == (1, 1), p


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", [
    # one channel's uncropped output within PC_TG_PLANE (16384) values: the plane
    tconv_spec(2, 8, 6, (40, 36), (4, 4), stride=2, padding=((0, -1), (2, 1))),
    tconv_spec(2, 8, 6, (30,), (16,), stride=8, padding=((4, -3),)),
    tconv_spec(2, 8, 6, (5, 6, 4), (3, 3, 2), stride=(2, 1, 3), padding=1, dilation=(1, 2, 1)),
    # above it: the col2im that clips taps per row
    tconv_spec(1, 8, 6, (70, 66), (4, 4), stride=2, padding=1),
    tconv_spec(2, 8, 6, (3000,), (16,), stride=8, padding=((4, -2),)),
], ids=lambda s: f"{s.in_size}k{s.kernel_size}s{s.stride}")
def test_tgemm_col2im_with_and_without_its_plane(spec, dtype, rng):
    """tgemm adds each channel's taps into a plane of its uncropped output when that
    holds at most PC_TG_PLANE values (the window copied out; output padding beyond
    the plane holds the bias), and clips them per row otherwise."""
    with cy_mod.force_paths("tgemm"):
        assert cy_mod.plan("conv_transpose", spec, dtype).path == "tgemm"
        got, want = run_all("conv_transpose", spec, dtype, rng)
    assert_close(got, want, dtype, f"tgemm {spec}")


# ---------------------------------------------------------------------------
# threads

AGNOSTIC_CASES = [
    ("conv", conv_spec(4, 16, 32, (40, 30), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))),
    ("conv", conv_spec(1, 16, 16, (12,), (3,))),
    ("conv", conv_spec(1, 512, 512, (256,), (1,))),           # pointwise, one tile
    ("conv", conv_spec(3, 12, 12, (300,), (9,), stride=(1,), padding=((4, 4),), dilation=(1,),
                       groups=12)),
    ("conv", conv_spec(4, 16, 32, (1000,), (5,), stride=(2,), padding=((2, 2),))),   # strided 1-d
    ("conv", conv_spec(2, 16, 32, (30, 31), (3, 3), stride=(2, 2), padding=((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(4, 16, 32, (40, 30), (3, 3), stride=(1, 1),
                              padding=((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(8, 32, 64, (2000,), (5,))),
    ("conv_weight", conv_spec(3, 32, 48, (29, 37), (3, 3), padding=((2, 0), (1, 1)), groups=2)),
    ("conv_weight", conv_spec(3, 12, 12, (300,), (9,), stride=(1,), padding=((4, 4),),
                              dilation=(1,), groups=12)),
    ("conv_weight", conv_spec(4, 16, 16, (60, 30), (1, 1))),
    ("conv_transpose", tconv_spec(2, 32, 16, (9, 9, 9), (3, 3, 3), stride=(2, 2, 2),
                                  padding=((1, 0),) * 3)),
    ("conv_transpose", tconv_spec(16, 32, 16, (8, 8), (4, 4), stride=(2, 2),
                                  padding=((1, 1),) * 2)),
    ("conv_transpose", tconv_spec(1, 64, 32, (50,), (4,), stride=(2,), padding=((1, 1),))),
    ("conv_transpose", tconv_spec(3, 6, 6, (50,), (4,), stride=(2,), padding=((1, 1),),
                                  dilation=(1,), groups=6)),
    ("conv_transpose", tconv_spec(3, 16, 16, (40, 30), (1, 1))),
    ("conv_transpose", tconv_spec(2, 16, 16, (20, 17), (3, 3), stride=(1, 1),
                                  padding=((1, 1),) * 2)),
    ("conv_transpose", tconv_spec(1, 8, 66, (40,), (8,), stride=(2,), padding=((3, 3),),
                                  dilation=(1,), groups=2)),
]


@pytest.fixture
def restore_threads():
    yield
    pyconv.set_num_threads(None)


def _inputs(op, spec, dtype, rng):
    """The arrays of one call: (x, w, b), or (x, grad_out) for conv_weight."""
    if op == "conv_weight":
        return (rng.standard_normal(spec.input_shape).astype(dtype),
                rng.standard_normal(spec.output_shape).astype(dtype))
    return arrays(spec, dtype, rng)


#: dilated convs whose kernel columns reach the input for only some output
#: columns (the dilated path cuts its row tiles there): symmetric (ASPP-like),
#: asymmetric padding, 1-d, and outputs that no tap reaches (the bias alone)
DILATED_PIECES = [
    conv_spec(1, 16, 16, (33, 33), (3, 3), padding=((12, 12),) * 2, dilation=(12, 12)),
    conv_spec(1, 16, 16, (30, 26), (3, 3), padding=((11, 9), (10, 7)), dilation=(10, 9)),
    conv_spec(2, 16, 24, (13, 13), (3, 3), padding=((4, 4),) * 2, dilation=(4, 4)),
    conv_spec(1, 16, 16, (11, 17), (3, 3), padding=((5, 1), (6, 2)), dilation=(5, 6)),
    conv_spec(2, 16, 16, (40,), (3,), padding=((20, 20),), dilation=(16,)),
    conv_spec(1, 16, 20, (6, 7), (2, 3), padding=((7, 7), (9, 8)), dilation=(3, 4)),
]


@pytest.mark.parametrize("spec", DILATED_PIECES, ids=_id)
@pytest.mark.parametrize("rows", [1, 2, 64])
def test_dilated_pieces_cover_every_output_once(spec, rows):
    """The rectangles of the dilated path partition the output, and the rows where
    every kernel column reaches the input are not cut along x."""
    geo = cy_mod._planning.geo(spec)
    oy, ox = (1, *spec.out_size) if spec.nd == 1 else spec.out_size
    rects = cy_mod._dilated.tiles(geo, rows, 48)
    seen = np.zeros((oy, ox), int)
    for r0, r1, x0, x1 in zip(*[iter(rects)] * 4):
        assert r1 - r0 <= rows and x0 < x1
        seen[r0:r1, x0:x1] += 1
    assert (seen == 1).all()
    assert cy_mod._dilated.positions(rects) == max(
        (r1 - r0) * (x1 - x0) for r0, r1, x0, x1 in zip(*[iter(rects)] * 4))
    if rows == 64 and spec.nd == 2:   # whole row ranges: some piece skips a kernel column
        assert len(rects) // 4 > len({rects[i] for i in range(0, len(rects), 4)})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", DILATED_PIECES, ids=_id)
@pytest.mark.parametrize("tile_cols", [1, 512])
def test_dilated_pieces_match_reference(spec, dtype, tile_cols, rng, monkeypatch):
    """The dilated path on column pieces (one row per tile, or whole row ranges)."""
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.dilated"], "TILE_COLS", tile_cols)
    with cy_mod.force_paths("dilated"):
        assert cy_mod.plan("conv", spec, dtype).path == "dilated"
        got, want = run_all("conv", spec, dtype, rng)
    assert_close(got, want, dtype, f"dilated {spec}")


_WAITING_SCRIPT = """
import sys
import numpy as np
import pyconv
from pyconv import _cy
x, w, b = (np.load(sys.argv[1])[k] for k in "xwb")
with _cy.force_paths("winograd4"):
    pyconv.set_num_threads(1)
    want = pyconv.conv2d(x, w, b, padding=1, backend="cython")
    pyconv.set_num_threads(int(sys.argv[2]))
    for _ in range(100):
        got = pyconv.conv2d(x, w, b, padding=1, backend="cython")
        assert got.tobytes() == want.tobytes()
print("ok")
"""


def test_threads_waiting_for_descheduled_partners(tmp_path, rng):
    """Calls whose threads wait for each other (the barrier between the two
    passes of ``winograd4``, thread 0 at the end of every parallel region)
    give the one-thread result with more threads than cores and a CPU-bound
    process on every core, where the waits outlast their spinning (50 us)
    and go to sleep.  A missed wake-up or a miscounted wait hangs the call
    (the subprocess's timeout turns that into a failure)."""
    import time
    spec = conv_spec(8, 32, 64, (20, 20), (3, 3), stride=(1, 1), padding=((1, 1),) * 2)
    nthreads = 2 * (os.cpu_count() or 1) + 1
    assert forced_plan("winograd4", "conv", spec, nthreads=nthreads).omp_threads > 2
    x, w, b = arrays(spec, np.float32, rng)
    np.savez(tmp_path / "args.npz", x=x, w=w, b=b)
    neighbours = []
    try:
        for _ in range(os.cpu_count() or 1):
            neighbours.append(subprocess.Popen([sys.executable, "-c", _NEIGHBOUR]))
        time.sleep(0.2)
        done = subprocess.run([sys.executable, "-c", _WAITING_SCRIPT,
                               str(tmp_path / "args.npz"), str(nthreads)],
                              capture_output=True, text=True, timeout=120)
    finally:
        for proc in neighbours:
            proc.kill()
        for proc in neighbours:
            proc.wait()
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _cutting(p):
    """Plan ``p`` (and its parts) without what depends on the thread count."""
    return p._replace(omp_threads=0, workspace=0, parts=tuple(_cutting(q) for q in p.parts))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", path_cases(AGNOSTIC_CASES), ids=_case_id)
def test_bitwise_identical_for_any_thread_count(case, dtype, rng, restore_threads):
    path, op, spec = case
    # the cutting of the work never depends on the thread count
    cut = {_cutting(forced_plan(path, op, spec, dtype, n)) for n in (1, 2, 3, 8)}
    assert len(cut) == 1, cut
    args = _inputs(op, spec, dtype, rng)
    results = []
    with cy_mod.force_paths(path):
        for n in (1, 2, 3, 8, 1):
            pyconv.set_num_threads(n)
            results.append(getattr(CY, op)(*args, spec))
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", [
    conv_spec(5, 6, 10, (5, 6), (3, 3), stride=(1, 1), padding=((1, 1), (0, 2)), groups=2),
    conv_spec(7, 4, 70, (9,), (3,), stride=(1,), padding=((2, 1),), dilation=(2,)),
    conv_spec(5, 3, 5, (4, 3, 5), (2, 3, 3), stride=(1, 1, 1), padding=((1, 0),) * 3),
], ids=str)
def test_implicit_weight_image_blocks(spec, dtype, rng, monkeypatch, restore_threads):
    """conv_weight items of several images (the last block short, channels not
    a multiple of the micro-kernel's block): right, and the same bits for any
    thread count."""
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.implicit"], "WEIGHT_POSITIONS", 1 << 20)
    monkeypatch.setattr(sys.modules["pyconv._cy.paths.implicit"], "SLOT_POSITIONS", 1)
    monkeypatch.setattr(cy_mod._planning, "TARGET_ITEMS", 2)     # about batch / 2 per item
    p = forced_plan("implicit", "conv_weight", spec, dtype, 2)
    assert 1 < p.images < spec.batch and spec.batch % p.images and p.slots > 1, p
    x, gy = _inputs("conv_weight", spec, dtype, rng)
    results = []
    with cy_mod.force_paths("implicit"):
        for n in (1, 2, 3, 8):
            pyconv.set_num_threads(n)
            results.append(CY.conv_weight(x, gy, spec))
    assert_close(results[0], REF.conv_weight(x, gy, spec), dtype, f"implicit {spec}")
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()


def _with_threads(p, n):
    """Plan ``p`` (and its parts) with ``n`` OpenMP threads."""
    return p._replace(omp_threads=n, parts=tuple(_with_threads(q, n) for q in p.parts))


@pytest.mark.parametrize("case", path_cases([
    ("conv", conv_spec(2, 6, 6, (30,), (3,), groups=6)),
    ("conv", conv_spec(2, 8, 16, (12, 10), (3, 3), stride=(2, 1), padding=((1, 1), (1, 1)))),
    ("conv", conv_spec(2, 8, 16, (40,), (3,), stride=(2,))),
    ("conv_weight", conv_spec(2, 8, 16, (12, 10), (3, 3), stride=(1, 1),
                              padding=((1, 1), (1, 1)))),
    ("conv_weight", conv_spec(2, 8, 16, (12, 10), (1, 1))),
    ("conv_transpose", tconv_spec(2, 6, 6, (30,), (4,), stride=(2,), groups=6)),
    ("conv_transpose", tconv_spec(2, 16, 8, (20, 20), (4, 4), stride=(2, 2),
                                  padding=((1, 1),) * 2)),
    ("conv_transpose", tconv_spec(2, 16, 8, (5, 5), (4, 4), stride=(2, 2), padding=((1, 1),) * 2)),
    ("conv_transpose", tconv_spec(2, 16, 8, (5, 5), (1, 1))),
]), ids=_case_id)
def test_kernels_survive_absurd_thread_counts(case, rng):
    """A kernel given 100000 threads starts only as many as it has items."""
    path, op, spec = case
    p = _with_threads(forced_plan(path, op, spec), 100_000)
    args = _inputs(op, spec, np.float32, rng)
    with cy_mod.force_paths(path):
        want = getattr(CY, op)(*args, spec)
    if op == "conv_weight":
        x, w, b = args[0], args[1], np.empty(0, np.float32)
        got = np.zeros(spec.weight_shape, np.float32)
    else:
        x, w, b = args
        got = np.empty(spec.output_shape, np.float32)
    cy_mod.BY_NAME[path].run(op, p, spec, x.reshape(-1), w.reshape(-1), b, got.reshape(-1))
    assert got.tobytes() == want.tobytes()
    assert forced_plan(path, op, spec, nthreads=100_000).omp_threads <= p.items


#: The compiled modules whose conv/conv_transpose/conv_weight/conv_many take arrays.
KERNEL_MODULES = [f"pyconv._cy._{name}" for name in (
    "depthwise", "dilated", "direct", "dwrows", "gemm", "implicit", "ocvec", "packed",
    "strided1d", "tgemm", "winograd", "winograd_oc", "winograd_w")]


@pytest.mark.parametrize("case", [c for c in path_cases([
    ("conv", conv_spec(2, 6, 6, (30,), (3,), groups=6)),
    ("conv", conv_spec(2, 8, 16, (12, 10), (3, 3), stride=(2, 1), padding=((1, 1), (1, 1)))),
    ("conv", conv_spec(2, 8, 16, (40,), (3,), stride=(2,))),
    ("conv_weight", conv_spec(2, 8, 16, (12, 10), (3, 3), stride=(1, 1),
                              padding=((1, 1), (1, 1)))),
    ("conv_transpose", tconv_spec(2, 16, 8, (20, 20), (4, 4), stride=(2, 2),
                                  padding=((1, 1),) * 2)),
    ("conv", conv_spec(2, 16, 16, (10, 12), (3, 3), padding=((1, 1), (1, 1)), groups=16)),
    ("conv", conv_spec(1, 64, 64, (8, 8), (3, 3), padding=((1, 1), (1, 1)))),
]) if c[0] != "fft"], ids=_case_id)
def test_kernels_check_their_arrays(case, rng, monkeypatch):
    """Every kernel entry takes its arrays' data through one check: a wrong
    dtype, a mix of dtypes, a strided view, a list or a read-only result is a
    TypeError/ValueError naming the array, and nothing is written.

    The kernels' own calls are recorded during a real call on the path and
    made again with one array spoilt at a time.
    """
    path, op, spec = case
    calls = []
    for mod in map(importlib.import_module, KERNEL_MODULES):
        for name in ("conv", "conv_transpose", "conv_weight", "conv_many"):
            fn = getattr(mod, name, None)
            if fn is not None:
                def record(*args, _fn=fn, **kwargs):
                    calls.append((_fn, args, kwargs))
                    return _fn(*args, **kwargs)
                monkeypatch.setattr(mod, name, record)
    with cy_mod.force_paths(path):
        getattr(CY, op)(*_inputs(op, spec, np.float32, rng), spec)
    monkeypatch.undo()
    assert calls, f"{path} called no kernel entry"
    for fn, args, kwargs in calls:
        iy = 2 if fn.__name__ == "conv_weight" else 3

        def again(i, value):
            spoilt = list(args)
            spoilt[i] = value
            fn(*spoilt, **kwargs)

        y = args[iy]
        y_before = y.copy()
        with pytest.raises(TypeError, match="y must be float32 or float64"):
            again(iy, y.astype(np.int32))
        with pytest.raises(TypeError, match="x must have y's dtype"):
            again(0, args[0].astype(np.float64))
        with pytest.raises(TypeError, match="'x' has incorrect type"):
            again(0, args[0].tolist())
        with pytest.raises(ValueError, match="x must be C-contiguous"):
            again(0, np.repeat(args[0], 2)[::2])
        locked = y.copy()
        locked.flags.writeable = False
        with pytest.raises(ValueError, match="y must be writable"):
            again(iy, locked)
        np.testing.assert_array_equal(y, y_before)


def test_blas_threads_restored_after_call(rng, restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()
              if i["user_api"] == "blas"]
    pyconv.set_num_threads(2)
    spec = conv_spec(4, 16, 32, (40, 30), (3, 3), stride=(1, 1), padding=((1, 1), (1, 1)))
    x, w, b = arrays(spec, np.float32, rng)
    with cy_mod.force_paths("gemm"):
        CY.conv(x, w, b, spec)
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info()
             if i["user_api"] == "blas"]
    assert before == after


def test_concurrent_calls_from_python_threads(rng):
    cases = []
    for op, spec in AGNOSTIC_CASES[:10]:
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

BIG_CASES = [
    ("conv", conv_spec(2, 256, 8, (64, 64, 64), (3, 3, 3), stride=(1, 1, 1),
                       padding=((1, 1),) * 3)),
    ("conv", conv_spec(2, 256, 64, (64, 64, 64), (3, 3, 3), stride=(2, 2, 2),
                       padding=((1, 1),) * 3)),
    ("conv", conv_spec(1, 4096, 4096, (20000,), (3,))),
    ("conv", conv_spec(1, 4096, 4096, (20000,), (3,), stride=(4,))),
    ("conv", conv_spec(4, 2048, 2048, (256, 256), (1, 1))),
    ("conv_weight", conv_spec(8, 256, 512, (64, 64), (5, 5))),
    ("conv_weight", conv_spec(64, 2048, 2048, (64,), (7,))),
    ("conv_weight", conv_spec(8, 1024, 1024, (64, 64), (1, 1))),
    ("conv_weight", conv_spec(64, 256, 256, (112, 112), (3, 3), padding=((1, 1),) * 2)),
    ("conv_transpose", tconv_spec(2, 16, 512, (64, 64, 64), (4, 4, 4), stride=(2, 2, 2))),
    ("conv_transpose", tconv_spec(64, 2048, 1024, (3, 3), (5, 5), stride=(3, 3))),
    ("conv_transpose", tconv_spec(2, 256, 256, (64, 64, 64), (3, 3, 3), stride=(2, 2, 2))),
    ("conv_transpose", tconv_spec(4, 2048, 2048, (256, 256), (1, 1))),
]


@pytest.mark.parametrize("case", [(path, op, spec) for path in PATHS for op, spec in BIG_CASES
                                  if op in cy_mod.BY_NAME[path].ops], ids=_case_id)
@pytest.mark.parametrize("nthreads", [1, 2, 16])
def test_planned_workspace_is_bounded(case, nthreads):
    """Every path's plan, forced or not, keeps its buffers within WORKSPACE_BYTES."""
    path, op, spec = case
    for dtype in (np.float32, np.float64):
        for p in (forced_plan(path, op, spec, dtype, nthreads),
                  cy_mod.plan(op, spec, dtype, nthreads)):
            assert p.workspace <= cy_mod._planning.WORKSPACE_BYTES, p
            assert 1 <= p.omp_threads <= min(nthreads, p.items), p


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys
    from math import prod
    import numpy as np
    from pyconv import _cy
    from pyconv._spec import ConvSpec
    path, op = sys.argv[1], sys.argv[2]
    cy = _cy.load()
    if op != "conv_transpose":
        # 1 x 96 x 96 x 96 input, 96 channels: im2col of the whole problem
        # would be 96*27 x 96**3 floats = 9.2 GB
        spec = ConvSpec(False, 1, 96, 8, 1, (96, 96, 96), (96, 96, 96), (3, 3, 3),
                        (1, 1, 1), ((1, 1),) * 3, (1, 1, 1))
    else:
        # transposed: col of the whole problem would be 32*64 x 48**3 = 0.9 GB
        spec = ConvSpec(True, 1, 32, 32, 1, (48, 48, 48), (96, 96, 96), (4, 4, 4),
                        (2, 2, 2), ((1, 1),) * 3, (1, 1, 1))
    if path in ("winograd_w", "ocvec", "winograd_oc"):   # 2-d only: 8 x 256 x 96 x 96
        spec = ConvSpec(False, 8, 256, 256, 1, (96, 96), (96, 96), (3, 3), (1, 1),
                        ((1, 1),) * 2, (1, 1))
    x = np.ones(spec.input_shape, np.float32)
    w = np.ones(spec.weight_shape, np.float32)
    gy = np.ones(spec.output_shape, np.float32) if op == "conv_weight" else None
    with _cy.force_paths(path):
        assert _cy.plan(op, spec, np.float32).path == path
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if op == "conv":
            y = cy.conv(x, w, None, spec)
            assert float(y[(0, 0) + (5,) * spec.nd]) == spec.in_channels * prod(spec.kernel_size)
        elif op == "conv_weight":
            y = cy.conv_weight(x, gy, spec)
            if path == "winograd_w":     # the centre tap: every position, rounded
                assert abs(float(y[0, 0, 1, 1]) - 8 * 96 ** 2) <= 1e-5 * 8 * 96 ** 2
            else:
                assert float(y[0, 0, 1, 1, 1]) == 96 ** 3
        else:
            y = cy.conv_transpose(x, w, None, spec)
            assert float(y[0, 0, 5, 5, 5]) == 32 * 8
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(int(peak - base), int(y.nbytes))
""")


@pytest.mark.parametrize("path,op", [
    ("implicit", "conv"), ("packed", "conv"), ("gemm", "conv"),
    ("implicit", "conv_weight"), ("gemm", "conv_weight"),
    ("phases", "conv_transpose"), ("gemm", "conv_transpose"), ("winograd4", "conv"),
    ("winograd_w", "conv_weight"), ("ocvec", "conv"), ("winograd_oc", "conv"),
])
def test_peak_memory_bounded(path, op):
    """Extra peak RSS of a big call <= output size + 64 MiB (checked in a subprocess)."""
    env = dict(os.environ, PYCONV_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, path, op], capture_output=True,
                         text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    extra, out_bytes = map(int, res.stdout.split())
    assert extra <= out_bytes + cy_mod._planning.WORKSPACE_BYTES, (extra, out_bytes)


# ---------------------------------------------------------------------------
# threadpoolctl

_THREADPOOL_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import threadpoolctl
    import pyconv
    from pyconv import _cy
    from pyconv._spec import ConvSpec
    big = ConvSpec(False, 8, 64, 64, 1, (4096,), (4094,), (3,), (1,), ((0, 0),), (1,))
    def threads():
        # what get_num_threads says and what a large call's plan runs
        return [pyconv.get_num_threads(), _cy.plan("conv", big, np.float32).omp_threads]
    x = np.ones((1, 1, 8)); w = np.ones((1, 1, 3))
    pyconv.conv1d(x, w, backend="cython")             # the OpenMP runtime is loaded now
    seen = {}
    seen["openmp_libs"] = sum(i["user_api"] == "openmp" for i in threadpoolctl.threadpool_info())
    seen["free"] = threads()
    with threadpoolctl.threadpool_limits(1):
        seen["limits_1"] = threads()
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        seen["openmp_1"] = threads()
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        seen["blas_1"] = threads()
    with threadpoolctl.threadpool_limits(8):
        seen["limits_8"] = threads()
    pyconv.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1):
        seen["set_2_limits_1"] = threads()
    seen["set_2"] = threads()
    print(json.dumps(seen))
""")


def _threadpool_run(**env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYCONV_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_vars)
    res = subprocess.run([sys.executable, "-c", _THREADPOOL_SCRIPT], capture_output=True,
                         text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.skipif(CY is None or not cy_mod._build.build_info()["openmp"],
                    reason="the cython backend is built without OpenMP")
@pytest.mark.parametrize("env_vars", [
    pytest.param({"PYCONV_NUM_THREADS": "2"}, id="PYCONV_NUM_THREADS=2"),
    pytest.param({"PYCONV_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"},
                 id="PYCONV_NUM_THREADS=2,OMP_NUM_THREADS=1"),
    pytest.param({"OMP_NUM_THREADS": "2"}, id="OMP_NUM_THREADS=2"),
])
def test_threadpoolctl_limits_pyconv_threads(env_vars):
    """threadpool_limits(1) (all APIs or "openmp") holds pyconv to one thread.

    Precedence: set_num_threads, PYCONV_NUM_THREADS, OMP_NUM_THREADS give the
    count; a limit lowered by threadpoolctl caps it; a limit the runtime had
    from the start (OMP_NUM_THREADS=1 under PYCONV_NUM_THREADS=2) does not;
    a BLAS-only limit, or a limit above the count, changes nothing.
    """
    seen = _threadpool_run(**env_vars)
    assert seen["openmp_libs"] >= 1            # threadpoolctl sees pyconv's OpenMP runtime
    # OMP_NUM_THREADS=1 at start-up: a limit of 1 set later is not a lowering (the
    # runtime cannot tell them apart), so pyconv's own count stands
    capped = [2, 2] if env_vars.get("OMP_NUM_THREADS") == "1" else [1, 1]
    assert seen["free"] == [2, 2], seen
    assert seen["limits_1"] == capped, seen
    assert seen["openmp_1"] == capped, seen
    assert seen["blas_1"] == [2, 2], seen
    assert seen["limits_8"] == [2, 2], seen
    assert seen["set_2_limits_1"] == capped, seen
    assert seen["set_2"] == [2, 2], seen


_POLICY_SCRIPT = textwrap.dedent("""
    import os
    import numpy as np
    import pyconv
    pyconv.conv1d(np.ones((1, 1, 8)), np.ones((1, 1, 3)), backend="cython")
    print("after:", os.environ.get("OMP_WAIT_POLICY"))
""")


@pytest.mark.skipif(CY is None or not cy_mod._build.build_info()["openmp"],
                    reason="the cython backend is built without OpenMP")
@pytest.mark.parametrize("user,shown", [(None, "PASSIVE"), ("active", "ACTIVE"),
                                        ("passive", "PASSIVE")])
def test_openmp_wait_policy_default_and_user_setting(user, shown):
    """The runtime waits passively unless the user chose; the environment is left as it was."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["OMP_DISPLAY_ENV"] = "TRUE"      # libgomp prints its settings when it loads
    if user is not None:
        env["OMP_WAIT_POLICY"] = user
    res = subprocess.run([sys.executable, "-c", _POLICY_SCRIPT], capture_output=True,
                         text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert f"OMP_WAIT_POLICY = '{shown}'" in res.stderr, res.stderr
    assert f"after: {user}" in res.stdout, res.stdout


# ---------------------------------------------------------------------------
# Ctrl-C

_SIGINT_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    import numpy as np
    from pyconv import _cy
    from pyconv._spec import ConvSpec
    path, op = sys.argv[1], sys.argv[2]
    cy = _cy.load()

    def allocated():
        # bytes malloc has handed out and not got back (glibc), or None
        import ctypes
        class Info(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]
        try:
            fn = ctypes.CDLL(None).mallinfo2
        except (OSError, AttributeError):
            return None
        fn.restype = Info
        info = fn()
        return info.uordblks + info.hblkhd

    # calls of seconds each (by size), over and over until interrupted
    if path.startswith("winograd"):     # its kernels: 3 taps, stride 1
        spec = ConvSpec(op == "conv_transpose", 8, 128, 128, 1, (128, 128), (128, 128),
                        (3, 3), (1, 1), ((1, 1),) * 2, (1, 1))
    elif op == "conv_transpose":
        spec = ConvSpec(True, 8, 128, 128, 1, (64, 64), (128, 128), (12, 12), (2, 2),
                        ((5, 5),) * 2, (1, 1))
    else:
        spec = ConvSpec(False, 8, 128, 128, 1, (128, 128), (128, 128), (9, 9), (1, 1),
                        ((4, 4),) * 2, (1, 1))
    x = np.ones(spec.input_shape, np.float32)
    w = np.full(spec.weight_shape, 1e-3, np.float32)
    gy = np.ones(spec.output_shape, np.float32)
    if op == "conv_weight":
        call = lambda: cy.conv_weight(x, gy, spec)
    else:
        call = lambda: getattr(cy, op)(x, w, None, spec)
    latencies, sizes = [], []
    with _cy.force_paths(path):
        assert _cy.plan(op, spec, np.float32).path == path
        for cycle in range(3):
            fired = []
            timer = threading.Timer(0.5, lambda: (fired.append(time.perf_counter()),
                                                  os.kill(os.getpid(), signal.SIGINT)))
            timer.start()
            try:
                while True:
                    call()
            except KeyboardInterrupt:
                latencies.append(time.perf_counter() - fired[0])
            timer.join()
            sizes.append(allocated())
        # the process is still usable: a small call gives the right result
        small = ConvSpec(spec.transposed, 2, 16, 8, 1, (12, 12),
                         (23, 23) if spec.transposed else (12, 12), (3, 3),
                         (2, 2) if spec.transposed else (1, 1), ((1, 1),) * 2, (1, 1))
        rng = np.random.default_rng(0)
        xs = rng.standard_normal(small.input_shape).astype(np.float32)
        ws = rng.standard_normal(small.weight_shape).astype(np.float32)
        gs = rng.standard_normal(small.output_shape).astype(np.float32)
        from pyconv._reference import load
        ref = load()
        if op == "conv_weight":
            got, want = cy.conv_weight(xs, gs, small), ref.conv_weight(xs, gs, small)
        else:
            got, want = getattr(cy, op)(xs, ws, None, small), getattr(ref, op)(xs, ws, None, small)
    ok = np.allclose(got, want, rtol=1e-5, atol=1e-4)
    grown = None if sizes[0] is None else sizes[-1] - sizes[0]
    print(json.dumps({"latencies": latencies, "grown": grown, "ok": bool(ok)}))
""")


@pytest.mark.parametrize("path,op", [
    ("implicit", "conv"), ("gemm", "conv"), ("direct", "conv"),
    ("implicit", "conv_weight"), ("phases", "conv_transpose"),
    ("winograd4", "conv"), ("winograd2", "conv_transpose"), ("winograd_w", "conv_weight"),
    ("ocvec", "conv"), ("winograd_oc", "conv"),
])
def test_ctrl_c_interrupts_a_long_call(path, op):
    """SIGINT during a call of seconds: KeyboardInterrupt within 0.5 s, no leak, usable after.

    Each call takes seconds, so without the check between work items the
    exception would come only when the call ends.  The memory malloc holds
    (glibc's count) is the same after the first and the third interrupt:
    every buffer was freed.
    """
    env = dict(os.environ, PYCONV_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _SIGINT_SCRIPT, path, op],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert max(out["latencies"]) < 0.5, out
    assert out["grown"] is None or out["grown"] < 1 << 20, out
    assert out["ok"], out


# ---------------------------------------------------------------------------
# facts

def test_info_reports_build():
    info = CY.info()
    for key in ("openmp", "threads", "simd", "target_clones", "blas", "microkernel", "paths"):
        assert key in info
    assert info["threads"] == pyconv.get_num_threads()
    assert info["paths"] == ", ".join(PATHS)
    if os.environ.get("PYCONV_FAIL_NO_OPENMP", "").strip() == "1":
        assert info["openmp"] is True


def test_microkernel_table_gives_consistent_blocks():
    """Each (dtype, level) row of the shape table: vectors of the level's width."""
    lanes = {0: 16, 1: 32, 2: 64}       # bytes per vector register at each level
    for level in (0, 1, 2):
        for dtype in (np.float32, np.float64):
            mr, nr, mrw, nrw = cy_mod._build.microkernel(dtype == np.float64, level)
            vl = lanes[level] // np.dtype(dtype).itemsize
            assert nr % vl == 0 and nrw % vl == 0 and mr >= 1 and mrw >= 1
    with pytest.raises(ValueError, match="SIMD level"):
        cy_mod._build.microkernel(False, 3)


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


def test_exact_algorithms_skip_the_paths_that_are_not_exact(monkeypatch, rng):
    """Under use_algorithms("exact") the planner passes over a non-exact path."""
    from pyconv._cy.paths import BY_NAME
    spec = conv_spec(2, 16, 16, (20, 20), (3, 3), padding=((1, 1), (1, 1)))
    assert cy_mod.plan("conv", spec, np.float32).path == "implicit"
    monkeypatch.setattr(BY_NAME["implicit"], "exact", False)   # pretend it were a transform
    assert cy_mod.plan("conv", spec, np.float32).path == "implicit"
    with pyconv.use_algorithms("exact"):
        p = cy_mod.plan("conv", spec, np.float32)
        assert p.path != "implicit" and BY_NAME[p.path].exact
        assert cy_mod.plan("conv", spec, np.float32, paths=("implicit",)).path != "implicit"
        x = rng.standard_normal(spec.input_shape).astype(np.float32)
        w = rng.standard_normal(spec.weight_shape).astype(np.float32)
        got = pyconv.conv2d(x, w, padding=1, backend="cython")
    want = pyconv.conv2d(x, w, padding=1, backend="reference")
    assert_close(got, want, dtype=np.float32)


def test_fma_loop_counts_its_operations():
    """The bench's FMA-peak probe: its count is 2 flops x 16 lanes x 16 chains per step."""
    from pyconv._cy import _build
    assert _build.fma_flops(1000, 1) == 2 * 16 * 16 * 1000
    assert _build.fma_flops(1000, 3) == 3 * 2 * 16 * 16 * 1000
    assert _build.fma_flops(0, 2) == 0
    with pytest.raises(ValueError):
        _build.fma_flops(10, 0)


def _stub_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "gen_cy_stubs.py"
    spec = importlib.util.spec_from_file_location("gen_cy_stubs", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_type_stubs_of_the_kernel_modules_are_current():
    """Every kernel module has a .pyi stub, the one tools/gen_cy_stubs.py writes
    from its .pyx, declaring exactly the functions and classes the compiled
    module has, with the parameter names they take."""
    import ast
    import importlib
    import inspect

    tool = _stub_tool()
    pyxs = sorted(tool.CY_DIR.glob("_*.pyx"))
    assert pyxs
    for pyx in pyxs:
        pyi = pyx.with_suffix(".pyi")
        assert pyi.exists(), f"{pyi.name} missing: run python tools/gen_cy_stubs.py"
        assert pyi.read_text() == tool.stub(pyx), \
            f"{pyi.name} out of date: run python tools/gen_cy_stubs.py"
        module = importlib.import_module(f"pyconv._cy.{pyx.stem}")
        compiled = {name for name, obj in vars(module).items()
                    if not name.startswith("_") and (callable(obj) or inspect.isclass(obj))
                    and getattr(obj, "__module__", module.__name__) == module.__name__}
        tree = ast.parse(pyi.read_text())
        declared = {node.name: node for node in tree.body
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert set(declared) == compiled, pyx.name
        for name, node in declared.items():
            if isinstance(node, ast.FunctionDef):
                params = [a.arg for a in node.args.args]
                want = list(inspect.signature(getattr(module, name)).parameters)
                assert params == want, f"{pyx.stem}.{name}"
