"""Kernel sources, program building and caching, launch-size choice.

* Sources are the ``kernels/*.cl`` files shipped in the package; every
  program is ``common.cl`` followed by one kernel file, specialised with
  ``-D`` defines (``PRECISION``, ``ND``, tile sizes, ``INDEX64``).
* :class:`ProgramCache` builds each (context, file, defines) once and keeps
  the kernel objects (clearable with :meth:`ProgramCache.clear`).
  PyOpenCL's own on-disk binary cache applies as usual
  (``PYOPENCL_NO_CACHE`` disables it).  Result buffers are never cached.
* :func:`pick_tiles` walks a list of tile configurations from the largest
  down and keeps the first that the device accepts: its work-group size
  within ``max_work_group_size``, ``max_work_item_sizes`` and the built
  kernel's own ``WORK_GROUP_SIZE``, its local tiles within
  ``local_mem_size``.  The last configuration needs one work-item.
* :func:`launch` is the single place kernels are enqueued; it checks the
  sizes against the device and raises :class:`LaunchError` showing them.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from dataclasses import dataclass
from math import prod
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
import pyopencl as cl

__all__ = ["PlanLayout", "PLAN_LAYOUTS", "Tiles", "TILE_CLASSES", "TILE_CLASSES_CPU", "tile_classes", "ProgramCache", "device_kind",
           "LaunchError", "launch", "launch_in_pieces", "kernel_source", "device_limits"]

_KERNEL_DIR = os.path.join(os.path.dirname(__file__), "kernels")
_sources: Dict[str, str] = {}
_source_lock = threading.Lock()


class PlanLayout(NamedTuple):
    """The layout of a kernel's plan header: the one place it is written down.

    A plan is an int32 buffer: ``fields`` in this order, then
    ``dim_fields`` for each of 3 spatial dims (zeros for missing dims),
    then the tap table.  The host packs it with :meth:`pack`; the kernel
    file reads ``P[<prefix>_<FIELD>]`` and ``P[<prefix>_DIM +
    <prefix>_DIMW * d + <prefix>_<DIM_FIELD>]``, from ``#define`` lines
    that :func:`kernel_source` generates from this layout.
    """

    prefix: str
    fields: Tuple[str, ...]
    dim_fields: Tuple[str, ...]

    def pack(self, dims: Sequence[Mapping[str, int]], **values: int) -> List[int]:
        """The header ints: ``values`` by field name, one mapping per spatial dim."""
        if set(values) != set(self.fields):
            raise KeyError(f"{self.prefix} plan header: fields {sorted(values)} != "
                           f"{sorted(self.fields)}")
        out = [int(values[f]) for f in self.fields]
        for d in range(3):
            out += [int(dims[d][f]) for f in self.dim_fields] if d < len(dims) else \
                [0] * len(self.dim_fields)
        return out

    @property
    def size(self) -> int:
        """Ints in the header (where the tap table starts)."""
        return len(self.fields) + 3 * len(self.dim_fields)

    def defines(self) -> str:
        """The ``#define`` lines the kernel file reads the header with."""
        p = self.prefix
        clash = set(self.fields) & (set(self.dim_fields) | {"DIM", "DIMW"})
        if clash:
            raise ValueError(f"{p} plan layout: {sorted(clash)} name both a field and a "
                             "per-dim field")
        lines = [f"#define {p}_{f} {i}" for i, f in enumerate(self.fields)]
        lines += [f"#define {p}_DIM {len(self.fields)}", f"#define {p}_DIMW {len(self.dim_fields)}"]
        lines += [f"#define {p}_{f} {i}" for i, f in enumerate(self.dim_fields)]
        return "\n".join(lines) + "\n"


#: Plan layouts of the kernel files that read a plan (see each file's comment
#: for what the fields mean).
PLAN_LAYOUTS: Dict[str, PlanLayout] = {
    "conv_gemm": PlanLayout(
        "H", ("M", "T", "KRED", "N", "QPROD", "CIN_G", "XC", "SPROD", "YC", "OPROD", "AM",
              "AC", "OBASE", "HASBIAS", "TAB", "WGS"),
        ("Q", "S", "ISTEP", "IOFF", "OMUL")),
    "conv_wgrad": PlanLayout(
        "W", ("M", "NC", "KK", "N", "OPROD", "RCHUNK", "G", "CIN_G", "XC", "YC", "SPROD",
              "TAB"),
        ("O", "S", "STRIDE", "LO")),
}


