"""``python -m pyconv info``: everything pyconv knows about this machine.

The versions of pyconv and its dependencies, the thread count, every backend
(available or not, and why) with all it reports about itself (its
``info()``), the OpenCL platforms and devices (from the opencl backend's own
``info()``, which marks the device in use), and the BLAS and OpenMP runtimes
loaded in the process (threadpoolctl).  The helpers that read the backends
(:func:`backend_rows`, :func:`shadowed_install`) also serve the main job.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, List, Optional, Sequence, TextIO

import numpy
import scipy.linalg  # noqa: F401  (loaded so that threadpoolctl sees SciPy's BLAS)
from threadpoolctl import threadpool_info

import pyconv
from pyconv import _registry

from ._output import EXIT_OK

#: backend info() keys printed in a section of their own
_OWN_SECTION = ("platforms",)


def dist_version(dist: str) -> Optional[str]:
    """Installed version of a distribution, without importing it (None if absent)."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def backend_rows() -> List[_registry.BackendStatus]:
    """:func:`pyconv.backends`, robust to a backend whose ``info()`` fails outright.

    Each row has ``name``, ``available``, ``reason`` and ``info``; an
    ``info()`` that raises is reported in ``info`` rather than stopping the
    listing.
    """
    try:
        return pyconv.backends()
    except Exception:
        rows: List[_registry.BackendStatus] = []
        for name in _registry._MODULES:
            backend, reason = _registry._load(name)
            try:
                info: Dict[str, object] = backend.info() if backend is not None else {}
            except Exception as exc:  # info() must not break the listing
                info = {"info() failed": f"{type(exc).__name__}: {exc}"}
            rows.append({"name": name, "available": backend is not None, "reason": reason,
                         "info": info})
        return rows


def shadowed_install() -> Optional[str]:
    """Another pyconv on ``sys.path`` that the imported one hides, if any.

    ``pip install .`` then ``python -m pyconv`` *in the source folder* imports
    the source tree (the current directory comes first on ``sys.path``),
    whose compiled extension was built into site-packages, not here.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(pyconv.__file__)))
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        if folder == here:
            continue
        if os.path.exists(os.path.join(folder, "pyconv", "__init__.py")):
            return os.path.join(folder, "pyconv")
    return None


def shadow_note(rows: Sequence[_registry.BackendStatus]) -> Optional[str]:
    """A note when cython is unavailable because the source tree hides the installed copy."""
    cy = next((r for r in rows if r["name"] == "cython"), None)
    if cy is None or cy["available"]:
        return None
    other = shadowed_install()
    if other is None:
        return None
    return (f"note: this is the pyconv source tree ({os.path.dirname(pyconv.__file__)}), "
            f"found first because it is in the current directory; the installed pyconv "
            f"({other}) has the compiled extension: run python -m pyconv from another "
            "directory, or install with pip install -e .")


def _value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) if value else "-"
    return str(value)


def _print_facts(facts: Dict[str, object], indent: str, out: TextIO) -> None:
    """``key: value`` lines, a dict value as an indented block of its own."""
    for key, value in facts.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:", file=out)
            _print_facts(value, indent + "  ", out)
        else:
            print(f"{indent}{key}: {_value(value)}", file=out)


def _print_versions(out: TextIO) -> None:
    items = [("pyconv", pyconv.__version__), ("python", platform.python_version()),
             ("numpy", numpy.__version__), ("scipy", dist_version("scipy")),
             ("pyopencl", dist_version("pyopencl")),
             ("threadpoolctl", dist_version("threadpoolctl")),
             ("cython", dist_version("Cython")), ("torch", dist_version("torch"))]
    for name, ver in items:
        print(f"  {name:<14} {ver or 'not installed'}", file=out)


def _print_backends(rows, out: TextIO) -> None:
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        if not r["available"]:
            print(f"  {r['name']:<{width}}  unavailable  ({r['reason']})", file=out)
            continue
        print(f"  {r['name']:<{width}}  available", file=out)
        _print_facts({k: v for k, v in r["info"].items() if k not in _OWN_SECTION},
                     " " * (width + 6), out)


def _print_opencl_devices(rows, out: TextIO) -> None:
    """The platforms and devices the opencl backend reports, the one it uses marked."""
    row = next((r for r in rows if r["name"] == "opencl"), None)
    if row is None or not row["available"]:
        reason = row["reason"] if row is not None else "not registered"
        print(f"  the opencl backend is unavailable: {reason}", file=out)
        return
    platforms = row["info"].get("platforms") or []
    if not platforms:
        print("  no OpenCL platform found", file=out)
    for plat in platforms:
        print(f"  platform {plat['index']}: {plat['name']} ({plat['version']})", file=out)
        for dev in plat["devices"]:
            mark = ""
            if dev.get("used"):
                mark = f"  <- used by pyconv (rule: {row['info'].get('selected_by', '?')})"
            print(f"    device {dev['index']} ({dev['id']}): {dev['name']} [{dev['type']}, "
                  f"{dev['compute_units']} CU, {dev['global_mem_size'] // 2**20} MiB, "
                  f"{'fp64' if dev['fp64'] else 'no fp64'}]{mark}", file=out)


def _print_runtimes(out: TextIO) -> None:
    pools = threadpool_info()
    blas = [p for p in pools if p.get("user_api") == "blas"]
    omp = [p for p in pools if p.get("user_api") == "openmp"]
    if not blas:
        print("  BLAS: none loaded", file=out)
    for p in blas:
        print(f"  BLAS: {p.get('internal_api')} {p.get('version')} "
              f"({p.get('threading_layer', '?')} threading, {p.get('num_threads')} threads, "
              f"arch {p.get('architecture', '?')}) {p.get('filepath')}", file=out)
    for p in omp:
        print(f"  OpenMP runtime: {p.get('internal_api')} ({p.get('num_threads')} threads) "
              f"{p.get('filepath')}", file=out)
    if not omp:
        print("  OpenMP runtime: none loaded in this process", file=out)


def command(args, out: TextIO) -> int:
    """Print everything (``python -m pyconv info``); always succeeds."""
    rows = backend_rows()
    print("Versions", file=out)
    _print_versions(out)
    print(f"\nThreads: {pyconv.get_num_threads()} (--threads, else PYCONV_NUM_THREADS, "
          "OMP_NUM_THREADS, else the CPUs this process may use); backend in force: "
          f"{pyconv.get_backend()!r}", file=out)
    print("\nBackends", file=out)
    _print_backends(rows, out)
    note = shadow_note(rows)
    if note:
        print("  " + note, file=out)
    print("\nOpenCL platforms and devices", file=out)
    _print_opencl_devices(rows, out)
    print("\nBLAS and OpenMP (threadpoolctl)", file=out)
    _print_runtimes(out)
    return EXIT_OK
