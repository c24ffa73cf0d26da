# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernel of the ``strided1d`` path: 1-d conv by implicit GEMM on a de-interleaved slab.

Tap k reads ``x[s*o + t_k]`` with ``t_k = k*d - lo = s*a_k + r_k``
(``0 <= r_k < s``).  Item = (n, group, tile of ``tile`` outputs from o0):
the slab holds, per input channel c and residue r, the row
``S[c, r, u] = x[c, s*(o0 + u + a_min) + r]`` (zero outside the input), so
that tap (c, k) is the constant offset ``(c*s + r_k)*L + a_k - a_min`` and
the micro-kernel reads the slab directly (one copy of the input per tile,
no im2col).  Whole panels go straight into ``y``, the last partial one
through a buffer; then the bias is added.
"""

from libc.stdlib cimport free, malloc

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, deint_row, ipanels, layout_add,
                                 layout_init, layout_part, make_geo, operands, pack_weights,
                                 packed_rows, pc_ceildiv, pc_floordiv, run_items, store_rows)


cnp.import_array()   # NumPy's C API, for operands()


cdef struct Task:
    Geo g
    const void *x
    const void *w       # the packed weights
    const void *b       # NULL: no bias
    void *y
    const Py_ssize_t *off   # slab offset of each tap (c, k)
    int level           # SIMD level of the micro-kernel
    Py_ssize_t tile, ntiles, kc, mpad, nr, amin, L
    Layout buf


cdef void _layout(const Geo *g, Py_ssize_t tile, Py_ssize_t nr, Py_ssize_t isz,
                  Py_ssize_t *amin, Py_ssize_t *L, Layout *B) noexcept nogil:
    """The per-thread block; ``amin`` and the slab row length ``L`` of a tile."""
    cdef Py_ssize_t s = g.st[2], lo = g.lo[2]
    amin[0] = pc_floordiv(-lo, s)
    L[0] = tile + pc_floordiv((g.ks[2] - 1) * g.dl[2] - lo, s) - amin[0]
    layout_init(B)
    layout_add(B, (g.cin_g * s * L[0] + nr) * isz)                 # 0: slab
    layout_add(B, g.cout_g * packed_rows(tile, nr) * isz)         # 1: last partial panel


def workspace(tuple geo, Py_ssize_t tile, Py_ssize_t mr, Py_ssize_t nr, bint dbl):
    """(bytes per thread, fixed bytes: packed weights, tap offsets) of :func:`conv`."""
    cdef Geo g = make_geo(geo)
    cdef Layout B
    cdef Py_ssize_t amin, L, isz = 8 if dbl else 4
    _layout(&g, tile, nr, isz, &amin, &L, &B)
    return B.nbytes, (g.G * packed_rows(g.cout_g, mr) * g.cin_g * g.Kp * isz
                      + g.cin_g * g.Kp * sizeof(Py_ssize_t))


cdef void _item(const void *task, floating *buf, Py_ssize_t slot, Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef floating *slab = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *ybuf = <floating *> layout_part(&t.buf, buf, 1)
    cdef Py_ssize_t s = g.st[2], Lo = g.osz[2], Li = g.isz[2], L = t.L
    cdef Py_ssize_t tt = it % t.ntiles, grp = (it // t.ntiles) % g.G
    cdef Py_ssize_t n = it // (t.ntiles * g.G)
    cdef Py_ssize_t o0 = tt * t.tile
    cdef Py_ssize_t tl = min(t.tile, Lo - o0)
    cdef Py_ssize_t ld = packed_rows(t.tile, t.nr)
    cdef Py_ssize_t nfull = tl // t.nr * t.nr
    cdef const floating *wg = <const floating *> t.w + grp * t.mpad * t.kc
    cdef const floating *bp = <const floating *> t.b
    cdef floating *yr = <floating *> t.y + (n * g.Cout + grp * g.cout_g) * Lo + o0
    cdef const floating *xr
    cdef Py_ssize_t c, r, u, i0, i1
    # slab rows: u valid where 0 <= s*(o0 + u + amin) + r < Li
    for c in range(g.cin_g):
        xr = <const floating *> t.x + (n * g.Cin + grp * g.cin_g + c) * Li
        for r in range(s):
            i0 = max(0, pc_ceildiv(-r, s) - o0 - t.amin)
            i1 = max(i0, min(L, pc_floordiv(Li - 1 - r, s) + 1 - o0 - t.amin))
            deint_row(xr + s * (o0 + t.amin) + r, s, i0, i1, L, slab + (c * s + r) * L)
    for u in range(t.nr):
        slab[g.cin_g * s * L + u] = 0
    # whole panels straight into y (they end inside the tile), the last
    # partial panel through ybuf
    if nfull > 0:
        ipanels(t.level, t.kc, g.cout_g, wg, slab, t.off, nfull, yr, Lo)
    if tl > nfull:
        ipanels(t.level, t.kc, g.cout_g, wg, slab + nfull, t.off, tl - nfull, ybuf, ld)
        store_rows(ybuf, ld, yr + nfull, Lo, g.cout_g, tl - nfull, <const floating *> NULL)
    if bp != NULL:
        store_rows(yr, Lo, yr, Lo, g.cout_g, tl, bp + grp * g.cout_g)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t tile, int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef floating *wpack
    cdef Py_ssize_t *off
    cdef Py_ssize_t c, k, t_k, nitems
    t.g = make_geo(geo)
    t.tile, t.ntiles = tile, (t.g.osz[2] + tile - 1) // tile
    t.kc, t.mpad, t.nr, t.level = t.g.cin_g * t.g.ks[2], packed_rows(t.g.cout_g, mr), nr, level
    t.x, t.y = x, y
    t.b = b
    _layout(&t.g, tile, nr, sizeof(floating), &t.amin, &t.L, &t.buf)
    off = <Py_ssize_t *> malloc(t.kc * sizeof(Py_ssize_t))
    with nogil:
        wpack = pack_weights(w, &t.g, t.kc, mr)
    try:
        if off == NULL or wpack == NULL:
            raise MemoryError()
        for c in range(t.g.cin_g):
            for k in range(t.g.ks[2]):
                t_k = k * t.g.dl[2] - t.g.lo[2]
                off[c * t.g.ks[2] + k] = ((c * t.g.st[2] + t_k - pc_floordiv(t_k, t.g.st[2])
                                           * t.g.st[2]) * t.L
                                          + pc_floordiv(t_k, t.g.st[2]) - t.amin)
        t.off, t.w = off, wpack
        nitems = t.g.N * t.g.G * t.ntiles
        run_items[floating](_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(off)
        free(wpack)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t tile,
         int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads):
    """1-d conv with a stride; item = (n, group, tile of ``tile`` outputs).

    ``b`` empty = no bias.
    """
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, tile, level, mr, nr, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              tile, level, mr, nr, nthreads)
