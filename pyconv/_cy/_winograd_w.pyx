# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``winograd_w`` path: 2-d 3x3 stride-1 conv_weight by Winograd F(3, 4).

One pass of :func:`run_items`.  A work item is a block of ``sb``
segments (runs of at most ``L`` tiles of 4x4 outputs of one row of tiles,
in (image, y, x) order, as the forward ``winograd4`` path cuts them); for
every group it

* transforms the input windows of the block's tiles into ``X[p]``
  (C_in/g x columns, the forward path's input transform: ``B^T d B``),
* transforms the output-gradient tiles into ``Gy[p]`` (``G g G^T``,
  packed in panels of ``nrw`` output channels, ``kernels/winograd_w.h``),
* and adds ``X[p] Gy[p]^T`` to its slot's ``Mw[p]`` (C_in/g x C_out/g,
  tap-major) for each of the 36 transformed positions ``p``, on the
  weight-gradient micro-kernel (the columns are its reduction).

The items are cut into ``nslots`` fixed ranges (``run_items``), each
accumulating into its own partial ``Mw``; a second pass, one item per
(group, input channel), sums them in slot order and applies ``A^T Mw A``
in double: bitwise the same for any thread count.  :func:`workspace` reports the bytes the kernels allocate.
"""

from libc.stdlib cimport free, malloc

from cython cimport floating

import numpy as np

from pyconv._cy._common cimport (Layout, layout_add, layout_init, layout_part, make_geo, pc_geo,
                                 pc_thread_num, run_items, wpanels)
from pyconv._cy._wino cimport (input_block, pc_wino, pc_wino_halo, pc_wino_ldv, pc_wino_scratch,
                               segments)

cdef extern from "kernels/winograd_w.h" nogil:
    enum: PC_WGW_CCH
    Py_ssize_t pc_wgw_scratch(Py_ssize_t ldv)
    ctypedef struct pc_wgw_mem:
        void *base
        size_t len
    void *pc_wgw_map(size_t nbytes, pc_wgw_mem *m)
    void pc_wgw_unmap(pc_wgw_mem *m)
    void pc_wgw_gy_f(const pc_wino *wg, const double *G, const float *gy, Py_ssize_t grp,
                     const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L, Py_ssize_t w,
                     Py_ssize_t ldv, const Py_ssize_t *pos, Py_ssize_t nval, Py_ssize_t c0,
                     Py_ssize_t c1, Py_ssize_t nrw, float *Gp, float *scratch)
    void pc_wgw_gy_d(const pc_wino *wg, const double *G, const double *gy, Py_ssize_t grp,
                     const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L, Py_ssize_t w,
                     Py_ssize_t ldv, const Py_ssize_t *pos, Py_ssize_t nval, Py_ssize_t c0,
                     Py_ssize_t c1, Py_ssize_t nrw, double *Gp, double *scratch)
    void pc_wgw_finish_f(const double *At, const float *mw, Py_ssize_t nslots, Py_ssize_t G,
                         Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t grp, Py_ssize_t ci,
                         double *tmp, float *dw)
    void pc_wgw_finish_d(const double *At, const double *mw, Py_ssize_t nslots, Py_ssize_t G,
                         Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t grp, Py_ssize_t ci,
                         double *tmp, double *dw)


# ---------------------------------------------------------------------------
# fused wrappers

cdef inline void wgw_gy(const pc_wino *wg, const double *G, const floating *gy, Py_ssize_t grp,
                        const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L, Py_ssize_t w,
                        Py_ssize_t ldv, const Py_ssize_t *pos, Py_ssize_t nval, Py_ssize_t c0,
                        Py_ssize_t c1, Py_ssize_t nrw, floating *Gp,
                        floating *scratch) noexcept nogil:
    if floating is float:
        pc_wgw_gy_f(wg, G, gy, grp, seg, nseg, L, w, ldv, pos, nval, c0, c1, nrw, Gp, scratch)
    else:
        pc_wgw_gy_d(wg, G, gy, grp, seg, nseg, L, w, ldv, pos, nval, c0, c1, nrw, Gp, scratch)


cdef inline void wgw_finish(const double *At, const floating *mw, Py_ssize_t nslots,
                            Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t grp,
                            Py_ssize_t ci, double *tmp, floating *dw) noexcept nogil:
    if floating is float:
        pc_wgw_finish_f(At, mw, nslots, G, cin_g, cout_g, grp, ci, tmp, dw)
    else:
        pc_wgw_finish_d(At, mw, nslots, G, cin_g, cout_g, grp, ci, tmp, dw)


# ---------------------------------------------------------------------------
# geometry and buffers

cdef struct Task:
    pc_wino wg
    const void *x
    const void *gy
    double gmat[24]     # G of F(3, 4), 6 x 4
    double at[18]       # A^T of F(3, 4), 3 x 6
    void *mw            # the slots' partials: [slot][group][p][ci][co]
    char *blocks        # the threads' blocks (buf), one per OpenMP thread
    void *dw            # the weight gradient
    Py_ssize_t nslots
    Py_ssize_t nblk     # blocks in t.blocks: run_items' threads
    const Py_ssize_t *off   # off[ci] = ci * ldv: X[p] as the micro-kernel's slab
    int level
    Py_ssize_t nrw, npan, step
    Py_ssize_t L, segw, chunks, nseg, sb, ldv
    Layout buf


cdef pc_wino make_wino(tuple geo, const double[::1] bt) except *:
    """The forward F(4x4, 3x3) geometry of the call: tiles of 4 on y and x;
    ``bt`` (6 x 6, row-major) is the input transform of both axes."""
    cdef pc_wino wg
    cdef int i, j
    wg.g = make_geo(geo)
    wg.level = 0
    wg.P = 1
    for i in range(3):
        wg.m[i] = 1 if i == 0 else 4
        wg.a[i] = wg.m[i] + wg.g.ks[i] - 1
        wg.nt[i] = (wg.g.osz[i] + wg.m[i] - 1) // wg.m[i]
        wg.P *= wg.a[i]
        for j in range(64):
            wg.bt[i][j] = wg.gm[i][j] = wg.at[i][j] = 0.0
        if i > 0:
            for j in range(36):
                wg.bt[i][j] = bt[j]
    wg.bt[0][0] = wg.gm[0][0] = wg.at[0][0] = 1.0
    return wg


cdef Py_ssize_t _layout(const pc_wino *wg, Py_ssize_t L, Py_ssize_t sb, Py_ssize_t nrw,
                        Py_ssize_t isz, Layout *lay) noexcept nogil:
    """One thread's buffers for blocks of ``sb`` segments of ``L`` tiles; returns ldv."""
    cdef Py_ssize_t q = sb * (L + pc_wino_halo(wg))
    cdef Py_ssize_t ldv = pc_wino_ldv(q)
    cdef Py_ssize_t npan = (wg.g.cout_g + nrw - 1) // nrw
    layout_init(lay)
    layout_add(lay, wg.P * wg.g.cin_g * ldv * isz)                 # 0: X, transformed input
    layout_add(lay, wg.P * npan * nrw * sb * L * isz)              # 1: Gy, packed
    layout_add(lay, max(pc_wino_scratch(wg, ldv), pc_wgw_scratch(ldv)) * isz)   # 2: scratch
    layout_add(lay, 4 * sb * sizeof(Py_ssize_t))                   # 3: the segments
    layout_add(lay, (2 * wg.m[2] + 2) * sb * sizeof(Py_ssize_t))   # 4: their x ranges
    layout_add(lay, sb * L * sizeof(Py_ssize_t))                   # 5: the tiles' columns
    return ldv