def kernel_source(name: str) -> str:
    """``common.cl``, the plan layout's defines, ``<name>.cl``: read once from the package."""
    with _source_lock:
        if name not in _sources:
            parts = []
            for fname in ("common.cl", f"{name}.cl"):
                with open(os.path.join(_KERNEL_DIR, fname), encoding="utf-8") as fh:
                    text = fh.read()
                if fname != "common.cl" and name in PLAN_LAYOUTS:
                    text = ("/* plan header layout (generated from PLAN_LAYOUTS) */\n"
                            + PLAN_LAYOUTS[name].defines() + text)
                parts.append(f"/* ---- {fname} ---- */\n" + text)
            _sources[name] = "\n".join(parts)
        return _sources[name]


class LaunchError(RuntimeError):
    """A launch whose sizes the device cannot run (the numbers are in the message)."""


@dataclass(frozen=True)
class Tiles:
    """Implicit-GEMM tile: TM x TN outputs per work-group, TK deep, RM x RN per item."""

    tm: int
    tn: int
    tk: int
    rm: int
    rn: int
    consecutive: bool = False

    @property
    def local_size(self) -> Tuple[int, int]:
        return (self.tn // self.rn, self.tm // self.rm)

    @property
    def work_group_size(self) -> int:
        return prod(self.local_size)

    def local_bytes(self, itemsize: int) -> int:
        return self.tk * (self.tm + 1 + self.tn) * itemsize

    def defines(self, itemsize: int = 4) -> Tuple[Tuple[str, object], ...]:
        out: Tuple[Tuple[str, object], ...] = (("TM", self.tm), ("TN", self.tn),
                                                ("TK", self.tk), ("RM", self.rm),
                                                ("RN", self.rn))
        if self.consecutive:
            # vectors of at most 32 bytes (wider ones break some CPU drivers)
            out += (("CONSECUTIVE", None), ("VW", min(self.rn, 32 // itemsize)))
        return out


#: Tile configurations by class, largest first.  Every one keeps
#: TK % (TM/RM) == 0 (the kernels' B-tile loader needs it).
#: "large": many output channels per group (dense layers);
#: "mid": 8..47 channels per group; "small": 1..7 channels per group
#: (depthwise and narrow groups): one channel row per work-group and long
#: rows of positions; "tiny": weight gradients of small groups (few rows
#: and few columns, the work is in the reduction).
#:
#: On GPUs the convolution kernel (not the weight gradient's) also has two
#: classes chosen by occupancy (:func:`pyconv._opencl._backend._gemm_tile_class`):
#: "large_few" when the "large" tiles would give fewer work-groups than
#: twice the device's compute units (smaller tiles, more work-groups), and
#: "mid_many" when the "mid" tiles give more than eight times as many
#: (bigger tiles, fewer loads per product).  Measured on an NVIDIA H200 (132
#: compute units; ``tools/gpu_tiles.py``, 46 workloads): 64x64x32 is within
#: 5% of the best "large" shape wherever there are many work-groups and
#: 32x64x16 is 1.2-1.5x faster than it where there are few (transposed
#: layers on small inputs, batch-1 layers, ASPP); 16x256x16 is 1.1-1.2x
#: faster than 16x64x16 on long rows (long kernels, 3-D layers).
TILE_CLASSES: Dict[str, Tuple[Tiles, ...]] = {
    "large": (Tiles(64, 64, 32, 4, 4), Tiles(64, 64, 16, 4, 4), Tiles(32, 32, 16, 4, 4),
              Tiles(16, 16, 16, 2, 2), Tiles(8, 8, 8, 1, 1), Tiles(1, 4, 4, 1, 4)),
    "large_few": (Tiles(32, 64, 16, 2, 4), Tiles(32, 32, 16, 4, 4), Tiles(16, 16, 16, 2, 2),
                  Tiles(8, 8, 8, 1, 1), Tiles(1, 4, 4, 1, 4)),
    "mid": (Tiles(16, 64, 16, 2, 4), Tiles(16, 32, 16, 2, 4), Tiles(8, 16, 8, 1, 2),
            Tiles(1, 4, 4, 1, 4)),
    "mid_many": (Tiles(16, 256, 16, 2, 8), Tiles(16, 64, 16, 2, 4), Tiles(16, 32, 16, 2, 4),
                 Tiles(8, 16, 8, 1, 2), Tiles(1, 4, 4, 1, 4)),
    "small": (Tiles(1, 256, 16, 1, 4), Tiles(1, 64, 16, 1, 4), Tiles(1, 16, 16, 1, 1),
              Tiles(1, 4, 4, 1, 4)),
    "tiny": (Tiles(4, 16, 16, 1, 1), Tiles(4, 8, 16, 1, 1), Tiles(1, 4, 4, 1, 4)),
}


#: The same classes for CPU devices (PoCL and other CPU drivers): a
#: work-group runs as a loop over its work-items there, so fewer, fatter
#: work-items (8 x 8 register blocks) and deeper stages (fewer barriers)
#: pay off; measured 3-4x faster than the GPU shapes on PoCL.
TILE_CLASSES_CPU: Dict[str, Tuple[Tiles, ...]] = {
    "large": (Tiles(64, 64, 32, 8, 8, True),) + TILE_CLASSES["large"],
    "mid": (Tiles(16, 64, 32, 4, 8, True),) + TILE_CLASSES["mid"],
    "small": (Tiles(1, 256, 32, 1, 8, True),) + TILE_CLASSES["small"],
    "tiny": TILE_CLASSES["tiny"],
}
# (the occupancy classes are GPU rules: on CPUs they are the plain ones)
TILE_CLASSES_CPU["large_few"] = TILE_CLASSES_CPU["large"]
TILE_CLASSES_CPU["mid_many"] = TILE_CLASSES_CPU["mid"]


def tile_classes(device) -> Dict[str, Tuple[Tiles, ...]]:
    """The tile lists for a device: :data:`TILE_CLASSES_CPU` on CPUs."""
    try:
        is_cpu = bool(device.type & cl.device_type.CPU)
    except (AttributeError, TypeError, cl.Error):
        is_cpu = False
    return TILE_CLASSES_CPU if is_cpu else TILE_CLASSES


class ProgramCache:
    """Built programs per (context, kernel file, defines); kernels per name.

    ``builds`` counts the programs compiled through this cache (tests use
    it to check that a second call does not rebuild).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._programs: Dict[Tuple[Any, ...], cl.Program] = {}
        self._kernels: Dict[Tuple[Any, ...], cl.Kernel] = {}
        self._tiles: Dict[Tuple[Any, ...], Tuple[Tiles, cl.Kernel]] = {}
        #: what a call of one kind launches, worked out from these kernels once
        #: (the backend's launch recipes; cleared with them)
        self.recipes: Dict[Tuple[Any, ...], Any] = {}
        self.builds = 0

    def clear(self) -> None:
        """Forget every program, kernel and tile choice (e.g. between contexts)."""
        with self._lock:
            self._programs.clear()
            self._kernels.clear()
            self._tiles.clear()
            self.recipes.clear()

    def remember(self, key: Tuple[Any, ...], recipe: Any) -> None:
        """Keep a launch recipe (at most 1024: the oldest half goes first)."""
        with self._lock:
            if len(self.recipes) >= 1024:
                for old in list(self.recipes)[:512]:
                    del self.recipes[old]
            self.recipes[key] = recipe

    def __len__(self) -> int:
        return len(self._programs)

    @staticmethod
    def options(defines: Sequence[Tuple[str, object]]) -> List[str]:
        return [f"-D{name}={value}" if value is not None else f"-D{name}"
                for name, value in defines]

    def kernel(self, ctx, name: str, kernel_name: str,
               defines: Tuple[Tuple[str, object], ...]) -> cl.Kernel:
        """The kernel ``kernel_name`` of ``<name>.cl`` built with ``defines``."""
        key = (ctx.int_ptr, name, defines)
        with self._lock:
            kkey = key + (kernel_name,)
            knl = self._kernels.get(kkey)
            if knl is not None:
                return knl
            program = self._programs.get(key)
            if program is None:
                program = cl.Program(ctx, kernel_source(name)).build(
                    options=self.options(defines))
                self.builds += 1
                self._programs[key] = program
            knl = getattr(program, kernel_name)
            self._kernels[kkey] = knl
            return knl

    def tiled_kernel(self, ctx, device, name: str, kernel_name: str, tile_class: str,
                     base: Tuple[Tuple[str, object], ...], itemsize: int):
        """The largest tile configuration of ``tile_class`` the device runs, and its kernel."""
        key = (ctx.int_ptr, device.int_ptr, name, kernel_name, tile_class, base)
        hit = self._tiles.get(key)
        if hit is not None:
            return hit
        max_wg, max_items, local_mem = device_limits(device)
        tried = []
        for tiles in tile_classes(device)[tile_class]:
            lx, ly = tiles.local_size
            if (tiles.work_group_size > max_wg or lx > max_items[0] or ly > max_items[1]
                    or tiles.local_bytes(itemsize) > local_mem):
                tried.append(f"{tiles}: exceeds device limits")
                continue
            try:
                knl = self.kernel(ctx, name, kernel_name, base + tiles.defines(itemsize))
            except (cl.RuntimeError, cl.LogicError) as exc:
                tried.append(f"{tiles}: build failed ({exc})")
                continue
            kwg = knl.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device)
            if tiles.work_group_size > kwg:
                tried.append(f"{tiles}: kernel WORK_GROUP_SIZE is {kwg}")
                continue
            with self._lock:
                self._tiles[key] = (tiles, knl)
            return tiles, knl
        raise LaunchError(f"no tile configuration of {kernel_name} fits device "
                          f"{device.name.strip()!r}: " + "; ".join(tried))


def device_limits(device):
    """(max_work_group_size, max_work_item_sizes, local_mem_size) of a device."""
    return (int(device.max_work_group_size), [int(v) for v in device.max_work_item_sizes],
            int(device.local_mem_size))


_launch_lock = threading.Lock()
#: Kernels whose scalar argument types are declared (see :func:`launch`).
_typed_kernels: Set[Any] = set()


@functools.lru_cache(maxsize=512)
def _work_group_limits(kernel, device) -> Tuple[int, List[int]]:
    """(largest work-group of ``kernel`` on ``device``, max_work_item_sizes).

    Each is a driver query (microseconds each, at every launch otherwise);
    the answers never change for a built kernel.
    """
    limit = min(int(device.max_work_group_size),
                kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device))
    return limit, [int(v) for v in device.max_work_item_sizes]


@functools.lru_cache(maxsize=64)
def device_kind(device) -> Tuple[bool, bool, int]:
    """``(is_cpu, is_gpu, compute units)`` of a device, asked of the driver once."""
    try:
        kind = device.type
        is_cpu, is_gpu = bool(kind & cl.device_type.CPU), bool(kind & cl.device_type.GPU)
    except (AttributeError, TypeError, cl.Error):
        is_cpu = is_gpu = False
    try:
        units = int(device.max_compute_units)
    except (AttributeError, TypeError, cl.Error):
        units = 1
    return is_cpu, is_gpu, units


def launch(queue, kernel, global_size: Sequence[int], local_size: Optional[Sequence[int]],
           args: Sequence[object], offset: Optional[Sequence[int]] = None) -> cl.Event:
    """Validate the sizes against the device, set the arguments, enqueue.

    The global size must be a positive multiple of the local size in every
    dimension; the local size must fit ``max_work_item_sizes``,
    ``max_work_group_size`` and the kernel's ``WORK_GROUP_SIZE``.
    ``offset`` is the global work offset (for :func:`launch_in_pieces`).
    """
    device = queue.device
    key = (kernel, device, tuple(global_size),
           None if local_size is None else tuple(local_size))
    sizes = _checked.get(key)
    if sizes is None:
        sizes = _check_sizes(kernel, device, global_size, local_size)
        if len(_checked) > 4096:
            _checked.clear()
        _checked[key] = sizes
    gsize, lsize = sizes
    with _launch_lock:  # kernel objects hold their arguments: one launch at a time
        if kernel not in _typed_kernels:
            # declared scalar types let PyOpenCL pack the arguments directly:
            # about 1 us instead of about 20 for every launch (a kernel's scalar
            # arguments always come as the same NumPy scalar types)
            kernel.set_scalar_arg_dtypes([a.dtype if isinstance(a, np.generic) else None
                                          for a in args])
            if len(_typed_kernels) > 4096:
                _typed_kernels.clear()
            _typed_kernels.add(kernel)
        kernel.set_args(*args)
        return cl.enqueue_nd_range_kernel(queue, kernel, gsize, lsize,
                                          None if offset is None else tuple(offset))


#: The sizes :func:`launch` accepted, by (kernel, device, global size, local
#: size): a layer launches the same sizes call after call.
_checked: Dict[Tuple[Any, ...], Tuple[Tuple[int, ...], Optional[Tuple[int, ...]]]] = {}


def forget_launches() -> None:
    """Drop the launch memos (:data:`_checked`, the typed kernels): they hold kernels."""
    with _launch_lock:
        _checked.clear()
        _typed_kernels.clear()


def _check_sizes(kernel, device, global_size: Sequence[int], local_size: Optional[Sequence[int]]
                 ) -> Tuple[Tuple[int, ...], Optional[Tuple[int, ...]]]:
    """The sizes of a launch as ints, or :class:`LaunchError` (see :func:`launch`)."""
    gsize = tuple(int(g) for g in global_size)
    name = kernel.function_name
    if any(g <= 0 for g in gsize):
        raise LaunchError(f"{name}: empty global size {gsize}")
    if local_size is None:
        return gsize, None
    lsize = tuple(int(v) for v in local_size)
    limit, items = _work_group_limits(kernel, device)
    if len(lsize) != len(gsize):
        raise LaunchError(f"{name}: global size {gsize} and local size {lsize} differ in rank")
    if any(g % v for g, v in zip(gsize, lsize)):
        raise LaunchError(
            f"{name}: global size {gsize} is not a multiple of local size {lsize}")
    if prod(lsize) > limit or any(v > m for v, m in zip(lsize, items)):
        raise LaunchError(
            f"{name}: local size {lsize} ({prod(lsize)} work-items) exceeds the limit of "
            f"{limit} (max_work_item_sizes {items}) on {device.name.strip()!r}")
    return gsize, lsize


#: Floating-point operations one enqueued piece of a long launch should do, by
#: device type: tens of milliseconds on a CPU driver, a few on a GPU.
PIECE_FLOPS = {"cpu": 1e9, "gpu": 2e11}


def launch_in_pieces(queue, kernel, global_size: Sequence[int], local_size: Sequence[int],
                     args: Sequence[object], axes: Sequence[int], flops: float) -> None:
    """Enqueue a long launch as pieces, so that Ctrl-C is honoured.

    A single kernel launch cannot be stopped; a call that takes seconds is
    therefore cut into pieces of about :data:`PIECE_FLOPS` (boxes of whole
    work-groups, given by global work offsets: along ``axes[0]`` first,
    then also along ``axes[1]`` ... when the first has too few groups), with
    at most two pieces in flight.  Waiting on the older one returns to
    Python between pieces, so a pending ``KeyboardInterrupt`` is raised
    there; the piece still on the device is waited for before it
    propagates, so the queue and the buffers stay consistent and the process
    stays usable.  The kernel must add ``get_global_offset(a) /
    get_local_size(a)`` to its group id along each of ``axes``.
    """
    is_cpu = device_kind(queue.device)[0]
    wanted = int(flops // PIECE_FLOPS["cpu" if is_cpu else "gpu"]) + 1
    if wanted == 1:   # one piece (most calls): nothing to cut
        launch(queue, kernel, global_size, local_size, args)
        return
    gsize, lsize = list(global_size), list(local_size)
    cuts = []  # per axis: (axis, groups per piece)
    for axis in axes:
        groups = gsize[axis] // lsize[axis]
        pieces = max(1, min(groups, wanted))
        cuts.append((axis, -(-groups // pieces)))
        wanted = -(-wanted // pieces)
    ranges = [[(start, min(per, gsize[a] // lsize[a] - start))
               for start in range(0, gsize[a] // lsize[a], per)] for a, per in cuts]
    if all(len(r) == 1 for r in ranges):
        launch(queue, kernel, gsize, lsize, args)
        return
    in_flight: List[cl.Event] = []
    try:
        for box in itertools.product(*ranges):
            size, offset = list(gsize), [0] * len(gsize)
            for (axis, _), (start, count) in zip(cuts, box):
                size[axis], offset[axis] = count * lsize[axis], start * lsize[axis]
            in_flight.append(launch(queue, kernel, size, lsize, args, offset))
            if len(in_flight) > 1:
                in_flight.pop(0).wait()
    except BaseException:
        queue.finish()  # the piece already enqueued ends before the error propagates
        raise


def elementwise_local_size(kernel, device, n: int) -> int:
    """A 1-D work-group size for element-wise kernels (power of two, <= 256)."""
    limit = min(256, _work_group_limits(kernel, device)[0])
    size = 1
    while size * 2 <= limit:
        size *= 2
    return size


def index_type(*sizes: int) -> Tuple[Tuple[str, object], ...]:
    """``INDEX64`` when some array may reach 2**31 elements."""
    return (("INDEX64", None),) if max(sizes, default=0) >= 2**31 - 1 else ()


def scalar_index(value: int, index64: bool):
    return np.int64(value) if index64 else np.int32(value)
