/*
 * The compiled parts of the ``fft`` path (its FFTs are SciPy's): the frame
 * gather, the frame scatter and the per-frequency complex channel product.
 *
 * The path computes every op as a stride-1 correlation of a "virtual"
 * input U with a small kernel H, cut into overlap-save frames (see
 * pyconv/_cy/paths/fft.py).  Along each of the three canonical axes a frame
 * b holds the frame positions j = 0 .. n-1; frame position j of phase r is
 * the array index
 *
 *     i = (b * step + j) * S + r + off
 *
 * (S: the array stride between consecutive frame positions, r one of the
 * axis's nres residues, off a constant shift).  pc_fft_gather copies frames
 * of U out of an array, zero where j >= len or i falls outside the array;
 * pc_fft_scatter writes the first len positions of each frame back into an
 * array (the valid outputs of overlap-save), adding a bias.
 *
 * pc_fft_cgemm is the channel sum in the frequency domain: for every
 * frequency f,
 *
 *     C[i, j, f] (+)= sum_l opA(A[i, l, f]) * B[l, j, f]
 *
 * on interleaved complex numbers, so that one kernel does the forward
 * product (W times the frames' spectra) and the weight gradient's (conj(dY)
 * times the frames' spectra, summed over frames).  It is vectorised along f:
 * a vector holds FV = VL/2 complex numbers of consecutive frequencies (a
 * "chunk"), and an MI x MJ block of C stays in registers over the whole l
 * loop as two accumulators per output vector,
 *
 *     P += a * b          (lanes: ar*br, ai*bi)
 *     Q += a * swap(b)    (lanes: ar*bi, ai*br)
 *
 * combined once at the end: re = Pe -+ Po, im = Qe +- Qo (the lower signs
 * for conj(a) * b).  One swap per loaded b vector, no shuffle of a.  A and B
 * are *packed* by pc_fft_pack, chunk-major, [chunk][row][l][FV]: the rows of
 * a spectrum are F complex numbers apart, a distance that maps every row's
 * chunk to the same few cache sets, and a chunk-major copy makes each
 * chunk's operands one contiguous block.  C is written either packed
 * (the weight gradient's partial sums) or as rows (the frames' spectra,
 * ready for the inverse transform).  The sum over l is in increasing order
 * for every element, whatever the blocking, so the result does not depend
 * on how the caller cuts the work.
 *
 * Every index is ptrdiff_t (64-bit).
 */
#ifndef PYCONV_KERNELS_FFT_H
#define PYCONV_KERNELS_FFT_H

#include "common.h"

/* One canonical axis of a frame mapping (see the top of the file). */
typedef struct {
    ptrdiff_t size;        /* extent of the array along the axis */
    ptrdiff_t S;           /* array stride between consecutive frame positions */
    ptrdiff_t off;         /* array index of position 0 of frame 0, phase 0 */
    ptrdiff_t step;        /* frame positions from one frame to the next */
    ptrdiff_t len;         /* positions read (gather) or written (scatter) */
    ptrdiff_t n;           /* frame length along the axis (the FFT length) */
    ptrdiff_t nblk;        /* frames along the axis */
    ptrdiff_t nres;        /* phases */
    const ptrdiff_t *res;  /* their residues r */
} pc_fft_axis;

/* Frames per image and phases per channel of a mapping. */
static ptrdiff_t pc_fft_frames(const pc_fft_axis *ax)
{
    return ax[0].nblk * ax[1].nblk * ax[2].nblk;
}

static ptrdiff_t pc_fft_phases(const pc_fft_axis *ax)
{
    return ax[0].nres * ax[1].nres * ax[2].nres;
}

/* The frame positions j in [0, jmax) whose index (base + j*S) is in [0, size). */
static inline void pc_fft_span(ptrdiff_t base, ptrdiff_t S, ptrdiff_t size, ptrdiff_t jmax,
                               ptrdiff_t *j0, ptrdiff_t *j1)
{
    ptrdiff_t a = pc_ceildiv(-base, S), b = pc_floordiv(size - 1 - base, S) + 1;
    a = a < 0 ? 0 : a;
    b = b > jmax ? jmax : b;
    *j0 = a;
    *j1 = b > a ? b : a;
}

