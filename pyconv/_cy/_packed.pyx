# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernel of the ``packed`` path: strided conv by packed im2col + micro-kernel.

Item = (n, group, tile of output positions), as in the ``gemm`` path, but
the tile is im2col'ed straight into the micro-kernel's panels of NR
positions (``kernels/packed.h``) and multiplied by the weights packed once
per call into panels of MR output channels (``kernels/microkernels.h``):
one copy of the input per tile, where BLAS would make two.
"""

from libc.stdlib cimport free, malloc

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, im2col_packed, layout_add, layout_init,
                                 layout_part, make_geo, operands, pack_weights, packed_rows,
                                 panels, run_items, x_ranges)


cnp.import_array()   # NumPy's C API, for operands()


cdef struct Task:
    Geo g
    const void *x
    const void *w       # the packed weights
    const void *b       # NULL: no bias
    void *y
    const Py_ssize_t *xa
    const Py_ssize_t *xb
    int level           # SIMD level of the micro-kernel
    Py_ssize_t tile, ntiles, kc, mpad, nr
    Layout buf


cdef void _layout(const Geo *g, Py_ssize_t tile, Py_ssize_t nr, Py_ssize_t isz,
                  Layout *L) noexcept nogil:
    layout_init(L)
    layout_add(L, g.cin_g * g.Kp * packed_rows(tile, nr) * isz)    # the packed tile


def workspace(tuple geo, Py_ssize_t tile, Py_ssize_t mr, Py_ssize_t nr, bint dbl):
    """(bytes per thread, fixed bytes: packed weights, tap ranges) of :func:`conv`."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef Py_ssize_t isz = 8 if dbl else 4
    _layout(&g, tile, nr, isz, &L)
    return L.nbytes, (g.G * packed_rows(g.cout_g, mr) * g.cin_g * g.Kp * isz
                      + 2 * g.ks[2] * sizeof(Py_ssize_t))


cdef void _item(const void *task, floating *buf, Py_ssize_t slot, Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef floating *pack = <floating *> layout_part(&t.buf, buf, 0)
    cdef Py_ssize_t tt = it % t.ntiles, grp = (it // t.ntiles) % g.G
    cdef Py_ssize_t n = it // (t.ntiles * g.G)
    cdef Py_ssize_t p0 = tt * t.tile
    cdef Py_ssize_t tl = min(t.tile, g.Pout - p0)
    im2col_packed(g, <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin, pack,
                  t.nr, p0, tl, t.xa, t.xb)
    panels(t.level, t.kc, g.cout_g, <const floating *> t.w + grp * t.mpad * t.kc, pack, tl,
           <floating *> t.y + (n * g.Cout + grp * g.cout_g) * g.Pout + p0, g.Pout,
           <const floating *> t.b + grp * g.cout_g if t.b != NULL else NULL)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t tile, int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef floating *wpack
    cdef Py_ssize_t *xa
    cdef Py_ssize_t nitems
    t.g = make_geo(geo)
    t.tile, t.ntiles = tile, (t.g.Pout + tile - 1) // tile
    t.kc, t.mpad, t.nr, t.level = t.g.cin_g * t.g.Kp, packed_rows(t.g.cout_g, mr), nr, level
    t.x, t.y = x, y
    t.b = b
    _layout(&t.g, tile, nr, sizeof(floating), &t.buf)
    xa = <Py_ssize_t *> malloc(2 * t.g.ks[2] * sizeof(Py_ssize_t))
    with nogil:
        wpack = pack_weights(w, &t.g, t.kc, mr)
    try:
        if xa == NULL or wpack == NULL:
            raise MemoryError()
        x_ranges(&t.g, False, 0, 0, xa, xa + t.g.ks[2])
        t.xa, t.xb, t.w = xa, xa + t.g.ks[2], wpack
        nitems = t.g.N * t.g.G * t.ntiles
        run_items[floating](_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(xa)
        free(wpack)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t tile,
         int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads):
    """Forward conv; item = (n, group, tile of ``tile`` positions).  ``b`` empty = no bias."""
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, tile, level, mr, nr, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              tile, level, mr, nr, nthreads)
