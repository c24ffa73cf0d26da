"""The command line (``python -m pyconv``, :mod:`pyconv._cli`).

The subprocess tests run the real entry point; the in-process ones check that
``check`` really fails on a wrong backend, that options work before and
after the subcommand, that the device list comes from the backends' own
``info()``, and that the benchmark workloads are the public calls they claim
to be.  Nothing here needs torch, and nothing here measures speed (timings
are only formatted, never judged).
"""

import io
import json
import math
import os
import subprocess
import sys
from math import prod

import numpy as np
import pytest

import pyconv
from pyconv import _registry
from pyconv import __main__ as entry
from pyconv._cli import _output, bench, check, info, main, overview
from pyconv._cli.check import make_cases, run_check
from pyconv._reference import ReferenceBackend

ENV = dict(os.environ, PYCONV_NUM_THREADS="1")


def run_cli(*args, env=ENV, timeout=300):
    return subprocess.run([sys.executable, "-m", "pyconv", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def table_rows(text, first_cells):
    """The first line of ``text`` starting with each of ``first_cells``, split in words."""
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in first_cells:
            rows.setdefault(words[0], words)
    return rows


# --------------------------------------------------------------------------
# the entry point


def test_main_module_is_the_cli():
    assert entry.main is main


def test_help_lists_subcommands():
    res = run_cli("--help")
    assert res.returncode == 0, res.stderr
    for word in ("info", "check", "bench", "exit status", "--cases", "--threads"):
        assert word in res.stdout


@pytest.mark.parametrize("sub", ["info", "check", "bench"])
def test_subcommand_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        main([sub, "--help"])
    assert exc.value.code == 0
    assert f"python -m pyconv {sub}" in capsys.readouterr().out


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
    ["--cases", "0", "check"],
    ["check", "--backend", "nosuch"],
    ["--backend", "nosuch"],
    ["--threads", "0", "info"],
    ["--cases", "2", "bench"],               # an option bench does not take
    ["--seed", "1", "info"],
    ["--quick", "bench"],                    # a bench-only option before bench
])
def test_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_misplaced_option_names_itself(capsys):
    with pytest.raises(SystemExit):
        main(["--cases", "2", "bench"])
    assert "--cases does not apply to the 'bench' subcommand" in capsys.readouterr().err


def test_usage_error_exit_status_of_the_process():
    res = run_cli("bench", "--no-such-option")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "usage:" in res.stderr and "error:" in res.stderr


# --------------------------------------------------------------------------
# options before or after the subcommand (each of these was once ignored)


def test_cases_before_the_subcommand(capsys):
    assert main(["--cases", "2", "check", "--backend", "reference", "--no-progress"]) == 0
    row = table_rows(capsys.readouterr().out, {"reference"})["reference"]
    assert row[1:3] == ["2", "4"]  # 2 cases, 2 identities each


def test_the_later_option_wins(capsys):
    assert main(["--cases", "2", "--backend", "cython,opencl", "check", "--cases", "3",
                 "--backend", "reference", "--no-progress"]) == 0
    rows = table_rows(capsys.readouterr().out, {"reference", "cython", "opencl"})
    assert set(rows) == {"reference"}
    assert rows["reference"][1] == "3"


def test_no_progress_before_the_subcommand(capsys):
    assert main(["--no-progress", "check", "--backend", "reference", "--cases", "1"]) == 0
    assert capsys.readouterr().err == ""
    # and the progress is there without it (so the line above can fail)
    assert main(["check", "--backend", "reference", "--cases", "1"]) == 0
    assert "case 0" in capsys.readouterr().err


