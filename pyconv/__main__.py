"""``python -m pyconv``: list the backends, check them, time them.

Run with no subcommand, it does the main job: lists the backends with their
availability (and the reason when unavailable) and what each reports about
itself (threads, OpenMP, the OpenCL device in use), checks every available
backend against the reference on a sample of random small cases, and prints
a small timing table.  Subcommands:

``info``
    Backends, OpenCL platforms and devices, OpenMP, BLAS (threadpoolctl) and
    the versions of Python, NumPy, SciPy and PyOpenCL.
``check``
    Each backend against the reference on random cases: a pass/fail table.
``bench``
    The benchmark workloads (:mod:`pyconv._bench`), optionally side by side
    with PyTorch (``--compare torch``).

Exit status: 0 on success, 1 when a check failed (or a backend asked for by
name is unavailable to ``check``), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Dict, List, Optional, Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # what argparse's parser.error() exits with


# --------------------------------------------------------------------------
# helpers

def _version(dist: str) -> Optional[str]:
    """Installed version of a distribution, without importing it."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _backend_table() -> List[Dict[str, object]]:
    """``pyconv.backends()``, robust to a backend whose loading crashes outright."""
    import pyconv
    from pyconv import _registry
    try:
        return pyconv.backends()
    except Exception:
        rows = []
        for name in _registry._MODULES:
            try:
                backend, reason = _registry._load(name)
            except Exception as exc:
                backend, reason = None, f"{type(exc).__name__}: {exc}"
            rows.append({"name": name, "available": backend is not None, "reason": reason})
        return rows


def _load(name: str):
    from pyconv._registry import load_backend
    return load_backend(name)


def _fmt_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt_value(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return "; ".join(f"{k}={_fmt_value(v)}" for k, v in value.items())
    return str(value)


def _print_info(info: Dict[str, object], indent: str, out) -> None:
    """A backend's info() dict, nested lists of dicts (platforms, devices) indented."""
    for key, value in info.items():
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict)
                                                              for v in value):
            print(f"{indent}{key}:", file=out)
            for item in value:
                flat = {k: v for k, v in item.items() if not isinstance(v, (list, tuple))
                        or not v or not all(isinstance(e, dict) for e in v)}
                print(f"{indent}  - {_fmt_value(flat)}", file=out)
                nested = {k: v for k, v in item.items() if k not in flat}
                _print_info(nested, indent + "    ", out)
        elif isinstance(value, dict):
            print(f"{indent}{key}:", file=out)
            _print_info(value, indent + "  ", out)
        else:
            print(f"{indent}{key}: {_fmt_value(value)}", file=out)


def _print_backends(out, details: bool = True, skip=()) -> None:
    """Each backend, available or not (with the reason), and its info() but ``skip`` keys."""
    rows = _backend_table()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        if r["available"]:
            print(f"  {r['name']:<{width}}  available", file=out)
            if details:
                try:
                    info = _load(r["name"]).info() or {}
                except Exception as exc:  # info() must not break the listing
                    info = {"info() failed": f"{type(exc).__name__}: {exc}"}
                _print_info({k: v for k, v in info.items() if k not in skip},
                            " " * (width + 6), out)
        else:
            print(f"  {r['name']:<{width}}  unavailable  ({r['reason']})", file=out)


def _shadowed_install() -> Optional[str]:
    """Another pyconv on ``sys.path`` that the imported one hides, if any.

    ``pip install .`` then ``python -m pyconv`` *in the source folder* imports
    the source tree (the current directory comes first on ``sys.path``),
    whose compiled extension was built into site-packages, not here.
    """
    import os
    import pyconv
    here = os.path.dirname(os.path.dirname(os.path.abspath(pyconv.__file__)))
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        if folder == here:
            continue
        if os.path.exists(os.path.join(folder, "pyconv", "__init__.py")):
            return os.path.join(folder, "pyconv")
    return None


def _print_shadow_note(out) -> None:
    rows = {r["name"]: r for r in _backend_table()}
    cy = rows.get("cython")
    if cy is None or cy["available"]:
        return
    other = _shadowed_install()
    if other:
        import pyconv
        print(f"  note: this is the pyconv source tree "
              f"({os.path.dirname(pyconv.__file__)}), found first because it is in the "
              f"current directory; the installed pyconv ({other}) has the compiled "
              "extension: run python -m pyconv from another directory, or install with "
              "pip install -e .", file=out)


