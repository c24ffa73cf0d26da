# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``winograd`` paths: stride-1 conv by Winograd minimal filtering.

Two passes of :func:`run_items`:

* the weight transform: item = (group, panel of ``mr`` output channels);
  each writes its rows of every position's transformed weight ``U[p]``,
  packed in micro-kernel panels (``kernels/winograd.h``, in double);
* the convolution: item = (n, group, block of ``tb`` output tiles).  The
  block's input tiles are transformed into ``V[p]`` (C_in/g x tiles), each
  of the ``P`` positions is one GEMM ``M[p] = U[p] @ V[p]`` on the
  implicit-GEMM micro-kernel, and ``M`` is transformed back into the
  block's outputs, plus bias.

Each output element belongs to one tile and is computed in an order fixed
by the transforms: bitwise the same for any block size and thread count.
:func:`workspace` reports the bytes the kernels allocate, from the same
layout the kernels use.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memset

from cython cimport floating

import numpy as np

from pyconv._cy._common cimport (Geo, Layout, ipanels, layout_add, layout_init, layout_part,
                                 make_geo, packed_rows, pc_alloc, pc_geo, run_items)

cdef extern from "kernels/winograd.h" nogil:
    ctypedef struct pc_wino:
        pc_geo g
        Py_ssize_t m[3]
        Py_ssize_t a[3]
        Py_ssize_t nt[3]
        Py_ssize_t P
        double bt[3][64]
        double gm[3][64]
        double at[3][64]
    Py_ssize_t pc_wino_scratch(const pc_wino *wg, Py_ssize_t nt)
    void pc_wino_filter_f(const pc_wino *wg, const float *w, Py_ssize_t grp, Py_ssize_t panel,
                          Py_ssize_t mr, Py_ssize_t mpad, float *upack, double *tmp)
    void pc_wino_filter_d(const pc_wino *wg, const double *w, Py_ssize_t grp,
                          Py_ssize_t panel, Py_ssize_t mr, Py_ssize_t mpad, double *upack,
                          double *tmp)
    void pc_wino_input_f(const pc_wino *wg, const float *xg, Py_ssize_t tz, Py_ssize_t ty,
                         Py_ssize_t a, Py_ssize_t nt, float *V, Py_ssize_t ldv, Py_ssize_t j0,
                         float *scratch)
    void pc_wino_input_d(const pc_wino *wg, const double *xg, Py_ssize_t tz, Py_ssize_t ty,
                         Py_ssize_t a, Py_ssize_t nt, double *V, Py_ssize_t ldv,
                         Py_ssize_t j0, double *scratch)
    void pc_wino_output_f(const pc_wino *wg, const float *M, Py_ssize_t ldv, Py_ssize_t j0,
                          Py_ssize_t tz, Py_ssize_t ty, Py_ssize_t a, Py_ssize_t nt,
                          float *yg, const float *bias, float *scratch)
    void pc_wino_output_d(const pc_wino *wg, const double *M, Py_ssize_t ldv, Py_ssize_t j0,
                          Py_ssize_t tz, Py_ssize_t ty, Py_ssize_t a, Py_ssize_t nt,
                          double *yg, const double *bias, double *scratch)


# ---------------------------------------------------------------------------
# fused wrappers

cdef inline void wino_filter(const pc_wino *wg, const floating *w, Py_ssize_t grp,
                             Py_ssize_t panel, Py_ssize_t mr, Py_ssize_t mpad,
                             floating *upack, double *tmp) noexcept nogil:
    if floating is float:
        pc_wino_filter_f(wg, w, grp, panel, mr, mpad, upack, tmp)
    else:
        pc_wino_filter_d(wg, w, grp, panel, mr, mpad, upack, tmp)


cdef inline void wino_input(const pc_wino *wg, const floating *xg, Py_ssize_t tz,
                            Py_ssize_t ty, Py_ssize_t a, Py_ssize_t nt, floating *V,
                            Py_ssize_t ldv, Py_ssize_t j0, floating *scratch) noexcept nogil:
    if floating is float:
        pc_wino_input_f(wg, xg, tz, ty, a, nt, V, ldv, j0, scratch)
    else:
        pc_wino_input_d(wg, xg, tz, ty, a, nt, V, ldv, j0, scratch)


