# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``winograd_w`` path: 2-d 3x3 stride-1 conv_weight by Winograd F(3, 4).

The tiles (segments of at most ``L`` tiles of 4x4 outputs of one row of
tiles, in (image, y, x) order, as the forward ``winograd4`` path cuts them)
are taken in ROUNDS of ``sb`` segments, in order.  Each round has two
kinds of work items:

1. the transforms, one item per (group, step of 16 input or output
   channels): the input windows of the round's tiles into ``X[p]``
   (C_in/g x columns, the forward path's input transform ``B^T d B``) and
   the output-gradient tiles into ``Gy[p]`` (``G g G^T``, packed in panels
   of ``nrw`` output channels, ``kernels/winograd_w.h``), both shared by the
   threads;
2. the products, one item per (group, transformed position ``p``, 36 of
   them): ``Mw[p] += X[p] Gy[p]^T`` (C_in/g x C_out/g, tap-major) on the
   weight-gradient micro-kernel (the round's tiles are its reduction).

A position's ``Mw[p]`` is written by one item per round and the rounds come
in order, so each element is one sum in a fixed order whatever the thread
count (bitwise determinism without partial sums).  Last, one item per
(group, input channel) applies ``A^T Mw A`` in double.

All of it runs in ONE OpenMP region (:func:`_run`, with ``run_items``'
Ctrl-C handling): pass ``k`` holds the products of round ``k - 1`` and the
transforms of round ``k`` (two buffers of X and Gy, used by alternate
rounds), the items of a pass are handed out by an atomic counter, and the
passes are separated by a barrier that spins for at most 50 us, then
sleeps (``pc_team_wait``): one barrier per round.

``Mw``, ``X``, ``Gy`` and the threads' blocks (tens of MB at 256 channels)
live in one buffer kept from call to call while the sizes fit
(:func:`_acquire`): a call does not map and fault in its memory again.  A
call made while another Python thread's call holds it maps its own.
:func:`workspace` reports the bytes the kernels use.
"""

from libc.string cimport memset

from cython cimport floating

import numpy as np

from cython.parallel cimport parallel

cimport numpy as cnp
from pyconv._cy._common cimport (Layout, Operands, PC_POLL_SECONDS, PyErr_Restore, PyObject,
                                 _in_main_thread, layout_add, layout_init, layout_part, make_geo,
                                 operands, pc_ctl, pc_geo, pc_now, pc_team_bar, pc_team_size,
                                 pc_team_wait, pc_thread_num, stop_requested, wpanels)
from pyconv._cy._wino cimport (input_block, pc_wino, pc_wino_halo, pc_wino_ldv, pc_wino_scratch,
                               segments)

cnp.import_array()   # NumPy's C API, for operands()


cdef extern from "kernels/winograd_w.h" nogil:
    enum: PC_WGW_CCH
    Py_ssize_t pc_wgw_scratch(Py_ssize_t ldv)
    ctypedef struct pc_wgw_mem:
        void *base
        size_t len
    Py_ssize_t pc_wgw_take(Py_ssize_t *ctr)
    void *pc_wgw_map(size_t nbytes, pc_wgw_mem *m)
    void pc_wgw_unmap(pc_wgw_mem *m)
    void pc_wgw_gy_f(const pc_wino *wg, const double *G, const float *gy, Py_ssize_t grp,
                     const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L, Py_ssize_t w,
                     Py_ssize_t ldv, const Py_ssize_t *pos, Py_ssize_t nval, Py_ssize_t c0,
                     Py_ssize_t c1, Py_ssize_t nrw, float *Gp, float *scratch)
    void pc_wgw_gy_d(const pc_wino *wg, const double *G, const double *gy, Py_ssize_t grp,
                     const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L, Py_ssize_t w,
                     Py_ssize_t ldv, const Py_ssize_t *pos, Py_ssize_t nval, Py_ssize_t c0,
                     Py_ssize_t c1, Py_ssize_t nrw, double *Gp, double *scratch)
    void pc_wgw_finish_f(const double *At, const float *mw, Py_ssize_t nslots, Py_ssize_t G,
                         Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t grp, Py_ssize_t ci,
                         double *tmp, float *dw)
    void pc_wgw_finish_d(const double *At, const double *mw, Py_ssize_t nslots, Py_ssize_t G,
                         Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t grp, Py_ssize_t ci,
                         double *tmp, double *dw)


# ---------------------------------------------------------------------------
# fused wrappers

cdef inline void wgw_gy(const pc_wino *wg, const double *G, const floating *gy, Py_ssize_t grp,
                        const Py_ssize_t *seg, Py_ssize_t nseg, Py_ssize_t L, Py_ssize_t w,
                        Py_ssize_t ldv, const Py_ssize_t *pos, Py_ssize_t nval, Py_ssize_t c0,
                        Py_ssize_t c1, Py_ssize_t nrw, floating *Gp,
                        floating *scratch) noexcept nogil:
    if floating is float:
        pc_wgw_gy_f(wg, G, gy, grp, seg, nseg, L, w, ldv, pos, nval, c0, c1, nrw, Gp, scratch)
    else:
        pc_wgw_gy_d(wg, G, gy, grp, seg, nseg, L, w, ldv, pos, nval, c0, c1, nrw, Gp, scratch)


cdef inline void wgw_finish(const double *At, const floating *mw, Py_ssize_t nslots,
                            Py_ssize_t G, Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t grp,
                            Py_ssize_t ci, double *tmp, floating *dw) noexcept nogil:
    if floating is float:
        pc_wgw_finish_f(At, mw, nslots, G, cin_g, cout_g, grp, ci, tmp, dw)
    else:
        pc_wgw_finish_d(At, mw, nslots, G, cin_g, cout_g, grp, ci, tmp, dw)


# ---------------------------------------------------------------------------
# geometry and buffers

cdef struct Task:
    pc_wino wg
    const void *x
    const void *gy
    double gmat[24]     # G of F(3, 4), 6 x 4
    double at[18]       # A^T of F(3, 4), 3 x 6
    void *mw            # the accumulators: [group][p][ci][co]
    void *X             # the round's transformed input: [group][p][ci][ldv]
    void *Gp            # the round's transformed gy: [group][p][panel][column][nrw]
    char *blocks        # the threads' blocks (buf), one per OpenMP thread
    void *dw            # the weight gradient
    Py_ssize_t nblk     # blocks in t.blocks: the region's threads
    const Py_ssize_t *off   # off[ci] = ci * ldv: X[p] as the micro-kernel's slab
    int level
    Py_ssize_t nrw, npan, step
    Py_ssize_t L, segw, chunks, nseg, sb, ldv
    Py_ssize_t nin, nout    # transform items per group: input, output channel steps
    Py_ssize_t nrounds
    Py_ssize_t xsize, gsize     # elements of one round's X, Gy (two of each: rounds alternate)
    Py_ssize_t *ctr         # the passes' item counters
    pc_team_bar bar
    Layout buf


cdef pc_wino make_wino(tuple geo, const double[::1] bt) except *:
    """The forward F(4x4, 3x3) geometry of the call: tiles of 4 on y and x;
    ``bt`` (6 x 6, row-major) is the input transform of both axes."""
    cdef pc_wino wg
    cdef int i, j
    wg.g = make_geo(geo)
    wg.level = 0
    wg.P = 1
    for i in range(3):
        wg.m[i] = 1 if i == 0 else 4
        wg.a[i] = wg.m[i] + wg.g.ks[i] - 1
        wg.nt[i] = (wg.g.osz[i] + wg.m[i] - 1) // wg.m[i]
        wg.P *= wg.a[i]
        for j in range(64):
            wg.bt[i][j] = wg.gm[i][j] = wg.at[i][j] = 0.0
        if i > 0:
            for j in range(36):
                wg.bt[i][j] = bt[j]
    wg.bt[0][0] = wg.gm[0][0] = wg.at[0][0] = 1.0
    return wg


cdef Py_ssize_t _rounds(const pc_wino *wg, Py_ssize_t L, Py_ssize_t sb) noexcept nogil:
    """Rounds of ``sb`` segments of ``L`` tiles."""
    cdef Py_ssize_t chunks = (wg.nt[2] + L - 1) // L
    return (wg.g.N * wg.nt[1] * chunks + sb - 1) // sb


cdef Py_ssize_t _layout(const pc_wino *wg, Py_ssize_t L, Py_ssize_t sb, Py_ssize_t nrw,
                        Py_ssize_t isz, Layout *shared, Layout *lay) noexcept nogil:
    """The buffers of rounds of ``sb`` segments of ``L`` tiles: the shared
    ones (``shared``) and one thread's (``lay``); returns ldv."""
    cdef Py_ssize_t q = sb * (L + pc_wino_halo(wg))
    cdef Py_ssize_t ldv = pc_wino_ldv(q)
    cdef Py_ssize_t npan = (wg.g.cout_g + nrw - 1) // nrw
    cdef Py_ssize_t G = wg.g.G
    layout_init(shared)
    layout_add(shared, G * wg.P * wg.g.cin_g * wg.g.cout_g * isz)   # 0: Mw
    layout_add(shared, 2 * G * wg.P * wg.g.cin_g * ldv * isz)       # 1: X, two rounds'
    layout_add(shared, 2 * G * wg.P * npan * nrw * sb * L * isz)    # 2: Gy, packed, two rounds'
    layout_add(shared, wg.g.cin_g * sizeof(Py_ssize_t))             # 3: the slab offsets
    layout_add(shared, (_rounds(wg, L, sb) + 2) * sizeof(Py_ssize_t))   # 4: the counters
    layout_init(lay)
    layout_add(lay, max(max(pc_wino_scratch(wg, ldv), pc_wgw_scratch(ldv)) * isz,  # 0: scratch
                        <Py_ssize_t> (63 * wg.g.cout_g * sizeof(double))))   # (back transform)
    layout_add(lay, 4 * sb * sizeof(Py_ssize_t))                   # 1: the segments
    layout_add(lay, (2 * wg.m[2] + 2) * sb * sizeof(Py_ssize_t))   # 2: their x ranges
    layout_add(lay, sb * L * sizeof(Py_ssize_t))                   # 3: the tiles' columns
    return ldv


def workspace(tuple geo, Py_ssize_t L, Py_ssize_t sb, Py_ssize_t nrw, bint dbl):
    """(bytes per thread, shared bytes) of :func:`conv_weight` with rounds
    of ``sb`` segments of ``L`` tiles (the shared bytes include the rounding
    of their mapping to 2 MiB pages)."""
    cdef pc_wino wg = make_wino(geo, np.zeros(36))
    cdef Layout shared, lay
    cdef Py_ssize_t isz = 8 if dbl else 4
    _layout(&wg, L, sb, nrw, isz, &shared, &lay)
    return lay.nbytes, shared.nbytes + (4 << 20)


# ---------------------------------------------------------------------------
# the buffer kept from call to call

cdef pc_wgw_mem _pool_mem
cdef char *_pool = NULL
cdef size_t _pool_bytes = 0
cdef bint _pool_busy = False
_pool_mem.base = NULL
_pool_mem.len = 0


cdef char *_acquire(size_t nbytes, pc_wgw_mem *own) except? NULL:
    """``nbytes`` of memory for one call: the kept buffer (remapped when it is
    smaller than ``nbytes``) or, while another call holds it, a fresh mapping
    in ``own`` (``own.base`` NULL: the kept one was taken).  Runs with the
    GIL, so the check of the flag and its setting are one step."""
    global _pool, _pool_bytes, _pool_busy
    own.base = NULL
    own.len = 0
    if _pool_busy:
        return <char *> pc_wgw_map(nbytes, own)
    if _pool_bytes < nbytes:
        pc_wgw_unmap(&_pool_mem)
        _pool_bytes = 0
        _pool = <char *> pc_wgw_map(nbytes, &_pool_mem)
        if _pool == NULL:
            return NULL
        _pool_bytes = nbytes
    _pool_busy = True
    return _pool


cdef void _release(pc_wgw_mem *own) noexcept:
    """Give back what :func:`_acquire` handed out."""
    global _pool_busy
    if own.base != NULL:
        pc_wgw_unmap(own)
    else:
        _pool_busy = False


def release():
    """Unmap the buffer kept from call to call (the next call maps a new one)."""
    global _pool, _pool_bytes
    if not _pool_busy:
        pc_wgw_unmap(&_pool_mem)
        _pool = NULL
        _pool_bytes = 0


# ---------------------------------------------------------------------------
# the passes

cdef inline Py_ssize_t _round_tiles(const Task *t, Py_ssize_t r, Py_ssize_t *seg,
                                    Py_ssize_t *pos, Py_ssize_t *nseg) noexcept nogil:
    """The round's segments (``seg``) and the columns that hold tiles
    (``pos``); returns their count, ``nseg`` the segments'."""
    cdef const pc_wino *wg = &t.wg
    cdef Py_ssize_t s0 = r * t.sb, s1 = min(s0 + t.sb, t.nseg)
    cdef Py_ssize_t nval = 0, i, j
    segments(wg, s0, s1, t.chunks, t.L, seg)
    for i in range(s1 - s0):
        for j in range(min(t.L, wg.nt[2] - seg[4 * i + 3])):
            pos[nval] = i * t.segw + j
            nval += 1
    nseg[0] = s1 - s0
    return nval


cdef void _transform(const Task *t, char *buf, Py_ssize_t r, Py_ssize_t it,
                     floating *unused) noexcept nogil:
    """Pass 1: one group's step of input channels (into X) or of output
    channels (into Gy) for the round's tiles."""
    cdef const pc_wino *wg = &t.wg
    cdef const pc_geo *g = &t.wg.g
    cdef floating *scratch = <floating *> layout_part(&t.buf, buf, 0)
    cdef Py_ssize_t *seg = <Py_ssize_t *> layout_part(&t.buf, buf, 1)
    cdef Py_ssize_t *rng = <Py_ssize_t *> layout_part(&t.buf, buf, 2)
    cdef Py_ssize_t *pos = <Py_ssize_t *> layout_part(&t.buf, buf, 3)
    cdef Py_ssize_t grp = it // (t.nin + t.nout), k = it % (t.nin + t.nout)
    cdef Py_ssize_t nseg, c0
    cdef Py_ssize_t nval = _round_tiles(t, r, seg, pos, &nseg)
    if k < t.nin:
        c0 = k * PC_WGW_CCH
        input_block(wg, <const floating *> t.x, grp, seg, nseg, t.segw, t.ldv, c0,
                    min(c0 + PC_WGW_CCH, g.cin_g),
                    <floating *> t.X + (r & 1) * t.xsize + grp * wg.P * g.cin_g * t.ldv,
                    scratch, rng)
    else:
        c0 = (k - t.nin) * t.step
        wgw_gy(wg, t.gmat, <const floating *> t.gy, grp, seg, nseg, t.L, t.segw, t.ldv, pos,
               nval, c0, min(c0 + t.step, g.cout_g), t.nrw,
               <floating *> t.Gp + (r & 1) * t.gsize + grp * wg.P * t.npan * t.nrw * t.sb * t.L,
               scratch)


cdef void _products(const Task *t, char *buf, Py_ssize_t r, Py_ssize_t it,
                    floating *unused) noexcept nogil:
    """Pass 2: ``Mw[p] += X[p] Gy[p]^T`` of one (group, position) over the
    round's tiles (the first round starts the sum from zero)."""
    cdef const pc_wino *wg = &t.wg
    cdef const pc_geo *g = &t.wg.g
    cdef Py_ssize_t *seg = <Py_ssize_t *> layout_part(&t.buf, buf, 1)
    cdef Py_ssize_t *pos = <Py_ssize_t *> layout_part(&t.buf, buf, 3)
    cdef Py_ssize_t grp = it // wg.P, p = it % wg.P
    cdef Py_ssize_t nseg
    cdef Py_ssize_t nval = _round_tiles(t, r, seg, pos, &nseg)
    cdef floating *mw = <floating *> t.mw + (grp * wg.P + p) * g.cin_g * g.cout_g
    if r == 0:
        memset(mw, 0, g.cin_g * g.cout_g * sizeof(floating))
    wpanels(t.level, g.cin_g, g.cout_g,
            <floating *> t.X + (r & 1) * t.xsize + (grp * wg.P + p) * g.cin_g * t.ldv, t.off, pos,
            <floating *> t.Gp + (r & 1) * t.gsize + grp * wg.P * t.npan * t.nrw * t.sb * t.L
            + p * t.npan * t.nrw * nval, nval,
            mw, g.cout_g, 1)


cdef void _finish_item(const Task *t, char *buf, Py_ssize_t r, Py_ssize_t it,
                       floating *unused) noexcept nogil:
    """The weight gradient of one (group, input channel)."""
    cdef const pc_geo *g = &t.wg.g
    wgw_finish(t.at, <const floating *> t.mw, 1, g.G, g.cin_g, g.cout_g, it // g.cin_g,
               it % g.cin_g, <double *> buf, <floating *> t.dw)


cdef void _pass(Task *t, char *buf, Py_ssize_t k, pc_ctl *ctl, floating *unused) noexcept nogil:
    """Pass ``k`` (0 to nrounds): the products of round k - 1 (if any), then
    the transforms of round k (if any, into the other of the two buffers),
    taken one at a time from the pass's counter until none is left or a stop
    is requested."""
    cdef Py_ssize_t nprod = t.wg.g.G * t.wg.P if k > 0 else 0
    cdef Py_ssize_t ntr = t.wg.g.G * (t.nin + t.nout) if k < t.nrounds else 0
    cdef Py_ssize_t it
    while not stop_requested(ctl):
        it = pc_wgw_take(&t.ctr[k])
        if it >= nprod + ntr:
            return
        if it < nprod:
            _products(t, buf, k - 1, it, unused)
        else:
            _transform(t, buf, k, it - nprod, unused)


cdef void _passes(Task *t, Py_ssize_t tid, pc_ctl *ctl, floating *unused) noexcept nogil:
    """One thread's share of every pass, a barrier after each (the products
    of a round start when its transforms have ended, and the transforms of
    round r + 2 when the products of round r have), then the back
    transforms.  ``tid``: the thread's block."""
    cdef char *buf = t.blocks + tid * t.buf.nbytes
    cdef int team = pc_team_size()
    cdef int sense = 0
    cdef Py_ssize_t k, it, n = t.wg.g.G * t.wg.g.cin_g
    for k in range(t.nrounds + 1):
        _pass(t, buf, k, ctl, unused)
        pc_team_wait(&t.bar, team, &sense)
    while not stop_requested(ctl):
        it = pc_wgw_take(&t.ctr[t.nrounds + 1])
        if it >= n:
            return
        _finish_item(t, buf, 0, it, unused)


cdef int _conv_weight(const floating *x, const floating *gy, floating *gw, tuple geo,
                      const double[::1] bt, const double[::1] gmat, const double[::1] at,
                      Py_ssize_t L, Py_ssize_t sb, int level, Py_ssize_t nrw,
                      int nthreads) except -1:
    """The body of :func:`conv_weight`."""
    cdef Task t
    cdef Layout shared
    cdef Py_ssize_t i
    cdef Py_ssize_t *off
    cdef char *mem
    cdef pc_wgw_mem own
    t.wg = make_wino(geo, bt)
    t.wg.level = level
    for i in range(24):
        t.gmat[i] = gmat[i]
    for i in range(18):
        t.at[i] = at[i]
    t.L = min(L, t.wg.nt[2])
    t.segw = t.L + pc_wino_halo(&t.wg)
    t.chunks = (t.wg.nt[2] + t.L - 1) // t.L
    t.nseg = t.wg.g.N * t.wg.nt[1] * t.chunks
    t.sb = max(1, min(sb, t.nseg))
    t.nrw, t.level = nrw, level
    t.step = min(<Py_ssize_t> PC_WGW_CCH, nrw)
    t.npan = (t.wg.g.cout_g + nrw - 1) // nrw
    t.nin = (t.wg.g.cin_g + PC_WGW_CCH - 1) // PC_WGW_CCH
    t.nout = (t.wg.g.cout_g + t.step - 1) // t.step
    t.x, t.gy = x, gy
    t.dw = gw
    t.ldv = _layout(&t.wg, t.L, t.sb, nrw, sizeof(floating), &shared, &t.buf)
    t.nrounds = (t.nseg + t.sb - 1) // t.sb
    t.xsize = t.wg.g.G * t.wg.P * t.wg.g.cin_g * t.ldv
    t.gsize = t.wg.g.G * t.wg.P * t.npan * t.nrw * t.sb * t.L
    t.nblk = max(1, min(<Py_ssize_t> nthreads,
                        t.wg.g.G * max(t.wg.P, t.nin + t.nout, t.wg.g.cin_g)))
    mem = _acquire(shared.nbytes + t.nblk * t.buf.nbytes, &own)
    if mem == NULL:
        raise MemoryError("cython backend: could not map the winograd_w buffers")
    try:
        t.mw = layout_part(&shared, mem, 0)
        t.X = layout_part(&shared, mem, 1)
        t.Gp = layout_part(&shared, mem, 2)
        off = <Py_ssize_t *> layout_part(&shared, mem, 3)
        t.ctr = <Py_ssize_t *> layout_part(&shared, mem, 4)
        t.blocks = mem + shared.nbytes
        for i in range(t.wg.g.cin_g):
            off[i] = i * t.ldv
        for i in range(t.nrounds + 2):
            t.ctr[i] = 0
        t.off = off
        t.bar.count = t.bar.sense = t.bar.sleepers = 0
        _run(&t, <int> t.nblk, <floating *> NULL)
    finally:
        _release(&own)
    return 0


def conv_weight(cnp.ndarray x, cnp.ndarray gy, cnp.ndarray gw, tuple geo, const double[::1] bt,
                const double[::1] gmat, const double[::1] at, Py_ssize_t L, Py_ssize_t sb,
                int level, Py_ssize_t nrw, int nthreads):
    """The weight gradient ``gw`` of a 2-d 3x3 stride-1, dilation-1 conv.

    ``bt`` (6 x 6): B^T, ``gmat`` (6 x 4): G, ``at`` (3 x 6): A^T of
    F(3, 4), each flattened row-major; rounds of ``sb`` segments of ``L``
    tiles, each two passes (transforms, then one product per transformed
    position); then one item per (group, input channel) transforms the sums
    back (in double).
    """
    cdef Operands o
    operands(&o, x, gy, None, gw)
    if o.dbl:
        _conv_weight(<const double *> o.x, <const double *> o.w, <double *> o.y, geo, bt, gmat, at,
                     L, sb, level, nrw, nthreads)
    else:
        _conv_weight(<const float *> o.x, <const float *> o.w, <float *> o.y, geo, bt, gmat, at, L,
                     sb, level, nrw, nthreads)


cdef int _run(Task *t, int nthreads, floating *unused) except -1:
    """:func:`_passes` on ``nthreads`` threads, in one parallel region (none
    for one thread), with the Ctrl-C handling of ``run_items``: thread 0 of
    a call from the main Python thread polls for signals between items, and
    the exception is raised once the threads have joined."""
    cdef pc_ctl ctl
    cdef pc_ctl *c = &ctl
    ctl.stop = 0
    ctl.failed = 0
    ctl.poll = _in_main_thread()
    ctl.interval = PC_POLL_SECONDS
    ctl.exc[0] = ctl.exc[1] = ctl.exc[2] = NULL
    with nogil:
        ctl.next = pc_now() + PC_POLL_SECONDS
        if nthreads <= 1:
            _passes(t, 0, c, unused)
        else:
            with parallel(num_threads=nthreads):
                _passes(t, pc_thread_num(), c, unused)
    if ctl.exc[0] != NULL:
        PyErr_Restore(<PyObject *> ctl.exc[0], <PyObject *> ctl.exc[1],
                      <PyObject *> ctl.exc[2])
        return -1
    return 0
