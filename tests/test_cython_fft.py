"""Tests of the cython backend's ``fft`` path beyond the shared matrix (which
forces it on every call it supports, ``cython[fft]``):

* long kernels, where the path really runs, against a float64 NumPy oracle:
  every op, strides (phases), dilation, groups (also several groups per work
  item), 1-d to 3-d, huge padding, kernels longer than the input;
* accuracy against the GEMM paths on adversarial inputs (mixed magnitudes,
  long reductions, a loud burst next to silence);
* bitwise identical results for 1, 2, 3 and 8 threads, with several work
  items, group ranges and conv_weight slots;
* the cost model: the planner takes the path where the model says, never
  under ``use_algorithms("exact")``, and its buffers fit the workspace;
* the compiled kernels (``_fft``): the complex product at every SIMD level,
  pack/unpack, and a ``ValueError`` (never an out-of-bounds access) for
  sizes that do not fit the arrays;
* Ctrl-C during a long call, and the peak memory of a long signal (subprocesses).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyconv
import pyconv.grad

cy_mod = pytest.importorskip("pyconv._cy")
try:
    CY = cy_mod.load()
except ImportError as exc:  # pragma: no cover - unbuilt checkout
    pytestmark = pytest.mark.skip(reason=f"cython backend unavailable: {exc}")
    CY = None
else:
    from pyconv._cy import _fft
    from pyconv._cy.paths import fft as fftpath

from helpers import assert_close, np_conv, np_conv_transpose  # noqa: E402
from pyconv._spec import conv_call, conv_transpose_call  # noqa: E402


# ---------------------------------------------------------------------------
# helpers

def as_tuple(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


def np_conv_weight(x, gy, kernel, stride=1, padding=0, dilation=1, groups=1):
    """float64 oracle of the weight gradient: one einsum per kernel tap."""
    nd = x.ndim - 2
    s, p, d = (as_tuple(v, nd) for v in (stride, padding, dilation))
    n, cin = x.shape[:2]
    cout = gy.shape[1]
    out = gy.shape[2:]
    cin_g, cout_g = cin // groups, cout // groups
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + tuple((v, v) for v in p))
    gw = np.zeros((groups, cout_g, cin_g) + tuple(kernel))
    gyg = gy.astype(np.float64).reshape((n, groups, cout_g) + out)
    for k in itertools.product(*(range(kk) for kk in kernel)):
        sl = tuple(slice(k[i] * d[i], k[i] * d[i] + s[i] * (out[i] - 1) + 1, s[i])
                   for i in range(nd))
        patch = xp[(slice(None), slice(None)) + sl].reshape((n, groups, cin_g, -1))
        gw[(Ellipsis,) + k] = np.einsum("ngcp,ngop->goc", patch,
                                        gyg.reshape((n, groups, cout_g, -1)))
    return gw.reshape((cout, cin_g) + tuple(kernel))


def spec_of(op, x_shape, w_shape, **kw):
    nd = len(w_shape) - 2
    if op == "conv_transpose":
        return conv_transpose_call(f"conv_transpose{nd}d", nd, x_shape, w_shape, None,
                                   kw.get("stride", 1), kw.get("padding", 0),
                                   kw.get("output_padding", 0), kw.get("groups", 1),
                                   kw.get("dilation", 1)).spec
    return conv_call(f"conv{nd}d", nd, x_shape, w_shape, None, kw.get("stride", 1),
                     kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1)).spec


# (op, input shape, weight shape, keyword arguments): long kernels
CASES = [
    ("conv", (2, 1, 3000), (1, 1, 255), {}),
    ("conv", (2, 3, 2000), (5, 3, 100), dict(stride=3, padding=9, dilation=2)),
    ("conv", (2, 64, 1500), (64, 1, 64), dict(groups=64, padding=31)),     # group ranges
    ("conv", (2, 6, 1200), (9, 2, 50), dict(groups=3, stride=2, padding=4)),
    ("conv", (1, 2, 300), (2, 2, 40), dict(padding=500)),                    # huge padding
    ("conv", (1, 2, 60, 50), (3, 2, 13, 9), dict(stride=(2, 1), dilation=(1, 2),
                                                 padding=(3, 5))),
    ("conv", (1, 2, 12, 14, 16), (2, 2, 5, 6, 7), dict(stride=(1, 2, 1), padding=2)),
    ("conv_transpose", (2, 4, 400), (4, 3, 65), dict(stride=3, padding=5, output_padding=2)),
    ("conv_transpose", (1, 3, 30, 20), (3, 4, 9, 12), dict(stride=2, padding=(1, 3),
                                                           dilation=(2, 1))),
    ("conv_transpose", (2, 8, 500), (8, 1, 70), dict(groups=8, padding=30)),
    ("conv_weight", (2, 3, 2000), (5, 3, 100), dict(stride=3, padding=9, dilation=2)),
    ("conv_weight", (3, 16, 1500), (16, 1, 64), dict(groups=16, padding=31)),
    ("conv_weight", (1, 2, 60, 50), (3, 2, 13, 9), dict(stride=(2, 1), padding=(3, 5))),
    ("conv_weight", (2, 2, 10, 40), (2, 2, 12, 30), dict(padding=(6, 0))),  # K > input
]


def _case_id(case):
    op, xs, ws, kw = case
    return f"{op}-x{'x'.join(map(str, xs))}-w{'x'.join(map(str, ws))}-" + "-".join(
        f"{k}{v}" for k, v in kw.items())


def run_case(case, dtype, rng, path="fft"):
    """(result, float64 oracle) of one case through pyconv's public API."""
    op, x_shape, w_shape, kw = case
    nd = len(w_shape) - 2
    x = rng.standard_normal(x_shape).astype(dtype)
    spec = spec_of(op, x_shape, w_shape, **kw)
    with cy_mod.force_paths(path):
        assert cy_mod.plan(op, spec, dtype).path == path
        if op == "conv_weight":
            gy = rng.standard_normal(spec.output_shape).astype(dtype)
            got = getattr(pyconv.grad, f"conv{nd}d_weight")(x, w_shape, gy, backend="cython",
                                                             **kw)
            return got, np_conv_weight(x, gy, w_shape[2:], **kw)
        w = rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(spec.out_channels).astype(dtype)
        if op == "conv":
            got = getattr(pyconv, f"conv{nd}d")(x, w, b, backend="cython", **kw)
            return got, np_conv(x.astype(np.float64), w.astype(np.float64),
                                b.astype(np.float64), **kw)
        got = getattr(pyconv, f"conv_transpose{nd}d")(x, w, b, backend="cython", **kw)
        return got, np_conv_transpose(x.astype(np.float64), w.astype(np.float64),
                                      b.astype(np.float64), **kw)


