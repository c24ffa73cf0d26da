"""Generate the performance page of the docs from a benchmark JSON file.

Usage (from the repository root)::

    python -m pyconv bench --compare torch --json docs/bench.json
    python docs/gen_perf.py docs/bench.json

The first command times every available backend and PyTorch on the
benchmark workloads (:mod:`pyconv._cli.bench`) and writes the JSON; the second
turns it into ``docs/performance.rst`` and the bar chart
``docs/_static/perf.png``.  Nothing on the page is typed by hand: edit this
script, not the generated files.

The JSON schema is the one documented in :mod:`pyconv._cli.bench`::

    {"machine": {"cpu": str, "cores": int, "threads": int, "python": str,
                 "numpy": str, "torch": str or null, "date": str},
     "sgemm_gflops": float, "fma_peak_gflops": float or null,
     "rows": [{"workload": str, "op": str, "backend": str, "path": str or null,
               "time_s": float, "torch_time_s": float or null,
               "scipy_time_s": float or null,
               "speedup": float or null, "gflops": float,
               "sgemm_fraction": float, "peak_fraction": float or null}, ...]}

``speedup`` is ``torch_time_s / time_s`` (above 1: pyconv is faster), as in
the table ``python -m pyconv bench`` prints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RST = os.path.join(HERE, "performance.rst")
DEFAULT_PNG = os.path.join(HERE, "_static", "perf.png")
#: The chart is drawn for the docs' content column, about 620 px wide in a
#: 1280 px window (pydata-sphinx-theme), where it is shown at 100% width: a
#: figure this many inches wide then renders at about 97 px per inch, and
#: text of :data:`CHART_FONT_PT` points at about 12 px.
CHART_WIDTH_IN = 6.4
CHART_FONT_PT = 9
#: Pixels per inch of the PNG: more than it is shown at, so it stays sharp on
#: high-density screens.
CHART_DPI = 150
REGENERATE = ("python -m pyconv bench --compare torch --json docs/bench.json\n"
              "python docs/gen_perf.py docs/bench.json")


class BenchFormatError(ValueError):
    """The benchmark JSON does not follow the documented schema."""


# ----------------------------------------------------------------------------
# loading and checking

def _number(value, where: str, optional: bool = False) -> Optional[float]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BenchFormatError(f"{where}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        if optional:
            return None
        raise BenchFormatError(f"{where}: expected a finite number >= 0, got {value!r}")
    return value


def load(path: str) -> Dict:
    """Read and validate the benchmark JSON; numbers become floats."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    try:  # the writer's own schema check, when pyconv is importable
        from pyconv._cli.bench import validate_result
    except ImportError:
        validate_result = None
    if validate_result is not None:
        try:
            validate_result(data)
        except ValueError as exc:
            raise BenchFormatError(str(exc)) from None
    if not isinstance(data, dict):
        raise BenchFormatError("top level must be a JSON object")
    for key in ("machine", "rows"):
        if key not in data:
            raise BenchFormatError(f"missing key {key!r}")
    machine = data["machine"]
    if not isinstance(machine, dict):
        raise BenchFormatError("'machine' must be an object")
    rows = data["rows"]
    if not isinstance(rows, list) or not rows:
        raise BenchFormatError("'rows' must be a non-empty list")
    clean = []
    for i, row in enumerate(rows):
        where = f"rows[{i}]"
        if not isinstance(row, dict):
            raise BenchFormatError(f"{where}: must be an object")
        for key in ("workload", "backend", "time_s"):
            if key not in row:
                raise BenchFormatError(f"{where}: missing key {key!r}")
        clean.append({
            "workload": str(row["workload"]),
            "op": str(row.get("op") or ""),
            "backend": str(row["backend"]),
            "path": None if row.get("path") is None else str(row["path"]),
            "time_s": _number(row["time_s"], f"{where}.time_s"),
            "torch_time_s": _number(row.get("torch_time_s"), f"{where}.torch_time_s", True),
            "gflops": _number(row.get("gflops"), f"{where}.gflops", True),
            "sgemm_fraction": _number(row.get("sgemm_fraction"), f"{where}.sgemm_fraction",
                                      True),
            "peak_fraction": _number(row.get("peak_fraction"), f"{where}.peak_fraction",
                                     True),
        })
    sgemm = data.get("sgemm_gflops")
    sgemm = None if sgemm is None else _number(sgemm, "sgemm_gflops", True)
    peak = data.get("fma_peak_gflops")
    peak = None if peak is None else _number(peak, "fma_peak_gflops", True)
    return {"machine": machine, "sgemm_gflops": sgemm, "fma_peak_gflops": peak,
            "rows": clean}