def workspace(tuple geo, Py_ssize_t L, Py_ssize_t sb, Py_ssize_t nrw, Py_ssize_t nslots,
              bint dbl):
    """(bytes per thread, fixed bytes: the slots' partials, the offsets and
    the two mappings' rounding to 2 MiB pages) of :func:`conv_weight` with
    ``nslots`` slots and blocks of ``sb`` segments of ``L`` tiles."""
    cdef pc_wino wg = make_wino(geo, np.zeros(36))
    cdef Layout lay
    cdef Py_ssize_t isz = 8 if dbl else 4
    cdef Py_ssize_t ldv = _layout(&wg, L, sb, nrw, isz, &lay)
    cdef Py_ssize_t mw = wg.g.G * wg.P * wg.g.cin_g * wg.g.cout_g
    return (max(lay.nbytes, <Py_ssize_t> (63 * wg.g.cout_g * sizeof(double))),
            nslots * mw * isz + wg.g.cin_g * sizeof(Py_ssize_t) + (4 << 20))


cdef void _item(const void *task, floating *unused, Py_ssize_t slot,
                Py_ssize_t it) noexcept nogil:
    """One block of segments, every group, into the slot's partials (in the
    calling thread's block of ``t.blocks``: its number in run_items' team;
    with one block run_items opens no team, and a caller's own OpenMP
    thread number must not index past it)."""
    cdef const Task *t = <const Task *> task
    cdef Py_ssize_t tid = pc_thread_num() if t.nblk > 1 else 0
    cdef void *buf = t.blocks + tid * t.buf.nbytes
    cdef const pc_wino *wg = &t.wg
    cdef const pc_geo *g = &t.wg.g
    cdef floating *X = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *Gp = <floating *> layout_part(&t.buf, buf, 1)
    cdef floating *scratch = <floating *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t *seg = <Py_ssize_t *> layout_part(&t.buf, buf, 3)
    cdef Py_ssize_t *rng = <Py_ssize_t *> layout_part(&t.buf, buf, 4)
    cdef Py_ssize_t *pos = <Py_ssize_t *> layout_part(&t.buf, buf, 5)
    cdef Py_ssize_t s0 = it * t.sb, s1 = min(s0 + t.sb, t.nseg)
    cdef Py_ssize_t nseg = s1 - s0, nval = 0
    cdef Py_ssize_t mwg = wg.P * g.cin_g * g.cout_g
    cdef floating *mw = <floating *> t.mw + slot * g.G * mwg
    cdef Py_ssize_t i, j, p, c0, c1, grp
    segments(wg, s0, s1, t.chunks, t.L, seg)
    for i in range(nseg):
        for j in range(min(t.L, wg.nt[2] - seg[4 * i + 3])):   # each segment's tiles' columns
            pos[nval] = i * t.segw + j
            nval += 1
    for grp in range(g.G):
        input_block(wg, <const floating *> t.x, grp, seg, nseg, t.segw, t.ldv, 0, g.cin_g, X,
                    scratch, rng)
        c0 = 0
        while c0 < g.cout_g:
            c1 = min(c0 + t.step, g.cout_g)
            wgw_gy(wg, t.gmat, <const floating *> t.gy, grp, seg, nseg, t.L, t.segw, t.ldv, pos,
                   nval, c0, c1, t.nrw, Gp, scratch)
            c0 = c1
        for p in range(wg.P):
            wpanels(t.level, g.cin_g, g.cout_g, X + p * g.cin_g * t.ldv, t.off, pos,
                    Gp + p * t.npan * t.nrw * nval, nval,
                    mw + grp * mwg + p * g.cin_g * g.cout_g, g.cout_g, 1)


