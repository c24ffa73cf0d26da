# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Compiled kernels of the ``cython`` backend.

The Python side (:mod:`pyconv._cy`) decides *how* a call runs (which path,
tile sizes, number of OpenMP threads, BLAS threads); the functions here
execute that plan with the GIL released for the whole computation.

Geometry is canonicalised to three spatial dims (z, y, x): a 1-d problem is
``(1, 1, L)`` with kernel ``(1, 1, K)``, a 2-d one ``(1, H, W)``.  All index
arithmetic is ``Py_ssize_t``.

Paths
-----
BLAS GEMM paths, one work item = a fixed piece of the problem, items spread over
OpenMP threads with ``prange(schedule='static')``, one private buffer per
thread (allocated inside the parallel block, freed at its end):

* ``conv_gemm``: item = (n, group, tile of output positions).  im2col of the
  tile into the thread's buffer, then ``y_tile = W_g @ col`` written straight
  into the output (``ldc`` = positions per image).  1x1 / stride 1 / no
  padding skips im2col and multiplies the input directly.
* ``conv_transpose_gemm``: item = (n, group, slab of output rows along the
  outermost spatial axis).  The item owns its slab: for each tile of the
  input positions that reach the slab, ``col = W_g^T @ x_tile`` and col2im
  adds the columns that land in the slab.  No zero insertion, no two threads
  ever write the same output element, and the order of the additions is
  fixed by the plan alone.
* ``conv_weight_gemm``: the (n, tile) items are cut into ``slots`` fixed
  ranges; each slot accumulates ``gy_tile @ col^T`` into its own partial
  weight (slot 0 is the output itself), and the partials are summed in slot
  order at the end.  The plan, not the thread count, fixes the slots, so the
  result is bitwise the same for any number of threads.

Micro-kernel paths (no BLAS; the C loops and the register-blocked
micro-kernels are in ``_kernels.h``, built for AVX-512, AVX2+FMA and the
baseline and picked at run time):

* ``conv_implicit``: stride-1 conv, item = (n, group, tile of output rows);
  the input box of the tile is copied zero padded into a slab where each
  kernel tap is a constant offset, and the micro-kernel reads it directly.
  With ``yview`` it writes a strided view (one phase of a conv_transpose).
* ``conv_packed``: strided conv, im2col straight into the micro-kernel's
  panel layout.
* ``conv_weight_implicit``: stride-1 weight gradient on the same slabs, with
  the same fixed slots as ``conv_weight_gemm``.

Direct paths (depthwise / thin groups where a GEMM would be tiny): item = one
output row of channels (``conv``, ``conv_transpose``) or one (co, c) weight
pair (``conv_weight``), with vectorisable row loops from ``_kernels.h``.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from "_kernels.h" nogil:
    int PYCONV_HAVE_OPENMP
    int PYCONV_HAVE_CLONES
    int pc_omp_max_threads()
    const char *pc_simd_level()
    void *pc_alloc(size_t nbytes)
    Py_ssize_t pc_floordiv(Py_ssize_t a, Py_ssize_t b)
    Py_ssize_t pc_ceildiv(Py_ssize_t a, Py_ssize_t b)
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
    ctypedef struct pc_geo:
        Py_ssize_t N, Cin, Cout, G, cin_g, cout_g
        Py_ssize_t isz[3]
        Py_ssize_t osz[3]
        Py_ssize_t ks[3]
        Py_ssize_t st[3]
        Py_ssize_t dl[3]
        Py_ssize_t lo[3]
        Py_ssize_t Pin, Pout, Kp
    void pc_im2col_f(const pc_geo *g, const float *xg, float *col, Py_ssize_t p0,
                     Py_ssize_t tl, const Py_ssize_t *xa, const Py_ssize_t *xb)
    void pc_im2col_d(const pc_geo *g, const double *xg, double *col, Py_ssize_t p0,
                     Py_ssize_t tl, const Py_ssize_t *xa, const Py_ssize_t *xb)
    void pc_col2im_f(const pc_geo *g, const float *col, Py_ssize_t ld, float *yg, Py_ssize_t q0,
                     Py_ssize_t tl, const Py_ssize_t *olo, const Py_ssize_t *ohi,
                     const Py_ssize_t *xa, const Py_ssize_t *xb)
    void pc_col2im_d(const pc_geo *g, const double *col, Py_ssize_t ld, double *yg, Py_ssize_t q0,
                     Py_ssize_t tl, const Py_ssize_t *olo, const Py_ssize_t *ohi,
                     const Py_ssize_t *xa, const Py_ssize_t *xb)
    int pc_uk_level()
    void pc_uk_params(int dbl, int level, Py_ssize_t *mr, Py_ssize_t *nr)
    void pc_pack_w_f(const float *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t mr, float *wpack)
    void pc_pack_w_d(const double *w, Py_ssize_t rows, Py_ssize_t kc, Py_ssize_t mr,
                     double *wpack)
    void pc_im2col_packed_f(const pc_geo *g, const float *xg, float *pack, Py_ssize_t nr,
                            Py_ssize_t p0, Py_ssize_t tl, const Py_ssize_t *xa,
                            const Py_ssize_t *xb)
    void pc_im2col_packed_d(const pc_geo *g, const double *xg, double *pack, Py_ssize_t nr,
                            Py_ssize_t p0, Py_ssize_t tl, const Py_ssize_t *xa,
                            const Py_ssize_t *xb)
    void pc_panels_f(int level, Py_ssize_t kc, Py_ssize_t mrows, const float *wpack,
                     const float *cpack, Py_ssize_t ncols, float *out, Py_ssize_t ldo,
                     const float *bias)
    void pc_panels_d(int level, Py_ssize_t kc, Py_ssize_t mrows, const double *wpack,
                     const double *cpack, Py_ssize_t ncols, double *out, Py_ssize_t ldo,
                     const double *bias)
    ctypedef struct pc_slab:
        Py_ssize_t A, t0, t1
        Py_ssize_t start[3]
        Py_ssize_t len[3]
        Py_ssize_t plane, ncols
    void pc_slab_geo(const pc_geo *g, Py_ssize_t A, Py_ssize_t t0, Py_ssize_t t1, pc_slab *sl)
    void pc_slab_offsets(const pc_geo *g, const pc_slab *sl, Py_ssize_t *off)
    void pc_slab_fill_f(const pc_geo *g, const pc_slab *sl, const float *xg, float *slab,
                        Py_ssize_t tail)
    void pc_slab_fill_d(const pc_geo *g, const pc_slab *sl, const double *xg, double *slab,
                        Py_ssize_t tail)
    void pc_slab_store_f(const pc_geo *g, const pc_slab *sl, const float *ybuf, Py_ssize_t ld,
                         float *yg, const Py_ssize_t *ys, const float *bias)
    void pc_slab_store_d(const pc_geo *g, const pc_slab *sl, const double *ybuf,
                         Py_ssize_t ld, double *yg, const Py_ssize_t *ys, const double *bias)
    void pc_w_params(int dbl, int level, Py_ssize_t *mrw, Py_ssize_t *nrw)
    Py_ssize_t pc_slab_segments(const pc_geo *g, const pc_slab *sl, Py_ssize_t *seg)
    void pc_pack_gy_f(const pc_geo *g, const pc_slab *sl, const float *gyg, Py_ssize_t nrw,
                      float *gyt, Py_ssize_t nval)
    void pc_pack_gy_d(const pc_geo *g, const pc_slab *sl, const double *gyg, Py_ssize_t nrw,
                      double *gyt, Py_ssize_t nval)
    void pc_wpanels_f(int level, Py_ssize_t kc, Py_ssize_t cout, const float *slab,
                      const Py_ssize_t *off, Py_ssize_t nseg, const Py_ssize_t *seg,
                      const float *gyt, Py_ssize_t nval, float *acc)
    void pc_wpanels_d(int level, Py_ssize_t kc, Py_ssize_t cout, const double *slab,
                      const Py_ssize_t *off, Py_ssize_t nseg, const Py_ssize_t *seg,
                      const double *gyt, Py_ssize_t nval, double *acc)
    void pc_ipanels_f(int level, Py_ssize_t kc, Py_ssize_t mrows, const float *wpack,
                      const float *slab, const Py_ssize_t *off, Py_ssize_t ncols, float *out,
                      Py_ssize_t ldo)
    void pc_deint_row_f(const float *src, Py_ssize_t s, Py_ssize_t i0, Py_ssize_t i1,
                        Py_ssize_t L, float *row)
    void pc_store_rows_f(const float *buf, Py_ssize_t ld, float *y, Py_ssize_t ldy,
                         Py_ssize_t rows, Py_ssize_t n, const float *bias)
    void pc_itile_f(int level, const pc_geo *g, const pc_slab *sl, Py_ssize_t kc,
                    Py_ssize_t mrows, const float *wpack, const float *slab,
                    const Py_ssize_t *off, float *out, Py_ssize_t ldo)
    void pc_ipanels_d(int level, Py_ssize_t kc, Py_ssize_t mrows, const double *wpack,
                      const double *slab, const Py_ssize_t *off, Py_ssize_t ncols, double *out,
                      Py_ssize_t ldo)
    void pc_deint_row_d(const double *src, Py_ssize_t s, Py_ssize_t i0, Py_ssize_t i1,
                        Py_ssize_t L, double *row)
    void pc_store_rows_d(const double *buf, Py_ssize_t ld, double *y, Py_ssize_t ldy,
                         Py_ssize_t rows, Py_ssize_t n, const double *bias)
    void pc_itile_d(int level, const pc_geo *g, const pc_slab *sl, Py_ssize_t kc,
                    Py_ssize_t mrows, const double *wpack, const double *slab,
                    const Py_ssize_t *off, double *out, Py_ssize_t ldo)