def ratio(row: Dict) -> Optional[float]:
    """Speedup over PyTorch, PyTorch time / pyconv time (None when PyTorch was not timed)."""
    t, ref = row["time_s"], row["torch_time_s"]
    if ref is None or ref <= 0 or t <= 0:
        return None
    return ref / t


def geomean(values: List[float]) -> Optional[float]:
    """Geometric mean of the positive values (None for an empty list)."""
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def workloads(rows: List[Dict]) -> List[str]:
    """Workload names in the order they first appear."""
    seen: List[str] = []
    for row in rows:
        if row["workload"] not in seen:
            seen.append(row["workload"])
    return seen


def backends_of(rows: List[Dict]) -> List[str]:
    """Backend names in the order they first appear."""
    seen: List[str] = []
    for row in rows:
        if row["backend"] not in seen:
            seen.append(row["backend"])
    return seen


# ----------------------------------------------------------------------------
# formatting

def _ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--"
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _x(value: Optional[float]) -> str:
    return "--" if value is None else f"{value:.2f}"


def _pct(value: Optional[float]) -> str:
    return "--" if value is None else f"{100 * value:.0f} %"


def _gf(value: Optional[float]) -> str:
    return "--" if value is None else f"{value:.1f}"


def _text(value) -> str:
    """Plain text safe inside an RST table cell."""
    text = " ".join(str(value).split())
    for ch in "\\*`|_":
        text = text.replace(ch, "\\" + ch)
    return text or "--"


def _list_table(title: str, header: List[str], body: List[List[str]],
                widths: Optional[List[int]] = None, css_class: Optional[str] = None
                ) -> List[str]:
    out = [f".. list-table:: {title}" if title else ".. list-table::",
           "   :header-rows: 1"]
    if widths:
        out.append("   :widths: " + " ".join(str(w) for w in widths))
    if css_class:
        out.append(f"   :class: {css_class}")
    out.append("")
    for line in [header] + body:
        out.append(f"   * - {line[0]}")
        for cell in line[1:]:
            out.append(f"     - {cell}")
    out.append("")
    return out


def _dense_labels() -> set:
    """Labels of the dense (GEMM-shaped) workloads, for which % of SGEMM is a target."""
    try:
        from pyconv._cli.bench import QUICK_WORKLOADS, WORKLOADS
    except ImportError:
        return set()
    return {w.label for w in WORKLOADS + QUICK_WORKLOADS if w.dense}