def test_threads_before_the_subcommand(tmp_path):
    path = tmp_path / "bench.json"
    res = run_cli("--threads", "1", "bench", "--quick", "--backend", "reference",
                  "--workloads", "conv1d", "--repeat", "1", "--no-progress",
                  "--json", str(path), env=dict(os.environ, PYCONV_NUM_THREADS="2"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(path.read_text())["machine"]["threads"] == 1


def test_closed_pipe_exits_quietly():
    # python -m pyconv | head: the reader goes away before the output is written
    proc = subprocess.Popen([sys.executable, "-m", "pyconv", "--cases", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == _output.EXIT_PIPE == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# --------------------------------------------------------------------------
# the main job: short, a verdict, a small timing table


@pytest.fixture(scope="module")
def main_job():
    """One run of ``python -m pyconv`` with its defaults: (stdout, stderr, exit status)."""
    res = run_cli("--no-progress")
    return res.stdout, res.stderr, res.returncode


def test_main_job_is_a_short_check(main_job):
    out, err, rc = main_job
    assert rc == 0, out + err
    lines = out.splitlines()
    assert len(lines) <= 20, out
    rows = table_rows(out, {r["name"] for r in pyconv.backends()})
    for r in pyconv.backends():
        row = rows[r["name"]]
        if r["available"]:
            assert row[1:3] == ["available", "pass,"], row
        else:
            assert row[1] == "unavailable" and len(row) > 3  # with the reason
    assert "all checks passed" in out
    # the internals live in `info`, not here
    for word in ("tile_bytes", "microkernel", "programs_cached", "workspace", "BLAS"):
        assert word not in out


def test_main_job_times_the_backends(main_job):
    out = main_job[0]
    header = next(line for line in out.splitlines() if line.startswith("time, best of"))
    timed = header.split(")")[-1].split()
    rows = {r["name"]: r for r in info.backend_rows()}
    expect = [n for n, r in rows.items() if r["available"] and not overview.cpu_driver(r)]
    assert timed == expect
    for name in overview.TIMED:
        label = bench.get_workload(name, quick=True).label
        assert any(line.startswith(label) for line in out.splitlines())
    opencl = rows.get("opencl")
    if opencl is not None and overview.cpu_driver(opencl):
        assert "opencl runs on a CPU driver here" in out


class _Wrong(_registry.Backend):
    """The reference backend with one primitive off by a little."""

    name = "wrong"

    def __init__(self, broken=None):
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


def _device(index, used, kind="CPU"):
    return {"name": "Same Device", "platform": "Fake Platform", "type": kind,
            "version": "OpenCL 3.0", "compute_units": 8, "max_work_group_size": 256,
            "local_mem_size": 65536, "global_mem_size": 2**32, "fp64": True,
            "index": index, "id": f"0:{index}", "used": used}


class _FakeOpenCL(_Wrong):
    """A correct stand-in for opencl whose info() reports two identical devices."""

    def __init__(self, kind="CPU", used=1):
        super().__init__()
        self.devices = [_device(0, used == 0, kind), _device(1, used == 1, kind)]

    def info(self):
        used = next(d for d in self.devices if d["used"])
        return {"device": {k: used[k] for k in ("name", "platform", "type")},
                "selected_by": "PYCONV_OPENCL_DEVICE=1",
                "platforms": [{"index": 0, "name": "Fake Platform", "version": "3.0",
                               "devices": self.devices}]}


def test_main_job_on_an_opencl_cpu_driver(monkeypatch, capsys):
    monkeypatch.setitem(_registry._loaded, "opencl", _FakeOpenCL("CPU"))
    assert main(["--cases", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert table_rows(out, {"opencl"})["opencl"][1:5] == ["available", "pass,", "2",
                                                          "random"]
    header = next(line for line in out.splitlines() if line.startswith("time, best of"))
    assert "opencl" not in header and "reference" in header
    assert "--backend opencl" in out
    # named explicitly, it gets every case and a timing
    assert main(["--cases", "3", "--no-progress", "--backend", "opencl"]) == 0
    out = capsys.readouterr().out
    assert table_rows(out, {"opencl"})["opencl"][1:4] == ["available", "pass,", "3"]
    header = next(line for line in out.splitlines() if line.startswith("time, best of"))
    assert header.split(")")[-1].split() == ["opencl"]


def test_main_job_on_an_opencl_gpu(monkeypatch, capsys):
    monkeypatch.setitem(_registry._loaded, "opencl", _FakeOpenCL("GPU"))
    assert main(["--cases", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert table_rows(out, {"opencl"})["opencl"][1:4] == ["available", "pass,", "3"]
    header = next(line for line in out.splitlines() if line.startswith("time, best of"))
    assert "opencl" in header


# --------------------------------------------------------------------------
# info


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
    devices = out.split("\nOpenCL platforms and devices\n", 1)[1].split("\n\n", 1)[0]
    opencl = next(r for r in pyconv.backends() if r["name"] == "opencl")
    if opencl["available"]:
        assert devices.count("<- used by pyconv") == 1
    else:
        assert opencl["reason"] in devices


def test_info_marks_the_device_in_use_not_its_twin(monkeypatch, capsys):
    # two identical devices: only the one the backend uses is marked
    monkeypatch.setitem(_registry._loaded, "opencl", _FakeOpenCL("GPU", used=1))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    devices = [line for line in out.splitlines() if "Same Device" in line
               and line.strip().startswith("device ")]
    assert len(devices) == 2
    assert "used by pyconv" not in devices[0]
    assert "used by pyconv (rule: PYCONV_OPENCL_DEVICE=1)" in devices[1]


def test_info_says_why_opencl_is_unavailable(monkeypatch, capsys):
    monkeypatch.delitem(_registry._loaded, "opencl", raising=False)
    monkeypatch.setitem(_registry._failed, "opencl", "ImportError: simulated")
    assert main(["info"]) == 0
    devices = capsys.readouterr().out.split("\nOpenCL platforms and devices\n", 1)[1]
    assert "the opencl backend is unavailable: ImportError: simulated" in devices


def test_note_when_the_source_tree_hides_the_installed_package(tmp_path, monkeypatch):
    # pip install . then python -m pyconv in the source folder: the source tree
    # (no compiled extension) is imported, the installed copy is hidden
    other = tmp_path / "site-packages"
    (other / "pyconv").mkdir(parents=True)
    (other / "pyconv" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(other))
    assert info.shadowed_install() == str(other / "pyconv")
    rows = [{"name": "cython", "available": False, "reason": "ImportError: not built"}]
    note = info.shadow_note(rows)
    assert "source tree" in note and str(other / "pyconv") in note
    assert info.shadow_note([dict(rows[0], available=True)]) is None


# --------------------------------------------------------------------------
# check


def test_check_reference_passes():
    res = run_cli("check", "--backend", "reference", "--cases", "3", "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    row = table_rows(res.stdout, {"reference"})["reference"]
    # cases checks passed failed skipped ...: 3 cases x 2 identities, all passing
    assert row[1:6] == ["3", "6", "6", "0", "0"]
    assert row[-1] == "pass"


@pytest.mark.parametrize("broken", ["conv", "conv_transpose", "conv_weight", "mutates"])
def test_check_detects_a_wrong_backend(monkeypatch, broken, capsys):
    # stand a wrong backend in for "cython" (whatever its real state)
    monkeypatch.setitem(_registry._loaded, "cython", _Wrong(broken))
    report = run_check(["cython"], n_cases=3)
    assert not report.ok
    assert report.counts("cython")["failed"] > 0
    if broken == "mutates":
        assert any(o.label == "inputs untouched" for o in report.failures())
    assert main(["check", "--backend", "cython", "--cases", "3", "--no-progress"]) == 1
    assert "FAIL" in capsys.readouterr().out
    # the main job fails too, and says so
    assert main(["--backend", "cython", "--cases", "3", "--no-progress"]) == 1
    assert "some checks FAILED" in capsys.readouterr().out


def test_check_passes_a_correct_backend(monkeypatch, capsys):
    monkeypatch.setitem(_registry._loaded, "cython", _Wrong(None))
    report = run_check(["cython"], n_cases=3)
    assert report.ok, [o.detail for o in report.failures()]
    c = report.counts("cython")
    # 6 public functions compared + 2 identities per case
    assert c["checks"] == 3 * 8 and c["passed"] == 3 * 8 and c["cases"] == 3
    assert main(["check", "--backend", "cython", "--cases", "3", "--no-progress"]) == 0


class _NoFloat64(_Wrong):
    """A correct backend that declines float64 (like an OpenCL device without fp64)."""

    def supports(self, op, spec, dtype):
        return "no cl_khr_fp64 on this device" if dtype == np.float64 else None


def test_check_counts_declined_calls_as_skipped(monkeypatch, capsys):
    monkeypatch.setitem(_registry._loaded, "cython", _NoFloat64(None))
    report = run_check(["cython"], n_cases=6)   # cases 0, 2, 4 float64; 1, 3, 5 float32
    c = report.counts("cython")
    assert report.ok and c["failed"] == 0
    assert c["skipped"] == 3 * 8 and c["passed"] == 3 * 8
    assert main(["check", "--backend", "cython", "--cases", "6", "--no-progress",
                 "-v"]) == 0
    assert "no cl_khr_fp64" in capsys.readouterr().out


def test_check_max_cases(monkeypatch):
    monkeypatch.setitem(_registry._loaded, "cython", _Wrong(None))
    report = run_check(["reference", "cython"], n_cases=4, max_cases={"cython": 2})
    assert report.counts("reference")["cases"] == 4
    assert report.counts("cython")["cases"] == 2
    assert {o.case for o in report.outcomes if o.backend == "cython"} == {0, 1}


def test_check_unavailable_backend_fails(monkeypatch, capsys):
    monkeypatch.delitem(_registry._loaded, "opencl", raising=False)
    monkeypatch.setitem(_registry._failed, "opencl", "ImportError: simulated")
    assert main(["check", "--backend", "opencl", "--cases", "1", "--no-progress"]) == 1
    assert "simulated" in capsys.readouterr().out


def test_check_cases_are_valid_geometries():
    cases = make_cases(30, seed=3)
    for case in cases:
        # the front layer accepts both calls, and neither output is empty
        conv, tconv = case.conv_spec(), case.transposed_spec()
        assert min(conv.out_size) >= 1 and min(tconv.out_size) >= 1
        assert tconv.in_size >= conv.out_size
        assert case.in_channels % case.groups == 0
        assert case.out_channels % case.groups == 0
        for op, s, d in zip(case.output_padding, case.stride, case.dilation):
            assert 0 <= op < max(s, d)
    assert {c.nd for c in cases[:3]} == {1, 2, 3}
    # any two consecutive cases cover both dtypes (what a CPU driver is checked on)
    assert {c.dtype for c in cases[:2]} == {np.dtype(np.float32), np.dtype(np.float64)}


def test_check_case_grows_a_transposed_input_whose_output_would_be_empty():
    # conv1d of 1 sample, K2 s2 p1 -> 1 sample; transposed back, that 1 sample
    # gives (1 - 1)*2 - 2 + 1 + 0 + 1 = 0 samples: the input must grow to 2
    case = check.Case(0, 1, np.dtype(np.float64), 1, 2, 2, 1, (1,), (2,), (2,), (1,), (1,),
                      (0,), False, 0)
    assert case.conv_spec().out_size == (1,)
    assert case.transposed_spec().in_size == (2,)
    assert case.transposed_spec().out_size == (2,)


# --------------------------------------------------------------------------
# bench


def _neighbour_children():
    """Pids of this process's children running the bench's neighbour loop."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (OSError, IndexError, ValueError):   # gone meanwhile
            continue
        if ppid == os.getpid() and bench._NEIGHBOUR.encode() in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_busy_neighbours_started_and_killed():
    """The busy workloads' neighbours run during the block and are gone after, even on error."""
    assert _neighbour_children() == []
    with pytest.raises(RuntimeError, match="inside"):
        with bench.busy_neighbours(2):
            assert len(_neighbour_children()) == 2
            raise RuntimeError("inside")
    assert _neighbour_children() == []
    busy = bench.get_workload("small_call_busy")
    assert busy.busy and busy.calls > 1 and not bench.get_workload("small_call").busy
    assert busy.spec == bench.get_workload("small_call").spec
    with pytest.raises(ValueError, match="calls"):
        busy.replace(calls=0)


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
    assert set(data) == {"machine", "sgemm_gflops", "fma_peak_gflops", "rows"}
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
    peak = data["fma_peak_gflops"]  # measured with the cython extension's FMA loop
    cython_built = {b["name"]: b for b in pyconv.backends()}["cython"]["available"]
    assert (isinstance(peak, float) and peak > 0) if cython_built else peak is None
    assert len(data["rows"]) == len(bench.QUICK_WORKLOADS)
    labels = {w.label for w in bench.QUICK_WORKLOADS}
    for row in data["rows"]:
        assert set(row) == {"workload", "op", "backend", "path", "time_s", "torch_time_s",
                            "scipy_time_s", "speedup", "gflops", "sgemm_fraction",
                            "peak_fraction"}
        assert row["backend"] == "reference"
        assert row["workload"] in labels
        assert row["time_s"] > 0
        assert row["torch_time_s"] is None and row["speedup"] is None
        wl = next(w for w in bench.QUICK_WORKLOADS if w.label == row["workload"])
        # SciPy is timed where it has the same call: single-channel forward convs
        assert (row["scipy_time_s"] is not None) == (bench.scipy_callable(wl) is not None)
        assert row["op"] == wl.op
        assert math.isclose(row["gflops"], wl.flops / row["time_s"] / 1e9, rel_tol=1e-9)
        assert math.isclose(row["sgemm_fraction"], row["gflops"] / data["sgemm_gflops"],
                            rel_tol=1e-9)
        if peak is not None:
            assert math.isclose(row["peak_fraction"], row["gflops"] / peak, rel_tol=1e-9)
    bench.validate_result(data)


def test_cli_never_imports_torch():
    code = ("import sys; from pyconv.__main__ import main; "
            "rc = main(['--cases', '1', '--no-progress']); "
            "rc += main(['bench', '--quick', '--backend', 'reference', '--repeat', '1', "
            "'--no-progress', '--workloads', 'conv1d']); "
            "assert rc == 0, rc; "
            "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, heavy")
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
    rows = table_rows(res.stdout, {"reference", "cython", "opencl"})
    assert rows["opencl"][1] == "unavailable" and "pyopencl" in " ".join(rows["opencl"])
    assert rows["reference"][1:3] == ["available", "pass,"]
    header = next(line for line in res.stdout.splitlines() if line.startswith("time, best"))
    assert "reference" in header and "opencl" not in header


def test_info_and_check_without_pyopencl():
    res = run_without_pyopencl("info")
    assert res.returncode == 0, res.stdout + res.stderr
    devices = res.stdout.split("\nOpenCL platforms and devices\n", 1)[1]
    assert "the opencl backend is unavailable" in devices and "pyopencl" in devices
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
    bench.validate_result(data)
    assert data["machine"]["torch"] is None
    assert [r["op"] for r in data["rows"]] == ["conv1d", "conv2d"]
    assert all(r["speedup"] is None for r in data["rows"])


# --------------------------------------------------------------------------
# the workloads: their geometry is what the public calls do


@pytest.mark.parametrize("name", bench.WORKLOAD_NAMES)
def test_quick_workload_is_the_public_call(name):
    wl = bench.get_workload(name, quick=True)
    arrays = wl.make_inputs()
    out = bench.pyconv_callable(wl, "reference", arrays)()
    assert out.shape == wl.result_shape and out.dtype == np.float32
    # 2 x multiply-adds, counted from the arrays of the call: every element of a
    # convolution's output y (of a transposed convolution's input x) meets one
    # weight slice, weight.shape[1:]; a gradient does its layer's work
    if wl.kind == "forward":
        (x, w, _), y = arrays, out
    elif wl.kind == "input":   # grad_output has the layer's output shape (checked by
        (w, y), x = arrays, out  # the call)
    else:
        (x, y), w = arrays, out
    macs = (x.size if wl.transposed else y.size) * prod(w.shape[1:])
    assert wl.flops == 2 * macs


def _docs_out_size(wl):
    """Output size per spatial dim, from the formulas of docs/semantics.rst."""
    kw = wl.kwargs
    nd = wl.nd

    def per_dim(v, default):
        v = kw.get(v, default)
        return (v,) * nd if isinstance(v, int) else tuple(v)

    size, kernel = wl.x_shape[2:], wl.w_shape[2:]
    s, d = per_dim("stride", 1), per_dim("dilation", 1)
    if wl.transposed:
        p, op = per_dim("padding", 0), per_dim("output_padding", 0)
        return tuple((n - 1) * si - 2 * pi + di * (k - 1) + oi + 1
                     for n, k, si, pi, di, oi in zip(size, kernel, s, p, d, op))
    if kw.get("padding") == "same":
        return tuple(size)
    p = per_dim("padding", 0)
    return tuple((n + 2 * pi - di * (k - 1) - 1) // si + 1
                 for n, k, si, pi, di in zip(size, kernel, s, p, d))


@pytest.mark.parametrize("wl", bench.WORKLOADS + bench.QUICK_WORKLOADS,
                         ids=lambda w: repr(w))
def test_workload_geometry_follows_the_documented_formulas(wl):
    n, c_in = wl.x_shape[:2]
    groups = wl.kwargs.get("groups", 1)
    c_out = wl.w_shape[1] * groups if wl.transposed else wl.w_shape[0]
    out = _docs_out_size(wl)
    assert wl.output_shape == (n, c_out) + out
    # multiply-adds: each (image) position of the non-transposed side times a
    # weight slice of C/g channels by the kernel
    image, chans, per = ((wl.x_shape[2:], c_in, c_out // groups) if wl.transposed
                         else (out, c_out, c_in // groups))
    assert wl.flops == 2 * n * chans * prod(image) * per * prod(wl.w_shape[2:])


def test_workloads_are_validated_by_the_front_layer():
    with pytest.raises(ValueError, match=r"conv2d\(\).*channels"):
        bench.Workload("bad", "conv2d", (1, 3, 8, 8), (4, 2, 3, 3))
    with pytest.raises(ValueError, match="padding='same'"):
        bench.Workload("bad", "conv1d", (1, 2, 8), (2, 2, 3), stride=2, padding="same")
    with pytest.raises(TypeError, match="output_padding"):
        bench.Workload("bad", "conv1d", (1, 2, 8), (2, 2, 3), output_padding=1)
    with pytest.raises(ValueError, match="unknown op"):
        bench.Workload("bad", "conv4d", (1, 2, 8), (2, 2, 3))


def test_gradient_workloads_of_any_public_function():
    # an input gradient and a transposed op's weight gradient: no table entry needed
    for op, x_shape, w_shape, kw in (("conv2d_input", (2, 4, 9, 9), (6, 4, 3, 3),
                                      dict(stride=2, padding=1)),
                                     ("conv_transpose1d_weight", (2, 4, 7), (4, 3, 3),
                                      dict(stride=2, output_padding=1))):
        wl = bench.Workload("g", op, x_shape, w_shape, **kw)
        out = bench.pyconv_callable(wl, "reference")()
        assert out.shape == (x_shape if op.endswith("_input") else w_shape)
        assert wl.result_shape == out.shape


def test_scipy_equivalent_is_the_same_call():
    """scipy.signal.correlate image by image gives pyconv's result; only
    single-channel forward workloads have one."""
    fir = bench.get_workload("fir", quick=True)
    for wl in (fir, fir.replace(padding=32), fir.replace(padding=5)):  # valid, full, padded
        inputs = wl.make_inputs()
        got = np.stack(bench.scipy_callable(wl, inputs)())[:, None]
        want = bench.pyconv_callable(wl, "reference", inputs)()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    for name in ("conv1d", "conv1d_long", "conv1d_long_input", "conv1d_depthwise"):
        assert bench.scipy_callable(bench.get_workload(name, quick=True)) is None


def test_cython_paths_names_the_planned_path():
    """The bench's path column is the plan the backend made for the call."""
    pytest.importorskip("pyconv._cy")
    from pyconv import _cy
    if not pyconv.backends()[1]["available"]:
        pytest.skip("the cython extension is not built")
    for name, op in (("conv2d", "conv"), ("conv2d_weight", "conv_weight")):
        wl = bench.get_workload(name, quick=True)
        assert bench.cython_paths(wl) == _cy.plan(op, wl.spec, np.float32).path
    wl = bench.get_workload("conv2d", quick=True)
    for path in ("direct", "gemm", "implicit"):
        with _cy.force_paths(path):
            assert bench.cython_paths(wl) == path
    assert bench.cython_paths(bench.get_workload("conv_transpose1d", quick=True)) \
        in _cy.paths.BY_NAME


def test_format_table_and_geomean():
    rows = []
    for name, t, tt in [("a", 1.0, 2.0), ("b", 2.0, 1.0), ("c", 0.5, 2.0)]:
        rows.append({"workload": name, "op": "conv1d", "backend": "cython",
                     "path": "implicit" if name == "a" else None, "time_s": t,
                     "torch_time_s": tt, "scipy_time_s": 4.0 if name == "a" else None,
                     "speedup": tt / t, "gflops": 1.0 / t,
                     "sgemm_fraction": 0.01 / t, "peak_fraction": 0.005 / t})
    result = {"machine": bench.machine_info(2, "2.13.0"), "sgemm_gflops": 100.0,
              "fma_peak_gflops": 200.0, "rows": rows}
    bench.validate_result(result)
    s = bench.summary(result)["cython"]
    assert math.isclose(s["geomean"], (2.0 * 0.5 * 4.0) ** (1 / 3))
    assert s["worst"] == 0.5 and s["count"] == 3
    table = bench.format_table(result)
    assert "speedup" in table and "4.00x" in table and "geometric-mean" in table
    assert "% peak" in table and "FMA peak: 200.0 GFLOP/s" in table and "50% of it" in table
    assert "vs scipy" in table and "4.00 s" in table
    assert "path" in table and "implicit" in table
    bad = dict(result, rows=[dict(rows[0], extra=1)])
    with pytest.raises(ValueError):
        bench.validate_result(bad)


# --------------------------------------------------------------------------
# the output helpers


def test_table_aligns_columns():
    text = _output.table(["name", "n", "time"], [["a", "1", "2 ms"], ["bbbb", "10", "-"]])
    assert text.splitlines() == ["name   n  time",
                                 "----  --  ----",
                                 "a      1  2 ms",
                                 "bbbb  10     -"]
    assert _output.table(["a", "b"], [["x", "y"]], left=2, rule=False) == "a  b\nx  y"


def test_progress_off_a_terminal_and_disabled():
    stream = io.StringIO()
    bar = _output.Progress(2, stream=stream)
    bar.step("first")
    bar.advance()
    bar.step("second")
    bar.advance()
    bar.close()
    assert stream.getvalue() == "[1/2] first\n[2/2] second\n"
    quiet = io.StringIO()
    bar = _output.Progress(2, enabled=False, stream=quiet)
    bar.step("first")
    bar.close()
    assert quiet.getvalue() == ""
