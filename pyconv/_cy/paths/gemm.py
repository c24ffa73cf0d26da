"""The ``gemm`` and ``pointwise`` paths: BLAS ``sgemm``/``dgemm`` (kernels: ``_gemm.pyx``).

BLAS is ``scipy.linalg.cython_blas`` behind a row-major wrapper, held to
one thread during the call (threadpoolctl): the work items are the unit of
parallelism, and OpenBLAS picks a different kernel, so a different
summation order, for a different thread count.

* conv: im2col of a tile of output positions, then one GEMM straight into
  the output; conv_weight: im2col + ``gy @ col^T`` into the partial sum of
  the tile's slot; conv_transpose: ``W^T @ x`` + col2im, each item owning a
  slab of output rows, small images several to a GEMM.
* ``pointwise`` (1x1 kernel, stride 1, no padding): the GEMMs read the
  input directly, no im2col.

Rules: ``pointwise`` for every pointwise call that reaches it; ``gemm``
for everything else (the end of the order).  Both need BLAS's 32-bit sizes.
"""

from __future__ import annotations

import threading
from math import prod

from .. import _gemm, _planning
from .._planning import Path, canon, finish, geo, outer_axis, slots, tile_columns
from .direct import blas_sizes_ok


#: Fewest GEMM rows (output channels x kernel taps) in a block of output
#: channels of conv_transpose: thinner blocks would leave the GEMM's
#: register blocks and weight panels half used.
BLOCK_ROWS = 128


def is_pointwise(spec):
    """1x1 kernel, stride 1, no padding or crop (so the sizes are equal)."""
    return (all(k == 1 for k in spec.kernel_size) and all(s == 1 for s in spec.stride)
            and all(lo == 0 for lo in spec.pad_lo)
            and tuple(spec.in_size) == tuple(spec.out_size))


class Gemm(Path):
    name = "gemm"
    ops = frozenset({"conv", "conv_transpose", "conv_weight"})
    pointwise = False

    def supports(self, op, spec, tgt):
        return blas_sizes_ok(op, spec) and (is_pointwise(spec) or not self.pointwise)

    def plan(self, op, spec, tgt, n):
        g = spec.groups
        isz = tgt.itemsize
        gt = geo(spec)
        pin, pout = prod(spec.in_size), prod(spec.out_size)
        if op in ("conv", "conv_weight"):
            kc = spec.in_channels // g * prod(spec.kernel_size)
            row_len = int(spec.out_size[-1]) if spec.out_size else 1
            tile = tile_columns(kc, pout, row_len, isz,
                                spec.batch * g if op == "conv" else spec.batch)
            ntiles = -(-pout // tile)
            if op == "conv":
                per, fixed = _gemm.conv_workspace(gt, tile, self.pointwise, tgt.dbl)
                return finish(self.name, spec.batch * g * ntiles, per, fixed, n, tile=tile)
            nslots = slots(spec, spec.batch * ntiles, isz)
            per, fixed = _gemm.weight_workspace(gt, tile, nslots, self.pointwise, tgt.dbl)
            return finish(self.name, nslots, per, fixed, n, tile=tile, slots=nslots)
        # conv_transpose: the GEMM is (cout_g*kp) x cin_g times cin_g x T
        mt = spec.out_channels // g * prod(spec.kernel_size)
        cin_g = spec.in_channels // g
        in_row = int(spec.in_size[-1]) if spec.in_size else 1
        if self.pointwise:
            tile = tile_columns(mt, pin, in_row, isz, spec.batch * g)
            per, fixed = _gemm.transpose_workspace(gt, tile, 1, True, tgt.dbl)
            return finish(self.name, spec.batch * g * -(-pin // tile), per, fixed, n,
                          tile=tile)
        # small images: several images per GEMM so that BLAS packs the weight
        # once per TILE_COLS columns rather than once per image
        if pin < _planning.TILE_COLS and spec.batch > 1:
            nb = int(min(-(-_planning.TILE_COLS // pin),
                         max(1, spec.batch // _planning.BLOCKS_MIN), spec.batch,
                         (_planning.WORKSPACE_BYTES // 4) // ((mt + cin_g) * pin * isz)))
            if nb > 1:
                per, fixed = _gemm.transpose_workspace(gt, nb * pin, nb, False, tgt.dbl)
                return finish(self.name, -(-spec.batch // nb) * g, per, fixed, n,
                              tile=nb * pin, slabs=1, images=nb)
        # when batch x groups alone gives too few items: first blocks of output
        # channels (each item multiplies only its block's columns of the
        # weight: nothing is read twice), GEMMs of at least BLOCK_ROWS rows ...
        tile = tile_columns(mt, pin, in_row, isz, 1)
        want = -(-_planning.TARGET_ITEMS // max(1, spec.batch * g))
        cout_g = spec.out_channels // g
        nchb = int(max(1, min(want, cout_g, mt // BLOCK_ROWS)))
        # ... then slabs of output rows along the outermost spatial axis, never
        # so thin that the recomputed halo (about d*(K-1)/s input rows per
        # slab) dominates
        want = -(-want // nchb)
        axis = outer_axis(spec)
        ins, outs = canon(spec.in_size, 1), canon(spec.out_size, 1)
        k, s, d = (canon(v, 1)[axis] for v in (spec.kernel_size, spec.stride, spec.dilation))
        halo = -(-(d * (k - 1)) // s)
        max_slabs = max(1, ins[axis] // max(1, 4 * halo)) if halo else outs[axis]
        nslabs = int(max(1, min(want, max_slabs, outs[axis])))
        per, fixed = _gemm.transpose_workspace(gt, tile, 1, False, tgt.dbl)
        return finish(self.name, spec.batch * g * nchb * nslabs, per, fixed, n, tile=tile,
                      slabs=nslabs, blocks=nchb)

    def run(self, op, p, spec, x, w, b, out):
        with _blas_threads(1):
            if op == "conv":
                _gemm.conv(x, w, b, out, geo(spec), p.tile, self.pointwise, p.omp_threads)
            elif op == "conv_weight":
                _gemm.conv_weight(x, w, out, geo(spec), p.tile, p.slots, self.pointwise,
                                  p.omp_threads)
            else:
                _gemm.conv_transpose(x, w, b, out, geo(spec), p.tile, p.slabs, p.images,
                                     self.pointwise, p.omp_threads, p.blocks)


class Pointwise(Gemm):
    name = "pointwise"
    pointwise = True


GEMM = Gemm()
POINTWISE = Pointwise()


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

    def controller(self):
        """The cached threadpoolctl controller of the BLAS libraries (None: none)."""
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
            ctl = self.controller()
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
            ctl = self.controller()
            if ctl is None:
                return
            self._active -= 1
            if self._active == 0:
                for lib, k in zip(ctl.lib_controllers, self._original or ()):
                    if k is not None:
                        _set_threads(lib, k)
                self._current = None


BLAS = _BlasLimiter()


class _blas_threads:
    """Context manager: BLAS at ``k`` threads for the duration of a call."""

    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k

    def __enter__(self):
        BLAS.enter(self.k)

    def __exit__(self, *exc):
        BLAS.exit()
