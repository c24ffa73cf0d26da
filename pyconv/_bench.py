"""Benchmark workloads and the timing runner behind ``python -m pyconv bench``.

The workloads are defined once, here, and used by the command line
(``python -m pyconv bench``) and by the asv suite in ``asv_benchmarks/``.
Every workload is float32 and runs through the public API
(:mod:`pyconv` functions and :mod:`pyconv.grad`), so what is timed is what a
user calls, front layer included.

Each workload has a full size (the one whose numbers are quoted) and a
``quick`` size, small enough for the pure-Python reference backend; the
reference backend is never run at full size.

The JSON written by ``python -m pyconv bench --json PATH`` (and read by the
docs' performance page) has this schema::

    {"machine": {"cpu": str, "cores": int, "threads": int, "python": str,
                 "numpy": str, "torch": str | null, "date": iso str},
     "sgemm_gflops": float,
     "rows": [{"workload": str, "op": str, "backend": str, "time_s": float,
               "torch_time_s": float | null, "speedup": float | null,
               "gflops": float, "sgemm_fraction": float}]}

``speedup`` is ``torch_time_s / time_s`` (above 1: pyconv is faster),
``gflops`` is ``2 * multiply-adds / time_s / 1e9`` and ``sgemm_fraction`` is
``gflops`` divided by NumPy's float32 matrix-product throughput measured in
the same run (the machine's practical ceiling for dense work).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import sys
import time
from math import prod
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "Workload",
    "WORKLOADS",
    "get_workload",
    "best_of",
    "interleaved_best_of",
    "sgemm_callable",
    "measure_sgemm",
    "pyconv_callable",
    "torch_callable",
    "run_benchmarks",
    "format_table",
    "machine_info",
    "validate_result",
]

#: keys of one result row, in order, with their JSON types
ROW_SCHEMA = {
    "workload": (str,),
    "op": (str,),
    "backend": (str,),
    "time_s": (float,),
    "torch_time_s": (float, type(None)),
    "speedup": (float, type(None)),
    "gflops": (float,),
    "sgemm_fraction": (float,),
}
MACHINE_SCHEMA = {
    "cpu": (str,),
    "cores": (int,),
    "threads": (int,),
    "python": (str,),
    "numpy": (str,),
    "torch": (str, type(None)),
    "date": (str,),
}


def _tuple(v, nd):
    if isinstance(v, int):
        return (v,) * nd
    return tuple(v)


def conv_out_size(size, kernel, stride, padding, dilation):
    """Spatial output size of a convolution (``padding`` may be ``'same'``)."""
    nd = len(size)
    if padding == "same":
        return tuple(size)
    if padding == "valid":
        padding = 0
    k, s, p, d = (_tuple(v, nd) for v in (kernel, stride, padding, dilation))
    return tuple((n + 2 * pi - di * (ki - 1) - 1) // si + 1
                 for n, ki, si, pi, di in zip(size, k, s, p, d))


def conv_transpose_out_size(size, kernel, stride, padding, output_padding, dilation):
    """Spatial output size of a transposed convolution."""
    nd = len(size)
    k, s, p, op, d = (_tuple(v, nd) for v in (kernel, stride, padding, output_padding,
                                             dilation))
    return tuple((n - 1) * si - 2 * pi + di * (ki - 1) + opi + 1
                 for n, ki, si, pi, opi, di in zip(size, k, s, p, op, d))


class Workload:
    """One benchmark problem: an op, its shapes and its arguments.

    Parameters
    ----------
    name : str
        Short identifier (asv parameter, ``--workloads`` filter).
    op : str
        ``conv1d`` ... ``conv3d``, ``conv_transpose1d`` ... ``conv_transpose3d``,
        or ``conv1d_weight`` / ``conv2d_weight`` / ``conv3d_weight`` (the
        weight gradient, :func:`pyconv.grad.conv1d_weight` ...).
    batch, in_channels, out_channels : int
    size : tuple of int
        Spatial size of the op's input.
    kernel : tuple of int
    stride, padding, dilation, groups, output_padding
        As in the public API (``output_padding`` only for transposed ops).
    dense : bool
        Whether the workload is dense GEMM-shaped work, for which the
        sgemm fraction is a meaningful target.
    tag : str, optional
        A word put before the description in :attr:`label` ("depthwise").
    """

    def __init__(self, name, op, batch, in_channels, out_channels, size, kernel, *,
                 stride=1, padding=0, dilation=1, groups=1, output_padding=0,
                 dense=False, tag=None):
        self.name = name
        self.op = op
        self.batch = batch
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size = tuple(size)
        self.kernel = tuple(kernel)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.output_padding = output_padding
        self.dense = dense
        self.tag = tag

    # -- geometry --------------------------------------------------------
    @property
    def nd(self) -> int:
        return len(self.size)

    @property
    def transposed(self) -> bool:
        return self.op.startswith("conv_transpose")

    @property
    def is_weight_grad(self) -> bool:
        return self.op.endswith("_weight")

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return (self.batch, self.in_channels) + self.size

    @property
    def weight_shape(self) -> Tuple[int, ...]:
        g = self.groups
        if self.transposed:
            return (self.in_channels, self.out_channels // g) + self.kernel
        return (self.out_channels, self.in_channels // g) + self.kernel

    @property
    def out_size(self) -> Tuple[int, ...]:
        if self.transposed:
            return conv_transpose_out_size(self.size, self.kernel, self.stride, self.padding,
                                           self.output_padding, self.dilation)
        return conv_out_size(self.size, self.kernel, self.stride, self.padding,
                             self.dilation)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        return (self.batch, self.out_channels) + self.out_size

    @property
    def flops(self) -> int:
        """2 x multiply-adds (the same count for conv, its transpose and its weight grad)."""
        per_group_in = (self.in_channels // self.groups if not self.transposed
                        else self.out_channels // self.groups)
        if self.transposed:
            cols, chans = prod(self.size), self.in_channels
        else:
            cols, chans = prod(self.out_size), self.out_channels
        return 2 * self.batch * chans * per_group_in * cols * prod(self.kernel)

    @property
    def label(self) -> str:
        """Human-readable description (the ``workload`` field of the JSON)."""
        return f"{self.tag} {self.describe()}" if self.tag else self.describe()

    def describe(self) -> str:
        nd = self.nd
        size = "x".join(map(str, self.size))
        kern = "x".join(map(str, self.kernel))
        if self.transposed:  # upsampling: show where it goes
            size += "->" + "x".join(map(str, self.out_size))
        parts = [self.op, f"N{self.batch}", f"C{self.in_channels}->{self.out_channels}",
                 ("L" if nd == 1 else "") + size, f"K{kern}"]
        s = _tuple(self.stride, nd)
        if any(v != 1 for v in s):
            parts.append("s" + "x".join(map(str, sorted(set(s)))))
        if self.padding == "same" or self.padding == "valid":
            parts.append(repr(self.padding))
        elif any(v != 0 for v in _tuple(self.padding, nd)):
            parts.append("p" + "x".join(map(str, sorted(set(_tuple(self.padding, nd))))))
        if any(v != 0 for v in _tuple(self.output_padding, nd)) and self.transposed:
            parts.append("op" + "x".join(map(str, sorted(set(_tuple(self.output_padding, nd))))))
        if any(v != 1 for v in _tuple(self.dilation, nd)):
            parts.append("d" + "x".join(map(str, sorted(set(_tuple(self.dilation, nd))))))
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        return " ".join(parts)

    def replace(self, **changes) -> "Workload":
        """A copy with some fields changed (used for the quick sizes)."""
        kw = dict(name=self.name, op=self.op, batch=self.batch,
                  in_channels=self.in_channels, out_channels=self.out_channels,
                  size=self.size, kernel=self.kernel, stride=self.stride,
                  padding=self.padding, dilation=self.dilation, groups=self.groups,
                  output_padding=self.output_padding, dense=self.dense, tag=self.tag)
        kw.update(changes)
        return Workload(**kw)

    def __repr__(self):
        return f"Workload({self.name!r}: {self.describe()})"

    # -- data --------------------------------------------------------------
    def make_inputs(self, seed: int = 0, dtype=np.float32):
        """Arrays for one call: ``(x, w, b)`` or, for a weight gradient, ``(x, gy)``."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape, dtype=np.float32).astype(dtype, copy=False)
        if self.is_weight_grad:
            gy = rng.standard_normal(self.output_shape, dtype=np.float32).astype(dtype,
                                                                                  copy=False)
            return x, gy
        w = rng.standard_normal(self.weight_shape, dtype=np.float32).astype(dtype, copy=False)
        w *= 1.0 / math.sqrt(prod(self.weight_shape[1:]))
        b = rng.standard_normal(self.out_channels, dtype=np.float32).astype(dtype, copy=False)
        return x, w, b

    def kwargs(self) -> Dict[str, object]:
        """Keyword arguments of the call (positional order of the public API)."""
        kw: Dict[str, object] = {"stride": self.stride, "padding": self.padding,
                                 "dilation": self.dilation, "groups": self.groups}
        if self.transposed:
            kw["output_padding"] = self.output_padding
        return kw


