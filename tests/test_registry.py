"""Backend registry (docs/backends.rst): precedence, names, availability, context
locality, lazy imports, thread settings, and the backend interface."""

from __future__ import annotations

import contextvars
import inspect
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pyconv
from pyconv import _registry
from pyconv._registry import Backend, BackendUnavailableError
from pyconv._reference import ReferenceBackend

from helpers import assert_close

NAMES = list(_registry._MODULES)


def run_py(code, env=None, timeout=120):
    full_env = dict(os.environ)
    for var in ("PYCONV_BACKEND", "PYCONV_NUM_THREADS"):
        full_env.pop(var, None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class Spy(ReferenceBackend):
    """A reference backend that records which name ran each call."""

    log = []

    def __init__(self, name):
        self.name = name

    def conv(self, x, w, b, spec):
        Spy.log.append(self.name)
        return super().conv(x, w, b, spec)

    def conv_transpose(self, x, w, b, spec):
        Spy.log.append(self.name)
        return super().conv_transpose(x, w, b, spec)

    def conv_weight(self, x, gy, spec):
        Spy.log.append(self.name)
        return super().conv_weight(x, gy, spec)


@pytest.fixture
def spies(monkeypatch):
    """Replace every registered backend by a Spy; restores everything afterwards."""
    Spy.log = []
    for name in NAMES:
        monkeypatch.setitem(_registry._loaded, name, Spy(name))
        monkeypatch.delitem(_registry._failed, name, raising=False)
    monkeypatch.delenv("PYCONV_BACKEND", raising=False)
    monkeypatch.setattr(_registry, "_global", None)
    yield Spy.log
    pyconv.set_backend(None)


X = np.ones((1, 1, 4))
W = np.ones((1, 1, 2))


def ran(log, fn=lambda **kw: pyconv.conv1d(X, W, **kw), **kw):
    log.clear()
    fn(**kw)
    assert len(log) == 1, log
    return log[0]


def test_backends_listing():
    listing = pyconv.backends()
    assert [e["name"] for e in listing] == NAMES
    for e in listing:
        assert set(e) >= {"name", "available", "reason"}
        assert isinstance(e["available"], bool)
        assert (e["reason"] is None) == e["available"]
    assert listing[0] == {"name": "reference", "available": True, "reason": None} or \
        listing[0]["available"]


def test_precedence(spies, monkeypatch):
    log = spies
    assert pyconv.get_backend() == "auto"
    assert ran(log) == _registry.AUTO_ORDER[0]           # auto: first in AUTO_ORDER
    monkeypatch.setenv("PYCONV_BACKEND", "cython")
    assert pyconv.get_backend() == "cython"
    assert ran(log) == "cython"                          # env read at use, not import
    pyconv.set_backend("opencl")
    assert ran(log) == "opencl"                          # set_backend beats env
    with pyconv.use_backend("reference"):
        assert pyconv.get_backend() == "reference"
        assert ran(log) == "reference"                   # use_backend beats set_backend
        assert ran(log, backend="cython") == "cython"    # backend= beats everything
        with pyconv.use_backend("cython"):
            assert ran(log) == "cython"                  # innermost block wins
        assert ran(log) == "reference"
    assert ran(log) == "opencl"
    pyconv.set_backend(None)
    assert ran(log) == "cython"                          # back to the env
    monkeypatch.setenv("PYCONV_BACKEND", "auto")
    assert ran(log) == _registry.AUTO_ORDER[0]


def test_precedence_applies_to_modules_and_grad(spies):
    log = spies
    m = pyconv.Conv1d(1, 1, 2, dtype=np.float64)
    with pyconv.use_backend("cython"):
        assert ran(log, lambda: m(X)) == "cython"
        assert ran(log, lambda: pyconv.grad.conv1d_weight(X, (1, 1, 2), np.ones((1, 1, 3)))) \
            == "cython"
    assert ran(log, lambda: pyconv.grad.conv1d_input((1, 1, 4), W, np.ones((1, 1, 3)),
                                                     backend="opencl")) == "opencl"


def test_auto_skips_unavailable_and_unwilling(spies, monkeypatch):
    log = spies
    first, second = _registry.AUTO_ORDER[0], _registry.AUTO_ORDER[1]
    monkeypatch.delitem(_registry._loaded, first)
    monkeypatch.setitem(_registry._failed, first, "OSError: simulated missing driver")
    assert ran(log) == second
    # a backend that does not prefer the call is skipped by auto ...
    monkeypatch.setattr(Spy, "prefers", lambda self, op, spec, dtype: self.name == "reference")
    assert ran(log) == "reference"
    # ... and one that cannot run it refuses an explicit request, with the reason
    monkeypatch.setattr(Spy, "supports",
                        lambda self, op, spec, dtype: None if self.name == "reference"
                        else "simulated: no fp64 on this device")
    with pytest.raises(BackendUnavailableError, match="simulated: no fp64"):
        pyconv.conv1d(X, W, backend=second)


def test_unavailable_backend_by_name(spies, monkeypatch):
    monkeypatch.delitem(_registry._loaded, "opencl")
    monkeypatch.setitem(_registry._failed, "opencl", "ImportError: simulated: no pyopencl")
    entry = [e for e in pyconv.backends() if e["name"] == "opencl"][0]
    assert entry["available"] is False and "simulated: no pyopencl" in entry["reason"]
    assert issubclass(BackendUnavailableError, RuntimeError)
    assert pyconv.BackendUnavailableError is BackendUnavailableError
    for call in (lambda: pyconv.conv1d(X, W, backend="opencl"),
                 lambda: pyconv.conv_transpose1d(X, W, backend="opencl"),
                 lambda: pyconv.grad.conv1d_weight(X, (1, 1, 2), np.ones((1, 1, 3)),
                                                   backend="opencl")):
        with pytest.raises(BackendUnavailableError) as info:
            call()
        assert "opencl" in str(info.value) and "simulated: no pyopencl" in str(info.value)
    with pyconv.use_backend("opencl"):  # selecting works; the call says why it cannot run
        with pytest.raises(BackendUnavailableError, match="simulated"):
            pyconv.conv1d(X, W)
    pyconv.set_backend("opencl")
    with pytest.raises(BackendUnavailableError, match="simulated"):
        pyconv.conv1d(X, W)


def test_unknown_names():
    for bad in ("nope", "", "cuda"):
        for call in (lambda: pyconv.conv1d(X, W, backend=bad),
                     lambda: pyconv.set_backend(bad),
                     lambda: pyconv.use_backend(bad).__enter__()):
            with pytest.raises(ValueError) as info:
                call()
            for name in NAMES + ["auto"]:
                assert name in str(info.value), (bad, str(info.value))
    with pytest.raises(TypeError):
        pyconv.set_backend(3)


def test_names_are_case_insensitive(spies):
    assert ran(spies, backend="Reference") == "reference"


def test_bad_env_value_is_an_error_not_a_fallback(spies, monkeypatch):
    monkeypatch.setenv("PYCONV_BACKEND", "bogus")
    with pytest.raises(ValueError, match="PYCONV_BACKEND='bogus'.*'reference'"):
        pyconv.get_backend()
    with pytest.raises(ValueError, match="PYCONV_BACKEND"):
        pyconv.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)))
    # an explicit choice still works, and an empty value means auto
    assert ran(spies, backend="reference") == "reference"
    monkeypatch.setenv("PYCONV_BACKEND", "")
    assert pyconv.get_backend() == "auto"