# ---------------------------------------------------------------------------
# results

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_long_kernels_match_the_oracle(case, dtype, rng):
    got, want = run_case(case, dtype, rng)
    assert got.dtype == np.dtype(dtype)
    assert_close(got, want, dtype, _case_id(case))


def test_group_ranges_and_slots_are_exercised():
    """The cases above cover work items of several groups and several conv_weight slots."""
    geo = fftpath.geometry("conv", spec_of(*CASES[2][:3], **CASES[2][3]), "<f4")
    assert geo.group_items > 1 and geo.items > 1
    geo = fftpath.geometry("conv_weight", spec_of("conv", (8, 1, 40000), (1, 1, 255)), "<f4")
    assert geo.slots > 1


def test_simd_levels_agree(rng):
    """The product's AVX-512, AVX2 and baseline builds give the same result to rounding."""
    case = CASES[1]
    results = []
    for simd in range(cy_mod._build.simd_level() + 1):
        with cy_mod.force_paths("fft", simd=simd):
            results.append(run_case(case, np.float64, np.random.default_rng(5))[0])
    for r in results[1:]:
        assert_close(r, results[0], np.float64, "simd levels")


def adversarial():
    """(name, x, w, padding) of inputs that are hard on a transform."""
    rng = np.random.default_rng(3)
    n = rng.standard_normal
    L = 8192
    burst = n((1, 4, L)) * 1e-3
    burst[:, :, 1000:1100] *= 1e7
    hp = n((1, 1, 1023))
    hp -= hp.mean()
    return [
        ("mixed magnitudes", n((2, 8, L)) * 10 ** rng.uniform(-4, 4, (2, 8, L)),
         n((8, 8, 255)) * 10 ** rng.uniform(-2, 2, (8, 8, 255)), 127),
        ("long reduction", n((1, 64, 4096)), n((64, 64, 511)), 255),
        ("burst next to silence", burst, n((4, 4, 511)), 255),
        ("offset and a zero-sum filter", 100 + n((2, 1, L)), hp, 0),
    ]


