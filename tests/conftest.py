"""Shared fixtures: one test matrix over every registered backend.

* ``backend``: parametrized over every name in ``pyconv._registry._MODULES``
  (``pytest.param(name, id=name, marks=pytest.mark.<name>)``).  A backend
  that is not available here is skipped with the reason
  :func:`pyconv.backends` gives.  ``PYCONV_TEST_BACKENDS`` (comma-separated,
  or a JSON list) selects a subset; an unknown name stops the run.  The
  cython backend also runs once per path of its planner, ``cython[direct]``,
  ``cython[implicit]`` ...: the test sees ``"cython"`` with that path forced
  (``pyconv._cy.force_paths``) on every call it supports.
* ``dtype``: float32 and float64, skipping float64 where the backend says it
  cannot run it (an OpenCL device without ``cl_khr_fp64``).
* ``@pytest.mark.slow``: large or exhaustive cases, run only with
  ``PYCONV_SLOW=1``.
* ``@pytest.mark.skip_backends(*names, reason=...)``: for a test that does not
  apply to some backends (never to hide a bug).

The tests never import torch; ``gen_golden.py`` (which does) is excluded
from collection, also under ``--doctest-modules``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pyconv import _registry
from pyconv._spec import ConvSpec

collect_ignore = ["gen_golden.py"]

ALL_BACKENDS = tuple(_registry._MODULES)


def _selected_backends():
    raw = os.environ.get("PYCONV_TEST_BACKENDS", "").strip()
    if not raw:
        return list(ALL_BACKENDS)
    if raw.startswith("["):
        try:
            names = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise pytest.UsageError(f"PYCONV_TEST_BACKENDS={raw!r} is not valid JSON: {exc}")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise pytest.UsageError(
                f"PYCONV_TEST_BACKENDS={raw!r} must be a JSON list of backend names")
    else:
        names = [n for n in (part.strip() for part in raw.split(",")) if n]
    names = [n.strip().lower() for n in names]
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if unknown:
        raise pytest.UsageError(
            f"PYCONV_TEST_BACKENDS names unknown backend(s) {unknown}; "
            f"registered backends are {list(ALL_BACKENDS)}")
    if not names:
        raise pytest.UsageError("PYCONV_TEST_BACKENDS selects no backend")
    return list(dict.fromkeys(names))


SELECTED_BACKENDS = _selected_backends()


def _cython_paths():
    """The cython planner's paths, in order (none when the extension is not built)."""
    try:
        from pyconv._cy.paths import ORDER
    except ImportError:
        return []
    return [unit.name for unit in ORDER]


def _variants(name):
    """The test variants of a backend: cython once more per forced path."""
    paths = _cython_paths() if name == "cython" else []
    return [name] + [f"{name}[{path}]" for path in paths]


BACKEND_PARAMS = [
    pytest.param(variant, id=variant, marks=getattr(pytest.mark, name))
    for name in SELECTED_BACKENDS for variant in _variants(name)
]


def _split(variant):
    """``"cython[gemm]"`` -> ``("cython", "gemm")``; ``"cython"`` -> ``("cython", None)``."""
    name, _, path = variant.partition("[")
    return name, path.rstrip("]") or None


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: large or exhaustive cases, run with PYCONV_SLOW=1")
    config.addinivalue_line("markers", "perf: performance checks, never run in CI")
    config.addinivalue_line(
        "markers", "skip_backends(*names, reason): skip the test on the named backends")
    for name in ALL_BACKENDS:
        config.addinivalue_line("markers", f"{name}: the test runs on the {name} backend")


def pytest_report_header(config):
    lines = [f"pyconv test backends: {', '.join(SELECTED_BACKENDS)}"]
    for entry in _registry.backends():
        if entry["name"] in SELECTED_BACKENDS:
            state = "available" if entry["available"] else f"UNAVAILABLE ({entry['reason']})"
            lines.append(f"  {entry['name']}: {state}")
    lines.append(f"slow tests: {'on' if _slow_enabled() else 'off (PYCONV_SLOW=1 to run)'}")
    return lines


def _slow_enabled():
    return os.environ.get("PYCONV_SLOW", "").strip() not in ("", "0")


def pytest_collection_modifyitems(config, items):
    if _slow_enabled():
        return
    skip = pytest.mark.skip(reason="slow test; set PYCONV_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def backend_unavailable_reason(name):
    """None when ``name`` can run here, else the reason from pyconv.backends()."""
    for entry in _registry.backends():
        if entry["name"] == name:
            return None if entry["available"] else (entry["reason"] or "unavailable")
    return f"backend {name!r} is not registered"


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Name of the backend a test runs on (pass it as ``backend=``)."""
    name, path = _split(request.param)
    reason = backend_unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name!r} unavailable: {reason}")
    marker = request.node.get_closest_marker("skip_backends")
    if marker is not None and name in marker.args:
        pytest.skip(f"not run on {name}: {marker.kwargs.get('reason', 'no reason given')}")
    if path is None:
        yield name
        return
    from pyconv import _cy
    with _cy.force_paths(path):
        yield name


@pytest.fixture
def front_layer(monkeypatch):
    """For tests of argument validation, which is the front layer's, not a backend's.

    Such a test runs once, not once per backend, and fails if a call gets as
    far as choosing a backend: every error must come before any backend
    work.  Its value, None, is the ``backend=`` to pass.
    """
    def refuse(*args, **kwargs):
        raise AssertionError("the call reached backend selection; a validation error "
                             "must be raised by the front layer before it")
    monkeypatch.setattr(_registry, "resolve", refuse)
    return None


_PROBE = ConvSpec(False, 1, 1, 1, 1, (3,), (1,), (3,), (1,), ((0, 0),), (1,))


def dtype_unsupported_reason(backend_name, dtype):
    """Why ``backend_name`` cannot compute in ``dtype`` (None when it can)."""
    impl = _registry.load_backend(backend_name)
    for op in ("conv", "conv_transpose", "conv_weight"):
        spec = _PROBE if op != "conv_transpose" else _PROBE.as_transposed()
        reason = impl.supports(op, spec, np.dtype(dtype))
        if reason is not None:
            return reason
    return None


def missing_fp64_reason(name, exc):
    """The backend's "no float64 here" reason when ``exc`` is exactly that refusal, else None."""
    if not isinstance(exc, _registry.BackendUnavailableError):
        return None
    reason = dtype_unsupported_reason(name, np.float64)
    return reason if reason is not None and reason in str(exc) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A float64 test on a backend without fp64 (it says so in ``supports``) is a skip.

    Many tests compute in float64; on an OpenCL device without ``cl_khr_fp64``
    pyconv rightly raises BackendUnavailableError for them.  Only that refusal
    is turned into a skip (its message must carry the backend's own float64
    reason): any other BackendUnavailableError, a float32 one included, fails.
    """
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or call.excinfo is None:
        return
    name = getattr(item, "callspec", None) and item.callspec.params.get("backend")
    if not name:
        return
    name = _split(name)[0]
    reason = missing_fp64_reason(name, call.excinfo.value)
    if reason is not None:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: {name} has no float64 here: {reason}")


@pytest.fixture(params=[pytest.param(np.float32, id="float32"),
                        pytest.param(np.float64, id="float64")])
def dtype(request, backend):
    """A native compute dtype the backend supports (float64 skipped without fp64)."""
    dt = request.param
    reason = dtype_unsupported_reason(backend, dt)
    if reason is not None:
        pytest.skip(f"{backend} cannot compute in {np.dtype(dt).name}: {reason}")
    return dt


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)
