# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``depthwise`` path: one input channel per output channel,
VL channels to a vector.

A work item is a block of VL consecutive output channels of one image and
a tile of ``rows`` output rows along the outermost real axis.  It copies
the input box the tile reads into a channel-interleaved buffer (the VL
channels of a pixel adjacent, zero padded) and computes every output of
the block with one vector FMA per tap and pixel (``kernels/depthwise.h``).
The weights and bias are packed once per call in the same lane order.

:func:`workspace` reports the bytes the kernels allocate, from the same
layouts the kernels use; :func:`block` the lanes and pixels of one
register block at a SIMD level.
"""

from libc.stdlib cimport free

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, layout_add, layout_init, layout_part,
                                 make_geo, operands, outer_axis, pc_alloc, pc_dw_box, pc_dw_elems,
                                 pc_dw_item_d, pc_dw_item_f, pc_dw_shape, pc_dw_shape_t, pc_dwbox,
                                 run_items)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "_kernels.h" nogil:
    void pc_dw_pack_f(int level, const Geo *g, const float *w, const float *b, Py_ssize_t vl,
                      float *wp, float *bp)
    void pc_dw_pack_d(int level, const Geo *g, const double *w, const double *b,
                      Py_ssize_t vl, double *wp, double *bp)


cdef struct Task:
    Geo g
    const void *x
    const void *w       # packed weights: per block, Kp taps x VL lanes
    const void *b       # packed bias: per block, VL lanes (NULL: no bias)
    void *y
    int level
    Py_ssize_t A, rows, ntiles, nblocks, vl, r
    Layout buf


def block(bint dbl, int level):
    """``(VL, R)`` at ``level``: channels per block and output pixels per register block."""
    if not 0 <= level <= 2:
        raise ValueError(f"SIMD level must be 0, 1 or 2, got {level}")
    cdef pc_dw_shape_t s = pc_dw_shape(dbl, level)
    return s.vl, s.r


cdef void _layout(Geo *g, Py_ssize_t rows, Py_ssize_t vl, Py_ssize_t r, Py_ssize_t isz,
                  Layout *L) noexcept nogil:
    cdef Py_ssize_t nbox
    cdef Py_ssize_t n = pc_dw_elems(g, outer_axis(g), rows, r, vl, &nbox)
    layout_init(L)
    layout_add(L, nbox * isz)                   # 0: the box
    layout_add(L, (n - nbox) * isz)             # 1: the staged outputs
    layout_add(L, sizeof(pc_dwbox))             # 2: the box's geometry


cdef Py_ssize_t _packed_elems(const Geo *g, Py_ssize_t vl) noexcept nogil:
    """Elements of the packed weights and bias (every block: Kp + 1 vectors)."""
    return (g.Cout + vl - 1) // vl * (g.Kp + 1) * vl


def workspace(tuple geo, Py_ssize_t rows, Py_ssize_t vl, Py_ssize_t r, bint dbl):
    """(bytes per thread, fixed bytes: the packed weights and bias) of :func:`conv`."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef Py_ssize_t isz = 8 if dbl else 4
    _layout(&g, rows, vl, r, isz, &L)
    return L.nbytes, _packed_elems(&g, vl) * isz


cdef inline void _pack(int level, const Geo *g, const floating *w, const floating *b,
                       Py_ssize_t vl, floating *wp, floating *bp) noexcept nogil:
    """wp[block][tap][lane] = w[block*VL + lane, 0, tap]; bp[block][lane] = b (0 past
    C_out; ``kernels/depthwise.h``)."""
    if floating is float:
        pc_dw_pack_f(level, g, w, b, vl, wp, bp)
    else:
        pc_dw_pack_d(level, g, w, b, vl, wp, bp)


cdef void _item(const void *task, floating *buf, Py_ssize_t slot, Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef floating *box = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *out = <floating *> layout_part(&t.buf, buf, 1)
    cdef pc_dwbox *bx = <pc_dwbox *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t tt = it % t.ntiles, blk = (it // t.ntiles) % t.nblocks
    cdef Py_ssize_t n = it // (t.ntiles * t.nblocks)
    cdef Py_ssize_t c0 = blk * t.vl
    cdef Py_ssize_t nl = min(t.vl, g.Cout - c0)
    cdef const floating *xn = <const floating *> t.x + n * g.Cin * g.Pin
    cdef const floating *wp = <const floating *> t.w + blk * g.Kp * t.vl
    cdef const floating *bp = NULL
    cdef floating *yn = <floating *> t.y + n * g.Cout * g.Pout
    if t.b != NULL:
        bp = <const floating *> t.b + blk * t.vl
    pc_dw_box(g, t.A, tt * t.rows, min((tt + 1) * t.rows, g.osz[t.A]), t.r, bx)
    if floating is float:
        pc_dw_item_f(t.level, g, bx, xn, wp, bp, box, out, yn, c0, nl)
    else:
        pc_dw_item_d(t.level, g, bx, xn, wp, bp, box, out, yn, c0, nl)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t rows, int level, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef pc_dw_shape_t shape = pc_dw_shape(floating is double, level)
    cdef floating *packed
    cdef Py_ssize_t nitems
    t.g = make_geo(geo)
    if t.g.cin_g != 1:
        raise ValueError("the depthwise kernels need one input channel per group")
    t.A = outer_axis(&t.g)
    t.level, t.vl, t.r = level, shape.vl, shape.r
    t.rows, t.ntiles = rows, (t.g.osz[t.A] + rows - 1) // rows
    t.nblocks = (t.g.Cout + t.vl - 1) // t.vl
    t.x, t.y = x, y
    _layout(&t.g, rows, t.vl, t.r, sizeof(floating), &t.buf)
    packed = <floating *> pc_alloc(_packed_elems(&t.g, t.vl) * sizeof(floating))
    if packed == NULL:
        raise MemoryError()
    try:
        with nogil:
            _pack(level, &t.g, w, b, t.vl, packed,
                  packed + t.nblocks * t.g.Kp * t.vl if b != NULL else NULL)
        t.w = packed
        t.b = packed + t.nblocks * t.g.Kp * t.vl if b != NULL else NULL
        nitems = t.g.N * t.nblocks * t.ntiles
        run_items[floating](_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(packed)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t rows,
         int level, int nthreads):
    """Depthwise forward conv (``C_in/groups == 1``); item = (n, block, tile of ``rows``).

    ``b`` empty = no bias.
    """
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, rows, level, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              rows, level, nthreads)
