"""``python -m pyconv bench``: the benchmark workloads and the timing runner.

The workloads are defined once, here (:data:`WORKLOADS`), and used by the
command line and by the asv suite in ``asv_benchmarks/``.  A workload is a
public call written the way a user writes it -- the function's name, the
shapes of its input and weight, its keyword arguments -- and its geometry
(output shape, multiply-adds) is whatever pyconv's front layer makes of that
call: :attr:`Workload.spec` is the :class:`~pyconv._spec.ConvSpec` that
:func:`pyconv._spec.conv_call` / :func:`~pyconv._spec.conv_transpose_call`
build for it, with the same validation a user's call gets.  Nothing here
re-derives a size.

Every workload is float32 and runs through the public API
(:mod:`pyconv` functions and :mod:`pyconv.grad`), so what is timed is what a
user calls, front layer included.  Each has a full size (the one whose
numbers are quoted) and a ``quick`` size, small enough for the pure-Python
reference backend; the reference backend is never run at full size.

Adding a workload is one entry in ``_PAIRS``: any public function of
:mod:`pyconv` or :mod:`pyconv.grad` can be timed (``conv2d``,
``conv_transpose1d``, ``conv2d_input``, ``conv3d_weight`` ...).

The JSON written by ``python -m pyconv bench --json PATH`` (and read by the
docs' performance page, ``docs/gen_perf.py``) has this schema::

    {"machine": {"cpu": str, "cores": int, "threads": int, "python": str,
                 "numpy": str, "torch": str | null, "date": iso str},
     "sgemm_gflops": float,
     "fma_peak_gflops": float | null,
     "rows": [{"workload": str, "op": str, "backend": str, "path": str | null,
               "time_s": float,
               "torch_time_s": float | null, "scipy_time_s": float | null,
               "speedup": float | null, "gflops": float, "sgemm_fraction": float,
               "peak_fraction": float | null}]}

``path`` is the path the ``cython`` backend's planner took for the call
(:func:`cython_paths`; several joined by ``+`` when the call makes several
backend calls; null on the other backends).
``speedup`` is ``torch_time_s / time_s`` (above 1: pyconv is faster; null
when PyTorch was not timed or has no function for the workload);
``scipy_time_s`` is the time of :func:`scipy.signal.correlate` with
``method="auto"`` on the same data, one call per image
(:func:`scipy_callable`: null for the workloads SciPy has no function for,
everything but single-channel stride-1 convolutions); ``gflops``
is ``2 * multiply-adds / time_s / 1e9`` and ``sgemm_fraction`` is ``gflops``
divided by NumPy's float32 matrix-product throughput measured in the same run
(the machine's practical ceiling for dense work).  ``fma_peak_gflops`` is the
CPU's float32 multiply-add throughput on the same threads (:func:`fma_peak`:
independent chains of vector FMAs, the ceiling of any convolution that does
all of its multiplications; null when the cython extension is not built) and
``peak_fraction`` is ``gflops`` divided by it: above 1 only for an algorithm
that does fewer multiplications (Winograd, FFT).  :func:`validate_result`
checks a result against this schema exactly.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from math import prod
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from threadpoolctl import ThreadpoolController

import pyconv
import pyconv.grad
from pyconv._spec import ConvSpec, conv_call, conv_transpose_call

from ._output import EXIT_OK, Progress, fmt_rate, fmt_time, table

__all__ = [
    "Workload",
    "WORKLOADS",
    "QUICK_WORKLOADS",
    "WORKLOAD_NAMES",
    "get_workload",
    "best_of",
    "busy_neighbours",
    "interleaved_best_of",
    "sgemm_callable",
    "fma_peak",
    "pyconv_callable",
    "torch_callable",
    "scipy_callable",
    "cython_paths",
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
    "path": (str, type(None)),
    "time_s": (float,),
    "torch_time_s": (float, type(None)),
    "scipy_time_s": (float, type(None)),
    "speedup": (float, type(None)),
    "gflops": (float,),
    "sgemm_fraction": (float,),
    "peak_fraction": (float, type(None)),
}
#: the top-level keys
TOP_SCHEMA = {
    "machine": (dict,),
    "sgemm_gflops": (float,),
    "fma_peak_gflops": (float, type(None)),
    "rows": (list,),
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

# a public function's name: conv2d, conv_transpose3d, conv1d_input, conv2d_weight, ...
_OP_NAME = re.compile(r"conv(_transpose)?([123])d(?:_(input|weight))?")
_KEYWORDS = {False: ("stride", "padding", "dilation", "groups"),
             True: ("stride", "padding", "output_padding", "groups", "dilation")}


class Workload:
    """One benchmark problem: a public call, as a user writes it.

    Parameters
    ----------
    name : str
        Short identifier (asv parameter, ``--workloads`` filter).
    op : str
        The public function: ``conv1d`` ... ``conv3d``, ``conv_transpose1d`` ...
        ``conv_transpose3d`` (:mod:`pyconv`), or a gradient of
        :mod:`pyconv.grad` (``conv2d_input``, ``conv2d_weight``,
        ``conv_transpose1d_weight`` ...).
    x_shape : tuple of int
        Shape of the layer's input (for an ``_input`` gradient, its
        ``input_size``).
    w_shape : tuple of int
        Shape of the layer's weight (for a ``_weight`` gradient, its
        ``weight_size``).
    dense : bool
        Whether the workload is dense GEMM-shaped work, for which the
        sgemm fraction is a meaningful target.
    tag : str, optional
        A word put before the description in :attr:`label` ("depthwise").
    calls : int
        Calls per timing: each time is the mean of ``calls`` back-to-back
        calls (a small call's occasional stall shows in it where the best
        single call would hide it).
    busy : bool
        Time it with a CPU-bound neighbour process on every core
        (:func:`busy_neighbours`): a busy machine.
    **kwargs
        The call's keyword arguments (``stride``, ``padding``, ``dilation``,
        ``groups`` and, for transposed ops, ``output_padding``).

    Raises
    ------
    ValueError, TypeError
        The front layer's own errors, when the call is not a valid one.
    """

    def __init__(self, name: str, op: str, x_shape, w_shape, *, dense: bool = False,
                 tag: Optional[str] = None, calls: int = 1, busy: bool = False, **kwargs):
        match = _OP_NAME.fullmatch(op)
        if match is None:
            raise ValueError(f"unknown op {op!r} (a function of pyconv or pyconv.grad)")
        self.name = name
        self.op = op
        self.transposed = match.group(1) is not None
        self.nd = int(match.group(2))
        #: "forward", "input" (input gradient) or "weight" (weight gradient)
        self.kind = match.group(3) or "forward"
        unknown = set(kwargs) - set(_KEYWORDS[self.transposed])
        if unknown:
            raise TypeError(f"{op}: unexpected keyword(s) {', '.join(sorted(unknown))}")
        self.x_shape = tuple(x_shape)
        self.w_shape = tuple(w_shape)
        self.kwargs = dict(kwargs)
        self.dense = dense
        self.tag = tag
        if int(calls) < 1:
            raise ValueError(f"calls must be at least 1, got {calls}")
        self.calls = int(calls)
        self.busy = bool(busy)
        #: the layer's geometry, as the front layer validates a user's call
        self.spec: ConvSpec = self._layer_call().spec

    def _layer_call(self):
        """The front layer's :class:`~pyconv._spec.ConvCall` of the (forward) layer."""
        kw = dict(stride=1, padding=0, dilation=1, groups=1, output_padding=0)
        kw.update(self.kwargs)
        layer = f"conv{'_transpose' if self.transposed else ''}{self.nd}d"
        if self.transposed:
            return conv_transpose_call(layer, self.nd, self.x_shape, self.w_shape, None,
                                       kw["stride"], kw["padding"], kw["output_padding"],
                                       kw["groups"], kw["dilation"])
        return conv_call(layer, self.nd, self.x_shape, self.w_shape, None, kw["stride"],
                         kw["padding"], kw["dilation"], kw["groups"])

    # -- geometry (all from the spec) ---------------------------------------------
    @property
    def output_shape(self) -> Tuple[int, ...]:
        """Shape of the layer's output (the ``grad_output`` of its gradients)."""
        return self.spec.output_shape

    @property
    def result_shape(self) -> Tuple[int, ...]:
        """Shape of what the timed call returns."""
        return {"forward": self.spec.output_shape, "input": self.spec.input_shape,
                "weight": self.spec.weight_shape}[self.kind]

    @property
    def flops(self) -> int:
        """2 x multiply-adds (the same count for a layer and its two gradients)."""
        return self.spec.flops

    @property
    def label(self) -> str:
        """Human-readable description (the ``workload`` field of the JSON)."""
        return f"{self.tag} {self.describe()}" if self.tag else self.describe()

    def describe(self) -> str:
        """The op and its geometry in one line: ``conv2d N8 C64->64 56x56 K3x3 p1``."""
        s = self.spec

        def dims(values):
            return "x".join(map(str, values))

        def distinct(values):
            return "x".join(map(str, sorted(set(values))))

        size = dims(s.in_size)
        if self.transposed:  # upsampling: show where it goes
            size += "->" + dims(s.out_size)
        parts = [self.op, f"N{s.batch}", f"C{s.in_channels}->{s.out_channels}",
                 ("L" if self.nd == 1 else "") + size, f"K{dims(s.kernel_size)}"]
        if any(v != 1 for v in s.stride):
            parts.append("s" + distinct(s.stride))
        padding = self.kwargs.get("padding", 0)
        if isinstance(padding, str):
            parts.append(repr(padding))
        elif any(s.pad_lo):
            parts.append("p" + distinct(s.pad_lo))
        if self.transposed:
            output_padding = [lo - hi for lo, hi in s.padding]
            if any(output_padding):
                parts.append("op" + distinct(output_padding))
        if any(v != 1 for v in s.dilation):
            parts.append("d" + distinct(s.dilation))
        if s.groups != 1:
            parts.append(f"g{s.groups}")
        return " ".join(parts)

    def replace(self, **changes) -> "Workload":
        """A copy with some fields or keyword arguments changed (the quick sizes)."""
        fields = dict(name=self.name, op=self.op, x_shape=self.x_shape,
                      w_shape=self.w_shape, dense=self.dense, tag=self.tag,
                      calls=self.calls, busy=self.busy, **self.kwargs)
        fields.update(changes)
        return Workload(**fields)

    def __repr__(self):
        return f"Workload({self.name!r}: {self.describe()})"

    # -- the call ------------------------------------------------------------------
    def make_inputs(self, seed: int = 0, dtype=np.float32) -> Tuple[np.ndarray, ...]:
        """The arrays of one call, in its positional order.

        ``(x, w, b)`` for a layer, ``(w, grad_output)`` for an input gradient,
        ``(x, grad_output)`` for a weight gradient.
        """
        rng = np.random.default_rng(seed)

        def normal(shape, scale=1.0):
            a = rng.standard_normal(shape, dtype=np.float32)
            if scale != 1.0:
                a *= scale
            return a.astype(dtype, copy=False)

        s = self.spec
        scale = 1.0 / math.sqrt(prod(s.weight_shape[1:]))
        if self.kind == "forward":
            return (normal(s.input_shape), normal(s.weight_shape, scale),
                    normal((s.out_channels,)))
        if self.kind == "input":
            return normal(s.weight_shape, scale), normal(s.output_shape)
        return normal(s.input_shape), normal(s.output_shape)

    def call_args(self, arrays) -> Tuple[Any, ...]:
        """The positional arguments of the call, given :meth:`make_inputs`'s arrays."""
        if self.kind == "forward":
            return tuple(arrays)
        a, gy = arrays
        if self.kind == "input":
            return self.x_shape, a, gy
        return a, self.w_shape, gy


