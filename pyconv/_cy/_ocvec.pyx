# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``ocvec`` path: direct conv with output channels as vector lanes.

Two passes, in one parallel region (:func:`run_passes`), or the second
alone when every channel block is used by one work item (batch 1): its
item then packs the block into its own buffer just before using it, and
the packed weights never leave the L2 cache:

* the weight pack: item = (group, channel block of ``OCB`` output
  channels), ``wp[group][block][ci][tap][OCB]``;
* the convolution: item = (block of images, group, tile of ``rows`` output
  rows, part of the group's channel blocks).  The item copies its input
  rows, zero padded, into a slab per image and runs register blocks of ``NV`` vectors of
  output channels x ``RB x CB`` positions over it (``kernels/ocvec.h``).

Each output is one sum in a fixed order: bitwise the same for any tiling
and thread count.  :func:`workspace` reports the bytes the kernels
allocate, from the same layout the kernels use; :func:`shape` the
register block's shapes and channel block at a SIMD level.
"""

from libc.stdlib cimport free

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Operands, make_geo, operands, pc_alloc, run_items,
                                 run_passes)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "kernels/ocvec.h" nogil:
    ctypedef struct pc_ocv:
        Geo g
        Py_ssize_t rb, cb, ocb, ncob, rows, ntiles, parts, imgs, lx
        int fused, shared, level
    int PC_OCV_NSHAPES
    int pc_ocv_ocb(int dbl, int level)
    void pc_ocv_shape(int level, int sh, Py_ssize_t *rb, Py_ssize_t *cb)
    Py_ssize_t pc_ocv_lx(const Geo *g)
    Py_ssize_t pc_ocv_elems(const pc_ocv *o, Py_ssize_t isz)
    Py_ssize_t pc_ocv_shared(const pc_ocv *o)
    Py_ssize_t pc_ocv_wpack(const pc_ocv *o)
    void pc_ocv_fill_shared_f(const pc_ocv *o, Py_ssize_t e, const float *x, float *xs)
    void pc_ocv_fill_shared_d(const pc_ocv *o, Py_ssize_t e, const double *x, double *xs)
    void pc_ocv_pack_f(const float *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t ld,
                       Py_ssize_t ocb, float *dst)
    void pc_ocv_pack_d(const double *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t ld,
                       Py_ssize_t ocb, double *dst)
    void pc_ocv_item_f(const pc_ocv *o, int sh, Py_ssize_t it, const float *x, const float *w,
                       const float *wp, const float *b, float *y, const float *xs,
                       float *buf)
    void pc_ocv_item_d(const pc_ocv *o, int sh, Py_ssize_t it, const double *x,
                       const double *w, const double *wp, const double *b, double *y,
                       const double *xs, double *buf)


cdef struct Task:
    pc_ocv o
    int sh              # the register block's shape index
    const void *x
    const void *w       # the weights, (C_out, C_in/g, *k)
    void *wp            # the packed weights (NULL when the items pack their own)
    void *xs            # the shared slabs (NULL when the items fill their own)
    const void *b       # NULL: no bias
    void *y


def shape(int level, int sh, bint dbl):
    """``(RB, CB, OCB)``: register block ``sh`` (rows x columns of outputs) and the
    output channels of a channel block at ``level``."""
    if not 0 <= level <= 2:
        raise ValueError(f"SIMD level must be 0, 1 or 2, got {level}")
    if not 0 <= sh < PC_OCV_NSHAPES:
        raise ValueError(f"shape index must be 0 to {PC_OCV_NSHAPES - 1}, got {sh}")
    cdef Py_ssize_t rb, cb
    pc_ocv_shape(level, sh, &rb, &cb)
    return rb, cb, pc_ocv_ocb(dbl, level)


cdef int _setup(pc_ocv *o, tuple geo, Py_ssize_t rows, Py_ssize_t parts, Py_ssize_t imgs,
                bint fused, bint shared, int level, int sh, bint dbl) except -1:
    o.g = make_geo(geo)
    if o.g.ks[0] != 1 or o.g.osz[0] != 1 or o.g.isz[0] != 1:
        raise ValueError("the ocvec kernels take 1-d and 2-d convs")
    pc_ocv_shape(level, sh, &o.rb, &o.cb)
    o.ocb = pc_ocv_ocb(dbl, level)
    o.ncob = (o.g.cout_g + o.ocb - 1) // o.ocb
    o.rows = max(1, min(rows, o.g.osz[1]))
    o.ntiles = (o.g.osz[1] + o.rows - 1) // o.rows
    o.parts = max(1, min(parts, o.ncob))
    o.imgs = max(1, min(imgs, o.g.N))
    o.lx = pc_ocv_lx(&o.g)
    o.level = level
    o.fused = fused
    o.shared = shared
    return 0


def workspace(tuple geo, Py_ssize_t rows, Py_ssize_t imgs, bint fused, bint shared,
              int level, int sh, bint dbl):
    """(bytes per thread, fixed bytes: the packed weights and the shared slabs)
    of :func:`conv` with tiles of ``rows`` output rows of ``imgs`` images
    (``fused``: each item packs its channel blocks' weights into its own
    buffer; ``shared``: a first pass fills every image's slab once, and the
    items fill none)."""
    cdef pc_ocv o
    cdef Py_ssize_t isz = 8 if dbl else 4
    _setup(&o, geo, rows, 1, imgs, fused, shared, level, sh, dbl)
    return pc_ocv_elems(&o, isz) * isz, (pc_ocv_wpack(&o) + pc_ocv_shared(&o)) * isz


cdef void _prep_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    """The first pass: the shared slab of image and group ``it`` (``it < N *
    G`` when the slabs are shared), then the packed weights of channel block
    ``e % ncob`` of group ``e // ncob`` (``e`` the item's index past the
    slabs; none when the items pack their own)."""
    cdef const Task *t = <const Task *> task
    cdef const pc_ocv *o = &t.o
    cdef Py_ssize_t nslab = o.g.N * o.g.G if o.shared else 0
    if it < nslab:
        if floating is float:
            pc_ocv_fill_shared_f(o, it, <const float *> t.x, <float *> t.xs)
        else:
            pc_ocv_fill_shared_d(o, it, <const double *> t.x, <double *> t.xs)
        return
    it -= nslab
    cdef Py_ssize_t grp = it // o.ncob, c0 = (it % o.ncob) * o.ocb
    cdef Py_ssize_t kc = o.g.cin_g * o.g.Kp
    cdef const floating *src = <const floating *> t.w + (grp * o.g.cout_g + c0) * kc
    cdef floating *dst = <floating *> t.wp + it * o.ocb * kc
    if floating is float:
        pc_ocv_pack_f(src, min(o.ocb, o.g.cout_g - c0), kc, kc, o.ocb, dst)
    else:
        pc_ocv_pack_d(src, min(o.ocb, o.g.cout_g - c0), kc, kc, o.ocb, dst)


cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    if floating is float:
        pc_ocv_item_f(&t.o, t.sh, it, <const float *> t.x, <const float *> t.w,
                      <const float *> t.wp, <const float *> t.b, <float *> t.y,
                      <const float *> t.xs, buf)
    else:
        pc_ocv_item_d(&t.o, t.sh, it, <const double *> t.x, <const double *> t.w,
                      <const double *> t.wp, <const double *> t.b, <double *> t.y,
                      <const double *> t.xs, buf)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t rows, Py_ssize_t parts, Py_ssize_t imgs, bint fused, bint shared,
               int level, int sh, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef Py_ssize_t isz = sizeof(floating), nitems, nfirst
    _setup(&t.o, geo, rows, parts, imgs, fused, shared, level, sh, floating is double)
    t.sh = sh
    t.x, t.w, t.y = x, w, y
    t.b = b
    t.wp = t.xs = NULL
    nitems = (t.o.g.N + t.o.imgs - 1) // t.o.imgs * t.o.g.G * t.o.ntiles * t.o.parts
    nfirst = (0 if fused else t.o.g.G * t.o.ncob) + (t.o.g.N * t.o.g.G if shared else 0)
    if nfirst == 0:
        run_items[floating](_conv_item[floating], &t, nitems, nitems,
                            pc_ocv_elems(&t.o, isz) * isz, nthreads)
        return 0
    try:
        if not fused:
            t.wp = pc_alloc(pc_ocv_wpack(&t.o) * isz)
            if t.wp == NULL:
                raise MemoryError()
        if shared:
            t.xs = pc_alloc(pc_ocv_shared(&t.o) * isz)
            if t.xs == NULL:
                raise MemoryError()
        run_passes[floating](_prep_item[floating], nfirst, _conv_item[floating],
                             nitems, &t, pc_ocv_elems(&t.o, isz) * isz, nthreads)
    finally:
        free(t.wp)
        free(t.xs)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t rows,
         Py_ssize_t parts, Py_ssize_t imgs, bint fused, bint shared, int level, int sh,
         int nthreads):
    """1-d or 2-d forward conv, output channels as vector lanes; item = (block
    of ``imgs`` images, group, tile of ``rows`` output rows, part of ``parts`` of
    the group's channel blocks); ``sh``: the register block's shape
    (:func:`shape`); ``fused``: each item packs its channel blocks' weights
    itself (no packing in the first pass); ``shared``: the first pass fills
    every image's slab once (the items fill none).  ``b`` empty = no bias."""
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, rows, parts, imgs, fused, shared, level, sh, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              rows, parts, imgs, fused, shared, level, sh, nthreads)