cdef void _finish_item(const void *task, floating *buf, Py_ssize_t slot,
                       Py_ssize_t it) noexcept nogil:
    """The weight gradient of one (group, input channel)."""
    cdef const Task *t = <const Task *> task
    cdef const pc_geo *g = &t.wg.g
    wgw_finish(t.at, <const floating *> t.mw, t.nslots, g.G, g.cin_g, g.cout_g, it // g.cin_g,
               it % g.cin_g, <double *> buf, <floating *> t.dw)


def conv_weight(const floating[::1] x, const floating[::1] gy, floating[::1] gw, tuple geo,
                const double[::1] bt, const double[::1] gmat, const double[::1] at,
                Py_ssize_t L, Py_ssize_t sb, Py_ssize_t nslots, int level, Py_ssize_t nrw,
                int nthreads):
    """The weight gradient ``gw`` of a 2-d 3x3 stride-1, dilation-1 conv.

    ``bt`` (6 x 6): B^T, ``gmat`` (6 x 4): G, ``at`` (3 x 6): A^T of
    F(3, 4), each flattened row-major; work items: blocks of ``sb`` segments of ``L`` tiles, cut into
    ``nslots`` fixed ranges, each summing into its own partial ``Mw``; then
    one item per (group, input channel) sums the partials in slot order
    and transforms them back (in double).
    """
    cdef Task t
    cdef Py_ssize_t nitems, i, mwsize
    cdef Py_ssize_t *off = NULL
    cdef pc_wgw_mem mwmem, blkmem
    t.wg = make_wino(geo, bt)
    t.wg.level = level
    for i in range(24):
        t.gmat[i] = gmat[i]
    for i in range(18):
        t.at[i] = at[i]
    t.L = min(L, t.wg.nt[2])
    t.segw = t.L + pc_wino_halo(&t.wg)
    t.chunks = (t.wg.nt[2] + t.L - 1) // t.L
    t.nseg = t.wg.g.N * t.wg.nt[1] * t.chunks
    t.sb = min(sb, t.nseg)
    t.nrw, t.level = nrw, level
    t.step = min(<Py_ssize_t> PC_WGW_CCH, nrw)
    t.npan = (t.wg.g.cout_g + nrw - 1) // nrw
    t.x, t.gy = &x[0], &gy[0]
    t.ldv = _layout(&t.wg, t.L, t.sb, nrw, sizeof(floating), &t.buf)
    nitems = (t.nseg + t.sb - 1) // t.sb
    mwsize = t.wg.g.G * t.wg.P * t.wg.g.cin_g * t.wg.g.cout_g
    t.nslots = max(1, min(nslots, nitems))
    t.dw = &gw[0]
    t.nblk = max(1, min(<Py_ssize_t> nthreads, t.nslots))
    # the partials and the blocks (of the threads run_items starts: at most
    # nslots), zeroed, in huge pages
    t.mw = pc_wgw_map(t.nslots * mwsize * sizeof(floating), &mwmem)
    t.blocks = <char *> pc_wgw_map(t.nblk * t.buf.nbytes, &blkmem)
    off = <Py_ssize_t *> malloc(max(1, t.wg.g.cin_g) * sizeof(Py_ssize_t))
    try:
        if t.mw == NULL or t.blocks == NULL or off == NULL:
            raise MemoryError()
        for i in range(t.wg.g.cin_g):
            off[i] = i * t.ldv
        t.off = off
        run_items[floating](_item[floating], &t, nitems, t.nslots, 0, <int> t.nblk)
        nitems = t.wg.g.G * t.wg.g.cin_g
        run_items[floating](_finish_item[floating], &t, nitems, nitems,
                         63 * t.wg.g.cout_g * sizeof(double), nthreads)
    finally:
        pc_wgw_unmap(&mwmem)
        pc_wgw_unmap(&blkmem)
        free(off)