def _opencl_devices(out) -> None:
    """Every OpenCL platform and device pyopencl sees (if it is installed)."""
    if _version("pyopencl") is None:
        print("  pyopencl is not installed (pip install 'pyconv[opencl]')", file=out)
        return
    try:
        import pyopencl as cl
        platforms = cl.get_platforms()
    except Exception as exc:
        print(f"  no OpenCL platform: {type(exc).__name__}: {exc}", file=out)
        return
    if not platforms:
        print("  no OpenCL platform found", file=out)
    used = None
    try:
        import pyconv
        if any(r["name"] == "opencl" and r["available"] for r in _backend_table()):
            info = _load("opencl").info() or {}
            dev = info.get("device", "")
            used = str(dev.get("name", "") if isinstance(dev, dict) else dev) or None
    except Exception:
        used = None
    for p_index, plat in enumerate(platforms):
        print(f"  platform {p_index}: {plat.name} ({plat.version.strip()})", file=out)
        try:
            devices = plat.get_devices()
        except Exception as exc:
            print(f"    no devices: {type(exc).__name__}: {exc}", file=out)
            continue
        for d_index, dev in enumerate(devices):
            kind = cl.device_type.to_string(dev.type)
            fp64 = "fp64" if "cl_khr_fp64" in dev.extensions else "no fp64"
            mark = "  <- used by pyconv" if used and dev.name.strip() in used else ""
            print(f"    device {d_index}: {dev.name.strip()} [{kind}, "
                  f"{dev.max_compute_units} CU, {dev.global_mem_size // 2**20} MiB, "
                  f"{fp64}]{mark}", file=out)


def _blas_info(out) -> None:
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's own BLAS)
        from threadpoolctl import threadpool_info
    except ImportError as exc:
        print(f"  threadpoolctl unavailable: {exc}", file=out)
        return
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


def _print_versions(out) -> None:
    import numpy
    import pyconv
    items = [("pyconv", pyconv.__version__), ("python", platform.python_version()),
             ("numpy", numpy.__version__), ("scipy", _version("scipy")),
             ("pyopencl", _version("pyopencl")), ("threadpoolctl", _version("threadpoolctl")),
             ("cython", _version("cython") or _version("Cython")),
             ("torch", _version("torch"))]
    for name, ver in items:
        print(f"  {name:<14} {ver or 'not installed'}", file=out)


def _resolve_backends(requested: Optional[Sequence[str]], parser, *, allow_unavailable=False,
                      default_skip_reference=False, allow_auto=False):
    """Backend names from ``--backend`` options (comma lists allowed), validated."""
    table = {r["name"]: r for r in _backend_table()}
    if allow_auto and requested:
        table["auto"] = {"name": "auto", "available": True, "reason": None}
    if not requested:
        names = [n for n, r in table.items() if r["available"]]
        if default_skip_reference:
            names = [n for n in names if n != "reference"]
        return names, []
    names: List[str] = []
    for item in requested:
        for name in item.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in table:
                parser.error(f"unknown backend {name!r}; valid names: "
                             f"{', '.join(table)}")
            if name not in names:
                names.append(name)
    unavailable = [(n, table[n]["reason"]) for n in names if not table[n]["available"]]
    if unavailable and not allow_unavailable:
        parser.error("; ".join(f"backend {n!r} is unavailable: {r}" for n, r in unavailable))
    return [n for n in names if table[n]["available"]], unavailable


# --------------------------------------------------------------------------
# subcommands

def cmd_info(args, parser, out=None) -> int:
    out = sys.stdout if out is None else out
    import pyconv
    print("Versions", file=out)
    _print_versions(out)
    print(f"\nThreads: {pyconv.get_num_threads()} (PYCONV_NUM_THREADS, OMP_NUM_THREADS, "
          f"else the CPUs this process may use); backend in force: "
          f"{pyconv.get_backend()!r}", file=out)
    print("\nBackends", file=out)
    _print_backends(out)
    _print_shadow_note(out)
    print("\nOpenCL platforms and devices", file=out)
    _opencl_devices(out)
    print("\nBLAS and OpenMP (threadpoolctl)", file=out)
    _blas_info(out)
    return EXIT_OK


