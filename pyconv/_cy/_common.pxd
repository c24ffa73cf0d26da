# cython: language_level=3
"""What the kernel modules of the cython backend share (``cimport`` only).

* the ``cdef extern`` block of the C kernels (``_kernels.h``) and the
  geometry struct ``Geo``;
* one fused-type wrapper per float/double pair of C kernels (the pattern of
  scikit-learn's ``_cython_blas``): call sites write ``fill(n, v, y)`` and
  the wrapper picks ``pc_fill_f`` or ``pc_fill_d``;
* :func:`operands`, the entry of every kernel function: it checks the
  flat arrays a path unit passes and takes their data pointers through
  NumPy's C API (a typed memoryview costs about 0.4 us per array, a
  pointer 0.04 us: a small call passes four);
* the helpers every path uses: the geometry tuple, the x ranges of the
  kernel taps, weight packing, the per-thread buffer layout, the
  partial-sum reduction and the per-item driver :func:`run_items` (OpenMP
  threads, per-thread buffers, Ctrl-C).

Everything here is ``inline`` or ``extern``: each module compiles its own
copy, and there is no ``_common`` module to import at run time.
"""

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free
from libc.string cimport memset

cdef extern from "Python.h":
    ctypedef struct PyObject
    unsigned long PyThread_get_thread_ident()
    int PyErr_CheckSignals()     # no except clause: run_items keeps the exception
    void PyErr_Fetch(PyObject **, PyObject **, PyObject **)
    void PyErr_Restore(PyObject *, PyObject *, PyObject *)

