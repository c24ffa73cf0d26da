"""The ``opencl`` backend on its own: primitives against the reference
backend, device arrays, program caching, the fp64-missing error,
determinism, device selection, launch-size checks and tile fallbacks.

Runs on any OpenCL device (PoCL's CPU device in CI); the whole module is
skipped, with the reason, when pyopencl or an OpenCL device is missing.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from math import prod

import numpy as np
import pytest

cl = pytest.importorskip("pyopencl", reason="pyopencl is not installed")
import pyopencl.array as cl_array  # noqa: E402

import pyconv  # noqa: E402
from pyconv import _registry  # noqa: E402
from pyconv._reference import load as load_reference  # noqa: E402
from pyconv._spec import ConvSpec  # noqa: E402

from helpers import assert_close, conv_spec, tconv_spec, tolerance  # noqa: E402

_backend, _reason = _registry._load("opencl")
if _backend is None:
    pytest.skip(f"opencl backend unavailable: {_reason}", allow_module_level=True)

from pyconv._opencl import _backend as ocl_backend  # noqa: E402
from pyconv._opencl import _device as ocl_device  # noqa: E402
from pyconv._opencl import _programs as ocl_programs  # noqa: E402

REF = load_reference()
DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def be():
    return _backend


def _dtype_or_skip(be, dtype):
    reason = be.supports("conv", CONV_CASES[0][1], dtype)
    if reason is not None:
        pytest.skip(reason)


# ---------------------------------------------------------------------------
# geometry grid

CONV_CASES = [
    ("1d-basic", conv_spec(2, 3, 4, (11,), 3, padding=1)),
    ("1d-stride2-dil2-groups2-asym", conv_spec(2, 4, 6, (13,), 3, stride=2, padding=((2, 0),),
                                               dilation=2, groups=2)),
    ("1d-depthwise-mult2", conv_spec(1, 4, 8, (9,), 5, padding=2, groups=4)),
    ("1d-k1-stride3", conv_spec(2, 2, 3, (10,), 1, stride=3)),
    ("1d-kernel-wider-than-input", conv_spec(1, 2, 2, (3,), 5, padding=2)),
    ("1d-same-even-kernel", conv_spec(2, 3, 3, (8,), 4, padding=((1, 2),))),
    ("1d-large-tile-split-weight", conv_spec(4, 2, 64, (200,), 3, padding=1)),
    ("2d-mixed", conv_spec(2, 3, 5, (6, 7), (3, 2), stride=(1, 2), padding=((1, 1), (0, 1)),
                           dilation=(1, 2))),
    ("2d-depthwise-stride2", conv_spec(1, 4, 4, (5, 6), 3, stride=2, padding=((1, 2), (1, 0)),
                                       groups=4)),
    ("2d-large-tile", conv_spec(2, 2, 64, (4, 5), 2)),
    ("2d-mid-tile-groups2", conv_spec(1, 6, 16, (5, 5), 3, padding=1, groups=2)),
    ("3d-mixed", conv_spec(1, 2, 3, (4, 5, 4), (2, 3, 2), stride=(1, 2, 1),
                           padding=((1, 0), (1, 1), (0, 1)), dilation=(1, 1, 2))),
    ("3d-groups2-stride2", conv_spec(2, 4, 4, (3, 4, 5), 2, stride=2,
                                     padding=((0, 1), (1, 1), (1, 0)), groups=2)),
]

TCONV_CASES = [
    ("1d-s2-groups2-op1", tconv_spec(2, 4, 6, (5,), 4, stride=2, padding=((1, 0),), groups=2)),
    ("1d-negative-hi", tconv_spec(2, 3, 2, (4,), 3, stride=3, padding=((0, -2),), dilation=2)),
    ("1d-s2-d2-empty-phases", tconv_spec(1, 2, 3, (4,), 3, stride=2, dilation=2)),
    ("1d-large-tile", tconv_spec(1, 3, 64, (5,), 4, stride=2, padding=1)),
    ("2d-mixed-negative-hi", tconv_spec(2, 3, 4, (3, 4), (3, 2), stride=(2, 3),
                                        padding=((1, 0), (0, -1)), dilation=(1, 2))),
    ("2d-depthwise-s2-op1", tconv_spec(1, 4, 4, (4, 4), 3, stride=2, padding=((1, 0), (1, 0)),
                                       groups=4)),
    ("2d-mid-tile", tconv_spec(1, 4, 12, (3, 3), 3, stride=1, padding=1)),
    ("3d-mixed", tconv_spec(1, 2, 3, (2, 3, 2), (2, 2, 3), stride=(2, 1, 2),
                            padding=((0, -1), (1, 0), (1, 1)))),
    ("3d-groups2", tconv_spec(2, 4, 2, (2, 2, 3), 2, stride=2, padding=((0, 0), (1, 0), (0, 1)),
                              groups=2)),
] + [(f"adjoint-of-{name}", spec.as_transposed()) for name, spec in CONV_CASES
     if spec.batch * prod(spec.in_size) <= 400]


def _data(spec, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    b = rng.standard_normal(spec.out_channels).astype(dtype)
    gy = rng.standard_normal(spec.output_shape).astype(dtype)
    return x, w, b, gy


def _check(got, op, spec, args, dtype, label):
    """Compare with the reference; tolerance scaled by the sum of |terms|."""
    expected = getattr(REF, op)(*args, spec)
    absargs = [None if a is None else np.abs(a) for a in args]
    if op != "conv_weight":
        absargs[2] = None
    bound = getattr(REF, op)(*absargs, spec).astype(np.float64)
    scale = max(1.0, float(bound.max(initial=0.0)))
    assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype)
    assert_close(got, expected, dtype=dtype, label=label, rtol=tolerance(dtype),
                 scale=scale * 50)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name,spec", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv_and_weight_match_reference(be, name, spec, dtype):
    _dtype_or_skip(be, dtype)
    x, w, b, gy = _data(spec, dtype)
    _check(be.conv(x, w, b, spec), "conv", spec, (x, w, b), dtype, f"conv {name}")
    _check(be.conv(x, w, None, spec), "conv", spec, (x, w, None), dtype, f"conv nobias {name}")
    _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), dtype,
           f"conv_weight {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name,spec", TCONV_CASES, ids=[c[0] for c in TCONV_CASES])
def test_conv_transpose_matches_reference(be, name, spec, dtype):
    _dtype_or_skip(be, dtype)
    x, w, b, _ = _data(spec, dtype, seed=1)
    _check(be.conv_transpose(x, w, b, spec), "conv_transpose", spec, (x, w, b), dtype,
           f"conv_transpose {name}")
    _check(be.conv_transpose(x, w, None, spec), "conv_transpose", spec, (x, w, None), dtype,
           f"conv_transpose nobias {name}")


def test_empty_and_zero_channel_problems(be):
    spec = conv_spec(0, 3, 4, (5,), 3)
    x, w, b, gy = _data(spec, np.float32)
    assert be.conv(x, w, b, spec).shape == (0, 4, 3)
    gw = be.conv_weight(x, gy, spec)
    assert gw.shape == (4, 3, 3) and not gw.any()
    # no input channel: the output is the bias alone
    spec = conv_spec(2, 0, 3, (5,), 3)
    x, w, b, _ = _data(spec, np.float32)
    y = be.conv(x, w, b, spec)
    np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None], y.shape))


# ---------------------------------------------------------------------------
# device arrays

@pytest.fixture
def no_host_copies(monkeypatch):
    """Count every device->host and host->device copy made while active."""
    calls = []

    def forbid(name, orig):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return orig(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(cl_array.Array, "get", forbid("Array.get", cl_array.Array.get))
    monkeypatch.setattr(cl_array, "to_device", forbid("to_device", cl_array.to_device))
    monkeypatch.setattr(cl, "enqueue_copy", forbid("enqueue_copy", cl.enqueue_copy))
    return calls


def test_device_arrays_stay_on_device(be, no_host_copies):
    spec = conv_spec(2, 4, 6, (9, 8), 3, stride=2, padding=1, groups=2)
    x, w, b, gy = _data(spec, np.float32)
    tspec = spec.as_transposed()
    # uploads made before counting starts
    xd, wd, bd, gyd = (cl_array.Array(be.queue, a.shape, a.dtype) for a in (x, w, b, gy))
    for dev, host in ((xd, x), (wd, w), (bd, b), (gyd, gy)):
        dev.set(host)
    del no_host_copies[:]

    y = be.conv(xd, wd, bd, spec)
    xt = be.conv_transpose(gyd, wd, None, tspec)
    gw = be.conv_weight(xd, gyd, spec)
    padded = be.pad(xd, "reflect", ((1, 2), (2, 0)))
    # a chain of layers: the output of one feeds the next
    y2 = be.conv_transpose(y, wd, None, tspec)
    assert no_host_copies == []
    for out in (y, xt, gw, padded, y2):
        assert isinstance(out, cl_array.Array) and out.context == be.context
    be.queue.finish()
    _check(y.get(), "conv", spec, (x, w, b), np.float32, "device conv")
    _check(xt.get(), "conv_transpose", tspec, (gy, w, None), np.float32, "device convT")
    _check(gw.get(), "conv_weight", spec, (x, gy), np.float32, "device weight")
    np.testing.assert_array_equal(padded.get(), np.pad(x, ((0, 0), (0, 0), (1, 2), (2, 0)),
                                                       mode="reflect"))


def test_front_layer_keeps_device_arrays(be, no_host_copies):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xd, wd = be.to_device(x), be.to_device(w)
    del no_host_copies[:]
    y = pyconv.conv2d(xd, wd, None, padding=1, padding_mode="circular", backend="opencl")
    assert no_host_copies == []
    assert isinstance(y, cl_array.Array)
    expected = pyconv.conv2d(x, w, None, padding=1, padding_mode="circular",
                             backend="reference")
    assert_close(y.get(), expected, dtype=np.float32)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape,pads", [
    ((2, 3, 5), ((2, 1),)),
    ((1, 2, 4, 5), ((3, 0), (1, 4))),
    ((1, 1, 3, 4, 2), ((1, 2), (0, 3), (1, 1))),
])
def test_pad_modes_match_numpy(be, shape, pads, mode, dtype):
    _dtype_or_skip(be, dtype)
    if mode == "reflect":
        pads = tuple((min(lo, n - 1), min(hi, n - 1)) for (lo, hi), n in zip(pads, shape[2:]))
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    expected = np.pad(x, ((0, 0), (0, 0)) + tuple(pads),
                      mode={"replicate": "edge", "circular": "wrap"}.get(mode, mode))
    np.testing.assert_array_equal(be.pad(be.to_device(x), mode, pads).get(), expected)


# ---------------------------------------------------------------------------
# caching, determinism

def test_second_call_does_not_rebuild(be, monkeypatch):
    spec = conv_spec(1, 3, 5, (7, 6), 3, padding=1)
    x, w, b, gy = _data(spec, np.float32)
    be.conv(x, w, b, spec)
    be.conv_weight(x, gy, spec)
    builds = []
    orig = cl.Program.build
    monkeypatch.setattr(cl.Program, "build",
                        lambda self, *a, **k: builds.append(1) or orig(self, *a, **k))
    before = be.programs.builds
    for _ in range(2):
        be.conv(x, w, b, spec)
        be.conv_weight(x, gy, spec)
    assert builds == [] and be.programs.builds == before
    # clearing the cache rebuilds each program once, and results are new arrays
    be.clear_cache()
    y1 = be.conv(x, w, b, spec)
    y2 = be.conv(x, w, b, spec)
    assert len(builds) == 1 and be.programs.builds == before + 1
    assert y1 is not y2
    y1[...] = 0
    assert y2.any()


def test_results_are_deterministic(be):
    # the weight gradient here is split into several partial sums
    spec = conv_spec(8, 16, 64, (40, 30), 3, padding=1)
    x, w, b, gy = _data(spec, np.float32)
    tiles = ocl_programs.tile_classes(be.device)["large"][0]
    reduction = spec.batch * prod(spec.out_size)
    assert be._splits(be.device, tiles, spec, 64, 16 * 9, reduction, 64 * 16 * 9 * 4) > 1
    tspec = spec.as_transposed()
    runs = [(be.conv(x, w, b, spec).tobytes(), be.conv_weight(x, gy, spec).tobytes(),
             be.conv_transpose(gy, w, None, tspec).tobytes()) for _ in range(2)]
    assert runs[0] == runs[1]


def test_split_weight_gradient_matches_reference(be):
    spec = CONV_CASES[6][1]  # 1d-large-tile-split-weight
    tiles = ocl_programs.tile_classes(be.device)["large"][0]
    reduction = spec.batch * prod(spec.out_size)
    assert be._splits(be.device, tiles, spec, 64, 6, reduction, 64 * 6 * 4) > 1
    x, _, _, gy = _data(spec, np.float64 if be.fp64 else np.float32)
    _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), x.dtype, "split")


# ---------------------------------------------------------------------------
# fp64 on a device without cl_khr_fp64

def test_fp64_missing_is_a_clear_error(be, monkeypatch):
    monkeypatch.setattr(be, "fp64", False)
    spec = conv_spec(1, 2, 2, (5,), 3)
    reason = be.supports("conv", spec, np.float64)
    assert "cl_khr_fp64" in reason and be.device.name.strip() in reason
    assert be.supports("conv", spec, np.float32) is None
    x, w, b, gy = _data(spec, np.float64)
    for call in (lambda: be.conv(x, w, b, spec), lambda: be.conv_weight(x, gy, spec),
                 lambda: pyconv.conv1d(x, w, b, backend="opencl")):
        with pytest.raises(pyconv.BackendUnavailableError, match="cl_khr_fp64"):
            call()
    # auto silently uses another backend instead
    with pyconv.use_backend("auto"):
        y = pyconv.conv1d(x, w, b)
    assert y.dtype == np.float64
    # float32 still runs
    _check(be.conv(x.astype(np.float32), w.astype(np.float32), None, spec), "conv", spec,
           (x.astype(np.float32), w.astype(np.float32), None), np.float32, "fp32")


def test_fp64_detection(monkeypatch):
    class FakeDevice:
        extensions = "cl_khr_global_int32_base_atomics cl_khr_byte_addressable_store"
        double_fp_config = 0

    assert ocl_device.device_has_fp64(FakeDevice()) is False
    FakeDevice.extensions += " cl_khr_fp64"
    assert ocl_device.device_has_fp64(FakeDevice()) is True


# ---------------------------------------------------------------------------
# device selection and availability

def test_device_selection_env(monkeypatch):
    found = ocl_device.enumerate_devices()
    first = found[0][3]
    monkeypatch.delenv("PYOPENCL_CTX", raising=False)
    for value in ("0", "0:0", first.name.strip()[:6].upper(), "  0 "):
        monkeypatch.setenv("PYCONV_OPENCL_DEVICE", value)
        device, how = ocl_device.select_device()
        assert device == first and "PYCONV_OPENCL_DEVICE" in how
    for value in ("no-such-device-xyz", "99", "7:3"):
        monkeypatch.setenv("PYCONV_OPENCL_DEVICE", value)
        with pytest.raises(pyconv.BackendUnavailableError, match="PYCONV_OPENCL_DEVICE"):
            ocl_device.select_device()
    # PYOPENCL_CTX, parsed by pyopencl, when PYCONV_OPENCL_DEVICE is unset
    monkeypatch.delenv("PYCONV_OPENCL_DEVICE")
    monkeypatch.setenv("PYOPENCL_CTX", "0:0")
    device, how = ocl_device.select_device()
    assert device == found[0][3] and "PYOPENCL_CTX" in how
    # PYCONV_OPENCL_DEVICE wins over PYOPENCL_CTX
    monkeypatch.setenv("PYCONV_OPENCL_DEVICE", "no-such-device-xyz")
    with pytest.raises(pyconv.BackendUnavailableError):
        ocl_device.select_device()
    # neither: a GPU first, else the first device; never a prompt
    monkeypatch.delenv("PYCONV_OPENCL_DEVICE")
    monkeypatch.delenv("PYOPENCL_CTX")
    device, how = ocl_device.select_device()
    gpus = [d for _, _, _, d in found if d.type & cl.device_type.GPU]
    assert device == (gpus[0] if gpus else first)


def test_no_platform_or_device_is_unavailable(monkeypatch):
    def boom():
        raise cl.LogicError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(cl, "get_platforms", boom)
    with pytest.raises(pyconv.BackendUnavailableError, match="no OpenCL platform"):
        ocl_device.enumerate_devices()
    monkeypatch.setattr(cl, "get_platforms", lambda: [])
    with pytest.raises(pyconv.BackendUnavailableError, match="no OpenCL device"):
        ocl_device.enumerate_devices()
    from pyconv._opencl import load
    with pytest.raises(pyconv.BackendUnavailableError):
        load()


def test_missing_pyopencl_makes_backend_unavailable():
    code = ("import sys; sys.modules['pyopencl'] = None\n"
            "import pyconv\n"
            "from pyconv._opencl import load\n"
            "try:\n    load()\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n"
            "r = [b for b in pyconv.backends() if b['name'] == 'opencl'][0]\n"
            "print('AVAILABLE', r['available'], r['reason'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert "IMPORTERROR pyopencl is not installed" in out.stdout, out.stderr
    assert "AVAILABLE False" in out.stdout and "pyopencl" in out.stdout


def test_info_lists_devices(be):
    info = be.info()
    assert info["device"]["name"] == be.device.name.strip()
    used = [d for p in info["platforms"] for d in p["devices"] if d["used"]]
    assert len(used) == 1 and used[0]["name"] == be.device.name.strip()
    assert info["selected_by"]


def test_prefers_only_large_problems_on_gpus(be, monkeypatch):
    big = conv_spec(8, 64, 64, (56, 56), 3, padding=1)
    small = conv_spec(1, 2, 2, (8,), 3)
    assert be.is_gpu == bool(be.device.type & cl.device_type.GPU)   # kept at init
    if not be.is_gpu:
        assert not be.prefers("conv", big, np.float32)

    class FakeGPU:
        type = cl.device_type.GPU
        name = "a fake GPU"
        max_mem_alloc_size = 2**32

    monkeypatch.setattr(be, "device", FakeGPU())
    monkeypatch.setattr(be, "is_gpu", True)
    assert big.flops >= ocl_backend.PREFER_MIN_FLOPS > small.flops
    assert be.prefers("conv", big, np.float32)
    assert be.prefers("conv_transpose", big.as_transposed(), np.float32)
    assert not be.prefers("conv", small, np.float32)
    assert not be.prefers("conv", big, np.float64)


# ---------------------------------------------------------------------------
# launch sizes and tile fallbacks

def test_launch_validates_sizes(be):
    knl = be.programs.kernel(be.context, "util", "sum_splits", (("PRECISION", 32),))
    limit = be.device.max_work_group_size
    with pytest.raises(ocl_programs.LaunchError, match="not a multiple"):
        ocl_programs.launch(be.queue, knl, (100,), (64,), ())
    with pytest.raises(ocl_programs.LaunchError, match="exceeds the limit"):
        ocl_programs.launch(be.queue, knl, (4 * limit,), (2 * limit,), ())
    with pytest.raises(ocl_programs.LaunchError, match="empty global size"):
        ocl_programs.launch(be.queue, knl, (0,), (1,), ())


def test_launch_sizes_are_checked_once_and_errors_every_time(be, monkeypatch):
    """Accepted sizes are remembered per kernel (a layer launches the same
    ones at every call); refused ones are refused again; clear_cache forgets."""
    knl = be.programs.kernel(be.context, "util", "sum_splits", (("PRECISION", 32),))
    checks = []
    real = ocl_programs._check_sizes
    monkeypatch.setattr(ocl_programs, "_check_sizes",
                        lambda *a: checks.append(a[2:]) or real(*a))
    monkeypatch.setattr(ocl_programs.cl, "enqueue_nd_range_kernel", lambda *a, **k: None)
    for method in ("set_args", "set_scalar_arg_dtypes"):   # nothing runs
        monkeypatch.setattr(knl, method, lambda *a: None, raising=False)
    be.clear_cache()
    for _ in range(3):
        ocl_programs.launch(be.queue, knl, (128,), (64,), ())
        with pytest.raises(ocl_programs.LaunchError, match="not a multiple"):
            ocl_programs.launch(be.queue, knl, (100,), (64,), ())
    assert checks == [((128,), (64,))] + [((100,), (64,))] * 3
    be.clear_cache()
    ocl_programs.launch(be.queue, knl, (128,), (64,), ())
    assert checks[-1] == ((128,), (64,)) and len(checks) == 5


def test_tiles_fall_back_when_too_big(be, monkeypatch):
    """A device with 64 work-items and 4 KiB of local memory gets smaller tiles."""
    monkeypatch.setattr(be, "programs", ocl_programs.ProgramCache())
    monkeypatch.setattr(ocl_programs, "device_limits", lambda device: (64, [64, 64, 64], 4096))
    spec = conv_spec(2, 3, 64, (6, 7), 3, padding=1)
    x, w, b, gy = _data(spec, np.float32)
    _check(be.conv(x, w, b, spec), "conv", spec, (x, w, b), np.float32, "fallback conv")
    _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), np.float32,
           "fallback conv_weight")
    chosen = [tiles for tiles, _ in be.programs._tiles.values()]
    assert len(chosen) == 2
    for tiles in chosen:
        assert tiles.work_group_size <= 64 and tiles.local_bytes(4) <= 4096
        assert tiles != ocl_programs.tile_classes(be.device)["large"][0]


ALL_TILES = sorted({(cls, t) for table in (ocl_programs.TILE_CLASSES,
                                           ocl_programs.TILE_CLASSES_CPU)
                    for cls, ts in table.items() for t in ts}, key=str)


@pytest.mark.parametrize("cls,tiles", ALL_TILES, ids=[f"{c}-{t.tm}x{t.tn}x{t.tk}-{t.rm}x{t.rn}"
                                                      for c, t in ALL_TILES])
def test_every_tile_configuration_is_correct(be, monkeypatch, cls, tiles):
    """Each configuration, GPU and CPU lists, computes the same thing (float32, 2-d)."""
    max_wg, max_items, local_mem = ocl_programs.device_limits(be.device)
    lx, ly = tiles.local_size
    if (tiles.work_group_size > max_wg or lx > max_items[0] or ly > max_items[1]
            or tiles.local_bytes(4) > local_mem):
        pytest.skip(f"{tiles} exceeds the limits of {be.device.name.strip()!r} (the tile "
                    "lists fall back to smaller ones there)")
    monkeypatch.setattr(be, "programs", ocl_programs.ProgramCache())
    monkeypatch.setitem(ocl_programs.TILE_CLASSES, cls, (tiles,))
    monkeypatch.setitem(ocl_programs.TILE_CLASSES_CPU, cls, (tiles,))
    if cls in ("large_few", "mid_many"):   # the GPU occupancy classes, here on any device
        monkeypatch.setattr(ocl_backend, "_gemm_tile_class", lambda *args: cls)
    rows, cin = {"large": (64, 4), "large_few": (64, 4), "mid": (12, 4), "mid_many": (12, 4),
                 "small": (3, 12), "tiny": (2, 1)}[cls]
    spec = conv_spec(2, cin, rows, (6, 5), (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)),
                     dilation=(1, 2))
    x, w, b, gy = _data(spec, np.float32)
    _check(be.conv(x, w, b, spec), "conv", spec, (x, w, b), np.float32, f"conv {tiles}")
    _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), np.float32,
           f"conv_weight {tiles}")
    tspec = spec.as_transposed()
    bt = np.linspace(-1, 1, cin, dtype=np.float32)
    _check(be.conv_transpose(gy, w, bt, tspec), "conv_transpose", tspec, (gy, w, bt),
           np.float32, f"conv_transpose {tiles}")


def test_64bit_index_variant(be, monkeypatch):
    """The INDEX64 build (used for arrays of 2**31 elements or more) computes the same."""
    monkeypatch.setattr(be, "programs", ocl_programs.ProgramCache())
    monkeypatch.setattr(ocl_backend, "index_type", lambda *sizes: (("INDEX64", None),))
    spec = CONV_CASES[6][1]  # split weight gradient: sum_splits runs too
    x, w, b, gy = _data(spec, np.float32)
    _check(be.conv(x, w, b, spec), "conv", spec, (x, w, b), np.float32, "index64 conv")
    _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), np.float32,
           "index64 conv_weight")
    tspec = TCONV_CASES[4][1]
    xt, wt, bt, _ = _data(tspec, np.float32)
    _check(be.conv_transpose(xt, wt, bt, tspec), "conv_transpose", tspec, (xt, wt, bt),
           np.float32, "index64 conv_transpose")
    np.testing.assert_array_equal(be.pad(be.to_device(x), "circular", ((3, 2),)).get(),
                                  np.pad(x, ((0, 0), (0, 0), (3, 2)), mode="wrap"))
    assert all(("INDEX64", None) in key[2] for key in be.programs._programs)


def _random_spec(rng, transposed):
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    cin = groups * int(rng.integers(1, 4))
    cout = groups * int(rng.integers(1, 4))
    size = tuple(int(v) for v in rng.integers(1, 7 if nd < 3 else 5, nd))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    s = tuple(int(v) for v in rng.integers(1, 4, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    if transposed:
        # hi = padding - output_padding, output_padding < max(stride, dilation)
        pads = []
        for kk, dd, ss in zip(k, d, s):
            lo = int(rng.integers(0, dd * (kk - 1) + 1))
            pads.append((lo, lo - int(rng.integers(0, max(ss, dd)))))
        spec = tconv_spec(int(rng.integers(1, 3)), cin, cout, size, k, stride=s, padding=pads,
                          dilation=d, groups=groups)
    else:
        pads = [tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(nd)]
        spec = conv_spec(int(rng.integers(1, 3)), cin, cout, size, k, stride=s, padding=pads,
                         dilation=d, groups=groups)
    if min(spec.out_size) < 1:
        return None
    return spec


@pytest.mark.parametrize("seed", range(12))
def test_random_geometries_match_reference(be, seed):
    """Random small geometries, every primitive (float64 where the device has it)."""
    rng = np.random.default_rng(1000 + seed)
    dtype = np.float64 if be.fp64 else np.float32
    done = 0
    while done < 3:
        transposed = bool(done % 2)
        spec = _random_spec(rng, transposed)
        if spec is None:
            continue
        x, w, b, gy = _data(spec, dtype, seed=seed)
        label = f"seed {seed}: {spec}"
        if transposed:
            _check(be.conv_transpose(x, w, b, spec), "conv_transpose", spec, (x, w, b), dtype,
                   label)
        else:
            _check(be.conv(x, w, b, spec), "conv", spec, (x, w, b), dtype, label)
            _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), dtype, label)
        done += 1


def test_concurrent_calls_from_threads(be):
    """Calls from several Python threads share kernels and plans safely."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [CONV_CASES[i][1] for i in (0, 1, 7, 11)]
    inputs = [_data(spec, np.float32, seed=i) for i, spec in enumerate(cases)]

    def run(i):
        spec = cases[i % len(cases)]
        x, w, b, gy = inputs[i % len(cases)]
        return (be.conv(x, w, b, spec).tobytes(), be.conv_weight(x, gy, spec).tobytes(),
                be.conv_transpose(gy, w, None, spec.as_transposed()).tobytes())

    serial = [run(i) for i in range(len(cases))]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, range(4 * len(cases))))
    for i, got in enumerate(threaded):
        assert got == serial[i % len(cases)]


