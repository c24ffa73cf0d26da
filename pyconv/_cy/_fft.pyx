# cython: language_level=3
# Compiler directives (boundscheck/wraparound off, cdivision on, ...) come from
# setup.py so that PYCONV_CYTHON_DEBUG=1 at build time can turn the checks on.
"""Kernels of the ``fft`` path: the frame gather and scatter, the complex channel product.

The FFTs themselves are SciPy's (:mod:`scipy.fft`); the path unit
(:mod:`pyconv._cy.paths.fft`) calls these functions once per work item,
from its own threads: every function here releases the GIL, checks the
sizes it is given against the arrays (a ``ValueError``, never an
out-of-bounds access) and works on flat C-contiguous arrays with element
offsets, so that an item costs no array slicing.  The loops are in
``kernels/fft.h``.
"""

from libc.stdlib cimport free, malloc

import numpy as np


cdef extern from "kernels/fft.h" nogil:
    ctypedef struct pc_fft_axis:
        Py_ssize_t size, S, off, step, len, n, nblk, nres
        const Py_ssize_t *res
    Py_ssize_t pc_fft_frames(const pc_fft_axis *ax)
    Py_ssize_t pc_fft_phases(const pc_fft_axis *ax)
    void pc_fft_gather_ff(const pc_fft_axis *ax, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C,
                          const float *src, Py_ssize_t img, float *buf)
    void pc_fft_gather_fd(const pc_fft_axis *ax, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C,
                          const float *src, Py_ssize_t img, double *buf)
    void pc_fft_gather_dd(const pc_fft_axis *ax, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C,
                          const double *src, Py_ssize_t img, double *buf)
    void pc_fft_scatter_ff(const pc_fft_axis *ax, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C,
                           const float *buf, float *dst, Py_ssize_t img, const float *bias)
    void pc_fft_scatter_df(const pc_fft_axis *ax, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C,
                           const double *buf, float *dst, Py_ssize_t img, const float *bias)
    void pc_fft_scatter_dd(const pc_fft_axis *ax, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C,
                           const double *buf, double *dst, Py_ssize_t img, const double *bias)
    Py_ssize_t pc_fft_chunk(int dbl, int level)
    void pc_fft_pack_f(int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2,
                       Py_ssize_t s2, const float *src, float *dst, Py_ssize_t cs)
    void pc_fft_pack_d(int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2,
                       Py_ssize_t s2, const double *src, double *dst, Py_ssize_t cs)
    void pc_fft_unpack_f(int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2,
                         Py_ssize_t s2, const float *src, float *dst, Py_ssize_t cs)
    void pc_fft_unpack_d(int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2,
                         Py_ssize_t s2, const double *src, double *dst, Py_ssize_t cs)
    void pc_fft_cgemm_f(int level, Py_ssize_t F, Py_ssize_t I, Py_ssize_t J, Py_ssize_t L,
                        const float *A, const float *B, float *C, Py_ssize_t ci, Py_ssize_t cj,
                        int cpacked, int conj, int acc)
    void pc_fft_cgemm_d(int level, Py_ssize_t F, Py_ssize_t I, Py_ssize_t J, Py_ssize_t L,
                        const double *A, const double *B, double *C, Py_ssize_t ci,
                        Py_ssize_t cj, int cpacked, int conj, int acc)

cdef Py_ssize_t _f32 = 1, _f64 = 2


cdef int _kind(a, str what, bint out=False) except 0:
    """1 for float32 (or complex64), 2 for float64 (or complex128)."""
    if not isinstance(a, np.ndarray) or a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(f"{what}: expected a flat C-contiguous ndarray")
    if out and not a.flags.writeable:
        raise ValueError(f"{what}: the array is read-only")
    if a.dtype == np.float32 or a.dtype == np.complex64:
        return _f32
    if a.dtype == np.float64 or a.dtype == np.complex128:
        return _f64
    raise ValueError(f"{what}: unsupported dtype {a.dtype}")


cdef Py_ssize_t _address(a):
    return a.__array_interface__["data"][0]


