# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``winograd_oc`` path: Winograd F(m x m, 3 x 3) with output
channels as vector lanes and the weight transform fused into the products.

Two passes, in one parallel region (:func:`run_passes`):

* the input transform: item = (group, run of ``cch`` input channels), into
  ``V[group][p][ci][tile]``, the path's one fixed buffer;
* the products: item = (group, chunk of ``tc`` tiles, block of ``OCB``
  output channels).  Per run of ``cb`` input channels it packs and
  transforms the block's weights and adds their products into ``M``; then
  the output transform, plus bias, into y (``kernels/winograd_oc.h``).

Local rounds (``cch`` 0, see ``paths/winograd_oc.py`` for when): one work
item per round of ``rt`` tiles, which transforms the round's input into its
own thread's buffer and then runs all of the round's product items on it,
in one pass (:func:`run_items`).

Each output is one sum in a fixed order: bitwise the same for any chunking,
rounds and thread count.  :func:`workspace` reports the bytes the kernels
allocate, from the same layout the kernels use; :func:`block` the register
block's tiles and the channel block at a SIMD level.
"""

from libc.stdint cimport int32_t
from libc.stdlib cimport free

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Operands, make_geo, operands, pc_alloc, run_items,
                                 run_passes)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "kernels/winograd_oc.h" nogil:
    ctypedef struct pc_wnoc:
        Geo g
        Py_ssize_t m, alpha, P, s, ntx, nty, nt, R, tc, rt, tv, r0, nr, nchunks
        Py_ssize_t cb, ncb, cch, ncch
        Py_ssize_t ocb, ncob, kbs, nkg
        int level, consts
        double bt[36]
        double gm[18]
        double at[24]
    int pc_ocv_ocb(int dbl, int level)
    int pc_wnoc_np(int level)
    Py_ssize_t pc_wnoc_elems(const pc_wnoc *o)
    Py_ssize_t pc_wnoc_vsize(const pc_wnoc *o)
    int pc_wnoc_tables(const pc_wnoc *o)
    void pc_wnoc_offsets(const pc_wnoc *o, int32_t *ofs)
    void pc_wnoc_input_f(const pc_wnoc *o, Py_ssize_t it, const float *x, const int32_t *ofs,
                         float *V)
    void pc_wnoc_input_d(const pc_wnoc *o, Py_ssize_t it, const double *x,
                         const int32_t *ofs, double *V)
    void pc_wnoc_item_f(const pc_wnoc *o, Py_ssize_t it, const float *V, const float *w,
                        const float *b, float *y, float *buf)
    void pc_wnoc_item_d(const pc_wnoc *o, Py_ssize_t it, const double *V, const double *w,
                        const double *b, double *y, double *buf)


cdef struct Task:
    pc_wnoc o
    const void *x
    const void *w       # the weights, (C_out, C_in/g, 3, 3)
    void *V             # the transformed input
    int32_t *ofs        # the round's offsets of the tiles' input windows
    const void *b       # NULL: no bias
    void *y


def block(int level, bint dbl):
    """``(NP, OCB)``: the most tiles of a register block and the output channels of
    a channel block at ``level``."""
    if not 0 <= level <= 2:
        raise ValueError(f"SIMD level must be 0, 1 or 2, got {level}")
    return pc_wnoc_np(level), pc_ocv_ocb(dbl, level)


cdef int _setup(pc_wnoc *o, tuple geo, Py_ssize_t m, Py_ssize_t tc, Py_ssize_t rt,
                Py_ssize_t cb, Py_ssize_t cch, Py_ssize_t kbs, int level, bint dbl,
                coef) except -1:
    """The call's geometry: tiles of ``m`` x ``m`` outputs, chunks of about ``tc``
    tiles (equal, of whole register blocks), rounds of about ``rt`` tiles
    (whole chunks), runs of ``cb`` input channels in the weight transform,
    ``cch`` per input-transform item, ``kbs`` channel blocks per product item;
    ``coef`` = (B^T, G, A^T) (flattened row-major) or None (the buffer sizes
    do not depend on them).  Set for the first round."""
    cdef Py_ssize_t i, nb, np_, r, nch, cpr
    o.g = make_geo(geo)
    if (o.g.ks[0] != 1 or o.g.ks[1] != 3 or o.g.ks[2] != 3 or o.g.osz[0] != 1
            or o.g.st[1] != o.g.st[2] or not 1 <= o.g.st[1] <= 2
            or o.g.dl[1] != 1 or o.g.dl[2] != 1):
        raise ValueError("the winograd_oc kernels take 2-d 3x3 convs, stride 1 or 2 "
                         "(the same on both axes), dilation 1")
    if m != 2 and m != 4:
        raise ValueError(f"tile size must be 2 or 4, got {m}")
    if o.g.st[1] == 2 and m != 2:
        raise ValueError(f"stride 2 takes tiles of 2, got {m}")
    o.m, o.s = m, o.g.st[1]
    o.alpha = m + 2 if o.s == 1 else 2 * m + 1
    o.P = o.alpha * o.alpha
    o.ntx = (o.g.osz[2] + m - 1) // m
    o.nty = (o.g.osz[1] + m - 1) // m
    o.nt = o.g.N * o.nty * o.ntx
    tc = max(1, min(tc, o.nt))
    nch = (o.nt + tc - 1) // tc
    tc = (o.nt + nch - 1) // nch                        # equal chunks ...
    cpr = max(1, min(nch, rt // tc))                    # ... per round
    # ... of whole register blocks: of the block sizes from half the register
    # file's to all of it, the one that pads V's rows (whole vectors) least,
    # then computes the fewest tiles, then the largest
    np_ = pc_wnoc_np(level)
    best = None
    for r in range(max(1, np_ // 2), np_ + 1):
        nb = (tc + r - 1) // r
        key = ((cpr * nb * r + 15) // 16, nb * r, -r)
        if best is None or key < best:
            best, o.R, o.tc = key, r, nb * r
    o.rt = cpr * o.tc
    o.tv = (o.rt + 15) // 16 * 16                       # whole vectors of tiles (pass 1)
    _round(o, 0)
    o.cb = max(1, min(cb, o.g.cin_g))
    o.ncb = (o.g.cin_g + o.cb - 1) // o.cb
    o.cch = o.g.cin_g if cch == 0 else max(1, min(cch, o.g.cin_g))
    o.ncch = (o.g.cin_g + o.cch - 1) // o.cch
    o.ocb = pc_ocv_ocb(dbl, level)
    o.ncob = (o.g.cout_g + o.ocb - 1) // o.ocb
    o.kbs = max(1, min(kbs, o.ncob))
    o.nkg = (o.ncob + o.kbs - 1) // o.kbs
    o.level = level
    if coef is not None:
        bt, gm, at = coef
        for i in range(o.alpha * o.alpha):
            o.bt[i] = bt[i]
        for i in range(o.alpha * 3):
            o.gm[i] = gm[i]
        for i in range(m * o.alpha):
            o.at[i] = at[i]
        o.consts = pc_wnoc_tables(o)
        if o.s == 2 and not o.consts:
            raise ValueError("stride 2 takes the matrices of stride2_matrices(2) only")
    else:
        o.consts = 0
    return 0


cdef inline void _round(pc_wnoc *o, Py_ssize_t r0) noexcept nogil:
    """Set the round that starts at tile ``r0``."""
    o.r0 = r0
    o.nr = min(o.rt, o.nt - r0)
    o.nchunks = (o.nr + o.tc - 1) // o.tc


def workspace(tuple geo, Py_ssize_t m, Py_ssize_t tc, Py_ssize_t rt, Py_ssize_t cb,
              Py_ssize_t kbs, int level, bint dbl, bint local=False):
    """(bytes per thread, fixed bytes: a round's transformed input and offsets)
    of :func:`conv`; ``local``: of its local rounds (``cch`` 0), where each
    thread holds a round's transformed input and offsets."""
    cdef pc_wnoc o
    cdef Py_ssize_t isz = 8 if dbl else 4
    _setup(&o, geo, m, tc, rt, cb, 1, kbs, level, dbl, None)
    if local:
        return _local_bytes(&o, isz), 0
    return pc_wnoc_elems(&o) * isz, pc_wnoc_vsize(&o) * isz + o.P * o.tv * 4


def items(tuple geo, Py_ssize_t m, Py_ssize_t tc, Py_ssize_t rt, Py_ssize_t kbs, int level,
          bint dbl, bint local=False):
    """Product items (the second pass's) of :func:`conv`'s first round; ``local``:
    the items of its local rounds (one per group and round)."""
    cdef pc_wnoc o
    _setup(&o, geo, m, tc, rt, 1, 1, kbs, level, dbl, None)
    if local:
        return o.g.G * ((o.nt + o.rt - 1) // o.rt)
    return o.g.G * o.nchunks * o.nkg


cdef void _input_item(const void *task, floating *buf, Py_ssize_t slot,
                      Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    if floating is float:
        pc_wnoc_input_f(&t.o, it, <const float *> t.x, t.ofs, <float *> t.V)
    else:
        pc_wnoc_input_d(&t.o, it, <const double *> t.x, t.ofs, <double *> t.V)


cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    if floating is float:
        pc_wnoc_item_f(&t.o, it, <const float *> t.V, <const float *> t.w,
                       <const float *> t.b, <float *> t.y, buf)
    else:
        pc_wnoc_item_d(&t.o, it, <const double *> t.V, <const double *> t.w,
                       <const double *> t.b, <double *> t.y, buf)


cdef inline Py_ssize_t _local_bytes(const pc_wnoc *o, Py_ssize_t isz) noexcept nogil:
    """One thread's buffer in local rounds: the products' buffers, then a
    round's transformed input and offsets."""
    return (pc_wnoc_elems(o) + pc_wnoc_vsize(o)) * isz + o.P * o.tv * sizeof(int32_t)


cdef void _local_item(const void *task, floating *buf, Py_ssize_t slot,
                      Py_ssize_t it) noexcept nogil:
    """Local rounds: item = (group, round).  The thread transforms the round's
    input into its own buffer and runs every product item of the round on it:
    the transformed input is written and read by one core (with two passes,
    each product item read V from the cores of every input-transform item)."""
    cdef const Task *t = <const Task *> task
    cdef pc_wnoc o = t.o
    cdef Py_ssize_t nrounds = (o.nt + o.rt - 1) // o.rt
    cdef Py_ssize_t grp = it // nrounds, k, nprod
    cdef floating *V = buf + pc_wnoc_elems(&o)
    cdef int32_t *ofs = <int32_t *> (V + pc_wnoc_vsize(&o))
    _round(&o, it % nrounds * o.rt)
    pc_wnoc_offsets(&o, ofs)
    for k in range(o.ncch):
        if floating is float:
            pc_wnoc_input_f(&o, grp * o.ncch + k, <const float *> t.x, ofs, V)
        else:
            pc_wnoc_input_d(&o, grp * o.ncch + k, <const double *> t.x, ofs, V)
    nprod = o.nchunks * o.nkg
    for k in range(nprod):
        if floating is float:
            pc_wnoc_item_f(&o, grp * nprod + k, V, <const float *> t.w, <const float *> t.b,
                           <float *> t.y, buf)
        else:
            pc_wnoc_item_d(&o, grp * nprod + k, V, <const double *> t.w,
                           <const double *> t.b, <double *> t.y, buf)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t m, Py_ssize_t tc, Py_ssize_t rt, Py_ssize_t cb, Py_ssize_t cch,
               Py_ssize_t kbs, coef, int level, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t r0
    cdef Py_ssize_t nrounds
    _setup(&t.o, geo, m, tc, rt, cb, cch, kbs, level, floating is double, coef)
    t.x, t.w, t.y = x, w, y
    t.b = b
    if cch == 0:                        # local rounds
        nrounds = (t.o.nt + t.o.rt - 1) // t.o.rt
        run_items[floating](_local_item[floating], &t, t.o.g.G * nrounds, t.o.g.G * nrounds,
                            _local_bytes(&t.o, isz), nthreads)
        return 0
    t.V = pc_alloc(pc_wnoc_vsize(&t.o) * isz)
    t.ofs = <int32_t *> pc_alloc(t.o.P * t.o.tv * sizeof(int32_t))
    try:
        if t.V == NULL or t.ofs == NULL:
            raise MemoryError()
        for r0 in range(0, t.o.nt, t.o.rt):
            _round(&t.o, r0)
            pc_wnoc_offsets(&t.o, t.ofs)
            run_passes[floating](_input_item[floating], t.o.g.G * t.o.ncch,
                                 _conv_item[floating], t.o.g.G * t.o.nchunks * t.o.nkg, &t,
                                 pc_wnoc_elems(&t.o) * isz, nthreads)
    finally:
        free(t.V)
        free(t.ofs)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t m,
         Py_ssize_t tc, Py_ssize_t rt, Py_ssize_t cb, Py_ssize_t cch, Py_ssize_t kbs, coef,
         int level, int nthreads):
    """2-d 3x3 forward conv by F(m x m, 3 x 3) (stride 1) or tiles of 2x2 over 5x5
    windows (stride 2), output channels as vector lanes, in rounds of ``rt``
    tiles (the passes run per round, V holds one round's): chunks of ``tc``
    tiles, runs of ``cb`` input channels per weight transform, ``cch`` input
    channels per input-transform item (0: local rounds, one item per
    round, see ``_local_item``), ``kbs`` channel blocks per product item;
    ``coef`` = (B^T, G, A^T) of F(m, 3) or ``stride2_matrices(2)``, each
    flattened row-major.  ``b`` empty = no bias."""
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, m, tc, rt, cb, cch, kbs, coef, level, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo, m,
              tc, rt, cb, cch, kbs, coef, level, nthreads)