cdef extern from "_kernels.h" nogil:
    # common.h
    int PYCONV_HAVE_OPENMP
    int PYCONV_HAVE_CLONES
    int pc_omp_max_threads()
    int pc_thread_num()
    int pc_team_size()
    int pc_uk_level()
    const char *pc_simd_level()
    ctypedef struct pc_geo:
        Py_ssize_t N, Cin, Cout, G, cin_g, cout_g
        Py_ssize_t isz[3]
        Py_ssize_t osz[3]
        Py_ssize_t ks[3]
        Py_ssize_t st[3]
        Py_ssize_t dl[3]
        Py_ssize_t lo[3]
        Py_ssize_t Pin, Pout, Kp
    void *pc_alloc(size_t nbytes)
    Py_ssize_t pc_floordiv(Py_ssize_t a, Py_ssize_t b)
    Py_ssize_t pc_ceildiv(Py_ssize_t a, Py_ssize_t b)
    ctypedef struct pc_team_bar:
        int count, sense, sleepers
    ctypedef struct pc_ctl:
        int stop, failed, done, poll
        pc_team_bar passes
        double interval, next
        void *exc[3]
    double PC_POLL_SECONDS
    double pc_now()
    unsigned long pc_main_thread()
    void pc_set_main_thread(unsigned long id)
    void pc_team_wait(pc_team_bar *b, int team, int *sense)
    void pc_team_barrier(pc_ctl *c, int n)
    void pc_team_end(pc_ctl *c, int n)

    # peak.h
    double pc_fma_peak_run(Py_ssize_t iters, int threads)

    # loops.h
    void pc_axpy_f(Py_ssize_t n, float a, const float *x, Py_ssize_t incx, float *y)
    void pc_axpy_d(Py_ssize_t n, double a, const double *x, Py_ssize_t incx, double *y)
    void pc_axpy_scatter_f(Py_ssize_t n, float a, const float *x, float *y, Py_ssize_t incy)
    void pc_axpy_scatter_d(Py_ssize_t n, double a, const double *x, double *y, Py_ssize_t incy)
    float pc_dot_f(Py_ssize_t n, const float *x, Py_ssize_t incx, const float *y)
    double pc_dot_d(Py_ssize_t n, const double *x, Py_ssize_t incx, const double *y)
    void pc_gather_f(Py_ssize_t n, const float *x, Py_ssize_t incx, float *y)
    void pc_gather_d(Py_ssize_t n, const double *x, Py_ssize_t incx, double *y)
    void pc_add_f(Py_ssize_t n, const float *x, float *y)
    void pc_add_d(Py_ssize_t n, const double *x, double *y)
    void pc_fill_f(Py_ssize_t n, float v, float *y)
    void pc_fill_d(Py_ssize_t n, double v, double *y)

    # cols.h
    void pc_im2col_f(const pc_geo *g, const float *xg, float *col, Py_ssize_t p0,
                     Py_ssize_t tl, const Py_ssize_t *xa, const Py_ssize_t *xb)
    void pc_im2col_d(const pc_geo *g, const double *xg, double *col, Py_ssize_t p0,
                     Py_ssize_t tl, const Py_ssize_t *xa, const Py_ssize_t *xb)
    void pc_col2im_f(const pc_geo *g, const float *col, Py_ssize_t ld, float *yg,
                     Py_ssize_t q0, Py_ssize_t tl, const Py_ssize_t *olo,
                     const Py_ssize_t *ohi, const Py_ssize_t *xa, const Py_ssize_t *xb)
    void pc_col2im_d(const pc_geo *g, const double *col, Py_ssize_t ld, double *yg,
                     Py_ssize_t q0, Py_ssize_t tl, const Py_ssize_t *olo,
                     const Py_ssize_t *ohi, const Py_ssize_t *xa, const Py_ssize_t *xb)

    # microkernels.h
    ctypedef struct pc_uk_shape:
        int vl, mr, nrv, mrw, nrvw
    pc_uk_shape pc_shape(int dbl, int level)
    void pc_pack_w_f(const float *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t mr,
                     float *wpack)
    void pc_pack_w_d(const double *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t mr,
                     double *wpack)
    void pc_panels_f(int level, Py_ssize_t kc, Py_ssize_t mrows, const float *wpack,
                     const float *cpack, Py_ssize_t ncols, float *out, Py_ssize_t ldo,
                     const float *bias)
    void pc_panels_d(int level, Py_ssize_t kc, Py_ssize_t mrows, const double *wpack,
                     const double *cpack, Py_ssize_t ncols, double *out, Py_ssize_t ldo,
                     const double *bias)
    void pc_ipanels_f(int level, Py_ssize_t kc, Py_ssize_t mrows, const float *wpack,
                      const float *slab, const Py_ssize_t *off, Py_ssize_t ncols,
                      float *out, Py_ssize_t ldo)
    void pc_ipanels_d(int level, Py_ssize_t kc, Py_ssize_t mrows, const double *wpack,
                      const double *slab, const Py_ssize_t *off, Py_ssize_t ncols,
                      double *out, Py_ssize_t ldo)
    void pc_wpanels_f(int level, Py_ssize_t kc, Py_ssize_t cout, const float *slab,
                      const Py_ssize_t *off, const Py_ssize_t *pos,
                      const float *gyt, Py_ssize_t nval, float *acc,
                      Py_ssize_t ldk, Py_ssize_t ldc)
    void pc_wpanels_d(int level, Py_ssize_t kc, Py_ssize_t cout, const double *slab,
                      const Py_ssize_t *off, const Py_ssize_t *pos,
                      const double *gyt, Py_ssize_t nval, double *acc,
                      Py_ssize_t ldk, Py_ssize_t ldc)

    # packed.h
    void pc_im2col_packed_f(const pc_geo *g, const float *xg, float *pack, Py_ssize_t nr,
                            Py_ssize_t p0, Py_ssize_t tl, const Py_ssize_t *xa,
                            const Py_ssize_t *xb)
    void pc_im2col_packed_d(const pc_geo *g, const double *xg, double *pack, Py_ssize_t nr,
                            Py_ssize_t p0, Py_ssize_t tl, const Py_ssize_t *xa,
                            const Py_ssize_t *xb)

    # slab.h
    ctypedef struct pc_slab:
        Py_ssize_t A, t0, t1
        Py_ssize_t start[3]
        Py_ssize_t len[3]
        Py_ssize_t plane, ncols
    void pc_slab_geo(const pc_geo *g, Py_ssize_t A, Py_ssize_t t0, Py_ssize_t t1,
                     pc_slab *sl)
    void pc_slab_offsets(const pc_geo *g, const pc_slab *sl, Py_ssize_t *off)
    Py_ssize_t pc_slab_segments(const pc_geo *g, const pc_slab *sl, Py_ssize_t *seg)
    void pc_slab_fill_f(const pc_geo *g, const pc_slab *sl, const float *xg, float *slab,
                        Py_ssize_t tail)
    void pc_slab_fill_d(const pc_geo *g, const pc_slab *sl, const double *xg, double *slab,
                        Py_ssize_t tail)
    void pc_slab_store_f(const pc_geo *g, const pc_slab *sl, const float *ybuf,
                         Py_ssize_t ld, float *yg, const Py_ssize_t *ys, const float *bias)
    void pc_slab_store_d(const pc_geo *g, const pc_slab *sl, const double *ybuf,
                         Py_ssize_t ld, double *yg, const Py_ssize_t *ys, const double *bias)
    void pc_itile_f(int level, const pc_geo *g, const pc_slab *sl, Py_ssize_t kc,
                    Py_ssize_t mrows, const float *wpack, const float *slab,
                    const Py_ssize_t *off, float *out, Py_ssize_t ldo)
    void pc_itile_d(int level, const pc_geo *g, const pc_slab *sl, Py_ssize_t kc,
                    Py_ssize_t mrows, const double *wpack, const double *slab,
                    const Py_ssize_t *off, double *out, Py_ssize_t ldo)
    void pc_pack_gy_f(const pc_geo *g, const pc_slab *sl, const float *gyg, Py_ssize_t nrw,
                      float *gyt, Py_ssize_t nval)
    void pc_pack_gy_d(const pc_geo *g, const pc_slab *sl, const double *gyg, Py_ssize_t nrw,
                      double *gyt, Py_ssize_t nval)

    # deint.h
    void pc_deint_row_f(const float *src, Py_ssize_t s, Py_ssize_t i0, Py_ssize_t i1,
                        Py_ssize_t L, float *row)
    void pc_deint_row_d(const double *src, Py_ssize_t s, Py_ssize_t i0, Py_ssize_t i1,
                        Py_ssize_t L, double *row)
    void pc_store_rows_f(const float *buf, Py_ssize_t ld, float *y, Py_ssize_t ldy,
                         Py_ssize_t rows, Py_ssize_t n, const float *bias)
    void pc_store_rows_d(const double *buf, Py_ssize_t ld, double *y, Py_ssize_t ldy,
                         Py_ssize_t rows, Py_ssize_t n, const double *bias)

    # depthwise.h
    ctypedef struct pc_dwbox:
        Py_ssize_t o0[3]
        Py_ssize_t o1[3]
        Py_ssize_t start[3]
        Py_ssize_t len[3]
        Py_ssize_t nx
    ctypedef struct pc_dw_shape_t:
        int vl, r
    pc_dw_shape_t pc_dw_shape(int dbl, int level)
    void pc_dw_box(const pc_geo *g, Py_ssize_t A, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t R,
                   pc_dwbox *bx)
    Py_ssize_t pc_dw_elems(const pc_geo *g, Py_ssize_t A, Py_ssize_t rows, Py_ssize_t R,
                           Py_ssize_t VL, Py_ssize_t *box_elems)
    void pc_dw_item_f(int level, const pc_geo *g, const pc_dwbox *bx, const float *xn,
                      const float *wp, const float *bp, float *box, float *out, float *yn,
                      Py_ssize_t c0, Py_ssize_t nl)
    void pc_dw_item_d(int level, const pc_geo *g, const pc_dwbox *bx, const double *xn,
                      const double *wp, const double *bp, double *box, double *out,
                      double *yn, Py_ssize_t c0, Py_ssize_t nl)

