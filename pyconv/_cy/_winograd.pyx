# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``winograd`` paths: stride-1 conv by Winograd minimal filtering.

Two passes, in one parallel region (:func:`run_passes`):

* the weight transform: item = (group, panel of ``mr`` output channels);
  each writes its rows of every position's transformed weight ``U[p]``,
  packed in micro-kernel panels (``kernels/winograd.h``, in double);
* the convolution: item = (group, block of ``tb`` output tiles, in
  (image, z, y, x) order).  The
  block's input tiles are transformed into ``V[p]`` (C_in/g x tiles;
  ``PC_WINO_CCH`` channels at a time, loaded and transformed while their
  rows are in the L1 cache), each
  of the ``P`` positions is one GEMM ``M[p] = U[p] @ V[p]`` on the
  implicit-GEMM micro-kernel, and ``M`` is transformed back into the
  block's outputs, plus bias (again a few channels at a time).

Each output element belongs to one tile and is computed in an order fixed
by the transforms: bitwise the same for any block size and thread count.
:func:`workspace` reports the bytes the kernels allocate, from the same
layout the kernels use.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memset

from cython cimport floating

import numpy as np

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, ipanels, layout_add, layout_init,
                                 layout_part, make_geo, operands, packed_rows, pc_alloc,
                                 run_passes)
from pyconv._cy._wino cimport (PC_WINO_CCH, PC_WINO_FCH, input_block, pc_wino, pc_wino_halo,
                               pc_wino_ldv, pc_wino_scratch, segments)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "kernels/winograd.h" nogil:
    void pc_wino_filter_f(const pc_wino *wg, const float *w, int swap, Py_ssize_t grp,
                          Py_ssize_t panel, Py_ssize_t mr, Py_ssize_t mpad, float *upack,
                          double *tmp)
    void pc_wino_filter_d(const pc_wino *wg, const double *w, int swap, Py_ssize_t grp,
                          Py_ssize_t panel, Py_ssize_t mr, Py_ssize_t mpad, double *upack,
                          double *tmp)
    float *pc_wino_output_f(const pc_wino *wg, const float *M, Py_ssize_t ldv, Py_ssize_t c0,
                            Py_ssize_t c1, float *scratch)
    double *pc_wino_output_d(const pc_wino *wg, const double *M, Py_ssize_t ldv,
                             Py_ssize_t c0, Py_ssize_t c1, double *scratch)
    void pc_wino_store_block_f(const pc_wino *wg, const float *F, Py_ssize_t ldv,
                               const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L,
                               Py_ssize_t w, Py_ssize_t grp, Py_ssize_t c0, Py_ssize_t c1,
                               float *y, const float *bias)
    void pc_wino_store_block_d(const pc_wino *wg, const double *F, Py_ssize_t ldv,
                               const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L,
                               Py_ssize_t w, Py_ssize_t grp, Py_ssize_t c0, Py_ssize_t c1,
                               double *y, const double *bias)


# ---------------------------------------------------------------------------
# fused wrappers

cdef inline void wino_filter(const pc_wino *wg, const floating *w, int swap, Py_ssize_t grp,
                             Py_ssize_t panel, Py_ssize_t mr, Py_ssize_t mpad,
                             floating *upack, double *tmp) noexcept nogil:
    if floating is float:
        pc_wino_filter_f(wg, w, swap, grp, panel, mr, mpad, upack, tmp)
    else:
        pc_wino_filter_d(wg, w, swap, grp, panel, mr, mpad, upack, tmp)


cdef inline floating *wino_output(const pc_wino *wg, const floating *M, Py_ssize_t ldv,
                                  Py_ssize_t c0, Py_ssize_t c1,
                                  floating *scratch) noexcept nogil:
    if floating is float:
        return pc_wino_output_f(wg, M, ldv, c0, c1, scratch)
    else:
        return pc_wino_output_d(wg, M, ldv, c0, c1, scratch)


cdef inline void store_block(const pc_wino *wg, const floating *F, Py_ssize_t ldv,
                             const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L,
                             Py_ssize_t w, Py_ssize_t grp, Py_ssize_t c0, Py_ssize_t c1,
                             floating *y, const floating *bias) noexcept nogil:
    if floating is float:
        pc_wino_store_block_f(wg, F, ldv, seg, nseg, L, w, grp, c0, c1, y, bias)
    else:
        pc_wino_store_block_d(wg, F, ldv, seg, nseg, L, w, grp, c0, c1, y, bias)


# ---------------------------------------------------------------------------
# geometry and buffers

