"""The ``cython`` backend: compiled CPU kernels, OpenMP threads, SIMD micro-kernels, BLAS.

The compiled part (:mod:`pyconv._cy._kernels`) executes; this module plans.
For each call it picks a path, tile sizes and thread counts from the
:class:`~pyconv._spec.ConvSpec` alone, with the rules below, and hands them
to the kernel, which runs with the GIL released.

Paths (the per-call choice, in this order)
------------------------------------------
1. *Direct* loops (vectorised rows from ``_kernels.h``, no GEMM) when the
   per-group GEMM would be thin: ``min(M, K) < MIN_GEMM`` (8) for the GEMM
   the call would do (``M, K = C_out/g, C_in/g * prod(kernel)`` for conv and
   conv_weight; ``C_out/g * prod(kernel), C_in/g`` for conv_transpose), i.e.
   depthwise and small groups; also when one image has 2**31 or more
   positions (a BLAS leading dimension would overflow its 32-bit int).
2. When the CPU has AVX2+FMA or AVX-512 (:data:`PACKED`), our own
   register-blocked micro-kernel (no BLAS):

   - ``conv`` with stride 1 and conv_weight with stride 1: *implicit GEMM*.
     A tile of output rows copies the input box it reads, zero padded, into
     a slab; in the slab every kernel tap is a constant offset, so the
     micro-kernel reads the slab directly and no im2col is built.
   - 1-d ``conv`` with a stride s: *strided1d*, implicit GEMM on a slab
     that de-interleaves the tile's input by residue mod s (row r of channel
     c holds every s-th input from r): each tap is again a constant offset,
     one copy of the input per tile instead of an im2col, whole panels
     written straight into the output.
   - other ``conv`` with a stride: *packed* im2col of the tile straight into the
     micro-kernel's panel layout (one copy, where BLAS would make two).
   - ``conv_transpose`` with at least :data:`PHASE_MIN_POSITIONS` input
     positions per image, whose kernel taps overlap (a dilated kernel
     extent above the stride in some dim): *phases*.  Output positions with the same residue
     modulo the stride form a stride-1 conv of the input with a subset of
     the taps (no zero insertion); each phase runs as an implicit conv that
     writes its strided view of the output in place.
3. Otherwise BLAS (``scipy.linalg.cython_blas`` ``sgemm``/``dgemm`` behind a
   row-major wrapper): conv by tiled im2col + GEMM straight into the output
   (a 1x1, stride-1, unpadded kernel multiplies the input directly);
   conv_transpose by ``W_g^T @ x`` + col2im, each item owning a slab of
   output rows, small images several to a GEMM; conv_weight by im2col +
   ``gy @ col^T``.

conv_weight always reduces into a fixed number of partial weights (slots,
fixed by the spec), summed in slot order at the end.

Tiles and memory
----------------
Per thread, one im2col/col buffer or one slab + output block of about
:data:`TILE_BYTES` (they are re-read from the L2 cache), with enough columns
for the micro-kernel panels.  The number of threads is lowered if needed so
that all buffers together (plus conv_weight partials and packed weights)
stay below :data:`WORKSPACE_BYTES`: extra memory is bounded whatever the
input size.  :func:`workspace_bytes` reports it for a call.

Threads (the per-call heuristic)
--------------------------------
``n = pyconv.get_num_threads()``.  The plan cuts the work into items (conv:
batch x group x tile; conv_weight: fixed slots of (image, tile);
conv_transpose: per phase as conv, or batch x group x slab, or blocks of
images; direct: batch x channel, or weight pairs) and runs them on
``min(n, items)`` OpenMP threads
while every BLAS library is held to **one** thread (threadpoolctl,
``user_api="blas"``) so that nothing is oversubscribed.  When batch x groups
alone gives fewer than :data:`TARGET_ITEMS` items the plan cuts smaller
tiles (never below :data:`MIN_TILE` columns) or output slabs, so that a
single image still keeps every thread busy.

Letting BLAS itself use the threads when there is a single chunk was
measured and rejected: OpenBLAS picks a different kernel (a different
summation order) depending on its own thread count, so the result would
change with ``n`` (1 ulp differences on conv_weight shapes), breaking the
guarantee below.  A problem too small to cut into two items runs on one
thread; it is small enough that this costs little.

The cutting of the work depends on the spec only, never on ``n``; every
output element (and every conv_weight partial) is summed in an order fixed
by that cutting, so the result is bitwise identical for any thread count.
"""