cdef class Frames:
    """A frame mapping: per canonical axis (z, y, x) the tuple
    ``(size, S, off, step, len, n, nblk, residues)`` (see ``kernels/fft.h``).

    Built once per call; every item's gather or scatter reuses it.
    """

    cdef pc_fft_axis ax[3]
    cdef Py_ssize_t *res
    cdef readonly Py_ssize_t frames, phases, length, extent

    def __cinit__(self, axes):
        cdef Py_ssize_t total = 0, i, a, k = 0
        axes = [tuple(v) for v in axes]
        if len(axes) != 3 or any(len(v) != 8 for v in axes):
            raise ValueError("Frames: three axes of 8 fields each")
        for v in axes:
            total += len(v[7])
        self.res = <Py_ssize_t *> malloc(max(1, total) * sizeof(Py_ssize_t))
        if self.res == NULL:
            raise MemoryError()
        for a in range(3):
            size, S, off, step, length, n, nblk, residues = axes[a]
            if size < 1 or S < 1 or step < 1 or length < 0 or n < 1 or nblk < 1 or not residues:
                raise ValueError(f"Frames: invalid axis {axes[a]}")
            self.ax[a].size, self.ax[a].S, self.ax[a].off = size, S, off
            self.ax[a].step, self.ax[a].len, self.ax[a].n = step, length, n
            self.ax[a].nblk, self.ax[a].nres = nblk, len(residues)
            self.ax[a].res = self.res + k
            for i in range(len(residues)):
                self.res[k] = residues[i]
                k += 1
        self.frames = pc_fft_frames(self.ax)
        self.phases = pc_fft_phases(self.ax)
        self.length = self.ax[0].n * self.ax[1].n * self.ax[2].n
        self.extent = self.ax[0].size * self.ax[1].size * self.ax[2].size

    def __dealloc__(self):
        free(self.res)


cdef _check_frames(Frames m, Py_ssize_t f0, Py_ssize_t T, Py_ssize_t C, Py_ssize_t img,
                   Py_ssize_t arr_off, Py_ssize_t arr_size, Py_ssize_t buf_size, str what):
    """The frames' images lie in the array and the frames in the buffer."""
    cdef Py_ssize_t last
    if f0 < 0 or T < 1 or C < 1 or img < C * m.extent or arr_off < 0:
        raise ValueError(f"{what}: invalid frames f0={f0} T={T} C={C} img={img}")
    last = (f0 + T - 1) // m.frames
    if arr_off + last * img + C * m.extent > arr_size:
        raise ValueError(f"{what}: frames {f0}..{f0 + T - 1} reach past the array")
    if T * C * m.phases * m.length > buf_size:
        raise ValueError(f"{what}: the buffer holds fewer than {T} frames")


def gather(Frames m, src, Py_ssize_t src_off, Py_ssize_t img, Py_ssize_t f0, Py_ssize_t T,
           Py_ssize_t C, buf):
    """Frames ``f0 .. f0+T-1`` of ``C`` channels of ``src`` (from element ``src_off``,
    images ``img`` elements apart) into ``buf[t][c][phase][frame position]``.

    ``src`` float32 or float64; ``buf`` of the same dtype, or float64 for a
    float32 ``src`` (the transforms in double precision).
    """
    cdef int ks = _kind(src, "gather src"), kb = _kind(buf, "gather buf", True)
    if ks == _f64 and kb == _f32:
        raise ValueError("gather: a float64 source into a float32 buffer")
    _check_frames(m, f0, T, C, img, src_off, src.shape[0], buf.shape[0], "gather")
    cdef Py_ssize_t ps = _address(src), pb = _address(buf)
    with nogil:
        if ks == _f32 and kb == _f32:
            pc_fft_gather_ff(m.ax, f0, T, C, (<const float *> ps) + src_off, img,
                             <float *> pb)
        elif ks == _f32:
            pc_fft_gather_fd(m.ax, f0, T, C, (<const float *> ps) + src_off, img,
                             <double *> pb)
        else:
            pc_fft_gather_dd(m.ax, f0, T, C, (<const double *> ps) + src_off, img,
                             <double *> pb)