ctypedef pc_geo Geo


# ---------------------------------------------------------------------------
# fused wrappers: one per float/double pair

cdef inline void axpy(Py_ssize_t n, floating a, const floating *x, Py_ssize_t incx,
                      floating *y) noexcept nogil:
    if floating is float:
        pc_axpy_f(n, a, x, incx, y)
    else:
        pc_axpy_d(n, a, x, incx, y)


cdef inline void axpy_scatter(Py_ssize_t n, floating a, const floating *x, floating *y,
                              Py_ssize_t incy) noexcept nogil:
    if floating is float:
        pc_axpy_scatter_f(n, a, x, y, incy)
    else:
        pc_axpy_scatter_d(n, a, x, y, incy)


cdef inline floating dot(Py_ssize_t n, const floating *x, Py_ssize_t incx,
                         const floating *y) noexcept nogil:
    if floating is float:
        return pc_dot_f(n, x, incx, y)
    else:
        return pc_dot_d(n, x, incx, y)


cdef inline void gather(Py_ssize_t n, const floating *x, Py_ssize_t incx,
                        floating *y) noexcept nogil:
    if floating is float:
        pc_gather_f(n, x, incx, y)
    else:
        pc_gather_d(n, x, incx, y)


cdef inline void add(Py_ssize_t n, const floating *x, floating *y) noexcept nogil:
    if floating is float:
        pc_add_f(n, x, y)
    else:
        pc_add_d(n, x, y)


cdef inline void fill(Py_ssize_t n, floating v, floating *y) noexcept nogil:
    if floating is float:
        pc_fill_f(n, v, y)
    else:
        pc_fill_d(n, v, y)


