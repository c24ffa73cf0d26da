# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``gemm`` and ``pointwise`` paths: BLAS ``sgemm``/``dgemm``.

BLAS comes from ``scipy.linalg.cython_blas`` (nothing is linked at build
time) behind :func:`_gemm`, a row-major wrapper.  The planner holds every
BLAS library to one thread during the call: the work items are the unit of
parallelism.

* ``conv``: item = (n, group, tile of output positions).  im2col of the
  tile into the thread's buffer, then ``y_tile = W_g @ col`` written
  straight into the output (``ldc`` = positions per image).  ``pointwise``
  (1x1, stride 1, no padding) multiplies the input directly.
* ``conv_transpose``: item = (n, group, block of output channels, slab
  of output rows along the outermost spatial axis).  The item owns its
  channels' slab: for each tile of the input positions that reach the
  slab, ``col = W_b^T @ x_tile`` (``W_b``: the block's columns of the
  group's weight) and col2im adds the columns that land in the slab.
  Blocks of channels cut the work of a small batch without re-reading the
  weight or recomputing a halo; slabs of rows are the fallback when the
  channels are too few.  No zero insertion, no two
  threads ever write the same output element, and the order of the
  additions is fixed by the plan alone.  Small images: item = (block of
  ``nb`` images, group), the images side by side in one GEMM.
  ``pointwise``: ``y = W^T x`` straight into the output.
* ``conv_weight``: the (n, tile) items are cut into ``nslots`` fixed ranges;
  each slot accumulates ``gy_tile @ col^T`` into its own partial weight
  (slot 0 is the output itself), and the partials are summed in slot
  order at the end: bitwise the same for any number of threads.

``*_workspace`` report the bytes each kernel allocates (per thread, and
once per call) from the same layouts the kernels use.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memset

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, col2im, fill, gather, im2col, layout_add,
                                 layout_init, layout_part, make_geo, operands, outer_axis,
                                 pc_alloc, pc_ceildiv, pc_floordiv, reduce_partials, run_items,
                                 x_ranges)


cnp.import_array()   # NumPy's C API, for operands()


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


cdef inline void _add_bias_rows(floating *c, Py_ssize_t rows, Py_ssize_t cols,
                                Py_ssize_t ld, const floating *bias) noexcept nogil:
    cdef Py_ssize_t r, i
    cdef floating v
    for r in range(rows):
        v = bias[r]
        for i in range(cols):
            c[r * ld + i] += v


cdef struct Task:
    Geo g
    const void *x       # conv_weight: the input
    const void *w       # conv_weight: grad_output
    const void *b       # NULL: no bias
    void *y             # conv_weight: grad_weight
    void *part          # conv_weight: the partials of slots 1, 2, ...
    const Py_ssize_t *xa
    const Py_ssize_t *xb
    bint pointwise      # the input is the GEMM's matrix (no im2col)
    Py_ssize_t tile, ntiles, nitems, nslots, nslabs, nchb, nb, A, inner_in, inner_out
    Layout buf


cdef inline Py_ssize_t _ntiles(Py_ssize_t n, Py_ssize_t tile) noexcept nogil:
    return (n + tile - 1) // tile


cdef Py_ssize_t _fixed_ranges(const Geo *g) noexcept nogil:
    """Bytes of the shared tap-range table (xa, xb)."""
    return 2 * g.ks[2] * sizeof(Py_ssize_t)


cdef int _start(Task *t, tuple geo, int transposed) except -1:
    """Geometry and the shared tap ranges of ``t`` (the caller frees ``t.xa``)."""
    t.g = make_geo(geo)
    cdef Py_ssize_t *xa = <Py_ssize_t *> malloc(_fixed_ranges(&t.g))
    if xa == NULL:
        raise MemoryError()
    x_ranges(&t.g, transposed, 0, t.g.osz[2], xa, xa + t.g.ks[2])
    t.xa, t.xb = xa, xa + t.g.ks[2]
    layout_init(&t.buf)
    return 0


# ---------------------------------------------------------------------------
# conv

cdef void _conv_layout(const Geo *g, Py_ssize_t tile, bint pointwise, Py_ssize_t isz,
                       Layout *L) noexcept nogil:
    layout_init(L)
    if not pointwise:
        layout_add(L, g.cin_g * g.Kp * tile * isz)      # the im2col tile