def test_use_backend_is_context_local():
    seen = {}

    def worker(key):
        seen[key] = pyconv.get_backend()

    outer = pyconv.get_backend()
    with pyconv.use_backend("reference"):
        t = threading.Thread(target=worker, args=("thread",))
        t.start()
        t.join()
        ctx = contextvars.copy_context()
        t2 = threading.Thread(target=ctx.run, args=(worker, "copied"))
        t2.start()
        t2.join()
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as pool:
            seen["pool"] = pool.submit(pyconv.get_backend).result()
    assert seen["thread"] == outer          # threads do not inherit the block
    assert seen["pool"] == outer
    assert seen["copied"] == "reference"    # a copied context does
    assert pyconv.get_backend() == outer    # restored on exit


def test_use_backend_restores_on_error():
    before = pyconv.get_backend()
    with pytest.raises(KeyError):
        with pyconv.use_backend("reference"):
            raise KeyError
    assert pyconv.get_backend() == before


def test_env_read_at_first_use_in_subprocess():
    out = run_py("""
        import os, pyconv
        os.environ["PYCONV_BACKEND"] = "reference"
        print(pyconv.get_backend())
        import numpy as np
        pyconv.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)))
        print(pyconv.get_backend())
    """)
    assert out.splitlines() == ["reference", "reference"]
    out = run_py("import pyconv; print(pyconv.get_backend())", env={"PYCONV_BACKEND": "cython"})
    assert out == "cython"