cdef inline void im2col(const Geo *g, const floating *xg, floating *col, Py_ssize_t p0,
                        Py_ssize_t tl, const Py_ssize_t *xa,
                        const Py_ssize_t *xb) noexcept nogil:
    if floating is float:
        pc_im2col_f(g, xg, col, p0, tl, xa, xb)
    else:
        pc_im2col_d(g, xg, col, p0, tl, xa, xb)


cdef inline void col2im(const Geo *g, const floating *col, Py_ssize_t ld, floating *yg,
                        Py_ssize_t q0, Py_ssize_t tl, const Py_ssize_t *olo,
                        const Py_ssize_t *ohi, const Py_ssize_t *xa,
                        const Py_ssize_t *xb) noexcept nogil:
    if floating is float:
        pc_col2im_f(g, col, ld, yg, q0, tl, olo, ohi, xa, xb)
    else:
        pc_col2im_d(g, col, ld, yg, q0, tl, olo, ohi, xa, xb)


cdef inline void pack_w(const floating *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t mr,
                        floating *wpack) noexcept nogil:
    if floating is float:
        pc_pack_w_f(w, rows, kc, mr, wpack)
    else:
        pc_pack_w_d(w, rows, kc, mr, wpack)


cdef inline void panels(int level, Py_ssize_t kc, Py_ssize_t mrows, const floating *wpack,
                        const floating *cpack, Py_ssize_t ncols, floating *out,
                        Py_ssize_t ldo, const floating *bias) noexcept nogil:
    if floating is float:
        pc_panels_f(level, kc, mrows, wpack, cpack, ncols, out, ldo, bias)
    else:
        pc_panels_d(level, kc, mrows, wpack, cpack, ncols, out, ldo, bias)


cdef inline void ipanels(int level, Py_ssize_t kc, Py_ssize_t mrows, const floating *wpack,
                         const floating *slab, const Py_ssize_t *off, Py_ssize_t ncols,
                         floating *out, Py_ssize_t ldo) noexcept nogil:
    if floating is float:
        pc_ipanels_f(level, kc, mrows, wpack, slab, off, ncols, out, ldo)
    else:
        pc_ipanels_d(level, kc, mrows, wpack, slab, off, ncols, out, ldo)