cdef inline void wino_output(const pc_wino *wg, const floating *M, Py_ssize_t ldv,
                             Py_ssize_t j0, Py_ssize_t tz, Py_ssize_t ty, Py_ssize_t a,
                             Py_ssize_t nt, floating *yg, const floating *bias,
                             floating *scratch) noexcept nogil:
    if floating is float:
        pc_wino_output_f(wg, M, ldv, j0, tz, ty, a, nt, yg, bias, scratch)
    else:
        pc_wino_output_d(wg, M, ldv, j0, tz, ty, a, nt, yg, bias, scratch)


# ---------------------------------------------------------------------------
# geometry and buffers

cdef struct Task:
    pc_wino wg
    const void *x
    const void *w       # the weights (the weight transform's input)
    void *u             # the packed transformed weights
    const void *b       # NULL: no bias
    void *y
    const Py_ssize_t *off   # off[ci] = ci * ldv: V[p] as the micro-kernel's slab
    int level           # SIMD level of the micro-kernel
    Py_ssize_t mr, nr, mpad, tb, ntiles, nblocks, ldv, seg
    Layout buf


#: the matrices do not change the buffers' sizes
_NO_COEF = np.zeros((3, 3, 64))


cdef pc_wino make_wino(tuple geo, tuple tiles, const double[:, :, ::1] coef) except *:
    """The transform of a call: ``tiles`` outputs per tile per axis, ``coef[axis]`` =
    (B^T, G, A^T) flattened row-major."""
    cdef pc_wino wg
    cdef int i, j
    wg.g = make_geo(geo)
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


cdef Py_ssize_t _layout(const pc_wino *wg, Py_ssize_t tb, Py_ssize_t nr, Py_ssize_t isz,
                        Layout *L) noexcept nogil:
    """The per-thread block of the convolution items; returns ``ldv``."""
    cdef Py_ssize_t ldv = (tb + nr - 1) // nr * nr
    cdef Py_ssize_t seg = min(tb, wg.nt[2])
    layout_init(L)
    layout_add(L, wg.P * wg.g.cin_g * ldv * isz)           # 0: V, transformed input
    layout_add(L, wg.P * wg.g.cout_g * ldv * isz)          # 1: M, the products
    layout_add(L, pc_wino_scratch(wg, seg) * isz)          # 2: transform rows
    return ldv


def workspace(tuple geo, tuple tiles, Py_ssize_t tb, Py_ssize_t mr, Py_ssize_t nr, bint dbl):
    """(bytes per thread, fixed bytes: the transformed weights, the offsets) of :func:`conv`."""
    cdef pc_wino wg = make_wino(geo, tiles, _NO_COEF)
    cdef Layout L
    cdef Py_ssize_t isz = 8 if dbl else 4
    _layout(&wg, tb, nr, isz, &L)
    return (max(L.nbytes, <Py_ssize_t> (3 * wg.P * mr * sizeof(double))),
            wg.g.G * wg.P * packed_rows(wg.g.cout_g, mr) * wg.g.cin_g * isz
            + wg.g.cin_g * sizeof(Py_ssize_t))


# ---------------------------------------------------------------------------
# the two passes

cdef void _filter_item(const void *task, floating *buf, Py_ssize_t slot,
                       Py_ssize_t it) noexcept nogil:
    """The transformed weights of one (group, panel of mr output channels)."""
    cdef const Task *t = <const Task *> task
    cdef Py_ssize_t npanels = t.mpad // t.mr
    wino_filter(&t.wg, <const floating *> t.w, it // npanels, it % npanels, t.mr, t.mpad,
                <floating *> t.u, <double *> buf)


cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    """One block of tiles of one (image, group): transform, P products, transform back."""
    cdef const Task *t = <const Task *> task
    cdef const pc_wino *wg = &t.wg
    cdef const Geo *g = &t.wg.g
    cdef floating *V = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *M = <floating *> layout_part(&t.buf, buf, 1)
    cdef floating *scratch = <floating *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t blk = it % t.nblocks, grp = (it // t.nblocks) % g.G
    cdef Py_ssize_t n = it // (t.nblocks * g.G)
    cdef Py_ssize_t b0 = blk * t.tb, b1 = min(b0 + t.tb, t.ntiles)
    cdef Py_ssize_t nb = b1 - b0, ncols = (nb + t.nr - 1) // t.nr * t.nr
    cdef Py_ssize_t TX = wg.nt[2], TY = wg.nt[1]
    cdef Py_ssize_t s, e, r, p, ci
    cdef const floating *xg = <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin
    cdef floating *yg = <floating *> t.y + (n * g.Cout + grp * g.cout_g) * g.Pout
    cdef const floating *bias = (<const floating *> t.b + grp * g.cout_g
                                 if t.b != NULL else NULL)
    cdef const floating *u = <const floating *> t.u + grp * wg.P * t.mpad * g.cin_g
    s = b0
    while s < b1:                        # the segments: tiles of one row of tiles
        r = s // TX
        e = min(b1, (r + 1) * TX)
        wino_input(wg, xg, r // TY, r % TY, s - r * TX, e - s, V, t.ldv, s - b0, scratch)
        s = e
    if ncols > nb:                       # the last panel's columns past the block
        for p in range(wg.P * g.cin_g):
            memset(V + p * t.ldv + nb, 0, (ncols - nb) * sizeof(floating))
    for p in range(wg.P):
        ipanels(t.level, g.cin_g, g.cout_g, u + p * t.mpad * g.cin_g, V + p * g.cin_g * t.ldv,
                t.off, nb, M + p * g.cout_g * t.ldv, t.ldv)
    s = b0
    while s < b1:
        r = s // TX
        e = min(b1, (r + 1) * TX)
        wino_output(wg, M, t.ldv, s - b0, r // TY, r % TY, s - r * TX, e - s, yg, bias,
                    scratch)
        s = e


def conv(const floating[::1] x, const floating[::1] w, const floating[::1] b,
         floating[::1] y, tuple geo, tuple tiles, const double[:, :, ::1] coef,
         Py_ssize_t tb, int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads):
    """Stride-1, dilation-1 forward conv by Winograd's F(tiles, kernel).

    ``tiles``: outputs per tile per canonical axis (1 on an axis whose
    kernel has one tap); ``coef[axis]`` = (B^T, G, A^T) of that axis,
    flattened row-major; ``tb``: tiles per work item.  ``b`` empty = no bias.
    """
    cdef Task t
    cdef Py_ssize_t nitems, ci
    cdef Py_ssize_t *off
    t.wg = make_wino(geo, tiles, coef)
    t.ntiles = t.wg.nt[0] * t.wg.nt[1] * t.wg.nt[2]
    t.tb = min(tb, t.ntiles)
    t.nblocks = (t.ntiles + t.tb - 1) // t.tb
    t.mr, t.nr, t.level = mr, nr, level
    t.mpad = packed_rows(t.wg.g.cout_g, mr)
    t.x, t.w, t.y = &x[0], &w[0], &y[0]
    t.b = &b[0] if b.shape[0] > 0 else NULL
    t.ldv = _layout(&t.wg, t.tb, nr, sizeof(floating), &t.buf)
    t.u = pc_alloc(t.wg.g.G * t.wg.P * t.mpad * t.wg.g.cin_g * sizeof(floating))
    off = <Py_ssize_t *> malloc(max(1, t.wg.g.cin_g) * sizeof(Py_ssize_t))
    try:
        if t.u == NULL or off == NULL:
            raise MemoryError()
        for ci in range(t.wg.g.cin_g):
            off[ci] = ci * t.ldv
        t.off = off
        nitems = t.wg.g.G * (t.mpad // mr)
        run_items[floating](_filter_item[floating], &t, nitems, nitems,
                            3 * t.wg.P * mr * sizeof(double), nthreads)
        nitems = t.wg.g.N * t.wg.g.G * t.nblocks
        run_items[floating](_conv_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(t.u)
        free(off)
