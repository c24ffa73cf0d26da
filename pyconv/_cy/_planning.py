"""What the path units of the cython backend share: the plan, the unit's interface,
the tuning constants and the tile and thread rules.

A *path* is one way of computing a primitive (see :mod:`pyconv._cy` for the
list and the order the planner tries them in).  Each is a :class:`Path`
subclass in :mod:`pyconv._cy.paths`, with one compiled kernel module: it
says when it applies, plans a call (tiles, work items, threads and
workspace) and runs it.  The workspace is always computed the same way,
by :func:`finish`, from the bytes the kernel module itself reports for the
chosen tiles (its ``*workspace`` functions read the buffer layouts the
kernels allocate).
"""

from __future__ import annotations

import functools
from math import prod
from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import _build

#: Target size of one thread's buffers (im2col / col tile, or slab + output
#: block): they are re-read from a 1 MiB L2 cache.
TILE_BYTES = 1 << 19
#: Fewest columns in a tile (unless the image is smaller).
MIN_TILE = 64
#: Upper bound of all extra memory a call allocates (buffers, packed
#: weights, partial sums).
WORKSPACE_BYTES = 64 << 20
#: Budget of the conv_weight partial sums, within WORKSPACE_BYTES.
PARTIAL_BYTES = 32 << 20
#: Most conv_weight partials (fixed, so the reduction order is fixed).
MAX_SLOTS = 16
#: conv_transpose takes the phases path from this many input positions per
#: image; smaller images use BLAS + col2im with image blocks.
PHASE_MIN_POSITIONS = 256
#: Smallest GEMM dimension (M or K) worth a GEMM; below, direct loops.
MIN_GEMM = 8
#: Work items wanted per call: tiles, slabs or rows are cut smaller to reach
#: it when batch x groups alone gives fewer (fixed: never the thread count).
TARGET_ITEMS = 8
#: conv_transpose on images of fewer input positions than this packs
#: several images into one GEMM ...
TILE_COLS = 256
#: ... while keeping at least this many blocks of images.
BLOCKS_MIN = 4

#: Calls of fewer multiply-adds than this run on ONE thread, without entering
#: an OpenMP parallel region.  Measured on the development machine (2-core
#: AVX-512 Xeon, float32, 32 -> 32 channel 3x3 conv2d of 2**19 to 2**25
#: multiply-adds, medians of 300 calls, 1 against 2 threads) with the passive
#: wait policy pyconv sets (see pyconv._cy): waking the sleeping second
#: thread costs about 90 us per call, so two threads lose below 2**24 (2**21:
#: 208 against 108 us; 2**23: 245 against 215 us) and win above (2**25: 489
#: against 589 us).  With spinning threads two would win from 2**20 on an
#: idle machine, but with CPU-bound neighbour processes a spinning thread
#: waiting for a descheduled partner loses a scheduler time slice (2**21:
#: a median of 7.9 ms instead of 0.1 ms).
SERIAL_MACS = 1 << 24

INT_MAX = 2**31 - 1


def tuning():
    """The constants above, as a tuple (part of the plan cache's key)."""
    return (TILE_BYTES, MIN_TILE, WORKSPACE_BYTES, PARTIAL_BYTES, MAX_SLOTS,
            PHASE_MIN_POSITIONS, MIN_GEMM, TARGET_ITEMS, TILE_COLS, BLOCKS_MIN, SERIAL_MACS)


class Plan(NamedTuple):
    """How one call runs: its path and the path's cutting of the work.

    The fields a path does not use are 0 (``images``: 1).
    """

    path: str          # the Path unit's name
    tile: int          # columns per tile (gemm, packed, strided1d), output rows (implicit)
    slabs: int         # conv_transpose gemm: output slabs per (n, group); phases: count
    slots: int         # conv_weight: number of partial sums
    items: int         # independent work items
    omp_threads: int   # OpenMP threads: min(threads asked, items, what fits the workspace)
    workspace: int     # bytes of extra memory the call allocates
    images: int = 1    # conv_transpose gemm: images per GEMM; implicit conv_weight: per item
    simd: int = 0      # SIMD level of the micro-kernels (see pyconv._cy._build)
    parts: Tuple["Plan", ...] = ()   # phases: the plan of each phase's conv
    segments: int = 0  # winograd: segments (runs of tiles of a row) per work item
    blocks: int = 1    # conv_transpose gemm: blocks of output channels per (n, group);
                       # ocvec: parts of a group's channel blocks (slabs = 1: the
                       # slabs are shared, filled by a first pass)
    shape: int = 0     # ocvec: the register block's shape index; winograd_oc: the tile
                       # size m (F(m x m, 3 x 3)), with tile = tiles per chunk, slabs =
                       # tiles per round, blocks = input channels per weight-transform
                       # run, segments = input channels per input-transform item,
                       # images = channel blocks per item


