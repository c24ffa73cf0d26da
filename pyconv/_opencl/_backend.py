"""The OpenCL backend object: data movement, plans and launches.

Design (see ``kernels/conv_gemm.cl`` and ``kernels/conv_wgrad.cl``):

* ``conv`` is one implicit GEMM per group: output channels x (batch,
  positions), reduced over (input channels, kernel taps); the input
  columns are gathered from ``x`` straight into local memory, nothing is
  materialised.
* ``conv_transpose`` is decomposed by output phase (``o mod stride``):
  each phase is a stride-1 correlation with the subset of taps that reach
  it, run by the same kernel; one launch covers every phase (the plan
  starts with a phase table); no zero is inserted and no tap is wasted.
* On GPUs a launch with too few work-groups for the device splits its
  reduction into slices (see ``_gemm_splits``), added in a fixed order by
  a second kernel.
* ``conv_weight`` is an implicit GEMM over (batch, positions); when the
  output has few tiles the reduction is split, each split writes its own
  partial slice and a second kernel adds them in a fixed order.

No atomics anywhere: every sum runs in one fixed order, so results are
bit-for-bit the same from run to run.

A "plan" is the small int32 buffer of geometry and tap tables a launch
reads; plans are cached per (context, op, spec) in a bounded LRU.  Device
buffers (results, uploads, partial sums) come from a memory pool per
command queue (see :data:`POOL_HOLD_BYTES`).
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from dataclasses import replace
from math import ceil, prod
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pyopencl.tools as cl_tools

from .._registry import Backend, BackendUnavailableError
from ._device import describe_device, device_has_fp64, enumerate_devices, select_device
from ._programs import (PIECE_FLOPS, PLAN_LAYOUTS, TILE_CLASSES, ProgramCache,
                        device_kind, elementwise_local_size, forget_launches, index_type, launch,
                        launch_in_pieces, scalar_index)

__all__ = ["OpenCLBackend", "PREFER_MIN_FLOPS"]

#: ``auto`` picks OpenCL only on a GPU device, for float32 (float64 runs at
#: a small fraction of the float32 rate on most GPUs) and for problems of at
#: least this many floating-point operations (``ConvSpec.flops``): below it,
#: the host<->device copies and the launch latency (tens of microseconds
#: each) cost more than a CPU backend needs for the whole call.  A CPU
#: OpenCL driver (PoCL) is never preferred: the cython backend is faster.
PREFER_MIN_FLOPS = 2.0e8

#: Device buffers come from a memory pool per command queue (as PyTorch's
#: CUDA allocator caches blocks): a fresh driver allocation costs about
#: 0.1-0.3 ms a call on an NVIDIA GPU, often more than the kernels.  A pool
#: keeps the blocks of arrays that are gone for reuse on the same in-order
#: queue, up to this many bytes; beyond it they go back to the driver.
POOL_HOLD_BYTES = 256 * 2**20
#: False: every buffer is a new driver allocation (for tests and comparisons).
USE_POOL = True
#: Queues that keep a pool at once (a program that makes a queue per call
#: would otherwise keep a pool, and its held memory, per queue).
_POOL_QUEUES = 4

_OPS = ("conv", "conv_transpose", "conv_weight")
#: Work-groups along a launch's third dimension that every driver takes
#: (CUDA's grid, under NVIDIA's OpenCL, stops at 65535).
_MAX_GRID_Z = 65535
_PAD_MODES = {"reflect": 0, "replicate": 1, "circular": 2}
_INT32_MAX = 2**31 - 1
_PLAN_CACHE_SIZE = 256
#: Upper bound on the partial-sum buffer of a split weight gradient.
_SPLIT_BYTES = 64 * 2**20
_CONV_LAYOUT = PLAN_LAYOUTS["conv_gemm"]
_WGRAD_LAYOUT = PLAN_LAYOUTS["conv_wgrad"]


def _strides(sizes: Sequence[int]) -> List[int]:
    out = [1] * len(sizes)
    for d in range(len(sizes) - 2, -1, -1):
        out[d] = out[d + 1] * sizes[d + 1]
    return out


def _tab_row(koff: Sequence[int], klin: int, wtap: int) -> List[int]:
    return list(koff) + [0] * (3 - len(koff)) + [klin, wtap]


def _tile_class(rows: int) -> str:
    if rows >= 48:
        return "large"
    if rows >= 8:
        return "mid"
    return "small"


def _gemm_tile_class(rows: int, cols: int, groups: int, device) -> str:
    """The convolution kernel's tile class: :func:`_tile_class`, refined on
    GPUs by the work-groups the class's first tiles would give (``cols``:
    the longest launch's columns) against the device's compute units (the
    measurements are at :data:`pyconv._opencl._programs.TILE_CLASSES`)."""
    cls = _tile_class(rows)
    _, is_gpu, units = device_kind(device)
    if cls not in ("large", "mid") or not is_gpu:
        return cls
    first = TILE_CLASSES[cls][0]
    groups_of_items = ceil(rows / first.tm) * ceil(cols / first.tn) * groups
    if cls == "large" and groups_of_items < 2 * units:
        return "large_few"
    if cls == "mid" and groups_of_items > 8 * units:
        return "mid_many"
    return cls


def _gemm_splits(device, tiles, rows: int, launches, groups: int, out_bytes: int) -> int:
    """Into how many slices a convolution's reduction is cut (1: not cut).

    Only on GPUs: when a launch has fewer work-groups than two per compute
    unit (``groups``: the work-group sets side by side along dim 2, groups
    times the phases launched together; a batch-1 layer, a transposed
    convolution of a small image),
    most of the device would idle through a long serial reduction.  Each
    slice keeps at least 4 steps of ``tiles.tk``, and the partial buffer
    (``slices x out_bytes``) stays under ``_SPLIT_BYTES``.  The choice
    depends on the shapes and the device alone, so results stay the same
    from run to run.
    """
    _, is_gpu, units = device_kind(device)
    if not is_gpu or not launches:
        return 1
    longest = max(ncols for _, ncols, _ in launches)
    work_groups = ceil(rows / tiles.tm) * ceil(longest / tiles.tn) * groups
    target = 2 * units
    if work_groups >= target:
        return 1
    kred = max(k for _, _, k in launches)
    splits = min(ceil(target / work_groups), kred // (4 * tiles.tk),
                 _SPLIT_BYTES // max(out_bytes, 1))
    return max(1, splits)


def _with_phase_table(ints: List[int], phases):
    """A convolution plan with its phase table in front (see conv_gemm.cl):
    ``[nphase, start of phase 0, start of phase 1, ...] + ints``; the
    phases' ``(start, columns, reduction)`` are shifted to match."""
    head = 1 + len(phases)
    shifted = [(start + head, ncols, kred) for start, ncols, kred in phases]
    return [len(phases)] + [start for start, _, _ in shifted] + ints, shifted


