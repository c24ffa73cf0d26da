# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``implicit`` path: stride-1 conv and conv_weight on slabs.

A work item is a tile of ``rows`` output rows along the outermost real
axis.  It copies the input box those rows read, zero padded, into a slab
(``kernels/slab.h``) where every kernel tap is a constant offset, so the
register-blocked micro-kernels (``kernels/microkernels.h``) read the slab
directly and no im2col is ever built.

* ``conv``: item = (group, part of the output channels, n, tile), the
  parts whole panels, ``mparts`` of them: more than one where a call has
  fewer tiles than threads want (batch-1 7x7 maps of 512 channels; the
  parts of one weight run one after the other, so that a thread's run of
  items shares one part); the micro-kernel writes an output block that
  is copied, plus bias, into ``y``.  The weight is packed in a first pass,
  a run of panels per item (the packing of a 512-channel 3x3 layer, 9 MiB,
  was a serial copy before every call).  With ``yview`` the block goes to
  a strided view of ``y`` instead; :func:`conv_many` runs several
  such convs (the phases of a transposed conv, the ``phases`` path) as the
  items of one parallel region.
* ``conv_weight``: items = (block of ``images`` images, tile), cut into
  ``nslots`` fixed ranges; each slot accumulates into its own partial
  weight, and the partials are summed in slot order: bitwise the same for
  any thread count.  An item copies the slabs (and packs the grad_output)
  of its images one after the other, so that one micro-kernel call runs
  over the valid positions of all of them: on small maps a tile of one
  image has few positions, and each call ends with a read-modify-write of
  its block of the partial.  When every slot's
  partial fits ``PARTIAL_BYTES`` they are tap-major (``C_in/g*K x C_out/g``
  per group, where the micro-kernel adds whole vectors) and their sum is
  transposed into ``gw``; otherwise slot 0 is ``gw`` itself and the others
  share its layout.