class Target(NamedTuple):
    """The dtype and the micro-kernels' register blocks a call is planned for."""

    dtype: np.dtype
    level: int         # SIMD level: 2 AVX-512, 1 AVX2+FMA, 0 the baseline build
    mr: int            # conv micro-kernels: output channels x positions
    nr: int
    mrw: int           # weight-gradient micro-kernel: taps x output channels
    nrw: int

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def dbl(self) -> bool:
        return self.dtype.itemsize == 8


@functools.lru_cache(maxsize=None)
def target(dtype, level: Optional[int] = None) -> Target:
    """The :class:`Target` for ``dtype`` at ``level`` (default: this CPU's level).

    A level above the CPU's is lowered to it: the kernels would not run.
    """
    dtype = np.dtype(dtype)
    cpu = _build.simd_level()
    level = cpu if level is None else max(0, min(int(level), cpu))
    return Target(dtype, level, *_build.microkernel(dtype.itemsize == 8, level))


class Path:
    """One way of computing primitives: a unit of the planner.

    A subclass sets :attr:`name` and :attr:`ops` and implements the four
    methods; :mod:`pyconv._cy.paths` lists the units in the planner's order.

    The planner (:func:`pyconv._cy.plan`) takes, in that order, the first
    unit that computes the op, :meth:`supports` the call, whose rule
    :meth:`chosen` accepts it and whose :meth:`plan` fits the workspace.  A
    path forced for a test skips :meth:`chosen`: it runs every call it
    supports.
    """

    #: the name in plans, ``force_paths`` and the docs
    name = ""
    #: whether the path sums every product itself (GEMM, implicit GEMM,
    #: direct loops); only these run under ``pyconv.use_algorithms("exact")``,
    #: fewer-multiplication algorithms (transforms) set it to False
    exact = True
    #: the primitives it computes ("conv", "conv_transpose", "conv_weight")
    ops: frozenset[str] = frozenset()
    #: the path's multiply-add rate relative to the GEMM paths, roughly: a call
    #: runs on one thread below ``SERIAL_MACS * serial_scale`` multiply-adds
    #: (:func:`threads_for`), so a path that does few multiply-adds per
    #: microsecond (depthwise, direct loops) gets its threads on smaller calls
    serial_scale = 1.0

    def supports(self, op: str, spec, tgt: Target) -> bool:
        """Whether the path computes this call correctly at all (its hard limits)."""
        return True

    def chosen(self, op: str, spec, tgt: Target) -> bool:
        """The rule of the normal order: whether the planner takes the path here."""
        return True

    def plan(self, op: str, spec, tgt: Target, n: int) -> Optional[Plan]:
        """Tiles, items, threads and workspace for ``n`` threads; None if it does not fit."""
        raise NotImplementedError

    def run(self, op: str, p: Plan, spec, x, w, b, out) -> None:
        """Compute the call into ``out`` (all C-contiguous, of one dtype, any shape).

        ``b`` is the bias or an empty array; for conv_weight ``w`` is the
        output gradient and ``out`` the zeroed weight gradient.
        """
        raise NotImplementedError

    def __repr__(self):
        return f"<path {self.name!r}>"


# --------------------------------------------------------------------------
# geometry

