# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``dilated`` path: stride-1 1-d/2-d convs that skip the
kernel taps reading only padding.

A work item is a tile of whole output rows of one image and group.  Its
reduction runs over the taps first (k = (ky, kx, c)) and only over the
kernel rows and columns that reach the input for some output of the tile;
the visited taps are copied, a chunk of at most ``kc`` im2col rows at a
time, and multiplied by the micro-kernel into the tile's output block
(``kernels/dilated.h``).  The weights are packed once per call in that
tap-major order.

:func:`tiles` cuts the output rows where a kernel row starts or stops
reaching the input (so that a tile visits no kernel row for nothing);
:func:`workspace` reports the bytes the kernels allocate, from the same
layout the kernels use.
"""

from libc.stdlib cimport free

from cython cimport floating

from pyconv._cy._common cimport (Geo, Layout, layout_add, layout_init, layout_part, make_geo,
                                 packed_rows, pc_alloc, pc_geo, pc_shape, pc_uk_shape,
                                 run_items)


cdef extern from "kernels/dilated.h" nogil:
    void pc_dil_item_f(int level, const pc_geo *g, const float *xg, const float *wp,
                       const float *bias, float *yg, Py_ssize_t t0, Py_ssize_t t1,
                       Py_ssize_t kcmax, float *col, float *ybuf)
    void pc_dil_item_d(int level, const pc_geo *g, const double *xg, const double *wp,
                       const double *bias, double *yg, Py_ssize_t t0, Py_ssize_t t1,
                       Py_ssize_t kcmax, double *col, double *ybuf)
    void pc_dil_pack_f(const pc_geo *g, const float *w, Py_ssize_t mr, float *wp)
    void pc_dil_pack_d(const pc_geo *g, const double *w, Py_ssize_t mr, double *wp)


cdef struct Task:
    Geo g
    const void *x
    const void *w       # packed weights, tap-major (per group: mpad x ktot)
    const void *b       # NULL: no bias
    void *y
    int level
    Py_ssize_t mr, kc, ntiles, mpad, ktot
    const Py_ssize_t *bounds   # tile t: output rows [bounds[t], bounds[t + 1])
    Layout buf


def tiles(tuple geo, Py_ssize_t rows):
    """Row bounds of the tiles: at most ``rows`` rows each, cut where a kernel row
    starts or stops reaching the input (every breakpoint is a bound)."""
    cdef Geo g = make_geo(geo)
    cdef Py_ssize_t oy = g.osz[1], ky, p
    cuts = {0, oy}
    for ky in range(g.ks[1]):
        # output rows whose input row oy + ky*d - lo lies in [0, in)
        for p in (g.lo[1] - ky * g.dl[1], g.isz[1] + g.lo[1] - ky * g.dl[1]):
            if 0 < p < oy:
                cuts.add(p)
    cuts = sorted(cuts)
    bounds = [0]
    for a, b in zip(cuts[:len(cuts) - 1], cuts[1:]):
        n = -(-(b - a) // rows)
        bounds.extend(a + (b - a) * i // n for i in range(1, n + 1))
    return tuple(bounds)


cdef void _layout(const Geo *g, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t nr,
                  Py_ssize_t isz, Layout *L) noexcept nogil:
    cdef Py_ssize_t ldc = (rows * g.osz[2] + nr - 1) // nr * nr
    layout_init(L)
    layout_add(L, kc * ldc * isz)                   # 0: im2col chunk
    layout_add(L, g.cout_g * ldc * isz)             # 1: output block


def workspace(tuple geo, Py_ssize_t rows, Py_ssize_t kc, int level, bint dbl):
    """(bytes per thread for tiles of at most ``rows`` rows, fixed bytes: the
    packed weights) of :func:`conv` (``kc``: taps per chunk, at most)."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef pc_uk_shape s = pc_shape(dbl, level)
    cdef Py_ssize_t isz = 8 if dbl else 4
    kc = min(kc, g.Kp * g.cin_g)
    _layout(&g, rows, kc, s.nrv * s.vl, isz, &L)
    return L.nbytes, g.G * packed_rows(g.cout_g, s.mr) * g.Kp * g.cin_g * isz


cdef void _item(const void *task, floating *buf, Py_ssize_t slot, Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t tt = it % t.ntiles, grp = (it // t.ntiles) % g.G
    cdef Py_ssize_t n = it // (t.ntiles * g.G)
    cdef const floating *xg = <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin
    cdef const floating *wp = <const floating *> t.w + grp * t.mpad * t.ktot
    cdef const floating *bg = NULL
    cdef floating *yg = <floating *> t.y + (n * g.Cout + grp * g.cout_g) * g.Pout
    if t.b != NULL:
        bg = <const floating *> t.b + grp * g.cout_g
    if floating is float:
        pc_dil_item_f(t.level, g, xg, wp, bg, yg, t.bounds[tt], t.bounds[tt + 1], t.kc,
                      <float *> layout_part(&t.buf, buf, 0),
                      <float *> layout_part(&t.buf, buf, 1))
    else:
        pc_dil_item_d(t.level, g, xg, wp, bg, yg, t.bounds[tt], t.bounds[tt + 1], t.kc,
                      <double *> layout_part(&t.buf, buf, 0),
                      <double *> layout_part(&t.buf, buf, 1))


def conv(const floating[::1] x, const floating[::1] w, const floating[::1] b,
         floating[::1] y, tuple geo, Py_ssize_t rows, Py_ssize_t kc, int level,
         int nthreads):
    """Stride-1 forward conv of 1 or 2 spatial dims; item = (n, group, tile of
    :func:`tiles`).  ``b`` empty = no bias."""
    cdef Task t
    cdef pc_uk_shape s = pc_shape(floating is double, level)
    cdef Py_ssize_t nitems, i
    cdef Py_ssize_t *bounds
    cdef floating *packed
    t.g = make_geo(geo)
    if t.g.osz[0] != 1 or t.g.isz[0] != 1 or t.g.ks[0] != 1:
        raise ValueError("the dilated kernels take 1-d and 2-d convs")
    bt = tiles(geo, rows)
    t.level, t.mr = level, s.mr
    t.ktot = t.g.Kp * t.g.cin_g
    t.kc = min(kc, t.ktot)
    t.mpad = packed_rows(t.g.cout_g, s.mr)
    t.ntiles = len(bt) - 1
    t.x, t.y = &x[0], &y[0]
    t.b = &b[0] if b.shape[0] > 0 else NULL
    _layout(&t.g, max(bt[i + 1] - bt[i] for i in range(t.ntiles)), t.kc, s.nrv * s.vl,
            sizeof(floating), &t.buf)
    bounds = <Py_ssize_t *> pc_alloc(len(bt) * sizeof(Py_ssize_t))
    packed = <floating *> pc_alloc(t.g.G * t.mpad * t.ktot * sizeof(floating))
    try:
        if bounds == NULL or packed == NULL:
            raise MemoryError()
        for i in range(len(bt)):
            bounds[i] = bt[i]
        t.bounds = bounds
        with nogil:
            if floating is float:
                pc_dil_pack_f(&t.g, &w[0], s.mr, packed)
            else:
                pc_dil_pack_d(&t.g, &w[0], s.mr, packed)
        t.w = packed
        nitems = t.g.N * t.g.G * t.ntiles
        run_items[floating](_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(bounds)
        free(packed)