def render_rst(data: Dict, png_relpath: Optional[str]) -> str:
    """The text of ``performance.rst``."""
    rows = data["rows"]
    machine = data["machine"]
    names = backends_of(rows)
    has_torch = any(r["torch_time_s"] is not None for r in rows)
    dense = _dense_labels()
    torch_version = machine.get("torch") or "--"
    lines = [
        ".. This file is generated by docs/gen_perf.py from docs/bench.json.",
        "   Do not edit it by hand: re-run the commands it shows.",
        "",
        ".. _performance:",
        "",
        "Performance",
        "===========",
        "",
        "Every number on this page comes from one run of ``python -m pyconv bench``",
        "on the machine described below; this page and its chart are generated",
        "from the run's JSON output by ``docs/gen_perf.py``.  To measure your own",
        "machine and regenerate the page, run from the repository root::",
        "",
    ]
    lines += ["    " + cmd for cmd in REGENERATE.splitlines()]
    lines += [
        "",
        "then rebuild the docs.  ``python -m pyconv bench --help`` lists the options",
        "(``--backend``, ``--workloads``, ``--threads``, ``--repeat``); PyTorch is",
        "needed only for ``--compare torch`` and is never imported by pyconv itself.",
        "",
        "How to read the numbers",
        "-----------------------",
        "",
        "* Every workload is float32 and goes through the public API (argument",
        "  parsing and validation included), exactly as a user would call it.",
        "* *time* is the best of several calls, in milliseconds; the contenders of",
        "  one workload (each backend, PyTorch and a matrix-product probe) take",
        "  turns, so a change of the machine's load hits them alike.",
        "* *speedup* is PyTorch's time divided by pyconv's for the same call with",
        "  the same number of threads: above 1 pyconv is faster, below 1 PyTorch is.",
        "* *GFLOP/s* counts two operations per multiply-add of the direct",
        "  convolution; *% of SGEMM* divides it by the throughput of NumPy's own",
        "  float32 matrix product measured in the same run, the machine's practical",
        "  ceiling for dense work.  It is a meaningful target only for the dense",
        "  (ungrouped forward) workloads, marked with a dagger (†).",
        "* *% of peak* divides GFLOP/s by the CPU's float32 multiply-add peak",
        "  measured in the same run, the ceiling of any convolution that does all of",
        "  its multiplications.  A row above 100% ran on a path that does fewer:",
        "  the ``cython`` backend's Winograd paths for stride-1 layers with 3-tap",
        "  kernels (3x3, 3x3x3, 1-d K=3 or 5; see :ref:`cython-paths`).  Its",
        "  GFLOP/s are *effective*: the direct convolution's operations over the",
        "  time taken.",
        "* ``opencl`` runs on the OpenCL device selected on that machine (see",
        "  :ref:`backends`; ``python -m pyconv info`` names it).  Measured on a CPU",
        "  driver such as PoCL it is a portability check, not a fast path: its home",
        "  is a GPU.",
        "",
        "Machine",
        "-------",
        "",
    ]
    mrows = []
    labels = [("cpu", "CPU"), ("cores", "cores available"), ("threads", "threads used"),
              ("python", "Python"), ("numpy", "NumPy"), ("torch", "PyTorch"),
              ("date", "measured (UTC)")]
    for key, label in labels:
        if key in machine:
            value = machine[key]
            mrows.append([label, _text(value if value is not None else "--")])
    for key in sorted(k for k in machine if k not in dict(labels)):
        mrows.append([_text(key), _text(machine[key])])
    if data["sgemm_gflops"] is not None:
        mrows.append(["NumPy float32 matrix product",
                      f"{data['sgemm_gflops']:.1f} GFLOP/s (the SGEMM ceiling)"])
    if data["fma_peak_gflops"] is not None:
        mrows.append(["float32 multiply-add peak",
                      f"{data['fma_peak_gflops']:.1f} GFLOP/s (the ceiling of a direct "
                      "convolution)"])
    lines += _list_table("", ["item", "value"], mrows, [30, 70])

    lines += ["Summary", "-------", ""]
    if has_torch:
        lines += [f"Geometric mean, over all workloads, of the speedup over PyTorch "
                  f"{_text(torch_version)} (above 1: pyconv is faster).", ""]
        srows = []
        for name in names:
            rs = [ratio(r) for r in rows if r["backend"] == name]
            rs = [v for v in rs if v is not None]
            srows.append([f"``{name}``", str(len(rs)), _x(geomean(rs)),
                          _x(min(rs) if rs else None), _x(max(rs) if rs else None)])
        lines += _list_table("", ["backend", "workloads", "geometric mean speedup",
                                  "slowest", "fastest"], srows)
    else:
        lines += ["PyTorch was not timed in this run, so there are no speedups.", ""]
    if png_relpath:
        lines += [f".. image:: {png_relpath}",
                  "   :alt: speedup over PyTorch per workload and backend (log scale)",
                  "   :width: 100%", ""]

    lines += ["Workloads", "---------", ""]
    # Plain backend names (the cython rows with the path its planner took)
    # and the perf-table class (a smaller font and tighter cells,
    # docs/_static/perf.css) keep the seven columns inside the page's content
    # column; the workload descriptions wrap.
    header = ["workload", "backend", "time (ms)"]
    widths = [34, 10, 9]
    if has_torch:
        header += ["PyTorch (ms)", "speedup"]
        widths += [10, 10]
    has_peak = any(r["peak_fraction"] is not None for r in rows)
    header += ["GFLOP/s", "% of SGEMM"] + (["% of peak"] if has_peak else [])
    widths += [10, 10] + ([10] if has_peak else [])
    body = []
    for wl in workloads(rows):
        first = True
        for r in (r for r in rows if r["workload"] == wl):
            label = _text(wl) + (" †" if wl in dense else "")
            backend = r["backend"] + (f" ({r['path']})" if r["path"] else "")
            line = [label if first else "", _text(backend), _ms(r["time_s"])]
            if has_torch:
                line += [_ms(r["torch_time_s"]), _x(ratio(r))]
            line += [_gf(r["gflops"]), _pct(r["sgemm_fraction"])]
            if has_peak:
                line.append(_pct(r["peak_fraction"]))
            body.append(line)
            first = False
    lines += _list_table("", header, body, widths, "perf-table")
    lines += ["† dense workload: the fraction of SGEMM is a meaningful target.", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_png(data: Dict, path: str) -> bool:
    """Bar chart of the speedup over PyTorch (log scale); False if there is none.

    The chart is drawn for the page's content column (see :data:`CHART_WIDTH_IN`):
    each workload's description is a line of its own above its bars, so the
    long descriptions take no width from the bars, and each bar carries its
    value.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import matplotlib.transforms

    rows = data["rows"]
    wls = workloads(rows)
    names = backends_of(rows)
    table = {(r["workload"], r["backend"]): ratio(r) for r in rows}
    values = [v for v in table.values() if v]
    if not values:
        return False
    # in bar heights: a description line, a bar per backend, a gap
    label_h, gap = 1.3, 0.5
    step = label_h + len(names) + gap
    bar_in = 0.15  # inches per bar
    font = CHART_FONT_PT
    fig, ax = plt.subplots(figsize=(CHART_WIDTH_IN, bar_in * step * len(wls) + 1.4),
                           layout="constrained")
    left_edge = matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, wl in enumerate(wls):
        top = i * step
        ax.text(0.005, top + label_h / 2, wl, transform=left_edge, ha="left", va="center",
                fontsize=font, zorder=3,
                bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none"))
        for j, name in enumerate(names):
            v = table.get((wl, name))
            if not v:
                continue
            y = top + label_h + j + 0.5
            ax.barh(y, v, 0.85, color=colors[j % len(colors)],
                    label=name if i == 0 else None, zorder=2)
            ax.text(v * 1.06, y, f"{v:.2f}", va="center", ha="left", fontsize=font,
                    zorder=3)
    ax.axvline(1.0, color="k", lw=1, ls="--", label="PyTorch (= 1)", zorder=1)
    ax.set_xscale("log")
    lo, hi = min(values) / 1.6, max(values) * 2.2  # room for the values at the bar ends
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
             if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=font)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(axis="x", color="0.88", zorder=0)
    ax.set_ylim(step * len(wls) - gap / 2, -gap / 2)
    ax.set_yticks([])
    ax.set_xlabel("speedup over PyTorch: PyTorch time / pyconv time (higher is better)",
                  fontsize=font)
    m = data["machine"]
    cpu = m.get("cpu") or "unknown CPU"
    threads = m.get("threads")
    ax.set_title(f"pyconv vs PyTorch {m.get('torch') or ''} on {cpu}"
                 + (f", {threads} thread(s)" if threads else ""), fontsize=font + 1,
                 pad=font * 2.6)
    ax.legend(fontsize=font, loc="lower left", bbox_to_anchor=(0.0, 1.0),
              ncols=len(names) + 1, frameon=False, borderaxespad=0.2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=CHART_DPI, metadata={"Software": None})
    plt.close(fig)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write docs/performance.rst and docs/_static/perf.png from "
                    "the JSON of `python -m pyconv bench --json`.")
    parser.add_argument("json", help="benchmark JSON (e.g. docs/bench.json)")
    parser.add_argument("--rst", default=DEFAULT_RST, help="output page (default: %(default)s)")
    parser.add_argument("--png", default=DEFAULT_PNG, help="output chart (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        data = load(args.json)
    except (OSError, json.JSONDecodeError, BenchFormatError) as exc:
        print(f"gen_perf: {args.json}: {exc}", file=sys.stderr)
        return 2
    have_png = render_png(data, args.png)
    rel = None
    if have_png:
        rel = os.path.relpath(os.path.abspath(args.png),
                              os.path.dirname(os.path.abspath(args.rst))).replace(os.sep, "/")
    text = render_rst(data, rel)
    with open(args.rst, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {args.rst}" + (f" and {args.png}" if have_png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