def test_plan_header_layout_is_written_once():
    """The kernels read the header through defines generated from PLAN_LAYOUTS."""
    for name, layout in ocl_programs.PLAN_LAYOUTS.items():
        with open(os.path.join(ocl_programs._KERNEL_DIR, f"{name}.cl")) as fh:
            assert f"#define {layout.prefix}_" not in fh.read()  # no hand-written copy
        src = ocl_programs.kernel_source(name)
        for i, field in enumerate(layout.fields):
            assert f"#define {layout.prefix}_{field} {i}\n" in src
        assert f"#define {layout.prefix}_DIM {len(layout.fields)}\n" in src
        values = dict.fromkeys(layout.fields, 7)
        dims = [dict.fromkeys(layout.dim_fields, 3)]
        assert layout.pack(dims, **values) == ([7] * len(layout.fields) + [3] * len(
            layout.dim_fields) + [0] * 2 * len(layout.dim_fields))
        del values[layout.fields[-1]]
        with pytest.raises(KeyError, match="fields"):
            layout.pack(dims, **values)


def test_empty_grads_of_device_arrays_stay_on_the_device(be):
    f32 = np.float32
    D = be.to_device
    cases = [
        pyconv.grad.conv1d_weight(D(np.ones((0, 4, 10), f32)), (6, 4, 3),
                                  D(np.ones((0, 6, 8), f32))),
        pyconv.grad.conv1d_input((2, 0, 10), D(np.ones((6, 0, 3), f32)),
                                 D(np.ones((2, 0, 8), f32))),
        pyconv.grad.conv_transpose1d_weight(D(np.ones((0, 4, 10), f32)), (4, 4, 3),
                                            D(np.ones((0, 4, 12), f32))),
    ]
    for got, shape in zip(cases, [(6, 4, 3), (2, 0, 10), (4, 4, 3)]):
        assert isinstance(got, cl_array.Array)
        assert tuple(got.shape) == shape
        assert not got.get().any()