ctypedef pc_geo Geo


# ---------------------------------------------------------------------------
# build facts

def build_info():
    """Facts fixed at build time / by the CPU: OpenMP, SIMD dispatch."""
    return {
        "openmp": bool(PYCONV_HAVE_OPENMP),
        "omp_max_threads": pc_omp_max_threads(),
        "target_clones": bool(PYCONV_HAVE_CLONES),
        "simd": pc_simd_level().decode("ascii"),
    }


def packed_params(bint dbl):
    """(level, MR, NR) of the packed conv micro-kernel on this CPU.

    level 2: AVX-512, 1: AVX2+FMA, 0: baseline build.
    """
    cdef Py_ssize_t mr = 0, nr = 0
    cdef int level = pc_uk_level()
    pc_uk_params(dbl, level, &mr, &nr)
    return level, mr, nr


def weight_params(bint dbl):
    """(level, MRW, NRW) of the implicit conv_weight micro-kernel on this CPU."""
    cdef Py_ssize_t mrw = 0, nrw = 0
    cdef int level = pc_uk_level()
    pc_w_params(dbl, level, &mrw, &nrw)
    return level, mrw, nrw


# ---------------------------------------------------------------------------
# fused dispatch of the C loops

cdef inline void _axpy(Py_ssize_t n, floating a, const floating *x, Py_ssize_t incx,
                       floating *y) noexcept nogil:
    if floating is float:
        pc_axpy_f(n, a, x, incx, y)
    else:
        pc_axpy_d(n, a, x, incx, y)


cdef inline void _axpy_scatter(Py_ssize_t n, floating a, const floating *x, floating *y,
                               Py_ssize_t incy) noexcept nogil:
    if floating is float:
        pc_axpy_scatter_f(n, a, x, y, incy)
    else:
        pc_axpy_scatter_d(n, a, x, y, incy)


cdef inline floating _dot(Py_ssize_t n, const floating *x, Py_ssize_t incx,
                          const floating *y) noexcept nogil:
    if floating is float:
        return pc_dot_f(n, x, incx, y)
    else:
        return pc_dot_d(n, x, incx, y)


cdef inline void _gather(Py_ssize_t n, const floating *x, Py_ssize_t incx,
                         floating *y) noexcept nogil:
    if floating is float:
        pc_gather_f(n, x, incx, y)
    else:
        pc_gather_d(n, x, incx, y)


cdef inline void _add(Py_ssize_t n, const floating *x, floating *y) noexcept nogil:
    if floating is float:
        pc_add_f(n, x, y)
    else:
        pc_add_d(n, x, y)


cdef inline void _fill(Py_ssize_t n, floating v, floating *y) noexcept nogil:
    if floating is float:
        pc_fill_f(n, v, y)
    else:
        pc_fill_d(n, v, y)


# ---------------------------------------------------------------------------
# row-major GEMM over scipy's BLAS

cdef inline void _gemm(bint trans_a, bint trans_b, int m, int n, int k,
                       const floating *a, int lda, const floating *b, int ldb,
                       floating beta, floating *c, int ldc) noexcept nogil:
    """Row-major ``C = op(A) @ op(B) + beta*C`` (C is m x n).

    Fortran BLAS is column-major: a row-major matrix is its transpose, so
    the row-major product is the column-major ``C^T = op(B)^T @ op(A)^T``.
    """
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    cdef floating one = 1.0
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &one, <float *> b, &ldb, <float *> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &one, <double *> b, &ldb, <double *> a, &lda,
              &beta, c, &ldc)


# ---------------------------------------------------------------------------
# geometry

cdef Geo _geo(tuple t) except *:
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