def equal_runs(total, most):
    """The length of runs that cut ``total`` into the fewest runs of at most
    ``most``, all of one length but the last (which may be shorter)."""
    return -(-total // -(-total // most))


def canon(sizes, fill):
    """Pad a per-dim tuple to 3 dims (z, y, x) with ``fill`` in front."""
    sizes = tuple(int(v) for v in sizes)
    return (fill,) * (3 - len(sizes)) + sizes


@functools.lru_cache(maxsize=1024)
def geo(spec):
    """The kernels' geometry tuple for a spec (1-d and 2-d padded to 3-d).

    Memoised: it is built for every call, and building it costs microseconds.
    """
    return ((int(spec.batch), int(spec.in_channels), int(spec.out_channels), int(spec.groups))
            + canon(spec.in_size, 1) + canon(spec.out_size, 1)
            + canon(spec.kernel_size, 1) + canon(spec.stride, 1)
            + canon(spec.dilation, 1) + canon(spec.pad_lo, 0))


def outer_axis(spec):
    """The kernels' tiling axis: the first canonical axis that is a real dim."""
    ks, ins, outs = canon(spec.kernel_size, 1), canon(spec.in_size, 1), canon(spec.out_size, 1)
    axis = 0
    while axis < 2 and outs[axis] == 1 and ins[axis] == 1 and ks[axis] == 1:
        axis += 1
    return axis


class GemmShape(NamedTuple):
    """The GEMM shape of one group: ``M x K`` weights times ``K x positions``."""

    m: int
    k: int


def gemm_shape(op, spec) -> GemmShape:
    """conv, conv_weight: ``C_out/g x C_in/g * prod(kernel)``; conv_transpose:
    ``C_out/g * prod(kernel) x C_in/g``."""
    g = spec.groups
    kp = prod(spec.kernel_size)
    if op == "conv_transpose":
        return GemmShape(spec.out_channels // g * kp, spec.in_channels // g)
    return GemmShape(spec.out_channels // g, spec.in_channels // g * kp)


def positions(spec):
    """(input, output) positions per image."""
    return prod(spec.in_size), prod(spec.out_size)


# --------------------------------------------------------------------------
# tiles, threads, workspace

def tile_columns(rows, positions, row_len, itemsize, groups_of_work=1):
    """Columns per tile for a ``rows x T`` buffer over ``positions`` columns.

    About :data:`TILE_BYTES` per buffer, at least :data:`MIN_TILE` columns,
    and small enough that ``groups_of_work`` x tiles reaches
    :data:`TARGET_ITEMS` when the positions allow it.
    """
    t = TILE_BYTES // max(1, rows * itemsize)
    t = max(t, MIN_TILE)
    # never let one buffer take more than a quarter of the workspace budget
    t = min(t, max(1, (WORKSPACE_BYTES // 4) // max(1, rows * itemsize)))
    want = -(-TARGET_ITEMS // max(1, groups_of_work))
    if want > 1:
        t = min(t, max(MIN_TILE, -(-positions // want)))
    if t >= positions:
        return max(1, positions)
    if row_len <= t:
        # whole rows, spread evenly over the fewest tiles
        nrows = -(-positions // row_len)
        per = t // row_len
        per = equal_runs(nrows, per)
        return per * row_len
    # parts of one long row: equal tiles, a multiple of 16 columns
    ntiles = -(-positions // t)
    t = -(-positions // ntiles)
    return max(1, min(positions, -(-t // 16) * 16))


def panel_tile(rows, positions, nr, itemsize, groups_of_work):
    """Columns per tile of a micro-kernel path: a multiple of NR, about TILE_BYTES."""
    def up(v):
        return -(-v // nr) * nr
    t = max(nr, (TILE_BYTES // max(1, rows * itemsize)) // nr * nr)
    t = min(t, max(nr, ((WORKSPACE_BYTES // 4) // max(1, rows * itemsize)) // nr * nr))
    want = -(-TARGET_ITEMS // max(1, groups_of_work))
    if want > 1:
        t = min(t, max(up(MIN_TILE), up(-(-positions // want))))
    if t >= positions:
        return max(1, positions)
    ntiles = -(-positions // t)
    return min(positions, up(-(-positions // ntiles)))


def slots(spec, items, itemsize):
    """conv_weight partial sums: fixed by the spec, within PARTIAL_BYTES."""
    wbytes = prod(spec.weight_shape) * itemsize
    return max(1, min(items, MAX_SLOTS, PARTIAL_BYTES // max(1, wbytes)))


def threads_for(spec, n, unit=None):
    """The threads a call may use on ``unit``: ``n``, or 1 below :data:`SERIAL_MACS`
    (times the unit's ``serial_scale``) multiply-adds."""
    scale = 1.0 if unit is None else unit.serial_scale
    return 1 if spec.flops // 2 < SERIAL_MACS * scale else n


def finish(path, items, per_thread, fixed, n, **fields) -> Plan:
    """The plan of ``items`` work items, each thread with ``per_thread`` bytes.

    The one rule for threads and workspace: ``min(n, items)`` threads, fewer
    if their buffers and the ``fixed`` bytes (packed weights, partial sums)
    would exceed :data:`WORKSPACE_BYTES`; the workspace is what they
    allocate.  The cutting of the work never depends on ``n``.
    """
    room = max(1, (WORKSPACE_BYTES - fixed) // max(1, per_thread))
    omp = max(1, min(n, room, items))
    return Plan(path, items=items, omp_threads=omp, workspace=omp * per_thread + fixed,
                **{"tile": 0, "slabs": 0, "slots": 0, **fields})


def fits(per_thread, fixed=0):
    """Whether one thread's buffers and the fixed bytes leave room (a quarter each)."""
    return per_thread <= WORKSPACE_BYTES // 4 and fixed <= WORKSPACE_BYTES // 4