cdef struct Task:
    pc_wino wg
    const void *x
    const void *w       # the weights (the weight transform's input)
    int swap            # w: the transposed conv's weight (pc_wino_filter)
    void *u             # the packed transformed weights
    const void *b       # NULL: no bias
    void *y
    const Py_ssize_t *off   # off[ci] = ci * ldv: V[p] as the micro-kernel's slab
    int level           # SIMD level of the micro-kernel
    Py_ssize_t mr, mpad
    Py_ssize_t L        # tiles per segment
    Py_ssize_t segw     # columns per segment: L + h
    Py_ssize_t chunks   # segments per row of tiles
    Py_ssize_t nseg     # segments of the call: N * rows of tiles * chunks
    Py_ssize_t sb       # segments per block (work item)
    Py_ssize_t nblocks, ldv
    Layout buf


#: the matrices do not change the buffers' sizes
_NO_COEF = np.zeros((3, 3, 64))


cdef pc_wino make_wino(tuple geo, tuple tiles, const double[:, :, ::1] coef) except *:
    """The transform of a call: ``tiles`` outputs per tile per axis, ``coef[axis]`` =
    (B^T, G, A^T) flattened row-major."""
    cdef pc_wino wg
    cdef int i, j
    wg.g = make_geo(geo)
    wg.level = 0
    wg.P = 1
    for i in range(3):
        wg.m[i] = tiles[i]
        wg.a[i] = wg.m[i] + wg.g.ks[i] - 1
        wg.nt[i] = (wg.g.osz[i] + wg.m[i] - 1) // wg.m[i]
        wg.P *= wg.a[i]
        for j in range(64):
            wg.bt[i][j] = coef[i, 0, j]
            wg.gm[i][j] = coef[i, 1, j]
            wg.at[i][j] = coef[i, 2, j]
    return wg


cdef Py_ssize_t _layout(const pc_wino *wg, Py_ssize_t L, Py_ssize_t sb, Py_ssize_t isz,
                        Layout *lay) noexcept nogil:
    """The per-thread block of the convolution items (``sb`` segments of ``L``
    tiles); returns ``ldv``, the columns of V's and M's rows."""
    cdef Py_ssize_t ldv = pc_wino_ldv(sb * (L + pc_wino_halo(wg)))
    layout_init(lay)
    layout_add(lay, wg.P * wg.g.cin_g * ldv * isz)           # 0: V, transformed input
    layout_add(lay, wg.P * wg.g.cout_g * ldv * isz)          # 1: M, the products
    layout_add(lay, pc_wino_scratch(wg, ldv) * isz)          # 2: transform rows
    layout_add(lay, 4 * sb * sizeof(Py_ssize_t))             # 3: the segments
    layout_add(lay, (2 * wg.m[2] + 2) * sb * sizeof(Py_ssize_t))   # 4: their x ranges
    return ldv


def workspace(tuple geo, tuple tiles, Py_ssize_t L, Py_ssize_t sb, Py_ssize_t mr, bint dbl):
    """(bytes per thread, fixed bytes: the transformed weights, the offsets) of
    :func:`conv` with blocks of ``sb`` segments of ``L`` tiles."""
    cdef pc_wino wg = make_wino(geo, tiles, _NO_COEF)
    cdef Layout lay
    cdef Py_ssize_t isz = 8 if dbl else 4
    _layout(&wg, L, sb, isz, &lay)
    return (max(lay.nbytes, <Py_ssize_t> (3 * wg.P * PC_WINO_FCH * mr * sizeof(double))),
            wg.g.G * wg.P * packed_rows(wg.g.cout_g, mr) * wg.g.cin_g * isz
            + wg.g.cin_g * sizeof(Py_ssize_t))


# ---------------------------------------------------------------------------
# the two passes

cdef void _filter_item(const void *task, floating *buf, Py_ssize_t slot,
                       Py_ssize_t it) noexcept nogil:
    """The transformed weights of one (group, panel of mr output channels)."""
    cdef const Task *t = <const Task *> task
    cdef Py_ssize_t npanels = t.mpad // t.mr
    wino_filter(&t.wg, <const floating *> t.w, t.swap, it // npanels, it % npanels, t.mr, t.mpad,
                <floating *> t.u, <double *> buf)


cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    """One block of one group: load and transform, P products, transform back, store.

    The block is ``sb`` consecutive segments in (image, z, y, x) order, so
    that small images share the micro-kernel's panels.
    """
    cdef const Task *t = <const Task *> task
    cdef const pc_wino *wg = &t.wg
    cdef const Geo *g = &t.wg.g
    cdef floating *V = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *M = <floating *> layout_part(&t.buf, buf, 1)
    cdef floating *scratch = <floating *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t *seg = <Py_ssize_t *> layout_part(&t.buf, buf, 3)
    cdef Py_ssize_t *rng = <Py_ssize_t *> layout_part(&t.buf, buf, 4)
    cdef floating *F
    cdef Py_ssize_t blk = it % t.nblocks, grp = it // t.nblocks
    cdef Py_ssize_t s0 = blk * t.sb, s1 = min(s0 + t.sb, t.nseg)
    cdef Py_ssize_t p, c0, c1
    segments(wg, s0, s1, t.chunks, t.L, seg)
    input_block(wg, <const floating *> t.x, grp, seg, s1 - s0, t.segw, t.ldv, 0, g.cin_g, V,
                scratch, rng)
    for p in range(wg.P):
        ipanels(t.level, g.cin_g, g.cout_g,
                <const floating *> t.u + (grp * wg.P + p) * t.mpad * g.cin_g,
                V + p * g.cin_g * t.ldv, t.off, (s1 - s0) * t.segw, M + p * g.cout_g * t.ldv,
                t.ldv)
    c0 = 0
    while c0 < g.cout_g:
        c1 = min(c0 + PC_WINO_CCH, g.cout_g)
        F = wino_output(wg, M, t.ldv, c0, c1, scratch)
        store_block(wg, F, t.ldv, seg, s1 - s0, t.L, t.segw, grp, c0, c1, <floating *> t.y,
                    <const floating *> t.b)
        c0 = c1


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               tuple tiles, const double[:, :, ::1] coef, Py_ssize_t L, Py_ssize_t sb, int level,
               Py_ssize_t mr, int nthreads, bint swap=False) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef Py_ssize_t nitems, ci
    cdef Py_ssize_t *off
    t.wg = make_wino(geo, tiles, coef)
    t.L = min(L, t.wg.nt[2])
    t.segw = t.L + pc_wino_halo(&t.wg)
    t.chunks = (t.wg.nt[2] + t.L - 1) // t.L
    t.nseg = t.wg.g.N * t.wg.nt[0] * t.wg.nt[1] * t.chunks
    t.sb = min(sb, t.nseg)
    t.nblocks = (t.nseg + t.sb - 1) // t.sb
    t.mr, t.level = mr, level
    t.wg.level = level
    t.mpad = packed_rows(t.wg.g.cout_g, mr)
    t.x, t.w, t.y = x, w, y
    t.swap = swap
    t.b = b
    t.ldv = _layout(&t.wg, t.L, t.sb, sizeof(floating), &t.buf)
    t.u = pc_alloc(t.wg.g.G * t.wg.P * t.mpad * t.wg.g.cin_g * sizeof(floating))
    off = <Py_ssize_t *> malloc(max(1, t.wg.g.cin_g) * sizeof(Py_ssize_t))
    try:
        if t.u == NULL or off == NULL:
            raise MemoryError()
        for ci in range(t.wg.g.cin_g):
            off[ci] = ci * t.ldv
        t.off = off
        run_passes[floating](_filter_item[floating], t.wg.g.G * (t.mpad // mr),
                             _conv_item[floating], t.wg.g.G * t.nblocks, &t,
                             max(t.buf.nbytes,
                                 <Py_ssize_t> (3 * t.wg.P * PC_WINO_FCH * mr * sizeof(double))),
                             nthreads)
    finally:
        free(t.u)
        free(off)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, tuple tiles,
         const double[:, :, ::1] coef, Py_ssize_t L, Py_ssize_t sb, int level, Py_ssize_t mr,
         int nthreads, bint swap=False):
    """Stride-1, dilation-1 forward conv by Winograd's F(tiles, kernel).

    ``tiles``: outputs per tile per canonical axis (1 on an axis whose
    kernel has one tap); ``coef[axis]`` = (B^T, G, A^T) of that axis,
    flattened row-major; work items: blocks of ``sb`` segments of ``L``
    tiles.  ``b`` empty = no bias.  ``swap``: ``w`` is the weight of the
    stride-1 conv_transpose that this conv computes, (C_in, C_out/g, *k):
    the weight transform reads it with the channels of each group swapped
    and the taps reversed (no conv weight is made for the call).
    """
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, tiles, coef, L, sb, level, mr, nthreads, swap)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              tiles, coef, L, sb, level, mr, nthreads, swap)
