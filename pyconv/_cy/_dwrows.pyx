# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``dwrows`` path: stride-1 2-d depthwise 3x3 convs along the rows.

One pass: item = (image, block of ``cpb`` output channels); each output
row is computed ``VL`` outputs at a time, one masked load of the input row
and one FMA per tap (``kernels/dwrows.h``, AVX-512 only).  Each output is
one sum in a fixed order: bitwise the same for any blocking and thread
count.  No buffers: :func:`workspace` is 0.
"""

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Operands, make_geo, operands, run_items)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "kernels/dwrows.h" nogil:
    ctypedef struct pc_dwr:
        Geo g
        Py_ssize_t cpb, nblocks
    int PC_DWR_AVAILABLE
    void pc_dwr_item_f(const pc_dwr *o, Py_ssize_t it, const float *x, const float *w,
                       const float *b, float *y)
    void pc_dwr_item_d(const pc_dwr *o, Py_ssize_t it, const double *x, const double *w,
                       const double *b, double *y)


cdef struct Task:
    pc_dwr o
    const void *x
    const void *w       # the weights, (C_out, 1, KY, KX)
    const void *b       # NULL: no bias
    void *y


def available():
    """Whether the kernels were built (the compiler takes AVX-512 target attributes)."""
    return bool(PC_DWR_AVAILABLE)



cdef int _setup(pc_dwr *o, tuple geo, Py_ssize_t cpb) except -1:
    o.g = make_geo(geo)
    if (o.g.cin_g != 1 or o.g.ks[0] != 1 or o.g.osz[0] != 1 or o.g.st[1] != 1
            or o.g.st[2] != 1 or o.g.dl[1] != 1 or o.g.dl[2] != 1):
        raise ValueError("the dwrows kernels take 2-d depthwise convs, stride 1, dilation 1")
    if o.g.ks[1] != 3 or o.g.ks[2] != 3:
        raise ValueError("the dwrows kernels take 3x3 kernels")
    o.cpb = max(1, min(cpb, o.g.Cout))
    o.nblocks = (o.g.Cout + o.cpb - 1) // o.cpb
    return 0


def items(tuple geo, Py_ssize_t cpb):
    """Work items of :func:`conv` with blocks of ``cpb`` output channels."""
    cdef pc_dwr o
    _setup(&o, geo, cpb)
    return o.g.N * o.nblocks


cdef void _item(const void *task, floating *buf, Py_ssize_t slot,
                Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    if floating is float:
        pc_dwr_item_f(&t.o, it, <const float *> t.x, <const float *> t.w,
                      <const float *> t.b, <float *> t.y)
    else:
        pc_dwr_item_d(&t.o, it, <const double *> t.x, <const double *> t.w,
                      <const double *> t.b, <double *> t.y)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t cpb, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef Py_ssize_t nitems
    if not PC_DWR_AVAILABLE:
        raise RuntimeError("the dwrows kernels were not built (no AVX-512 target attributes)")
    _setup(&t.o, geo, cpb)
    t.x, t.w, t.y = x, w, y
    t.b = b
    nitems = t.o.g.N * t.o.nblocks
    run_items[floating](_item[floating], &t, nitems, nitems, 0, nthreads)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t cpb,
         int nthreads):
    """2-d depthwise 3x3 forward conv (one input channel per group, any channel
    multiplier), stride 1, dilation 1, along the output rows; item = (image,
    block of ``cpb`` output channels).  ``b`` empty = no bias.  AVX-512 only
    (:func:`available`)."""
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, cpb, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              cpb, nthreads)