def scatter(Frames m, buf, dst, Py_ssize_t dst_off, Py_ssize_t img, Py_ssize_t f0,
            Py_ssize_t T, Py_ssize_t C, bias, Py_ssize_t bias_off):
    """Frames ``f0 .. f0+T-1`` of ``C`` channels (with their phases) from ``buf``
    into ``dst`` (from element ``dst_off``, images ``img`` elements apart),
    adding ``bias[bias_off + c]`` (an empty ``bias``: none).

    ``dst`` float32 or float64; ``buf`` of the same dtype, or float64.
    """
    cdef int kb = _kind(buf, "scatter buf"), kd = _kind(dst, "scatter dst", True)
    cdef int kbias = _kind(bias, "scatter bias")
    _check_frames(m, f0, T, C, img, dst_off, dst.shape[0], buf.shape[0], "scatter")
    if bias.shape[0] and (kbias != kd or bias_off < 0 or bias_off + C > bias.shape[0]):
        raise ValueError("scatter: the bias does not match the channels")
    cdef Py_ssize_t pb = _address(buf), pd = _address(dst)
    cdef Py_ssize_t pbias = _address(bias) if bias.shape[0] else 0
    if kd == _f64 and kb == _f32:
        raise ValueError("scatter: a float32 buffer into a float64 array")
    with nogil:
        if kb == _f32:
            pc_fft_scatter_ff(m.ax, f0, T, C, <const float *> pb, (<float *> pd) + dst_off,
                              img, (<const float *> pbias) + bias_off if pbias else NULL)
        elif kd == _f32:
            pc_fft_scatter_df(m.ax, f0, T, C, <const double *> pb, (<float *> pd) + dst_off,
                              img, (<const float *> pbias) + bias_off if pbias else NULL)
        else:
            pc_fft_scatter_dd(m.ax, f0, T, C, <const double *> pb,
                              (<double *> pd) + dst_off, img,
                              (<const double *> pbias) + bias_off if pbias else NULL)


def chunk(bint dbl, int level):
    """Complex numbers per chunk of the packed spectra (one SIMD vector at ``level``)."""
    _check_level(level)
    return pc_fft_chunk(dbl, level)


cdef _check_level(int level):
    if not 0 <= level <= 2:
        raise ValueError(f"SIMD level must be 0, 1 or 2, got {level}")


cdef int _complex(a, str what, bint out=False) except 0:
    """1 for complex64, 2 for complex128 (flat, C-contiguous)."""
    cdef int k = _kind(a, what, out)
    if a.dtype.kind != "c":
        raise ValueError(f"{what}: expected a complex array, got {a.dtype}")
    return k


cdef _check_room(a, Py_ssize_t off, Py_ssize_t need, str what):
    if off < 0 or need < 0 or off + need > a.shape[0]:
        raise ValueError(f"{what}: {need} elements from {off} do not fit in {a.shape[0]}")


cdef _check_rows(a, Py_ssize_t off, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1,
                 Py_ssize_t n2, Py_ssize_t s2, str what):
    """Every element ``off + i1*s1 + i2*s2 + f`` (i1 < n1, i2 < n2, f < F) is in ``a``."""
    if s1 < 0 or s2 < 0:
        raise ValueError(f"{what}: negative stride")
    _check_room(a, off, (n1 - 1) * s1 + (n2 - 1) * s2 + F, what)


cdef tuple _chunks(str what, int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t n2,
                   Py_ssize_t cs, src, dst):
    """The checks :func:`pack` and :func:`unpack` share: ``(kind, FV, chunks, cs)``,
    or None when there is nothing to move."""
    cdef int ks = _complex(src, what + " src"), kd = _complex(dst, what + " dst", True)
    cdef Py_ssize_t fv
    _check_level(level)
    if ks != kd:
        raise ValueError(f"{what}: src and dst must have one dtype")
    if F < 1 or n1 < 1 or n2 < 1:
        return None
    fv = pc_fft_chunk(ks == _f64, level)
    cs = cs or n1 * n2 * fv
    if cs < n1 * n2 * fv:
        raise ValueError(f"{what}: the chunk stride is shorter than a chunk")
    return ks, fv, (F + fv - 1) // fv, cs


def pack(int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2, Py_ssize_t s2,
         src, Py_ssize_t src_off, dst, Py_ssize_t dst_off, Py_ssize_t cs=0):
    """Rows of spectra into chunks:
    ``dst[dst_off + fc*cs + (i1*n2 + i2)*FV + v] = src[src_off + i1*s1 + i2*s2 + fc*FV + v]``.

    Complex arrays of one dtype; ``FV = chunk(dtype, level)``, zeros past
    ``F`` in the last chunk; ``cs`` the chunk stride (0: ``n1*n2*FV``, one
    packed array; larger: these rows are part of a bigger one).
    """
    cdef int ks
    cdef Py_ssize_t fv, nfc, ps, pd
    chunks = _chunks("pack", level, F, n1, n2, cs, src, dst)
    if chunks is None:
        return
    ks, fv, nfc, cs = chunks
    _check_rows(src, src_off, F, n1, s1, n2, s2, "pack src")
    _check_room(dst, dst_off, (nfc - 1) * cs + n1 * n2 * fv, "pack dst")
    ps, pd = _address(src), _address(dst)
    with nogil:
        if ks == _f32:
            pc_fft_pack_f(level, F, n1, s1, n2, s2, (<const float *> ps) + 2 * src_off,
                          (<float *> pd) + 2 * dst_off, cs)
        else:
            pc_fft_pack_d(level, F, n1, s1, n2, s2, (<const double *> ps) + 2 * src_off,
                          (<double *> pd) + 2 * dst_off, cs)