def test_device_arrays_use_the_registry_name_rules(be):
    x = be.to_device(np.ones((1, 2, 10), np.float32))
    w = be.to_device(np.ones((3, 2, 3), np.float32))
    assert tuple(pyconv.conv1d(x, w, backend="OpenCL").shape) == (1, 3, 8)
    with pytest.raises(ValueError, match="valid names"):
        pyconv.conv1d(x, w, backend="bogus")
    with pytest.raises(ValueError, match="pyopencl arrays can only be processed by the "
                                         "'opencl' backend"):
        pyconv.conv1d(x, w, backend="cython")


def test_transposed_huge_stride_launches_only_reached_phases(be):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 2, 2, 2)).astype(np.float32)
    w = rng.standard_normal((4, 4, 2, 2, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = pyconv.conv_transpose3d(x, w, b, stride=50, backend="opencl")
    want = pyconv.conv_transpose3d(x, w, b, stride=50, backend="reference")
    assert_close(y, want, dtype=np.float32)
    from pyconv._spec import conv_transpose_call
    spec = conv_transpose_call("conv_transpose3d", 3, x.shape, w.shape, b.shape, 50, 0, 0, 1,
                               1).spec
    _, launches = be._conv_transpose_plan(spec, True)
    assert len(launches) <= 8  # prod(kernel_size), not 50**3 residues


def test_32bit_geometry_refused_only_where_the_index_math_overflows(be):
    from pyconv._spec import conv_call, conv_transpose_call
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 10)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3)).astype(np.float32)
    # a huge stride with one output position, a huge dilation of a 1-tap kernel and a huge
    # stride of a one-position transposed input never enter the index math: computed
    for call in (lambda B: pyconv.conv1d(x, w, stride=2**39, backend=B),
                 lambda B: pyconv.conv1d(x, w[:, :, :1], dilation=2**39, backend=B),
                 lambda B: pyconv.conv_transpose1d(x[:, :, :1], w.swapaxes(0, 1).copy(),
                                                   stride=2**39, backend=B)):
        assert_close(call("opencl"), call("reference"), dtype=np.float32)
    # three outputs 2**39 apart: o*stride overflows 32 bits, so refused (auto falls back)
    spec = conv_call("conv1d", 1, x.shape, w.shape, None, 2**39, 2**39, 1, 1).spec
    assert spec.out_size == (3,)
    assert "32-bit" in be.supports("conv", spec, np.float32)
    assert not be.prefers("conv", spec, np.float32)
    with pytest.raises(pyconv.BackendUnavailableError, match="32-bit"):
        pyconv.conv1d(x, w, stride=2**39, padding=2**39, backend="opencl")
    tspec = conv_transpose_call("conv_transpose1d", 1, (1, 2, 3), (2, 3, 3), None, 2**35,
                                2**35 - 1, 0, 1, 1).spec
    assert tspec.out_size == (5,)  # the padding crops all but 5 positions: i*stride remains
    assert "32-bit" in be.supports("conv_transpose", tspec, np.float32)