@pytest.mark.parametrize("name,x,w,padding", adversarial(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_adversarial_inputs_no_worse_than_gemm(name, x, w, padding):
    """float32 transforms: error (relative to the largest output) within the matrix
    tolerance and within a few times the float32 GEMM path's, on inputs that are
    hard on a transform (see docs/backends.rst for the measured table)."""
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    want = pyconv.conv1d(x32.astype(np.float64), w32.astype(np.float64), padding=padding,
                         backend="cython")
    scale = np.abs(want).max()
    errs = {}
    for path in ("fft", "gemm"):
        with cy_mod.force_paths(path):
            spec = spec_of("conv", x.shape, w.shape, padding=padding)
            assert cy_mod.plan("conv", spec, np.float32).path == path
            got = pyconv.conv1d(x32, w32, padding=padding, backend="cython")
        errs[path] = float(np.abs(got - want).max() / scale)
    assert errs["fft"] <= max(4 * errs["gemm"], 1e-6), errs
    assert errs["fft"] <= 1e-5, errs


# ---------------------------------------------------------------------------
# threads

@pytest.fixture
def restore_threads():
    yield
    pyconv.set_num_threads(None)


@pytest.mark.parametrize("case", [
    ("conv", (3, 4, 6000), (4, 4, 200), dict(padding=100)),
    ("conv", (2, 64, 1500), (64, 1, 64), dict(groups=64, padding=31)),
    ("conv_transpose", (2, 4, 3000), (4, 2, 100), dict(stride=2)),
    ("conv_weight", (8, 2, 20000), (3, 2, 255), {}),
], ids=_case_id)
def test_bitwise_identical_for_any_thread_count(case, rng, restore_threads):
    spec = spec_of(*case[:3], **case[3])
    plans = {cy_mod.plan(case[0], spec, np.float32, n, paths=("fft",)) for n in (1, 2, 3, 8)}
    assert len({p._replace(omp_threads=0, workspace=0) for p in plans}) == 1
    assert next(iter(plans)).items > 1
    results = []
    for n in (1, 2, 3, 8, 1):
        pyconv.set_num_threads(n)
        results.append(run_case(case, np.float32, np.random.default_rng(7))[0])
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()


# ---------------------------------------------------------------------------
# the rule

def test_exact_algorithms_never_take_the_fft_path():
    spec = spec_of("conv", (8, 1, 131072), (1, 1, 1023))
    assert cy_mod.plan("conv", spec, np.float32).path == "fft"
    with pyconv.use_algorithms("exact"):
        assert cy_mod.plan("conv", spec, np.float32).path == "direct"
        assert cy_mod.plan("conv", spec, np.float32, paths=("fft",)).path == "direct"


def test_the_rule_is_the_cost_model(monkeypatch):
    """fft is taken exactly where MARGIN x its modelled time beats the other path's."""
    tgt = cy_mod._planning.target(np.float32)
    specs = [spec_of("conv", (b, c, length), (c, c // g, k), padding=k // 2, groups=g)
             for b, c, length, k, g in [(8, 1, 131072, 1023, 1), (1, 1, 4096, 127, 1),
                                        (4, 32, 16384, 511, 1), (2, 64, 4096, 33, 1),
                                        (2, 64, 4096, 127, 64), (8, 128, 1024, 9, 1)]]
    for spec in specs:
        geo = fftpath.geometry("conv", spec, "<f4")
        want = (fftpath.MIN_TAPS <= np.prod([ax.q for ax in geo.axes])
                and geo.seconds * fftpath.MARGIN < fftpath.other_seconds("conv", spec, tgt))
        assert (cy_mod.plan("conv", spec, np.float32).path == "fft") == want
    # the other path is the one the planner takes without fft
    monkeypatch.setattr(fftpath.Fft, "chosen", lambda self, op, spec, tgt: False)
    cy_mod._plan_cached.cache_clear()
    try:
        for spec in specs:
            assert cy_mod.plan("conv", spec, np.float32).path == fftpath.other_path(
                "conv", spec, tgt)
    finally:
        cy_mod._plan_cached.cache_clear()


@pytest.mark.parametrize("op,x_shape,w_shape", [
    ("conv", (1, 4096, 1 << 16), (4096, 4096, 255)),
    ("conv", (1, 1, 1 << 28), (1, 1, 8191)),
    ("conv_weight", (64, 512, 8192), (512, 512, 511)),
    ("conv_transpose", (2, 256, 65536), (256, 256, 1023)),
    ("conv", (1, 64, 512, 512), (64, 64, 63, 63)),
])
@pytest.mark.parametrize("nthreads", [1, 2, 16])
def test_planned_workspace_is_bounded(op, x_shape, w_shape, nthreads):
    spec = spec_of(op, x_shape, w_shape)
    for dtype in (np.float32, np.float64):
        p = cy_mod.plan(op, spec, dtype, nthreads, paths=("fft",))
        assert p.workspace <= cy_mod._planning.WORKSPACE_BYTES, p
        geo = fftpath.geometry(op, spec, np.dtype(dtype).str)
        if geo is not None:
            assert geo.thread_bytes <= fftpath.THREAD_BYTES
            assert geo.fixed_bytes <= fftpath.SPECTRUM_BYTES


# ---------------------------------------------------------------------------
# the compiled kernels

def _c(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("I,J,L,F", [(5, 7, 3, 37), (1, 1, 1, 4097), (4, 3, 6, 16),
                                     (9, 10, 1, 9), (1, 5, 7, 3), (8, 13, 4, 1)])
def test_cgemm_matches_einsum(dtype, level, I, J, L, F, rng):
    if level > cy_mod._build.simd_level():
        pytest.skip("this CPU cannot run that SIMD level")
    fv = _fft.chunk(dtype == np.complex128, level)
    nf = -(-F // fv) * fv
    tol = 1e-5 if dtype == np.complex64 else 1e-13
    # the forward product: C[j, i, f] = sum_l A[i, l, f] B[j, l, f], C as rows
    A, B = _c(rng, (I, L, F), dtype), _c(rng, (J, L, F), dtype)
    Ap, Bp = np.empty(nf * I * L, dtype), np.empty(nf * J * L, dtype)
    _fft.pack(level, F, I * L, F, 1, 0, A.ravel(), 0, Ap, 0)
    _fft.pack(level, F, J * L, F, 1, 0, B.ravel(), 0, Bp, 0)
    C = np.full((J, I, F), np.nan, dtype)
    _fft.cgemm(level, F, I, J, L, Ap, 0, Bp, 0, C.reshape(-1), 0, F, I * F, False, False, False)
    want = np.einsum("ilf,jlf->jif", A.astype(np.complex128), B.astype(np.complex128))
    assert_close(C, want, np.float32 if dtype == np.complex64 else np.float64, "forward",
                 rtol=tol)
    # the weight gradient's: packed C += sum_l conj(D[l, i, f]) X[l, j, f]
    D, X = _c(rng, (L, I, F), dtype), _c(rng, (L, J, F), dtype)
    Dp, Xp = np.empty(nf * I * L, dtype), np.empty(nf * J * L, dtype)
    _fft.pack(level, F, I, F, L, I * F, D.ravel(), 0, Dp, 0)
    _fft.pack(level, F, J, F, L, J * F, X.ravel(), 0, Xp, 0)
    C0 = _c(rng, (I, J, F), dtype)
    Cp = np.empty(nf * I * J, dtype)
    _fft.pack(level, F, I * J, F, 1, 0, C0.ravel(), 0, Cp, 0)
    _fft.cgemm(level, F, I, J, L, Dp, 0, Xp, 0, Cp, 0, 0, 0, True, True, True)
    C2 = np.empty((I, J, F), dtype)
    _fft.unpack(level, F, I * J, F, 1, 0, Cp, 0, C2.reshape(-1), 0)
    want = C0 + np.einsum("lif,ljf->ijf", np.conj(D).astype(np.complex128),
                          X.astype(np.complex128))
    assert_close(C2, want, np.float32 if dtype == np.complex64 else np.float64, "weight",
                 rtol=tol)


def test_kernels_refuse_sizes_that_do_not_fit():
    """A size or offset past an array is a ValueError before any memory is touched."""
    a = np.zeros(64, np.complex64)
    b = np.zeros(64, np.complex64)
    with pytest.raises(ValueError, match="do not fit"):
        _fft.cgemm(2, 64, 2, 1, 1, a, 0, b, 0, b, 0, 64, 64, False, False, False)
    with pytest.raises(ValueError, match="do not fit"):
        _fft.pack(2, 64, 1, 64, 1, 0, a, 1, b, 0)
    with pytest.raises(ValueError, match="one dtype"):
        _fft.pack(2, 8, 1, 8, 1, 0, a, 0, np.zeros(64, np.complex128), 0)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros(64, np.complex64)
        ro.flags.writeable = False
        _fft.cgemm(2, 8, 1, 1, 1, a, 0, b, 0, ro, 0, 8, 8, False, False, False)
    frames = _fft.Frames([(1, 1, 0, 1, 1, 1, 1, (0,))] * 2 + [(100, 1, 0, 50, 60, 60, 2, (0,))])
    x = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="buffer"):
        _fft.gather(frames, x, 0, 100, 0, 2, 1, np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="past the array"):
        _fft.gather(frames, x, 0, 100, 2, 1, 1, np.zeros(120, np.float32))
    with pytest.raises(ValueError, match="invalid axis"):
        _fft.Frames([(1, 0, 0, 1, 1, 1, 1, (0,))] * 3)


# ---------------------------------------------------------------------------
# Ctrl-C and memory (subprocesses)

_SIGINT_SCRIPT = textwrap.dedent("""
    import json, os, signal, threading, time
    import numpy as np
    from pyconv import _cy
    from pyconv._spec import conv_call
    cy = _cy.load()
    spec = conv_call("conv1d", 1, (8, 4, 1 << 19), (4, 4, 4095), None, 1, 0, 1, 1).spec
    x = np.ones(spec.input_shape, np.float32)
    w = np.full(spec.weight_shape, 1e-3, np.float32)
    latencies = []
    with _cy.force_paths("fft"):
        assert _cy.plan("conv", spec, np.float32).path == "fft"
        for cycle in range(3):
            fired = []
            timer = threading.Timer(0.5, lambda: (fired.append(time.perf_counter()),
                                                  os.kill(os.getpid(), signal.SIGINT)))
            timer.start()
            try:
                while True:
                    cy.conv(x, w, None, spec)
            except KeyboardInterrupt:
                latencies.append(time.perf_counter() - fired[0])
            timer.join()
        small = conv_call("conv1d", 1, (2, 3, 500), (2, 3, 64), None, 1, 0, 1, 1).spec
        rng = np.random.default_rng(0)
        xs = rng.standard_normal(small.input_shape)
        ws = rng.standard_normal(small.weight_shape)
        got = cy.conv(xs, ws, None, small)
    want = np.stack([np.stack([sum(np.correlate(xs[n, c], ws[o, c], "valid") for c in range(3))
                               for o in range(2)]) for n in range(2)])
    print(json.dumps({"latencies": latencies, "ok": bool(np.allclose(got, want))}))
""")


def test_ctrl_c_interrupts_a_long_call():
    """SIGINT during calls of about a second: KeyboardInterrupt within 0.5 s, usable after."""
    env = dict(os.environ, PYCONV_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _SIGINT_SCRIPT], capture_output=True,
                         text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["latencies"]) == 3 and max(out["latencies"]) < 0.5, out
    assert out["ok"], out


_RSS_SCRIPT = textwrap.dedent("""
    import resource
    import numpy as np
    from pyconv import _cy
    from pyconv._spec import conv_call
    cy = _cy.load()
    # a 1023-tap filter over 2**25 samples (128 MiB), a few channels
    spec = conv_call("conv1d", 1, (1, 2, 1 << 25), (2, 2, 1023), None, 1, 511, 1, 1).spec
    x = np.ones(spec.input_shape, np.float32)
    w = np.ones(spec.weight_shape, np.float32)
    with _cy.force_paths("fft"):
        assert _cy.plan("conv", spec, np.float32).path == "fft"
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        y = cy.conv(x, w, None, spec)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert abs(float(y[0, 0, 1 << 20]) - 2 * 1023) < 1e-2, y[0, 0, 1 << 20]
    print(int(peak - base), int(y.nbytes))
""")


def test_peak_memory_bounded():
    """Extra peak RSS of a long signal <= output size + 64 MiB."""
    env = dict(os.environ, PYCONV_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True,
                         timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    extra, out_bytes = map(int, res.stdout.split())
    assert extra <= out_bytes + cy_mod._planning.WORKSPACE_BYTES, (extra, out_bytes)
