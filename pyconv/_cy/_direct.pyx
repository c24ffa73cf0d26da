# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``direct`` path: loops over output rows, no GEMM.

For depthwise convolutions and small groups, where a GEMM would be too thin
to pay for its packing.  Work items:

* ``conv``: one output channel of one image ``(n, co)``:
  ``y[n, co] = b[co] + sum_{c, k} w[co, c, k] * x[n, g*cin_g + c, o*s - lo + k*d]``,
  one vectorised ``axpy`` per (input row, tap);
* ``conv_transpose``: one output channel of one image, scattering every
  input row of its group through ``w[ci, j, k]``;
* ``conv_weight``: one ``(co, c)`` weight pair, a fixed-order dot product
  per tap over every image and output row.

Each output element is summed in an order fixed by the geometry alone.
The only extra memory is the table of tap ranges (:func:`workspace`).
"""

from libc.stdlib cimport free, malloc

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Operands, axpy, axpy_scatter, dot, fill, make_geo, operands,
                                 run_items, x_ranges)


cnp.import_array()   # NumPy's C API, for operands()


cdef struct Task:
    Geo g
    const void *x       # conv_weight: the input
    const void *w       # conv_weight: grad_output
    const void *b       # NULL: no bias
    void *y             # conv_weight: grad_weight
    const Py_ssize_t *xa
    const Py_ssize_t *xb


def workspace(tuple geo):
    """(bytes per thread, fixed bytes) the kernels of this path allocate."""
    cdef Geo g = make_geo(geo)
    return 0, 2 * g.ks[2] * sizeof(Py_ssize_t)


cdef int _run(void (*item)(const void *, floating *, Py_ssize_t, Py_ssize_t) noexcept nogil,
              Task *t, tuple geo, bint transposed, Py_ssize_t nitems, int nthreads) except -1:
    """Fill the tap ranges of ``t`` and run its items (one per work item)."""
    t.g = make_geo(geo)
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * t.g.ks[2] * sizeof(Py_ssize_t))
    if xa == NULL:
        raise MemoryError()
    try:
        x_ranges(&t.g, transposed, 0, t.g.osz[2], xa, xa + t.g.ks[2])
        t.xa, t.xb = xa, xa + t.g.ks[2]
        run_items(item, t, nitems, nitems, 0, nthreads)
    finally:
        free(xa)
    return 0


# ---------------------------------------------------------------------------
# conv

cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    """y[n, co, :] = bias + sum_{c, k} w[co, c, k] * x[n, ., o*s - lo + k*d]."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t n = it // g.Cout, co = it % g.Cout
    cdef Py_ssize_t grp = co // g.cout_g
    cdef const floating *xp = <const floating *> t.x
    cdef const floating *wp = <const floating *> t.w
    cdef const floating *bp = <const floating *> t.b
    cdef floating *yb = <floating *> t.y + (n * g.Cout + co) * g.Pout
    cdef Py_ssize_t oz, oy, c, kz, ky, kx, iz, iy, a, bb
    cdef const floating *xb_
    cdef const floating *wb
    cdef const floating *xrow
    cdef floating *yrow
    fill(g.Pout, bp[co] if bp != NULL else <floating> 0, yb)
    for oz in range(g.osz[0]):
        for oy in range(g.osz[1]):
            yrow = yb + (oz * g.osz[1] + oy) * g.osz[2]
            for c in range(g.cin_g):
                xb_ = xp + (n * g.Cin + grp * g.cin_g + c) * g.Pin
                wb = wp + (co * g.cin_g + c) * g.Kp
                for kz in range(g.ks[0]):
                    iz = oz * g.st[0] - g.lo[0] + kz * g.dl[0]
                    if iz < 0 or iz >= g.isz[0]:
                        continue
                    for ky in range(g.ks[1]):
                        iy = oy * g.st[1] - g.lo[1] + ky * g.dl[1]
                        if iy < 0 or iy >= g.isz[1]:
                            continue
                        xrow = xb_ + (iz * g.isz[1] + iy) * g.isz[2]
                        for kx in range(g.ks[2]):
                            a = t.xa[kx]
                            bb = t.xb[kx]
                            if bb > a:
                                axpy(bb - a, wb[(kz * g.ks[1] + ky) * g.ks[2] + kx],
                                     xrow + a * g.st[2] - g.lo[2] + kx * g.dl[2], g.st[2],
                                     yrow + a)


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, int nthreads):
    """Forward conv; item = one ``(n, co)`` output channel.  ``b`` empty = no bias."""
    cdef Task t
    cdef Operands o
    operands(&o, x, w, b, y)
    t.x, t.w, t.b, t.y = o.x, o.w, o.b, o.y
    if o.dbl:
        _run[double](_conv_item[double], &t, geo, False, geo[0] * geo[2], nthreads)
    else:
        _run[float](_conv_item[float], &t, geo, False, geo[0] * geo[2], nthreads)


# ---------------------------------------------------------------------------
# conv_transpose