/*
 * Gather frames f0 .. f0+T-1 (frame index = image * frames + frame, the
 * frames of one image in z, y, x order) of C channels:
 *
 *     buf[t][c][p][jz][jy][jx] = src[image][c][iz][iy][ix]
 *
 * with p the phase (rz, ry, rx) in row-major order; ``src`` points at
 * channel 0 of image 0, images ``img`` elements apart, channels contiguous.
 */
#define PC_DEFINE_FFT_GATHER(TS, TD, NAME)                                           \
static void NAME(const pc_fft_axis *ax, ptrdiff_t f0, ptrdiff_t T, ptrdiff_t C,      \
                 const TS *src, ptrdiff_t img, TD *restrict buf)                     \
{                                                                                    \
    const ptrdiff_t nb = pc_fft_frames(ax), P = pc_fft_phases(ax);                   \
    const ptrdiff_t plane = ax[1].size * ax[2].size, chan = ax[0].size * plane;      \
    const ptrdiff_t n0 = ax[0].n, n1 = ax[1].n, n2 = ax[2].n;                        \
    const ptrdiff_t fr = n0 * n1 * n2;                                               \
    ptrdiff_t t, c, p0, p1, p2, jz, jy, j;                                           \
    for (t = 0; t < T; t++) {                                                        \
        const ptrdiff_t f = f0 + t, image = f / nb, b = f % nb;                      \
        const ptrdiff_t bz = b / (ax[1].nblk * ax[2].nblk);                          \
        const ptrdiff_t by = (b / ax[2].nblk) % ax[1].nblk, bx = b % ax[2].nblk;     \
        for (c = 0; c < C; c++) {                                                    \
            const TS *xc = src + image * img + c * chan;                             \
            TD *out = buf + (t * C + c) * P * fr;                                    \
            for (p0 = 0; p0 < ax[0].nres; p0++)                                      \
            for (p1 = 0; p1 < ax[1].nres; p1++)                                      \
            for (p2 = 0; p2 < ax[2].nres; p2++, out += fr) {                         \
                const ptrdiff_t bx0 = bx * ax[2].step * ax[2].S + ax[2].res[p2]      \
                                      + ax[2].off;                                   \
                ptrdiff_t x0, x1;                                                    \
                pc_fft_span(bx0, ax[2].S, ax[2].size,                                \
                            ax[2].len < n2 ? ax[2].len : n2, &x0, &x1);              \
                for (jz = 0; jz < n0; jz++) {                                        \
                    const ptrdiff_t iz = (bz * ax[0].step + jz) * ax[0].S            \
                                         + ax[0].res[p0] + ax[0].off;                \
                    const int zok = jz < ax[0].len && iz >= 0 && iz < ax[0].size;    \
                    for (jy = 0; jy < n1; jy++) {                                    \
                        const ptrdiff_t iy = (by * ax[1].step + jy) * ax[1].S        \
                                             + ax[1].res[p1] + ax[1].off;            \
                        TD *row = out + (jz * n1 + jy) * n2;                         \
                        if (!zok || jy >= ax[1].len || iy < 0 || iy >= ax[1].size    \
                            || x1 == x0) {                                           \
                            for (j = 0; j < n2; j++) row[j] = 0;                     \
                            continue;                                                \
                        }                                                            \
                        const TS *xs = xc + iz * plane + iy * ax[2].size + bx0;      \
                        const ptrdiff_t S2 = ax[2].S;                                \
                        for (j = 0; j < x0; j++) row[j] = 0;                         \
                        if (S2 == 1)                                                 \
                            for (j = x0; j < x1; j++) row[j] = (TD)xs[j];            \
                        else                                                         \
                            for (j = x0; j < x1; j++) row[j] = (TD)xs[j * S2];       \
                        for (j = x1; j < n2; j++) row[j] = 0;                        \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

/*
 * Scatter frames f0 .. f0+T-1 of C channels into ``dst`` (channel 0 of
 * image 0, images ``img`` elements apart): the frame row a = (c, p) goes to
 * channel c at phase p,
 *
 *     dst[image][c][iz][iy][ix] = buf[t][a][jz][jy][jx] + bias[c]
 *
 * for j < len and i inside the array (``bias`` may be NULL).
 */
#define PC_DEFINE_FFT_SCATTER(TS, TD, NAME)                                          \
static void NAME(const pc_fft_axis *ax, ptrdiff_t f0, ptrdiff_t T, ptrdiff_t C,      \
                 const TS *restrict buf, TD *dst, ptrdiff_t img, const TD *bias)     \
{                                                                                    \
    const ptrdiff_t nb = pc_fft_frames(ax), P = pc_fft_phases(ax);                   \
    const ptrdiff_t plane = ax[1].size * ax[2].size, chan = ax[0].size * plane;      \
    const ptrdiff_t n0 = ax[0].n, n1 = ax[1].n, n2 = ax[2].n;                        \
    const ptrdiff_t fr = n0 * n1 * n2;                                               \
    ptrdiff_t t, c, p0, p1, p2, jz, jy, j;                                           \
    for (t = 0; t < T; t++) {                                                        \
        const ptrdiff_t f = f0 + t, image = f / nb, b = f % nb;                      \
        const ptrdiff_t bz = b / (ax[1].nblk * ax[2].nblk);                          \
        const ptrdiff_t by = (b / ax[2].nblk) % ax[1].nblk, bx = b % ax[2].nblk;     \
        for (c = 0; c < C; c++) {                                                    \
            TD *yc = dst + image * img + c * chan;                                   \
            const TS *in = buf + (t * C + c) * P * fr;                               \
            const TS bc = bias ? (TS)bias[c] : (TS)0;                                \
            for (p0 = 0; p0 < ax[0].nres; p0++)                                      \
            for (p1 = 0; p1 < ax[1].nres; p1++)                                      \
            for (p2 = 0; p2 < ax[2].nres; p2++, in += fr) {                          \
                const ptrdiff_t bx0 = bx * ax[2].step * ax[2].S + ax[2].res[p2]      \
                                      + ax[2].off;                                   \
                const ptrdiff_t S2 = ax[2].S;                                        \
                ptrdiff_t x0, x1;                                                    \
                pc_fft_span(bx0, S2, ax[2].size, ax[2].len < n2 ? ax[2].len : n2,    \
                            &x0, &x1);                                               \
                if (x1 == x0)                                                        \
                    continue;                                                        \
                for (jz = 0; jz < n0 && jz < ax[0].len; jz++) {                      \
                    const ptrdiff_t iz = (bz * ax[0].step + jz) * ax[0].S            \
                                         + ax[0].res[p0] + ax[0].off;                \
                    if (iz < 0 || iz >= ax[0].size)                                  \
                        continue;                                                    \
                    for (jy = 0; jy < n1 && jy < ax[1].len; jy++) {                  \
                        const ptrdiff_t iy = (by * ax[1].step + jy) * ax[1].S        \
                                             + ax[1].res[p1] + ax[1].off;            \
                        const TS *row = in + (jz * n1 + jy) * n2;                    \
                        TD *ys;                                                      \
                        if (iy < 0 || iy >= ax[1].size)                              \
                            continue;                                                \
                        ys = yc + iz * plane + iy * ax[2].size + bx0;                \
                        if (S2 == 1)                                                 \
                            for (j = x0; j < x1; j++) ys[j] = (TD)(row[j] + bc);     \
                        else                                                         \
                            for (j = x0; j < x1; j++) ys[j * S2] = (TD)(row[j] + bc); \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

PC_DEFINE_FFT_GATHER(float, float, pc_fft_gather_ff)
PC_DEFINE_FFT_GATHER(float, double, pc_fft_gather_fd)
PC_DEFINE_FFT_GATHER(double, double, pc_fft_gather_dd)
PC_DEFINE_FFT_SCATTER(float, float, pc_fft_scatter_ff)
PC_DEFINE_FFT_SCATTER(double, float, pc_fft_scatter_df)
PC_DEFINE_FFT_SCATTER(double, double, pc_fft_scatter_dd)

/*
 * The complex product's builds, one row per dtype and SIMD level:
 *
 *  T       dtype, S its suffix, LV the SIMD level, ATTR its target attribute
 *  VL      real lanes of one vector (FV = VL/2 complex numbers, one chunk)
 *  MI MJ   register block: MI rows of C x MJ columns, each one vector of
 *          frequencies, two accumulators each (2*MI*MJ + 2*MJ + 1 registers)
 *  MJ1     the block of the last I mod MI rows: 1 row x MJ1 columns
 */
#define PC_FFT_TABLE(X)                                                              \
    /* T      S  LV ATTR                            VL  MI MJ MJ1 */                 \
    X(float,  f, 0, PC_NO_ATTR,                      4,  2,  2,  3)                  \
    X(float,  f, 1, PC_TARGET("arch=x86-64-v3"),     8,  2,  2,  3)                  \
    X(float,  f, 2, PC_TARGET("arch=x86-64-v4"),    16,  4,  3,  6)                  \
    X(double, d, 0, PC_NO_ATTR,                      2,  2,  2,  3)                  \
    X(double, d, 1, PC_TARGET("arch=x86-64-v3"),     4,  2,  2,  3)                  \
    X(double, d, 2, PC_TARGET("arch=x86-64-v4"),     8,  4,  3,  6)

/* Complex numbers per chunk (FV) of a dtype at a SIMD level, from the table. */
#define PC_FFT_FV_ENTRY(T, S, LV, ATTR, VL, MI, MJ, MJ1) [2 * (LV) + (sizeof(T) == 8)] = VL / 2,
static ptrdiff_t pc_fft_chunk(int dbl, int level)
{
    static const ptrdiff_t fv[6] = {PC_FFT_TABLE(PC_FFT_FV_ENTRY)};
    return fv[2 * level + (dbl != 0)];
}

/* lane i <-> i^1 (re <-> im), and the even lanes of x with the odd ones of y */
#define PC_FFT_SWAP_2 1, 0
#define PC_FFT_SWAP_4 PC_FFT_SWAP_2, 3, 2
#define PC_FFT_SWAP_8 PC_FFT_SWAP_4, 5, 4, 7, 6
#define PC_FFT_SWAP_16 PC_FFT_SWAP_8, 9, 8, 11, 10, 13, 12, 15, 14
#define PC_FFT_BLEND_2 0, 3
#define PC_FFT_BLEND_4 0, 5, 2, 7
#define PC_FFT_BLEND_8 0, 9, 2, 11, 4, 13, 6, 15
#define PC_FFT_BLEND_16 0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31

/*
 * One MI x MJ block of C over the whole l loop (see the top of the file):
 * ``a``, ``b`` the block's first packed rows (rows L*VL reals apart, l
 * consecutive), ``cp`` the MI x MJ output vectors (NULL past the block's
 * mi x mj valid ones), ``nv`` the valid reals of each output vector.
 */
#define PC_DEFINE_CBLOCK(T, S, LV, ATTR, VL, MI, MJ, NAME)                           \
ATTR static inline void NAME(ptrdiff_t L, const T *a0, const T *b0, T *const *cp,    \
                             int mi, int mj, int nv, int conj, int acc)              \
{                                                                                    \
    pc_fv##S##LV P[MI][MJ], Q[MI][MJ];                                               \
    ptrdiff_t l;                                                                     \
    int m, n;                                                                        \
    for (m = 0; m < MI; m++)                                                         \
        for (n = 0; n < MJ; n++) P[m][n] = Q[m][n] = (pc_fv##S##LV){0};              \
    for (l = 0; l < L; l++) {                                                        \
        pc_fv##S##LV b[MJ], bs[MJ];                                                  \
        for (n = 0; n < MJ; n++) {                                                   \
            b[n] = *(const pc_fv##S##LV *)(b0 + ((n < mj ? n : 0) * L + l) * VL);    \
            bs[n] = __builtin_shufflevector(b[n], b[n], PC_FFT_SWAP_##VL);           \
        }                                                                            \
        for (m = 0; m < MI; m++) {                                                   \
            const pc_fv##S##LV a = *(const pc_fv##S##LV *)(a0 + ((m < mi ? m : 0) * L + l) * VL); \
            for (n = 0; n < MJ; n++) {                                               \
                P[m][n] += a * b[n];                                                 \
                Q[m][n] += a * bs[n];                                                \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    for (m = 0; m < mi; m++)                                                         \
        for (n = 0; n < mj; n++) {                                                   \
            const pc_fv##S##LV ps = __builtin_shufflevector(P[m][n], P[m][n],        \
                                                            PC_FFT_SWAP_##VL);       \
            const pc_fv##S##LV qs = __builtin_shufflevector(Q[m][n], Q[m][n],        \
                                                            PC_FFT_SWAP_##VL);       \
            const pc_fv##S##LV re = conj ? P[m][n] + ps : P[m][n] - ps;              \
            const pc_fv##S##LV im = conj ? qs - Q[m][n] : Q[m][n] + qs;              \
            pc_fv##S##LV r = __builtin_shufflevector(re, im, PC_FFT_BLEND_##VL);     \
            T *c = cp[m * MJ + n];                                                   \
            if (nv == VL) {                                                          \
                if (acc)                                                             \
                    r += *(pc_fv##S##LV *)c;                                         \
                *(pc_fv##S##LV *)c = r;                                              \
            } else {                                                                 \
                T tmp[VL];                                                           \
                int v;                                                               \
                *(pc_fv##S##LV *)tmp = r;                                            \
                for (v = 0; v < nv; v++) c[v] = acc ? c[v] + tmp[v] : tmp[v];        \
            }                                                                        \
        }                                                                            \
}

/* The blocks of MI rows from i0, for every block of MJ columns (the last one clamped). */
#define PC_FFT_ROWS(T, VL, MI, MJ, mi, BLOCK)                                        \
    for (j0 = 0; j0 < J; j0 += MJ) {                                                 \
        T *cp[MI * MJ];                                                              \
        const int mj = J - j0 < MJ ? (int)(J - j0) : MJ;                             \
        for (m = 0; m < MI; m++)                                                     \
            for (n = 0; n < MJ; n++)                                                 \
                cp[m * MJ + n] = m < (mi) && n < mj                                  \
                    ? (cpacked ? C + (((fc * I) + i0 + m) * J + j0 + n) * VL         \
                               : C + 2 * ((i0 + m) * ci + (j0 + n) * cj + fc * (VL / 2))) \
                    : NULL;                                                          \
        BLOCK(L, ac + i0 * L * VL, bc + j0 * L * VL, cp, mi, mj, nv, conj, acc);     \
    }

#define PC_DEFINE_CGEMM(T, S, LV, ATTR, VL, MI, MJ, MJ1)                             \
typedef T pc_fv##S##LV __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T)))); \
PC_DEFINE_CBLOCK(T, S, LV, ATTR, VL, MI, MJ, pc_cblock_##S##LV)                      \
PC_DEFINE_CBLOCK(T, S, LV, ATTR, VL, 1, MJ1, pc_cblock1_##S##LV)                     \
ATTR static void pc_cgemm_##S##LV(                                                   \
    ptrdiff_t F, ptrdiff_t I, ptrdiff_t J, ptrdiff_t L, const T *A, const T *B,      \
    T *C, ptrdiff_t ci, ptrdiff_t cj, int cpacked, int conj, int acc)                \
{                                                                                    \
    const ptrdiff_t nfc = (F + VL / 2 - 1) / (VL / 2);                               \
    ptrdiff_t fc, i0, j0;                                                            \
    int m, n;                                                                        \
    for (fc = 0; fc < nfc; fc++) {                                                   \
        const T *ac = A + fc * I * L * VL, *bc = B + fc * J * L * VL;                \
        const int nv = cpacked || (fc + 1) * (VL / 2) <= F                           \
                       ? VL : (int)(2 * (F - fc * (VL / 2)));                        \
        for (i0 = 0; i0 + MI <= I; i0 += MI) {                                       \
            PC_FFT_ROWS(T, VL, MI, MJ, MI, pc_cblock_##S##LV)                        \
        }                                                                            \
        for (; i0 < I; i0++) {                                                       \
            PC_FFT_ROWS(T, VL, 1, MJ1, 1, pc_cblock1_##S##LV)                        \
        }                                                                            \
    }                                                                                \
}

#define PC_DEFINE_FFT_ROW(T, S, LV, ATTR, VL, MI, MJ, MJ1)                           \
    PC_DEFINE_CGEMM(T, S, LV, ATTR, VL, MI, MJ, MJ1)
PC_FFT_TABLE(PC_DEFINE_FFT_ROW)

/*
 * The entry points, per dtype, at SIMD level ``level`` (0 baseline, 1
 * AVX2+FMA, 2 AVX-512); FV = pc_fft_chunk(dtype, level) complex numbers per
 * chunk, nfc = ceil(F / FV) chunks:
 *
 *   pc_fft_pack:   dst[fc*cs + (i1*n2 + i2)*FV + v] = src[i1*s1 + i2*s2 + fc*FV + v]
 *                  (complex indices; zero past F): rows into chunks of
 *                  [i1][i2] (cs = n1*n2*FV: one packed array; larger: rows
 *                  of a bigger one);
 *   pc_fft_unpack: the inverse, dst[i1*s1 + i2*s2 + f] = src[fc*cs + ...];
 *   pc_fft_cgemm:  C (+)= opA(A) B per frequency with A packed as
 *                  [fc][I][L], B as [fc][J][L]; C packed [fc][I][J] when
 *                  ``cpacked``, else rows C[i*ci + j*cj + f] (f < F).
 */
#define PC_DEFINE_FFT_ENTRIES(T, S)                                                  \
static void pc_fft_pack_##S(int level, ptrdiff_t F, ptrdiff_t n1, ptrdiff_t s1,      \
                            ptrdiff_t n2, ptrdiff_t s2, const T *src, T *dst,        \
                            ptrdiff_t cs)                                            \
{                                                                                    \
    const ptrdiff_t FV = pc_fft_chunk(sizeof(T) == 8, level);                        \
    const ptrdiff_t nfc = (F + FV - 1) / FV;                                         \
    ptrdiff_t i1, i2, fc, v;                                                         \
    for (i1 = 0; i1 < n1; i1++)                                                      \
        for (i2 = 0; i2 < n2; i2++) {                                                \
            const T *row = src + 2 * (i1 * s1 + i2 * s2);                            \
            for (fc = 0; fc < nfc; fc++) {                                           \
                T *out = dst + 2 * (fc * cs + (i1 * n2 + i2) * FV);                  \
                const ptrdiff_t nv = F - fc * FV < FV ? F - fc * FV : FV;            \
                memcpy(out, row + 2 * fc * FV, (size_t)(2 * nv) * sizeof(T));       \
                for (v = 2 * nv; v < 2 * FV; v++) out[v] = 0;                        \
            }                                                                        \
        }                                                                            \
}                                                                                    \
static void pc_fft_unpack_##S(int level, ptrdiff_t F, ptrdiff_t n1, ptrdiff_t s1,    \
                              ptrdiff_t n2, ptrdiff_t s2, const T *src, T *dst,      \
                              ptrdiff_t cs)                                          \
{                                                                                    \
    const ptrdiff_t FV = pc_fft_chunk(sizeof(T) == 8, level);                        \
    const ptrdiff_t nfc = (F + FV - 1) / FV;                                         \
    ptrdiff_t i1, i2, fc;                                                            \
    for (i1 = 0; i1 < n1; i1++)                                                      \
        for (i2 = 0; i2 < n2; i2++) {                                                \
            T *row = dst + 2 * (i1 * s1 + i2 * s2);                                  \
            for (fc = 0; fc < nfc; fc++) {                                           \
                const ptrdiff_t nv = F - fc * FV < FV ? F - fc * FV : FV;            \
                memcpy(row + 2 * fc * FV, src + 2 * (fc * cs + (i1 * n2 + i2) * FV), \
                       (size_t)(2 * nv) * sizeof(T));                                \
            }                                                                        \
        }                                                                            \
}                                                                                    \
static void pc_fft_cgemm_##S(int level, ptrdiff_t F, ptrdiff_t I, ptrdiff_t J,       \
                             ptrdiff_t L, const T *A, const T *B, T *C, ptrdiff_t ci, \
                             ptrdiff_t cj, int cpacked, int conj, int acc)           \
{                                                                                    \
    if (level == 2)                                                                  \
        pc_cgemm_##S##2(F, I, J, L, A, B, C, ci, cj, cpacked, conj, acc);            \
    else if (level == 1)                                                             \
        pc_cgemm_##S##1(F, I, J, L, A, B, C, ci, cj, cpacked, conj, acc);            \
    else                                                                             \
        pc_cgemm_##S##0(F, I, J, L, A, B, C, ci, cj, cpacked, conj, acc);            \
}

PC_DEFINE_FFT_ENTRIES(float, f)
PC_DEFINE_FFT_ENTRIES(double, d)

#endif /* PYCONV_KERNELS_FFT_H */