def test_import_is_lazy():
    """import pyconv imports neither pyopencl nor torch nor dask/distributed."""
    out = run_py("""
        import sys, pyconv
        import numpy as np
        lazy = ('pyopencl', 'torch', 'dask', 'distributed')
        print(*(name in sys.modules for name in lazy))
        pyconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), backend='reference')
        pyconv.grad.conv1d_weight(np.ones((1, 1, 3)), (1, 1, 2), np.ones((1, 1, 2)),
                                  backend='reference')
        m = pyconv.Conv1d(1, 1, 2)
        pyconv.backends  # attribute access only
        print(*(name in sys.modules for name in lazy))
    """)
    assert out.splitlines() == ["False False False False", "False False False False"]


def test_import_with_broken_opencl():
    """A broken pyopencl never breaks import pyconv; the backend reports why."""
    out = run_py("""
        import sys
        class Broken:
            def find_spec(self, name, path=None, target=None):
                if name == 'pyopencl' or name.startswith('pyopencl.'):
                    raise ImportError('simulated broken pyopencl')
        sys.meta_path.insert(0, Broken())
        import pyconv, numpy as np
        entry = [e for e in pyconv.backends() if e['name'] == 'opencl'][0]
        print(entry['available'], 'simulated broken pyopencl' in (entry['reason'] or ''))
        y = pyconv.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)))   # auto falls back
        print(y.tolist())
        try:
            pyconv.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), backend='opencl')
        except pyconv.BackendUnavailableError as exc:
            print('raised', 'simulated' in str(exc))
    """)
    assert out.splitlines() == ["False True", "[[[2.0, 2.0]]]", "raised True"]


# --------------------------------------------------------------------------
# threads

@pytest.fixture
def restore_threads():
    yield
    pyconv.set_num_threads(None)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_validation(bad, restore_threads):
    with pytest.raises((ValueError, TypeError)):
        pyconv.set_num_threads(bad)