def test_buffers_beyond_the_devices_largest_allocation_are_refused(be):
    limit = int(be.device.max_mem_alloc_size)
    n = limit // 4 + 1024  # float32 elements just past the limit
    x = np.broadcast_to(np.ones(1, np.float32), (1, 1, n))  # no memory behind it
    w = np.ones((1, 1, 1), np.float32)
    from pyconv._spec import conv_call
    spec = conv_call("conv1d", 1, x.shape, w.shape, None, 1, 0, 1, 1).spec
    reason = be.supports("conv", spec, np.float32)
    assert "CL_DEVICE_MAX_MEM_ALLOC_SIZE" in reason and str(limit) in reason
    assert not be.prefers("conv", spec, np.float32)
    with pytest.raises(pyconv.BackendUnavailableError, match="MAX_MEM_ALLOC_SIZE"):
        pyconv.conv1d(x, w, backend="opencl")
    small = conv_call("conv1d", 1, (1, 1, 1000), w.shape, None, 1, 0, 1, 1).spec
    assert be.supports("conv", small, np.float32) is None


_INTERRUPT_SCRIPT = r"""
import os, signal, sys, threading, time
import numpy as np
import pyconv

op = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((24, 256, 56, 56), dtype=np.float32)
w = rng.standard_normal((256, 256, 3, 3), dtype=np.float32)

def call(n):
    if op == "conv":
        return pyconv.conv2d(x[:n], w, padding=1, backend="opencl")
    return pyconv.grad.conv2d_weight(x[:n], w.shape, x[:n], padding=1, backend="opencl")

call(1)  # programs built, plans made: what follows is kernel time
sent = []
def interrupt():
    time.sleep(1.0)
    sent.append(time.perf_counter())
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
t0 = time.perf_counter()
try:
    call(len(x))
except KeyboardInterrupt:
    print("latency", time.perf_counter() - sent[0])
else:
    print("finished", time.perf_counter() - t0)
call(1)
# the backend still works: a small call against the reference backend
xs, ws = x[:1, :8, :9, :9], w[:8, :8]
if op == "conv":
    small, ref = (pyconv.conv2d(xs, ws, padding=1, backend=b) for b in ("opencl", "reference"))
else:
    small, ref = (pyconv.grad.conv2d_weight(xs, ws.shape, xs, padding=1, backend=b)
                  for b in ("opencl", "reference"))
print("error", float(np.abs(small - ref).max() / np.abs(ref).max()))
"""


