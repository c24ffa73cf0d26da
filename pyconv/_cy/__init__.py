"""The ``cython`` backend: compiled CPU kernels, OpenMP threads, SIMD micro-kernels, BLAS.

Python plans, the compiled kernel modules execute.  For each call the
planner picks a *path* and, for it, tile sizes, work items and a thread
count, from the :class:`~pyconv._spec.ConvSpec` alone; the kernels then run
with the GIL released.  Each path is one unit in :mod:`pyconv._cy.paths`
(when it applies, how it plans, how it runs) with one kernel module
(``_<name>.pyx``; ``pointwise`` shares ``_gemm.pyx``, ``phases`` uses
``_implicit.pyx`` and ``winograd4``/``winograd2`` share ``_winograd.pyx``;
``winograd_w`` reuses its input transform).

Paths (the per-call choice, in this order)
------------------------------------------
The planner walks the list below and takes the first path that computes
the op, whose rule accepts the call and whose buffers fit the workspace
(see :mod:`pyconv._cy._planning` for ``M``, ``K`` and the constants).
"Micro-kernel CPU" means AVX2+FMA or AVX-512: there the register-blocked
micro-kernels of ``kernels/microkernels.h`` beat BLAS; on other CPUs their
portable build is correct but slower, so BLAS runs instead.

1. ``fft`` (all ops; not ``exact``): long kernels by overlap-save FFT
   correlation (:mod:`scipy.fft` transforms, a compiled complex product
   per frequency for the channel sum; strides as input phases, dilation
   as a sparse kernel).  Taken when the kernel has at least ``MIN_TAPS``
   (32) taps and the cost model of :mod:`pyconv._cy.paths.fft` says it is
   faster than the path the rest of this list would take: its modelled
   one-thread time (FFT ``N log2 N`` units, complex multiply-adds, the
   kernel's spectrum streamed per work item, moved values, fixed costs per
   group, item and call, each times a constant fitted to measured times on
   the development machine by ``tools/calibrate_fft.py``) against that
   path's multiply-adds times its measured time per multiply-add, with a
   margin of ``MARGIN`` (1.5).  The frame length and work items are the
   ones that minimise the modelled time within the workspace.
2. ``dwrows`` (conv): 2-d depthwise 3x3 layers (one input channel per
   group, any channel multiplier), stride 1, dilation 1, AVX-512: the
   vector lanes are consecutive outputs of one row, read straight from
   the input planes with masked loads (the masks zero the padding), a
   register block of 4 output rows loading each input row once.  No copy
   and no transpose, where ``depthwise`` pays two per tile (measured
   1.1-3.2x ``depthwise`` on MobileNet's 7x7 to 112x112 maps, float32).
3. ``depthwise`` (conv): one input channel per group (depthwise, any
   channel multiplier), 2-d or 3-d, micro-kernel CPU.  Channels are the
   vector lanes: a tile of output rows of VL channels copies its input
   box channel-interleaved, and each tap is one vector FMA per pixel, so
   no lane idles on narrow maps.
4. ``direct`` (all ops): loops over output rows, no GEMM, when the
   per-group GEMM would be thin, ``min(M, K) < MIN_GEMM`` (8) with
   ``M, K = C_out/g, C_in/g * prod(kernel)`` for conv and conv_weight, and
   the loops measured faster than a GEMM with idle micro-kernel rows:
   ``K < MIN_GEMM``, or at most 4 channel pairs per group for conv
   (``C_in/g * C_out/g <= 4``: 1-d depthwise, small multipliers), one for
   conv_weight (never for conv_transpose: the GEMM paths were faster even
   at one channel per group); also when BLAS's 32-bit sizes would overflow
   (2**31 or more positions per image, or ``M * K`` above 2**31 - 1).
5. ``winograd_oc`` (conv; not exact): Winograd F(4x4, 3x3) or F(2x2, 3x3)
   (the one with fewer modelled operations) with the output channels as
   vector lanes, for layers with few tiles and many channels: 2-d 3x3,
   stride 1, dilation 1, float32, micro-kernel CPU, at least 48 channels
   per group in and out, and 8 to 512 tiles of 4x4 per call (7x7 maps from
   batch 2 to 32, 14x14 maps to batch 32, 28x28 maps to batch 8, 56x56
   maps batch 1 and 2).  The
   input is transformed first (tiles as vector
   lanes); then each work item (a chunk of tiles, a few blocks of output
   channels) transforms its blocks' weights a run of input channels at a
   time and adds their products into its sums at once, so the transformed
   weights stay in the cache: a register block is two vectors of output
   channels by up to 14 tiles (``paths/winograd_oc.py`` has the
   measurements).  On AVX-512, from 1536 outputs in tiles (96 tiles of
   4x4; 768 with at most 128 output channels per group), the work is cut
   into rounds of at least 384 outputs instead, one item each, which
   transforms its round's input into its own thread's buffer and runs all
   of the round's products on it (local rounds).  Also 2-d 3x3 layers
   with stride 2 (ResNet's downsampling), AVX-512 only: tiles of 2x2
   outputs read 5x5 windows; taps 0 and 2 of each axis meet the window's
   even positions only (F(2, 2) there), tap 1 its odd ones: 25 products
   per tile where the direct sum does 36.  At least 48 channels per
   group, 49 to 2048 tiles per call, and tiles that cover at most 10% more
   outputs than the map has (even output sizes: a 7x7 map stays on
   ``ocvec``).
6. ``winograd4`` (conv, conv_transpose; not exact): Winograd minimal
   filtering F(4, 3) on every axis (4 outputs per tile and axis), float32,
   micro-kernel CPU, stride 1, dilation 1, a 3-tap kernel on every axis
   (1-d: 3 or 5 taps), at least 48 channels per group in and out (3-d:
   32), at least 96 output tiles of 4x4 per call (1-d, 3-d: 150; 2-d
   layers up to 512 tiles: ``winograd_oc``) and output rows of at least
   20; also 2-d 5x5
   kernels, and 3x3 ones with at least 1024 channel pairs per group, from
   16 channels per group and 196 tiles (``NARROW_*``; 5x5 with 1024 pairs
   from 49 tiles and rows of 14).
   The input is transformed tile by tile, the products are one GEMM per
   transformed position (``alpha**nd`` of them) on the micro-kernel, then
   transformed back: 4x fewer multiplications than a 3x3 conv (1-d 2x,
   3-d 8x).  conv_transpose (a layer's input gradient): the equivalent
   stride-1 conv with the flipped kernel.  Also a 1-d conv with dilation
   d, stride 1, length and padding multiples of d, K = 2 (d >= 32) or 3
   (d >= 16), at least 128 channels per group in and out: the 2-d conv
   with kernel (K, 1) on its (L/d, d) view (``paths/winograd.py``,
   ``dilated_view``); the same for the stride-1 conv_transpose of such a
   layer (its input gradient).
7. ``winograd2`` (conv, conv_transpose; not exact): F(2x2, 3x3), 2-d only,
   under the same conditions with tiles of 2, at least 100 of them, output
   rows of at least 8 and at least 96 channels per group (batches of small
   images with many channels, 16 x 14x14 x 256: rows too short for tiles
   of 4).  float64 takes neither:
   its micro-kernel is half as wide and the transforms' share of the time
   doubles (measured slower).
8. ``winograd_w`` (conv_weight; not exact): the weight gradient of a 2-d
   3x3 layer, stride 1, dilation 1, by Winograd F(3x3, 4x4): the output
   gradient in tiles of 4x4 is the "kernel", the taps the 3x3 "outputs";
   the 6x6 input window of a tile is transformed as on ``winograd4``, the
   products are one GEMM per transformed position (36) over the tiles on
   the weight-gradient micro-kernel, each position's sum written by one
   item per round of tiles (4x fewer multiplications).  float32,
   micro-kernel CPU, 32 to 256 channels per group in and out, at least 96
   output tiles of 4x4 per call, output maps of at least 8x8, and below
   20x20 (14x14: rows of 4 tiles with a quarter of padding) at least 128
   channels.
9. ``ocvec`` (conv): direct convolution with output channels as vector
   lanes, for deep layers on small maps, micro-kernel CPU: 2-d, dilation
   1, more than one tap, at least 32 channels per group in and out, and
   output rows of at most 7 (stride 1), of at most 14 with at most 256
   output positions per call (stride 1: batch-1 8x8 and 14x14 maps), or
   of at most 14 with a stride (``paths/ocvec.py`` has the measurements).
   A register block is two vectors of output channels by a few rows of
   consecutive outputs (1 x 14, 2 x 7 or 3 x 4, whichever wastes the
   fewest positions on the map), so a 7x7 map fills its blocks where the
   GEMM paths' 48-position panels are a quarter padding columns and
   leftovers; per input channel and tap it loads two weight vectors and
   broadcasts one input value per output.  A work item (a block of
   images, a tile of output rows, part of the channel blocks) copies its
   input rows, zero padded, into a slab per image; the weights are packed
   once per call, channel-block-major.  With more than one image on maps
   of at most 64 positions, a first pass fills every image's slab once
   into a buffer the items share, and each item (one channel block over
   all images) packs its block itself.
10. ``dilated`` (conv): every stride 1, a dilation of at least 2 in some
   dim, 1 or 2 spatial dims, at least ``MIN_GEMM`` channels per group in
   and out, micro-kernel CPU (DeepLab ASPP branches); 1-d only when under
   80% of the (tap, output) pairs read the input, 2-d not with a dilation
   of 2 and at most 128 input channels per group or output rows of at
   most 28, nor with a dilation of at most 4 and at most 64 channels
   (there ``implicit`` measured faster).  A tile of whole
   output rows visits only the kernel rows (and columns) whose taps reach
   the input for some of its outputs (weights packed tap-major, so these
   taps are contiguous), copies their im2col rows without padding columns
   a chunk at a time and multiplies them on the micro-kernel; tiles are
   cut where a kernel row starts or stops reaching the input.
11. ``implicit`` (conv, conv_weight): micro-kernel CPU; conv: every stride
   1; conv_weight: ``min(M, K) >= MIN_GEMM`` and, with at most 9 taps, at
   least 48 channels per group in and out, thinner ones on ``gemm``, and not
   1x1 without padding: ``pointwise``; strided: more than one tap and at
   least ``STRIDED_MIN_POSITIONS`` output positions.  A
   tile of output rows copies the input box it reads, zero padded, into a
   slab (with a stride: split into the stride's phases); in the slab every
   kernel tap is a constant offset, so the
   micro-kernel reads the slab directly and no im2col is built.
12. ``strided1d`` (conv): 1-d with a stride of at most 8, micro-kernel CPU.
   Implicit GEMM on a slab that de-interleaves the tile's input by residue
   modulo the stride (row r of channel c holds every s-th input from r):
   each tap is again a constant offset, one copy of the input per tile,
   whole panels written straight into the output.
13. ``packed`` (conv): micro-kernel CPU, at least ``MIN_GEMM`` output channels
   per group and 100 output positions per image (strided 2-d and 3-d convs,
   mostly; thinner or smaller: BLAS was faster).
   im2col of a tile straight into the micro-kernel's panel layout (one
   copy, where BLAS would make two).
14. ``phases`` (conv_transpose): micro-kernel CPU, kernel taps that
   overlap (a dilated kernel extent above the stride in some dim), no
   phase thin enough for ``direct``, and either at most 64 input channels
   per group, at least twice as many output channels and 49 input
   positions (batch x image) per input channel,
   or at least ``PHASE_MIN_POSITIONS`` (256) input positions per image
   and with a stride at least
   ``TARGET_ITEMS`` (8) images x groups or an input too large for
   ``tgemm``'s rule (smaller batches of small images: ``tgemm``).
   Output positions with the same residue modulo the stride form a
   stride-1 conv of the input with a subset of the taps (no zero
   insertion); each phase is an implicit-path conv that writes its strided
   view of the output in place, all phases' items in one parallel region.
15. ``pointwise`` (all ops): a 1x1 kernel, stride 1, no padding: BLAS GEMMs
   that read the input directly.
16. ``tgemm`` (conv_transpose): micro-kernel CPU, not pointwise, input
   images of at most ``MAX_POSITIONS`` (1024) positions whose ``C_in/g``
   channels take at most ``MAX_IMAGE_BYTES`` (2 MiB).  ``col = W^T @ x`` + col2im as on ``gemm``, but on
   register-blocked micro-kernels that read the weight in its own layout
   (for an input channel the rows of ``W^T`` are contiguous: nothing of
   the weight is packed, where BLAS packs it in every call); items are
   (block of images side by side as one GEMM's columns, group, block of
   output channels).
17. ``gemm`` (all ops): BLAS (``scipy.linalg.cython_blas`` behind a
   row-major wrapper).  conv by tiled im2col + GEMM straight into the
   output; conv_transpose by ``W_g^T @ x`` + col2im, each item owning a
   slab of output rows, small images several to a GEMM; conv_weight by
   im2col + ``gy @ col^T``.

conv_weight always reduces into a fixed number of partial weights (slots,
fixed by the spec), summed in slot order at the end.

Under ``pyconv.use_algorithms("exact")`` (or ``PYCONV_ALGORITHMS=exact``)
the planner skips the paths that are not ``exact`` (the transform
algorithms, which do fewer multiplications and round differently) and
takes the first exact one.

Forcing a path (tests)
~~~~~~~~~~~~~~~~~~~~~~
``plan(..., paths=("packed",))`` or ``with force_paths("packed"):`` tries
the named paths first, skipping their rules: a forced path runs every call
it supports.  A call it does not support (``strided1d`` on a 2-d conv,
``implicit`` on a strided conv, ``pointwise`` with a 3x3 kernel ...), or whose
buffers do not fit, falls back to the normal order above.  ``simd=``
plans the micro-kernels for a lower SIMD level than the CPU's (to test the
AVX2 and baseline builds on an AVX-512 machine).  This is a test hook, not
a tuning knob: it is process-wide and not meant for concurrent use.

Tiles and memory
----------------
Per thread, one im2col/col buffer or one slab + output block of about
``TILE_BYTES`` (they are re-read from the L2 cache), with enough columns
for the micro-kernel panels.  The number of threads is lowered if needed
so that all buffers together (plus conv_weight partials and packed
weights) stay below ``WORKSPACE_BYTES`` (64 MiB): extra memory is bounded
whatever the input size.  The kernel modules report the bytes their
buffers take (``*workspace``, from the same layouts the kernels allocate)
and the plan's ``workspace`` is computed from them in one place
(:func:`pyconv._cy._planning.finish`).

Threads (the per-call heuristic)
--------------------------------
``n = pyconv.get_num_threads()``, or **one** thread for a call of fewer
than ``SERIAL_MACS`` (2**24) multiply-adds (``spec.flops / 2``, the same
count for the three primitives; times the path's ``serial_scale``, 1/16
for the memory-bound ``depthwise`` and ``direct`` paths): with the passive wait policy below,
waking the second thread costs about 90 us per call on the development
machine, so a second thread pays only from about 2**24 multiply-adds
(measurements at :data:`pyconv._cy._planning.SERIAL_MACS`); spinning
threads would pay earlier on an idle machine, but a call that waits at the
end of its parallel region for a spinning thread descheduled by a
CPU-bound neighbour process loses a scheduler time slice (a 30 us call
took 4-16 ms).  With one thread
``run_items`` enters no parallel region, so the OpenMP team is not woken.
A forced path (the test hook below) keeps ``n``, so that the tests run the
threads on small shapes.  The runtime's waiting threads sleep rather than
spin (``OMP_WAIT_POLICY=passive`` unless the user set a policy: see
:func:`_wait_policy_default` for why).  Inside a call, the waits of its own
threads for each other (between the passes of the ``winograd`` paths,
and thread 0 for the others before the region ends) spin for at most
50 us before they sleep (``pc_team_*`` in ``kernels/common.h``): a
sleeping thread took 50-100 us to wake here.  The plan cuts the work into items
(conv: batch x group x tile; conv_weight: fixed slots of (image, tile);
conv_transpose: every phase's tiles, or batch x group x channel block x
slab, or blocks of images; direct: batch x channel, or weight pairs) and
runs them on ``min(n, items)`` OpenMP threads, each taking the next run of
consecutive items when it is free (a dynamic schedule, about eight runs per
thread: a thread descheduled by another process does not hold the others
up for the rest of the call, and the threads do not contend for the loop
counter at every item) while every BLAS library is held to
**one** thread (threadpoolctl, ``user_api="blas"``) so that nothing is
oversubscribed; the kernels never start more threads than they have items.
When batch x groups alone gives fewer than ``TARGET_ITEMS`` items the plan
cuts smaller tiles (never below ``MIN_TILE`` columns), blocks of output
channels or output slabs, so that a single image still keeps every thread
busy.

Letting BLAS itself use the threads when there is a single chunk was
measured and rejected: OpenBLAS picks a different kernel (a different
summation order) depending on its own thread count, so the result would
change with ``n`` (1 ulp differences on conv_weight shapes), breaking the
guarantee below.  A problem too small to cut into two items runs on one
thread; it is small enough that this costs little.

The cutting of the work depends on the spec only, never on ``n``; every
output element (and every conv_weight partial) is summed in an order fixed
by that cutting, so the result is bitwise identical for any thread count.

Interrupting (Ctrl-C)
---------------------
Every path runs its items through one driver (``run_items`` in
``_common.pxd``).  Between items, thread 0 of a call made from the main
Python thread checks for pending signals at most every 20 ms (taking the
GIL only then); when a handler raises (``KeyboardInterrupt``), every
thread skips its remaining items, the buffers are freed and the exception
is raised as soon as the threads have joined.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from .._registry import Backend, get_algorithms, get_num_threads

#: The OpenMP wait policy pyconv's runtime gets unless the user chose one.
WAIT_POLICY = "passive"


def _wait_policy_default() -> bool:
    """Give the OpenMP runtime a passive wait policy while it loads, unless the
    user set one (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) or it is loaded already.

    libgomp reads these variables once, when it is loaded; the variable is
    removed again right after, so the environment the user and child
    processes see is unchanged.  Why (measured on the development machine,
    medians per process): threads that spin while they wait take the CPU from
    their descheduled partners when other processes load the cores; a
    2-thread call of 83M multiply-adds took 10-80 ms instead of 2.5-12 ms
    (one thread: 2.4-19 ms), one of 5M sometimes 12-24 ms instead of 0.24
    ms.  The price on a quiet machine: waking a sleeping thread costs some
    tens of microseconds per call (5M multiply-adds: 0.24 instead of 0.17 ms).
    Returns whether the variable was set (and must be removed).
    """
    from .._registry import _openmp_runtime_loaded

    if ("OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
            or _openmp_runtime_loaded()):
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True


_policy_set = _wait_policy_default()

_IMPORT_ERROR: Optional[ImportError]
try:
    from . import _build, _planning
    from .paths import BY_NAME, ORDER
    from .paths.direct import DIRECT
    from .paths.gemm import BLAS
except ImportError as exc:  # not built (e.g. a source checkout without a build)
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None
finally:
    if _policy_set:
        os.environ.pop("OMP_WAIT_POLICY", None)
if _IMPORT_ERROR is None:
    #: the OpenMP runtime's thread limit when this module was loaded (see
    #: :meth:`CythonBackend.thread_limit`)
    _OMP_INITIAL = _build.omp_max_threads()

__all__ = ["CythonBackend", "force_paths", "load", "plan"]

_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}

#: The test hook's state: (forced path names, SIMD level or None).
_forced: Tuple[Tuple[str, ...], Optional[int]] = ((), None)


def _check_paths(names) -> Tuple[str, ...]:
    names = tuple(names)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown cython path(s) {unknown}; the paths are {list(BY_NAME)}")
    return names


@contextlib.contextmanager
def force_paths(*names: str, simd: Optional[int] = None) -> Iterator[None]:
    """Test hook: calls inside the block try the named paths first.

    A path forced here skips its rule and runs every call it supports;
    calls it does not support fall back to the normal order (see the
    module docstring).  ``simd`` plans the micro-kernels for that SIMD
    level (2 AVX-512, 1 AVX2+FMA, 0 baseline; never above the CPU's).
    Process-wide; the previous setting comes back at the end of the block.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import _cy
    >>> from pyconv._spec import ConvSpec
    >>> spec = ConvSpec(False, 1, 16, 16, 1, (32,), (30,), (3,), (1,), ((0, 0),), (1,))
    >>> with _cy.force_paths("gemm"):
    ...     _cy.plan("conv", spec, np.float32).path
    'gemm'
    """
    global _forced
    state = (_check_paths(names), None if simd is None else int(simd))
    previous, _forced = _forced, state
    try:
        yield
    finally:
        _forced = previous


def plan(op: str, spec, dtype, nthreads: Optional[int] = None,
         paths: Optional[Sequence[str]] = None) -> "_planning.Plan":
    """The plan of one call: path, tiles, thread count, workspace bytes.

    Parameters
    ----------
    op : {'conv', 'conv_transpose', 'conv_weight'}
    spec : ConvSpec
    dtype : float32 or float64
    nthreads : int, optional
        Defaults to :func:`pyconv.get_num_threads`.
    paths : sequence of str, optional
        Paths to try first, rules skipped (a test hook, see
        :func:`force_paths`, whose setting applies when this is None).

    Plans are memoised (keyed by the arguments and the tuning constants):
    planning costs microseconds that small calls would notice.
    """
    n = get_num_threads() if nthreads is None else int(nthreads)
    forced, simd = _forced
    if paths is not None:
        forced = _check_paths(paths)
    exact = get_algorithms() == "exact"
    return _plan_cached(op, spec, dtype if isinstance(dtype, np.dtype) else np.dtype(dtype),
                        n, forced, simd, exact, _planning.tuning())


@functools.lru_cache(maxsize=512)
def _plan_cached(op, spec, dtype, n, forced, simd, exact, tuning):
    tgt = _planning.target(np.dtype(dtype), simd)
    for unit in [BY_NAME[name] for name in forced]:
        if exact and not unit.exact:
            continue
        if op in unit.ops and unit.supports(op, spec, tgt):
            p = unit.plan(op, spec, tgt, n)
            if p is not None:
                return p
    for unit in ORDER:                       # small calls: one thread (not for forced paths)
        if exact and not unit.exact:
            continue
        if op in unit.ops and unit.supports(op, spec, tgt) and unit.chosen(op, spec, tgt):
            p = unit.plan(op, spec, tgt, _planning.threads_for(spec, n, unit))
            if p is not None:
                return p
    # computes anything; the rules rarely get here
    return DIRECT.plan(op, spec, tgt, _planning.threads_for(spec, n, DIRECT))


class CythonBackend(Backend):
    """Compiled CPU backend (OpenMP threads, SIMD micro-kernels, BLAS GEMMs, direct loops)."""

    name = "cython"

    def supports(self, op, spec, dtype):
        if dtype not in _EMPTY and np.dtype(dtype) not in _EMPTY:
            return f"dtype {np.dtype(dtype)} is not float32/float64"
        if not 1 <= spec.nd <= 3:
            return f"{spec.nd}-d convolutions are not built (1, 2 or 3 spatial dims)"
        return None

    def thread_limit(self):
        """The OpenMP runtime's current limit when lower than at load time, else None.

        ``threadpoolctl.threadpool_limits(n)`` lowers it (``omp_set_num_threads``
        for the calling thread): pyconv then runs at most ``n`` threads.  A
        limit the runtime had from the start (``OMP_NUM_THREADS``) is not a
        cap: it is already one of :func:`pyconv.get_num_threads`' sources,
        after ``set_num_threads`` and ``PYCONV_NUM_THREADS``.
        """
        current = _build.omp_max_threads()
        return current if current < _OMP_INITIAL else None

    def info(self):
        facts = dict(_build.build_info())
        facts["threads"] = get_num_threads()
        tgt = _planning.target(np.float32)
        facts["microkernel"] = (
            f"{('baseline', 'avx2+fma', 'avx512')[tgt.level]}, {tgt.mr}x{tgt.nr} register "
            "block (float32)" + ("" if tgt.level >= 1 else "; not used (BLAS paths instead)"))
        facts["paths"] = ", ".join(unit.name for unit in ORDER)
        facts["algorithms"] = (f"{get_algorithms()} (pyconv.use_algorithms / "
                               "PYCONV_ALGORITHMS; 'exact' skips: "
                               + (", ".join(u.name for u in ORDER if not u.exact) or "none")
                               + ")")
        facts["blas"] = "scipy.linalg.cython_blas (sgemm/dgemm)"
        try:
            ctl = BLAS.controller()
            if ctl is not None:
                facts["blas_libraries"] = [
                    f"{lib.internal_api} {lib.version} ({lib.architecture}, "
                    f"{lib.num_threads} threads) {lib.prefix}"
                    for lib in ctl.lib_controllers]
        except Exception as exc:  # info must never fail
            facts["blas_libraries"] = f"unknown ({exc})"
        facts["omp_wait_policy"] = (
            f"{WAIT_POLICY} (pyconv's default)" if _policy_set else
            "the user's (OMP_WAIT_POLICY / GOMP_SPINCOUNT) or the runtime's, loaded before "
            "pyconv")
        facts["tile_bytes"] = _planning.TILE_BYTES
        facts["workspace_bytes_max"] = _planning.WORKSPACE_BYTES
        return facts

    @staticmethod
    def _run(op, spec, x, w, b, out):
        """Plan the call and run it on its path (the arrays as they are: C-contiguous)."""
        p = plan(op, spec, x.dtype)
        BY_NAME[p.path].run(op, p, spec, x, w, b, out)

    @staticmethod
    def _bias_only(y, b, spec):
        """The output of a call with nothing to sum: the bias (or zeros)."""
        y[...] = 0 if b is None else b.reshape((1, -1) + (1,) * spec.nd)
        return y

    def conv(self, x, w, b, spec):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if y.size == 0:
            return y
        bias = _EMPTY[x.dtype] if b is None else np.ascontiguousarray(b, dtype=x.dtype)
        if x.size == 0 or w.size == 0:
            return self._bias_only(y, b, spec)
        self._run("conv", spec, x, w, bias, y)
        return y

    def conv_transpose(self, x, w, b, spec):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if y.size == 0:
            return y
        bias = _EMPTY[x.dtype] if b is None else np.ascontiguousarray(b, dtype=x.dtype)
        if x.size == 0 or w.size == 0:
            return self._bias_only(y, b, spec)
        self._run("conv_transpose", spec, x, w, bias, y)
        return y

    def conv_weight(self, x, grad_out, spec):
        gw = np.zeros(spec.weight_shape, dtype=x.dtype)
        if gw.size == 0 or x.size == 0 or grad_out.size == 0:
            return gw
        self._run("conv_weight", spec, x, grad_out, _EMPTY[x.dtype], gw)
        return gw


def load():
    """The backend, or ImportError saying why the extension is missing."""
    if _IMPORT_ERROR is not None:
        import glob
        import os
        from .._registry import BackendNotBuilt

        here = os.path.dirname(os.path.abspath(__file__))
        if not glob.glob(os.path.join(here, "_*.so")):
            raise BackendNotBuilt(
                f"the compiled extension modules of pyconv._cy are not built in {here} (a "
                "source checkout without its build?): build them with `pip install -e .` in "
                "the checkout (it needs a C compiler), or install pyconv with pip")
        raise ImportError(f"the compiled extension modules of pyconv._cy could not be loaded "
                          f"({_IMPORT_ERROR}); rebuild them with `pip install -e .`")
    return CythonBackend()