def _check(names, n_cases, seed, verbose, progress, out) -> bool:
    from pyconv._bench import _Progress
    from pyconv._cli_check import format_check, run_check

    bar = _Progress(n_cases * max(1, len(names)), enabled=progress)

    def step(text):
        bar.step(text)
        bar.advance()

    report = run_check(names, n_cases=n_cases, seed=seed, progress=step)
    bar.close()
    print(format_check(report, verbose=verbose), file=out)
    return report.ok


def cmd_check(args, parser, out=None) -> int:
    out = sys.stdout if out is None else out
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    names, unavailable = _resolve_backends(args.backend, parser, allow_unavailable=True)
    for name, reason in unavailable:
        print(f"backend {name!r} asked for but unavailable: {reason}", file=out)
    ok = True
    if names:
        ok = _check(names, args.cases, args.seed, args.verbose, not args.no_progress, out)
    return EXIT_OK if ok and not unavailable else EXIT_FAILED


def _select_workloads(args, parser, quick):
    from pyconv import _bench
    pool = _bench.QUICK_WORKLOADS if quick else _bench.WORKLOADS
    if not args.workloads:
        return list(pool)
    wanted = [w.strip() for item in args.workloads for w in item.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in _bench.WORKLOAD_NAMES]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: "
                     f"{', '.join(_bench.WORKLOAD_NAMES)}")
    return [w for w in pool if w.name in wanted]


def cmd_bench(args, parser, out=None) -> int:
    out = sys.stdout if out is None else out
    from pyconv import _bench

    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.json:  # fail now, not after the whole run
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--json: cannot write into {folder!r}")
    names, _ = _resolve_backends(args.backend, parser, allow_auto=True,
                                 default_skip_reference=not args.quick)
    if "reference" in names and not args.quick:
        parser.error("the reference backend is pure Python loops and is only benchmarked "
                     "at the --quick sizes")
    if not names:
        parser.error("no fast backend is available (cython and opencl are not); "
                     "use --quick to time the reference backend at tiny sizes")
    compare = args.compare == "torch"
    if compare and not _bench.torch_available():
        print("note: torch is not importable; timing pyconv alone", file=sys.stderr)
        compare = False
    workloads = _select_workloads(args, parser, args.quick)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    result = _bench.run_benchmarks(
        names, workloads, compare_torch=compare, repeat=repeat, threads=args.threads,
        sgemm_size=512 if args.quick else 2048, progress=not args.no_progress)
    print(_bench.format_table(result), file=out)
    if args.json:
        _bench.validate_result(result)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        print(f"\nwrote {args.json}", file=out)
    return EXIT_OK


def _timing_pivot(result) -> str:
    """Workloads down, backends across: the main job's small timing table."""
    from pyconv._bench import _fmt_time
    backends: List[str] = []
    table: Dict[str, Dict[str, float]] = {}
    for row in result["rows"]:
        if row["backend"] not in backends:
            backends.append(row["backend"])
        table.setdefault(row["workload"], {})[row["backend"]] = row["time_s"]
    headers = ["workload (tiny sizes)"] + backends
    body = [[wl] + [_fmt_time(times.get(b)) for b in backends] for wl, times in table.items()]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths)] +
                     [fmt(r) for r in body])


def cmd_main(args, parser, out=None) -> int:
    """The main job: backends, check, a small timing table."""
    out = sys.stdout if out is None else out
    import pyconv
    from pyconv import _bench

    print(f"pyconv {pyconv.__version__} (python {platform.python_version()}, "
          f"{pyconv.get_num_threads()} threads); more: python -m pyconv "
          "{info,check,bench} --help", file=out)
    print("\nBackends", file=out)
    _print_backends(out, skip=("platforms",))
    _print_shadow_note(out)
    print("\nOpenCL platforms and devices", file=out)
    _opencl_devices(out)
    names = [r["name"] for r in _backend_table() if r["available"]]

    print(f"\nCheck against the reference ({args.cases} random cases)", file=out)
    ok = _check(names, args.cases, 0, False, not args.no_progress, out)

    print("\nTiming (best of 5, float32; `python -m pyconv bench` times the full-size "
          "workloads)", file=out)
    picks = ["conv1d", "conv1d_depthwise", "conv2d", "conv_transpose2d", "conv3d",
             "conv2d_weight"]
    workloads = [_bench.get_workload(n, quick=True) for n in picks]
    result = _bench.run_benchmarks(names, workloads, repeat=5, sgemm_size=256,
                                   progress=not args.no_progress)
    print(_timing_pivot(result), file=out)
    if not ok:
        print("\nsome checks FAILED (see above)", file=out)
    return EXIT_OK if ok else EXIT_FAILED