cdef void _transpose_item(const void *task, floating *buf, Py_ssize_t slot,
                          Py_ssize_t it) noexcept nogil:
    """y[n, co, :] = bias + scatter of every input of the group through w[ci, j, k]."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t n = it // g.Cout, co = it % g.Cout
    cdef Py_ssize_t grp = co // g.cout_g
    cdef Py_ssize_t j = co - grp * g.cout_g
    cdef const floating *xp = <const floating *> t.x
    cdef const floating *wp = <const floating *> t.w
    cdef const floating *bp = <const floating *> t.b
    cdef floating *yb = <floating *> t.y + (n * g.Cout + co) * g.Pout
    cdef Py_ssize_t c, ci, iz, iy, kz, ky, kx, tz, ty, a, bb
    cdef const floating *xc
    cdef const floating *wb
    cdef const floating *xrow
    cdef floating *yrow
    fill(g.Pout, bp[co] if bp != NULL else <floating> 0, yb)
    for c in range(g.cin_g):
        ci = grp * g.cin_g + c
        xc = xp + (n * g.Cin + ci) * g.Pin
        wb = wp + (ci * g.cout_g + j) * g.Kp
        for iz in range(g.isz[0]):
            for kz in range(g.ks[0]):
                tz = iz * g.st[0] - g.lo[0] + kz * g.dl[0]
                if tz < 0 or tz >= g.osz[0]:
                    continue
                for iy in range(g.isz[1]):
                    xrow = xc + (iz * g.isz[1] + iy) * g.isz[2]
                    for ky in range(g.ks[1]):
                        ty = iy * g.st[1] - g.lo[1] + ky * g.dl[1]
                        if ty < 0 or ty >= g.osz[1]:
                            continue
                        yrow = yb + (tz * g.osz[1] + ty) * g.osz[2]
                        for kx in range(g.ks[2]):
                            a = t.xa[kx]
                            bb = t.xb[kx]
                            if bb > a:
                                axpy_scatter(bb - a, wb[(kz * g.ks[1] + ky) * g.ks[2] + kx],
                                             xrow + a,
                                             yrow + a * g.st[2] - g.lo[2] + kx * g.dl[2],
                                             g.st[2])


def conv_transpose(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo,
                   int nthreads):
    """Transposed conv; item = one ``(n, co)`` output channel.  ``b`` empty = no bias."""
    cdef Task t
    cdef Operands o
    operands(&o, x, w, b, y)
    t.x, t.w, t.b, t.y = o.x, o.w, o.b, o.y
    if o.dbl:
        _run[double](_transpose_item[double], &t, geo, True, geo[0] * geo[2], nthreads)
    else:
        _run[float](_transpose_item[float], &t, geo, True, geo[0] * geo[2], nthreads)


# ---------------------------------------------------------------------------
# conv_weight

cdef void _weight_item(const void *task, floating *buf, Py_ssize_t slot,
                       Py_ssize_t it) noexcept nogil:
    """gw[co, c, k] = sum_{n, o} gy[n, co, o] * x[n, ., o*s - lo + k*d] for every k."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t co = it // g.cin_g, c = it % g.cin_g
    cdef Py_ssize_t grp = co // g.cout_g
    cdef const floating *xp = <const floating *> t.x
    cdef const floating *gyp = <const floating *> t.w
    cdef floating *gwp = <floating *> t.y
    cdef Py_ssize_t n, kz, ky, kx, oz, oy, iz, iy, a, bb
    cdef const floating *xc
    cdef const floating *gyc
    cdef floating acc
    for kz in range(g.ks[0]):
        for ky in range(g.ks[1]):
            for kx in range(g.ks[2]):
                acc = 0
                a = t.xa[kx]
                bb = t.xb[kx]
                if bb > a:
                    for n in range(g.N):
                        xc = xp + (n * g.Cin + grp * g.cin_g + c) * g.Pin
                        gyc = gyp + (n * g.Cout + co) * g.Pout
                        for oz in range(g.osz[0]):
                            iz = oz * g.st[0] - g.lo[0] + kz * g.dl[0]
                            if iz < 0 or iz >= g.isz[0]:
                                continue
                            for oy in range(g.osz[1]):
                                iy = oy * g.st[1] - g.lo[1] + ky * g.dl[1]
                                if iy < 0 or iy >= g.isz[1]:
                                    continue
                                acc = acc + dot(
                                    bb - a,
                                    xc + (iz * g.isz[1] + iy) * g.isz[2] + a * g.st[2]
                                    - g.lo[2] + kx * g.dl[2],
                                    g.st[2], gyc + (oz * g.osz[1] + oy) * g.osz[2] + a)
                gwp[(co * g.cin_g + c) * g.Kp + (kz * g.ks[1] + ky) * g.ks[2] + kx] = acc


def conv_weight(cnp.ndarray x, cnp.ndarray gy, cnp.ndarray gw, tuple geo, int nthreads):
    """Weight gradient; item = one ``(co, c)`` weight pair."""
    cdef Task t
    cdef Operands o
    operands(&o, x, gy, None, gw)
    t.x, t.w, t.b, t.y = o.x, o.w, NULL, o.y
    if o.dbl:
        _run[double](_weight_item[double], &t, geo, False, geo[2] * (geo[1] // geo[3]), nthreads)
    else:
        _run[float](_weight_item[float], &t, geo, False, geo[2] * (geo[1] // geo[3]), nthreads)
