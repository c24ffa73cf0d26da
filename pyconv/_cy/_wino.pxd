# cython: language_level=3
"""What the two Winograd kernel modules share (``_winograd.pyx``, ``_winograd_w.pyx``):
the transform's struct and the input side (``kernels/winograd.h``): the
de-interleaving load of a block's input rows and the input transform, with
their fused float/double wrappers, the two in steps of a few channels
(:func:`input_block`), and where a block's segments lie (:func:`segments`)."""

from cython cimport floating

from pyconv._cy._common cimport pc_geo

cdef extern from "kernels/winograd.h" nogil:
    ctypedef struct pc_wino:
        pc_geo g
        Py_ssize_t m[3]
        Py_ssize_t a[3]
        Py_ssize_t nt[3]
        Py_ssize_t P
        double bt[3][64]
        double gm[3][64]
        double at[3][64]
        int level
    int PC_WINO_FCH
    enum: PC_WINO_CCH
    Py_ssize_t pc_wino_halo(const pc_wino *wg)
    Py_ssize_t pc_wino_ldv(Py_ssize_t q)
    Py_ssize_t pc_wino_scratch(const pc_wino *wg, Py_ssize_t ldv)
    void pc_wino_load_block_f(const pc_wino *wg, const float *x, Py_ssize_t grp,
                              const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t w,
                              Py_ssize_t ldv, Py_ssize_t c0, Py_ssize_t c1,
                              Py_ssize_t *rng, float *D)
    void pc_wino_load_block_d(const pc_wino *wg, const double *x, Py_ssize_t grp,
                              const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t w,
                              Py_ssize_t ldv, Py_ssize_t c0, Py_ssize_t c1,
                              Py_ssize_t *rng, double *D)
    void pc_wino_input_f(const pc_wino *wg, Py_ssize_t q, Py_ssize_t ldv, Py_ssize_t c0,
                         Py_ssize_t c1, float *V, float *scratch)
    void pc_wino_input_d(const pc_wino *wg, Py_ssize_t q, Py_ssize_t ldv, Py_ssize_t c0,
                         Py_ssize_t c1, double *V, double *scratch)


cdef inline void load_block(const pc_wino *wg, const floating *x, Py_ssize_t grp,
                            const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t w,
                            Py_ssize_t ldv, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t *rng,
                            floating *D) noexcept nogil:
    if floating is float:
        pc_wino_load_block_f(wg, x, grp, seg, nseg, w, ldv, c0, c1, rng, D)
    else:
        pc_wino_load_block_d(wg, x, grp, seg, nseg, w, ldv, c0, c1, rng, D)


cdef inline void wino_input(const pc_wino *wg, Py_ssize_t q, Py_ssize_t ldv, Py_ssize_t c0,
                            Py_ssize_t c1, floating *V, floating *scratch) noexcept nogil:
    if floating is float:
        pc_wino_input_f(wg, q, ldv, c0, c1, V, scratch)
    else:
        pc_wino_input_d(wg, q, ldv, c0, c1, V, scratch)


cdef inline void input_block(const pc_wino *wg, const floating *x, Py_ssize_t grp,
                             const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t w,
                             Py_ssize_t ldv, Py_ssize_t ci0, Py_ssize_t ci1, floating *V,
                             floating *scratch, Py_ssize_t *rng) noexcept nogil:
    """Input channels [ci0, ci1) of a block of ``nseg`` segments of ``w`` columns
    into V, ``PC_WINO_CCH`` at a time (a step's rows stay in the L1 cache from
    the load to the transform)."""
    cdef Py_ssize_t c0 = ci0, c1
    while c0 < ci1:
        c1 = min(c0 + PC_WINO_CCH, ci1)
        load_block(wg, x, grp, seg, nseg, w, ldv, c0, c1, rng, scratch)
        wino_input(wg, nseg * w, ldv, c0, c1, V, scratch)
        c0 = c1


cdef inline void segments(const pc_wino *wg, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t chunks,
                          Py_ssize_t L, Py_ssize_t *seg) noexcept nogil:
    """(image, tz, ty, first tile) of segments [s0, s1) into ``seg``, 4 each:
    segments in (image, z, y, x) order, each row of tiles cut into ``chunks``
    segments of ``L`` tiles."""
    cdef Py_ssize_t rows = wg.nt[0] * wg.nt[1]
    cdef Py_ssize_t i, r
    for i in range(s1 - s0):
        r = (s0 + i) // chunks
        seg[4 * i] = r // rows
        seg[4 * i + 1] = (r % rows) // wg.nt[1]
        seg[4 * i + 2] = r % wg.nt[1]
        seg[4 * i + 3] = ((s0 + i) % chunks) * L