cdef inline void wpanels(int level, Py_ssize_t kc, Py_ssize_t cout, const floating *slab,
                         const Py_ssize_t *off, const Py_ssize_t *pos,
                         const floating *gyt, Py_ssize_t nval, floating *acc,
                         Py_ssize_t ldk, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        pc_wpanels_f(level, kc, cout, slab, off, pos, gyt, nval, acc, ldk, ldc)
    else:
        pc_wpanels_d(level, kc, cout, slab, off, pos, gyt, nval, acc, ldk, ldc)


cdef inline void im2col_packed(const Geo *g, const floating *xg, floating *pack,
                               Py_ssize_t nr, Py_ssize_t p0, Py_ssize_t tl,
                               const Py_ssize_t *xa, const Py_ssize_t *xb) noexcept nogil:
    if floating is float:
        pc_im2col_packed_f(g, xg, pack, nr, p0, tl, xa, xb)
    else:
        pc_im2col_packed_d(g, xg, pack, nr, p0, tl, xa, xb)


cdef inline void slab_fill(const Geo *g, const pc_slab *sl, const floating *xg,
                           floating *slab, Py_ssize_t tail) noexcept nogil:
    if floating is float:
        pc_slab_fill_f(g, sl, xg, slab, tail)
    else:
        pc_slab_fill_d(g, sl, xg, slab, tail)


cdef inline void slab_store(const Geo *g, const pc_slab *sl, const floating *ybuf,
                            Py_ssize_t ld, floating *yg, const Py_ssize_t *ys,
                            const floating *bias) noexcept nogil:
    if floating is float:
        pc_slab_store_f(g, sl, ybuf, ld, yg, ys, bias)
    else:
        pc_slab_store_d(g, sl, ybuf, ld, yg, ys, bias)


cdef inline void itile(int level, const Geo *g, const pc_slab *sl, Py_ssize_t kc,
                       Py_ssize_t mrows, const floating *wpack, const floating *slab,
                       const Py_ssize_t *off, floating *out, Py_ssize_t ldo) noexcept nogil:
    if floating is float:
        pc_itile_f(level, g, sl, kc, mrows, wpack, slab, off, out, ldo)
    else:
        pc_itile_d(level, g, sl, kc, mrows, wpack, slab, off, out, ldo)


cdef inline void pack_gy(const Geo *g, const pc_slab *sl, const floating *gyg,
                         Py_ssize_t nrw, floating *gyt, Py_ssize_t nval) noexcept nogil:
    if floating is float:
        pc_pack_gy_f(g, sl, gyg, nrw, gyt, nval)
    else:
        pc_pack_gy_d(g, sl, gyg, nrw, gyt, nval)


cdef inline void deint_row(const floating *src, Py_ssize_t s, Py_ssize_t i0, Py_ssize_t i1,
                           Py_ssize_t L, floating *row) noexcept nogil:
    if floating is float:
        pc_deint_row_f(src, s, i0, i1, L, row)
    else:
        pc_deint_row_d(src, s, i0, i1, L, row)


cdef inline void store_rows(const floating *buf, Py_ssize_t ld, floating *y, Py_ssize_t ldy,
                            Py_ssize_t rows, Py_ssize_t n, const floating *bias) noexcept nogil:
    if floating is float:
        pc_store_rows_f(buf, ld, y, ldy, rows, n, bias)
    else:
        pc_store_rows_d(buf, ld, y, ldy, rows, n, bias)


# ---------------------------------------------------------------------------
# geometry

cdef inline Geo make_geo(tuple t) except *:
    """Geo from ``(N, Cin, Cout, G, I*3, O*3, K*3, S*3, D*3, L*3)``."""
    cdef Geo g
    cdef int i
    g.N, g.Cin, g.Cout, g.G = t[0], t[1], t[2], t[3]
    g.cin_g = g.Cin // g.G
    g.cout_g = g.Cout // g.G
    for i in range(3):
        g.isz[i] = t[4 + i]
        g.osz[i] = t[7 + i]
        g.ks[i] = t[10 + i]
        g.st[i] = t[13 + i]
        g.dl[i] = t[16 + i]
        g.lo[i] = t[19 + i]
    g.Pin = g.isz[0] * g.isz[1] * g.isz[2]
    g.Pout = g.osz[0] * g.osz[1] * g.osz[2]
    g.Kp = g.ks[0] * g.ks[1] * g.ks[2]
    return g


cdef inline Py_ssize_t outer_axis(const Geo *g) noexcept nogil:
    """The outermost canonical axis that is a real spatial dim of the problem."""
    cdef Py_ssize_t A = 0
    while A < 2 and g.osz[A] == 1 and g.isz[A] == 1 and g.ks[A] == 1:
        A += 1
    return A


cdef inline void tap_range(Py_ssize_t off, Py_ssize_t s, Py_ssize_t tlo, Py_ssize_t thi,
                           Py_ssize_t n, Py_ssize_t *a, Py_ssize_t *b) noexcept nogil:
    """Positions q in [0, n) whose target q*s + off lies in [tlo, thi): [a, b)."""
    cdef Py_ssize_t lo = pc_ceildiv(tlo - off, s)
    cdef Py_ssize_t hi = pc_floordiv(thi - 1 - off, s) + 1
    if lo < 0:
        lo = 0
    if hi > n:
        hi = n
    if hi < lo:
        hi = lo
    a[0] = lo
    b[0] = hi


cdef inline void x_ranges(const Geo *g, bint transposed, Py_ssize_t tlo, Py_ssize_t thi,
                          Py_ssize_t *xa, Py_ssize_t *xb) noexcept nogil:
    """Per kernel tap kx, the range of source x positions with an in-range target.

    conv: output ox reads input ox*s - lo + kx*d, which must be in [0, I).
    transposed: input ix writes output ix*s - lo + kx*d, in [tlo, thi).
    """
    cdef Py_ssize_t kx
    for kx in range(g.ks[2]):
        if transposed:
            tap_range(kx * g.dl[2] - g.lo[2], g.st[2], tlo, thi, g.isz[2], &xa[kx], &xb[kx])
        else:
            tap_range(kx * g.dl[2] - g.lo[2], g.st[2], 0, g.isz[2], g.osz[2], &xa[kx],
                      &xb[kx])


# ---------------------------------------------------------------------------
# per-thread buffers: one aligned block per thread, carved into parts

cdef struct Layout:
    Py_ssize_t off[8]     # byte offset of each part in the block
    Py_ssize_t n          # parts so far
    Py_ssize_t nbytes     # size of the block


cdef inline void layout_init(Layout *L) noexcept nogil:
    L.n = 0
    L.nbytes = 0


cdef inline void layout_add(Layout *L, Py_ssize_t nbytes) noexcept nogil:
    """Append a part of ``nbytes`` (64-byte aligned, like every work buffer)."""
    L.off[L.n] = L.nbytes
    L.nbytes += (nbytes + 63) // 64 * 64
    L.n += 1


cdef inline void *layout_part(const Layout *L, void *block, int i) noexcept nogil:
    """Part ``i`` of one thread's block."""
    return <char *> block + L.off[i]


# ---------------------------------------------------------------------------
# shared steps of the paths

cdef inline Py_ssize_t packed_rows(Py_ssize_t rows, Py_ssize_t mr) noexcept nogil:
    """Rows of one group's packed weight: ``rows`` rounded up to panels of ``mr``."""
    return (rows + mr - 1) // mr * mr


cdef inline floating *pack_weights(const floating *w, const Geo *g, Py_ssize_t kc,
                                   Py_ssize_t mr) noexcept nogil:
    """Every group's weight (``cout_g x kc``) in micro-kernel panels of ``mr`` rows.

    Group ``grp`` starts at ``grp * packed_rows(g.cout_g, mr) * kc``.  NULL
    when out of memory; the caller frees the result.
    """
    cdef Py_ssize_t mpad = packed_rows(g.cout_g, mr)
    cdef floating *wpack = <floating *> pc_alloc(g.G * mpad * kc * sizeof(floating))
    cdef Py_ssize_t grp
    if wpack != NULL:
        for grp in range(g.G):
            pack_w(w + grp * g.cout_g * kc, g.cout_g, kc, mr, wpack + grp * mpad * kc)
    return wpack


cdef inline void reduce_partials(floating *gw, const floating *part, Py_ssize_t size,
                                 Py_ssize_t nparts, int nthreads) noexcept nogil:
    """``gw += part[0]; gw += part[1]; ...`` in that order (fixed: bitwise reproducible).

    The elements are cut into chunks spread over the threads; every element
    sees the same additions in the same order whatever the thread count.
    """
    cdef Py_ssize_t CH = 4096
    cdef Py_ssize_t nchunks = (size + CH - 1) // CH
    cdef Py_ssize_t e
    if nparts <= 0 or nchunks == 0:
        return
    if nthreads > nchunks:
        nthreads = <int> nchunks
    if nthreads <= 1:            # no parallel region: the OpenMP team stays asleep
        for e in range(nchunks):
            _reduce_chunk(gw, part, size, nparts, e * CH, CH)
        return
    for e in prange(nchunks, schedule='static', num_threads=nthreads):
        _reduce_chunk(gw, part, size, nparts, e * CH, CH)


cdef inline void _reduce_chunk(floating *gw, const floating *part, Py_ssize_t size,
                               Py_ssize_t nparts, Py_ssize_t e0, Py_ssize_t ch) noexcept nogil:
    """Elements ``e0 .. e0 + ch`` of :func:`reduce_partials`."""
    cdef Py_ssize_t s, e1 = min(e0 + ch, size)
    for s in range(nparts):
        add(e1 - e0, part + s * size + e0, gw + e0)


# ---------------------------------------------------------------------------
# the arrays of a kernel call

cdef struct Operands:
    # the data of one kernel call's arrays, checked by operands()
    const void *x       # the input
    const void *w       # the weight (conv_weight: the output gradient)
    const void *b       # the bias; NULL for none
    void *y             # the result, written
    bint dbl            # float64 (else float32)


cdef inline int _itemsize(object a, str name, bint written) except -1:
    """4 or 8: ``a`` is a float32 or float64 NumPy array, native byte order,
    C-contiguous (any shape: the kernels see its elements in order) and,
    when ``written``, writable.  Anything else is a TypeError or ValueError,
    never a kernel reading the wrong memory."""
    cdef cnp.ndarray arr
    cdef int t
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    arr = <cnp.ndarray> a
    t = cnp.PyArray_TYPE(arr)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} must be float32 or float64 (native byte order), got "
                        f"{arr.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if written and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writable")
    return 8 if t == cnp.NPY_FLOAT64 else 4


