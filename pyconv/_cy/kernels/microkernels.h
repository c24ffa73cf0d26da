/*
 * The register-blocked micro-kernels and the table of their shapes.
 *
 * Three families share one table:
 *
 * - packed conv (pc_panels): y[co, p] = bias[co] + sum_k W[co, k] col[k, p]
 *   on an im2col tile packed in panels of NR = NRV * VL positions; an
 *   MR x NR block of y stays in registers for the whole k loop (one load
 *   of NR column values feeds MR broadcast FMAs);
 * - implicit conv (pc_ipanels): the same block, column k of position q read
 *   as slab[q + off[k]] from a zero-padded input slab (no im2col);
 * - weight gradient (pc_wpanels): an MRW-tap x NRW-channel block
 *   (NRW = NRVW * VL) of gw += slab . gy over the valid positions of a tile.
 *
 * Each family is built once per row of PC_MICROKERNEL_TABLE, that is per
 * dtype and SIMD level, with the register block that fits the level's
 * register file; pc_shape() reads the same rows, so the planner's tiles
 * always match the kernels.  The level (pc_uk_level) is chosen at run time
 * from the CPU.  Each output element is one sum in a fixed order (k
 * increasing; positions in order), whatever the tiling.
 */
#ifndef PYCONV_KERNELS_MICROKERNELS_H
#define PYCONV_KERNELS_MICROKERNELS_H

#include "common.h"

/*
 *  T       dtype, S its suffix, LV the SIMD level, ATTR its target attribute
 *  VL      lanes of one vector register
 *  MR NRV  conv block: MR output channels x NRV vectors of positions
 *  MRW NRVW  weight-gradient block: MRW taps x NRVW vectors of channels
 */
#define PC_MICROKERNEL_TABLE(X)                                                      \
    /* T      S  LV ATTR                            VL  MR NRV MRW NRVW */           \
    X(float,  f, 0, PC_NO_ATTR,                      4,  4,  2,  2,  4)              \
    X(float,  f, 1, PC_TARGET("arch=x86-64-v3"),     8,  4,  3,  3,  4)              \
    X(float,  f, 2, PC_TARGET("arch=x86-64-v4"),    16,  8,  3,  6,  4)              \
    X(double, d, 0, PC_NO_ATTR,                      2,  4,  2,  2,  4)              \
    X(double, d, 1, PC_TARGET("arch=x86-64-v3"),     4,  4,  3,  3,  4)              \
    X(double, d, 2, PC_TARGET("arch=x86-64-v4"),     8,  8,  3,  6,  4)

/* The shape of one row, for the planner (pc_shape). */
typedef struct {
    int vl, mr, nrv, mrw, nrvw;
} pc_uk_shape;

#define PC_SHAPE_ENTRY(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                       \
    [2 * (LV) + (sizeof(T) == 8)] = {VL, MR, NRV, MRW, NRVW},

static pc_uk_shape pc_shape(int dbl, int level)
{
    static const pc_uk_shape shapes[6] = {PC_MICROKERNEL_TABLE(PC_SHAPE_ENTRY)};
    return shapes[2 * level + (dbl != 0)];
}

/* The vector types of one row: aligned, and unaligned for loads and stores. */
#define PC_DEFINE_VECTORS(T, S, LV, VL)                                              \
typedef T pc_v##S##LV __attribute__((vector_size(VL * sizeof(T))));                  \
typedef T pc_vu##S##LV __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));

