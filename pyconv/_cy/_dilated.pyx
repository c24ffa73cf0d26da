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

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, layout_add, layout_init, layout_part,
                                 make_geo, operands, packed_rows, pc_alloc, pc_geo, pc_shape,
                                 pc_uk_shape, run_items)


cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "kernels/dilated.h" nogil:
    void pc_dil_item_f(int level, const pc_geo *g, const float *xg, const float *wp,
                       const float *bias, float *yg, Py_ssize_t t0, Py_ssize_t t1,
                       Py_ssize_t x0, Py_ssize_t x1, Py_ssize_t kcmax, float *col,
                       float *ybuf)
    void pc_dil_item_d(int level, const pc_geo *g, const double *xg, const double *wp,
                       const double *bias, double *yg, Py_ssize_t t0, Py_ssize_t t1,
                       Py_ssize_t x0, Py_ssize_t x1, Py_ssize_t kcmax, double *col,
                       double *ybuf)
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
    const Py_ssize_t *rects    # tile t: rows rects[4t] .. rects[4t+1], columns rects[4t+2] ..
    Layout buf


cdef list _cuts(Py_ssize_t out, Py_ssize_t k, Py_ssize_t d, Py_ssize_t lo, Py_ssize_t size):
    """The outputs (0 < p < ``out``) along one axis where a kernel tap starts or
    stops reaching the input, with 0 and ``out``, sorted."""
    cuts = {0, out}
    for t in range(k):
        # outputs whose input o + t*d - lo lies in [0, size)
        for p in (lo - t * d, size + lo - t * d):
            if 0 < p < out:
                cuts.add(p)
    return sorted(cuts)