cdef inline int operands(Operands *o, object x, object w, object b, object y) except -1:
    """Check a kernel call's arrays and set ``o`` to their data.

    ``x``, ``w`` and ``y`` (the result) share one dtype; ``b``, the bias,
    too, or it is empty or None (no bias).  ``w`` None: the kernel takes
    its weights otherwise (``o.w`` NULL).  The sizes are the caller's to
    match with the geometry (the path units make every array from it).
    """
    cdef int isz = _itemsize(y, "y", True)
    if _itemsize(x, "x", False) != isz:
        raise TypeError(f"x must have y's dtype {y.dtype}, got {x.dtype}")
    if w is not None and _itemsize(w, "w", False) != isz:
        raise TypeError(f"w must have y's dtype {y.dtype}, got {w.dtype}")
    o.x = cnp.PyArray_DATA(<cnp.ndarray> x)
    o.w = NULL if w is None else cnp.PyArray_DATA(<cnp.ndarray> w)
    o.y = cnp.PyArray_DATA(<cnp.ndarray> y)
    o.b = NULL
    if b is not None:
        if _itemsize(b, "b", False) != isz:
            raise TypeError(f"b must have y's dtype {y.dtype}, got {b.dtype}")
        if cnp.PyArray_SIZE(<cnp.ndarray> b) > 0:
            o.b = cnp.PyArray_DATA(<cnp.ndarray> b)
    o.dbl = isz == 8
    return 0