def unpack(int level, Py_ssize_t F, Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2,
           Py_ssize_t s2, src, Py_ssize_t src_off, dst, Py_ssize_t dst_off,
           Py_ssize_t cs=0):
    """The inverse of :func:`pack`: ``dst[dst_off + i1*s1 + i2*s2 + f]`` from the chunks."""
    cdef int ks
    cdef Py_ssize_t fv, nfc, ps, pd
    chunks = _chunks("unpack", level, F, n1, n2, cs, src, dst)
    if chunks is None:
        return
    ks, fv, nfc, cs = chunks
    _check_room(src, src_off, (nfc - 1) * cs + n1 * n2 * fv, "unpack src")
    _check_rows(dst, dst_off, F, n1, s1, n2, s2, "unpack dst")
    ps, pd = _address(src), _address(dst)
    with nogil:
        if ks == _f32:
            pc_fft_unpack_f(level, F, n1, s1, n2, s2, (<const float *> ps) + 2 * src_off,
                            (<float *> pd) + 2 * dst_off, cs)
        else:
            pc_fft_unpack_d(level, F, n1, s1, n2, s2, (<const double *> ps) + 2 * src_off,
                            (<double *> pd) + 2 * dst_off, cs)


def cgemm(int level, Py_ssize_t F, Py_ssize_t I, Py_ssize_t J, Py_ssize_t L,
          A, Py_ssize_t a_off, B, Py_ssize_t b_off, C, Py_ssize_t c_off,
          Py_ssize_t ci, Py_ssize_t cj, bint cpacked, bint conj, bint acc):
    """For every frequency ``f < F``: ``C[i, j, f] (+)= sum_l opA(A[i, l, f]) B[l, j, f]``.

    ``A`` and ``B`` packed by :func:`pack` (from element ``a_off``, ``b_off``)
    as ``[chunk][i][l]`` and ``[chunk][j][l]``; ``C`` packed as
    ``[chunk][i][j]`` when ``cpacked``, else rows ``C[c_off + i*ci + j*cj + f]``.
    Complex arrays of one dtype.  ``opA`` conjugates when ``conj``; ``acc``
    adds to ``C`` instead of overwriting it.  The sum over ``l`` runs in
    increasing order for every element.  ``level`` picks the SIMD build (2
    AVX-512, 1 AVX2+FMA, 0 baseline) and with it the chunk.
    """
    cdef int ka = _complex(A, "cgemm A"), kb = _complex(B, "cgemm B")
    cdef int kc = _complex(C, "cgemm C", True)
    _check_level(level)
    if not ka == kb == kc:
        raise ValueError("cgemm: A, B and C must have one dtype")
    if F < 0 or I < 0 or J < 0 or L < 0:
        raise ValueError("cgemm: negative size")
    if F == 0 or I == 0 or J == 0:
        return
    cdef Py_ssize_t fv = pc_fft_chunk(ka == _f64, level)
    cdef Py_ssize_t nf = (F + fv - 1) // fv * fv
    _check_room(A, a_off, nf * I * L, "cgemm A")
    _check_room(B, b_off, nf * J * L, "cgemm B")
    if cpacked:
        _check_room(C, c_off, nf * I * J, "cgemm C")
    else:
        _check_rows(C, c_off, F, I, ci, J, cj, "cgemm C")
    cdef Py_ssize_t pa = _address(A), pb = _address(B), pc = _address(C)
    with nogil:
        if ka == _f32:
            pc_fft_cgemm_f(level, F, I, J, L, (<const float *> pa) + 2 * a_off,
                           (<const float *> pb) + 2 * b_off, (<float *> pc) + 2 * c_off,
                           ci, cj, cpacked, conj, acc)
        else:
            pc_fft_cgemm_d(level, F, I, J, L, (<const double *> pa) + 2 * a_off,
                           (<const double *> pb) + 2 * b_off, (<double *> pc) + 2 * c_off,
                           ci, cj, cpacked, conj, acc)