def conv_workspace(tuple geo, Py_ssize_t tile, bint pointwise, bint dbl):
    """(bytes per thread, fixed bytes) of :func:`conv`."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    _conv_layout(&g, tile, pointwise, 8 if dbl else 4, &L)
    return L.nbytes, _fixed_ranges(&g)


cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t kc = g.cin_g * g.Kp
    cdef Py_ssize_t tt = it % t.ntiles, grp = (it // t.ntiles) % g.G
    cdef Py_ssize_t n = it // (t.ntiles * g.G)
    cdef Py_ssize_t p0 = tt * t.tile
    cdef Py_ssize_t tl = min(t.tile, g.Pout - p0)
    cdef const floating *xg = <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin
    cdef floating *cmat = <floating *> t.y + (n * g.Cout + grp * g.cout_g) * g.Pout + p0
    cdef const floating *bmat
    cdef int ldb
    if t.pointwise:
        bmat = xg + p0
        ldb = <int> g.Pin
    else:
        im2col(g, xg, <floating *> layout_part(&t.buf, buf, 0), p0, tl, t.xa, t.xb)
        bmat = <floating *> layout_part(&t.buf, buf, 0)
        ldb = <int> tl
    _gemm(False, False, <int> g.cout_g, <int> tl, <int> kc,
          <const floating *> t.w + grp * g.cout_g * kc, <int> kc, bmat, ldb, 0,
          cmat, <int> g.Pout)
    if t.b != NULL:
        _add_bias_rows(cmat, g.cout_g, tl, g.Pout, <const floating *> t.b + grp * g.cout_g)


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t tile, bint pointwise, int nthreads) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    _start(&t, geo, False)
    try:
        t.x, t.w, t.y = x, w, y
        t.b = b
        t.tile, t.ntiles, t.pointwise = tile, _ntiles(t.g.Pout, tile), pointwise
        _conv_layout(&t.g, tile, pointwise, sizeof(floating), &t.buf)
        run_items[floating](_conv_item[floating], &t, t.g.N * t.g.G * t.ntiles,
                            t.g.N * t.g.G * t.ntiles, t.buf.nbytes, nthreads)
    finally:
        free(<void *> t.xa)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t tile,
         bint pointwise, int nthreads):
    """Forward conv by tiled im2col + GEMM.  ``b`` empty = no bias."""
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, tile, pointwise, nthreads)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              tile, pointwise, nthreads)


# ---------------------------------------------------------------------------
# conv_transpose

cdef void _transpose_layout(const Geo *g, Py_ssize_t tile, Py_ssize_t nb, bint pointwise,
                            Py_ssize_t isz, Layout *L) noexcept nogil:
    cdef Py_ssize_t mt = g.cout_g * g.Kp
    layout_init(L)
    if pointwise:
        return
    layout_add(L, (6 + 2 * g.ks[2]) * sizeof(Py_ssize_t))     # owned box + tap ranges
    if nb > 1:
        layout_add(L, mt * nb * g.Pin * isz)                  # col of the image block
        layout_add(L, g.cin_g * nb * g.Pin * isz)             # the images side by side
    else:
        layout_add(L, mt * tile * isz)                        # col of one input tile


def transpose_workspace(tuple geo, Py_ssize_t tile, Py_ssize_t nb, bint pointwise, bint dbl):
    """(bytes per thread, fixed bytes) of :func:`conv_transpose`."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    _transpose_layout(&g, tile, nb, pointwise, 8 if dbl else 4, &L)
    return L.nbytes, _fixed_ranges(&g)