# ---------------------------------------------------------------------------
# the per-item driver

cdef inline bint _in_main_thread() except -1:
    """Whether the calling thread is Python's main thread (the one signals reach)."""
    if pc_main_thread() == 0:         # the first call of this module (in this process)
        import threading
        pc_set_main_thread(threading.main_thread().ident)
    return PyThread_get_thread_ident() == pc_main_thread()


cdef inline bint stop_requested(pc_ctl *ctl) noexcept nogil:
    """True when the call must stop: a signal handler raised, or a buffer is missing.

    Thread 0 of a call made from the main Python thread also polls for
    signals here, at most every ``ctl.interval`` seconds: it takes the GIL,
    runs the pending handlers (``PyErr_CheckSignals``) and, if one raised
    (``KeyboardInterrupt``), keeps the exception and tells every thread to
    stop.  The other threads only read the flags.
    """
    cdef double now
    cdef PyObject *exc[3]
    if ctl.stop or ctl.failed:
        return True
    if ctl.poll and pc_thread_num() == 0:
        now = pc_now()
        if now >= ctl.next:
            ctl.next = now + ctl.interval
            with gil:
                if PyErr_CheckSignals() != 0:
                    PyErr_Fetch(&exc[0], &exc[1], &exc[2])
                    ctl.exc[0], ctl.exc[1], ctl.exc[2] = exc[0], exc[1], exc[2]
                    ctl.stop = 1
    return ctl.stop != 0


cdef inline void *_thread_buffer(Py_ssize_t nbytes, pc_ctl *ctl) noexcept nogil:
    """One thread's block of ``nbytes`` (NULL when 0; sets ``ctl.failed`` when out of memory)."""
    cdef void *buf = NULL
    if nbytes > 0:
        buf = pc_alloc(nbytes)
        if buf == NULL:
            ctl.failed = 1
    return buf


