/*
 * Dilated stride-1 convolutions that skip the taps falling in the padding
 * (the "dilated" path).
 *
 * With a large dilation most off-centre taps of a small map read only
 * padding: with dilation 24 on a 33x33 map, a 3x3 kernel's top row of taps
 * reads real input only for output rows 24..32.  A slab with the dilated
 * halo (the implicit path) is mostly zeros and its padding columns are
 * computed and thrown away; an im2col of all taps (the gemm path) multiplies
 * those zeros too.  Here the reduction index runs over taps first, k = (ky,
 * kx, c), and a work item, a rectangle of output rows and columns of one
 * image and group, only visits the kernel rows ky (and columns kx) that
 * reach the input for some output of the rectangle: with this order the
 * taps of one kernel row are one contiguous range of k, so the skipped ones
 * are simply never packed nor multiplied.  The planner cuts the rectangles
 * at the rows and columns where a kernel row or column starts or stops
 * reaching the input (with dilation 12 on a 33x33 map, three pieces per
 * axis: a quarter of the multiply-adds of whole-row tiles skipped).
 *
 * The visited range of k is cut into chunks of at most KC: a chunk's
 * im2col rows (only the tile's positions, no padding columns) are copied
 * once, and the register-blocked micro-kernel adds them, times the packed
 * weights, into the tile's output block (the first chunk starts the block
 * at zero, the others continue it).  Each output is therefore one sum over
 * its tile's visited taps in increasing k: the chunking, like the thread
 * count, does not change a single rounding.  Skipping a tap whose every
 * input is padding only drops additions of zeros.
 */
#ifndef PYCONV_KERNELS_DILATED_H
#define PYCONV_KERNELS_DILATED_H

#include "common.h"
#include "microkernels.h"

/*
 * out block (MR x NR, ld ldo) (+)= W chunk (kc taps, packed panel of MR rows)
 * @ column panel (kc x NR, tap-major); ``first``: start from zero.
 */