@pytest.mark.parametrize("op", ["conv", "conv_weight"])
def test_long_calls_are_interruptible(op):
    """Ctrl-C during a call of seconds raises KeyboardInterrupt promptly, the backend stays usable."""
    res = subprocess.run([sys.executable, "-c", _INTERRUPT_SCRIPT, op], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    facts = dict(line.split() for line in res.stdout.splitlines())
    if "finished" in facts:
        assert float(facts["finished"]) < 1.0, res.stdout  # uninterruptible calls would not skip
        pytest.skip(f"the device finished the long call in {facts['finished']} s, before "
                    "the signal: nothing to interrupt")
    assert float(facts["latency"]) < 1.5, res.stdout  # generous: CI machines are busy
    assert float(facts["error"]) < 1e-5, res.stdout


def test_launches_in_pieces_compute_the_same(be, monkeypatch):
    """Long launches go out in pieces (global offsets); tiny pieces give the same result."""
    for kind in ("cpu", "gpu"):
        monkeypatch.setitem(ocl_programs.PIECE_FLOPS, kind, 1e3)
    enqueued = []
    real_launch = ocl_programs.launch

    def counting(*args, **kwargs):
        enqueued.append(kwargs.get("offset", args[5] if len(args) > 5 else None))
        return real_launch(*args, **kwargs)

    monkeypatch.setattr(ocl_programs, "launch", counting)
    for name, spec in (CONV_CASES[6], CONV_CASES[10]):
        x, w, b, gy = _data(spec, np.float32)
        _check(be.conv(x, w, b, spec), "conv", spec, (x, w, b), np.float32, f"conv {name}")
        _check(be.conv_weight(x, gy, spec), "conv_weight", spec, (x, gy), np.float32,
               f"conv_weight {name}")
        tspec = spec.as_transposed()
        _check(be.conv_transpose(gy, w, None, tspec), "conv_transpose", tspec, (gy, w, None),
               np.float32, f"conv_transpose {name}")
    assert sum(o is not None and any(o) for o in enqueued) > 10  # really in pieces


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("splits", [2, 5])
def test_split_reduction_computes_the_same(be, monkeypatch, dtype, splits):
    """Convolutions with their reduction cut into slices (the GPU rule for too few
    work-groups, forced here on any device, empty trailing slices included) add the
    slices and the bias into the same result as the reference."""
    _dtype_or_skip(be, dtype)
    chosen = []

    def forced(device, tiles, rows, launches, groups, out_bytes):
        chosen.append(splits)
        return splits

    monkeypatch.setattr(ocl_backend, "_gemm_splits", forced)
    monkeypatch.setattr(be, "programs", ocl_programs.ProgramCache())  # no recipe from before
    for name, spec in CONV_CASES + TCONV_CASES:
        x, w, b, _ = _data(spec, dtype)
        op = "conv_transpose" if spec.transposed else "conv"
        for bias in (b, None):
            _check(getattr(be, op)(x, w, bias, spec), op, spec, (x, w, bias), dtype,
                   f"{op} {name} split {splits}")
    assert len(chosen) > len(CONV_CASES)  # the rule was asked, except for tapless phases


@pytest.mark.parametrize("max_grid_z", [1, 65535])
def test_transposed_phases_fused_or_one_by_one(be, monkeypatch, max_grid_z):
    """A transposed convolution's phases go out in one launch, or one launch each
    when groups x phases would pass the grid's limit; both compute the same."""
    monkeypatch.setattr(ocl_backend, "_MAX_GRID_Z", max_grid_z)
    monkeypatch.setattr(be, "programs", ocl_programs.ProgramCache())  # no recipe from before
    launched = []
    real_launch = ocl_programs.launch

    def counting(queue, kernel, *args, **kwargs):
        launched.append(kernel.function_name)
        return real_launch(queue, kernel, *args, **kwargs)

    monkeypatch.setattr(ocl_programs, "launch", counting)
    for name, spec in TCONV_CASES:
        x, w, b, _ = _data(spec, np.float32)
        launched.clear()
        _check(be.conv_transpose(x, w, b, spec), "conv_transpose", spec, (x, w, b),
               np.float32, f"conv_transpose {name} max_grid_z {max_grid_z}")
        phases = len([r for r in itertools.product(*ocl_backend._phase_residues(spec))])
        gemm = launched.count("conv_gemm")
        assert gemm == (1 if max_grid_z > 1 or phases == 0 else phases), (name, launched)


def test_split_rule_counts_the_phases_launched_together(be, monkeypatch):
    """The phases of a fused launch run side by side: the split rule sees
    groups x phases work-group sets, so it does not over-split."""
    seen = []

    def recording(device, tiles, rows, launches, groups, out_bytes):
        seen.append((len(launches), groups))
        return 1

    monkeypatch.setattr(ocl_backend, "_gemm_splits", recording)
    monkeypatch.setattr(be, "programs", ocl_programs.ProgramCache())
    spec = tconv_spec(1, 4, 6, (5, 5), 4, stride=2, padding=1, groups=2)  # 4 phases
    x, w, b, _ = _data(spec, np.float32)
    be.conv_transpose(x, w, b, spec)
    assert seen == [(4, 2 * 4)]


@pytest.mark.parametrize("rows,cols,kred,gpu,want", [
    (64, 8 * 56 * 56, 576, True, 1),     # 392 work-groups of 64x64: enough
    (256, 16, 4096, True, 33),           # one 4x4 image, 8 row tiles: 2 x 132 / 8
    (256, 16, 256, True, 4),             # ... at most kred / (4 tk) slices
    (256, 16, 2048, False, 1),           # CPUs never split
])
def test_gemm_split_rule(rows, cols, kred, gpu, want):
    kind = cl.device_type.GPU if gpu else cl.device_type.CPU
    tiles = ocl_programs.Tiles(32, 64, 16, 2, 4)
    got = ocl_backend._gemm_splits(_FakeDevice(kind, 132), tiles, rows, [(0, cols, kred)], 1,
                                   4 * rows * cols)
    assert got == want


def test_memory_pool_reuses_and_returns_blocks(be, monkeypatch):
    """Device results come from the queue's pool; a dropped result's block is
    held for the next call and clear_cache gives it back to the driver."""
    spec = CONV_CASES[6][1]
    x, w, b, _ = _data(spec, np.float32)
    xd, wd = be.to_device(x), be.to_device(w)
    be.clear_cache()
    before = be.pool_info()
    y = be.conv(xd, wd, None, spec)
    assert be.pool_info()["active_bytes"] >= before["active_bytes"] + y.nbytes
    expected = y.get()
    del y
    held = be.pool_info()["held_bytes"]
    assert held >= expected.nbytes
    again = be.conv(xd, wd, None, spec)      # served from the held block
    assert be.pool_info()["held_bytes"] < held
    np.testing.assert_array_equal(again.get(), expected)
    del again
    be.clear_cache()
    assert be.pool_info()["held_bytes"] == 0
    monkeypatch.setattr(ocl_backend, "USE_POOL", False)
    active = be.pool_info()["active_bytes"]
    y = be.conv(xd, wd, None, spec)          # a plain driver buffer
    assert be.pool_info()["active_bytes"] == active
    np.testing.assert_array_equal(y.get(), expected)


def test_pools_are_kept_for_a_few_queues_only(be):
    """Calls on many queues (one per call, say) do not keep a pool each."""
    spec = CONV_CASES[0][1]
    x, w, b, _ = _data(spec, np.float32)
    expected = be.conv(x, w, b, spec)
    main = (be.to_device(x), be.to_device(w))          # on the backend's own queue
    first = be._allocator(be.queue)
    for _ in range(3 * ocl_backend._POOL_QUEUES):
        queue = cl.CommandQueue(be.context)
        xd, wd = cl_array.to_device(queue, x), cl_array.to_device(queue, w)
        np.testing.assert_array_equal(be.conv(xd, wd, b, spec).get(), expected)
        np.testing.assert_array_equal(be.conv(*main, b, spec).get(), expected)
    assert be.pool_info()["queues"] <= ocl_backend._POOL_QUEUES
    assert be._allocator(be.queue) is first   # used last all along: never dropped


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 0, 3), (7,)])
def test_fast_empty_matches_pyopencl_empty(be, shape):
    """The backend's template-based allocation gives what cl_array.empty gives,
    a new buffer from the queue's pool every time."""
    pool = be._allocator(be.queue)
    want = cl_array.empty(be.queue, shape, np.float32, allocator=pool)
    got = [be._empty(be.queue, shape, np.float32, pool) for _ in range(2)]
    for a in got:
        assert (a.shape, a.strides, a.dtype, a.size, a.nbytes) == (
            want.shape, want.strides, want.dtype, want.size, want.nbytes)
        assert a.flags.c_contiguous and a.queue == be.queue and a.allocator is pool
    if want.size:
        assert got[0].base_data.int_ptr != got[1].base_data.int_ptr
        got[0].set(np.arange(want.size, dtype=np.float32).reshape(shape))
        np.testing.assert_array_equal(got[0].get().ravel(), np.arange(want.size))


class _FakeDevice:
    def __init__(self, kind, units):
        self.type, self.max_compute_units = kind, units


@pytest.mark.parametrize("rows,cols,groups,gpu,want", [
    (64, 8 * 56 * 56, 1, True, "large"),        # 392 work-groups of 64x64 >= 2 x 132
    (64, 56 * 56, 1, True, "large_few"),        # 49 work-groups: smaller tiles
    (256, 4 * 100, 1, True, "large_few"),       # a transposed phase on a small input
    (64, 56 * 56, 1, False, "large"),           # CPUs keep their lists
    (32, 4 * 16384, 1, True, "mid_many"),       # 2048 work-groups of 16x64 > 8 x 132
    (32, 2 * 4096, 1, True, "mid"),             # 256 work-groups
    (32, 64, 1000, True, "mid_many"),           # groups count too
    (4, 10 ** 6, 1, True, "small"),             # depthwise-like rows: unchanged
])
def test_gpu_tile_class_follows_occupancy(rows, cols, groups, gpu, want):
    kind = cl.device_type.GPU if gpu else cl.device_type.CPU
    assert ocl_backend._gemm_tile_class(rows, cols, groups, _FakeDevice(kind, 132)) == want