def test_num_threads_settings(restore_threads, monkeypatch):
    pyconv.set_num_threads(3)
    assert pyconv.get_num_threads() == 3
    pyconv.set_num_threads(None)
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    monkeypatch.delenv("PYCONV_NUM_THREADS", raising=False)
    assert pyconv.get_num_threads() == 5
    monkeypatch.setenv("PYCONV_NUM_THREADS", "2")
    assert pyconv.get_num_threads() == 2
    monkeypatch.setenv("PYCONV_NUM_THREADS", "many")
    with pytest.warns(RuntimeWarning):
        assert pyconv.get_num_threads() == 5
    monkeypatch.delenv("PYCONV_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert pyconv.get_num_threads() >= 1


def test_environment_reads_follow_os_environ(monkeypatch):
    # _environ reads os.environ's own storage (fast); it must see every change
    name = "PYCONV_TEST_ENVIRON_READ"
    assert _registry._environ(name) == ""
    monkeypatch.setenv(name, "caf\u00e9 1")
    assert _registry._environ(name) == "caf\u00e9 1"
    monkeypatch.setenv(name, "2")
    assert _registry._environ(name) == "2"
    monkeypatch.delenv(name)
    assert _registry._environ(name) == ""
    # a replaced os.environ (a plain dict) is read through its public interface
    monkeypatch.setattr(os, "environ", {name: "3", "PYCONV_NUM_THREADS": "4"})
    assert _registry._environ(name) == "3"
    assert pyconv.get_num_threads() == 4


def test_a_loaded_backend_with_a_thread_limit_caps_the_thread_count(restore_threads,
                                                                     monkeypatch):
    """get_num_threads asks every backend _load loaded that defines thread_limit."""
    import types

    class Capped(ReferenceBackend):
        name = "capped"

        def thread_limit(self):
            return 1

    module = types.ModuleType("pyconv_test_capped")
    module.load = Capped                           # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyconv_test_capped", module)
    monkeypatch.setitem(_registry._MODULES, "capped", "pyconv_test_capped")
    pyconv.set_num_threads(3)
    assert pyconv.get_num_threads() == 3
    try:
        backend, reason = _registry._load("capped")
        assert reason is None and isinstance(backend, Capped)
        assert pyconv.get_num_threads() == 1
    finally:
        _registry._loaded.pop("capped", None)
        _registry._note_capping()
    assert pyconv.get_num_threads() == 3


def test_cpu_count_read_again_after_set_num_threads(restore_threads, monkeypatch):
    monkeypatch.delenv("PYCONV_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pyconv.set_num_threads(None)
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no sched_getaffinity here")
    pyconv.get_num_threads()                       # read (and kept) at first use
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    pyconv.set_num_threads(None)                   # the documented way to read it again
    assert _registry._cpus() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert _registry._cpus() == 3                  # not read at every call
    pyconv.set_num_threads(None)
    assert _registry._cpus() == 1
    monkeypatch.undo()
    pyconv.set_num_threads(None)


def test_result_independent_of_thread_count(backend, restore_threads, rng):
    x = rng.standard_normal((3, 4, 11, 10))
    w = rng.standard_normal((6, 2, 3, 3))
    gy = rng.standard_normal((3, 6, 5, 4))
    outs = []
    for n in (1, 2, 3):
        pyconv.set_num_threads(n)
        outs.append((pyconv.conv2d(x, w, stride=2, groups=2, backend=backend),
                     pyconv.conv_transpose2d(gy, w, stride=2, groups=2, backend=backend),
                     pyconv.grad.conv2d_weight(x, w.shape, gy, stride=2, groups=2,
                                               backend=backend)))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert_close(b, a, np.float64, "thread count changes the result")


# --------------------------------------------------------------------------
# the backend interface

def test_backend_interface(backend):
    impl = _registry.load_backend(backend)
    assert isinstance(impl, Backend)
    assert impl.name == backend
    assert isinstance(impl.info(), dict)
    for meth in ("conv", "conv_transpose", "conv_weight", "supports", "prefers", "info"):
        base = inspect.signature(getattr(Backend, meth))
        mine = inspect.signature(getattr(type(impl), meth))
        assert list(mine.parameters)[:len(base.parameters)] == list(base.parameters), meth
        extra = list(mine.parameters.values())[len(base.parameters):]
        assert all(p.default is not inspect.Parameter.empty for p in extra), meth


def test_load_backend_auto_is_error():
    with pytest.raises(ValueError):
        _registry.load_backend("auto")


# --------------------------------------------------------------------------
# the test matrix itself (tests/conftest.py)

def _pytest_collect(env_value):
    env = dict(os.environ, PYCONV_TEST_BACKENDS=env_value)
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--no-header", "-o", "addopts=", os.path.join(here, "test_functional.py"),
         "-k", "test_returns_ndarray"],
        capture_output=True, text=True, env=env, timeout=120, cwd=os.path.dirname(here))


def test_matrix_subset_selection():
    from conftest import _variants  # cython runs once more per planner path
    for value, expected in (("reference", ["reference"]),
                            ("opencl, reference", ["opencl", "reference"]),
                            ('["cython"]', ["cython"]),
                            ("", NAMES)):
        proc = _pytest_collect(value)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ids = [line.split("[", 1)[1][:-1] for line in proc.stdout.splitlines()
               if "test_returns_ndarray[" in line]
        assert ids == [v for name in expected for v in _variants(name)], (value, proc.stdout)


def test_matrix_unknown_backend_is_an_error():
    for value in ("refrence", '["reference", "cuda"]', '{"a": 1}'):
        proc = _pytest_collect(value)
        assert proc.returncode != 0, value
        assert "PYCONV_TEST_BACKENDS" in proc.stdout + proc.stderr, value


# ---------------------------------------------------------------------------
# device arrays: one execution path through the backend's placement hooks

class FakeDeviceArray:
    """An array "on a device": a NumPy array in a wrapper of another package."""

    __module__ = "fakedevice.array"

    def __init__(self, data):
        self.data = np.ascontiguousarray(data)

    dtype = property(lambda self: self.data.dtype)
    shape = property(lambda self: self.data.shape)
    flags = property(lambda self: self.data.flags)

    def reshape(self, shape):
        return FakeDeviceArray(self.data.reshape(shape))

    def astype(self, dtype):
        return FakeDeviceArray(self.data.astype(dtype))