:func:`conv_workspace` and :func:`weight_workspace` report the bytes the
kernels allocate, from the same layouts the kernels use.
"""

from libc.stdlib cimport calloc, free
from libc.string cimport memset

from cython cimport floating
from cython.parallel cimport prange

cimport numpy as cnp
from pyconv._cy._common cimport (Geo, Layout, Operands, itile, layout_add, layout_init,
                                 layout_part, make_geo, operands, outer_axis, pack_gy, pack_w,
                                 pack_weights, packed_rows, pc_alloc, pc_slab, pc_slab_geo,
                                 pc_slab_offsets, pc_slab_segments, reduce_partials, run_items,
                                 run_passes, slab_fill, slab_store, wpanels)


cnp.import_array()   # NumPy's C API, for operands()


cdef struct Task:
    Geo g
    const void *x       # conv_weight: the input
    const void *w       # conv: the packed weights; conv_weight: grad_output
    const void *b       # NULL: no bias
    void *y             # conv_weight: grad_weight
    void *part          # conv_weight: the partials of slots 1, 2, ...
    int level           # SIMD level of the micro-kernel
    Py_ssize_t A, rows, ntiles, kc, mpad, nr, slab_n, nitems, nslots
    Py_ssize_t images   # conv_weight: images per item
    Py_ssize_t mparts, mstep    # conv: output-channel parts per tile, rows of each
    const void *wsrc    # conv: the weight being packed into w (the first pass)
    Py_ssize_t npack, pstep     # conv: packing items per group, rows of each
    Py_ssize_t mr               # conv: rows of a micro-kernel panel
    Py_ssize_t yoff, yimg
    bint tapmajor       # conv_weight: every slot's partial tap-major (else slot 0 is gw)
    Py_ssize_t ys[4]    # element strides of y: channel, z, y, x
    Layout buf


cdef Py_ssize_t _slab_layout(Geo *g, Py_ssize_t A, Py_ssize_t rows, Py_ssize_t slack,
                             Py_ssize_t *ncols, Py_ssize_t *tiles_rows) noexcept nogil:
    """Elements of the slab of a full tile (``ncols``: its virtual positions).

    The tail past the channels covers the micro-kernel's reads beyond the
    last plane: a plane's thrown-away rows (3-d) and ``slack`` columns of
    the last partial panel.
    """
    cdef pc_slab big
    pc_slab_geo(g, A, 0, min(rows, g.osz[A]), &big)
    ncols[0] = big.ncols
    tiles_rows[0] = big.ncols // big.len[2] + 1
    return (g.cin_g * big.plane
            + ((g.ks[1] - 1) * g.dl[1] + 1) * big.len[2] + (g.ks[2] - 1) * g.dl[2] + slack)


# ---------------------------------------------------------------------------
# conv

cdef Py_ssize_t _conv_layout(Geo *g, Py_ssize_t rows, Py_ssize_t nr, Py_ssize_t isz,
                             Layout *L) noexcept nogil:
    """The per-thread block of :func:`conv`; returns the slab's elements."""
    cdef Py_ssize_t ncols, nrows
    cdef Py_ssize_t slab_n = _slab_layout(g, outer_axis(g), rows, nr, &ncols, &nrows)
    layout_init(L)
    layout_add(L, slab_n * isz)                                       # 0: slab
    layout_add(L, g.cout_g * ((ncols + nr - 1) // nr * nr + nr) * isz)  # 1: output block
    layout_add(L, g.cin_g * g.Kp * sizeof(Py_ssize_t))                # 2: tap offsets
    layout_add(L, sizeof(pc_slab))                                    # 3: tile geometry
    return slab_n


def conv_workspace(tuple geo, Py_ssize_t rows, Py_ssize_t mr, Py_ssize_t nr, bint dbl):
    """(bytes per thread, fixed bytes: the packed weights) of :func:`conv`."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef Py_ssize_t isz = 8 if dbl else 4
    _conv_layout(&g, rows, nr, isz, &L)
    return L.nbytes, g.G * packed_rows(g.cout_g, mr) * g.cin_g * g.Kp * isz


cdef void _conv_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef floating *slab = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *ybuf = <floating *> layout_part(&t.buf, buf, 1)
    cdef Py_ssize_t *off = <Py_ssize_t *> layout_part(&t.buf, buf, 2)
    cdef pc_slab *sl = <pc_slab *> layout_part(&t.buf, buf, 3)
    # part-major: consecutive items (one thread's run of slots) share a part
    # of the packed weight, which stays in the L2 cache from image to image
    cdef Py_ssize_t tt = it % t.ntiles, n = (it // t.ntiles) % g.N
    cdef Py_ssize_t part = (it // (t.ntiles * g.N)) % t.mparts
    cdef Py_ssize_t grp = it // (t.ntiles * g.N * t.mparts)
    cdef Py_ssize_t m0 = part * t.mstep
    cdef Py_ssize_t ld
    cdef Geo gp = g[0]                  # the part's output channels as the group's
    gp.cout_g = min(t.mstep, g.cout_g - m0)
    pc_slab_geo(g, t.A, tt * t.rows, min((tt + 1) * t.rows, g.osz[t.A]), sl)
    pc_slab_offsets(g, sl, off)
    ld = (sl.ncols + t.nr - 1) // t.nr * t.nr + t.nr
    slab_fill(g, sl, <const floating *> t.x + (n * g.Cin + grp * g.cin_g) * g.Pin, slab,
              t.slab_n - g.cin_g * sl.plane)
    itile(t.level, g, sl, t.kc, gp.cout_g,
          <const floating *> t.w + grp * t.mpad * t.kc + m0 * t.kc, slab, off, ybuf, ld)
    slab_store(&gp, sl, ybuf, ld,
               <floating *> t.y + t.yoff + n * t.yimg + (grp * g.cout_g + m0) * t.ys[0],
               t.ys, <const floating *> t.b + grp * g.cout_g + m0 if t.b != NULL else NULL)


cdef void _pack_item(const void *task, floating *buf, Py_ssize_t slot,
                     Py_ssize_t it) noexcept nogil:
    """The panels of rows [k * pstep, k * pstep + pstep) of group grp, it = (grp, k)."""
    cdef const Task *t = <const Task *> task
    cdef Py_ssize_t grp = it // t.npack, m0 = (it % t.npack) * t.pstep
    pack_w(<const floating *> t.wsrc + (grp * t.g.cout_g + m0) * t.kc,
           min(t.pstep, t.g.cout_g - m0), t.kc, t.mr,
           <floating *> t.w + grp * t.mpad * t.kc + m0 * t.kc)


cdef int _conv_task(Task *t, tuple geo, Py_ssize_t rows, int level, Py_ssize_t mr,
                    Py_ssize_t nr, const void *x, const void *w, const void *b, void *y,
                    tuple yview, Py_ssize_t isz, Py_ssize_t mparts=1) except -1:
    """Set up ``t`` for one stride-1 conv; ``t.w`` is set by the caller (packed).
    ``mparts``: each tile's output channels in that many items (runs of whole
    mr-row panels)."""
    t.g = make_geo(geo)
    t.A = outer_axis(&t.g)
    t.rows, t.ntiles = rows, (t.g.osz[t.A] + rows - 1) // rows
    t.kc, t.mpad, t.nr, t.level = t.g.cin_g * t.g.Kp, packed_rows(t.g.cout_g, mr), nr, level
    t.x, t.y, t.b = x, y, b
    if yview is None:
        t.yoff, t.yimg = 0, t.g.Cout * t.g.Pout
        t.ys[0], t.ys[1], t.ys[2], t.ys[3] = t.g.Pout, t.g.osz[1] * t.g.osz[2], t.g.osz[2], 1
    else:
        t.yoff, t.yimg, t.ys[0], t.ys[1], t.ys[2], t.ys[3] = yview
    t.slab_n = _conv_layout(&t.g, rows, nr, isz, &t.buf)
    t.mr = mr
    t.mstep = (t.mpad // mr + max(1, mparts) - 1) // max(1, mparts) * mr
    t.mparts = (t.mpad + t.mstep - 1) // t.mstep
    t.nitems = t.g.N * t.g.G * t.ntiles * t.mparts
    return 0


cdef int _conv(const floating *x, const floating *w, const floating *b, floating *y, tuple geo,
               Py_ssize_t rows, int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads,
               tuple yview=None, Py_ssize_t mparts=1) except -1:
    """The body of :func:`conv`."""
    cdef Task t
    cdef floating *wpack
    _conv_task(&t, geo, rows, level, mr, nr, x, NULL,
               b, y, yview, sizeof(floating), mparts)
    # the packing: about 8 runs of panels per group, at least 16 panels each
    t.pstep = max(16, (t.mpad // mr + 7) // 8) * mr
    t.npack = (t.mpad + t.pstep - 1) // t.pstep
    wpack = <floating *> pc_alloc(max(1, t.g.G * t.mpad * t.kc) * sizeof(floating))
    if wpack == NULL:
        raise MemoryError()
    t.w = wpack
    t.wsrc = w
    try:
        run_passes[floating](_pack_item[floating], t.g.G * t.npack, _conv_item[floating],
                             t.nitems, &t, t.buf.nbytes, nthreads)
    finally:
        free(wpack)
    return 0


def conv(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, cnp.ndarray y, tuple geo, Py_ssize_t rows,
         int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads, tuple yview=None,
         Py_ssize_t mparts=1):
    """Stride-1 forward conv; item = (group, part, n, tile of ``rows`` output rows).

    ``b`` empty = no bias.  ``yview = (offset, image, channel, z, y, x)``
    (element strides) writes the output into a strided view of ``y``
    instead of the contiguous output.  ``mparts``: each tile's output
    channels in that many items (runs of whole mr-row panels).
    """
    cdef Operands o
    operands(&o, x, w, b, y)
    if o.dbl:
        _conv(<const double *> o.x, <const double *> o.w, <const double *> o.b, <double *> o.y,
              geo, rows, level, mr, nr, nthreads, yview, mparts)
    else:
        _conv(<const float *> o.x, <const float *> o.w, <const float *> o.b, <float *> o.y, geo,
              rows, level, mr, nr, nthreads, yview, mparts)


cdef struct Convs:
    Task *tasks         # one stride-1 conv each
    Py_ssize_t *first   # global index of each conv's first item; first[n] = all items
    Py_ssize_t n


cdef void _convs_item(const void *task, floating *buf, Py_ssize_t slot,
                      Py_ssize_t it) noexcept nogil:
    cdef const Convs *cs = <const Convs *> task
    cdef Py_ssize_t k = 0
    while it >= cs.first[k + 1]:
        k += 1
    _conv_item(&cs.tasks[k], buf, slot, it - cs.first[k])


cdef int _conv_many(const floating *x, weight_of, const floating *b, floating *y, list geos,
                    list rows, int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads,
                    list yviews) except -1:
    """The body of :func:`conv_many`."""
    cdef Py_ssize_t n = len(geos), k, nbytes = 0
    cdef Convs cs
    cdef const floating[::1] wk
    if not (len(rows) == len(yviews) == n) or n == 0:
        raise ValueError("conv_many: geos, rows and yviews need one entry per conv")
    cs.n = n
    cs.tasks = <Task *> calloc(n, sizeof(Task))
    cs.first = <Py_ssize_t *> calloc(n + 1, sizeof(Py_ssize_t))
    try:
        if cs.tasks == NULL or cs.first == NULL:
            raise MemoryError()
        for k in range(n):
            _conv_task(&cs.tasks[k], geos[k], rows[k], level, mr, nr, x, NULL,
                       b, y, yviews[k], sizeof(floating))
            wk = weight_of(k)
            if wk.shape[0] != cs.tasks[k].g.Cout * cs.tasks[k].kc:
                raise ValueError(f"conv_many: weight {k} has {wk.shape[0]} elements")
            with nogil:
                cs.tasks[k].w = pack_weights(&wk[0], &cs.tasks[k].g, cs.tasks[k].kc, mr)
            wk = None
            if cs.tasks[k].w == NULL:
                raise MemoryError()
            cs.first[k + 1] = cs.first[k] + cs.tasks[k].nitems
            nbytes = max(nbytes, cs.tasks[k].buf.nbytes)
        run_items[floating](_convs_item[floating], &cs, cs.first[n], cs.first[n], nbytes,
                            nthreads)
    finally:
        if cs.tasks != NULL:
            for k in range(n):
                free(<void *> cs.tasks[k].w)
        free(cs.tasks)
        free(cs.first)
    return 0


def conv_many(cnp.ndarray x, weight_of, cnp.ndarray b, cnp.ndarray y, list geos, list rows,
              int level, Py_ssize_t mr, Py_ssize_t nr, int nthreads, list yviews):
    """Several stride-1 convs of one input into strided views of one output, in one
    parallel region (the phases of a transposed conv).

    Conv ``k`` has geometry ``geos[k]``, the weight ``weight_of(k)`` (a flat
    array, asked for just before it is packed, so that only one unpacked
    weight is alive at a time), tiles of ``rows[k]`` output rows, and
    writes the view ``yviews[k]`` (as :func:`conv`'s ``yview``); its items
    follow those of conv ``k - 1``.  The views must not overlap: no output
    element is written twice.
    """
    cdef Operands o
    operands(&o, x, None, b, y)
    if o.dbl:
        _conv_many(<const double *> o.x, weight_of, <const double *> o.b, <double *> o.y, geos,
                   rows, level, mr, nr, nthreads, yviews)
    else:
        _conv_many(<const float *> o.x, weight_of, <const float *> o.b, <float *> o.y, geos, rows,
                   level, mr, nr, nthreads, yviews)


# ---------------------------------------------------------------------------
# conv_weight

cdef Py_ssize_t _weight_layout(Geo *g, Py_ssize_t rows, Py_ssize_t nrw, Py_ssize_t images,
                               Py_ssize_t isz, Layout *L) noexcept nogil:
    """The per-thread block of :func:`conv_weight` (``images`` slabs one after the
    other, the tail after the last); returns the elements of the slabs."""
    cdef Py_ssize_t ncols, nrows
    cdef pc_slab big
    cdef Py_ssize_t slab_n = _slab_layout(g, outer_axis(g), rows, nrw, &ncols, &nrows)
    pc_slab_geo(g, outer_axis(g), 0, min(rows, g.osz[outer_axis(g)]), &big)
    slab_n += (images - 1) * g.cin_g * big.plane
    layout_init(L)
    layout_add(L, slab_n * isz)                                       # 0: slabs
    layout_add(L, packed_rows(g.cout_g, nrw) * images * ncols * isz)  # 1: packed grad_output
    layout_add(L, g.cin_g * g.Kp * sizeof(Py_ssize_t))                # 2: tap offsets
    layout_add(L, 3 * nrows * sizeof(Py_ssize_t))                     # 3: valid segments
    layout_add(L, sizeof(pc_slab))                                    # 4: tile geometry
    layout_add(L, images * ncols * sizeof(Py_ssize_t))                # 5: valid positions
    return slab_n


cdef bint _tapmajor(const Geo *g, Py_ssize_t nslots, Py_ssize_t isz,
                    Py_ssize_t budget) noexcept nogil:
    """Whether the partials of all ``nslots`` slots fit ``budget`` bytes (then
    they are tap-major, slot 0 included)."""
    return nslots * g.Cout * g.cin_g * g.Kp * isz <= budget


def weight_workspace(tuple geo, Py_ssize_t rows, Py_ssize_t nrw, Py_ssize_t images,
                     Py_ssize_t nslots, bint dbl, Py_ssize_t budget):
    """(bytes per thread, fixed bytes: the partials) of :func:`conv_weight`;
    ``budget``: the bytes the partials may take (``PARTIAL_BYTES``)."""
    cdef Geo g = make_geo(geo)
    cdef Layout L
    cdef Py_ssize_t isz = 8 if dbl else 4
    _weight_layout(&g, rows, nrw, images, isz, &L)
    cdef Py_ssize_t parts = nslots if _tapmajor(&g, nslots, isz, budget) else nslots - 1
    return L.nbytes, parts * g.Cout * g.cin_g * g.Kp * isz


cdef void _weight_item(const void *task, floating *buf, Py_ssize_t slot,
                       Py_ssize_t it) noexcept nogil:
    """Every group of one (block of images, tile) into the slot's partial weight."""
    cdef const Task *t = <const Task *> task
    cdef const Geo *g = &t.g
    cdef Py_ssize_t size = g.Cout * t.kc
    cdef floating *acc
    if t.tapmajor:
        acc = <floating *> t.part + slot * size
    elif slot == 0:
        acc = <floating *> t.y
    else:
        acc = <floating *> t.part + (slot - 1) * size
    cdef floating *slab = <floating *> layout_part(&t.buf, buf, 0)
    cdef floating *gyt = <floating *> layout_part(&t.buf, buf, 1)
    cdef Py_ssize_t *off = <Py_ssize_t *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t *seg = <Py_ssize_t *> layout_part(&t.buf, buf, 3)
    cdef pc_slab *sl = <pc_slab *> layout_part(&t.buf, buf, 4)
    cdef Py_ssize_t *pos = <Py_ssize_t *> layout_part(&t.buf, buf, 5)
    cdef Py_ssize_t n0 = it // t.ntiles * t.images, tt = it % t.ntiles
    cdef Py_ssize_t nimg = min(t.images, g.N - n0)
    cdef Py_ssize_t grp, nseg, nval, b, s, i, img
    if (t.tapmajor or slot > 0) and it == slot * t.nitems // t.nslots:   # its first item
        memset(acc, 0, size * sizeof(floating))
    pc_slab_geo(g, t.A, tt * t.rows, min((tt + 1) * t.rows, g.osz[t.A]), sl)
    pc_slab_offsets(g, sl, off)
    nseg = pc_slab_segments(g, sl, seg)
    nval = seg[3 * nseg - 2] + seg[3 * nseg - 1]
    img = g.cin_g * sl.plane          # image b's slab starts at b * img
    for b in range(nimg):             # pos[j]: the slab position of valid position j
        for s in range(nseg):
            for i in range(seg[3 * s + 2]):
                pos[b * nval + seg[3 * s + 1] + i] = b * img + seg[3 * s] + i
    for grp in range(g.G):
        for b in range(nimg):
            slab_fill(g, sl, <const floating *> t.x + ((n0 + b) * g.Cin + grp * g.cin_g) * g.Pin,
                      slab + b * img, t.slab_n - nimg * img if b == nimg - 1 else 0)
            pack_gy(g, sl, <const floating *> t.w + ((n0 + b) * g.Cout + grp * g.cout_g) * g.Pout,
                    t.nr, gyt + b * nval * t.nr, nimg * nval)
        if t.tapmajor:
            wpanels(t.level, t.kc, g.cout_g, slab, off, pos, gyt, nimg * nval,
                    acc + grp * g.cout_g * t.kc, g.cout_g, 1)
        else:
            wpanels(t.level, t.kc, g.cout_g, slab, off, pos, gyt, nimg * nval,
                    acc + grp * g.cout_g * t.kc, 1, t.kc)


cdef void _gather(floating *gw, const floating *acc, Py_ssize_t nparts, Py_ssize_t size,
                  Py_ssize_t cout_g, Py_ssize_t kc, Py_ssize_t grp, Py_ssize_t k0,
                  Py_ssize_t k1) noexcept nogil:
    """``gw[grp*cout_g + co, k] = acc[0] + acc[1] + ...`` (in that order) at the
    tap-major ``[grp][k][co]`` of every partial, for taps ``k0 .. k1`` (at most 16):
    16 x 16 blocks summed along the partials' rows, then transposed."""
    cdef floating tmp[256]
    cdef Py_ssize_t c0, cn, co, k, s, e
    for c0 in range(0, cout_g, 16):
        cn = min(16, cout_g - c0)
        for k in range(k0, k1):
            e = (grp * kc + k) * cout_g + c0
            for co in range(cn):
                tmp[(k - k0) * 16 + co] = acc[e + co]
            for s in range(1, nparts):
                for co in range(cn):
                    tmp[(k - k0) * 16 + co] = tmp[(k - k0) * 16 + co] + acc[s * size + e + co]
        for co in range(cn):
            for k in range(k0, k1):
                gw[(grp * cout_g + c0 + co) * kc + k] = tmp[(k - k0) * 16 + co]


cdef int _conv_weight(const floating *x, const floating *gy, floating *gw, tuple geo,
                      Py_ssize_t rows, Py_ssize_t images, Py_ssize_t nslots, int level,
                      Py_ssize_t nrw, int nthreads, Py_ssize_t budget) except -1:
    """The body of :func:`conv_weight`."""
    cdef Task t
    cdef Py_ssize_t size, nparts, blk, nblk
    cdef Py_ssize_t KB = 16     # taps per block of the gather (its reads: KB rows of each partial)
    cdef floating *acc
    t.g = make_geo(geo)
    t.A = outer_axis(&t.g)
    t.rows, t.ntiles = rows, (t.g.osz[t.A] + rows - 1) // rows
    t.kc, t.nr, t.level = t.g.cin_g * t.g.Kp, nrw, level
    t.x, t.w, t.y, t.b = x, gy, gw, NULL
    if images < 1:
        raise ValueError("conv_weight: images must be at least 1")
    t.images = images
    t.nitems = (t.g.N + images - 1) // images * t.ntiles
    t.nslots = min(nslots, t.nitems)
    t.slab_n = _weight_layout(&t.g, rows, nrw, images, sizeof(floating), &t.buf)
    size = t.g.Cout * t.kc
    t.tapmajor = _tapmajor(&t.g, t.nslots, sizeof(floating), budget)
    nparts = t.nslots if t.tapmajor else t.nslots - 1
    t.part = NULL
    if nparts > 0:
        t.part = pc_alloc(nparts * size * sizeof(floating))
        if t.part == NULL:
            raise MemoryError()
    try:
        run_items[floating](_weight_item[floating], &t, t.nitems, t.nslots, t.buf.nbytes,
                            nthreads)
        acc = <floating *> t.part
        with nogil:
            if not t.tapmajor:
                reduce_partials(gw, acc, size, nparts, nthreads)
            else:
                # the partials' sum, transposed into gw, in blocks of taps
                nblk = (t.kc + KB - 1) // KB
                if nthreads > 1 and t.g.G * nblk > 1:
                    for blk in prange(t.g.G * nblk, schedule='static',
                                      num_threads=min(nthreads, t.g.G * nblk)):
                        _gather(gw, acc, nparts, size, t.g.cout_g, t.kc, blk // nblk,
                                blk % nblk * KB, min(t.kc, blk % nblk * KB + KB))
                else:
                    for blk in range(t.g.G * nblk):
                        _gather(gw, acc, nparts, size, t.g.cout_g, t.kc, blk // nblk,
                                blk % nblk * KB, min(t.kc, blk % nblk * KB + KB))
    finally:
        free(t.part)
    return 0


def conv_weight(cnp.ndarray x, cnp.ndarray gy, cnp.ndarray gw, tuple geo, Py_ssize_t rows,
                Py_ssize_t images, Py_ssize_t nslots, int level, Py_ssize_t nrw, int nthreads,
                Py_ssize_t budget):
    """Stride-1 weight gradient; items = (block of ``images`` images, tile of
    ``rows`` output rows).

    ``gw`` must be zeroed; the partials are allocated here (``budget``: the
    bytes they may take, see :func:`weight_workspace`).
    """
    cdef Operands o
    operands(&o, x, gy, None, gw)
    if o.dbl:
        _conv_weight(<const double *> o.x, <const double *> o.w, <double *> o.y, geo, rows, images,
                     nslots, level, nrw, nthreads, budget)
    else:
        _conv_weight(<const float *> o.x, <const float *> o.w, <float *> o.y, geo, rows, images,
                     nslots, level, nrw, nthreads, budget)