def _phase_residues(spec):
    """Per spatial dim, the output residues modulo the stride that a kernel tap reaches.

    Output position ``o`` of a transposed convolution receives tap ``k`` iff
    ``o = i*s - lo + k*d`` for some input ``i``, i.e. iff
    ``o % s == (k*d - lo) % s``; residues must also be below the output size.
    """
    return [sorted(r for r in {(k * d - lo) % s for k in range(kd)} if r < o)
            for kd, d, lo, s, o in zip(spec.kernel_size, spec.dilation, spec.pad_lo,
                                       spec.stride, spec.out_size)]


@functools.lru_cache(maxsize=1024)
def _canonical(spec):
    """``spec`` with the strides and dilations that cannot change the result set to 1.

    A stride only matters along a dim with more than one output position
    (conv: ``o*s``) or input position (conv_transpose: ``i*s``), a dilation
    only along a kernel of more than one tap.  Huge values there (a stride
    of 2**39 with one output) would needlessly overflow the 32-bit plans.
    Memoised: every call asks.
    """
    steps = spec.in_size if spec.transposed else spec.out_size
    stride = tuple(s if n > 1 else 1 for s, n in zip(spec.stride, steps))
    dilation = tuple(d if k > 1 else 1 for d, k in zip(spec.dilation, spec.kernel_size))
    if stride == spec.stride and dilation == spec.dilation:
        return spec
    return replace(spec, stride=stride, dilation=dilation)


def _tapless_phases(spec) -> bool:
    """Whether some output positions of a transposed spec receive no tap at all."""
    return any(len(r) < min(s, o) for r, s, o in
               zip(_phase_residues(spec), spec.stride, spec.out_size))