def _w(name, op, x_shape, w_shape, quick, **kw) -> Tuple[Workload, Workload]:
    full = Workload(name, op, x_shape, w_shape, **kw)
    return full, full.replace(**quick)


# The benchmark workloads (all float32).  ``dense`` marks the ungrouped
# forward convolutions, for which a fraction of sgemm is a target.  The
# ``quick`` overrides keep each geometry (stride, padding, groups pattern)
# at a size the reference backend finishes in well under a second.
_PAIRS = [
    _w("conv1d", "conv1d", (32, 64, 1024), (128, 64, 5),
       dict(x_shape=(2, 4, 32), w_shape=(8, 4, 5)), dense=True),
    _w("conv1d_s2", "conv1d", (32, 64, 1024), (128, 64, 5),
       dict(x_shape=(2, 4, 32), w_shape=(8, 4, 5)), stride=2, padding=2, dense=True),
    _w("conv1d_depthwise", "conv1d", (8, 256, 4096), (256, 1, 9),
       dict(x_shape=(1, 8, 32), w_shape=(8, 1, 9), groups=8),
       padding="same", groups=256, tag="depthwise"),
    _w("conv2d", "conv2d", (8, 64, 56, 56), (64, 64, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    _w("conv_transpose1d", "conv_transpose1d", (32, 128, 512), (128, 64, 4),
       dict(x_shape=(2, 8, 16), w_shape=(8, 4, 4)), stride=2, padding=1),
    _w("conv_transpose2d", "conv_transpose2d", (16, 128, 8, 8), (128, 64, 4, 4),
       dict(x_shape=(1, 8, 4, 4), w_shape=(8, 4, 4, 4)), stride=2, padding=1),
    _w("conv_transpose3d_k2", "conv_transpose3d", (2, 64, 16, 16, 16), (64, 32, 2, 2, 2),
       dict(x_shape=(1, 4, 3, 3, 3), w_shape=(4, 4, 2, 2, 2)), stride=2),
    _w("conv_transpose3d_k3", "conv_transpose3d", (4, 32, 16, 16, 16), (32, 16, 3, 3, 3),
       dict(x_shape=(1, 4, 3, 3, 3), w_shape=(4, 2, 3, 3, 3)), stride=2, padding=1,
       output_padding=1),
    _w("conv3d", "conv3d", (2, 32, 32, 32, 32), (32, 32, 3, 3, 3),
       dict(x_shape=(1, 2, 4, 4, 4), w_shape=(2, 2, 3, 3, 3)), padding=1, dense=True),
    _w("wavenet", "conv1d", (4, 128, 16000), (128, 128, 2),
       dict(x_shape=(1, 4, 80), w_shape=(4, 4, 2), dilation=8), dilation=64,
       dense=True, tag="WaveNet"),
    _w("conv1d_weight", "conv1d_weight", (32, 64, 1024), (128, 64, 5),
       dict(x_shape=(2, 4, 32), w_shape=(8, 4, 5))),
    _w("conv1d_s2_weight", "conv1d_weight", (32, 64, 1024), (128, 64, 5),
       dict(x_shape=(2, 4, 32), w_shape=(8, 4, 5)), stride=2, padding=2),
    _w("conv2d_weight", "conv2d_weight", (8, 64, 56, 56), (64, 64, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1),
    # stride-1 3x3 layers (ResNet stages; the Winograd paths): batch 1 and 28x28,
    # their input gradients, and 1-d K=3 (conv2d at 56x56 batch 8 and conv3d above)
    _w("conv2d_b1", "conv2d", (1, 64, 56, 56), (64, 64, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    _w("conv2d_28", "conv2d", (8, 128, 28, 28), (128, 128, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    _w("conv2d_28_b1", "conv2d", (1, 128, 28, 28), (128, 128, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    # deep layers on small maps (ResNet's third and fourth stages)
    _w("conv2d_14_b1", "conv2d", (1, 256, 14, 14), (256, 256, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    _w("conv2d_7_b1", "conv2d", (1, 512, 7, 7), (512, 512, 3, 3),
       dict(x_shape=(1, 4, 4, 4), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    _w("conv2d_7", "conv2d", (8, 512, 7, 7), (512, 512, 3, 3),
       dict(x_shape=(2, 4, 4, 4), w_shape=(4, 4, 3, 3)), padding=1, dense=True),
    # ... and the stride-2 3x3 layers that start them (ResNet-18/34: 128 -> 256
    # channels onto 14x14, 256 -> 512 onto 7x7)
    _w("conv2d_s2_14", "conv2d", (8, 128, 28, 28), (256, 128, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), stride=2, padding=1, dense=True),
    _w("conv2d_s2_7", "conv2d", (8, 256, 14, 14), (512, 256, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), stride=2, padding=1, dense=True),
    _w("conv2d_input", "conv2d_input", (8, 64, 56, 56), (64, 64, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1),
    _w("conv2d_28_input", "conv2d_input", (8, 128, 28, 28), (128, 128, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1),
    _w("conv1d_k3", "conv1d", (32, 64, 1024), (128, 64, 3),
       dict(x_shape=(2, 4, 32), w_shape=(8, 4, 3)), padding=1, dense=True),
    # long kernels (the FFT path): a FIR filter, a long-kernel layer and its
    # gradients, a large 2-d kernel
    _w("fir", "conv1d", (8, 1, 131072), (1, 1, 1023),
       dict(x_shape=(2, 1, 256), w_shape=(1, 1, 33)), tag="FIR"),
    _w("conv1d_long", "conv1d", (4, 32, 16384), (32, 32, 511),
       dict(x_shape=(1, 2, 64), w_shape=(2, 2, 17), padding=8), padding=255,
       tag="long-kernel"),
    _w("conv1d_long_input", "conv1d_input", (4, 32, 16384), (32, 32, 511),
       dict(x_shape=(1, 2, 64), w_shape=(2, 2, 17), padding=8), padding=255,
       tag="long-kernel"),
    _w("conv1d_long_weight", "conv1d_weight", (4, 32, 16384), (32, 32, 511),
       dict(x_shape=(1, 2, 64), w_shape=(2, 2, 17), padding=8), padding=255,
       tag="long-kernel"),
    _w("conv2d_large_kernel", "conv2d", (2, 8, 256, 256), (8, 8, 31, 31),
       dict(x_shape=(1, 2, 16, 16), w_shape=(2, 2, 5, 5), padding=2), padding=15,
       tag="large-kernel"),
    # small calls: the per-call overhead, and the same tiny call with a CPU-bound
    # neighbour process on every core (the runner starts and stops them)
    _w("small_call", "conv1d", (2, 4, 32), (8, 4, 5), {}, calls=50, tag="small call"),
    _w("small_call_busy", "conv1d", (2, 4, 32), (8, 4, 5), {}, calls=50, busy=True,
       tag="small call, busy"),
    # depthwise 2-d 7x7 (ConvNeXt blocks) and 3x3 (MobileNet blocks, stride 1 and 2)
    _w("dw7_56", "conv2d", (8, 96, 56, 56), (96, 1, 7, 7),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 1, 7, 7), groups=4), padding=3, groups=96,
       tag="depthwise-7x7"),
    _w("dw7_14", "conv2d", (8, 384, 14, 14), (384, 1, 7, 7),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 1, 7, 7), groups=4), padding=3, groups=384,
       tag="depthwise-7x7"),
    _w("dw7_7_b1", "conv2d", (1, 768, 7, 7), (768, 1, 7, 7),
       dict(x_shape=(1, 4, 7, 7), w_shape=(4, 1, 7, 7), groups=4), padding=3, groups=768,
       tag="depthwise-7x7"),
    _w("dw3_112", "conv2d", (8, 32, 112, 112), (32, 1, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 1, 3, 3), groups=4), padding=1, groups=32,
       tag="depthwise-3x3"),
    _w("dw3_112_s2", "conv2d", (8, 96, 112, 112), (96, 1, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 1, 3, 3), groups=4, stride=2), padding=1,
       stride=2, groups=96, tag="depthwise-3x3"),
    _w("dw3_14", "conv2d", (8, 384, 14, 14), (384, 1, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 1, 3, 3), groups=4), padding=1, groups=384,
       tag="depthwise-3x3"),
    _w("dw3_7", "conv2d", (8, 960, 7, 7), (960, 1, 3, 3),
       dict(x_shape=(1, 4, 7, 7), w_shape=(4, 1, 3, 3), groups=4), padding=1, groups=960,
       tag="depthwise-3x3"),
    # dilated 3x3 with a large dilation (DeepLab ASPP branches)
    _w("aspp_d12", "conv2d", (2, 2048, 33, 33), (256, 2048, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 4, 3, 3), padding=3, dilation=3),
       padding=12, dilation=12, tag="dilated"),
    _w("aspp_d24", "conv2d", (2, 2048, 33, 33), (256, 2048, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 4, 3, 3), padding=6, dilation=6),
       padding=24, dilation=24, tag="dilated"),
    _w("aspp65_d12", "conv2d", (2, 256, 65, 65), (256, 256, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 4, 3, 3), padding=3, dilation=3),
       padding=12, dilation=12, tag="dilated"),
    # weight gradient of a dense 3x3 layer (56x56 batch 8 is conv2d_weight above)
    _w("conv2d_28_weight", "conv2d_weight", (16, 128, 28, 28), (128, 128, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, tag="weight-grad"),
    _w("conv2d_14_weight", "conv2d_weight", (32, 256, 14, 14), (256, 256, 3, 3),
       dict(x_shape=(1, 4, 8, 8), w_shape=(4, 4, 3, 3)), padding=1, tag="weight-grad"),
    # weight gradients of strided layers: ResNet's stride-2 3x3 (56x56 -> 28x28)
    # and its 7x7 stride-2 stem
    _w("conv2d_s2_weight", "conv2d_weight", (8, 64, 56, 56), (128, 64, 3, 3),
       dict(x_shape=(1, 4, 9, 9), w_shape=(4, 4, 3, 3)), stride=2, padding=1,
       tag="strided weight-grad"),
    _w("stem_weight", "conv2d_weight", (2, 3, 224, 224), (64, 3, 7, 7),
       dict(x_shape=(1, 3, 16, 16), w_shape=(4, 3, 7, 7)), stride=2, padding=3,
       tag="strided weight-grad"),
    # transposed convolutions: vocoder upsampling (HiFi-GAN/MelGAN stages, K16 s8
    # and K4 s2), 1-d K4 s2 at batch 1..8, 2-d K4 s2 upsampling of 4x4..16x16 maps
    _w("tconv1d_voc_b1", "conv_transpose1d", (1, 512, 32), (512, 256, 16),
       dict(x_shape=(1, 8, 8), w_shape=(8, 4, 16)), stride=8, padding=4, tag="vocoder"),
    _w("tconv1d_voc_b4", "conv_transpose1d", (4, 512, 100), (512, 256, 16),
       dict(x_shape=(1, 8, 8), w_shape=(8, 4, 16)), stride=8, padding=4, tag="vocoder"),
    _w("tconv1d_voc_256", "conv_transpose1d", (4, 256, 800), (256, 128, 16),
       dict(x_shape=(1, 8, 16), w_shape=(8, 4, 16)), stride=8, padding=4, tag="vocoder"),
    _w("tconv1d_voc_k4", "conv_transpose1d", (4, 64, 12800), (64, 32, 4),
       dict(x_shape=(1, 8, 64), w_shape=(8, 4, 4)), stride=2, padding=1, tag="vocoder"),
    _w("tconv1d_k4_b1", "conv_transpose1d", (1, 512, 64), (512, 256, 4),
       dict(x_shape=(1, 8, 16), w_shape=(8, 4, 4)), stride=2, padding=1, tag="K4 s2"),
    _w("tconv1d_k4_b4", "conv_transpose1d", (4, 128, 256), (128, 64, 4),
       dict(x_shape=(1, 8, 16), w_shape=(8, 4, 4)), stride=2, padding=1, tag="K4 s2"),
    _w("tconv1d_k4_b8", "conv_transpose1d", (8, 256, 128), (256, 128, 4),
       dict(x_shape=(2, 8, 16), w_shape=(8, 4, 4)), stride=2, padding=1, tag="K4 s2"),
    _w("tconv2d_4x4_b1", "conv_transpose2d", (1, 512, 4, 4), (512, 256, 4, 4),
       dict(x_shape=(1, 8, 4, 4), w_shape=(8, 4, 4, 4)), stride=2, padding=1,
       tag="small-image"),
    _w("tconv2d_8x8_b8", "conv_transpose2d", (8, 256, 8, 8), (256, 128, 4, 4),
       dict(x_shape=(2, 8, 4, 4), w_shape=(8, 4, 4, 4)), stride=2, padding=1,
       tag="small-image"),
    _w("tconv2d_16x16_b4", "conv_transpose2d", (4, 128, 16, 16), (128, 64, 4, 4),
       dict(x_shape=(1, 8, 4, 4), w_shape=(8, 4, 4, 4)), stride=2, padding=1,
       tag="small-image"),
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


def is_dense(label: str) -> bool:
    """Whether the workload with this label is one of the dense (GEMM-shaped) ones."""
    return any(w.label == label and w.dense for w in WORKLOADS + QUICK_WORKLOADS)


# --------------------------------------------------------------------------
# callables

def pyconv_callable(wl: Workload, backend: str, inputs=None) -> Callable[[], object]:
    """A no-argument function running ``wl`` through pyconv's public API on ``backend``."""
    module = pyconv if wl.kind == "forward" else pyconv.grad
    fn = getattr(module, wl.op)
    args = wl.call_args(wl.make_inputs() if inputs is None else inputs)
    kw = dict(wl.kwargs, backend=backend)
    return lambda: fn(*args, **kw)


def cython_paths(wl: Workload, inputs=None) -> Optional[str]:
    """The path(s) the ``cython`` planner takes for ``wl``: one call, watched.

    The backend plans each of its calls with :func:`pyconv._cy.plan`; this
    runs the workload once with that function wrapped to note each plan's
    path.  None when the backend is not available.
    """
    from pyconv import _cy

    original = _cy.plan
    seen: List[str] = []

    def noting(*args, **kwargs):
        p = original(*args, **kwargs)
        seen.append(p.path)
        return p

    _cy.plan = noting
    try:
        pyconv_callable(wl, "cython", inputs)()
    except pyconv.BackendUnavailableError:
        return None
    finally:
        _cy.plan = original
    return "+".join(dict.fromkeys(seen)) or None


def torch_callable(wl: Workload, inputs=None) -> Optional[Callable[[], object]]:
    """The same call through PyTorch, or None where PyTorch has no such function.

    torch (imported here, only when asked for) has the layers in
    ``torch.nn.functional`` and the gradients of the plain convolutions in
    ``torch.nn.grad`` (with numeric padding only); it has no separate
    gradient functions of the transposed ones.
    """
    import torch
    import torch.nn.functional
    import torch.nn.grad

    module = torch.nn.functional if wl.kind == "forward" else torch.nn.grad
    fn = getattr(module, wl.op, None)
    if fn is None or (wl.kind != "forward"
                      and isinstance(wl.kwargs.get("padding"), str)):
        return None
    arrays = wl.make_inputs() if inputs is None else inputs
    args = [torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
            for a in wl.call_args(arrays)]

    def run():
        with torch.no_grad():
            return fn(*args, **wl.kwargs)
    return run


def scipy_callable(wl: Workload, inputs=None) -> Optional[Callable[[], object]]:
    """The same call through :func:`scipy.signal.correlate` (``method="auto"``), or
    None where SciPy has no equivalent.

    SciPy correlates one array with one kernel: the equivalent of a forward
    convolution with one input and one output channel, stride 1 and
    dilation 1, done image by image (and the bias added).  Zero padding is
    ``mode="valid"`` or ``"full"`` where it matches, else the images are
    padded once, before the timing.
    """
    s = wl.spec
    if (wl.kind != "forward" or wl.transposed or s.in_channels != 1 or s.out_channels != 1
            or any(v != 1 for v in s.stride) or any(v != 1 for v in s.dilation)):
        return None
    import scipy.signal

    x, w, b = wl.make_inputs() if inputs is None else inputs
    kernel = w[0, 0]
    pads = [tuple(p) for p in s.padding]
    if all(p == (0, 0) for p in pads):
        mode = "valid"
    elif all(p == (k - 1, k - 1) for p, k in zip(pads, s.kernel_size)):
        mode = "full"
    else:
        mode = "valid"
        x = np.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    images = [np.ascontiguousarray(x[i, 0]) for i in range(x.shape[0])]
    bias = b[0]

    def run():
        return [scipy.signal.correlate(image, kernel, mode=mode, method="auto") + bias
                for image in images]
    return run


def torch_available() -> bool:
    """Whether ``import torch`` works here (it is imported only for ``--compare torch``).

    The command line calls it before any backend loads: torch and the
    ``cython`` backend share one OpenMP runtime (both link ``libgomp.so.1``)
    and its wait policy is fixed by whichever loads it first.  Imported
    first, torch runs with its own default policy, as in a user's program
    that imports only torch, and pyconv runs with the same one (instead of
    its passive default, see docs/backends.rst, "Threads"): the two are timed
    on equal terms.
    """
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def sgemm_callable(n: int = 2048, threads: Optional[int] = None) -> Callable[[], object]:
    """A no-argument function doing one NumPy float32 ``n x n`` matrix product.

    BLAS is limited to ``threads`` threads during the call (threadpoolctl),
    so the ceiling is measured with the thread count the convolutions get.
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    controller = ThreadpoolController()

    def run():
        with controller.limit(limits=threads, user_api="blas"):
            np.matmul(a, b, out=out)
    return run


def fma_peak(threads: int, seconds: float = 0.05, repeat: int = 5) -> Optional[float]:
    """The CPU's float32 multiply-add peak on ``threads`` threads, in GFLOP/s.

    Best of ``repeat`` runs of about ``seconds`` each of the cython
    extension's FMA loop (independent chains of vector multiply-adds, more
    than the units' latency covers); None when the extension is not built.
    """
    try:
        from pyconv._cy import _build
    except ImportError:
        return None
    iters = 10_000
    while True:  # calibrate: about `seconds` per run
        t0 = time.perf_counter()
        _build.fma_flops(iters, threads)
        dt = time.perf_counter() - t0
        if dt >= seconds / 4 or iters > 10**9:
            break
        iters *= 4
    iters = max(1, int(iters * seconds / max(dt, 1e-9)))
    best = 0.0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        flops = _build.fma_flops(iters, threads)
        best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return best


# --------------------------------------------------------------------------
# timing

#: Pause before each timed turn (seconds): longer than the spin-wait of the
#: OpenMP and BLAS worker threads the previous contender may have left busy.
SETTLE_SECONDS = 0.05


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


#: What a neighbour process runs: a CPU-bound loop.
_NEIGHBOUR = "while True: pass"


@contextlib.contextmanager
def busy_neighbours(count: Optional[int] = None) -> Iterator[None]:
    """A busy machine for the block: ``count`` CPU-bound processes (default: one per core).

    The processes are started at the beginning of the block and killed at
    its end, whatever happens inside.
    """
    if count is None:
        try:
            count = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - non-Linux
            count = os.cpu_count() or 1
    procs: List["subprocess.Popen[bytes]"] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", _NEIGHBOUR]))
        time.sleep(0.2)  # let them reach their loops
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def _repeated(fn: Callable[[], object], calls: int) -> Callable[[], object]:
    """``fn`` called ``calls`` times in a row (a workload's timed unit)."""
    if calls == 1:
        return fn

    def run():
        for _ in range(calls):
            fn()
    return run


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


def interleaved_best_of(fns: Dict[str, Callable[[], object]], repeat: int = 5,
                        warmup: int = 1, max_seconds: Optional[float] = None,
                        warmup_time: float = 0.1,
                        settle: float = SETTLE_SECONDS) -> Dict[str, float]:
    """Best-of-``repeat`` time of each function, the functions taking turns.

    Round ``r`` times every function once, so a change in the machine's load
    (other processes) hits all contenders alike and their ratio stays fair.
    Each function is first warmed up (``warmup`` calls, and at least
    ``warmup_time`` seconds of calls).  Before each turn the process sleeps
    ``settle`` seconds, so that the worker threads a contender left spinning
    (OpenMP, BLAS) are idle and do not slow down the next one; an untimed
    call then wakes the contender's own threads before the timed one.
    """
    for fn in fns.values():
        _warm(fn, warmup, warmup_time)
    best = {name: math.inf for name in fns}
    spent = 0.0
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            time.sleep(settle)
            fn()  # untimed: wakes this contender's worker threads up again
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[name] = min(best[name], dt)
            spent += dt
        if max_seconds is not None and spent >= max_seconds:
            break
    return best


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


def machine_info(threads: int, torch_version: Optional[str] = None) -> Dict[str, Any]:
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


def run_benchmarks(backends: Sequence[str], workloads: Sequence[Workload], *,
                   compare_torch: bool = False, repeat: int = 5, warmup: int = 1,
                   threads: Optional[int] = None, sgemm_size: int = 2048,
                   progress: bool = True, stream=None,
                   max_seconds: Optional[float] = None,
                   warmup_time: float = 0.1) -> Dict[str, Any]:
    """Time every workload on every backend (and torch, and SciPy where it has the
    same call: :func:`scipy_callable`), all in this process.

    Parameters
    ----------
    backends : sequence of str
        Backend names (``auto`` allowed); each must be available.
    workloads : sequence of Workload
    compare_torch : bool
        Also time PyTorch (with the same number of threads).  SciPy is timed
        whenever it has an equivalent call (it is single-threaded).
    repeat, warmup : int
        Each time is the best of ``repeat`` calls after ``warmup`` calls (and
        at least ``warmup_time`` seconds of warm-up calls).  The contenders of
        one workload (each backend and torch) take turns, so a change of the
        machine's load hits them alike.
    threads : int, optional
        Thread count for pyconv, torch and the sgemm ceiling (default:
        :func:`pyconv.get_num_threads`).
    sgemm_size : int
        Matrix size of the sgemm ceiling measurement.
    progress : bool
        Show a :class:`~pyconv._cli._output.Progress` bar on ``stream``
        (default stderr).

    Returns
    -------
    dict
        The result in the documented JSON schema.
    """
    if threads is not None:
        pyconv.set_num_threads(threads)
    threads = pyconv.get_num_threads()
    torch_version = None
    if compare_torch:
        import torch
        torch.set_num_threads(threads)
        torch_version = torch.__version__

    bar = Progress(2 + len(workloads), enabled=progress, stream=stream)
    bar.step("sgemm ceiling and FMA peak")
    peak = fma_peak(threads)
    sgemm_probe = sgemm_callable(sgemm_size, threads)
    sgemm_flops = 2.0 * sgemm_size ** 3
    sgemm = sgemm_flops / best_of(sgemm_probe, repeat=max(3, repeat)) / 1e9
    time.sleep(SETTLE_SECONDS * 10)  # let BLAS's spinning workers go idle
    bar.advance()

    rows: List[Dict[str, Any]] = []
    for wl in workloads:
        bar.step(f"{wl.name} ({', '.join(backends)}{', torch' if compare_torch else ''})")
        inputs = wl.make_inputs()
        fns: Dict[str, Callable[[], object]] = {
            name: pyconv_callable(wl, name, inputs) for name in backends}
        if compare_torch:
            theirs = torch_callable(wl, inputs)
            if theirs is not None:
                fns["torch"] = theirs
        scipy_fn = scipy_callable(wl, inputs)
        if scipy_fn is not None:
            fns["scipy"] = scipy_fn
        # The sgemm ceiling is measured outside the rounds: after a NumPy
        # matmul, OpenBLAS's idle workers keep spinning for tens of
        # milliseconds and would slow whichever contender runs next.
        fns = {name: _repeated(fn, wl.calls) for name, fn in fns.items()}
        with busy_neighbours() if wl.busy else contextlib.nullcontext():
            times = interleaved_best_of(fns, repeat, warmup, max_seconds, warmup_time)
        times = {name: t / wl.calls for name, t in times.items()}
        bar.advance()
        torch_t, scipy_t = times.get("torch"), times.get("scipy")
        for name in backends:
            t = times[name]
            rows.append({
                "workload": wl.label,
                "op": wl.op,
                "backend": name,
                "path": cython_paths(wl, inputs) if name == "cython" else None,
                "time_s": float(t),
                "torch_time_s": None if torch_t is None else float(torch_t),
                "scipy_time_s": None if scipy_t is None else float(scipy_t),
                "speedup": None if torch_t is None else float(torch_t / t),
                "gflops": float(wl.flops / t / 1e9),
                "sgemm_fraction": 0.0,  # filled in below, against the final ceiling
                "peak_fraction": None,
            })
    # and once more at the end: the best of all the sgemm timings is the
    # ceiling, so a burst of load during one measurement does not lower it
    bar.step("sgemm ceiling and FMA peak (again)")
    sgemm = max(sgemm, sgemm_flops / best_of(sgemm_probe, repeat=max(3, repeat)) / 1e9)
    if peak is not None:
        peak = max(peak, fma_peak(threads) or 0.0)
    bar.advance()
    for row in rows:
        row["sgemm_fraction"] = float(row["gflops"] / sgemm)
        row["peak_fraction"] = None if peak is None else float(row["gflops"] / peak)
    bar.close()
    return {"machine": machine_info(threads, torch_version),
            "sgemm_gflops": float(sgemm),
            "fma_peak_gflops": None if peak is None else float(peak), "rows": rows}


# --------------------------------------------------------------------------
# the result

def geomean(values: Sequence[Optional[float]]) -> float:
    """Geometric mean of the positive values (NaN when there is none)."""
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return float("nan")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def summary(result: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """Per backend: geometric-mean speedup over torch, worst speedup, and count."""
    speedups: Dict[str, List[float]] = {}
    for row in result["rows"]:
        if row["speedup"] is not None:
            speedups.setdefault(row["backend"], []).append(row["speedup"])
    return {name: {"geomean": geomean(sp), "worst": min(sp), "count": len(sp)}
            for name, sp in speedups.items()}


def format_table(result: Dict[str, Any]) -> str:
    """The result as a text table, with the geometric-mean speedup at the bottom.

    The sgemm fraction of dense workloads (where it is a target) is marked ``*``.
    """
    rows = result["rows"]
    has_torch = any(r["torch_time_s"] is not None for r in rows)
    has_scipy = any(r["scipy_time_s"] is not None for r in rows)
    has_path = any(r["path"] is not None for r in rows)
    headers = ["workload", "backend"] + (["path"] if has_path else []) + ["time"]
    if has_torch:
        headers += ["torch", "speedup"]
    if has_scipy:
        headers += ["scipy", "vs scipy"]
    has_peak = any(r["peak_fraction"] is not None for r in rows)
    headers += ["GFLOP/s", "% sgemm"] + (["% peak"] if has_peak else [])
    body = []
    for r in rows:
        line = [r["workload"], r["backend"]] + ([r["path"] or "-"] if has_path else [])
        line.append(fmt_time(r["time_s"]))
        if has_torch:
            line += [fmt_time(r["torch_time_s"]),
                     "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"]
        if has_scipy:
            st = r["scipy_time_s"]
            line += [fmt_time(st), "-" if st is None else f"{st / r['time_s']:.2f}x"]
        line += [fmt_rate(r["gflops"]), fmt_rate(100 * r["sgemm_fraction"]) + "%" +
                 ("*" if is_dense(r["workload"]) else " ")]
        if has_peak:
            line.append("-" if r["peak_fraction"] is None
                        else fmt_rate(100 * r["peak_fraction"]) + "%")
        body.append(line)
    lines = [table(headers, body, left=2), ""]
    m = result["machine"]
    lines.append(f"sgemm ceiling: {result['sgemm_gflops']:.1f} GFLOP/s "
                 f"(NumPy float32 matmul, {m['threads']} thread(s)); "
                 f"machine: {m['cpu']}, {m['cores']} core(s); * dense workload")
    if result["fma_peak_gflops"] is not None:
        lines.append(f"FMA peak: {result['fma_peak_gflops']:.1f} GFLOP/s (float32 "
                     f"multiply-adds on {m['threads']} thread(s); sgemm runs at "
                     f"{100 * result['sgemm_gflops'] / result['fma_peak_gflops']:.0f}% of it); "
                     "above 100% of peak: fewer multiplications than a direct convolution")
    backends = list(dict.fromkeys(r["backend"] for r in rows))
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

    check(result, TOP_SCHEMA, "result")
    check(result["machine"], MACHINE_SCHEMA, "machine")
    datetime.datetime.fromisoformat(result["machine"]["date"])
    for i, row in enumerate(result["rows"]):
        check(row, ROW_SCHEMA, f"rows[{i}]")


def command(args, out) -> int:
    """``python -m pyconv bench``: time, print the table, write the JSON if asked."""
    compare = args.compare == "torch"
    if compare and not torch_available():
        print("note: torch is not importable; timing pyconv alone", file=sys.stderr)
        compare = False
    pool = QUICK_WORKLOADS if args.quick else WORKLOADS
    workloads = [w for w in pool if not args.workloads or w.name in args.workloads]
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    result = run_benchmarks(args.backends, workloads, compare_torch=compare, repeat=repeat,
                            threads=args.threads, sgemm_size=512 if args.quick else 2048,
                            progress=args.progress)
    print(format_table(result), file=out)
    if args.json:
        validate_result(result)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        print(f"\nwrote {args.json}", file=out)
    return EXIT_OK