class DeviceSpy(ReferenceBackend):
    """A backend owning FakeDeviceArrays; logs the hooks the front layer calls."""

    name = "opencl"

    def __init__(self):
        self.log = []

    def owns(self, a):
        return isinstance(a, FakeDeviceArray)

    def asarray(self, a, dtype):
        self.log.append("asarray")
        return a if self.owns(a) else super().asarray(a, dtype)

    def zeros(self, shape, dtype, like=()):
        self.log.append("zeros")
        return FakeDeviceArray(np.zeros(shape, dtype))

    def pad(self, x, mode, pads):
        self.log.append("pad")
        return FakeDeviceArray(super().pad(x.data, mode, pads))

    def _host(self, a):
        return a.data if self.owns(a) else a

    def conv(self, x, w, b, spec):
        self.log.append("conv")
        return FakeDeviceArray(super().conv(self._host(x), self._host(w), b, spec))

    def conv_weight(self, x, gy, spec):
        self.log.append("conv_weight")
        return FakeDeviceArray(super().conv_weight(self._host(x), self._host(gy), spec))


@pytest.fixture
def device_spy(monkeypatch):
    spy = DeviceSpy()
    monkeypatch.setitem(_registry._loaded, "opencl", spy)
    monkeypatch.delitem(_registry._failed, "opencl", raising=False)
    monkeypatch.setitem(_registry._ARRAY_OWNERS, "fakedevice", "opencl")
    return spy


def test_device_arrays_run_through_the_owner_backends_hooks(device_spy):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    want = pyconv.conv1d(x, w, padding=2, padding_mode="reflect", backend="reference")

    y = pyconv.conv1d(FakeDeviceArray(x), w, padding=2, padding_mode="reflect")
    assert isinstance(y, FakeDeviceArray)
    assert_close(y.data, want)
    assert device_spy.log == ["pad", "asarray", "asarray", "conv"]

    device_spy.log.clear()
    gw = pyconv.grad.conv1d_weight(FakeDeviceArray(x[0]), w.shape,
                                   FakeDeviceArray(np.ones((4, 7), np.float32)))
    assert isinstance(gw, FakeDeviceArray) and gw.shape == w.shape
    assert device_spy.log[-1] == "conv_weight"

    device_spy.log.clear()
    empty = pyconv.conv1d(FakeDeviceArray(x[:0]), w)
    assert isinstance(empty, FakeDeviceArray) and empty.shape == (0, 4, 7)
    assert device_spy.log == ["zeros"]


