# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernel of the ``tgemm`` path: conv_transpose of small images on the micro-kernels.

Item = (block of ``nb`` images, group, block of output channels).  The
item packs its images' input (``cin_g`` channels x ``nb * Pin`` columns)
into panels (unless the same thread's previous item had the same images:
the channel blocks share them), computes ``col = W_b^T @ x`` for its channels' rows
(``kernels/tgemm.h``: the weight read in place, never packed), then
fills its channels of each image with the bias and adds the columns in
with col2im (``pc_tg_col2im``: through planes of one channel's uncropped
output, one per image, as many images at a time as fit ``PC_TG_PLANE``
values, when one image's does).  No two items write the same output element, and every
element's sum runs in an order fixed by the plan: bitwise the same for
any thread count.
"""

from libc.stdlib cimport free, malloc

from cython cimport floating

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, col2im, fill, layout_add, layout_init,
                                 layout_part, make_geo, operands, pc_shape, pc_thread_num,
                                 run_items, x_ranges)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "_kernels.h" nogil:
    int pc_tg_nrv(int dbl, int level, Py_ssize_t ncols)
    Py_ssize_t pc_tg_strip_len()
    Py_ssize_t pc_tg_plane(const Geo *g)
    Py_ssize_t pc_tg_plane_images(const Geo *g, Py_ssize_t nb)
    void pc_tg_col2im_f(const Geo *g, const float *col, Py_ssize_t ld, Py_ssize_t nb,
                        Py_ssize_t cout, const float *bias, float *y, Py_ssize_t ldy,
                        float *plane)
    void pc_tg_col2im_d(const Geo *g, const double *col, Py_ssize_t ld, Py_ssize_t nb,
                        Py_ssize_t cout, const double *bias, double *y, Py_ssize_t ldy,
                        double *plane)
    void pc_tg_pack_f(const float *x, Py_ssize_t nb, Py_ssize_t ldn, Py_ssize_t kc,
                      Py_ssize_t np, Py_ssize_t nr, float *pack)
    void pc_tg_pack_d(const double *x, Py_ssize_t nb, Py_ssize_t ldn, Py_ssize_t kc,
                      Py_ssize_t np, Py_ssize_t nr, double *pack)
    void pc_tgemm_f(int level, int nrv, Py_ssize_t kc, Py_ssize_t mrows, const float *a,
                    Py_ssize_t lda, const float *bpack, Py_ssize_t ncols, float *out,
                    Py_ssize_t ldo, float *apack)
    void pc_tgemm_d(int level, int nrv, Py_ssize_t kc, Py_ssize_t mrows, const double *a,
                    Py_ssize_t lda, const double *bpack, Py_ssize_t ncols, double *out,
                    Py_ssize_t ldo, double *apack)


cdef struct Task:
    Geo g
    const void *x
    const void *w
    const void *b       # NULL: no bias
    void *y
    int level, nrv      # SIMD level; column vectors per panel
    Py_ssize_t nb, nchb, vl
    Py_ssize_t *packed  # per thread: the (images, group) its packed input holds
    int nthreads        # threads with such an entry
    Layout buf


cdef Py_ssize_t _vl(int dbl, int level) noexcept nogil:
    """Lanes of one vector at ``level`` (the micro-kernel table's VL)."""
    return pc_shape(dbl, level).vl


cdef void _layout(const Geo *g, Py_ssize_t nb, Py_ssize_t nchb, Py_ssize_t nr,
                  Py_ssize_t isz, Layout *L) noexcept nogil:
    cdef Py_ssize_t ncols = nb * g.Pin
    cdef Py_ssize_t rows = (g.cout_g + nchb - 1) // nchb * g.Kp
    layout_init(L)
    layout_add(L, (6 + 2 * g.ks[2]) * sizeof(Py_ssize_t))          # output box + tap ranges
    layout_add(L, g.cin_g * ((ncols + nr - 1) // nr * nr) * isz)   # the packed input
    layout_add(L, rows * ((ncols + nr - 1) // nr * nr) * isz)      # the block's col
    layout_add(L, pc_tg_strip_len() * isz)                         # the weight's strips
    layout_add(L, pc_tg_plane_images(g, nb) * pc_tg_plane(g) * isz)  # col2im's planes


def workspace(tuple geo, Py_ssize_t nb, Py_ssize_t nchb, int level, bint dbl):
    """(bytes per thread, fixed bytes) of :func:`conv_transpose`."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef Py_ssize_t nr = pc_tg_nrv(dbl, level, nb * g.Pin) * _vl(dbl, level)
    _layout(&g, nb, nchb, nr, 8 if dbl else 4, &L)
    return L.nbytes, 0


cdef inline void _pack(const floating *x, Py_ssize_t nb, Py_ssize_t ldn, Py_ssize_t kc,
                       Py_ssize_t np, Py_ssize_t nr, floating *pack) noexcept nogil:
    if floating is float:
        pc_tg_pack_f(x, nb, ldn, kc, np, nr, pack)
    else:
        pc_tg_pack_d(x, nb, ldn, kc, np, nr, pack)


cdef inline void _col2im(const Geo *g, const floating *col, Py_ssize_t ld, Py_ssize_t nb,
                         Py_ssize_t cout, const floating *bias, floating *y, Py_ssize_t ldy,
                         floating *plane) noexcept nogil:
    if floating is float:
        pc_tg_col2im_f(g, col, ld, nb, cout, bias, y, ldy, plane)
    else:
        pc_tg_col2im_d(g, col, ld, nb, cout, bias, y, ldy, plane)


cdef inline void _tgemm(int level, int nrv, Py_ssize_t kc, Py_ssize_t mrows,
                        const floating *a, Py_ssize_t lda, const floating *bpack,
                        Py_ssize_t ncols, floating *out, Py_ssize_t ldo,
                        floating *apack) noexcept nogil:
    if floating is float:
        pc_tgemm_f(level, nrv, kc, mrows, a, lda, bpack, ncols, out, ldo, apack)
    else:
        pc_tgemm_d(level, nrv, kc, mrows, a, lda, bpack, ncols, out, ldo, apack)


cdef void _item(const void *task, floating *buf, Py_ssize_t slot, Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Geo gb = t.g     # the block's channels only (col2im's channel loop)
    cdef Py_ssize_t mt = g.cout_g * g.Kp
    cdef Py_ssize_t *rng = <Py_ssize_t *> layout_part(&t.buf, buf, 0)
    cdef floating *pack = <floating *> layout_part(&t.buf, buf, 1)
    cdef floating *col = <floating *> layout_part(&t.buf, buf, 2)
    cdef floating *strips = <floating *> layout_part(&t.buf, buf, 3)
    cdef floating *plane = <floating *> layout_part(&t.buf, buf, 4)
    cdef Py_ssize_t cb = it % t.nchb, grp = (it // t.nchb) % g.G
    cdef Py_ssize_t n0 = (it // (t.nchb * g.G)) * t.nb
    cdef Py_ssize_t nbi = min(t.nb, g.N - n0)
    cdef Py_ssize_t ncols = nbi * g.Pin
    cdef Py_ssize_t ld = (ncols + t.nrv * t.vl - 1) // (t.nrv * t.vl) * (t.nrv * t.vl)
    cdef Py_ssize_t c0 = cb * g.cout_g // t.nchb
    cdef Py_ssize_t c1 = (cb + 1) * g.cout_g // t.nchb
    cdef const floating *bp = <const floating *> t.b
    cdef floating *yn
    cdef Py_ssize_t *packed
    cdef Py_ssize_t ax, bi, j, per
    cdef int tid
    if c1 == c0:
        return
    gb.cout_g = c1 - c0
    for ax in range(3):
        rng[ax] = 0
        rng[3 + ax] = g.osz[ax]
    x_ranges(g, True, 0, g.osz[2], rng + 6, rng + 6 + g.ks[2])
    # the channel blocks of one block of images share its packed input: a
    # thread packs it again only when its previous item had other images
    # (a thread number past the entries, as inside a caller's own OpenMP
    # region, packs every time)
    tid = pc_thread_num()
    packed = t.packed + 2 * tid if tid < t.nthreads else NULL
    if packed == NULL or packed[0] != n0 or packed[1] != grp:
        _pack(<const floating *> t.x + (n0 * g.Cin + grp * g.cin_g) * g.Pin, nbi,
              g.Cin * g.Pin, g.cin_g, g.Pin, t.nrv * t.vl, pack)
        if packed != NULL:
            packed[0], packed[1] = n0, grp
    _tgemm(t.level, t.nrv, g.cin_g, gb.cout_g * g.Kp,
           <const floating *> t.w + grp * g.cin_g * mt + c0 * g.Kp, mt, pack, ncols,
           col, ld, strips)
    per = pc_tg_plane_images(g, nbi)
    bi = 0
    while per > 0 and bi < nbi:     # through planes, ``per`` images at a time
        yn = <floating *> t.y + ((n0 + bi) * g.Cout + grp * g.cout_g + c0) * g.Pout
        _col2im(g, col + bi * g.Pin, ld, min(per, nbi - bi), c1 - c0,
                bp + grp * g.cout_g + c0 if bp != NULL else NULL, yn, g.Cout * g.Pout,
                plane)
        bi += per
    for bi in range(nbi if per == 0 else 0):
        yn = <floating *> t.y + ((n0 + bi) * g.Cout + grp * g.cout_g + c0) * g.Pout
        for j in range(c0, c1):
            fill(g.Pout, bp[grp * g.cout_g + j] if bp != NULL else <floating> 0,
                 yn + (j - c0) * g.Pout)
        col2im(&gb, col + bi * g.Pin, ld, yn, 0, g.Pin, rng, rng + 3, rng + 6,
               rng + 6 + g.ks[2])


cdef int _conv_transpose(const floating *x, const floating *w, const floating *b, floating *y,
                         tuple geo, Py_ssize_t nb, Py_ssize_t nchb, int level,
                         int nthreads) except -1:
    """The body of :func:`conv_transpose`."""
    cdef Task t
    cdef Py_ssize_t nitems, i
    t.g = make_geo(geo)
    if not 1 <= nchb <= max(1, t.g.cout_g) or nb < 1:
        raise ValueError(f"need 1 <= nchb <= {max(1, t.g.cout_g)} and nb >= 1, "
                         f"got nchb={nchb}, nb={nb}")
    t.x, t.w, t.y = x, w, y
    t.b = b
    t.level, t.nb, t.nchb = level, nb, nchb
    t.vl = _vl(floating is double, level)
    t.nrv = pc_tg_nrv(floating is double, level, nb * t.g.Pin)
    _layout(&t.g, nb, nchb, t.nrv * t.vl, sizeof(floating), &t.buf)
    nitems = (t.g.N + nb - 1) // nb * t.g.G * nchb
    t.nthreads = max(1, nthreads)
    t.packed = <Py_ssize_t *> malloc(2 * t.nthreads * sizeof(Py_ssize_t))
    if t.packed == NULL:
        raise MemoryError()
    try:
        for i in range(2 * t.nthreads):
            t.packed[i] = -1
        run_items[floating](_item[floating], &t, nitems, nitems, t.buf.nbytes, nthreads)
    finally:
        free(t.packed)
    return 0


def conv_transpose(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo,
                   Py_ssize_t nb, Py_ssize_t nchb, int level, int nthreads):
    """Transposed conv; item = (``nb`` images, group, one of ``nchb`` channel blocks).

    ``b`` empty = no bias.
    """
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv_transpose(<const double *> o.x, <const double *> o.w, <const double *> o.b,
                        <double *> o.y, geo, nb, nchb, level, nthreads)
    else:
        _conv_transpose(<const float *> o.x, <const float *> o.w, <const float *> o.b,
                        <float *> o.y, geo, nb, nchb, level, nthreads)
