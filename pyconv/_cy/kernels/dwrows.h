/*
 * Stride-1 2-d depthwise 3x3 convolutions along the rows (the "dwrows" path).
 *
 * The depthwise path puts channels in the vector lanes, so it copies every
 * tile's input into a channel-interleaved box and the outputs back into the
 * channel planes: two transposes around a few multiply-adds per output,
 * more than half of the time on the 14x14 maps of real models.  Here the
 * lanes are VL consecutive outputs of one output row, read straight from
 * the NCHW input: for each tap, one masked load of the input row at the
 * tap's offset (the lanes that fall in the padding, or past the row, read
 * nothing and are zero) and one FMA with the tap's weight; a register block
 * of 4 output rows loads each input row once for the 3 of them it feeds.
 * No copy, no transpose; the padding costs nothing.  The masked loads and stores are
 * AVX-512 instructions: the path runs at that level only.
 *
 * Each output is one sum in a fixed order (taps y, x increasing, skipping
 * the rows wholly in the padding, then the bias), independent of the
 * tiling and of the thread count.
 */
#ifndef PYCONV_KERNELS_DWROWS_H
#define PYCONV_KERNELS_DWROWS_H

#include "common.h"

/* The geometry of one call, shared by its items: item = (image, block of
   ``cpb`` output channels). */
typedef struct {
    pc_geo g;
    ptrdiff_t cpb, nblocks;
} pc_dwr;

/* Output rows per register block (each input row is loaded once for all
   the block's rows it feeds). */
#define PC_DWR_RY 4
#if defined(__clang__) || defined(__GNUC__)
#define PC_DWR_UNROLL _Pragma("GCC unroll 8")
#else
#define PC_DWR_UNROLL
#endif

#if PYCONV_HAVE_CLONES
#include <immintrin.h>

/*
 * One output channel plane, AVX-512: xp the input plane it reads, wc its
 * KY x KX taps, bias (0 without one).  T, VL, mask type, load/store/fma
 * intrinsics per dtype.
 */
#define PC_DEFINE_DWR_PLANE(T, S, VL, MT, SET1, ZERO, LOADZ, STOREM, FMA, ADD)      \
PC_TARGET("arch=x86-64-v4") static void pc_dwr_plane_##S(                           \
    const pc_geo *g, const T *xp, const T *restrict wc, T bias, int has_bias,        \
    T *restrict yp)                                                                  \
{                                                                                    \
    typedef __typeof__(ZERO()) vec;                                                  \
    const ptrdiff_t H = g->isz[1], W = g->isz[2];                                    \
    const ptrdiff_t OH = g->osz[1], OW = g->osz[2], ly = g->lo[1], lx = g->lo[2];    \
    const unsigned full = (VL == 16) ? 0xffffu : 0xffu;                              \
    vec wv[9];                                                                       \
    MT m[3];                                                                         \
    const vec bv = SET1(bias);                                                       \
    ptrdiff_t oy0, ox0;                                                              \
    int i, j, r, k;                                                                  \
    for (i = 0; i < 9; i++) wv[i] = SET1(wc[i]);                                     \
    for (ox0 = 0; ox0 < OW; ox0 += VL) {                                             \
        const ptrdiff_t nout = OW - ox0 < VL ? OW - ox0 : VL;                        \
        const MT om = (MT)(full >> (VL - nout));                                     \
        /* per tap column, the lanes l with 0 <= ox0 - lx + kx + l < W */            \
        for (k = 0; k < 3; k++) {                                                    \
            const ptrdiff_t ix0 = ox0 - lx + k;                                      \
            const ptrdiff_t lo = ix0 < 0 ? -ix0 : 0;                                 \
            const ptrdiff_t hi = W - ix0 < VL ? W - ix0 : VL;                        \
            m[k] = hi <= lo ? (MT)0 : (MT)((full >> (VL - (hi - lo))) << lo);        \
        }                                                                            \
        for (oy0 = 0; oy0 < OH; oy0 += PC_DWR_RY) {                                  \
            /* PC_DWR_RY output rows at once: input row oy0 - ly + j feeds      \
               output row oy0 + r through kernel row j - r */                        \
            vec acc[PC_DWR_RY];                                                      \
            PC_DWR_UNROLL for (r = 0; r < PC_DWR_RY; r++) acc[r] = ZERO();           \
            PC_DWR_UNROLL for (j = 0; j < PC_DWR_RY + 2; j++) {                      \
                const ptrdiff_t iy = oy0 - ly + j;                                   \
                const T *xr = xp + ox0 - lx;                                         \
                vec v[3];                                                            \
                if (iy < 0 || iy >= H)                                               \
                    continue;                                                        \
                xr += iy * W;                                                        \
                PC_DWR_UNROLL for (k = 0; k < 3; k++)                                \
                    v[k] = m[k] ? LOADZ(m[k], (const void *)(xr + k)) : ZERO();      \
                PC_DWR_UNROLL for (r = 0; r < PC_DWR_RY; r++)                        \
                    if (j - r >= 0 && j - r < 3)                                     \
                        PC_DWR_UNROLL for (k = 0; k < 3; k++)                        \
                            acc[r] = FMA(wv[(j - r) * 3 + k], v[k], acc[r]);         \
            }                                                                        \
            for (r = 0; r < PC_DWR_RY && oy0 + r < OH; r++)                          \
                STOREM((void *)(yp + (oy0 + r) * OW + ox0), om,                      \
                       has_bias ? ADD(acc[r], bv) : acc[r]);                         \
        }                                                                            \
    }                                                                                \
}
PC_DEFINE_DWR_PLANE(float, f, 16, __mmask16, _mm512_set1_ps, _mm512_setzero_ps,
                    _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, _mm512_fmadd_ps,
                    _mm512_add_ps)
PC_DEFINE_DWR_PLANE(double, d, 8, __mmask8, _mm512_set1_pd, _mm512_setzero_pd,
                    _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, _mm512_fmadd_pd,
                    _mm512_add_pd)
#define PC_DWR_AVAILABLE 1
#else
#define PC_DWR_AVAILABLE 0
#endif

/* One work item: the planes of its block of output channels of one image
   (output channel c reads input channel c / (C_out / C_in)). */
#define PC_DEFINE_DWR_ITEM(T, S)                                                     \
static void pc_dwr_item_##S(const pc_dwr *o, ptrdiff_t it, const T *x, const T *w,  \
                            const T *b, T *y)                                        \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t n = it / o->nblocks, c0 = it % o->nblocks * o->cpb;              \
    const ptrdiff_t c1 = c0 + o->cpb < g->Cout ? c0 + o->cpb : g->Cout;              \
    const ptrdiff_t taps = g->ks[1] * g->ks[2];                                      \
    ptrdiff_t c;                                                                     \
    for (c = c0; c < c1; c++) {                                                      \
        const T *xp = x + (n * g->Cin + c / g->cout_g) * g->Pin;                     \
        T *yp = y + (n * g->Cout + c) * g->Pout;                                     \
        PC_DWR_PLANE_##S(g, xp, w + c * taps, b ? b[c] : (T)0, b != NULL, yp);       \
    }                                                                                \
}
#if PYCONV_HAVE_CLONES
#define PC_DWR_PLANE_f pc_dwr_plane_f
#define PC_DWR_PLANE_d pc_dwr_plane_d
#else
#define PC_DWR_PLANE_f(...) ((void)0)
#define PC_DWR_PLANE_d(...) ((void)0)
#endif
PC_DEFINE_DWR_ITEM(float, f)
PC_DEFINE_DWR_ITEM(double, d)

#endif /* PYCONV_KERNELS_DWROWS_H */