class OpenCLBackend(Backend):
    """Implicit-GEMM OpenCL kernels on one device (chosen as in :mod:`._device`).

    Attributes
    ----------
    device, context, queue
        The PyOpenCL device, its context and the default in-order queue.
    selected_by : str
        How the device was chosen (environment variable, first GPU, ...).
    fp64 : bool
        Whether the device has ``cl_khr_fp64``.
    programs : ProgramCache
        Built programs; ``programs.builds`` counts compilations and
        :meth:`clear_cache` empties it.
    """

    name = "opencl"
    #: The driver's threads and the context do not survive a fork.
    fork_safe = False

    def __init__(self, device=None, selected_by: str = "explicit device"):
        if device is None:
            device, selected_by = select_device()
        self.device = device
        #: asked by ``prefers`` at every ``auto`` call: a property query is not free
        self.is_gpu = bool(device.type & cl.device_type.GPU)
        self.selected_by = selected_by
        self.context = cl.Context([device])
        self.queue = cl.CommandQueue(self.context)
        self.fp64 = device_has_fp64(device)
        self.programs = ProgramCache()
        self._plans: OrderedDict[Tuple[Any, ...], Tuple[cl.Buffer, List[Any]]] = OrderedDict()
        self._plan_lock = threading.Lock()
        self._dummy: Dict[int, cl.Buffer] = {}
        self._queues: Dict[int, cl.CommandQueue] = {}
        self._pools: OrderedDict[int, Tuple[cl.CommandQueue, Any]] = OrderedDict()
        self._supported: Dict[Tuple[Any, ...], Optional[str]] = {}
        self._templates: Dict[Tuple[Any, ...], cl_array.Array] = {}

    # ------------------------------------------------------------------
    # capabilities

    def _dtype_reason(self, dtype, device) -> Optional[str]:
        dt = np.dtype(dtype)
        if dt == np.float32:
            return None
        if dt == np.float64:
            if (self.fp64 if device == self.device else device_has_fp64(device)):
                return None
            return (f"OpenCL device {device.name.strip()!r} (platform "
                    f"{device.platform.name.strip()!r}) has no cl_khr_fp64: float64 is not "
                    "supported on it; use float32, another device (PYCONV_OPENCL_DEVICE) or "
                    "another backend")
        return f"dtype {dt} is not computed natively by the opencl backend (float32/float64 only)"

    def supports(self, op: str, spec, dtype) -> Optional[str]:
        key = (op, spec, np.dtype(dtype), self.device)
        if key in self._supported:
            return self._supported[key]
        reason = self._supports(op, spec, dtype)
        if len(self._supported) > 4096:
            self._supported.clear()
        self._supported[key] = reason
        return reason

    def _supports(self, op: str, spec, dtype) -> Optional[str]:
        if op not in _OPS:
            return f"unknown primitive {op!r}"
        reason = self._dtype_reason(dtype, self.device)
        if reason is not None:
            return reason
        itemsize = np.dtype(dtype).itemsize
        out_shape = spec.weight_shape if op == "conv_weight" else spec.output_shape
        operands = [spec.input_shape, spec.weight_shape, out_shape]
        if op == "conv_weight":
            operands[1] = spec.output_shape  # the output gradient
        limit = int(self.device.max_mem_alloc_size)
        for what, shape in zip(("input", "second operand", "output"), operands):
            nbytes = prod(shape) * itemsize
            if nbytes > limit:
                return (f"the {what} of shape {list(shape)} needs {nbytes} bytes, more than "
                        f"the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE = {limit} "
                        f"bytes on {self.device.name.strip()!r})")
        spec = _canonical(spec)
        big = [v for v in (prod(spec.in_size), prod(spec.out_size), prod(spec.kernel_size),
                           spec.in_channels, spec.out_channels) if v > _INT32_MAX // 4]
        if big:
            return f"a per-sample size of {max(big)} exceeds the kernels' 32-bit geometry"
        params = spec.stride + spec.dilation + tuple(abs(v) for p in spec.padding for v in p)
        if max(params) > _INT32_MAX // 4:
            return (f"a stride, padding or dilation of {max(params)} exceeds the kernels' "
                    "32-bit geometry")
        return None

    def prefers(self, op: str, spec, dtype) -> bool:
        if not self.is_gpu:
            return False
        if np.dtype(dtype) != np.float32 or self.supports(op, spec, dtype) is not None:
            return False
        return spec.flops >= PREFER_MIN_FLOPS

    def info(self) -> Dict[str, object]:
        platforms: List[Dict[str, Any]] = []
        flat = 0
        try:
            found = enumerate_devices()
        except BackendUnavailableError:  # pragma: no cover - the device just vanished
            found = []
        for pi, di, platform, device in found:
            if di == 0:
                platforms.append({"index": pi, "name": platform.name.strip(),
                                  "version": platform.version.strip(), "devices": []})
            entry = describe_device(device)
            entry.update(index=flat, id=f"{pi}:{di}", used=device == self.device)
            platforms[-1]["devices"].append(entry)
            flat += 1
        return {
            "device": describe_device(self.device),
            "selected_by": self.selected_by,
            "platforms": platforms,
            "programs_built": self.programs.builds,
            "programs_cached": len(self.programs),
            "prefer_min_flops": PREFER_MIN_FLOPS,
            "memory_pool": self.pool_info(),
        }

    def clear_cache(self) -> None:
        """Drop the built programs and cached plans, and give the memory the
        pools hold back to the driver (arrays still in use keep theirs)."""
        self.programs.clear()
        with self._plan_lock:
            self._plans.clear()
        self._templates.clear()
        forget_launches()
        for _, pool in list(self._pools.values()):
            if pool:
                pool.free_held()

    def pool_info(self) -> Dict[str, int]:
        """Bytes of device memory the pools hand out (``active``) and keep for reuse (``held``)."""
        pools = [pool for _, pool in list(self._pools.values()) if pool]
        active = sum(int(p.active_bytes) for p in pools)
        return {"queues": len(pools), "active_bytes": active,
                "held_bytes": sum(int(p.managed_bytes) for p in pools) - active}

    def _allocator(self, queue):
        """The memory pool for buffers used on ``queue``, or None (the driver's allocation).

        A block is reused only on the queue it was allocated for: on an
        in-order queue, commands enqueued later run after every command
        that used the block before, so reuse cannot race.  Out-of-order
        queues get no pool.
        """
        if not USE_POOL:
            return None
        entry = self._pools.get(queue.int_ptr)
        if entry is not None:
            with self._plan_lock:
                if queue.int_ptr in self._pools:
                    self._pools.move_to_end(queue.int_ptr)  # used last: kept longest
        else:
            props = queue.properties
            in_order = not props & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE
            pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(queue)) if in_order else None
            # (the queue is kept alive with its pool, so its handle is never reused;
            # past _POOL_QUEUES queues the oldest pool lets go of its held blocks and
            # is dropped: blocks still in use keep it alive until they are freed)
            with self._plan_lock:
                entry = self._pools.setdefault(queue.int_ptr, (queue, pool))
                while len(self._pools) > _POOL_QUEUES:
                    _, (_, old) = self._pools.popitem(last=False)
                    if old:
                        old.free_held()
        return entry[1]

    def _empty(self, queue, shape, dtype, pool) -> cl_array.Array:
        """``cl_array.empty(queue, shape, dtype, allocator=pool)``, in about a tenth of the time.

        PyOpenCL's constructor checks the shape at every call (about 17 us
        here); :func:`pyopencl.array.empty_like` of a template skips that.
        One template per (queue, shape, dtype): an Array over a 16-byte
        placeholder buffer, never used for data, rebuilt when the queue's
        pool changed.
        """
        key = (queue.int_ptr, tuple(shape), np.dtype(dtype).char)
        template = self._templates.get(key)
        if template is None or template.allocator is not pool or template.queue != queue:
            template = cl_array.Array(queue, tuple(shape), dtype, allocator=pool,
                                      data=self._buf(None, queue.context))
            if len(self._templates) >= 256:
                self._templates.clear()
            self._templates[key] = template
        return cl_array.empty_like(template)

    @staticmethod
    def _trim(pool) -> None:
        """Give a pool's held blocks back to the driver once they pass :data:`POOL_HOLD_BYTES`."""
        if pool is not None and int(pool.managed_bytes) - int(pool.active_bytes) > POOL_HOLD_BYTES:
            pool.free_held()

    # ------------------------------------------------------------------
    # data

    def to_device(self, array, queue=None) -> cl_array.Array:
        """A C-contiguous copy of ``array`` on this backend's device (a convenience for users)."""
        return cl_array.to_device(queue or self.queue, np.ascontiguousarray(array))

    # -- the front layer's placement hooks (see pyconv._registry.Backend) -----

    def owns(self, a) -> bool:
        return isinstance(a, cl_array.Array)

    def asarray(self, a, dtype):
        """Device arrays pass unconverted (checked); host operands as NumPy's default."""
        if not self.owns(a):
            return super().asarray(a, dtype)
        if np.dtype(a.dtype) != np.dtype(dtype):
            raise TypeError(f"a {a.dtype} pyopencl array cannot be used in a {np.dtype(dtype)} "
                            "call (device arrays are never converted)")
        if not a.flags.c_contiguous:
            raise ValueError("pyopencl arrays must be C-contiguous")
        return a

    def zeros(self, shape, dtype, like=()):
        """Zeros on the device of the first device array in ``like`` (else NumPy's)."""
        on_dev = [a for a in like if a is not None and self.owns(a)]
        if not on_dev:
            return super().zeros(shape, dtype, like)
        first = on_dev[0]
        queue = first.queue if first.queue is not None else self._queue_for(first.context)
        pool = self._allocator(queue)
        if prod(shape) == 0:
            return cl_array.empty(queue, tuple(shape), dtype, allocator=pool)
        return cl_array.zeros(queue, tuple(shape), dtype, allocator=pool)

    def _queue_for(self, ctx) -> cl.CommandQueue:
        if ctx == self.context:
            return self.queue
        q = self._queues.get(ctx.int_ptr)
        if q is None:
            q = self._queues[ctx.int_ptr] = cl.CommandQueue(ctx)
        return q

    def _prepare(self, *arrays):
        """(queue, any input on the device, device arrays) for one call."""
        on_dev = [a for a in arrays if isinstance(a, cl_array.Array)]
        if on_dev:
            first = on_dev[0]
            queue = first.queue if first.queue is not None else self._queue_for(first.context)
        else:
            queue = self.queue
        out = []
        for a in arrays:
            if a is None or isinstance(a, cl_array.Array):
                if a is not None:
                    if a.context != queue.context:
                        raise ValueError("opencl backend: device arrays from different "
                                         "OpenCL contexts in one call")
                    if not a.flags.c_contiguous:
                        raise ValueError("opencl backend: device arrays must be C-contiguous")
                    if a.offset:
                        a = a.copy(queue=queue)  # kernels take whole buffers
                out.append(a)
            else:
                out.append(cl_array.to_device(queue, np.ascontiguousarray(a),
                                              allocator=self._allocator(queue)))
        return queue, bool(on_dev), out

    def _require(self, dtype, device) -> None:
        reason = self._dtype_reason(dtype, device)
        if reason is not None:
            raise BackendUnavailableError(f"backend 'opencl' cannot run this call: {reason}")

    def _buf(self, a, ctx):
        """The buffer of a device array; a 1-element dummy for None/empty arrays."""
        if a is not None and a.size:
            return a.base_data
        buf = self._dummy.get(ctx.int_ptr)
        if buf is None:
            buf = self._dummy[ctx.int_ptr] = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 16)
        return buf

    def _plan(self, ctx, key, build):
        """A cached plan: (int32 device buffer, launch list)."""
        full = (ctx.int_ptr,) + key
        with self._plan_lock:
            hit = self._plans.get(full)
            if hit is not None:
                self._plans.move_to_end(full)
                return hit
        ints, launches = build()
        arr = np.asarray(ints if len(ints) else [0], dtype=np.int64)
        if np.abs(arr).max() > _INT32_MAX:
            raise BackendUnavailableError("backend 'opencl' cannot run this call: its geometry "
                                          "exceeds the kernels' 32-bit plan")
        buf = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR,
                        hostbuf=arr.astype(np.int32))
        with self._plan_lock:
            self._plans[full] = (buf, launches)
            while len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return buf, launches

    # ------------------------------------------------------------------
    # plans

    @staticmethod
    def _conv_plan(spec, has_bias: bool):
        g = spec.groups
        cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
        ks, dil = spec.kernel_size, spec.dilation
        kk = prod(ks)
        xstr, ostr = _strides(spec.in_size), _strides(spec.out_size)
        qprod = prod(spec.out_size)
        tab = []
        for t, k in enumerate(itertools.product(*(range(n) for n in ks))):
            koff = [kd * dd for kd, dd in zip(k, dil)]
            tab += _tab_row(koff, sum(o * s for o, s in zip(koff, xstr)), t)
        dims = [dict(Q=o, S=s, ISTEP=st, IOFF=lo, OMUL=os_) for o, s, st, lo, os_ in zip(
            spec.out_size, spec.in_size, spec.stride, spec.pad_lo, ostr)]
        hdr = _CONV_LAYOUT.pack(
            dims, M=cout_g, T=kk, KRED=cin_g * kk, N=spec.batch, QPROD=qprod, CIN_G=cin_g,
            XC=spec.in_channels, SPROD=prod(spec.in_size), YC=spec.out_channels,
            OPROD=prod(spec.out_size), AM=cin_g * kk, AC=kk, OBASE=0, HASBIAS=int(has_bias),
            TAB=_CONV_LAYOUT.size, WGS=cout_g * cin_g * kk)
        return _with_phase_table(hdr + tab, [(0, spec.batch * qprod, cin_g * kk)])

    @staticmethod
    def _conv_transpose_plan(spec, has_bias: bool):
        g = spec.groups
        cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
        ks, dil, st, lo = spec.kernel_size, spec.dilation, spec.stride, spec.pad_lo
        kk = prod(ks)
        xstr, ostr = _strides(spec.in_size), _strides(spec.out_size)
        kstr = _strides(ks)
        ints: List[int] = []
        launches = []
        # only the output phases some tap reaches; the rest get the bias alone,
        # from one fill launch (see _tapless_phases), so a huge stride costs
        # at most prod(kernel_size) launches
        for r in itertools.product(*_phase_residues(spec)):
            q = [(o - rd + s - 1) // s for o, rd, s in zip(spec.out_size, r, st)]
            # taps reaching phase r along each dim, with the input offset they read
            per_dim = [[(k, (rd + l - k * d) // s) for k in range(kd)
                        if (rd + l - k * d) % s == 0]
                       for kd, rd, l, d, s in zip(ks, r, lo, dil, st)]
            tab = []
            for combo in itertools.product(*per_dim):
                koff = [off for _, off in combo]
                wtap = sum(k * s for (k, _), s in zip(combo, kstr))
                tab += _tab_row(koff, sum(o * s for o, s in zip(koff, xstr)), wtap)
            taps = len(tab) // 5
            poff = len(ints)
            dims = [dict(Q=qd, S=s, ISTEP=1, IOFF=0, OMUL=sd * os_) for qd, s, sd, os_ in zip(
                q, spec.in_size, st, ostr)]
            ints += _CONV_LAYOUT.pack(
                dims, M=cout_g, T=taps, KRED=cin_g * taps, N=spec.batch, QPROD=prod(q),
                CIN_G=cin_g, XC=spec.in_channels, SPROD=prod(spec.in_size),
                YC=spec.out_channels, OPROD=prod(spec.out_size), AM=kk, AC=cout_g * kk,
                OBASE=sum(rd * os_ for rd, os_ in zip(r, ostr)), HASBIAS=int(has_bias),
                TAB=_CONV_LAYOUT.size, WGS=cin_g * cout_g * kk) + tab
            launches.append((poff, spec.batch * prod(q), cin_g * taps))
        return _with_phase_table(ints, launches)

    def _fill_bias(self, queue, y, bd):
        """Set every element of ``y`` to its channel's bias (or 0)."""
        knl, i64 = self._util(queue, y.dtype, "fill_bias", y.size)
        ctx = queue.context
        self._elementwise(queue, knl, y.size,
                          (self._buf(bd, ctx), self._buf(y, ctx), scalar_index(y.size, i64),
                           scalar_index(prod(y.shape[2:]), i64), np.int32(y.shape[1]),
                           np.int32(bd is not None)))

    @staticmethod
    def _wgrad_plan(spec, rchunk: int):
        g = spec.groups
        cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
        ks, dil = spec.kernel_size, spec.dilation
        kk = prod(ks)
        xstr = _strides(spec.in_size)
        tab = []
        for t, k in enumerate(itertools.product(*(range(n) for n in ks))):
            koff = [kd * dd for kd, dd in zip(k, dil)]
            tab += _tab_row(koff, sum(o * s for o, s in zip(koff, xstr)), t)
        dims = [dict(O=o, S=s, STRIDE=st, LO=lo) for o, s, st, lo in zip(
            spec.out_size, spec.in_size, spec.stride, spec.pad_lo)]
        hdr = _WGRAD_LAYOUT.pack(
            dims, M=cout_g, NC=cin_g * kk, KK=kk, N=spec.batch, OPROD=prod(spec.out_size),
            RCHUNK=rchunk, G=g, CIN_G=cin_g, XC=spec.in_channels, YC=spec.out_channels,
            SPROD=prod(spec.in_size), TAB=_WGRAD_LAYOUT.size)
        return hdr + tab, None

    # ------------------------------------------------------------------
    # primitives

    def _defines(self, dtype, nd, *sizes):
        return ((("PRECISION", 64 if np.dtype(dtype) == np.float64 else 32), ("ND", nd))
                + index_type(*sizes))

    def _gemm_recipe(self, ctx, device, op, spec, has_bias, dtype, xsize, wsize, ysize):
        """Everything a convolution call of this kind launches, worked out once:
        ``(plan, kernel, local size, tapless, slices, [(global size, the
        arguments after the buffers, flops), ...])``, cached with the kernels
        (:attr:`ProgramCache.recipes`)."""
        build = self._conv_transpose_plan if spec.transposed else self._conv_plan
        plan, launches = self._plan(ctx, (op, spec, has_bias), lambda: build(spec, has_bias))
        rows = spec.out_channels // spec.groups
        cls = _gemm_tile_class(rows, max((n for _, n, _ in launches), default=0),
                               spec.groups, device)
        defines = self._defines(dtype, spec.nd, xsize, wsize, ysize)
        tiles, knl = self.programs.tiled_kernel(ctx, device, "conv_gemm", "conv_gemm",
                                                cls, defines, dtype.itemsize)
        # (output positions no tap reaches get the bias from a fill, which a
        # partial buffer would not carry: no split there.  The partial buffer
        # stays under _SPLIT_BYTES, so its indices fit the same index type.)
        tapless = spec.transposed and _tapless_phases(spec)
        # all phases in one launch, unless group x phase work-groups would
        # pass the grid's limit along dim 2 (then one launch per phase)
        fused = spec.groups * len(launches) <= _MAX_GRID_Z
        per_launch = max(1, len(launches)) if fused else 1
        # (the phases of one launch run side by side: they count as groups)
        splits = 1 if tapless else _gemm_splits(device, tiles, rows, launches,
                                                spec.groups * per_launch,
                                                ysize * dtype.itemsize)
        splits = min(splits, max(1, _MAX_GRID_Z // (spec.groups * per_launch)))
        lx, ly = tiles.local_size
        gy = ceil(rows / tiles.tm) * ly
        flops_per_col = 2 * spec.out_channels * spec.in_channels // spec.groups * prod(
            spec.kernel_size) / max(1, prod(spec.stride) if spec.transposed else 1)
        batches = []
        for pfirst, phases in ([(0, launches)] if fused
                               else [(p, [ph]) for p, ph in enumerate(launches)]):
            widest = max((ncols for _, ncols, _ in phases), default=0)
            if widest:
                batches.append(((ceil(widest / tiles.tn) * lx, gy,
                                 spec.groups * len(phases) * splits),
                                (np.int32(splits), np.int32(pfirst), np.int32(len(phases))),
                                sum(n for _, n, _ in phases) * flops_per_col))
        return plan, knl, (lx, ly, 1), tapless, splits, batches

    def _gemm(self, op, x, w, b, spec):
        spec = _canonical(spec)
        dtype = np.dtype(x.dtype)
        queue, on_dev, (xd, wd, bd) = self._prepare(x, w, b)
        ctx, device = queue.context, queue.device
        self._require(dtype, device)
        pool = self._allocator(queue)
        y = self._empty(queue, spec.output_shape, dtype, pool)
        if y.size:
            has_bias = bd is not None
            key = ("conv_gemm", ctx.int_ptr, device.int_ptr, op, spec, has_bias, dtype.char)
            recipe = self.programs.recipes.get(key)
            if recipe is None:
                recipe = self._gemm_recipe(ctx, device, op, spec, has_bias, dtype,
                                           xd.size, wd.size, y.size)
                self.programs.remember(key, recipe)
            plan, knl, local, tapless, splits, batches = recipe
            out = y if splits == 1 else self._empty(queue, (splits,) + y.shape, dtype, pool)
            bufs = (self._buf(xd, ctx), self._buf(wd, ctx), self._buf(bd, ctx),
                    self._buf(out, ctx), plan)
            if tapless:
                self._fill_bias(queue, y, bd)
            for global_size, tail, flops in batches:
                launch_in_pieces(queue, knl, global_size, local, bufs + tail, axes=(0,),
                                 flops=flops)
            if splits > 1:
                self._sum_conv_splits(queue, out, y, splits, bd)
        self._trim(pool)
        return y if on_dev else y.get(queue)

    def conv(self, x, w, b, spec):
        """Convolution ``(N, C_in, *S) -> (N, C_out, *O)`` (see :mod:`pyconv._spec`)."""
        return self._gemm("conv", x, w, b, spec)

    def conv_transpose(self, x, w, b, spec):
        """Transposed convolution, per-phase gather form (``spec.transposed``)."""
        return self._gemm("conv_transpose", x, w, b, spec)

    def _splits(self, device, tiles, spec, rows, cols, reduction, out_bytes):
        """How many slices the weight-gradient reduction is cut into (deterministic)."""
        if reduction <= tiles.tk * 16:
            return 1
        groups_of_items = ceil(rows / tiles.tm) * ceil(cols / tiles.tn) * spec.groups
        is_cpu, _, units = device_kind(device)
        target = 4 * units
        # ... and slices short enough to be enqueued in pieces (Ctrl-C between them)
        piece = PIECE_FLOPS["cpu" if is_cpu else "gpu"]
        splits = min(max(ceil(target / groups_of_items), ceil(spec.flops / piece)),
                     ceil(reduction / (tiles.tk * 16)))
        splits = min(splits, max(1, _SPLIT_BYTES // max(out_bytes, 1)),
                     max(1, _MAX_GRID_Z // spec.groups))  # groups x slices along dim 2
        return max(splits, ceil(reduction / 2**30), 1)

    def conv_weight(self, x, grad_out, spec):
        """Weight gradient of conv, ``(C_out, C_in/groups, *K)``."""
        spec = _canonical(spec)
        dtype = np.dtype(x.dtype)
        queue, on_dev, (xd, gd) = self._prepare(x, grad_out)
        ctx, device = queue.context, queue.device
        self._require(dtype, device)
        pool = self._allocator(queue)
        gw = self._empty(queue, spec.weight_shape, dtype, pool)
        if gw.size:
            rows = spec.out_channels // spec.groups
            cols = spec.in_channels // spec.groups * prod(spec.kernel_size)
            reduction = spec.batch * prod(spec.out_size)
            cls = "tiny" if rows < 8 and cols <= 64 else _tile_class(rows)
            defines = self._defines(dtype, spec.nd, xd.size, gd.size, 4 * gw.size)
            tiles, knl = self.programs.tiled_kernel(ctx, device, "conv_wgrad", "conv_wgrad",
                                                    cls, defines, dtype.itemsize)
            splits = self._splits(device, tiles, spec, rows, cols, reduction, gw.nbytes)
            rchunk = ceil(ceil(reduction / splits) / tiles.tk) * tiles.tk if reduction else 0
            splits = ceil(reduction / rchunk) if reduction else 1
            plan, _ = self._plan(ctx, ("conv_weight", spec, rchunk),
                                 lambda: self._wgrad_plan(spec, rchunk))
            out = gw if splits == 1 else self._empty(queue, (splits,) + gw.shape, dtype, pool)
            lx, ly = tiles.local_size
            launch_in_pieces(queue, knl, (ceil(cols / tiles.tn) * lx,
                                          ceil(rows / tiles.tm) * ly, spec.groups * splits),
                             (lx, ly, 1),
                             (self._buf(xd, ctx), self._buf(gd, ctx), self._buf(out, ctx), plan),
                             axes=(2, 0), flops=spec.flops)
            if splits > 1:
                self._sum_splits(queue, out, gw, splits)
        self._trim(pool)
        return gw if on_dev else gw.get(queue)

    def _util(self, queue, dtype, name, *sizes):
        defines = (("PRECISION", 64 if np.dtype(dtype) == np.float64 else 32),) + \
            index_type(*sizes)
        return self.programs.kernel(queue.context, "util", name, defines), bool(
            index_type(*sizes))

    @staticmethod
    def _elementwise(queue, knl, n: int, args) -> None:
        """Launch a util.cl kernel over ``n`` elements (1-d, padded to whole work-groups)."""
        local = elementwise_local_size(knl, queue.device, n)
        launch(queue, knl, (ceil(n / local) * local,), (local,), args)

    def _sum_splits(self, queue, part, out, splits):
        knl, i64 = self._util(queue, out.dtype, "sum_splits", part.size)
        self._elementwise(queue, knl, out.size,
                          (self._buf(part, queue.context), self._buf(out, queue.context),
                           scalar_index(out.size, i64), np.int32(splits)))

    def _sum_conv_splits(self, queue, part, y, splits, bias):
        """``y`` = the slices of a split convolution's ``part`` added in order, plus the bias."""
        ctx = queue.context
        knl, i64 = self._util(queue, y.dtype, "sum_splits_bias", part.size)
        self._elementwise(queue, knl, y.size,
                          (self._buf(part, ctx), self._buf(y, ctx), self._buf(bias, ctx),
                           scalar_index(y.size, i64), np.int32(splits),
                           scalar_index(prod(y.shape[2:]), i64), np.int32(y.shape[1]),
                           np.int32(bias is not None)))

    def pad(self, x, mode: str, pads):
        """Pad the spatial dims of a batched device array with a non-zero ``padding_mode``.

        ``pads`` holds ``(lo, hi)`` per spatial dim, already validated by
        :mod:`pyconv._padding`, whose index maps the kernel applies.  Host
        arrays take the NumPy default.
        """
        if not self.owns(x):
            return super().pad(x, mode, pads)
        queue, _, (xd,) = self._prepare(x)
        self._require(xd.dtype, queue.device)
        nd = xd.ndim - 2
        pads = [tuple(int(v) for v in p) for p in pads]
        sizes = xd.shape[2:]
        out_sizes = tuple(n + lo + hi for (lo, hi), n in zip(pads, sizes))
        y = cl_array.empty(queue, xd.shape[:2] + out_sizes, xd.dtype,
                           allocator=self._allocator(queue))
        if y.size:
            knl, i64 = self._util(queue, xd.dtype, "pad_nd", xd.size, y.size)
            fill = (1,) * (3 - nd)
            lens = fill + tuple(sizes)
            outs = fill + out_sizes
            los = (0,) * (3 - nd) + tuple(lo for lo, _ in pads)
            self._elementwise(queue, knl, y.size,
                              (self._buf(xd, queue.context), self._buf(y, queue.context),
                               scalar_index(y.size, i64), np.int32(_PAD_MODES[mode]))
                              + tuple(np.int32(v) for v in lens + outs + los))
        return y