#define PC_DEFINE_DIL_UK(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                    \
ATTR static inline void pc_dil_uk_##S##LV(                                           \
    ptrdiff_t kc, const T *restrict wp, const T *restrict cp, T *restrict out,       \
    ptrdiff_t ldo, ptrdiff_t mrows, int first)                                       \
{                                                                                    \
    pc_v##S##LV acc[MR][NRV];                                                        \
    ptrdiff_t k;                                                                     \
    int m, v;                                                                        \
    for (m = 0; m < MR; m++)                                                         \
        for (v = 0; v < NRV; v++)                                                    \
            acc[m][v] = (first || m >= mrows) ? (pc_v##S##LV){0}                     \
                : *(const pc_vu##S##LV *)(out + m * ldo + v * VL);                   \
    for (k = 0; k < kc; k++) {                                                       \
        pc_v##S##LV c[NRV];                                                          \
        for (v = 0; v < NRV; v++) c[v] = *(const pc_vu##S##LV *)(cp + k * NRV * VL + v * VL); \
        for (m = 0; m < MR; m++) {                                                   \
            pc_v##S##LV w = wp[k * MR + m] - (pc_v##S##LV){0};                       \
            for (v = 0; v < NRV; v++) acc[m][v] += w * c[v];                         \
        }                                                                            \
    }                                                                                \
    for (m = 0; m < MR && m < mrows; m++)                                            \
        for (v = 0; v < NRV; v++)                                                    \
            *(pc_vu##S##LV *)(out + m * ldo + v * VL) = acc[m][v];                   \
}                                                                                    \
/* every MR x NR block of a tile: weight panel m0 of the chunk at wp + (m0/MR) * \
   wstride, the chunk's column panels (kc x NR each) at col */                      \
ATTR static void pc_dil_panels_##S##LV(                                              \
    ptrdiff_t kc, ptrdiff_t mrows, const T *wp, ptrdiff_t wstride, const T *col,     \
    ptrdiff_t ncols, T *out, ptrdiff_t ldo, int first)                               \
{                                                                                    \
    const ptrdiff_t NR = NRV * VL;                                                   \
    ptrdiff_t n0, m0;                                                                \
    for (m0 = 0; m0 < mrows; m0 += MR)                                               \
        for (n0 = 0; n0 < ncols; n0 += NR)                                           \
            pc_dil_uk_##S##LV(kc, wp + (m0 / MR) * wstride, col + (n0 / NR) * kc * NR, \
                              out + m0 * ldo + n0, ldo, mrows - m0, first);          \
}

PC_MICROKERNEL_TABLE(PC_DEFINE_DIL_UK)

/* The kernel taps (ky or kx) of a kernel axis that read the input for some
   output in [o0, o1): the interval [*a, *b) (empty: *a == *b). */
static void pc_dil_taps(ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t k, ptrdiff_t d, ptrdiff_t lo,
                        ptrdiff_t in, ptrdiff_t *a, ptrdiff_t *b)
{
    ptrdiff_t t;
    *a = *b = 0;
    for (t = 0; t < k; t++) {
        /* inputs o + t*d - lo for o in [o0, o1) meet [0, in) */
        if (o1 - 1 + t * d - lo >= 0 && o0 + t * d - lo < in) {
            if (*b == *a) *a = t;
            *b = t + 1;
        }
    }
}

#define PC_DEFINE_DIL(T, S)                                                          \
/* the im2col rows k0..k1 (k = (ky, kx, c)) of the tile [t0, t1) x [x0, x1), in   \
   panels of nr positions: col[q / nr][k - k0][q % nr]; positions ncols..ldc are  \
   zero */                                                                           \
PC_CLONES static void pc_dil_fill_##S(const pc_geo *g, const T *restrict xg,         \
                                      ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t x0,      \
                                      ptrdiff_t x1, ptrdiff_t k0, ptrdiff_t k1,      \
                                      ptrdiff_t nr, T *restrict col, ptrdiff_t ldc)  \
{                                                                                    \
    const ptrdiff_t IY = g->isz[1], IX = g->isz[2], cin = g->cin_g;                  \
    const ptrdiff_t pstride = (k1 - k0) * nr;   /* one panel */                      \
    ptrdiff_t k, r, i;                                                               \
    for (k = k0; k < k1; k++) {                                                      \
        const ptrdiff_t c = k % cin, kx = (k / cin) % g->ks[2], ky = k / cin / g->ks[2]; \
        /* the valid outputs [a, b) of this tap along x */                           \
        const ptrdiff_t sx = kx * g->dl[2] - g->lo[2];                               \
        ptrdiff_t a = -sx, b = IX - sx;                                              \
        T *d = col + (k - k0) * nr;          /* position q at d[(q/nr)*pstride + q%nr] */ \
        ptrdiff_t j = 0;                                                             \
        if (a < x0) a = x0;                                                          \
        if (b > x1) b = x1;                                                          \
        if (b < a) b = a;                                                            \
        for (r = t0; r < t1; r++) {                                                  \
            const ptrdiff_t iy = r + ky * g->dl[1] - g->lo[1];                       \
            const T *src = xg + (c * IY + iy) * IX + sx;                             \
            const ptrdiff_t ra = iy >= 0 && iy < IY ? a : x1, rb = ra < b ? b : ra;  \
            /* runs of the row within one panel: zeros, input, zeros */             \
            for (i = x0; i < x1;) {                                                  \
                const ptrdiff_t e = i + (x1 - i < nr - j ? x1 - i : nr - j);         \
                T *dd = d + j - i;                                                   \
                ptrdiff_t u = i, ua = ra < e ? ra : e, ub = rb < e ? rb : e;         \
                for (; u < ua; u++) dd[u] = 0;                                       \
                for (; u < ub; u++) dd[u] = src[u];                                  \
                for (; u < e; u++) dd[u] = 0;                                        \
                j += e - i;                                                          \
                i = e;                                                               \
                if (j == nr) {                                                       \
                    j = 0;                                                           \
                    d += pstride;                                                    \
                }                                                                    \
            }                                                                        \
        }                                                                            \
        for (i = (t1 - t0) * (x1 - x0); i < ldc; i++) {                              \
            d[j] = 0;                                                                \
            if (++j == nr) {                                                         \
                j = 0;                                                               \
                d += pstride;                                                        \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}                                                                                    \
/*                                                                                   \
 * One work item: output rows [t0, t1), columns [x0, x1) of one image and group. \
 * xg: the group's input channels; wp: the group's packed weights (panels of mr \
 * rows, ktot taps each); yg: the group's output channels; bias: NULL or the \
 * group's.  Buffers: col (kcmax x ldc), ybuf (cout_g x ldc).                    \
 */                                                                                  \
static void pc_dil_item_##S(int level, const pc_geo *g, const T *xg, const T *wp,    \
                            const T *bias, T *yg, ptrdiff_t t0, ptrdiff_t t1,        \
                            ptrdiff_t x0, ptrdiff_t x1, ptrdiff_t kcmax, T *col,     \
                            T *ybuf)                                                 \
{                                                                                    \
    const pc_uk_shape sh = pc_shape(sizeof(T) == 8, level);                          \
    const ptrdiff_t mr = sh.mr, nr = sh.nrv * sh.vl, OX = g->osz[2], W = x1 - x0;    \
    const ptrdiff_t cin = g->cin_g, KX = g->ks[2];                                   \
    const ptrdiff_t ktot = g->ks[1] * KX * cin, mrows = g->cout_g;                   \
    const ptrdiff_t ncols = (t1 - t0) * W, ldc = (ncols + nr - 1) / nr * nr;         \
    ptrdiff_t ya, yb, xa, xb, ky, k0, k1, co, r, q;                                  \
    int first = 1;                                                                   \
    pc_dil_taps(t0, t1, g->ks[1], g->dl[1], g->lo[1], g->isz[1], &ya, &yb);          \
    pc_dil_taps(x0, x1, KX, g->dl[2], g->lo[2], g->isz[2], &xa, &xb);                \
    for (ky = ya; ky < yb && xa < xb; ky++)                                          \
        for (k0 = (ky * KX + xa) * cin; k0 < (ky * KX + xb) * cin; k0 = k1) {        \
            k1 = (ky * KX + xb) * cin;                                               \
            if (k1 - k0 > kcmax) k1 = k0 + kcmax;                                    \
            pc_dil_fill_##S(g, xg, t0, t1, x0, x1, k0, k1, nr, col, ldc);            \
            PC_AT_LEVEL(level, pc_dil_panels, S, (k1 - k0, mrows, wp + k0 * mr,      \
                                                  ktot * mr, col, ncols, ybuf, ldc,  \
                                                  first));                           \
            first = 0;                                                               \
        }                                                                            \
    for (co = 0; co < mrows; co++) {                                                 \
        const T bv = bias ? bias[co] : (T)0;                                         \
        for (r = t0; r < t1; r++) {                                                  \
            const T *s = ybuf + co * ldc + (r - t0) * W;                             \
            T *d = yg + co * g->Pout + r * OX + x0;                                  \
            if (first)              /* no tap reaches the input: the bias alone */  \
                for (q = 0; q < W; q++) d[q] = bv;                                   \
            else                                                                     \
                for (q = 0; q < W; q++) d[q] = s[q] + bv;                            \
        }                                                                            \
    }                                                                                \
}                                                                                    \
/* wp[grp][panel][k][m] = w[grp*cout_g + panel*mr + m, c, ky, kx] with k = (ky, kx, \
   c) (zero rows past cout_g) */                                                     \
static void pc_dil_pack_##S(const pc_geo *g, const T *w, ptrdiff_t mr, T *wp)       \
{                                                                                    \
    const ptrdiff_t cin = g->cin_g, taps = g->ks[1] * g->ks[2], ktot = taps * cin;   \
    const ptrdiff_t mpad = (g->cout_g + mr - 1) / mr * mr;                           \
    ptrdiff_t grp, m0, m, t, c;                                                      \
    for (grp = 0; grp < g->G; grp++)                                                 \
        for (m0 = 0; m0 < mpad; m0 += mr) {                                          \
            T *dst = wp + (grp * mpad + m0) * ktot;                                  \
            for (t = 0; t < taps; t++)                                               \
                for (c = 0; c < cin; c++)                                            \
                    for (m = 0; m < mr; m++) {                                       \
                        const ptrdiff_t co = m0 + m;                                 \
                        dst[(t * cin + c) * mr + m] = co < g->cout_g                 \
                            ? w[((grp * g->cout_g + co) * cin + c) * taps + t] : (T)0; \
                    }                                                                \
        }                                                                            \
}

PC_DEFINE_DIL(float, f)
PC_DEFINE_DIL(double, d)

#endif /* PYCONV_KERNELS_DILATED_H */