from __future__ import annotations

import functools
import itertools
import threading
from math import gcd, prod
from typing import NamedTuple, Optional

import numpy as np

from .._registry import Backend, get_num_threads
from .._spec import ConvSpec

try:
    from . import _kernels
except ImportError as exc:  # not built (e.g. a source checkout without a build)
    _kernels = None
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None

__all__ = ["CythonBackend", "Plan", "load", "plan", "workspace_bytes",
           "TILE_BYTES", "MIN_TILE", "WORKSPACE_BYTES", "MIN_GEMM", "PACKED",
           "PHASE_MIN_POSITIONS", "TARGET_ITEMS"]

#: Target size of one thread's im2col / col buffer, or slab + output block
#: (re-read from a 1 MiB L2 cache).
TILE_BYTES = 1 << 19
#: Fewest columns in a tile (unless the image is smaller).
MIN_TILE = 64
#: Upper bound of all extra memory a call allocates (buffers + partials).
WORKSPACE_BYTES = 64 << 20
#: Budget of the conv_weight partial sums, within WORKSPACE_BYTES.
PARTIAL_BYTES = 32 << 20
#: Most conv_weight partials (fixed, so the reduction order is fixed).
MAX_SLOTS = 16
#: Use the packed micro-kernel for conv when the CPU has AVX2+FMA or AVX-512
#: (else BLAS).
PACKED = True
#: 1-d conv with a stride (micro-kernel CPUs): implicit GEMM on a slab of the
#: input de-interleaved by residue (else the packed im2col path).
STRIDED_1D = True
#: conv_transpose takes the phase path (micro-kernel) from this many input
#: positions per image; smaller images use BLAS + col2im with image blocks.
PHASE_MIN_POSITIONS = 256
#: Smallest GEMM dimension (M or K) worth a BLAS call; below, direct loops.
MIN_GEMM = 8
#: Work items wanted per call: tiles, slabs or rows are cut smaller to reach
#: it when batch x groups alone gives fewer (fixed: never the thread count).
TARGET_ITEMS = 8
#: conv_transpose on images of fewer input positions than this packs
#: several images into one GEMM ...
TILE_COLS = 256
#: ... while keeping at least this many blocks of images.
BLOCKS_MIN = 4

_INT_MAX = 2**31 - 1


class Plan(NamedTuple):
    """How one call runs (see the module docstring)."""

    path: str             # "implicit" | "strided1d" | "packed" | "phases" | "gemm" | "pointwise"
    #                       | "direct"
    tile: int             # columns per tile (gemm/packed), output rows per tile (implicit)
    slabs: int            # conv_transpose: output slabs per (n, group); phases: count
    slots: int            # conv_weight: number of partial sums
    items: int            # independent work items
    omp_threads: int      # OpenMP threads
    blas_threads: int     # BLAS threads inside the call (always 1, see above)
    workspace: int        # bytes of extra memory the call allocates
    images: int = 1       # conv_transpose: images per GEMM (small images)


def _canon(sizes, fill):
    """Pad a per-dim tuple to 3 dims (z, y, x) with ``fill`` in front."""
    sizes = tuple(int(v) for v in sizes)
    return (fill,) * (3 - len(sizes)) + sizes


def _geo(spec):
    """The kernel's geometry tuple for a spec (1-d and 2-d padded to 3-d)."""
    return ((int(spec.batch), int(spec.in_channels), int(spec.out_channels), int(spec.groups))
            + _canon(spec.in_size, 1) + _canon(spec.out_size, 1)
            + _canon(spec.kernel_size, 1) + _canon(spec.stride, 1)
            + _canon(spec.dilation, 1) + _canon(spec.pad_lo, 0))