cdef void _transpose_pointwise_item(const void *task, floating *buf, Py_ssize_t slot,
                                    Py_ssize_t it) noexcept nogil:
    """y = W^T x for one tile of one (image, group), straight into the output."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t tt = it % t.ntiles, grp = (it // t.ntiles) % g.G
    cdef Py_ssize_t n = it // (t.ntiles * g.G)
    cdef Py_ssize_t p0 = tt * t.tile
    cdef Py_ssize_t tl = min(t.tile, g.Pin - p0)
    cdef floating *cmat = <floating *> t.y + (n * g.Cout + grp * g.cout_g) * g.Pout + p0
    _gemm(True, False, <int> g.cout_g, <int> tl, <int> g.cin_g,
          <const floating *> t.w + grp * g.cin_g * g.cout_g, <int> g.cout_g,
          <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin + p0, <int> g.Pin,
          0, cmat, <int> g.Pout)
    if t.b != NULL:
        _add_bias_rows(cmat, g.cout_g, tl, g.Pout, <const floating *> t.b + grp * g.cout_g)


cdef void _transpose_images_item(const void *task, floating *buf, Py_ssize_t slot,
                                 Py_ssize_t it) noexcept nogil:
    """A block of up to nb images of one group: one GEMM, then col2im per image."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t mt = g.cout_g * g.Kp
    cdef Py_ssize_t *rng = <Py_ssize_t *> layout_part(&t.buf, buf, 0)
    cdef floating *col = <floating *> layout_part(&t.buf, buf, 1)
    cdef floating *pack = <floating *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t grp = it % g.G, n0 = (it // g.G) * t.nb
    cdef Py_ssize_t nbi = min(t.nb, g.N - n0)
    cdef Py_ssize_t ldp = nbi * g.Pin
    cdef const floating *xp = <const floating *> t.x
    cdef const floating *bp = <const floating *> t.b
    cdef floating *yp = <floating *> t.y
    cdef Py_ssize_t ax, bi, c, j
    for ax in range(3):
        rng[ax] = 0
        rng[3 + ax] = g.osz[ax]
    x_ranges(g, True, 0, g.osz[2], rng + 6, rng + 6 + g.ks[2])
    for bi in range(nbi):
        for c in range(g.cin_g):
            gather(g.Pin, xp + ((n0 + bi) * g.Cin + grp * g.cin_g + c) * g.Pin, 1,
                   pack + c * ldp + bi * g.Pin)
    _gemm(True, False, <int> mt, <int> ldp, <int> g.cin_g,
          <const floating *> t.w + grp * g.cin_g * mt, <int> mt, pack, <int> ldp, 0, col,
          <int> ldp)
    for bi in range(nbi):
        for j in range(g.cout_g):
            fill(g.Pout, bp[grp * g.cout_g + j] if bp != NULL else <floating> 0,
                 yp + ((n0 + bi) * g.Cout + grp * g.cout_g + j) * g.Pout)
        col2im(g, col + bi * g.Pin, ldp, yp + ((n0 + bi) * g.Cout + grp * g.cout_g) * g.Pout,
               0, g.Pin, rng, rng + 3, rng + 6, rng + 6 + g.ks[2])


cdef void _transpose_slab_item(const void *task, floating *buf, Py_ssize_t slot,
                               Py_ssize_t it) noexcept nogil:
    """The output rows [t0, t1) along axis A of channels [c0, c1) of one (image, group)."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Geo gb = t.g     # the block's channels only (col2im's channel loop)
    cdef Py_ssize_t mt = g.cout_g * g.Kp
    cdef Py_ssize_t *rng = <Py_ssize_t *> layout_part(&t.buf, buf, 0)
    cdef floating *col = <floating *> layout_part(&t.buf, buf, 1)
    cdef Py_ssize_t A = t.A
    cdef Py_ssize_t slab = it % t.nslabs, cb = (it // t.nslabs) % t.nchb
    cdef Py_ssize_t grp = (it // (t.nslabs * t.nchb)) % g.G
    cdef Py_ssize_t n = it // (t.nslabs * t.nchb * g.G)
    cdef Py_ssize_t t0 = slab * g.osz[A] // t.nslabs
    cdef Py_ssize_t t1 = (slab + 1) * g.osz[A] // t.nslabs
    cdef Py_ssize_t c0 = cb * g.cout_g // t.nchb
    cdef Py_ssize_t c1 = (cb + 1) * g.cout_g // t.nchb
    cdef const floating *bp = <const floating *> t.b
    cdef floating *yg = <floating *> t.y + (n * g.Cout + grp * g.cout_g + c0) * g.Pout
    cdef Py_ssize_t ax, j, ia, ib, q, qend, tl
    gb.cout_g = c1 - c0
    # owned box: full range on every axis but A
    for ax in range(3):
        rng[ax] = 0
        rng[3 + ax] = g.osz[ax]
    rng[A] = t0
    rng[3 + A] = t1
    x_ranges(g, True, rng[2], rng[5], rng + 6, rng + 6 + g.ks[2])
    # initialise the owned slab of every output channel of the block
    for j in range(c0, c1):
        fill((t1 - t0) * t.inner_out, bp[grp * g.cout_g + j] if bp != NULL else <floating> 0,
             yg + (j - c0) * g.Pout + t0 * t.inner_out)
    # input rows (along A) that reach [t0, t1)
    ia = max(0, pc_ceildiv(t0 + g.lo[A] - (g.ks[A] - 1) * g.dl[A], g.st[A]))
    ib = min(g.isz[A], pc_floordiv(t1 - 1 + g.lo[A], g.st[A]) + 1)
    q = ia * t.inner_in
    qend = ib * t.inner_in
    while q < qend:
        tl = min(t.tile, qend - q)
        _gemm(True, False, <int> (gb.cout_g * g.Kp), <int> tl, <int> g.cin_g,
              <const floating *> t.w + grp * g.cin_g * mt + c0 * g.Kp, <int> mt,
              <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin + q, <int> g.Pin,
              0, col, <int> tl)
        col2im(&gb, col, tl, yg, q, tl, rng, rng + 3, rng + 6, rng + 6 + g.ks[2])
        q = q + tl


cdef int _conv_transpose(const floating *x, const floating *w, const floating *b, floating *y,
                         tuple geo, Py_ssize_t tile, Py_ssize_t nslabs, Py_ssize_t nb,
                         bint pointwise, int nthreads, Py_ssize_t nchb=1) except -1:
    """The body of :func:`conv_transpose`."""
    cdef Task t
    cdef Py_ssize_t nitems, ax
    _start(&t, geo, True)
    try:
        if not 1 <= nchb <= max(1, t.g.cout_g):
            raise ValueError(f"nchb must be in [1, {max(1, t.g.cout_g)}], got {nchb}")
        t.x, t.w, t.y = x, w, y
        t.b = b
        t.tile, t.nslabs, t.nchb, t.nb = tile, nslabs, nchb, nb
        _transpose_layout(&t.g, tile, nb, pointwise, sizeof(floating), &t.buf)
        if pointwise:
            t.ntiles = _ntiles(t.g.Pin, tile)
            nitems = t.g.N * t.g.G * t.ntiles
            run_items[floating](_transpose_pointwise_item[floating], &t, nitems, nitems,
                                t.buf.nbytes, nthreads)
        elif nb > 1:
            nitems = _ntiles(t.g.N, nb) * t.g.G
            run_items[floating](_transpose_images_item[floating], &t, nitems, nitems,
                                t.buf.nbytes, nthreads)
        else:
            t.A = outer_axis(&t.g)
            t.inner_in = t.inner_out = 1
            for ax in range(t.A + 1, 3):
                t.inner_in *= t.g.isz[ax]
                t.inner_out *= t.g.osz[ax]
            nitems = t.g.N * t.g.G * nchb * nslabs
            run_items[floating](_transpose_slab_item[floating], &t, nitems, nitems,
                                t.buf.nbytes, nthreads)
    finally:
        free(<void *> t.xa)
    return 0


def conv_transpose(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo,
                   Py_ssize_t tile, Py_ssize_t nslabs, Py_ssize_t nb, bint pointwise, int nthreads,
                   Py_ssize_t nchb=1):
    """Transposed conv by GEMM + col2im.  ``b`` empty = no bias.

    ``pointwise`` (1x1, stride 1, no crop): item = (n, group, tile of
    ``tile`` positions).  ``nb > 1``: item = (block of ``nb`` images,
    group).  Otherwise item = (n, group, one of ``nchb`` blocks of output
    channels, one of ``nslabs`` output slabs), the input in tiles of
    ``tile`` positions.
    """
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv_transpose(<const double *> o.x, <const double *> o.w, <const double *> o.b,
                        <double *> o.y, geo, tile, nslabs, nb, pointwise, nthreads, nchb)
    else:
        _conv_transpose(<const float *> o.x, <const float *> o.w, <const float *> o.b,
                        <float *> o.y, geo, tile, nslabs, nb, pointwise, nthreads, nchb)


# ---------------------------------------------------------------------------
# conv_weight

cdef void _weight_layout(const Geo *g, Py_ssize_t tile, bint pointwise, Py_ssize_t isz,
                         Layout *L) noexcept nogil:
    layout_init(L)
    if not pointwise:
        layout_add(L, g.cin_g * g.Kp * tile * isz)      # the im2col tile


def weight_workspace(tuple geo, Py_ssize_t tile, Py_ssize_t nslots, bint pointwise,
                     bint dbl):
    """(bytes per thread, fixed bytes) of :func:`conv_weight` (partials included)."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef Py_ssize_t isz = 8 if dbl else 4
    _weight_layout(&g, tile, pointwise, isz, &L)
    return L.nbytes, _fixed_ranges(&g) + (nslots - 1) * g.Cout * g.cin_g * g.Kp * isz


cdef void _weight_item(const void *task, floating *buf, Py_ssize_t slot,
                       Py_ssize_t it) noexcept nogil:
    """Every group of one (image, tile) into the slot's partial weight."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t kc = g.cin_g * g.Kp, size = g.Cout * kc
    cdef floating *acc = <floating *> t.y if slot == 0 else \
        <floating *> t.part + (slot - 1) * size
    cdef Py_ssize_t n = it // t.ntiles
    cdef Py_ssize_t p0 = (it - n * t.ntiles) * t.tile
    cdef Py_ssize_t tl = min(t.tile, g.Pout - p0)
    cdef Py_ssize_t grp
    cdef const floating *xg
    cdef const floating *bmat
    cdef int ldb
    if slot > 0 and it == slot * t.nitems // t.nslots:     # the slot's first item
        memset(acc, 0, size * sizeof(floating))
    for grp in range(g.G):
        xg = <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin
        if t.pointwise:
            bmat = xg + p0
            ldb = <int> g.Pin
        else:
            im2col(g, xg, <floating *> layout_part(&t.buf, buf, 0), p0, tl, t.xa, t.xb)
            bmat = <floating *> layout_part(&t.buf, buf, 0)
            ldb = <int> tl
        # acc_g (cout_g x kc) += gy_tile (cout_g x tl) @ col^T (tl x kc)
        _gemm(False, True, <int> g.cout_g, <int> kc, <int> tl,
              <const floating *> t.w + (n * g.Cout + grp * g.cout_g) * g.Pout + p0,
              <int> g.Pout, bmat, ldb, 1, acc + grp * g.cout_g * kc, <int> kc)


cdef int _conv_weight(const floating *x, const floating *gy, floating *gw, tuple geo,
                      Py_ssize_t tile, Py_ssize_t nslots, bint pointwise, int nthreads) except -1:
    """The body of :func:`conv_weight`."""
    cdef Task t
    cdef Py_ssize_t size
    _start(&t, geo, False)
    t.part = NULL
    try:
        size = t.g.Cout * t.g.cin_g * t.g.Kp
        t.x, t.w, t.y, t.b = x, gy, gw, NULL
        t.tile, t.ntiles, t.pointwise = tile, _ntiles(t.g.Pout, tile), pointwise
        t.nitems = t.g.N * t.ntiles
        t.nslots = min(nslots, t.nitems)
        if t.nslots > 1:
            t.part = pc_alloc((t.nslots - 1) * size * sizeof(floating))
            if t.part == NULL:
                raise MemoryError()
        _weight_layout(&t.g, tile, pointwise, sizeof(floating), &t.buf)
        run_items[floating](_weight_item[floating], &t, t.nitems, t.nslots, t.buf.nbytes,
                            nthreads)
        with nogil:
            reduce_partials(gw, <floating *> t.part, size, t.nslots - 1, nthreads)
    finally:
        free(<void *> t.xa)
        free(t.part)
    return 0


def conv_weight(cnp.ndarray x, cnp.ndarray gy, cnp.ndarray gw, tuple geo, Py_ssize_t tile,
                Py_ssize_t nslots, bint pointwise, int nthreads):
    """Weight gradient by im2col + GEMM with a fixed-order reduction.

    ``gw`` must be zeroed; the ``nslots - 1`` other partials are allocated
    here.
    """
    cdef Operands o
    operands(&o, x, gy, None, gw)
    if o.dbl:
        _conv_weight(<const double *> o.x, <const double *> o.w, <double *> o.y, geo, tile, nslots,
                     pointwise, nthreads)
    else:
        _conv_weight(<const float *> o.x, <const float *> o.w, <float *> o.y, geo, tile, nslots,
                     pointwise, nthreads)
