"""The command line (``python -m pyconv``) and the benchmark helpers.

The subprocess tests run the real entry point; the in-process ones check
that ``check`` really fails on a wrong backend and that the benchmark
workloads have the geometry the issue asks for.  Nothing here needs torch,
and nothing here measures speed (timings are only formatted, never judged).
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import pyconv
from pyconv import _bench, _registry
from pyconv import __main__ as cli
from pyconv._cli_check import make_cases, run_check

ENV = dict(os.environ, PYCONV_NUM_THREADS="1")


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pyconv", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


# --------------------------------------------------------------------------
# subprocess: the entry point


def test_help_lists_subcommands():
    res = run_cli("--help")
    assert res.returncode == 0, res.stderr
    for word in ("info", "check", "bench", "exit status"):
        assert word in res.stdout


@pytest.mark.parametrize("sub", ["info", "check", "bench"])
def test_subcommand_help(sub):
    res = run_cli(sub, "--help")
    assert res.returncode == 0, res.stderr
    assert f"python -m pyconv {sub}" in res.stdout


@pytest.mark.parametrize("args", [
    ["--no-such-option"],
    ["nosuchcommand"],
    ["bench", "--repeat", "many"],
    ["bench", "--repeat", "0"],
    ["bench", "--backend", "nosuch", "--quick"],
    ["bench", "--quick", "--workloads", "nosuch"],
    ["bench", "--backend", "reference"],      # reference only at --quick sizes
    ["bench", "--compare", "tensorflow"],
    ["bench", "--quick", "--json", "/no/such/folder/out.json"],
    ["check", "--cases", "0"],
    ["check", "--backend", "nosuch"],
])
def test_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_usage_error_exit_status_of_the_process():
    res = run_cli("bench", "--no-such-option")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "usage:" in res.stderr and "error:" in res.stderr


def test_info():
    res = run_cli("info")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for word in ("reference", "cython", "opencl", "numpy", "scipy", "pyopencl", "BLAS",
                 "OpenMP", "python"):
        assert word in out
    # every backend is listed with its availability, and a reason when unavailable
    section = out.split("\nBackends\n", 1)[1].split("\n\n", 1)[0].splitlines()
    for row in pyconv.backends():
        line = next(line for line in section if line.strip().startswith(row["name"] + " "))
        if row["available"]:
            assert "available" in line and "unavailable" not in line
        else:
            assert "unavailable" in line and "(" in line


def test_check_reference_passes():
    res = run_cli("check", "--backend", "reference", "--cases", "3", "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [line for line in res.stdout.splitlines() if line.startswith("reference")]
    assert len(lines) == 1
    cells = lines[0].split()
    # checks passed failed skipped ...: 3 cases x 2 identities, all passing
    assert cells[1:5] == ["6", "6", "0", "0"]
    assert cells[-1] == "pass"


def test_bench_quick_reference_json(tmp_path):
    path = tmp_path / "bench.json"
    res = run_cli("bench", "--quick", "--backend", "reference", "--repeat", "1",
                  "--json", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    # a progress indication went to stderr, the table to stdout
    assert "conv1d" in res.stderr
    assert "GFLOP/s" in res.stdout and "sgemm" in res.stdout
    data = json.loads(path.read_text())
    # the schema, spelled out (another tool reads this file)
    assert set(data) == {"machine", "sgemm_gflops", "rows"}
    assert set(data["machine"]) == {"cpu", "cores", "threads", "python", "numpy", "torch",
                                    "date"}
    m = data["machine"]
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert isinstance(m["cores"], int) and m["cores"] >= 1
    assert m["threads"] == 1
    assert m["numpy"] == np.__version__
    assert m["torch"] is None  # no --compare torch: torch was not used
    assert isinstance(m["date"], str) and "T" in m["date"]
    assert isinstance(data["sgemm_gflops"], float) and data["sgemm_gflops"] > 0
    assert len(data["rows"]) == len(_bench.QUICK_WORKLOADS)
    labels = {w.label for w in _bench.QUICK_WORKLOADS}
    for row in data["rows"]:
        assert set(row) == {"workload", "op", "backend", "time_s", "torch_time_s",
                            "speedup", "gflops", "sgemm_fraction"}
        assert row["backend"] == "reference"
        assert row["workload"] in labels
        assert row["time_s"] > 0
        assert row["torch_time_s"] is None and row["speedup"] is None
        wl = next(w for w in _bench.QUICK_WORKLOADS if w.label == row["workload"])
        assert row["op"] == wl.op
        assert math.isclose(row["gflops"], wl.flops / row["time_s"] / 1e9, rel_tol=1e-9)
        assert math.isclose(row["sgemm_fraction"], row["gflops"] / data["sgemm_gflops"],
                            rel_tol=1e-9)
    _bench.validate_result(data)


def test_cli_never_imports_torch():
    code = ("import sys; from pyconv.__main__ import main; "
            "rc = main(['bench', '--quick', '--backend', 'reference', '--repeat', '1', "
            "'--no-progress', '--workloads', 'conv1d']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr


def run_without_pyopencl(*args):
    """``python -m pyconv ARGS`` in a process where pyopencl cannot be imported."""
    code = ("import sys; sys.modules['pyopencl'] = None; "
            "from pyconv.__main__ import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=300, env=ENV)


def test_main_job_without_pyopencl():
    res = run_without_pyopencl("--cases", "2", "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "Backends" in out and "Check against the reference" in out and "Timing" in out
    opencl = next(line for line in out.splitlines() if line.strip().startswith("opencl "))
    assert "unavailable" in opencl and "(" in opencl  # with the reason
    # the check table has a passing row per available backend, opencl not among them
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[-1] in ("pass", "FAIL", "skipped")}
    assert rows["reference"][-1] == "pass" and "opencl" not in rows
    # the timing table has a column per available backend
    header = next(line for line in out.splitlines() if line.startswith("workload (tiny"))
    assert "reference" in header and "opencl" not in header


def test_info_and_check_without_pyopencl():
    res = run_without_pyopencl("info")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OpenCL platforms and devices" in res.stdout
    res = run_without_pyopencl("check", "--backend", "opencl", "--cases", "1")
    assert res.returncode == 1
    assert "unavailable" in res.stdout
    res = run_without_pyopencl("bench", "--backend", "opencl")
    assert res.returncode == 2 and "unavailable" in res.stderr


def test_compare_torch_without_torch(tmp_path):
    # torch made unimportable: --compare torch notes it and times pyconv alone
    path = tmp_path / "bench.json"
    code = ("import sys; sys.modules['torch'] = None; from pyconv.__main__ import main; "
            "sys.exit(main(['bench', '--quick', '--backend', 'reference', '--repeat', '1', "
            f"'--compare', 'torch', '--workloads', 'conv1d,conv2d', '--json', {str(path)!r}]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "torch is not importable" in res.stderr
    data = json.loads(path.read_text())
    _bench.validate_result(data)
    assert data["machine"]["torch"] is None
    assert [r["op"] for r in data["rows"]] == ["conv1d", "conv2d"]
    assert all(r["speedup"] is None for r in data["rows"])


# --------------------------------------------------------------------------
# in process: check must be able to fail


class _Wrong(_registry.Backend):
    """The reference backend with one primitive off by a little."""

    name = "wrong"

    def __init__(self, broken):
        from pyconv._reference import ReferenceBackend
        self.ref = ReferenceBackend()
        self.broken = broken

    def conv(self, x, w, b, spec):
        y = self.ref.conv(x, w, b, spec)
        if self.broken == "mutates" and x.flags.writeable:
            x *= 2.0  # a right answer, but the caller's array is damaged
        return y + 1e-2 if self.broken == "conv" else y

    def conv_transpose(self, x, w, b, spec):
        y = self.ref.conv_transpose(x, w, b, spec)
        return y * 1.01 if self.broken == "conv_transpose" else y

    def conv_weight(self, x, grad_out, spec):
        gw = self.ref.conv_weight(x, grad_out, spec)
        if self.broken == "conv_weight":
            gw = gw.copy()
            gw.flat[0] += 0.5
        return gw


@pytest.mark.parametrize("broken", ["conv", "conv_transpose", "conv_weight", "mutates"])
def test_check_detects_a_wrong_backend(monkeypatch, broken, capsys):
    # stand a wrong backend in for "cython" (whatever its real state)
    monkeypatch.setitem(_registry._loaded, "cython", _Wrong(broken))
    report = run_check(["cython"], n_cases=3)
    assert not report.ok
    assert report.counts("cython")["failed"] > 0
    if broken == "mutates":
        assert any(o.label == "inputs untouched" for o in report.failures())
    rc = cli.main(["check", "--backend", "cython", "--cases", "3", "--no-progress"])
    assert rc == 1
    out = capsys.readouterr().out
    assert "FAIL" in out


def test_check_passes_a_correct_backend(monkeypatch, capsys):
    monkeypatch.setitem(_registry._loaded, "cython", _Wrong(None))
    report = run_check(["cython"], n_cases=3)
    assert report.ok, [o.detail for o in report.failures()]
    c = report.counts("cython")
    # 6 public functions compared + 2 identities per case
    assert c["checks"] == 3 * 8 and c["passed"] == 3 * 8
    assert cli.main(["check", "--backend", "cython", "--cases", "3", "--no-progress"]) == 0


class _NoFloat64(_Wrong):
    """A correct backend that declines float64 (like an OpenCL device without fp64)."""

    def supports(self, op, spec, dtype):
        return "no cl_khr_fp64 on this device" if dtype == np.float64 else None


def test_check_counts_declined_calls_as_skipped(monkeypatch, capsys):
    monkeypatch.setitem(_registry._loaded, "cython", _NoFloat64(None))
    report = run_check(["cython"], n_cases=6)   # cases 0-2 float64, 3-5 float32
    c = report.counts("cython")
    assert report.ok and c["failed"] == 0
    assert c["skipped"] == 3 * 8 and c["passed"] == 3 * 8
    assert cli.main(["check", "--backend", "cython", "--cases", "6", "--no-progress",
                     "-v"]) == 0
    assert "no cl_khr_fp64" in capsys.readouterr().out


def test_check_unavailable_backend_fails(monkeypatch, capsys):
    monkeypatch.delitem(_registry._loaded, "opencl", raising=False)
    monkeypatch.setitem(_registry._failed, "opencl", "ImportError: simulated")
    assert cli.main(["check", "--backend", "opencl", "--cases", "1", "--no-progress"]) == 1
    assert "simulated" in capsys.readouterr().out


def test_check_cases_are_valid_geometries():
    for case in make_cases(30, seed=3):
        assert case.in_channels % case.groups == 0
        assert case.out_channels % case.groups == 0
        for n, k, s, p, d, op in zip(case.size, case.kernel, case.stride, case.padding,
                                     case.dilation, case.output_padding):
            assert (n + 2 * p - d * (k - 1) - 1) // s + 1 >= 1
            assert 0 <= op < max(s, d)
    assert {c.nd for c in make_cases(3)} == {1, 2, 3}


# --------------------------------------------------------------------------
# the workload definitions


def test_workload_geometry_matches_the_issue():
    wl = {w.name: w for w in _bench.WORKLOADS}
    assert wl["conv1d"].output_shape == (32, 128, 1024 - 4)
    assert wl["conv1d_s2"].output_shape == (32, 128, 512)
    assert wl["conv1d_depthwise"].output_shape == (8, 256, 4096)
    assert wl["conv1d_depthwise"].weight_shape == (256, 1, 9)
    assert wl["conv2d"].output_shape == (8, 64, 56, 56)
    assert wl["conv_transpose1d"].output_shape == (32, 64, 1024)
    assert wl["conv_transpose2d"].output_shape == (16, 64, 16, 16)
    assert wl["conv_transpose3d_k2"].output_shape == (2, 32, 32, 32, 32)
    assert wl["conv_transpose3d_k3"].output_shape == (4, 16, 32, 32, 32)
    assert wl["conv3d"].output_shape == (2, 32, 32, 32, 32)
    assert wl["wavenet"].output_shape == (4, 128, 16000 - 64)
    assert wl["conv2d_weight"].weight_shape == (64, 64, 3, 3)
    # 2 x multiply-adds
    assert wl["conv2d"].flops == 2 * 8 * 64 * 64 * 56 * 56 * 9
    assert wl["conv_transpose2d"].flops == 2 * 16 * 128 * 64 * 8 * 8 * 16
    assert wl["conv1d_depthwise"].flops == 2 * 8 * 256 * 1 * 4096 * 9
    assert wl["conv1d_weight"].flops == wl["conv1d"].flops
    assert all(w.name == q.name and w.op == q.op
               for w, q in zip(_bench.WORKLOADS, _bench.QUICK_WORKLOADS))


@pytest.mark.parametrize("quick", [w.name for w in _bench.QUICK_WORKLOADS])
def test_quick_workload_shapes_match_the_library(quick):
    wl = _bench.get_workload(quick, quick=True)
    out = _bench.pyconv_callable(wl, "reference")()
    expect = wl.weight_shape if wl.is_weight_grad else wl.output_shape
    assert out.shape == expect and out.dtype == np.float32


def test_format_table_and_geomean():
    rows = []
    for name, t, tt in [("a", 1.0, 2.0), ("b", 2.0, 1.0), ("c", 0.5, 2.0)]:
        rows.append({"workload": name, "op": "conv1d", "backend": "cython", "time_s": t,
                     "torch_time_s": tt, "speedup": tt / t, "gflops": 1.0 / t,
                     "sgemm_fraction": 0.01 / t})
    result = {"machine": _bench.machine_info(2, "2.13.0"), "sgemm_gflops": 100.0,
              "rows": rows}
    _bench.validate_result(result)
    s = _bench.summary(result)["cython"]
    assert math.isclose(s["geomean"], (2.0 * 0.5 * 4.0) ** (1 / 3))
    assert s["worst"] == 0.5 and s["count"] == 3
    table = _bench.format_table(result)
    assert "speedup" in table and "4.00x" in table and "geometric-mean" in table
    bad = dict(result, rows=[dict(rows[0], extra=1)])
    with pytest.raises(ValueError):
        _bench.validate_result(bad)


def test_note_when_the_source_tree_hides_the_installed_package(tmp_path, monkeypatch, capsys):
    # pip install . then python -m pyconv in the source folder: the source tree
    # (no compiled extension) is imported, the installed copy is hidden
    other = tmp_path / "site-packages"
    (other / "pyconv").mkdir(parents=True)
    (other / "pyconv" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(other))
    assert cli._shadowed_install() == str(other / "pyconv")
    monkeypatch.delitem(_registry._loaded, "cython", raising=False)
    monkeypatch.setitem(_registry._failed, "cython", "ImportError: not built")
    cli._print_shadow_note(sys.stdout)
    out = capsys.readouterr().out
    assert "source tree" in out and str(other / "pyconv") in out