cdef inline void _run_slot(
        void (*item)(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil,
        const void *task, floating *buf, Py_ssize_t s, Py_ssize_t nitems,
        Py_ssize_t nslots, pc_ctl *ctl) noexcept nogil:
    """The items of slot ``s``, in order, until a stop is requested."""
    cdef Py_ssize_t it
    for it in range(s * nitems // nslots, (s + 1) * nitems // nslots):
        if stop_requested(ctl):
            return
        item(task, buf, s, it)


cdef inline int run_items(
        void (*item)(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil,
        const void *task, Py_ssize_t nitems, Py_ssize_t nslots, Py_ssize_t buf_bytes,
        int nthreads) except -1:
    """Run ``item(task, buf, slot, it)`` for every work item ``it < nitems``.

    The one parallel pattern of every path.  The items are cut into
    ``nslots`` fixed ranges (``nslots == nitems``: one item each), handed out
    in runs of consecutive slots (``schedule='dynamic'``, about
    ``CHUNKS_PER_THREAD`` runs per thread, see :func:`_chunk`) to
    ``min(nthreads, nslots)`` OpenMP threads; a slot's items run in order on one thread (the
    conv_weight paths accumulate one partial per slot), so the result does
    not depend on which thread takes which slot.  Handing slots out as the
    threads become free keeps a call going when a thread is descheduled by
    a CPU-bound neighbour (a static split made the others wait for it).
    With one thread no parallel region is entered at all: the OpenMP team
    is not woken (the planner's one-thread rule for small calls relies on
    it).  Each thread allocates one block of ``buf_bytes`` (its buffers,
    see :class:`Layout`) and frees it at the end.

    Between items the threads stop early when a signal handler raised
    (Ctrl-C) or a thread could not allocate its block; the exception
    (``KeyboardInterrupt``, ``MemoryError``) is raised once the threads have
    joined and every buffer is freed.  ``buf`` is the thread's block (NULL
    when ``buf_bytes`` is 0); its type only selects the float or double
    build of ``item``.
    """
    return _run(item, task, nitems, nslots, NULL, 0, buf_bytes, nthreads)


cdef inline int run_passes(
        void (*first)(const void *task, floating *buf, Py_ssize_t slot,
                      Py_ssize_t it) noexcept nogil,
        Py_ssize_t nfirst,
        void (*then)(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil,
        Py_ssize_t nthen, const void *task, Py_ssize_t buf_bytes, int nthreads) except -1:
    """:func:`run_items` of ``first`` (``nfirst`` items), then of ``then``
    (``nthen``), in ONE parallel region: every item of the first pass has
    ended before any of the second starts (the barrier of the first loop),
    and the team is woken once, not twice (with the passive wait policy a
    wake-up costs tens of microseconds).  One slot per item."""
    return _run(first, task, nfirst, nfirst, then, nthen, buf_bytes, nthreads)


cdef enum:
    CHUNKS_PER_THREAD = 8


cdef inline Py_ssize_t _chunk(Py_ssize_t nslots, int nthreads) noexcept nogil:
    """Slots a thread takes at a time: about ``CHUNKS_PER_THREAD`` runs per thread.

    One slot at a time makes every slot an atomic increment of the loop
    counter, whose cache line then moves between the cores: on calls of
    hundreds of ~1 us items (a depthwise 3x3 layer on 7x7 maps, 480 items)
    a two-thread profile had 6-8% of its samples on that increment.  Runs of
    slots cut it to a few increments per thread.  Measured, the two builds
    interleaved (3 rounds, best of 15, ``bench --compare torch``, so with
    torch's spinning OpenMP threads): that layer 0.41-0.46 ms against
    0.52-0.56 ms one slot at a time; seven other layers within the noise.
    With pyconv's passive threads the two were within the noise on ten
    layers (0.36-0.39 against 0.35-0.38 ms on that one).  Eight runs per
    thread still let one thread take over the work of a partner descheduled
    by another process, with at most one run left to wait for.  Which
    thread takes which slot never changes a result.
    """
    return max(1, nslots // (CHUNKS_PER_THREAD * nthreads))


cdef inline int _run(
        void (*item)(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil,
        const void *task, Py_ssize_t nitems, Py_ssize_t nslots,
        void (*then)(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil,
        Py_ssize_t nthen, Py_ssize_t buf_bytes, int nthreads) except -1:
    """The driver of :func:`run_items` and :func:`run_passes` (``then`` NULL: one pass)."""
    cdef pc_ctl ctl
    cdef pc_ctl *c = &ctl
    cdef floating *buf
    cdef Py_ssize_t s, chunk, chunk_then
    if nitems <= 0 and nthen <= 0:
        return 0
    if nslots > nitems or nslots < 1:
        nslots = max(nitems, 0)
    if nthreads > max(nslots, nthen):
        nthreads = <int> max(nslots, nthen)
    if nthreads < 1:
        nthreads = 1
    ctl.stop = 0
    ctl.failed = 0
    ctl.passes.count = ctl.passes.sense = ctl.passes.sleepers = 0
    ctl.done = 0
    ctl.poll = _in_main_thread()
    ctl.interval = PC_POLL_SECONDS
    ctl.next = 0
    ctl.exc[0] = ctl.exc[1] = ctl.exc[2] = NULL
    with nogil:
        ctl.next = pc_now() + PC_POLL_SECONDS
        if nthreads == 1:
            buf = <floating *> _thread_buffer(buf_bytes, c)
            for s in range(nslots):
                _run_slot(item, task, buf, s, nitems, nslots, c)
            for s in range(nthen):
                _run_slot(then, task, buf, s, nthen, nthen, c)
            free(buf)
        else:
            chunk = _chunk(nslots, nthreads)
            chunk_then = _chunk(nthen, nthreads)
            with parallel(num_threads=nthreads):
                buf = <floating *> _thread_buffer(buf_bytes, c)
                for s in prange(nslots, schedule='dynamic', chunksize=chunk):
                    _run_slot(item, task, buf, s, nitems, nslots, c)
                if then != NULL:            # the first pass has ended on every thread
                    pc_team_barrier(c, pc_team_size())
                for s in prange(nthen, schedule='dynamic', chunksize=chunk_then):
                    _run_slot(then, task, buf, s, nthen, nthen, c)
                free(buf)
                pc_team_end(c, pc_team_size())
    if ctl.exc[0] != NULL:
        PyErr_Restore(<PyObject *> ctl.exc[0], <PyObject *> ctl.exc[1],
                      <PyObject *> ctl.exc[2])
        return -1
    if ctl.failed:
        raise MemoryError(f"cython backend: could not allocate {buf_bytes} bytes of "
                          "work buffers per thread")
    return 0