cdef inline void _tap_range(Py_ssize_t off, Py_ssize_t s, Py_ssize_t tlo, Py_ssize_t thi,
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


cdef void _x_ranges(Geo *g, bint transposed, Py_ssize_t tlo, Py_ssize_t thi,
                    Py_ssize_t *xa, Py_ssize_t *xb) noexcept nogil:
    """Per kernel tap kx, the range of source x positions with an in-range target.

    conv: output ox reads input ox*s - lo + kx*d, which must be in [0, I).
    transposed: input ix writes output ix*s - lo + kx*d, in [tlo, thi).
    """
    cdef Py_ssize_t kx
    for kx in range(g.ks[2]):
        if transposed:
            _tap_range(kx * g.dl[2] - g.lo[2], g.st[2], tlo, thi, g.isz[2], &xa[kx], &xb[kx])
        else:
            _tap_range(kx * g.dl[2] - g.lo[2], g.st[2], 0, g.isz[2], g.osz[2], &xa[kx], &xb[kx])


# ---------------------------------------------------------------------------
# im2col / col2im on tiles of flat positions (C loops in _kernels.h)

cdef inline void _im2col(const floating *xg, floating *col, Py_ssize_t p0, Py_ssize_t tl,
                         Geo *g, const Py_ssize_t *xa, const Py_ssize_t *xb) noexcept nogil:
    """im2col of one tile of output positions (``pc_im2col_*`` in _kernels.h)."""
    if floating is float:
        pc_im2col_f(g, xg, col, p0, tl, xa, xb)
    else:
        pc_im2col_d(g, xg, col, p0, tl, xa, xb)


cdef inline void _col2im(const floating *col, Py_ssize_t ld, floating *yg, Py_ssize_t q0,
                         Py_ssize_t tl,
                         Geo *g, const Py_ssize_t *olo, const Py_ssize_t *ohi,
                         const Py_ssize_t *xa, const Py_ssize_t *xb) noexcept nogil:
    """col2im of one tile of input positions into the owned box (``pc_col2im_*``)."""
    if floating is float:
        pc_col2im_f(g, col, ld, yg, q0, tl, olo, ohi, xa, xb)
    else:
        pc_col2im_d(g, col, ld, yg, q0, tl, olo, ohi, xa, xb)


cdef inline void _add_bias_rows(floating *c, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld,
                                const floating *bias) noexcept nogil:
    cdef Py_ssize_t r, i
    cdef floating v
    for r in range(rows):
        v = bias[r]
        for i in range(cols):
            c[r * ld + i] += v


# ---------------------------------------------------------------------------
# conv

def conv_gemm(const floating[::1] x, const floating[::1] w, const floating[::1] b,
              floating[::1] y, tuple geo, Py_ssize_t tile, bint pointwise, int nthreads):
    """Forward conv by tiled im2col + GEMM.  ``b`` empty = no bias."""
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t ntiles = (g.Pout + tile - 1) // tile
    cdef Py_ssize_t nitems = g.N * g.G * ntiles
    cdef Py_ssize_t Kc = g.cin_g * g.Kp
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * g.ks[2] * sizeof(Py_ssize_t))
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef Py_ssize_t it, n, grp, t, p0, tl
    cdef floating *col
    cdef const floating *bmat
    cdef floating *cmat
    cdef floating zero = 0
    cdef int ldb
    if xa == NULL:
        raise MemoryError()
    try:
        with nogil:
            _x_ranges(&g, False, 0, 0, xa, xa + g.ks[2])
            with parallel(num_threads=nthreads):
                col = NULL
                if not pointwise:
                    col = <floating *> pc_alloc(Kc * tile * sizeof(floating))
                    if col == NULL:
                        failed_p[0] = 1
                for it in prange(nitems, schedule='static'):
                    if not pointwise and col == NULL:
                        continue
                    t = it % ntiles
                    grp = (it // ntiles) % g.G
                    n = it // (ntiles * g.G)
                    p0 = t * tile
                    tl = g.Pout - p0
                    if tl > tile:
                        tl = tile
                    if pointwise:
                        bmat = xp + (n * g.Cin + grp * g.cin_g) * g.Pin + p0
                        ldb = <int> g.Pin
                    else:
                        _im2col(xp + (n * g.Cin + grp * g.cin_g) * g.Pin, col, p0, tl,
                                &g, xa, xa + g.ks[2])
                        bmat = col
                        ldb = <int> tl
                    cmat = yp + (n * g.Cout + grp * g.cout_g) * g.Pout + p0
                    _gemm(False, False, <int> g.cout_g, <int> tl, <int> Kc,
                          wp + grp * g.cout_g * Kc, <int> Kc, bmat, ldb, zero,
                          cmat, <int> g.Pout)
                    if has_bias:
                        _add_bias_rows(cmat, g.cout_g, tl, g.Pout, bp + grp * g.cout_g)
                free(col)
    finally:
        free(xa)
    if failed:
        raise MemoryError("cython backend: could not allocate the im2col buffer")


def conv_packed(const floating[::1] x, const floating[::1] w, const floating[::1] b,
                floating[::1] y, tuple geo, Py_ssize_t tile, int level, Py_ssize_t mr,
                Py_ssize_t nr, int nthreads):
    """Forward conv by packed im2col + register-blocked micro-kernel.

    Item = (n, group, tile of output positions), as in :func:`conv_gemm`, but
    the tile is im2col'ed straight into NR-wide panels and multiplied by the
    weights packed once per call into MR-row panels (no BLAS: no second
    packing of the columns).
    """
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t ntiles = (g.Pout + tile - 1) // tile
    cdef Py_ssize_t nitems = g.N * g.G * ntiles
    cdef Py_ssize_t Kc = g.cin_g * g.Kp
    cdef Py_ssize_t mpad = (g.cout_g + mr - 1) // mr * mr
    cdef Py_ssize_t tpad = (tile + nr - 1) // nr * nr
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * g.ks[2] * sizeof(Py_ssize_t))
    cdef floating *wpack = <floating *> pc_alloc(g.G * mpad * Kc * sizeof(floating))
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef Py_ssize_t it, n, grp, t, p0, tl
    cdef floating *pack
    if xa == NULL or wpack == NULL:
        free(xa)
        free(wpack)
        raise MemoryError()
    try:
        with nogil:
            _x_ranges(&g, False, 0, 0, xa, xa + g.ks[2])
            for grp in range(g.G):
                if floating is float:
                    pc_pack_w_f(wp + grp * g.cout_g * Kc, g.cout_g, Kc, mr,
                                wpack + grp * mpad * Kc)
                else:
                    pc_pack_w_d(wp + grp * g.cout_g * Kc, g.cout_g, Kc, mr,
                                wpack + grp * mpad * Kc)
            with parallel(num_threads=nthreads):
                pack = <floating *> pc_alloc(Kc * tpad * sizeof(floating))
                if pack == NULL:
                    failed_p[0] = 1
                for it in prange(nitems, schedule='static'):
                    if pack == NULL:
                        continue
                    t = it % ntiles
                    grp = (it // ntiles) % g.G
                    n = it // (ntiles * g.G)
                    p0 = t * tile
                    tl = g.Pout - p0
                    if tl > tile:
                        tl = tile
                    if floating is float:
                        pc_im2col_packed_f(&g, xp + (n * g.Cin + grp * g.cin_g) * g.Pin, pack, nr,
                                           p0, tl, xa, xa + g.ks[2])
                        pc_panels_f(level, Kc, g.cout_g, wpack + grp * mpad * Kc, pack, tl,
                                    yp + (n * g.Cout + grp * g.cout_g) * g.Pout + p0, g.Pout,
                                    bp + grp * g.cout_g if has_bias else NULL)
                    else:
                        pc_im2col_packed_d(&g, xp + (n * g.Cin + grp * g.cin_g) * g.Pin, pack, nr,
                                           p0, tl, xa, xa + g.ks[2])
                        pc_panels_d(level, Kc, g.cout_g, wpack + grp * mpad * Kc, pack, tl,
                                    yp + (n * g.Cout + grp * g.cout_g) * g.Pout + p0, g.Pout,
                                    bp + grp * g.cout_g if has_bias else NULL)
                free(pack)
    finally:
        free(xa)
        free(wpack)
    if failed:
        raise MemoryError("cython backend: could not allocate the im2col buffer")


cdef inline Py_ssize_t _outer_axis(Geo *g) noexcept nogil:
    """The outermost canonical axis that is a real spatial dim of the problem."""
    cdef Py_ssize_t A = 0
    while A < 2 and g.osz[A] == 1 and g.isz[A] == 1 and g.ks[A] == 1:
        A += 1
    return A


def conv_implicit(const floating[::1] x, const floating[::1] w, const floating[::1] b,
                  floating[::1] y, tuple geo, Py_ssize_t rows, int level, Py_ssize_t mr,
                  Py_ssize_t nr, int nthreads, tuple yview=None):
    """Stride-1 forward conv by implicit GEMM over a zero-padded input slab.

    Item = (n, group, tile of ``rows`` output rows along the outermost axis).
    The item copies the input box its rows read into a padded slab, runs
    the micro-kernel with per-tap offsets into the slab (no im2col), and
    copies the valid outputs, plus bias, into ``y``.

    ``yview = (offset, image, channel, z, y, x)`` (element strides) writes
    the output into a strided view of ``y`` instead (the phases of a
    transposed conv); by default ``y`` is the contiguous output.
    """
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t A = _outer_axis(&g)
    cdef Py_ssize_t ntiles = (g.osz[A] + rows - 1) // rows
    cdef Py_ssize_t nitems = g.N * g.G * ntiles
    cdef Py_ssize_t Kc = g.cin_g * g.Kp
    cdef Py_ssize_t mpad = (g.cout_g + mr - 1) // mr * mr
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef floating *wpack = <floating *> pc_alloc(g.G * mpad * Kc * sizeof(floating))
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef pc_slab big
    cdef Py_ssize_t it, n, grp, t, tail, slab_n, ybuf_n
    cdef floating *slab
    cdef floating *ybuf
    cdef Py_ssize_t *off
    cdef pc_slab *sl   # per thread (a struct in the prange body would be shared)
    cdef Py_ssize_t yoff, yimg
    cdef Py_ssize_t ys[4]
    if yview is None:
        yoff, yimg = 0, g.Cout * g.Pout
        ys[0], ys[1], ys[2], ys[3] = g.Pout, g.osz[1] * g.osz[2], g.osz[2], 1
    else:
        yoff, yimg, ys[0], ys[1], ys[2], ys[3] = yview
    if wpack == NULL:
        raise MemoryError()
    # buffer sizes from a full tile; the tail covers the over-reads of the
    # thrown-away virtual positions and the last partial panel
    pc_slab_geo(&g, A, 0, rows if rows < g.osz[A] else g.osz[A], &big)
    tail = ((g.ks[1] - 1) * g.dl[1] + 1) * big.len[2] + (g.ks[2] - 1) * g.dl[2] + nr
    slab_n = g.cin_g * big.plane + tail
    ybuf_n = g.cout_g * ((big.ncols + nr - 1) // nr * nr + nr)
    try:
        with nogil:
            for grp in range(g.G):
                if floating is float:
                    pc_pack_w_f(wp + grp * g.cout_g * Kc, g.cout_g, Kc, mr,
                                wpack + grp * mpad * Kc)
                else:
                    pc_pack_w_d(wp + grp * g.cout_g * Kc, g.cout_g, Kc, mr,
                                wpack + grp * mpad * Kc)
            with parallel(num_threads=nthreads):
                slab = <floating *> pc_alloc(slab_n * sizeof(floating))
                ybuf = <floating *> pc_alloc(ybuf_n * sizeof(floating))
                off = <Py_ssize_t *> pc_alloc(Kc * sizeof(Py_ssize_t))
                sl = <pc_slab *> pc_alloc(sizeof(pc_slab))
                if slab == NULL or ybuf == NULL or off == NULL or sl == NULL:
                    failed_p[0] = 1
                for it in prange(nitems, schedule='static'):
                    if slab == NULL or ybuf == NULL or off == NULL or sl == NULL:
                        continue
                    t = it % ntiles
                    grp = (it // ntiles) % g.G
                    n = it // (ntiles * g.G)
                    pc_slab_geo(&g, A, t * rows,
                                (t + 1) * rows if (t + 1) * rows < g.osz[A] else g.osz[A], sl)
                    pc_slab_offsets(&g, sl, off)
                    if floating is float:
                        pc_slab_fill_f(&g, sl, xp + (n * g.Cin + grp * g.cin_g) * g.Pin, slab,
                                       slab_n - g.cin_g * sl[0].plane)
                        pc_itile_f(level, &g, sl, Kc, g.cout_g, wpack + grp * mpad * Kc, slab,
                                   off, ybuf, (sl[0].ncols + nr - 1) // nr * nr + nr)
                        pc_slab_store_f(&g, sl, ybuf, (sl[0].ncols + nr - 1) // nr * nr + nr,
                                        yp + yoff + n * yimg + grp * g.cout_g * ys[0], ys,
                                        bp + grp * g.cout_g if has_bias else NULL)
                    else:
                        pc_slab_fill_d(&g, sl, xp + (n * g.Cin + grp * g.cin_g) * g.Pin, slab,
                                       slab_n - g.cin_g * sl[0].plane)
                        pc_itile_d(level, &g, sl, Kc, g.cout_g, wpack + grp * mpad * Kc, slab,
                                   off, ybuf, (sl[0].ncols + nr - 1) // nr * nr + nr)
                        pc_slab_store_d(&g, sl, ybuf, (sl[0].ncols + nr - 1) // nr * nr + nr,
                                        yp + yoff + n * yimg + grp * g.cout_g * ys[0], ys,
                                        bp + grp * g.cout_g if has_bias else NULL)
                free(slab)
                free(ybuf)
                free(off)
                free(sl)
    finally:
        free(wpack)
    if failed:
        raise MemoryError("cython backend: could not allocate the slab buffers")


def conv_strided1d(const floating[::1] x, const floating[::1] w, const floating[::1] b,
                   floating[::1] y, tuple geo, Py_ssize_t tile, int level, Py_ssize_t mr,
                   Py_ssize_t nr, int nthreads):
    """1-d conv with a stride s > 1 by implicit GEMM over a de-interleaved slab.

    Tap k reads ``x[s*o + t_k]`` with ``t_k = k*d - lo = s*a_k + r_k``
    (``0 <= r_k < s``).  Item = (n, group, tile of ``tile`` outputs from o0):
    the slab holds, per input channel c and residue r, the row
    ``S[c, r, u] = x[c, s*(o0 + u + a_min) + r]`` (zero outside the input),
    so that tap (c, k) is the constant offset ``(c*s + r_k)*L + a_k - a_min``
    and the micro-kernel reads the slab directly (one copy of the input per
    tile, no im2col).  The valid outputs, plus bias, are copied into ``y``.
    """
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t s = g.st[2], lo = g.lo[2], d = g.dl[2], K = g.ks[2]
    cdef Py_ssize_t Lo = g.osz[2], Li = g.isz[2]
    cdef Py_ssize_t ntiles = (Lo + tile - 1) // tile
    cdef Py_ssize_t nitems = g.N * g.G * ntiles
    cdef Py_ssize_t Kc = g.cin_g * K
    cdef Py_ssize_t mpad = (g.cout_g + mr - 1) // mr * mr
    cdef Py_ssize_t amin = pc_floordiv(-lo, s)
    cdef Py_ssize_t amax = pc_floordiv((K - 1) * d - lo, s)
    cdef Py_ssize_t L = tile + amax - amin
    cdef Py_ssize_t slab_n = g.cin_g * s * L + nr
    cdef Py_ssize_t ld = (tile + nr - 1) // nr * nr
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef floating *wpack = <floating *> pc_alloc(g.G * mpad * Kc * sizeof(floating))
    cdef Py_ssize_t *off = <Py_ssize_t *> malloc(Kc * sizeof(Py_ssize_t))
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef Py_ssize_t it, n, grp, t, o0, tl, c, r, u, i0, i1, k, t_k, nfull
    cdef floating *yr
    cdef floating *slab
    cdef floating *ybuf
    cdef floating *row
    cdef const floating *xr
    if wpack == NULL or off == NULL:
        free(wpack)
        free(off)
        raise MemoryError()
    for c in range(g.cin_g):
        for k in range(K):
            t_k = k * d - lo
            off[c * K + k] = (c * s + (t_k - pc_floordiv(t_k, s) * s)) * L \
                + pc_floordiv(t_k, s) - amin
    try:
        with nogil:
            for grp in range(g.G):
                if floating is float:
                    pc_pack_w_f(wp + grp * g.cout_g * Kc, g.cout_g, Kc, mr,
                                wpack + grp * mpad * Kc)
                else:
                    pc_pack_w_d(wp + grp * g.cout_g * Kc, g.cout_g, Kc, mr,
                                wpack + grp * mpad * Kc)
            with parallel(num_threads=nthreads):
                slab = <floating *> pc_alloc(slab_n * sizeof(floating))
                ybuf = <floating *> pc_alloc(g.cout_g * ld * sizeof(floating))
                if slab == NULL or ybuf == NULL:
                    failed_p[0] = 1
                for it in prange(nitems, schedule='static'):
                    if slab == NULL or ybuf == NULL:
                        continue
                    t = it % ntiles
                    grp = (it // ntiles) % g.G
                    n = it // (ntiles * g.G)
                    o0 = t * tile
                    tl = Lo - o0
                    if tl > tile:
                        tl = tile
                    # slab rows: u valid where 0 <= s*(o0 + u + amin) + r < Li
                    for c in range(g.cin_g):
                        xr = xp + (n * g.Cin + grp * g.cin_g + c) * Li
                        for r in range(s):
                            row = slab + (c * s + r) * L
                            i0 = pc_ceildiv(-r, s) - o0 - amin
                            i1 = pc_floordiv(Li - 1 - r, s) + 1 - o0 - amin
                            if i0 < 0:
                                i0 = 0
                            if i1 > L:
                                i1 = L
                            if i1 < i0:
                                i1 = i0
                            if floating is float:
                                pc_deint_row_f(xr + s * (o0 + amin) + r, s, i0, i1, L, row)
                            else:
                                pc_deint_row_d(xr + s * (o0 + amin) + r, s, i0, i1, L, row)
                    for u in range(nr):
                        slab[g.cin_g * s * L + u] = 0
                    # whole panels straight into y (they end inside the tile), the
                    # last partial panel through ybuf
                    nfull = tl // nr * nr
                    yr = yp + (n * g.Cout + grp * g.cout_g) * Lo + o0
                    if floating is float:
                        if nfull > 0:
                            pc_ipanels_f(level, Kc, g.cout_g, wpack + grp * mpad * Kc, slab,
                                         off, nfull, yr, Lo)
                        if tl > nfull:
                            pc_ipanels_f(level, Kc, g.cout_g, wpack + grp * mpad * Kc,
                                         slab + nfull, off, tl - nfull, ybuf, ld)
                            pc_store_rows_f(ybuf, ld, yr + nfull, Lo, g.cout_g, tl - nfull,
                                            NULL)
                        if has_bias:
                            pc_store_rows_f(yr, Lo, yr, Lo, g.cout_g, tl, bp + grp * g.cout_g)
                    else:
                        if nfull > 0:
                            pc_ipanels_d(level, Kc, g.cout_g, wpack + grp * mpad * Kc, slab,
                                         off, nfull, yr, Lo)
                        if tl > nfull:
                            pc_ipanels_d(level, Kc, g.cout_g, wpack + grp * mpad * Kc,
                                         slab + nfull, off, tl - nfull, ybuf, ld)
                            pc_store_rows_d(ybuf, ld, yr + nfull, Lo, g.cout_g, tl - nfull,
                                            NULL)
                        if has_bias:
                            pc_store_rows_d(yr, Lo, yr, Lo, g.cout_g, tl, bp + grp * g.cout_g)
                free(slab)
                free(ybuf)
    finally:
        free(wpack)
        free(off)
    if failed:
        raise MemoryError("cython backend: could not allocate the slab buffers")


cdef void _conv_direct_row(const floating *xp, const floating *wp, floating *yp, Geo *g,
                           Py_ssize_t n, Py_ssize_t co, floating bias,
                           const Py_ssize_t *xa, const Py_ssize_t *xb) noexcept nogil:
    """y[n, co, :] = bias + sum_{c, k} w[co, c, k] * x[n, ., o*s - lo + k*d]."""
    cdef Py_ssize_t grp = co // g.cout_g
    cdef floating *yb = yp + (n * g.Cout + co) * g.Pout
    cdef Py_ssize_t oz, oy, c, kz, ky, kx, iz, iy, a, bb
    cdef const floating *xb_
    cdef const floating *wb
    cdef const floating *xrow
    cdef floating *yrow
    _fill(g.Pout, bias, yb)
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
                            a = xa[kx]
                            bb = xb[kx]
                            if bb > a:
                                _axpy(bb - a, wb[(kz * g.ks[1] + ky) * g.ks[2] + kx],
                                      xrow + a * g.st[2] - g.lo[2] + kx * g.dl[2], g.st[2],
                                      yrow + a)


def conv_direct(const floating[::1] x, const floating[::1] w, const floating[::1] b,
                floating[::1] y, tuple geo, int nthreads):
    """Forward conv by direct row loops; item = one (n, co) output channel."""
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t nitems = g.N * g.Cout
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * g.ks[2] * sizeof(Py_ssize_t))
    cdef Py_ssize_t it, co
    if xa == NULL:
        raise MemoryError()
    try:
        with nogil:
            _x_ranges(&g, False, 0, 0, xa, xa + g.ks[2])
            for it in prange(nitems, schedule='static', num_threads=nthreads):
                co = it % g.Cout
                _conv_direct_row(xp, wp, yp, &g, it // g.Cout, co,
                                 bp[co] if has_bias else <floating> 0, xa, xa + g.ks[2])
    finally:
        free(xa)


# ---------------------------------------------------------------------------
# conv_transpose

def conv_transpose_gemm(const floating[::1] x, const floating[::1] w, const floating[::1] b,
                        floating[::1] y, tuple geo, Py_ssize_t tile, Py_ssize_t nslabs,
                        Py_ssize_t nb, bint pointwise, int nthreads):
    """Transposed conv by GEMM + col2im, item = (n, group, output slab).

    ``nb > 1`` (small images, one slab): item = (block of ``nb`` images,
    group); the images' inputs are packed side by side so that one GEMM of
    ``nb * Pin`` columns serves them all (the weight is packed by BLAS once
    per item instead of once per image).

    ``pointwise`` (1x1, stride 1, no crop, same size): ``y = W^T x`` straight
    into the output, item = (n, group, tile).
    """
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t Mt = g.cout_g * g.Kp
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef Py_ssize_t A, innerI, innerO, nitems, ntiles, it, n, grp, slab, t0, t1, ia, ib
    cdef Py_ssize_t q, qend, tl, j, p0, ax
    cdef floating *col
    cdef Py_ssize_t *rng
    cdef floating *cmat
    cdef floating *pack
    cdef Py_ssize_t nblk, n0, nbi, bi, c, ldp
    cdef floating zero = 0
    # slab axis: the outermost axis that is a real spatial dim of the problem
    A = 0
    while A < 2 and g.osz[A] == 1 and g.isz[A] == 1 and g.ks[A] == 1:
        A += 1
    innerI = 1
    innerO = 1
    for ax in range(A + 1, 3):
        innerI *= g.isz[ax]
        innerO *= g.osz[ax]
    if pointwise:
        ntiles = (g.Pin + tile - 1) // tile
        nitems = g.N * g.G * ntiles
        with nogil:
            for it in prange(nitems, schedule='static', num_threads=nthreads):
                slab = it % ntiles
                grp = (it // ntiles) % g.G
                n = it // (ntiles * g.G)
                p0 = slab * tile
                tl = g.Pin - p0
                if tl > tile:
                    tl = tile
                cmat = yp + (n * g.Cout + grp * g.cout_g) * g.Pout + p0
                _gemm(True, False, <int> g.cout_g, <int> tl, <int> g.cin_g,
                      wp + grp * g.cin_g * g.cout_g, <int> g.cout_g,
                      xp + (n * g.Cin + grp * g.cin_g) * g.Pin + p0, <int> g.Pin,
                      zero, cmat, <int> g.Pout)
                if has_bias:
                    _add_bias_rows(cmat, g.cout_g, tl, g.Pout, bp + grp * g.cout_g)
        return
    if nb > 1:
        nblk = (g.N + nb - 1) // nb
        nitems = nblk * g.G
        with nogil, parallel(num_threads=nthreads):
            col = <floating *> pc_alloc(Mt * nb * g.Pin * sizeof(floating))
            pack = <floating *> pc_alloc(g.cin_g * nb * g.Pin * sizeof(floating))
            rng = <Py_ssize_t *> malloc((6 + 2 * g.ks[2]) * sizeof(Py_ssize_t))
            if col == NULL or pack == NULL or rng == NULL:
                failed_p[0] = 1
            for it in prange(nitems, schedule='static'):
                if col == NULL or pack == NULL or rng == NULL:
                    continue
                grp = it % g.G
                n0 = (it // g.G) * nb
                nbi = g.N - n0
                if nbi > nb:
                    nbi = nb
                ldp = nbi * g.Pin
                for ax in range(3):
                    rng[ax] = 0
                    rng[3 + ax] = g.osz[ax]
                _x_ranges(&g, True, 0, g.osz[2], rng + 6, rng + 6 + g.ks[2])
                for bi in range(nbi):
                    for c in range(g.cin_g):
                        _gather(g.Pin, xp + ((n0 + bi) * g.Cin + grp * g.cin_g + c) * g.Pin, 1,
                                pack + c * ldp + bi * g.Pin)
                _gemm(True, False, <int> Mt, <int> ldp, <int> g.cin_g,
                      wp + grp * g.cin_g * Mt, <int> Mt, pack, <int> ldp, zero, col, <int> ldp)
                for bi in range(nbi):
                    for j in range(g.cout_g):
                        _fill(g.Pout, bp[grp * g.cout_g + j] if has_bias else <floating> 0,
                              yp + ((n0 + bi) * g.Cout + grp * g.cout_g + j) * g.Pout)
                    _col2im(col + bi * g.Pin, ldp,
                            yp + ((n0 + bi) * g.Cout + grp * g.cout_g) * g.Pout, 0, g.Pin, &g,
                            rng, rng + 3, rng + 6, rng + 6 + g.ks[2])
            free(col)
            free(pack)
            free(rng)
        if failed:
            raise MemoryError("cython backend: could not allocate the col2im buffer")
        return
    nitems = g.N * g.G * nslabs
    with nogil, parallel(num_threads=nthreads):
        col = <floating *> pc_alloc(Mt * tile * sizeof(floating))
        rng = <Py_ssize_t *> malloc((6 + 2 * g.ks[2]) * sizeof(Py_ssize_t))
        if col == NULL or rng == NULL:
            failed_p[0] = 1
        for it in prange(nitems, schedule='static'):
            if col == NULL or rng == NULL:
                continue
            slab = it % nslabs
            grp = (it // nslabs) % g.G
            n = it // (nslabs * g.G)
            t0 = slab * g.osz[A] // nslabs
            t1 = (slab + 1) * g.osz[A] // nslabs
            # owned box: full range on every axis but A
            for ax in range(3):
                rng[ax] = 0
                rng[3 + ax] = g.osz[ax]
            rng[A] = t0
            rng[3 + A] = t1
            _x_ranges(&g, True, rng[2], rng[5], rng + 6, rng + 6 + g.ks[2])
            # initialise the owned slab of every output channel of the group
            for j in range(g.cout_g):
                _fill((t1 - t0) * innerO,
                      bp[grp * g.cout_g + j] if has_bias else <floating> 0,
                      yp + (n * g.Cout + grp * g.cout_g + j) * g.Pout + t0 * innerO)
            # input rows (along A) that reach [t0, t1)
            ia = pc_ceildiv(t0 + g.lo[A] - (g.ks[A] - 1) * g.dl[A], g.st[A])
            ib = pc_floordiv(t1 - 1 + g.lo[A], g.st[A]) + 1
            if ia < 0:
                ia = 0
            if ib > g.isz[A]:
                ib = g.isz[A]
            q = ia * innerI
            qend = ib * innerI
            while q < qend:
                tl = qend - q
                if tl > tile:
                    tl = tile
                _gemm(True, False, <int> Mt, <int> tl, <int> g.cin_g,
                      wp + grp * g.cin_g * Mt, <int> Mt,
                      xp + (n * g.Cin + grp * g.cin_g) * g.Pin + q, <int> g.Pin,
                      zero, col, <int> tl)
                _col2im(col, tl, yp + (n * g.Cout + grp * g.cout_g) * g.Pout, q, tl, &g,
                        rng, rng + 3, rng + 6, rng + 6 + g.ks[2])
                q = q + tl
        free(col)
        free(rng)
    if failed:
        raise MemoryError("cython backend: could not allocate the col2im buffer")


cdef void _conv_transpose_direct_row(const floating *xp, const floating *wp, floating *yp,
                                     Geo *g, Py_ssize_t n, Py_ssize_t co, floating bias,
                                     const Py_ssize_t *xa, const Py_ssize_t *xb) noexcept nogil:
    """y[n, co, :] = bias + scatter of every input of the group through w[ci, j, k]."""
    cdef Py_ssize_t grp = co // g.cout_g
    cdef Py_ssize_t j = co - grp * g.cout_g
    cdef floating *yb = yp + (n * g.Cout + co) * g.Pout
    cdef Py_ssize_t c, ci, iz, iy, kz, ky, kx, tz, ty, a, bb
    cdef const floating *xc
    cdef const floating *wb
    cdef const floating *xrow
    cdef floating *yrow
    _fill(g.Pout, bias, yb)
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
                            a = xa[kx]
                            bb = xb[kx]
                            if bb > a:
                                _axpy_scatter(bb - a, wb[(kz * g.ks[1] + ky) * g.ks[2] + kx],
                                              xrow + a,
                                              yrow + a * g.st[2] - g.lo[2] + kx * g.dl[2], g.st[2])


def conv_transpose_direct(const floating[::1] x, const floating[::1] w, const floating[::1] b,
                          floating[::1] y, tuple geo, int nthreads):
    """Transposed conv by direct scatter loops; item = one (n, co) output channel."""
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t nitems = g.N * g.Cout
    cdef bint has_bias = b.shape[0] > 0
    cdef const floating *xp = &x[0]
    cdef const floating *wp = &w[0]
    cdef const floating *bp = &b[0] if has_bias else NULL
    cdef floating *yp = &y[0]
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * g.ks[2] * sizeof(Py_ssize_t))
    cdef Py_ssize_t it, co
    if xa == NULL:
        raise MemoryError()
    try:
        with nogil:
            _x_ranges(&g, True, 0, g.osz[2], xa, xa + g.ks[2])
            for it in prange(nitems, schedule='static', num_threads=nthreads):
                co = it % g.Cout
                _conv_transpose_direct_row(xp, wp, yp, &g, it // g.Cout, co,
                                           bp[co] if has_bias else <floating> 0,
                                           xa, xa + g.ks[2])
    finally:
        free(xa)


# ---------------------------------------------------------------------------
# conv_weight

def conv_weight_gemm(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                     floating[::1] part, tuple geo, Py_ssize_t tile, Py_ssize_t nslots,
                     bint pointwise, int nthreads):
    """Weight gradient by im2col + GEMM with a fixed-order reduction.

    ``gw`` must be zeroed; ``part`` holds ``nslots - 1`` zeroed partials.
    """
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t ntiles = (g.Pout + tile - 1) // tile
    cdef Py_ssize_t nitems = g.N * ntiles
    cdef Py_ssize_t Kc = g.cin_g * g.Kp
    cdef Py_ssize_t W = g.Cout * Kc
    cdef const floating *xp = &x[0]
    cdef const floating *gyp = &gy[0]
    cdef floating *gwp = &gw[0]
    cdef floating *pp = &part[0] if part.shape[0] > 0 else NULL
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * g.ks[2] * sizeof(Py_ssize_t))
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef Py_ssize_t s, it, n, grp, t, p0, tl, q_lo, q_hi, e, e0, e1, nchunks
    cdef floating *col
    cdef floating *acc
    cdef const floating *bmat
    cdef floating one = 1
    cdef int ldb
    cdef Py_ssize_t CH = 4096
    if xa == NULL:
        raise MemoryError()
    try:
        with nogil:
            _x_ranges(&g, False, 0, 0, xa, xa + g.ks[2])
            with parallel(num_threads=nthreads):
                col = NULL
                if not pointwise:
                    col = <floating *> pc_alloc(Kc * tile * sizeof(floating))
                    if col == NULL:
                        failed_p[0] = 1
                for s in prange(nslots, schedule='static'):
                    if not pointwise and col == NULL:
                        continue
                    acc = gwp if s == 0 else pp + (s - 1) * W
                    q_lo = s * nitems // nslots
                    q_hi = (s + 1) * nitems // nslots
                    for it in range(q_lo, q_hi):
                        n = it // ntiles
                        t = it - n * ntiles
                        p0 = t * tile
                        tl = g.Pout - p0
                        if tl > tile:
                            tl = tile
                        for grp in range(g.G):
                            if pointwise:
                                bmat = xp + (n * g.Cin + grp * g.cin_g) * g.Pin + p0
                                ldb = <int> g.Pin
                            else:
                                _im2col(xp + (n * g.Cin + grp * g.cin_g) * g.Pin, col, p0, tl,
                                        &g, xa, xa + g.ks[2])
                                bmat = col
                                ldb = <int> tl
                            # acc_g (cout_g x Kc) += gy_tile (cout_g x tl) @ col^T (tl x Kc)
                            _gemm(False, True, <int> g.cout_g, <int> Kc, <int> tl,
                                  gyp + (n * g.Cout + grp * g.cout_g) * g.Pout + p0,
                                  <int> g.Pout, bmat, ldb, one,
                                  acc + grp * g.cout_g * Kc, <int> Kc)
                free(col)
            # fixed-order reduction of the partials: gw += part[0]; gw += part[1]; ...
            if nslots > 1:
                nchunks = (W + CH - 1) // CH
                for e in prange(nchunks, schedule='static', num_threads=nthreads):
                    e0 = e * CH
                    e1 = e0 + CH
                    if e1 > W:
                        e1 = W
                    for s in range(nslots - 1):
                        _add(e1 - e0, pp + s * W + e0, gwp + e0)
    finally:
        free(xa)
    if failed:
        raise MemoryError("cython backend: could not allocate the im2col buffer")


def conv_weight_implicit(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                         floating[::1] part, tuple geo, Py_ssize_t rows, Py_ssize_t nslots,
                         int level, Py_ssize_t nrw, int nthreads):
    """Stride-1 weight gradient on padded input slabs (no im2col, no BLAS).

    Items = (n, tile of ``rows`` output rows); they are cut into ``nslots``
    fixed ranges, each accumulated in order into its own partial (slot 0 is
    ``gw``; ``part`` holds the other ``nslots - 1``, zeroed), and the
    partials are summed in slot order: bitwise the same for any thread count.
    """
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t A = _outer_axis(&g)
    cdef Py_ssize_t ntiles = (g.osz[A] + rows - 1) // rows
    cdef Py_ssize_t nitems = g.N * ntiles
    cdef Py_ssize_t Kc = g.cin_g * g.Kp
    cdef Py_ssize_t W = g.Cout * Kc
    cdef const floating *xp = &x[0]
    cdef const floating *gyp = &gy[0]
    cdef floating *gwp = &gw[0]
    cdef floating *pp = &part[0] if part.shape[0] > 0 else NULL
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef pc_slab big
    cdef Py_ssize_t s, it, n, grp, t, q_lo, q_hi, e, e0, e1, nchunks, nseg, nval
    cdef Py_ssize_t tail, slab_n, gyt_n, seg_n
    cdef Py_ssize_t CH = 4096
    cdef floating *slab
    cdef floating *gyt
    cdef floating *acc
    cdef Py_ssize_t *off
    cdef Py_ssize_t *seg
    cdef pc_slab *sl
    pc_slab_geo(&g, A, 0, rows if rows < g.osz[A] else g.osz[A], &big)
    tail = ((g.ks[1] - 1) * g.dl[1] + 1) * big.len[2] + (g.ks[2] - 1) * g.dl[2] + 64
    slab_n = g.cin_g * big.plane + tail
    seg_n = 3 * (big.ncols // big.len[2] + 1)
    nval = big.ncols  # an upper bound of the valid positions of a tile
    gyt_n = (g.cout_g + nrw - 1) // nrw * nrw * nval
    with nogil:
        with parallel(num_threads=nthreads):
            slab = <floating *> pc_alloc(slab_n * sizeof(floating))
            gyt = <floating *> pc_alloc(gyt_n * sizeof(floating))
            off = <Py_ssize_t *> pc_alloc(Kc * sizeof(Py_ssize_t))
            seg = <Py_ssize_t *> pc_alloc(seg_n * sizeof(Py_ssize_t))
            sl = <pc_slab *> pc_alloc(sizeof(pc_slab))
            if slab == NULL or gyt == NULL or off == NULL or seg == NULL or sl == NULL:
                failed_p[0] = 1
            for s in prange(nslots, schedule='static'):
                if slab == NULL or gyt == NULL or off == NULL or seg == NULL or sl == NULL:
                    continue
                acc = gwp if s == 0 else pp + (s - 1) * W
                q_lo = s * nitems // nslots
                q_hi = (s + 1) * nitems // nslots
                for it in range(q_lo, q_hi):
                    n = it // ntiles
                    t = it - n * ntiles
                    pc_slab_geo(&g, A, t * rows,
                                (t + 1) * rows if (t + 1) * rows < g.osz[A] else g.osz[A], sl)
                    pc_slab_offsets(&g, sl, off)
                    nseg = pc_slab_segments(&g, sl, seg)
                    for grp in range(g.G):
                        if floating is float:
                            pc_slab_fill_f(&g, sl, xp + (n * g.Cin + grp * g.cin_g) * g.Pin, slab,
                                           slab_n - g.cin_g * sl[0].plane)
                            pc_pack_gy_f(&g, sl, gyp + (n * g.Cout + grp * g.cout_g) * g.Pout,
                                         nrw, gyt, seg[3 * nseg - 2] + seg[3 * nseg - 1])
                            pc_wpanels_f(level, Kc, g.cout_g, slab, off, nseg, seg, gyt,
                                         seg[3 * nseg - 2] + seg[3 * nseg - 1],
                                         acc + grp * g.cout_g * Kc)
                        else:
                            pc_slab_fill_d(&g, sl, xp + (n * g.Cin + grp * g.cin_g) * g.Pin, slab,
                                           slab_n - g.cin_g * sl[0].plane)
                            pc_pack_gy_d(&g, sl, gyp + (n * g.Cout + grp * g.cout_g) * g.Pout,
                                         nrw, gyt, seg[3 * nseg - 2] + seg[3 * nseg - 1])
                            pc_wpanels_d(level, Kc, g.cout_g, slab, off, nseg, seg, gyt,
                                         seg[3 * nseg - 2] + seg[3 * nseg - 1],
                                         acc + grp * g.cout_g * Kc)
            free(slab)
            free(gyt)
            free(off)
            free(seg)
            free(sl)
        # fixed-order reduction of the partials: gw += part[0]; gw += part[1]; ...
        if nslots > 1 and not failed:
            nchunks = (W + CH - 1) // CH
            for e in prange(nchunks, schedule='static', num_threads=nthreads):
                e0 = e * CH
                e1 = e0 + CH
                if e1 > W:
                    e1 = W
                for s in range(nslots - 1):
                    _add(e1 - e0, pp + s * W + e0, gwp + e0)
    if failed:
        raise MemoryError("cython backend: could not allocate the slab buffers")


cdef void _conv_weight_direct_pair(const floating *xp, const floating *gyp, floating *gwp,
                                   Geo *g, Py_ssize_t co, Py_ssize_t c,
                                   const Py_ssize_t *xa, const Py_ssize_t *xb) noexcept nogil:
    """gw[co, c, k] = sum_{n, o} gy[n, co, o] * x[n, ., o*s - lo + k*d] for every k."""
    cdef Py_ssize_t grp = co // g.cout_g
    cdef Py_ssize_t n, kz, ky, kx, oz, oy, iz, iy, a, bb
    cdef const floating *xc
    cdef const floating *gyc
    cdef floating acc
    for kz in range(g.ks[0]):
        for ky in range(g.ks[1]):
            for kx in range(g.ks[2]):
                acc = 0
                a = xa[kx]
                bb = xb[kx]
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
                                acc = acc + _dot(
                                    bb - a,
                                    xc + (iz * g.isz[1] + iy) * g.isz[2] + a * g.st[2] - g.lo[2]
                                    + kx * g.dl[2],
                                    g.st[2], gyc + (oz * g.osz[1] + oy) * g.osz[2] + a)
                gwp[(co * g.cin_g + c) * g.Kp + (kz * g.ks[1] + ky) * g.ks[2] + kx] = acc


def conv_weight_direct(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                       tuple geo, int nthreads):
    """Weight gradient by direct dot products; item = one (co, c) pair."""
    cdef Geo g = _geo(geo)
    cdef Py_ssize_t nitems = g.Cout * g.cin_g
    cdef const floating *xp = &x[0]
    cdef const floating *gyp = &gy[0]
    cdef floating *gwp = &gw[0]
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(2 * g.ks[2] * sizeof(Py_ssize_t))
    cdef Py_ssize_t it
    if xa == NULL:
        raise MemoryError()
    try:
        with nogil:
            _x_ranges(&g, False, 0, 0, xa, xa + g.ks[2])
            for it in prange(nitems, schedule='static', num_threads=nthreads):
                _conv_weight_direct_pair(xp, gyp, gwp, &g, it // g.cin_g, it % g.cin_g,
                                         xa, xa + g.ks[2])
    finally:
        free(xa)