def _w(name, op, n, cin, cout, size, k, quick, **kw) -> Tuple[Workload, Workload]:
    full = Workload(name, op, n, cin, cout, size, k, **kw)
    return full, full.replace(**quick)


# The workloads of the Cython issue (all float32).  ``dense`` marks the
# ungrouped forward convolutions (conv1d, conv2d, conv3d, WaveNet), for which
# the issue sets a fraction-of-sgemm target.  ``quick`` overrides keep
# each geometry (stride, padding, groups pattern) at a size the reference
# backend finishes in well under a second.
_PAIRS = [
    _w("conv1d", "conv1d", 32, 64, 128, (1024,), (5,),
       dict(batch=2, in_channels=4, out_channels=8, size=(32,)), dense=True),
    _w("conv1d_s2", "conv1d", 32, 64, 128, (1024,), (5,),
       dict(batch=2, in_channels=4, out_channels=8, size=(32,)), stride=2, padding=2,
       dense=True),
    _w("conv1d_depthwise", "conv1d", 8, 256, 256, (4096,), (9,),
       dict(batch=1, in_channels=8, out_channels=8, groups=8, size=(32,)),
       padding="same", groups=256, tag="depthwise"),
    _w("conv2d", "conv2d", 8, 64, 64, (56, 56), (3, 3),
       dict(batch=1, in_channels=4, out_channels=4, size=(8, 8)), padding=1, dense=True),
    _w("conv_transpose1d", "conv_transpose1d", 32, 128, 64, (512,), (4,),
       dict(batch=2, in_channels=8, out_channels=4, size=(16,)), stride=2, padding=1),
    _w("conv_transpose2d", "conv_transpose2d", 16, 128, 64, (8, 8), (4, 4),
       dict(batch=1, in_channels=8, out_channels=4, size=(4, 4)), stride=2, padding=1),
    _w("conv_transpose3d_k2", "conv_transpose3d", 2, 64, 32, (16, 16, 16), (2, 2, 2),
       dict(batch=1, in_channels=4, out_channels=4, size=(3, 3, 3)), stride=2),
    _w("conv_transpose3d_k3", "conv_transpose3d", 4, 32, 16, (16, 16, 16), (3, 3, 3),
       dict(batch=1, in_channels=4, out_channels=2, size=(3, 3, 3)), stride=2, padding=1,
       output_padding=1),
    _w("conv3d", "conv3d", 2, 32, 32, (32, 32, 32), (3, 3, 3),
       dict(batch=1, in_channels=2, out_channels=2, size=(4, 4, 4)), padding=1, dense=True),
    _w("wavenet", "conv1d", 4, 128, 128, (16000,), (2,),
       dict(batch=1, in_channels=4, out_channels=4, size=(80,), dilation=8), dilation=64,
       dense=True, tag="WaveNet"),
    _w("conv1d_weight", "conv1d_weight", 32, 64, 128, (1024,), (5,),
       dict(batch=2, in_channels=4, out_channels=8, size=(32,)), dense=False),
    _w("conv1d_s2_weight", "conv1d_weight", 32, 64, 128, (1024,), (5,),
       dict(batch=2, in_channels=4, out_channels=8, size=(32,)), stride=2, padding=2,
       dense=False),
    _w("conv2d_weight", "conv2d_weight", 8, 64, 64, (56, 56), (3, 3),
       dict(batch=1, in_channels=4, out_channels=4, size=(8, 8)), padding=1, dense=False),
]

