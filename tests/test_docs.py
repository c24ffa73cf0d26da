"""The documentation's worked examples and its performance-page generator.

* Every ``>>>`` example inside a ``.. code-block:: python`` of the pages
  listed in :data:`PAGES` is run as a doctest, so the numbers printed in the
  docs are the numbers pyconv computes.
* ``docs/gen_perf.py`` turns a benchmark JSON into the performance page:
  checked on a small synthetic result (values, ratios, geometric mean,
  schema errors), without running a benchmark.

torch is never imported here (the porting guide's torch snippets have no
``>>>`` prompts and are not run; its pyconv-only examples have them).  The
SciPy page's examples import SciPy, a dependency of pyconv.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import os
import re

import numpy as np
import pytest

import pyconv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = ["semantics.rst", "gradients.rst", "differences.rst", "scipy.rst", "porting.rst"]

_BLOCK = re.compile(r"^( *)\.\. code-block:: python\n\n((?:\1   .*\n|\n)+)", re.M)


def _examples(page: str) -> str:
    with open(os.path.join(DOCS, page), encoding="utf-8") as fh:
        text = fh.read()
    out = []
    for match in _BLOCK.finditer(text):
        indent = len(match.group(1)) + 3
        body = "\n".join(line[indent:] for line in match.group(2).splitlines())
        if ">>>" in body:
            out.append(body)
    return "\n\n".join(out)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page):
    source = _examples(page)
    assert source.count(">>>") >= 3, f"no examples found in {page}"
    test = doctest.DocTestParser().get_doctest(
        source, {"np": np, "pyconv": pyconv}, page, os.path.join(DOCS, page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report = []  # not print(): doctest swaps sys.stdout while it runs
    with np.printoptions(legacy=False):
        result = runner.run(test, out=report.append)
    assert result.failed == 0, (f"{result.failed} of {result.attempted} examples of {page} "
                                "failed:\n" + "".join(report))


# --------------------------------------------------------------------------
# docs/gen_perf.py

def _gen_perf():
    spec = importlib.util.spec_from_file_location("gen_perf", os.path.join(DOCS, "gen_perf.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result():
    rows = []
    for wl, op, times, torch_t in (
            ("conv1d N32 C64->128 L1024 K5", "conv1d", {"cython": 0.02, "opencl": 0.1}, 0.01),
            ("conv2d_weight N8 C64->64 56x56 K3x3 p1", "conv2d_weight",
             {"cython": 0.04, "opencl": 0.2}, 0.08)):
        for name, t in times.items():
            rows.append({"workload": wl, "op": op, "backend": name, "path": None, "time_s": t,
                         "torch_time_s": torch_t, "scipy_time_s": None, "speedup": torch_t / t,
                         "gflops": 1.0 / t, "sgemm_fraction": 0.01 / t,
                         "peak_fraction": 0.005 / t})
    return {"machine": {"cpu": "Test CPU", "cores": 2, "threads": 2, "python": "3.11.0",
                        "numpy": np.__version__, "torch": "2.13.0+cpu",
                        "date": "2026-01-01T00:00:00+00:00"},
            "sgemm_gflops": 100.0, "fma_peak_gflops": 200.0, "rows": rows}


def test_gen_perf_page(tmp_path):
    gp = _gen_perf()
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_result()))
    data = gp.load(str(path))
    text = gp.render_rst(data, None)
    assert "Test CPU" in text and "2.13.0+cpu" in text
    assert "python -m pyconv bench --compare torch --json docs/bench.json" in text
    # speedup = torch time / pyconv time
    assert "conv1d N32 C64->128 L1024 K5" in text
    cells = re.findall(r"^     - (\S+)$", text, re.M)
    assert "0.50" in cells and "2.00" in cells and "0.10" in cells and "0.40" in cells
    # geometric means: cython sqrt(0.5 * 2) = 1, opencl sqrt(0.1 * 0.4) = 0.2
    assert math.isclose(gp.geomean([0.5, 2.0]), 1.0)
    summary = text[text.index("Summary"):text.index("Workloads")]
    assert "1.00" in summary and "0.20" in summary
    assert ".. image::" not in text


def test_gen_perf_main_writes_files(tmp_path):
    pytest.importorskip("matplotlib")  # a docs extra, only needed for the chart
    gp = _gen_perf()
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_result()))
    rst, png = tmp_path / "performance.rst", tmp_path / "_static" / "perf.png"
    assert gp.main([str(path), "--rst", str(rst), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ".. image:: _static/perf.png" in rst.read_text()


def test_gen_perf_rejects_bad_json(tmp_path, capsys):
    gp = _gen_perf()
    bad = _result()
    del bad["rows"][0]["time_s"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(gp.BenchFormatError):
        gp.load(str(path))
    assert gp.main([str(path), "--rst", str(tmp_path / "p.rst"),
                    "--png", str(tmp_path / "p.png")]) == 2
    assert "bench.json" in capsys.readouterr().err
    assert not (tmp_path / "p.rst").exists()


def test_committed_page_matches_committed_json():
    """docs/performance.rst is what gen_perf.py makes of docs/bench.json."""
    gp = _gen_perf()
    data = gp.load(os.path.join(DOCS, "bench.json"))
    with open(os.path.join(DOCS, "performance.rst"), encoding="utf-8") as fh:
        committed = fh.read()
    assert committed == gp.render_rst(data, "_static/perf.png")