# --------------------------------------------------------------------------
# argument parsing

def build_parser() -> argparse.ArgumentParser:
    """The argument parser (usage errors exit with status 2, argparse's convention)."""
    from pyconv._bench import WORKLOAD_NAMES

    parser = argparse.ArgumentParser(
        prog="python -m pyconv",
        description="pyconv: list the backends, check them against the reference and "
                    "time them. With no subcommand: backends, a check on a few random "
                    "cases and a small timing table.",
        epilog="exit status: 0 ok, 1 a check failed, 2 usage error")
    parser.add_argument("--cases", type=int, default=6,
                        help="random cases for the check of the main job (default 6)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr")
    sub = parser.add_subparsers(dest="command", metavar="{info,check,bench}")

    p_info = sub.add_parser("info", help="backends, devices, OpenMP, BLAS, versions",
                            description="Backends (availability, reason, details), "
                                        "OpenCL platforms and devices (and which one "
                                        "pyconv uses), OpenMP, BLAS via threadpoolctl, and "
                                        "the versions of python/numpy/scipy/pyopencl.")
    p_info.set_defaults(func=cmd_info, parser=p_info)

    p_check = sub.add_parser(
        "check", help="each backend against the reference on random cases",
        description="Run the six ops and the gradient functions on random small cases on "
                    "each backend; compare with the reference backend and check the "
                    "adjoint identities. Exit status 1 if any check fails.")
    p_check.add_argument("--backend", action="append", metavar="NAME",
                         help="backend(s) to check (repeat or comma-separate; default: "
                              "every available backend)")
    p_check.add_argument("--cases", type=int, default=12,
                         help="number of random cases (default 12)")
    p_check.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p_check.add_argument("-v", "--verbose", action="store_true", help="also list skips")
    p_check.add_argument("--no-progress", action="store_true",
                         help="no progress bar on stderr")
    p_check.set_defaults(func=cmd_check, parser=p_check)

    p_bench = sub.add_parser(
        "bench", help="the benchmark table (optionally side by side with torch)",
        description="Time the benchmark workloads (float32) on each backend: best-of "
                    "time, GFLOP/s, fraction of NumPy's sgemm throughput measured in the "
                    "same run and, with --compare torch, PyTorch's time and the speedup "
                    "(torch time / pyconv time; above 1 means pyconv is faster).")
    p_bench.add_argument("--backend", action="append", metavar="NAME",
                         help="backend(s) to time, 'auto' included (repeat or "
                              "comma-separate; default: every available backend except "
                              "reference, which only runs with --quick)")
    p_bench.add_argument("--compare", choices=["torch"],
                         help="also time PyTorch with the same number of threads")
    p_bench.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p_bench.add_argument("--quick", action="store_true",
                         help="tiny sizes (seconds; the reference backend may run)")
    p_bench.add_argument("--repeat", type=int, default=None,
                         help="best of this many timed calls (default 5, quick 3)")
    p_bench.add_argument("--threads", type=int, default=None,
                         help="threads for pyconv, torch and BLAS (default: "
                              "pyconv.get_num_threads())")
    p_bench.add_argument("--workloads", action="append", metavar="NAMES",
                         help="only these workloads (comma-separated), among: " +
                              ", ".join(WORKLOAD_NAMES))
    p_bench.add_argument("--no-progress", action="store_true",
                         help="no progress bar on stderr")
    p_bench.set_defaults(func=cmd_bench, parser=p_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    import faulthandler
    if not faulthandler.is_enabled():
        # a crash inside a native backend (a driver, a kernel) then shows
        # which call it was instead of a bare "Segmentation fault"
        faulthandler.enable()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        if args.cases < 1:
            parser.error("--cases must be at least 1")
        return cmd_main(args, parser)
    return func(args, args.parser)


if __name__ == "__main__":
    sys.exit(main())