cdef Py_ssize_t _live(Py_ssize_t a, Py_ssize_t b, Py_ssize_t k, Py_ssize_t d, Py_ssize_t lo,
                      Py_ssize_t size):
    """How many taps of a kernel axis reach the input for some output in [a, b)."""
    # the taps t with (b - 1) + t*d - lo >= 0 and a + t*d - lo < size (C division:
    # only non-negative numerators)
    cdef Py_ssize_t need = lo - (b - 1), room = size - 1 + lo - a
    cdef Py_ssize_t first = (need + d - 1) // d if need > 0 else 0
    cdef Py_ssize_t last = min(k - 1, room // d) if room >= 0 else -1
    return max(0, last - first + 1)


cdef Py_ssize_t _cost(const Geo *g, Py_ssize_t rows, Py_ssize_t x0, Py_ssize_t x1,
                      Py_ssize_t nr):
    """Multiply-adds (per channel pair) of a piece: positions padded to ``nr``
    times the taps along x it visits."""
    return ((rows * (x1 - x0) + nr - 1) // nr * nr
            * _live(x0, x1, g.ks[2], g.dl[2], g.lo[2], g.isz[2]))


def tiles(tuple geo, Py_ssize_t rows, Py_ssize_t nr):
    """The rectangles of output positions the items compute, one image's worth:
    a flat tuple ``(r0, r1, x0, x1, ...)``.

    Row tiles have at most ``rows`` rows and are cut where a kernel row starts
    or stops reaching the input (every breakpoint is a bound).  Each tile is cut
    along x where a kernel column does, so that its pieces skip the columns of
    taps reading only padding -- unless the smaller piece would cost more than
    its saving: two neighbours are merged when the merged piece, counted as
    positions padded to ``nr`` (the micro-kernel's panel) times its live taps
    along x, costs no more than the two apart.
    """
    cdef Geo g = make_geo(geo)
    cdef Py_ssize_t ox = g.osz[2]
    cuts = _cuts(g.osz[1], g.ks[1], g.dl[1], g.lo[1], g.isz[1])
    bounds = [0]
    for a, b in zip(cuts[:len(cuts) - 1], cuts[1:]):
        n = -(-(b - a) // rows)
        bounds.extend(a + (b - a) * i // n for i in range(1, n + 1))
    xcuts = _cuts(ox, g.ks[2], g.dl[2], g.lo[2], g.isz[2])
    rects = []
    for r0, r1 in zip(bounds[:len(bounds) - 1], bounds[1:]):
        xb = [0]
        for c in xcuts[1:]:
            e = len(xb) - 1         # the last piece so far: [xb[e - 1], xb[e])
            if e > 0 and (_cost(&g, r1 - r0, xb[e - 1], c, nr)
                          <= _cost(&g, r1 - r0, xb[e - 1], xb[e], nr)
                          + _cost(&g, r1 - r0, xb[e], c, nr)):
                xb[e] = c
            else:
                xb.append(c)
        for x0, x1 in zip(xb[:len(xb) - 1], xb[1:]):
            rects.extend((r0, r1, x0, x1))
    return tuple(rects)


def pieces(tuple geo):
    """How many pieces along x a row tile has at most (the kernel columns' cuts)."""
    cdef Geo g = make_geo(geo)
    return len(_cuts(g.osz[2], g.ks[2], g.dl[2], g.lo[2], g.isz[2])) - 1


cdef void _layout(const Geo *g, Py_ssize_t ncols, Py_ssize_t kc, Py_ssize_t nr,
                  Py_ssize_t isz, Layout *L) noexcept nogil:
    """The per-thread block for tiles of at most ``ncols`` positions."""
    cdef Py_ssize_t ldc = (ncols + nr - 1) // nr * nr
    layout_init(L)
    layout_add(L, kc * ldc * isz)                   # 0: im2col chunk
    layout_add(L, g.cout_g * ldc * isz)             # 1: output block


def workspace(tuple geo, Py_ssize_t ncols, Py_ssize_t kc, int level, bint dbl):
    """(bytes per thread for tiles of at most ``ncols`` positions, fixed bytes: the
    packed weights) of :func:`conv` (``kc``: taps per chunk, at most)."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef pc_uk_shape s = pc_shape(dbl, level)
    cdef Py_ssize_t isz = 8 if dbl else 4
    kc = min(kc, g.Kp * g.cin_g)
    _layout(&g, ncols, kc, s.nrv * s.vl, isz, &L)
    return L.nbytes, g.G * packed_rows(g.cout_g, s.mr) * g.Kp * g.cin_g * isz


def positions(tuple rects):
    """The most positions of one of the rectangles of :func:`tiles`."""
    return max((rects[i + 1] - rects[i]) * (rects[i + 3] - rects[i + 2])
               for i in range(0, len(rects), 4))


cdef void _item(const void *task, floating *buf, Py_ssize_t slot, Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t tt = it % t.ntiles, grp = (it // t.ntiles) % g.G
    cdef const Py_ssize_t *rc = t.rects + 4 * tt
    cdef Py_ssize_t n = it // (t.ntiles * g.G)
    cdef const floating *xg = <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin
    cdef const floating *wp = <const floating *> t.w + grp * t.mpad * t.ktot
    cdef const floating *bg = NULL
    cdef floating *yg = <floating *> t.y + (n * g.Cout + grp * g.cout_g) * g.Pout
    if t.b != NULL:
        bg = <const floating *> t.b + grp * g.cout_g
    if floating is float:
        pc_dil_item_f(t.level, g, xg, wp, bg, yg, rc[0], rc[1], rc[2], rc[3], t.kc,
                      <float *> layout_part(&t.buf, buf, 0),
                      <float *> layout_part(&t.buf, buf, 1))
    else:
        pc_dil_item_d(t.level, g, xg, wp, bg, yg, rc[0], rc[1], rc[2], rc[3], t.kc,
                      <double *> layout_part(&t.buf, buf, 0),
                      <double *> layout_part(&t.buf, buf, 1))


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t rows, Py_ssize_t kc, int level, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef pc_uk_shape s = pc_shape(floating is double, level)
    cdef Py_ssize_t nitems, i
    cdef Py_ssize_t *rects
    cdef floating *packed
    t.g = make_geo(geo)
    if t.g.osz[0] != 1 or t.g.isz[0] != 1 or t.g.ks[0] != 1:
        raise ValueError("the dilated kernels take 1-d and 2-d convs")
    bt = tiles(geo, rows, s.nrv * s.vl)
    t.level, t.mr = level, s.mr
    t.ktot = t.g.Kp * t.g.cin_g
    t.kc = min(kc, t.ktot)
    t.mpad = packed_rows(t.g.cout_g, s.mr)
    t.ntiles = len(bt) // 4
    t.x, t.y = x, y
    t.b = b
    _layout(&t.g, positions(bt), t.kc, s.nrv * s.vl, sizeof(floating), &t.buf)
    rects = <Py_ssize_t *> pc_alloc(len(bt) * sizeof(Py_ssize_t))
    packed = <floating *> pc_alloc(t.g.G * t.mpad * t.ktot * sizeof(floating))
    try:
        if rects == NULL or packed == NULL:
            raise MemoryError()
        for i in range(len(bt)):
            rects[i] = bt[i]
        t.rects = rects
        with nogil:
            if floating is float:
                pc_dil_pack_f(&t.g, w, s.mr, packed)
            else:
                pc_dil_pack_d(&t.g, w, s.mr, packed)
        t.w = packed
        nitems = t.g.N * t.g.G * t.ntiles
        run_items[floating](_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(rects)
        free(packed)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t rows,
         Py_ssize_t kc, int level, int nthreads):
    """Stride-1 forward conv of 1 or 2 spatial dims; item = (n, group, tile of
    :func:`tiles`).  ``b`` empty = no bias."""
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, rows, kc, level, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              rows, kc, level, nthreads)