#: The full-size workloads, in table order.
WORKLOADS: List[Workload] = [full for full, _ in _PAIRS]
#: The same workloads at tiny sizes (``--quick``; the only ones the reference runs).
QUICK_WORKLOADS: List[Workload] = [quick for _, quick in _PAIRS]
WORKLOAD_NAMES: List[str] = [w.name for w in WORKLOADS]


def get_workload(name: str, quick: bool = False) -> Workload:
    """The workload called ``name`` (full size, or the quick size)."""
    for full, small in _PAIRS:
        if full.name == name:
            return small if quick else full
    raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOAD_NAMES)}")


# --------------------------------------------------------------------------
# callables

def pyconv_callable(wl: Workload, backend: str, inputs=None) -> Callable[[], object]:
    """A no-argument function running ``wl`` through pyconv's public API on ``backend``."""
    import pyconv
    import pyconv.grad

    arrays = wl.make_inputs() if inputs is None else inputs
    kw = wl.kwargs()
    if wl.is_weight_grad:
        fn = getattr(pyconv.grad, wl.op)
        x, gy = arrays
        wshape = wl.weight_shape

        return lambda: fn(x, wshape, gy, backend=backend, **kw)

    fn = getattr(pyconv, wl.op)
    x, w, b = arrays
    return lambda: fn(x, w, b, backend=backend, **kw)


