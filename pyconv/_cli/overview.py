"""``python -m pyconv`` with no subcommand: a newcomer's check, in a few seconds.

About fifteen lines: a line per backend (available or why not, the facts
that matter -- threads, OpenMP and SIMD for cython, the device for opencl --
and its verdict against the reference), then a small timing table at tiny
sizes.  Everything else (tile sizes, program caches, every OpenCL device,
BLAS) is in ``python -m pyconv info``.

Two rules keep it quick where OpenCL runs on a CPU driver such as PoCL,
whose first build of each kernel takes about a second: unless the user named
``--backend opencl``, such a device is checked on the first
:data:`CPU_DRIVER_CASES` cases only (one of each dtype) and is not timed; the
output says so and how to do either.  On a GPU, opencl is checked on every
case and timed like the others.
"""

from __future__ import annotations

import platform
from typing import Any, Dict, List, TextIO

import numpy

import pyconv
from pyconv._registry import BackendStatus

from . import bench
from ._output import EXIT_FAILED, EXIT_OK, Progress, fmt_time, table
from .check import format_details, run_check
from .info import backend_rows, shadow_note

#: cases an OpenCL CPU driver is checked on when the user did not name opencl
CPU_DRIVER_CASES = 2
#: the timing table's workloads (their --quick sizes)
TIMED = ["conv1d", "conv2d", "conv3d", "conv_transpose2d", "conv2d_weight"]
#: timing at tiny sizes: short warm-up and pauses (the full ones are for ``bench``)
REPEAT, WARMUP_TIME, SETTLE = 5, 0.02, 0.005


def _about(name: str, info: Dict[str, Any]) -> str:
    """The one or two facts about a backend that a newcomer needs."""
    if name == "reference":
        return f"the oracle: plain Python loops, {info.get('accumulation', '?')} sums"
    if name == "cython":
        omp = "OpenMP" if info.get("openmp") else "no OpenMP (serial build)"
        return f"{omp}, {info.get('threads', '?')} threads, SIMD {info.get('simd', '?')}"
    if name == "opencl":
        dev = info.get("device") or {}
        kinds = [k for k in str(dev.get("type", "?")).split(" | ") if k != "ALL"]
        return f"{dev.get('name', '?')} ({' '.join(kinds)}, {dev.get('platform', '?')})"
    return ", ".join(f"{k} {v}" for k, v in info.items() if not isinstance(v, (dict, list)))


def cpu_driver(row: BackendStatus) -> bool:
    """Whether ``row`` is an available opencl backend whose device is a CPU."""
    if row["name"] != "opencl" or not row["available"]:
        return False
    kinds = str((row["info"].get("device") or {}).get("type", "")).split(" | ")
    return "CPU" in kinds and "GPU" not in kinds


def _verdict(report, name: str) -> str:
    c = report.counts(name)
    result = report.result(name)
    if result == "FAIL":
        return f"FAIL, {c['failed']} of {c['checks']} checks"
    return f"{result}, {c['cases']} random case{'s' if c['cases'] != 1 else ''}"


def _timings(names: List[str], progress: bool) -> List[List[str]]:
    """Rows of the timing table: a workload's label, then a time per backend."""
    workloads = [bench.get_workload(n, quick=True) for n in TIMED]
    bar = Progress(len(workloads), enabled=progress)
    rows = []
    for wl in workloads:
        bar.step(f"timing {wl.name}")
        inputs = wl.make_inputs()
        fns = {name: bench.pyconv_callable(wl, name, inputs) for name in names}
        times = bench.interleaved_best_of(fns, REPEAT, warmup=1, warmup_time=WARMUP_TIME,
                                          settle=SETTLE)
        rows.append([wl.label] + [fmt_time(times[n]) for n in names])
        bar.advance()
    bar.close()
    return rows


def command(args, out: TextIO) -> int:
    """The main job; 1 when a check failed or a named backend is unavailable."""
    rows = {r["name"]: r for r in backend_rows()}
    named = set(args.backends) if args.backend else set()
    slow = [n for n in args.backends if cpu_driver(rows[n]) and n not in named]
    max_cases = {n: CPU_DRIVER_CASES for n in slow}
    report = run_check(args.backends, args.cases, args.seed, max_cases=max_cases,
                       progress=args.progress)

    print(f"pyconv {pyconv.__version__} (python {platform.python_version()}, numpy "
          f"{numpy.__version__}), {pyconv.get_num_threads()} threads", file=out)
    body = []
    for r in rows.values():
        if not r["available"]:
            body.append([r["name"], "unavailable", "-", str(r["reason"])])
            continue
        check = _verdict(report, r["name"]) if r["name"] in args.backends else "not asked"
        body.append([r["name"], "available", check, _about(r["name"], r["info"])])
    print(table(["backend", "status", "check vs reference", "about"], body, left=4),
          file=out)
    note = shadow_note(list(rows.values()))
    if note:
        print(note, file=out)

    timed = [n for n in args.backends if n not in slow]
    print(file=out)
    print(table([f"time, best of {REPEAT} (tiny float32 calls)"] + timed,
                _timings(timed, args.progress)), file=out)

    for n in slow:
        print(f"{n} runs on a CPU driver here: checked on {CPU_DRIVER_CASES} cases, not "
              f"timed (--backend {n} checks all and times it)", file=out)
    ok = report.ok and not args.unavailable
    if ok:
        print("all checks passed. More: python -m pyconv info | check | bench "
              "(each with --help)", file=out)
    else:
        print("some checks FAILED:", file=out)
        for name, reason in args.unavailable:
            print(f"FAIL backend {name!r} asked for but unavailable: {reason}", file=out)
    details = format_details(report, verbose=args.verbose)
    if details:
        print("\n".join(details), file=out)
    return EXIT_OK if ok else EXIT_FAILED
