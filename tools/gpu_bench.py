"""The ``opencl`` backend on a GPU against PyTorch on the same GPU.

A developer tool, not part of the package: run it on a machine with a GPU,
an OpenCL driver for it and a CUDA build of PyTorch::

    python tools/gpu_bench.py --json gpu.json [--workloads conv2d,conv1d]

For each workload of ``python -m pyconv bench`` (full sizes, float32) it
times, with the device synchronised around every timed call:

* ``ocl dev``: pyconv's ``opencl`` backend on device arrays
  (:class:`pyopencl.array.Array` in, device array out, ``queue.finish()``);
* ``ocl kernels``: the device's time in the kernels of that call (event
  profiling, :func:`kernel_seconds`) and how many it launches: the rest of
  ``ocl dev`` is the host's share;
* ``ocl dev, no pool``: ``ocl dev`` with every buffer a new driver
  allocation (``pyconv._opencl._backend.USE_POOL = False``);
* ``ocl np``: the same call from NumPy arrays to a NumPy array (uploads and
  the download included), the way most pyconv users call it;
* ``torch fp32``: PyTorch on CUDA tensors with TF32 off (cuDNN and cuBLAS),
  which computes in float32 as pyconv does;
* ``torch tf32``: PyTorch's default on CUDA (TF32 convolutions: a 10-bit
  mantissa in the products, so faster and less accurate);
* ``torch np``: PyTorch from NumPy to NumPy (``torch.from_numpy(...).cuda()``
  ... ``.cpu().numpy()``), TF32 off.

Each time is the median of repeated calls after a warm-up (the first call
builds the OpenCL program or picks the cuDNN algorithm).  It also checks
every pyconv result against a float64 result computed on the CPU and
prints the worst error relative to the output's largest magnitude, so a
fast wrong kernel cannot hide in the table.  Without CUDA the torch
columns run on the CPU and say so.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyconv  # noqa: E402
from pyconv import _registry  # noqa: E402
from pyconv._cli import bench  # noqa: E402


def _median_time(fn, sync, budget: float, min_calls: int = 3, max_calls: int = 50) -> float:
    """Median seconds of ``fn()`` followed by ``sync()``, after one warm-up call."""
    sync()
    fn()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls
                                      or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kernel_seconds(be, wl, arrays, calls: int = 5):
    """(seconds the device spent in the kernels of one call, kernels per call).

    The call runs on device arrays bound to a queue with profiling enabled
    (the backend enqueues on its operands' queue); every launch is recorded
    and its event's start-to-end time summed.  The difference between this
    and the call's wall time is the host's share: Python, the driver's
    enqueue, allocation and the wait.
    """
    import pyopencl as cl
    import pyopencl.array as cl_array
    from pyconv._opencl import _backend, _programs

    queue = cl.CommandQueue(be.context,
                            properties=cl.command_queue_properties.PROFILING_ENABLE)
    dev = [cl_array.to_device(queue, a) if isinstance(a, np.ndarray) else a for a in arrays]
    call = bench.pyconv_callable(wl, "opencl", dev)
    events = []
    real = _programs.launch

    def recording(*args, **kwargs):
        event = real(*args, **kwargs)
        events.append(event)
        return event

    call()
    queue.finish()
    _programs.launch = _backend.launch = recording
    try:
        for _ in range(calls):
            call()
        queue.finish()
    finally:
        _programs.launch = _backend.launch = real
    busy = sum(e.profile.end - e.profile.start for e in events) * 1e-9
    return busy / calls, len(events) / calls


def host_costs(be):
    """Microseconds of the pieces of a tiny call on the device (median of many)."""
    import pyopencl.array as cl_array

    sync = be.queue.finish
    x = be.to_device(np.ones((1, 1, 8), np.float32))
    w = be.to_device(np.ones((1, 1, 1), np.float32))
    knl = be.programs.kernel(be.context, "util", "sum_splits", (("PRECISION", 32),))
    out = cl_array.empty(be.queue, (64,), np.float32)
    from pyconv._opencl._programs import launch

    def one_launch():
        launch(be.queue, knl, (64,), (64,), (out.base_data, out.base_data, np.int32(0),
                                             np.int32(1)))
    import pyopencl as cl

    def raw(n, set_args):
        def run():
            for _ in range(n):
                if set_args:
                    knl.set_args(out.base_data, out.base_data, np.int32(0), np.int32(1))
                cl.enqueue_nd_range_kernel(be.queue, knl, (64,), (64,))
        return run
    knl.set_args(out.base_data, out.base_data, np.int32(0), np.int32(1))
    pieces = {
        "8 empty launches (pyconv's launch) + finish": lambda: [one_launch() for _ in range(8)],
        "8 raw enqueues + finish": raw(8, False),
        "8 (set_args + raw enqueue) + finish": raw(8, True),
        "queue.device": lambda: be.queue.device,
        "tiny conv1d, device arrays, + finish": lambda: pyconv.conv1d(x, w, backend="opencl"),
        "an empty kernel launch + finish": one_launch,
        "finish alone": lambda: None,
        "pyopencl Array of 8 floats + finish": lambda: cl_array.empty(be.queue, (1, 1, 8),
                                                                      np.float32),
    }
    costs = {name: _median_time(fn, sync, 0.3, max_calls=3000) * 1e6
             for name, fn in pieces.items()}
    # the device's own gap between back-to-back kernels of an in-order queue
    queue = cl.CommandQueue(be.context,
                            properties=cl.command_queue_properties.PROFILING_ENABLE)
    gaps = []
    for _ in range(20):
        events = [cl.enqueue_nd_range_kernel(queue, knl, (64,), (64,)) for _ in range(8)]
        queue.finish()
        busy = sum(e.profile.end - e.profile.start for e in events)
        gaps.append((events[-1].profile.end - events[0].profile.start - busy) / 7e3)
    costs["device gap between 2 queued kernels"] = sorted(gaps)[len(gaps) // 2]
    return costs


def workloads_named(names: str):
    """The bench workloads named in ``names`` (comma-separated), or every
    full-size one that is timed alone (not the busy-neighbour or repeated-call rows)."""
    chosen = [n for n in names.split(",") if n]
    if chosen:
        return [bench.get_workload(n) for n in chosen]
    return [full for full, _ in bench._PAIRS if not full.busy and full.calls == 1]


def _torch_setup():
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    return torch, device, name, sync


def _torch_fn(torch, wl, arrays, device):
    module = torch.nn.functional if wl.kind == "forward" else torch.nn.grad
    fn = getattr(module, wl.op, None)
    if fn is None or (wl.kind != "forward" and isinstance(wl.kwargs.get("padding"), str)):
        return None
    args = [torch.from_numpy(np.ascontiguousarray(a)).to(device) if isinstance(a, np.ndarray)
            else a for a in wl.call_args(arrays)]

    def run():
        with torch.no_grad():
            return fn(*args, **wl.kwargs)

    def from_numpy():
        moved = [torch.from_numpy(a).to(device) if isinstance(a, np.ndarray) else a
                 for a in wl.call_args(arrays)]
        with torch.no_grad():
            return fn(*moved, **wl.kwargs).cpu().numpy()
    return run, from_numpy


def _set_tf32(torch, on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def _oracle(torch, wl, arrays):
    """The call in float64 on the CPU (PyTorch), as a NumPy array."""
    module = torch.nn.functional if wl.kind == "forward" else torch.nn.grad
    fn = getattr(module, wl.op, None)
    if fn is None or (wl.kind != "forward" and isinstance(wl.kwargs.get("padding"), str)):
        # pyconv's own float64 cython path (the gradient of a transposed op,
        # or a string padding that torch.nn.grad does not take); None where
        # only the slow reference backend could do it
        if not _available("cython"):
            return None
        call = bench.pyconv_callable(wl, "cython", [a.astype(np.float64) for a in arrays])
        return np.asarray(call())
    args = [torch.from_numpy(a.astype(np.float64)) if isinstance(a, np.ndarray) else a
            for a in wl.call_args(arrays)]
    with torch.no_grad():
        return fn(*args, **wl.kwargs).numpy()


def _available(name: str) -> bool:
    return any(row.name == name and row.available for row in pyconv.backends())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="", help="comma-separated names (default: all)")
    parser.add_argument("--budget", type=float, default=0.4,
                        help="seconds of timed calls per contender and workload")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    torch, device, torch_device, sync_torch = _torch_setup()
    be = _registry.load_backend("opencl")
    sync_ocl = be.queue.finish
    info = {
        "opencl_device": be.device.name.strip(),
        "opencl_platform": be.device.platform.name.strip(),
        "opencl_driver": be.device.driver_version.strip(),
        "selected_by": be.selected_by,
        "torch": torch.__version__,
        "torch_device": torch_device,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
    }
    info["host_us"] = host_costs(be)
    print(json.dumps(info), flush=True)

    rows = []
    for wl in workloads_named(args.workloads):
        arrays = [np.ascontiguousarray(a) for a in wl.make_inputs()]
        row = {"name": wl.name, "label": wl.label}
        try:
            dev = [be.to_device(a) if isinstance(a, np.ndarray) else a for a in arrays]
            on_device = bench.pyconv_callable(wl, "opencl", dev)
            from_host = bench.pyconv_callable(wl, "opencl", arrays)
            result = from_host()
            expected = _oracle(torch, wl, arrays)
            if expected is not None:
                scale = float(np.max(np.abs(expected))) or 1.0
                row["ocl_rel_err"] = float(np.max(np.abs(result - expected))) / scale
            row["ocl_dev"] = _median_time(on_device, sync_ocl, args.budget)
            row["ocl_np"] = _median_time(from_host, sync_ocl, args.budget)
            row["ocl_kernels"], row["launches"] = kernel_seconds(be, wl, arrays)
            from pyconv._opencl import _backend
            _backend.USE_POOL = False        # every buffer a new driver allocation
            try:
                row["ocl_dev_nopool"] = _median_time(on_device, sync_ocl, args.budget)
            finally:
                _backend.USE_POOL = True
        except Exception as exc:  # a failure is a row of the report, not the end of it
            row["ocl_error"] = f"{type(exc).__name__}: {exc}"
        fns = _torch_fn(torch, wl, arrays, device)
        if fns is not None:
            run, from_numpy = fns
            try:
                _set_tf32(torch, False)
                got = from_numpy()
                expected = _oracle(torch, wl, arrays)
                scale = float(np.max(np.abs(expected))) or 1.0
                row["torch_rel_err"] = float(np.max(np.abs(got - expected))) / scale
                row["torch_fp32"] = _median_time(run, sync_torch, args.budget)
                row["torch_np"] = _median_time(from_numpy, sync_torch, args.budget)
                if device.type == "cuda":
                    _set_tf32(torch, True)
                    row["torch_tf32"] = _median_time(run, sync_torch, args.budget)
                    _set_tf32(torch, False)
            except Exception as exc:
                row["torch_error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(table(info, rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    return 0


def _fmt(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(info, rows) -> str:
    """A Markdown table of the rows, with the ratio torch fp32 / ocl on device arrays."""
    lines = [f"OpenCL: {info['opencl_device']} ({info['opencl_platform']}, driver "
             f"{info['opencl_driver']}); torch {info['torch']} on {info['torch_device']}",
             "",
             "| workload | ocl dev | ocl kernels (launches) | ocl dev, no pool | ocl np | "
             "torch fp32 | torch tf32 | torch np | torch fp32 / ocl dev | ocl err | torch err |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for r in rows:
        ratio = (r["torch_fp32"] / r["ocl_dev"]) if "torch_fp32" in r and "ocl_dev" in r else None
        if ratio:
            ratios.append(ratio)
        err = r.get("ocl_error")
        lines.append(
            f"| {r['label']} | {_fmt(r.get('ocl_dev')) if not err else 'error'} | "
            f"{_fmt(r.get('ocl_kernels'))} ({r.get('launches', 0):g}) | "
            f"{_fmt(r.get('ocl_dev_nopool'))} | {_fmt(r.get('ocl_np'))} | {_fmt(r.get('torch_fp32'))} | "
            f"{_fmt(r.get('torch_tf32'))} | {_fmt(r.get('torch_np'))} | "
            f"{f'{ratio:.2f}×' if ratio else '-'} | {r.get('ocl_rel_err', float('nan')):.1e} | "
            f"{r.get('torch_rel_err', float('nan')):.1e} |")
    if ratios:
        lines.append("")
        lines.append(f"geomean torch fp32 / ocl dev: {bench.geomean(ratios):.2f}×, "
                     f"min {min(ratios):.2f}×, max {max(ratios):.2f}× over {len(ratios)} rows")
    errors = [f"{r['name']}: {r['ocl_error']}" for r in rows if "ocl_error" in r]
    lines.extend(errors)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