def torch_callable(wl: Workload, inputs=None) -> Callable[[], object]:
    """The same workload through PyTorch (imported here, only when asked for)."""
    import torch
    import torch.nn.functional as F
    import torch.nn.grad as tgrad

    arrays = wl.make_inputs() if inputs is None else inputs
    kw = wl.kwargs()
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    if wl.is_weight_grad:
        fn = getattr(tgrad, wl.op)
        x, gy = tensors
        padding = kw["padding"]
        if isinstance(padding, str):  # torch.nn.grad wants numbers
            raise ValueError("torch.nn.grad needs a numeric padding")
        wshape = wl.weight_shape

        def run():
            with torch.no_grad():
                return fn(x, wshape, gy, stride=kw["stride"], padding=padding,
                          dilation=kw["dilation"], groups=kw["groups"])
        return run

    fn = getattr(F, wl.op)
    x, w, b = tensors

    def run():
        with torch.no_grad():
            return fn(x, w, b, **kw)
    return run


def best_of(fn: Callable[[], object], repeat: int = 5, warmup: int = 1,
            max_seconds: Optional[float] = None) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` after ``warmup`` calls.

    With ``max_seconds``, stops early (after at least one timed call) once
    that much time was spent timing.
    """
    for _ in range(warmup):
        fn()
    best = math.inf
    spent = 0.0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        if max_seconds is not None and spent >= max_seconds:
            break
    return best


def sgemm_callable(n: int = 2048, threads: Optional[int] = None) -> Callable[[], object]:
    """A no-argument function doing one NumPy float32 ``n x n`` matrix product.

    BLAS is limited to ``threads`` threads during the call (threadpoolctl),
    so the ceiling is measured with the thread count the convolutions get.
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    try:
        from threadpoolctl import ThreadpoolController
        controller = ThreadpoolController()
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return lambda: np.matmul(a, b, out=out)

    def run():
        with controller.limit(limits=threads, user_api="blas"):
            np.matmul(a, b, out=out)
    return run


def measure_sgemm(n: int = 2048, repeat: int = 5, threads: Optional[int] = None) -> float:
    """NumPy float32 ``n x n`` matrix-product throughput in GFLOP/s (best of ``repeat``)."""
    t = best_of(sgemm_callable(n, threads), repeat=repeat)
    return 2.0 * n ** 3 / t / 1e9


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else :mod:`platform`)."""
    fallback = platform.processor() or platform.machine() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux: platform's answer
        return fallback
    return fallback


def machine_info(threads: int, torch_version: Optional[str] = None) -> Dict[str, object]:
    """The ``machine`` block of the JSON result."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return {
        "cpu": cpu_name(),
        "cores": int(cores),
        "threads": int(threads),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch_version,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


class _Progress:
    """A one-line progress bar on a stream (stderr), redrawn in place."""

    def __init__(self, total: int, stream=None, width: int = 24, enabled: bool = True):
        self.total = max(1, total)
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.enabled = enabled
        self._last = 0

    def step(self, text: str) -> None:
        if not self.enabled:
            return
        if not getattr(self.stream, "isatty", lambda: False)():
            # not a terminal (a log, a pipe): one plain line per step
            self.stream.write(f"[{self.done + 1}/{self.total}] {text}\n")
            self.stream.flush()
            return
        filled = int(self.width * self.done / self.total)
        import shutil
        cols = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total} {text}")[:cols]
        line = "\r" + line  # a line that wraps could not be redrawn in place
        pad = max(0, self._last - len(line))
        self.stream.write(line + " " * pad)
        self.stream.flush()
        self._last = len(line)

    def advance(self) -> None:
        self.done += 1

    def close(self) -> None:
        if not self.enabled or not getattr(self.stream, "isatty", lambda: False)():
            return
        self.stream.write("\r" + " " * self._last + "\r")
        self.stream.flush()


def run_benchmarks(backends: Sequence[str], workloads: Sequence[Workload], *,
                   compare_torch: bool = False, repeat: int = 5, warmup: int = 1,
                   threads: Optional[int] = None, sgemm_size: int = 2048,
                   progress: bool = True, stream=None,
                   max_seconds: Optional[float] = None,
                   warmup_time: float = 0.1) -> Dict[str, object]:
    """Time every workload on every backend (and torch), all in this process.

    Parameters
    ----------
    backends : sequence of str
        Backend names; each must be available.
    workloads : sequence of Workload
    compare_torch : bool
        Also time PyTorch (with the same number of threads).
    repeat, warmup : int
        Each time is the best of ``repeat`` calls after ``warmup`` calls (and
        at least ``warmup_time`` seconds of warm-up calls).  The contenders of
        one workload (each backend, torch, and an sgemm probe) take turns, so
        a change of the machine's load hits them alike.
    threads : int, optional
        Thread count for pyconv, torch and the sgemm ceiling (default:
        :func:`pyconv.get_num_threads`).
    sgemm_size : int
        Matrix size of the sgemm ceiling measurement.

    Returns
    -------
    dict
        The result in the documented JSON schema.
    """
    import pyconv

    if threads is not None:
        pyconv.set_num_threads(threads)
    threads = pyconv.get_num_threads()
    torch_version = None
    if compare_torch:
        import torch
        torch.set_num_threads(threads)
        torch_version = torch.__version__

    total = 2 + len(workloads)
    bar = _Progress(total, stream=stream, enabled=progress)
    bar.step("sgemm ceiling")
    sgemm_probe = sgemm_callable(sgemm_size, threads)
    sgemm_flops = 2.0 * sgemm_size ** 3
    sgemm = sgemm_flops / best_of(sgemm_probe, repeat=max(3, repeat)) / 1e9
    time.sleep(SETTLE_SECONDS * 10)  # let BLAS's spinning workers go idle
    bar.advance()

    rows: List[Dict[str, object]] = []
    for wl in workloads:
        bar.step(f"{wl.name} ({', '.join(backends)}{', torch' if compare_torch else ''})")
        inputs = wl.make_inputs()
        fns: Dict[str, Callable[[], object]] = {
            name: pyconv_callable(wl, name, inputs) for name in backends}
        if compare_torch:
            fns["torch"] = torch_callable(wl, inputs)
        # The sgemm ceiling is measured outside the rounds: after a NumPy
        # matmul, OpenBLAS's idle workers keep spinning for tens of
        # milliseconds and would slow whichever contender runs next.
        times = interleaved_best_of(fns, repeat, warmup, max_seconds, warmup_time)
        bar.advance()
        torch_t = times.get("torch")
        for name in backends:
            t = times[name]
            gflops = wl.flops / t / 1e9
            rows.append({
                "workload": wl.label,
                "op": wl.op,
                "backend": name,
                "time_s": float(t),
                "torch_time_s": None if torch_t is None else float(torch_t),
                "speedup": None if torch_t is None else float(torch_t / t),
                "gflops": float(gflops),
                "sgemm_fraction": 0.0,  # filled in below, against the final ceiling
            })
    # and once more at the end: the best of all the sgemm timings is the
    # ceiling, so a burst of load during one measurement does not lower it
    bar.step("sgemm ceiling (again)")
    sgemm = max(sgemm, sgemm_flops / best_of(sgemm_probe, repeat=max(3, repeat)) / 1e9)
    bar.advance()
    for row in rows:
        row["sgemm_fraction"] = float(row["gflops"] / sgemm)
    bar.close()
    return {"machine": machine_info(threads, torch_version),
            "sgemm_gflops": float(sgemm), "rows": rows}


def _warm(fn: Callable[[], object], calls: int, seconds: float, max_calls: int = 100) -> None:
    """Call ``fn`` at least ``calls`` times and until ``seconds`` were spent in it.

    A process's first calls can be slow for reasons that are not the
    kernel's (thread pools starting, caches, a busy machine delaying the
    first wake-ups of worker threads); a short timed warm-up gets past them.
    """
    spent = 0.0
    for i in range(max_calls):
        if i >= calls and spent >= seconds:
            break
        t0 = time.perf_counter()
        fn()
        spent += time.perf_counter() - t0


#: Pause before each timed turn (seconds): longer than the spin-wait of the
#: OpenMP and BLAS worker threads the previous contender may have left busy.
SETTLE_SECONDS = 0.05


def interleaved_best_of(fns: Dict[str, Callable[[], object]], repeat: int = 5,
                        warmup: int = 1, max_seconds: Optional[float] = None,
                        warmup_time: float = 0.1) -> Dict[str, float]:
    """Best-of-``repeat`` time of each function, the functions taking turns.

    Round ``r`` times every function once, so a change in the machine's load
    (other processes) hits all contenders alike and their ratio stays fair.
    Each function is first warmed up (``warmup`` calls, and at least
    ``warmup_time`` seconds of calls).  Before each turn the process sleeps
    :data:`SETTLE_SECONDS`, so that the worker threads a contender left
    spinning (OpenMP, BLAS) are idle and do not slow down the next one; an
    untimed call then wakes the contender's own threads before the timed one.
    """
    for fn in fns.values():
        _warm(fn, warmup, warmup_time)
    best = {name: math.inf for name in fns}
    spent = 0.0
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            time.sleep(SETTLE_SECONDS)
            fn()  # untimed: wakes this contender's worker threads up again
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[name] = min(best[name], dt)
            spent += dt
        if max_seconds is not None and spent >= max_seconds:
            break
    return best


def geomean(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return float("nan")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def summary(result: Dict[str, object]) -> Dict[str, Dict[str, float]]:
    """Per backend: geometric-mean speedup over torch, worst speedup, and count."""
    out: Dict[str, Dict[str, float]] = {}
    for row in result["rows"]:
        if row["speedup"] is None:
            continue
        out.setdefault(row["backend"], {"speedups": []})["speedups"].append(row["speedup"])
    for name, d in out.items():
        sp = d.pop("speedups")
        d.update(geomean=geomean(sp), worst=min(sp), count=len(sp))
    return out


def _fmt_time(t: Optional[float]) -> str:
    if t is None:
        return "-"
    if t >= 1.0:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.0f} us"


def _fmt_num(v: float) -> str:
    """1 decimal from 1 up, 2 significant digits below (tiny sizes have tiny rates)."""
    return f"{v:.1f}" if v >= 1 else f"{v:.2g}"


def is_dense(label: str) -> bool:
    """Whether the workload with this label is one of the dense (GEMM-shaped) ones."""
    return any(w.label == label and w.dense for w in WORKLOADS + QUICK_WORKLOADS)


def format_table(result: Dict[str, object]) -> str:
    """The result as a text table, with the geometric-mean speedup at the bottom.

    The sgemm fraction of dense workloads (where it is a target) is marked ``*``.
    """
    rows = result["rows"]
    has_torch = any(r["torch_time_s"] is not None for r in rows)
    headers = ["workload", "backend", "time"]
    if has_torch:
        headers += ["torch", "speedup"]
    headers += ["GFLOP/s", "% sgemm"]
    body = []
    for r in rows:
        line = [r["workload"], r["backend"], _fmt_time(r["time_s"])]
        if has_torch:
            line += [_fmt_time(r["torch_time_s"]),
                     "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"]
        line += [_fmt_num(r["gflops"]), _fmt_num(100 * r["sgemm_fraction"]) + "%" +
                 ("*" if is_dense(r["workload"]) else " ")]
        body.append(line)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(headers)]
    right = set(range(2, len(headers)))

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(b) for b in body]
    m = result["machine"]
    lines.append("")
    lines.append(f"sgemm ceiling: {result['sgemm_gflops']:.1f} GFLOP/s "
                 f"(NumPy float32 matmul, {m['threads']} thread(s)); "
                 f"machine: {m['cpu']}, {m['cores']} core(s); * dense workload")
    backends = []
    for r in rows:
        if r["backend"] not in backends:
            backends.append(r["backend"])
    for name in backends:
        dense = [r for r in rows if r["backend"] == name and is_dense(r["workload"])]
        if dense:
            worst = min(r["sgemm_fraction"] for r in dense)
            lines.append(f"dense workloads on {name}: {len(dense)}, lowest at "
                         f"{100 * worst:.0f}% of sgemm, "
                         f"{sum(r['sgemm_fraction'] >= 0.7 for r in dense)} at >= 70%")
    for name, s in summary(result).items():
        lines.append(f"geometric-mean speedup over torch {m['torch']}: {name} "
                     f"{s['geomean']:.2f}x over {s['count']} workloads "
                     f"(worst {s['worst']:.2f}x)")
    return "\n".join(lines)


def validate_result(result) -> None:
    """Raise ``ValueError`` if ``result`` does not follow the JSON schema exactly."""
    def check(obj, schema, where):
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
        if set(obj) != set(schema):
            raise ValueError(f"{where}: keys {sorted(obj)} != {sorted(schema)}")
        for key, types in schema.items():
            val = obj[key]
            ok = isinstance(val, types) and not isinstance(val, bool)
            if float in types and isinstance(val, int) and not isinstance(val, bool):
                ok = True
            if not ok:
                raise ValueError(f"{where}.{key}: {val!r} is not {types}")

    if not isinstance(result, dict) or set(result) != {"machine", "sgemm_gflops", "rows"}:
        raise ValueError("top level must have exactly machine, sgemm_gflops, rows")
    check(result["machine"], MACHINE_SCHEMA, "machine")
    datetime.datetime.fromisoformat(result["machine"]["date"])
    if not isinstance(result["sgemm_gflops"], (int, float)):
        raise ValueError("sgemm_gflops must be a number")
    if not isinstance(result["rows"], list):
        raise ValueError("rows must be a list")
    for i, row in enumerate(result["rows"]):
        check(row, ROW_SCHEMA, f"rows[{i}]")