def _tile(rows, positions, row_len, itemsize, groups_of_work=1):
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
        per = -(-nrows // -(-nrows // per))
        return per * row_len
    # parts of one long row: equal tiles, a multiple of 16 columns
    ntiles = -(-positions // t)
    t = -(-positions // ntiles)
    return max(1, min(positions, -(-t // 16) * 16))


_PACKED_PARAMS = {}
_WEIGHT_PARAMS = {}


def _weight_params(itemsize):
    """(level, MRW, NRW) of the conv_weight micro-kernel for this dtype and CPU."""
    if itemsize not in _WEIGHT_PARAMS:
        _WEIGHT_PARAMS[itemsize] = tuple(_kernels.weight_params(itemsize == 8))
    return _WEIGHT_PARAMS[itemsize]


def _packed_params(itemsize):
    """(level, MR, NR) of the packed conv micro-kernel for this dtype and CPU."""
    if itemsize not in _PACKED_PARAMS:
        _PACKED_PARAMS[itemsize] = tuple(_kernels.packed_params(itemsize == 8))
    return _PACKED_PARAMS[itemsize]


def _packed_tile(rows, positions, nr, itemsize, groups_of_work):
    """Columns per tile of the packed path: a multiple of NR, about TILE_BYTES."""
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


def _implicit_plan(spec, isz, n, op="conv"):
    """Plan of the implicit (slab) path of a stride-1 conv or conv_weight, or None."""
    level, mr, nr = _packed_params(isz) if op == "conv" else _weight_params(isz)
    g = spec.groups
    cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
    kc = cin_g * prod(spec.kernel_size)
    ks, outs = _canon(spec.kernel_size, 1), _canon(spec.out_size, 1)
    ins, dl = _canon(spec.in_size, 1), _canon(spec.dilation, 1)
    axis = 0
    while axis < 2 and outs[axis] == 1 and ins[axis] == 1 and ks[axis] == 1:
        axis += 1
    halo = [(k - 1) * d for k, d in zip(ks, dl)]
    inner = prod(outs[ax] + halo[ax] for ax in range(axis + 1, 3))
    tail = (halo[1] + 1) * (outs[2] + halo[2]) + halo[2] + nr

    def per_thread(rows):
        slab = cin_g * (rows + halo[axis]) * inner + tail
        # conv: output block; conv_weight: packed gy (channels padded to NRW)
        chans = cout_g if op == "conv" else -(-cout_g // nr) * nr
        out = chans * (-(-(rows * inner) // nr) * nr + nr)
        return (slab + out) * isz + kc * 8 + 24 * (rows * inner + 1)

    # the slab and the output block of one item stay within TILE_BYTES (the
    # micro-kernel re-reads them from L2): as many rows as fit, at least one
    lo_r, hi_r = 1, max(1, outs[axis])      # largest rows with per_thread <= TILE_BYTES
    while lo_r < hi_r:
        mid = (lo_r + hi_r + 1) // 2
        if per_thread(mid) <= TILE_BYTES:
            lo_r = mid
        else:
            hi_r = mid - 1
    rows = lo_r
    # ... but enough columns for the micro-kernel panels, also when the rows
    # are cut to give every thread work (the halo rows only cost a copy)
    rows_min = max(1, -(-min(2 * nr, MIN_TILE) // inner))
    rows = max(rows, rows_min)
    want = -(-TARGET_ITEMS // max(1, spec.batch * (g if op == "conv" else 1)))
    if want > 1:
        rows = min(rows, max(rows_min, -(-outs[axis] // want)))
    rows = min(rows, outs[axis])
    ntiles = -(-outs[axis] // rows)
    rows = -(-outs[axis] // ntiles)          # equal tiles
    if op == "conv_weight":
        wbytes = spec.out_channels * kc * isz
        nitems = spec.batch * ntiles
        slots = max(1, min(nitems, MAX_SLOTS, PARTIAL_BYTES // max(1, wbytes)))
        fixed = (slots - 1) * wbytes
        if per_thread(rows) > WORKSPACE_BYTES // 4:
            return None
        omp, blas = _threads(slots, per_thread(rows), fixed, n)
        return Plan("implicit", rows, 0, slots, slots, omp, blas, omp * per_thread(rows) + fixed)
    fixed = g * (-(-cout_g // mr) * mr) * kc * isz     # the packed weights
    if per_thread(rows) > WORKSPACE_BYTES // 4 or fixed > WORKSPACE_BYTES // 4:
        return None
    items = spec.batch * g * ntiles
    omp, blas = _threads(items, per_thread(rows), fixed, n)
    return Plan("implicit", rows, 0, 0, items, omp, blas, omp * per_thread(rows) + fixed)


def _phases_1d(size_in, size_out, k, s, d, lo):
    """Per output residue r (mod s) of one axis: (r, U, taps, lo', d').

    Output t = r + s*u (u < U) of a transposed conv receives x[i] w[k] for
    r + lo = i*s + k*d.  The taps k that reach residue r form a progression
    k0, k0 + step, ... (step = s / gcd(s, d)) and then i = u + c0 - j*d'
    (d' = d / gcd(s, d)): a stride-1 conv of x with those taps reversed,
    dilation d' and leading padding lo' = (J-1)*d' - c0 (maybe negative).
    """
    g = gcd(s, d)
    step, dd = s // g, d // g
    out = []
    for r in range(min(s, size_out)):
        U = (size_out - r + s - 1) // s
        taps = [kk for kk in range(k) if (r + lo - kk * d) % s == 0]
        if taps:
            assert all(b - a == step for a, b in zip(taps, taps[1:]))
            c0 = (r + lo - taps[0] * d) // s
            out.append((r, U, taps[::-1], (len(taps) - 1) * dd - c0, dd))
        else:
            out.append((r, U, [], 0, 1))
    return out


def _phase_specs(spec):
    """The stride-1 conv specs whose outputs interleave into conv_transpose's output.

    Yields ``(index, subspec or None, taps)`` with ``index`` the output slice
    of the phase, ``taps`` one list of kernel taps per axis (in the order the
    sub-kernel uses them) and ``subspec`` None when no tap reaches the phase
    (its outputs are only the bias).
    """
    per_axis = [_phases_1d(i, o, k, s, d, lo) for i, o, k, s, d, lo in zip(
        spec.in_size, spec.out_size, spec.kernel_size, spec.stride, spec.dilation,
        spec.pad_lo)]
    for combo in itertools.product(*per_axis):
        index = (slice(None), slice(None)) + tuple(
            slice(r, None, s) for (r, *_), s in zip(combo, spec.stride))
        taps = [c[2] for c in combo]
        if any(not t for t in taps):
            yield index, None, taps
            continue
        sub = ConvSpec(False, spec.batch, spec.in_channels, spec.out_channels, spec.groups,
                       tuple(spec.in_size), tuple(c[1] for c in combo),
                       tuple(len(t) for t in taps), (1,) * spec.nd,
                       tuple((c[3], 0) for c in combo), tuple(c[4] for c in combo))
        yield index, sub, taps


def _phase_weight(w, spec, taps):
    """conv weight (C_out, C_in/g, *J) of one phase from the transposed weight."""
    g = spec.groups
    cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
    sub = w[(slice(None), slice(None)) + np.ix_(*taps)]
    sub = sub.reshape((g, cin_g, cout_g) + sub.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(sub.reshape((spec.out_channels, cin_g) + sub.shape[3:]))


def _is_pointwise(spec):
    return (all(k == 1 for k in spec.kernel_size) and all(s == 1 for s in spec.stride)
            and all(lo == 0 for lo in spec.pad_lo)
            and tuple(spec.in_size) == tuple(spec.out_size))


def _threads(items, per_thread_bytes, fixed_bytes, n):
    """(omp, blas) threads for ``items`` work items (module docstring rule)."""
    room = max(1, (WORKSPACE_BYTES - fixed_bytes) // max(1, per_thread_bytes))
    return max(1, min(n, room, items)), 1


def plan(op: str, spec, dtype, nthreads: Optional[int] = None) -> Plan:
    """The plan of one call: path, tiles, thread counts, workspace bytes.

    Parameters
    ----------
    op : {'conv', 'conv_transpose', 'conv_weight'}
    spec : ConvSpec
    dtype : float32 or float64
    nthreads : int, optional
        Defaults to :func:`pyconv.get_num_threads`.

    Plans are memoised (keyed by the arguments and the module's tuning
    constants): planning costs microseconds that small calls would notice.
    """
    n = get_num_threads() if nthreads is None else int(nthreads)
    tuning = (TILE_BYTES, MIN_TILE, WORKSPACE_BYTES, PARTIAL_BYTES, MAX_SLOTS, MIN_GEMM,
              TARGET_ITEMS, TILE_COLS, BLOCKS_MIN, PACKED, PHASE_MIN_POSITIONS, STRIDED_1D)
    return _plan_cached(op, spec, np.dtype(dtype).str, n, tuning)


@functools.lru_cache(maxsize=512)
def _plan_cached(op, spec, dtype, n, tuning):
    return _make_plan(op, spec, np.dtype(dtype), n)


def _make_plan(op, spec, dtype, n):
    """The planning rules (module docstring); ``n`` threads."""
    isz = np.dtype(dtype).itemsize
    g = spec.groups
    cin_g = spec.in_channels // g
    cout_g = spec.out_channels // g
    kp = prod(spec.kernel_size)
    row_len = int(spec.out_size[-1]) if spec.out_size else 1
    pout = prod(spec.out_size)
    pin = prod(spec.in_size)
    big = max(pin, pout) > _INT_MAX // 2
    pointwise = _is_pointwise(spec)
    if op in ("conv", "conv_weight"):
        kc = cin_g * kp
        thin = min(cout_g, kc) < MIN_GEMM or big or kc * cout_g > _INT_MAX
        if thin:
            items = spec.batch * spec.out_channels if op == "conv" else spec.out_channels * cin_g
            omp = max(1, min(n, items))
            return Plan("direct", 0, 0, 0, items, omp, 1, 2 * 8 * kp)
        if (PACKED and _packed_params(isz)[0] >= 1
                and all(st == 1 for st in spec.stride)):
            imp = _implicit_plan(spec, isz, n, op)
            if imp is not None:
                return imp
        if (op == "conv" and PACKED and _packed_params(isz)[0] >= 1
                and g * (-(-cout_g // _packed_params(isz)[1]) * _packed_params(isz)[1])
                * kc * isz <= WORKSPACE_BYTES // 4):
            level, mr, nr = _packed_params(isz)
            if STRIDED_1D and spec.nd == 1 and spec.stride[0] <= 8:
                # 1-d with a stride: implicit GEMM on a de-interleaved slab
                s = int(spec.stride[0])
                per_col = (cin_g * s + cout_g) * isz
                tile = _packed_tile(cin_g * s + cout_g, pout, nr, isz, spec.batch * g)
                halo = ((spec.kernel_size[0] - 1) * spec.dilation[0]) // s + 2
                per_thread = per_col * (-(-tile // nr) * nr + halo) + nr * isz
                fixed = g * (-(-cout_g // mr) * mr) * kc * isz + kc * 8
                if per_thread <= WORKSPACE_BYTES // 4:
                    items = spec.batch * g * -(-pout // tile)
                    omp, blas = _threads(items, per_thread, fixed, n)
                    return Plan("strided1d", tile, 0, 0, items, omp, blas,
                                omp * per_thread + fixed)
            tile = _packed_tile(kc, pout, nr, isz, spec.batch * g)
            items = spec.batch * g * -(-pout // tile)
            per_thread = kc * (-(-tile // nr) * nr) * isz
            fixed = g * (-(-cout_g // mr) * mr) * kc * isz
            omp, blas = _threads(items, per_thread, fixed, n)
            return Plan("packed", tile, 0, 0, items, omp, blas, omp * per_thread + fixed)
        tile = _tile(kc, pout, row_len, isz,
                     spec.batch * g if op == "conv" else spec.batch)
        ntiles = -(-pout // tile)
        per_thread = 0 if pointwise else kc * tile * isz
        if op == "conv":
            items = spec.batch * g * ntiles
            omp, blas = _threads(items, per_thread, 0, n)
            return Plan("pointwise" if pointwise else "gemm", tile, 0, 0, items, omp, blas,
                        omp * per_thread)
        wbytes = spec.out_channels * kc * isz
        nitems = spec.batch * ntiles
        slots = max(1, min(nitems, MAX_SLOTS, PARTIAL_BYTES // max(1, wbytes)))
        fixed = (slots - 1) * wbytes
        omp, blas = _threads(slots, per_thread, fixed, n)
        return Plan("pointwise" if pointwise else "gemm", tile, 0, slots, slots, omp, blas,
                    omp * per_thread + fixed)
    # conv_transpose: the GEMM is (cout_g*kp) x cin_g times cin_g x T
    mt = cout_g * kp
    thin = min(mt, cin_g) < MIN_GEMM or big or mt * cin_g > _INT_MAX
    if thin:
        items = spec.batch * spec.out_channels
        return Plan("direct", 0, 0, 0, items, max(1, min(n, items)), 1, 2 * 8 * kp)
    # taps of different kernel positions overlap on an output (else every phase
    # is a 1x1 conv and one GEMM + scatter over all the taps is faster)
    overlap = any((k - 1) * d + 1 > s for k, d, s in zip(spec.kernel_size, spec.dilation,
                                                        spec.stride))
    if PACKED and _packed_params(isz)[0] >= 1 and pin >= PHASE_MIN_POSITIONS and overlap:
        # phase decomposition: one stride-1 implicit conv per output residue,
        # written in place into its strided view of the output
        subs = [(sub, plan("conv", sub, dtype, n)) for _, sub, _ in _phase_specs(spec)
                if sub is not None]
        if all(sp.path == "implicit" for _, sp in subs):
            work = max([sp.workspace for _, sp in subs] + [0])
            temp = max([prod(sub.weight_shape) * isz for sub, _ in subs] + [0])
            items = max([sp.items for _, sp in subs] + [1])
            omp = max([sp.omp_threads for _, sp in subs] + [1])
            return Plan("phases", 0, len(subs), 0, items, omp, 1, work + temp)
    in_row = int(spec.in_size[-1]) if spec.in_size else 1
    tile = _tile(mt, pin, in_row, isz, spec.batch * g if pointwise else 1)
    if pointwise:
        ntiles = -(-pin // tile)
        items = spec.batch * g * ntiles
        omp, blas = _threads(items, 0, 0, n)
        return Plan("pointwise", tile, 0, 0, items, omp, blas, 0)
    # small images: several images per GEMM so that BLAS packs the weight
    # once per TILE_COLS columns rather than once per image
    if pin < TILE_COLS and spec.batch > 1:
        nb = int(min(-(-TILE_COLS // pin), max(1, spec.batch // BLOCKS_MIN), spec.batch,
                     (WORKSPACE_BYTES // 4) // ((mt + cin_g) * pin * isz)))
        if nb > 1:
            items = -(-spec.batch // nb) * g
            per_thread = (mt + cin_g) * nb * pin * isz
            omp, blas = _threads(items, per_thread, 0, n)
            return Plan("gemm", nb * pin, 1, 0, items, omp, blas, omp * per_thread, nb)
    # slabs of output rows along the outermost spatial axis, cut only when
    # batch x groups alone gives too few items, and never so thin that the
    # recomputed halo (about d*(K-1)/s input rows per slab) dominates
    ng = spec.batch * g
    ks, ins, outs = _canon(spec.kernel_size, 1), _canon(spec.in_size, 1), _canon(spec.out_size, 1)
    st, dl = _canon(spec.stride, 1), _canon(spec.dilation, 1)
    axis = 0  # the kernel's rule: first axis where size, output or kernel is not 1
    while axis < 2 and outs[axis] == 1 and ins[axis] == 1 and ks[axis] == 1:
        axis += 1
    halo = -(-(dl[axis] * (ks[axis] - 1)) // st[axis])
    want = -(-TARGET_ITEMS // max(1, ng))
    max_slabs = max(1, ins[axis] // max(1, 4 * halo)) if halo else outs[axis]
    slabs = int(max(1, min(want, max_slabs, outs[axis])))
    items = ng * slabs
    per_thread = mt * tile * isz
    omp, blas = _threads(items, per_thread, 0, n)
    return Plan("gemm", tile, slabs, 0, items, omp, blas, omp * per_thread)


def workspace_bytes(op: str, spec, dtype, nthreads: Optional[int] = None) -> int:
    """Bytes of extra memory (beyond inputs and output) the call allocates."""
    return plan(op, spec, dtype, nthreads).workspace


# --------------------------------------------------------------------------
# BLAS threads

def _set_threads(lib, k):
    """Set a BLAS library's thread count from whichever Python thread we are in.

    threadpoolctl lets only one "controlling" Python thread change a
    process-wide (pthreads) OpenBLAS pool and silently ignores the others;
    :class:`_BlasLimiter` already serialises and reference-counts every
    change itself, so it uses the unguarded setter when there is one.
    """
    setter = getattr(lib, "_real_set_num_threads", None) or lib.set_num_threads
    setter(k)


class _BlasLimiter:
    """Holds every BLAS library (NumPy's and SciPy's OpenBLAS...) at k threads.

    One threadpoolctl controller is created on first use and cached (creating
    it scans the loaded libraries, which is slow).  Calls from several Python
    threads nest: the smallest limit asked for wins while any call is
    inside, and the original limits come back when the last one leaves.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._controller = None
        self._ready = False
        self._active = 0
        self._current = None
        self._original = None

    def _get(self):
        if not self._ready:
            try:
                from threadpoolctl import ThreadpoolController
                self._controller = ThreadpoolController().select(user_api="blas")
            except Exception:  # threadpoolctl missing or broken: no limiting
                self._controller = None
            self._ready = True
        return self._controller

    def enter(self, k):
        with self._lock:
            ctl = self._get()
            if ctl is None:
                return
            if self._active == 0:
                self._original = [lib.get_num_threads() for lib in ctl.lib_controllers]
                self._current = None
            if self._current is None or k < self._current:
                for lib in ctl.lib_controllers:
                    _set_threads(lib, k)
                self._current = k
            self._active += 1

    def exit(self):
        with self._lock:
            ctl = self._get()
            if ctl is None:
                return
            self._active -= 1
            if self._active == 0:
                for lib, k in zip(ctl.lib_controllers, self._original):
                    if k is not None:
                        _set_threads(lib, k)
                self._current = None


_blas = _BlasLimiter()


class _blas_threads:
    """Context manager: BLAS at ``k`` threads for the duration of a call."""

    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k

    def __enter__(self):
        _blas.enter(self.k)

    def __exit__(self, *exc):
        _blas.exit()


# --------------------------------------------------------------------------
# the backend

_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}


class CythonBackend(Backend):
    """Compiled CPU backend (OpenMP threads, BLAS GEMMs, direct SIMD loops)."""

    name = "cython"

    def supports(self, op, spec, dtype):
        if np.dtype(dtype) not in _EMPTY:
            return f"dtype {np.dtype(dtype)} is not float32/float64"
        if not 1 <= spec.nd <= 3:
            return f"{spec.nd}-d convolutions are not built (1, 2 or 3 spatial dims)"
        return None

    def info(self):
        facts = dict(_kernels.build_info())
        facts["threads"] = get_num_threads()
        level, mr, nr = _packed_params(4)
        facts["microkernel"] = (
            f"{('baseline', 'avx2+fma', 'avx512')[level]}, {mr}x{nr} register block (float32)"
            + ("" if PACKED and level >= 1 else "; not used (BLAS paths instead)"))
        facts["blas"] = "scipy.linalg.cython_blas (sgemm/dgemm)"
        try:
            ctl = _blas._get()
            if ctl is not None:
                facts["blas_libraries"] = [
                    f"{lib.internal_api} {lib.version} ({lib.architecture}, "
                    f"{lib.num_threads} threads) {lib.prefix}"
                    for lib in ctl.lib_controllers]
        except Exception as exc:  # info must never fail
            facts["blas_libraries"] = f"unknown ({exc})"
        facts["tile_bytes"] = TILE_BYTES
        facts["workspace_bytes_max"] = WORKSPACE_BYTES
        return facts

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _run(p, fn, *args):
        """Run ``fn`` with BLAS threads set for plan ``p``."""
        if p.path == "direct":
            return fn(*args)
        with _blas_threads(p.blas_threads):
            return fn(*args)

    # -- primitives ------------------------------------------------------------

    def conv(self, x, w, b, spec):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if y.size == 0:
            return y
        bias = _EMPTY[x.dtype] if b is None else np.ascontiguousarray(b, dtype=x.dtype)
        p = plan("conv", spec, x.dtype)
        xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
        if x.size == 0 or w.size == 0:
            y[...] = 0 if b is None else bias.reshape((1, -1) + (1,) * spec.nd)
            return y
        if p.path == "direct":
            _kernels.conv_direct(xf, wf, bias, yf, _geo(spec), p.omp_threads)
        elif p.path == "implicit":
            level, mr, nr = _packed_params(x.dtype.itemsize)
            _kernels.conv_implicit(xf, wf, bias, yf, _geo(spec), p.tile, level, mr, nr,
                                   p.omp_threads)
        elif p.path == "strided1d":
            level, mr, nr = _packed_params(x.dtype.itemsize)
            _kernels.conv_strided1d(xf, wf, bias, yf, _geo(spec), p.tile, level, mr, nr,
                                    p.omp_threads)
        elif p.path == "packed":
            level, mr, nr = _packed_params(x.dtype.itemsize)
            _kernels.conv_packed(xf, wf, bias, yf, _geo(spec), p.tile, level, mr, nr,
                                 p.omp_threads)
        else:
            self._run(p, _kernels.conv_gemm, xf, wf, bias, yf, _geo(spec), p.tile,
                      p.path == "pointwise", p.omp_threads)
        return y

    def conv_transpose(self, x, w, b, spec):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if y.size == 0:
            return y
        bias = _EMPTY[x.dtype] if b is None else np.ascontiguousarray(b, dtype=x.dtype)
        if x.size == 0 or w.size == 0:
            y[...] = 0 if b is None else bias.reshape((1, -1) + (1,) * spec.nd)
            return y
        p = plan("conv_transpose", spec, x.dtype)
        xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
        if p.path == "direct":
            _kernels.conv_transpose_direct(xf, wf, bias, yf, _geo(spec), p.omp_threads)
        elif p.path == "phases":
            level, mr, nr = _packed_params(x.dtype.itemsize)
            for index, sub, taps in _phase_specs(spec):
                if sub is None:
                    y[index] = 0 if b is None else bias.reshape((1, -1) + (1,) * spec.nd)
                    continue
                sp = plan("conv", sub, x.dtype)
                ws = _phase_weight(w, spec, taps)
                view = y[index]        # strided view: the kernel writes the phase in place
                esz = x.dtype.itemsize
                off = (view.__array_interface__["data"][0]
                       - y.__array_interface__["data"][0]) // esz
                st = (0,) * (5 - spec.nd) + tuple(v // esz for v in view.strides[2:])
                _kernels.conv_implicit(xf, ws.reshape(-1), bias, yf, _geo(sub), sp.tile,
                                       level, mr, nr, sp.omp_threads,
                                       (off, view.strides[0] // esz, view.strides[1] // esz)
                                       + st[-3:])
        else:
            self._run(p, _kernels.conv_transpose_gemm, xf, wf, bias, yf, _geo(spec), p.tile,
                      p.slabs, p.images, p.path == "pointwise", p.omp_threads)
        return y

    def conv_weight(self, x, grad_out, spec):
        gw = np.zeros(spec.weight_shape, dtype=x.dtype)
        if gw.size == 0 or x.size == 0 or grad_out.size == 0:
            return gw
        p = plan("conv_weight", spec, x.dtype)
        xf, gyf, gwf = x.reshape(-1), grad_out.reshape(-1), gw.reshape(-1)
        if p.path == "direct":
            _kernels.conv_weight_direct(xf, gyf, gwf, _geo(spec), p.omp_threads)
        elif p.path == "implicit":
            level, mrw, nrw = _weight_params(x.dtype.itemsize)
            part = np.zeros((p.slots - 1) * gw.size, dtype=x.dtype)
            _kernels.conv_weight_implicit(xf, gyf, gwf, part if part.size else _EMPTY[x.dtype],
                                          _geo(spec), p.tile, p.slots, level, nrw,
                                          p.omp_threads)
        else:
            part = np.zeros((p.slots - 1) * gw.size, dtype=x.dtype)
            self._run(p, _kernels.conv_weight_gemm, xf, gyf, gwf,
                      part if part.size else _EMPTY[x.dtype], _geo(spec), p.tile, p.slots,
                      p.path == "pointwise", p.omp_threads)
        return gw


def load():
    """The backend, or ImportError saying why the extension is missing."""
    if _kernels is None:
        import glob
        import os
        from .._registry import BackendNotBuilt

        here = os.path.dirname(os.path.abspath(__file__))
        if not glob.glob(os.path.join(here, "_kernels*.so")) + glob.glob(
                os.path.join(here, "_kernels*.pyd")):
            raise BackendNotBuilt(
                f"the compiled extension pyconv._cy._kernels is not built in {here} (a source "
                "checkout without its build?): build it with `pip install -e .` in the "
                "checkout (it needs a C compiler), or install pyconv with pip")
        raise ImportError(f"the compiled extension pyconv._cy._kernels could not be loaded "
                          f"({_IMPORT_ERROR}); rebuild it with `pip install -e .`")
    return CythonBackend()