def test_device_arrays_refuse_other_backends_and_conversions(device_spy):
    x = FakeDeviceArray(np.ones((1, 3, 9), np.float32))
    w = np.ones((4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="fakedevice arrays can only be processed by the "
                                         "'opencl' backend, but backend 'cython'"):
        pyconv.conv1d(x, w, backend="cython")
    with pytest.raises(TypeError, match="cannot be combined with float32 device arrays"):
        pyconv.conv1d(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        pyconv.conv1d(FakeDeviceArray(np.ones((1, 3, 9), np.float16)), w)
    assert device_spy.log == []


class _PyopenclLike:
    __module__ = "pyopencl.array"


def test_device_owner(monkeypatch):
    assert _registry.device_owner(np.ones(3), None, [1.0]) is None
    assert _registry.device_owner(np.ones(3), _PyopenclLike()) == "opencl"
    monkeypatch.setitem(_registry._ARRAY_OWNERS, "fakedevice", "cython")
    with pytest.raises(ValueError, match="several backends"):
        _registry.device_owner(FakeDeviceArray(np.ones(1)), _PyopenclLike())


def test_set_num_threads_accepts_numpy_ints_and_rejects_floats(restore_threads):
    pyconv.set_num_threads(np.int64(2))
    assert pyconv.get_num_threads() == 2
    with pytest.raises(TypeError):
        pyconv.set_num_threads(2.0)
    with pytest.raises(ValueError):
        pyconv.set_num_threads(0)


def test_only_the_missing_fp64_refusal_becomes_a_skip(monkeypatch):
    """The conftest hook skips a float64 refusal of a device without fp64, nothing else."""
    import conftest

    class NoFp64(ReferenceBackend):
        def supports(self, op, spec, dtype):
            return "device X has no cl_khr_fp64" if np.dtype(dtype) == np.float64 else None

    monkeypatch.setitem(_registry._loaded, "opencl", NoFp64())
    fp64 = BackendUnavailableError("backend 'opencl' cannot run this call: device X has no "
                                   "cl_khr_fp64")
    other = BackendUnavailableError("backend 'opencl' cannot run this call: a float32 "
                                    "buffer exceeds the device's largest allocation")
    assert conftest.missing_fp64_reason("opencl", fp64) == "device X has no cl_khr_fp64"
    assert conftest.missing_fp64_reason("opencl", other) is None
    assert conftest.missing_fp64_reason("opencl", ValueError(str(fp64))) is None
    assert conftest.missing_fp64_reason("reference", fp64) is None  # it has float64


# ---------------------------------------------------------------------------
# threads: the cap, forked children

def test_thread_count_is_capped_with_a_clear_message(restore_threads, monkeypatch):
    with pytest.raises(ValueError, match=r"n=100000 is more threads than pyconv runs "
                                         r"\(at most 1024"):
        pyconv.set_num_threads(100000)
    pyconv.set_num_threads(_registry.MAX_THREADS)
    assert pyconv.get_num_threads() == _registry.MAX_THREADS
    pyconv.set_num_threads(None)
    monkeypatch.setenv("PYCONV_NUM_THREADS", "100000")
    with pytest.warns(RuntimeWarning, match="using 1024 threads"):
        assert pyconv.get_num_threads() == _registry.MAX_THREADS


def test_the_most_threads_run_every_kind_of_kernel():
    """1024 threads (the cap) on depthwise, transposed and dense calls: right answers, no crash."""
    out = run_py("""
        import numpy as np, pyconv
        pyconv.set_num_threads(pyconv._registry.MAX_THREADS)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 16, 40)).astype(np.float32)
        calls = [
            lambda B: pyconv.conv1d(x, rng_w((16, 1, 5)), groups=16, backend=B),
            lambda B: pyconv.conv_transpose1d(x, rng_w((16, 8, 4)), stride=2, backend=B),
            lambda B: pyconv.conv1d(x, rng_w((24, 16, 3)), padding=1, backend=B),
            lambda B: pyconv.grad.conv1d_weight(x, (24, 16, 3), np.ones((2, 24, 38), np.float32),
                                                backend=B),
        ]
        def rng_w(shape):
            return np.random.default_rng(len(shape) + shape[0]).standard_normal(shape).astype(np.float32)
        names = [b["name"] for b in pyconv.backends() if b["available"] and b["name"] != "reference"]
        worst = 0.0
        for call in calls:
            ref = call("reference")
            for name in names:
                worst = max(worst, float(np.abs(call(name) - ref).max() / np.abs(ref).max()))
        print(worst)
    """, timeout=300)
    assert float(out) < 1e-5


_FORK_SCRIPT = r"""
import multiprocessing as mp, sys
import numpy as np
import pyconv

def work(_):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 32, 40, 40)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    y = pyconv.conv2d(x, w, padding=1, backend="cython")
    return pyconv.get_num_threads(), y

if __name__ == "__main__":
    pyconv.set_num_threads(2)
    n, parent = work(0)  # threads started in the parent
    with mp.get_context(sys.argv[1]).Pool(2) as pool:
        results = pool.map_async(work, range(2)).get(timeout=120)
    print(n, *[r[0] for r in results],
          all(np.array_equal(r[1], parent) for r in results))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_after_threaded_calls(method, tmp_path):
    """A forked child of a threaded process runs single-threaded instead of hanging."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    if "cython" not in [b["name"] for b in pyconv.backends() if b["available"]]:
        pytest.skip("the cython backend is not available")
    script = tmp_path / "workers.py"  # spawn re-imports the main module from its file
    script.write_text(_FORK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYCONV_NUM_THREADS", "PYCONV_BACKEND")}
    proc = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    parent, child1, child2, same = proc.stdout.split()
    assert parent == "2" and same == "True"
    # fork: one thread in the child (the rule); spawn: a fresh process, the default
    expected = "1" if method == "fork" else str(_registry._cpus())
    assert (child1, child2) == (expected, expected)


def test_forked_child_does_not_use_an_opencl_context_of_its_parent():
    entry = {b["name"]: b for b in pyconv.backends()}["opencl"]
    if not entry["available"]:
        pytest.skip(f"opencl unavailable: {entry['reason']}")
    out = run_py(r"""
        import multiprocessing as mp
        import numpy as np, pyconv

        x, w = np.ones((1, 2, 8), np.float32), np.ones((3, 2, 3), np.float32)

        def child(_):
            auto = pyconv.conv1d(x, w)  # auto moves on to another backend
            try:
                pyconv.conv1d(x, w, backend="opencl")
            except pyconv.BackendUnavailableError as exc:
                return float(auto.sum()), str(exc)
            return float(auto.sum()), "no error"

        if __name__ == "__main__":
            pyconv.conv1d(x, w, backend="opencl")  # a context in the parent
            with mp.get_context("fork").Pool(1) as pool:
                total, message = pool.map_async(child, [0]).get(timeout=120)[0]
            print(total, "|", message)
    """, timeout=300)
    total, message = out.split(" | ")
    assert float(total) == 3 * 6 * 6.0
    assert "forked" in message and "spawn" in message


def test_unbuilt_extension_is_named_and_auto_warns_once(tmp_path):
    """A source checkout never built: cython says how to build it, auto warns once."""
    import shutil
    import sysconfig
    src = os.path.dirname(os.path.abspath(pyconv.__file__))
    shutil.copytree(src, tmp_path / "pyconv",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    code = textwrap.dedent("""
        import warnings
        import numpy as np
        import pyconv
        assert pyconv.__file__.startswith(%r), pyconv.__file__
        reason = {b["name"]: b for b in pyconv.backends()}["cython"]["reason"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                pyconv.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)), backend="auto")
        print(reason)
        print(len(caught), caught[0].category.__name__ if caught else None)
        print(caught[0].message if caught else "")
    """ % str(tmp_path))
    # -S: no site-packages .pth files, so an editable install cannot shadow the copy;
    # the installed dependencies come in through PYTHONPATH after it
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCONV_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), sysconfig.get_paths()["purelib"],
                                         sysconfig.get_paths()["platlib"]])
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    reason, count, warning = proc.stdout.strip().splitlines()
    assert "not built" in reason and "pip install -e ." in reason
    assert "circular import" not in reason
    assert count == "1 RuntimeWarning"
    assert "reference" in warning and "'cython' is not built" in warning


# ---------------------------------------------------------------------------
# the algorithm policy: every path, or only the exact ones

def test_algorithms_switch_follows_the_backend_switchs_conventions(monkeypatch):
    monkeypatch.delenv("PYCONV_ALGORITHMS", raising=False)
    monkeypatch.setattr(_registry, "_algorithms_global", None)
    assert pyconv.get_algorithms() == "fast"
    monkeypatch.setenv("PYCONV_ALGORITHMS", " Exact ")    # read at each use
    assert pyconv.get_algorithms() == "exact"
    pyconv.set_algorithms("fast")                         # the setter beats the environment
    try:
        assert pyconv.get_algorithms() == "fast"
        with pyconv.use_algorithms("exact") as now:       # the context beats the setter
            assert now == "exact" == pyconv.get_algorithms()
            seen = []
            t = threading.Thread(target=lambda: seen.append(pyconv.get_algorithms()))
            t.start()
            t.join()
            assert seen == ["fast"]                       # context-local
        assert pyconv.get_algorithms() == "fast"
    finally:
        pyconv.set_algorithms(None)
    with pytest.raises(ValueError, match="'fast', 'exact'"):
        pyconv.set_algorithms("fastest")
    with pytest.raises(ValueError, match="'fast', 'exact'"):
        pyconv.use_algorithms("gemm").__enter__()
    with pytest.raises(TypeError):
        pyconv.set_algorithms(1)
    monkeypatch.setenv("PYCONV_ALGORITHMS", "exakt")       # a typo is an error, not a fallback
    with pytest.raises(ValueError, match="PYCONV_ALGORITHMS='exakt'"):
        pyconv.get_algorithms()