/* Packed conv: one MR x NR block, and the panel loop over a tile. */
#define PC_DEFINE_UK(T, S, LV, ATTR, MR, NRV, VL)                                      \
ATTR static inline void pc_uk_##S##LV(                                     \
    ptrdiff_t kc, const T *restrict wp, const T *restrict cp, T *restrict out,       \
    ptrdiff_t ldo, ptrdiff_t mrows, ptrdiff_t ncols, const T *bias)                  \
{                                                                                    \
    pc_v##S##LV acc[MR][NRV];                                                        \
    ptrdiff_t k;                                                                     \
    int m, v;                                                                        \
    for (m = 0; m < MR; m++)                                                         \
        for (v = 0; v < NRV; v++) acc[m][v] = (pc_v##S##LV){0};                      \
    for (k = 0; k < kc; k++) {                                                       \
        pc_v##S##LV c[NRV];                                                          \
        for (v = 0; v < NRV; v++) c[v] = *(const pc_vu##S##LV *)(cp + k * NRV * VL + v * VL); \
        for (m = 0; m < MR; m++) {                                                   \
            pc_v##S##LV w = wp[k * MR + m] - (pc_v##S##LV){0};                       \
            for (v = 0; v < NRV; v++) acc[m][v] += w * c[v];                         \
        }                                                                            \
    }                                                                                \
    if (bias)                                                                        \
        for (m = 0; m < MR && m < mrows; m++)                                        \
            for (v = 0; v < NRV; v++) acc[m][v] += bias[m];                          \
    if (ncols == NRV * VL) {                                                         \
        for (m = 0; m < MR && m < mrows; m++)                                        \
            for (v = 0; v < NRV; v++)                                                \
                *(pc_vu##S##LV *)(out + m * ldo + v * VL) = acc[m][v];               \
    } else {                                                                         \
        for (m = 0; m < MR && m < mrows; m++) {                                      \
            T tmp[NRV * VL];                                                         \
            for (v = 0; v < NRV; v++) *(pc_vu##S##LV *)(tmp + v * VL) = acc[m][v];   \
            memcpy(out + m * ldo, tmp, (size_t)ncols * sizeof(T));                   \
        }                                                                            \
    }                                                                                \
}                                                                                    \
ATTR static void pc_panels_##S##LV(                                        \
    ptrdiff_t kc, ptrdiff_t mrows, const T *wpack, const T *cpack, ptrdiff_t ncols,  \
    T *out, ptrdiff_t ldo, const T *bias)                                            \
{                                                                                    \
    const ptrdiff_t NR = NRV * VL;                                                   \
    ptrdiff_t n0, m0;                                                                \
    for (n0 = 0; n0 < ncols; n0 += NR) {                                             \
        const T *cp = cpack + (n0 / NR) * kc * NR;                                   \
        ptrdiff_t nc = ncols - n0 < NR ? ncols - n0 : NR;                            \
        for (m0 = 0; m0 < mrows; m0 += MR)                                           \
            pc_uk_##S##LV(kc, wpack + (m0 / MR) * kc * MR, cp, out + m0 * ldo + n0,  \
                          ldo, mrows - m0, nc, bias ? bias + m0 : NULL);             \
    }                                                                                \
}

/*
 * Implicit GEMM for stride-1 convolutions (the "implicit" conv path).
 *
 * A tile of output rows (along the outermost real axis) reads a box of the
 * input; that box is copied once, zero padded, into a "slab" whose rows are
 * as wide as the padded input.  In the slab's flat index a kernel tap k =
 * (c, kz, ky, kx) is a constant offset off[k], so the column k of the
 * im2col matrix at virtual position q is slab[q + off[k]]: the micro-kernel
 * reads the slab directly and no im2col is ever built.  Virtual positions
 * that fall in the padding columns are computed and thrown away when the
 * valid ones are copied (with the bias) into y.
 */
#define PC_DEFINE_UKI_BLOCK(T, S, LV, ATTR, MR, NRV, VL, NAME)                        \
ATTR static inline void NAME(                                                        \
    ptrdiff_t kc, const T *restrict wp, const T *restrict base,                      \
    const ptrdiff_t *restrict off, T *restrict out, ptrdiff_t ldo, ptrdiff_t mrows)  \
{                                                                                    \
    pc_v##S##LV acc[MR][NRV];                                                        \
    ptrdiff_t k;                                                                     \
    int m, v;                                                                        \
    for (m = 0; m < MR; m++)                                                         \
        for (v = 0; v < NRV; v++) acc[m][v] = (pc_v##S##LV){0};                      \
    for (k = 0; k < kc; k++) {                                                       \
        const T *src = base + off[k];                                                \
        pc_v##S##LV c[NRV];                                                          \
        for (v = 0; v < NRV; v++) c[v] = *(const pc_vu##S##LV *)(src + v * VL);      \
        for (m = 0; m < MR; m++) {                                                   \
            pc_v##S##LV w = wp[k * MR + m] - (pc_v##S##LV){0};                       \
            for (v = 0; v < NRV; v++) acc[m][v] += w * c[v];                         \
        }                                                                            \
    }                                                                                \
    for (m = 0; m < MR && m < mrows; m++)                                            \
        for (v = 0; v < NRV; v++)                                                    \
            *(pc_vu##S##LV *)(out + m * ldo + v * VL) = acc[m][v];                   \
}
/* The block of a whole panel (NRV vectors) and, for a last panel of one or two
 * vectors, narrower ones: the columns up to the end of ncols' last vector are
 * written, none beyond. */
#define PC_DEFINE_UKI(T, S, LV, ATTR, MR, NRV, VL)                                    \
PC_DEFINE_UKI_BLOCK(T, S, LV, ATTR, MR, NRV, VL, pc_uki_##S##LV)                     \
PC_DEFINE_UKI_BLOCK(T, S, LV, ATTR, MR, 1, VL, pc_uki1_##S##LV)                      \
PC_DEFINE_UKI_BLOCK(T, S, LV, ATTR, MR, 2, VL, pc_uki2_##S##LV)                      \
ATTR static void pc_ipanels_##S##LV(                                                 \
    ptrdiff_t kc, ptrdiff_t mrows, const T *wpack, const T *slab,                    \
    const ptrdiff_t *off, ptrdiff_t ncols, T *out, ptrdiff_t ldo)                    \
{                                                                                    \
    const ptrdiff_t NR = NRV * VL;                                                   \
    ptrdiff_t n0, m0;                                                                \
    for (n0 = 0; n0 < ncols; n0 += NR) {                                             \
        const ptrdiff_t nv = (ncols - n0 + VL - 1) / VL;                             \
        for (m0 = 0; m0 < mrows; m0 += MR) {                                         \
            const T *wp = wpack + (m0 / MR) * kc * MR;                               \
            if (nv >= NRV)                                                           \
                pc_uki_##S##LV(kc, wp, slab + n0, off, out + m0 * ldo + n0, ldo, mrows - m0); \
            else if (nv == 2)                                                        \
                pc_uki2_##S##LV(kc, wp, slab + n0, off, out + m0 * ldo + n0, ldo, mrows - m0); \
            else                                                                     \
                pc_uki1_##S##LV(kc, wp, slab + n0, off, out + m0 * ldo + n0, ldo, mrows - m0); \
        }                                                                            \
    }                                                                                \
}

/*
 * Weight gradient on the same slabs (the "implicit" conv_weight path):
 *
 *   gw[co, k] += sum_{valid q} slab[q + off[k]] * gy[co, q]
 *
 * The tile's gy is packed transposed (valid positions only, panels of NRW
 * output channels), pos[j] is the slab position of valid position j (one
 * loop over them all: a loop per row of a small map would end every few
 * iterations); the micro-kernel keeps an MRW-tap x NRW-channel block in
 * registers over every valid position of the tile (one broadcast per tap
 * from the slab, NRW/VL vector loads from the packed gy per position), then
 * adds the block into the partial weight at element strides (ldk, ldc) per
 * (tap, channel).  Tap-major partials (``kc x cout``, ldc 1) take the
 * block's MRW rows as whole vectors, where the channel-major ``cout x kc``
 * of the weight itself makes every tile's writeback NRW x MRW scattered
 * scalar additions (most of the time on small maps).  Positions in the padding columns
 * are never visited, so a non-finite input value in them cannot leak in.
 */
#define PC_DEFINE_WUK(T, S, LV, ATTR, MRW, NRV, VL)                                   \
ATTR static void pc_wpanels_##S##LV(                                                 \
    ptrdiff_t kc, ptrdiff_t cout, const T *slab, const ptrdiff_t *off,               \
    const ptrdiff_t *restrict pos, const T *gyt, ptrdiff_t nval,                     \
    T *acc, ptrdiff_t ldk, ptrdiff_t ldc)                                            \
{                                                                                    \
    /* acc[k * ldk + co * ldc] += block (tap-major, ldc 1: a block's rows are  \
       contiguous vectors); gyt: panels of NRW channels, nval positions */          \
    const ptrdiff_t NRW = NRV * VL;                                                  \
    ptrdiff_t c0, k0, j;                                                             \
    int m, v;                                                                        \
    for (c0 = 0; c0 < cout; c0 += NRW) {                                             \
        const T *gp = gyt + (c0 / NRW) * nval * NRW;                                 \
        for (k0 = 0; k0 < kc; k0 += MRW) {                                           \
            pc_v##S##LV a[MRW][NRV];                                                 \
            ptrdiff_t o[MRW];                                                        \
            for (m = 0; m < MRW; m++) {                                              \
                o[m] = off[k0 + m < kc ? k0 + m : kc - 1];                           \
                for (v = 0; v < NRV; v++) a[m][v] = (pc_v##S##LV){0};                \
                /* the block's rows of a tap-major partial: fetched while it sums */ \
                if (ldc == 1 && k0 + m < kc)                                         \
                    for (v = 0; v < NRV; v++)                                        \
                        __builtin_prefetch(acc + (k0 + m) * ldk + c0 + v * VL, 1, 3); \
            }                                                                        \
            for (j = 0; j < nval; j++) {                                             \
                const T *sq = slab + pos[j];                                         \
                pc_v##S##LV b[NRV];                                                  \
                for (v = 0; v < NRV; v++)                                            \
                    b[v] = *(const pc_vu##S##LV *)(gp + j * NRW + v * VL);           \
                for (m = 0; m < MRW; m++) {                                          \
                    pc_v##S##LV xv = sq[o[m]] - (pc_v##S##LV){0};                    \
                    for (v = 0; v < NRV; v++) a[m][v] += xv * b[v];                  \
                }                                                                    \
            }                                                                        \
            for (m = 0; m < MRW && k0 + m < kc; m++) {                               \
                T *row = acc + (k0 + m) * ldk + c0 * ldc;                            \
                if (ldc == 1 && c0 + NRW <= cout) {                                  \
                    for (v = 0; v < NRV; v++)                                        \
                        *(pc_vu##S##LV *)(row + v * VL) =                            \
                            *(const pc_vu##S##LV *)(row + v * VL) + a[m][v];         \
                } else {                                                             \
                    T tmp[NRV * VL];                                                 \
                    ptrdiff_t c;                                                     \
                    for (v = 0; v < NRV; v++) *(pc_vu##S##LV *)(tmp + v * VL) = a[m][v]; \
                    for (c = 0; c < NRW && c0 + c < cout; c++) row[c * ldc] += tmp[c]; \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

/* Instantiate every family for every row of the table. */
#define PC_DEFINE_ROW(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                        \
    PC_DEFINE_VECTORS(T, S, LV, VL)                                                  \
    PC_DEFINE_UK(T, S, LV, ATTR, MR, NRV, VL)                                        \
    PC_DEFINE_UKI(T, S, LV, ATTR, MR, NRV, VL)                                       \
    PC_DEFINE_WUK(T, S, LV, ATTR, MRW, NRVW, VL)
PC_MICROKERNEL_TABLE(PC_DEFINE_ROW)

/* Call the build of ``fn`` for ``level`` (the rows' levels are 0, 1, 2). */
#define PC_AT_LEVEL(level, fn, S, args)                                              \
    do {                                                                             \
        if ((level) == 2) fn##_##S##2 args;                                          \
        else if ((level) == 1) fn##_##S##1 args;                                     \
        else fn##_##S##0 args;                                                       \
    } while (0)

/*
 * pc_pack_w's panels of 8 float rows with AVX: 8 taps of the 8 rows loaded
 * as 8 vectors, transposed in registers (unpack, shuffle, 128-bit permute)
 * and stored as 64 consecutive floats; rows past the end are zero vectors,
 * the last kc % 8 taps the scalar loop.  The scalar loop's strided reads
 * took a third of a batch-1 7x7 x 512 call (a 9 MiB weight packed per call).
 * Only data moves: the same values as the scalar loop.
 */
#if PYCONV_HAVE_CLONES
#include <immintrin.h>
PC_TARGET("avx") static void pc_pack_w8_avx(const float *w, ptrdiff_t rows, ptrdiff_t kc,
                                            float *wpack)
{
    ptrdiff_t m0, k, m;
    for (m0 = 0; m0 < rows; m0 += 8) {
        float *dst = wpack + m0 * kc;
        const ptrdiff_t nm = rows - m0 < 8 ? rows - m0 : 8;
        for (k = 0; k + 8 <= kc; k += 8) {
            __m256 r[8], t[8], u[8];
            for (m = 0; m < 8; m++)
                r[m] = m < nm ? _mm256_loadu_ps(w + (m0 + m) * kc + k) : _mm256_setzero_ps();
            for (m = 0; m < 8; m += 2) {
                t[m] = _mm256_unpacklo_ps(r[m], r[m + 1]);
                t[m + 1] = _mm256_unpackhi_ps(r[m], r[m + 1]);
            }
            for (m = 0; m < 8; m += 4) {
                u[m] = _mm256_shuffle_ps(t[m], t[m + 2], 0x44);
                u[m + 1] = _mm256_shuffle_ps(t[m], t[m + 2], 0xEE);
                u[m + 2] = _mm256_shuffle_ps(t[m + 1], t[m + 3], 0x44);
                u[m + 3] = _mm256_shuffle_ps(t[m + 1], t[m + 3], 0xEE);
            }
            for (m = 0; m < 4; m++) {
                _mm256_storeu_ps(dst + (k + m) * 8, _mm256_permute2f128_ps(u[m], u[m + 4], 0x20));
                _mm256_storeu_ps(dst + (k + m + 4) * 8,
                                 _mm256_permute2f128_ps(u[m], u[m + 4], 0x31));
            }
        }
        for (; k < kc; k++)
            for (m = 0; m < 8; m++)
                dst[k * 8 + m] = m < nm ? w[(m0 + m) * kc + k] : 0.0f;
    }
}
static inline int pc_pack_w_fast_f(const float *w, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t mr,
                                   float *wpack)
{
    if (mr != 8 || !__builtin_cpu_supports("avx")) return 0;
    pc_pack_w8_avx(w, rows, kc, wpack);
    return 1;
}
#else
static inline int pc_pack_w_fast_f(const float *w, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t mr,
                                   float *wpack)
{
    (void)w; (void)rows; (void)kc; (void)mr; (void)wpack;
    return 0;
}
#endif
static inline int pc_pack_w_fast_d(const double *w, ptrdiff_t rows, ptrdiff_t kc,
                                   ptrdiff_t mr, double *wpack)
{
    (void)w; (void)rows; (void)kc; (void)mr; (void)wpack;
    return 0;
}

/*
 * The entry points, per dtype:
 *   pc_pack_w:   W (rows x kc, row-major) -> panels of mr rows, k-major,
 *                zero rows past the end (the conv families' weight layout);
 *   pc_panels:   y block (rows x ncols, ld ldo) = W @ packed col (+ bias);
 *   pc_ipanels:  out block (rows x ncols, ld ldo) = W @ slab columns;
 *   pc_wpanels:  acc (kc x cout at strides ldk, ldc) += the weight-gradient blocks of a tile.
 */
#define PC_DEFINE_ENTRIES(T, S)                                                      \
static void pc_pack_w_##S(const T *w, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t mr,    \
                          T *wpack)                                                  \
{                                                                                    \
    ptrdiff_t m0, m, k;                                                              \
    if (pc_pack_w_fast_##S(w, rows, kc, mr, wpack))                                  \
        return;                                                                      \
    for (m0 = 0; m0 < rows; m0 += mr) {                                              \
        T *dst = wpack + (m0 / mr) * kc * mr;                                        \
        for (k = 0; k < kc; k++)                                                     \
            for (m = 0; m < mr; m++)                                                 \
                dst[k * mr + m] = (m0 + m < rows) ? w[(m0 + m) * kc + k] : (T)0;     \
    }                                                                                \
}                                                                                    \
static void pc_panels_##S(int level, ptrdiff_t kc, ptrdiff_t mrows, const T *wpack,  \
                          const T *cpack, ptrdiff_t ncols, T *out, ptrdiff_t ldo,    \
                          const T *bias)                                             \
{                                                                                    \
    PC_AT_LEVEL(level, pc_panels, S, (kc, mrows, wpack, cpack, ncols, out, ldo, bias)); \
}                                                                                    \
static void pc_ipanels_##S(int level, ptrdiff_t kc, ptrdiff_t mrows, const T *wpack, \
                           const T *slab, const ptrdiff_t *off, ptrdiff_t ncols,     \
                           T *out, ptrdiff_t ldo)                                    \
{                                                                                    \
    PC_AT_LEVEL(level, pc_ipanels, S, (kc, mrows, wpack, slab, off, ncols, out, ldo)); \
}                                                                                    \
static void pc_wpanels_##S(int level, ptrdiff_t kc, ptrdiff_t cout, const T *slab,   \
                           const ptrdiff_t *off, const ptrdiff_t *pos, const T *gyt, \
                           ptrdiff_t nval, T *acc, ptrdiff_t ldk, ptrdiff_t ldc)     \
{                                                                                    \
    PC_AT_LEVEL(level, pc_wpanels, S, (kc, cout, slab, off, pos, gyt, nval, acc, ldk, ldc)); \
}

PC_DEFINE_ENTRIES(float, f)
PC_DEFINE_ENTRIES(double, d)

#endif /* PYCONV_KERNELS_MICROKERNELS_H */
