/*
 * im2col and col2im on tiles of flat positions: the BLAS GEMM paths.
 */
#ifndef PYCONV_KERNELS_COLS_H
#define PYCONV_KERNELS_COLS_H

#include "common.h"

/*
 * im2col of one tile of output positions [p0, p0 + tl) of one group:
 *
 *   col[(c, kz, ky, kx), p - p0] = x_g[c, iz, iy, ix],  i* = o* s - lo + k* d
 *
 * (zero where the input position falls in the padding).  The tile is walked
 * as segments of output rows; xa[kx], xb[kx] bound the ox whose ix is
 * inside the input row.
 *
 * col2im of one tile of input positions [q0, q0 + tl) of one group (col rows
 * ``ld`` apart):
 *
 *   y_g[j, tz, ty, tx] += col[(j, kz, ky, kx), q - q0],  t* = i* s - lo + k* d
 *
 * for targets inside the owned box [olo, ohi) only; xa, xb bound the ix
 * whose tx is inside the box.  For a given output element the additions
 * happen in the order (kz, ky, input row, kx), fixed by the tile alone.
 */
/*
 * dd[2m] += p0[m], dd[2m+1] += p1[m] for m < N, N = 4 or 8 (one interleaved
 * pair of col2im rows; the very additions of the scalar loop, so bitwise the
 * same).
 */
#if defined(__GNUC__) && !defined(__clang__)
typedef float pc_c4_f __attribute__((vector_size(16)));
typedef int pc_i4_f __attribute__((vector_size(16)));
typedef double pc_c4_d __attribute__((vector_size(32)));
typedef long long pc_i4_d __attribute__((vector_size(32)));
typedef float pc_c8_f __attribute__((vector_size(32)));
typedef int pc_i8_f __attribute__((vector_size(32)));
typedef double pc_c8_d __attribute__((vector_size(64)));
typedef long long pc_i8_d __attribute__((vector_size(64)));
#define PC_IL(T, S, N, LO, HI)                                                       \
static inline void pc_il##N##_##S(T *dd, const T *p0, const T *p1)                   \
{                                                                                    \
    pc_c##N##_##S a, b, y0, y1;                                                      \
    memcpy(&a, p0, sizeof a);                                                        \
    memcpy(&b, p1, sizeof b);                                                        \
    memcpy(&y0, dd, sizeof y0);                                                      \
    memcpy(&y1, dd + N, sizeof y1);                                                  \
    y0 += __builtin_shuffle(a, b, (pc_i##N##_##S)LO);                                \
    y1 += __builtin_shuffle(a, b, (pc_i##N##_##S)HI);                                \
    memcpy(dd, &y0, sizeof y0);                                                      \
    memcpy(dd + N, &y1, sizeof y1);                                                  \
}
#define PC_IL4_LO {0, 4, 1, 5}
#define PC_IL4_HI {2, 6, 3, 7}
#define PC_IL8_LO {0, 8, 1, 9, 2, 10, 3, 11}
#define PC_IL8_HI {4, 12, 5, 13, 6, 14, 7, 15}
#else
#define PC_IL(T, S, N, LO, HI)                                                       \
static inline void pc_il##N##_##S(T *dd, const T *p0, const T *p1)                   \
{                                                                                    \
    int m;                                                                           \
    for (m = 0; m < N; m++) {                                                        \
        dd[2 * m] += p0[m];                                                          \
        dd[2 * m + 1] += p1[m];                                                      \
    }                                                                                \
}
#define PC_IL4_LO
#define PC_IL4_HI
#define PC_IL8_LO
#define PC_IL8_HI
#endif
PC_IL(float, f, 4, PC_IL4_LO, PC_IL4_HI)
PC_IL(double, d, 4, PC_IL4_LO, PC_IL4_HI)
PC_IL(float, f, 8, PC_IL8_LO, PC_IL8_HI)
PC_IL(double, d, 8, PC_IL8_LO, PC_IL8_HI)

#define PC_DEFINE_COLS(T, S)                                                         \
PC_CLONES static void pc_im2col_##S(const pc_geo *g, const T *restrict xg,           \
                                    T *restrict col, ptrdiff_t p0, ptrdiff_t tl,     \
                                    const ptrdiff_t *xa, const ptrdiff_t *xb)        \
{                                                                                    \
    const ptrdiff_t OY = g->osz[1], OX = g->osz[2];                                  \
    const ptrdiff_t IZ = g->isz[0], IY = g->isz[1], IX = g->isz[2];                  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], LX = g->lo[2], DX = g->dl[2];                     \
    ptrdiff_t c, kz, ky, kx, m;                                                      \
    for (c = 0; c < g->cin_g; c++) {                                                 \
        const T *xc = xg + c * g->Pin;                                               \
        for (kz = 0; kz < KZ; kz++) {                                                \
            for (ky = 0; ky < KY; ky++) {                                            \
                T *rows = col + ((c * KZ + kz) * KY + ky) * KX * tl;                 \
                ptrdiff_t oz = p0 / (OY * OX);                                       \
                ptrdiff_t oy = (p0 - oz * OY * OX) / OX;                             \
                ptrdiff_t ox = p0 - (oz * OY + oy) * OX;                             \
                ptrdiff_t done = 0;                                                  \
                while (done < tl) {                                                  \
                    ptrdiff_t seg = OX - ox;                                         \
                    ptrdiff_t iz = oz * g->st[0] - g->lo[0] + kz * g->dl[0];         \
                    ptrdiff_t iy = oy * g->st[1] - g->lo[1] + ky * g->dl[1];         \
                    if (seg > tl - done) seg = tl - done;                            \
                    if (iz >= 0 && iz < IZ && iy >= 0 && iy < IY) {                  \
                        const T *xrow = xc + (iz * IY + iy) * IX;                    \
                        for (kx = 0; kx < KX; kx++) {                                \
                            T *dst = rows + kx * tl + done - ox;                     \
                            ptrdiff_t a = xa[kx], b = xb[kx], e = ox + seg;          \
                            if (a < ox) a = ox;                                      \
                            if (a > e) a = e;                                        \
                            if (b > e) b = e;                                        \
                            if (b < a) b = a;                                        \
                            for (m = ox; m < a; m++) dst[m] = 0;                     \
                            if (b > a) {                                             \
                                const T *src = xrow + a * SX - LX + kx * DX;         \
                                T *d = dst + a;                                      \
                                ptrdiff_t len = b - a;                               \
                                if (SX == 1)                                         \
                                    for (m = 0; m < len; m++) d[m] = src[m];         \
                                else if (SX == 2)                                    \
                                    for (m = 0; m < len; m++) d[m] = src[2 * m];     \
                                else                                                 \
                                    for (m = 0; m < len; m++) d[m] = src[m * SX];    \
                            }                                                        \
                            for (m = b; m < e; m++) dst[m] = 0;                      \
                        }                                                            \
                    } else {                                                         \
                        for (kx = 0; kx < KX; kx++) {                                \
                            T *d = rows + kx * tl + done;                            \
                            for (m = 0; m < seg; m++) d[m] = 0;                      \
                        }                                                            \
                    }                                                                \
                    done += seg;                                                     \
                    ox += seg;                                                       \
                    if (ox == OX) {                                                  \
                        ox = 0;                                                      \
                        if (++oy == OY) { oy = 0; oz++; }                            \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}                                                                                    \
PC_CLONES static void pc_col2im_##S(const pc_geo *g, const T *restrict col,          \
                                    ptrdiff_t ld, T *restrict yg, ptrdiff_t q0,      \
                                    ptrdiff_t tl,                                    \
                                    const ptrdiff_t *olo, const ptrdiff_t *ohi,      \
                                    const ptrdiff_t *xa, const ptrdiff_t *xb)        \
{                                                                                    \
    const ptrdiff_t IY = g->isz[1], IX = g->isz[2], OY = g->osz[1], OX = g->osz[2];  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], LX = g->lo[2], DX = g->dl[2];                     \
    ptrdiff_t j, kz, ky, kx, m;                                                      \
    for (j = 0; j < g->cout_g; j++) {                                                \
        T *yj = yg + j * g->Pout;                                                    \
        for (kz = 0; kz < KZ; kz++) {                                                \
            for (ky = 0; ky < KY; ky++) {                                            \
                const T *rows = col + ((j * KZ + kz) * KY + ky) * KX * ld;           \
                ptrdiff_t iz = q0 / (IY * IX);                                       \
                ptrdiff_t iy = (q0 - iz * IY * IX) / IX;                             \
                ptrdiff_t ix = q0 - (iz * IY + iy) * IX;                             \
                ptrdiff_t done = 0;                                                  \
                while (done < tl) {                                                  \
                    ptrdiff_t seg = IX - ix;                                         \
                    ptrdiff_t tz = iz * g->st[0] - g->lo[0] + kz * g->dl[0];         \
                    ptrdiff_t ty = iy * g->st[1] - g->lo[1] + ky * g->dl[1];         \
                    if (seg > tl - done) seg = tl - done;                            \
                    if (tz >= olo[0] && tz < ohi[0] && ty >= olo[1] && ty < ohi[1]) { \
                        T *yrow = yj + (tz * OY + ty) * OX;                          \
                        const T *srow = rows + done - ix;                            \
                        for (kx = 0; kx < KX; kx++) {                                \
                            ptrdiff_t a = xa[kx], b = xb[kx], e = ix + seg;          \
                            if (a < ix) a = ix;                                      \
                            if (b > e) b = e;                                        \
                            if (SX == 2 && DX == 1 && kx + 1 < KX) {                 \
                                /* taps kx, kx+1 fill the even and odd outputs of */ \
                                /* one contiguous run: interleave them in one pass */ \
                                ptrdiff_t a1 = xa[kx + 1], b1 = xb[kx + 1], c0, c1;  \
                                const T *s0 = srow + kx * ld;                        \
                                const T *s1 = s0 + ld;                               \
                                T *d0 = yrow - LX + kx;                              \
                                if (a1 < ix) a1 = ix;                                \
                                if (b1 > e) b1 = e;                                  \
                                c0 = a > a1 ? a : a1;                                \
                                c1 = b < b1 ? b : b1;                                \
                                if (c1 > c0) {                                       \
                                    T *dd = d0 + 2 * c0;                             \
                                    const T *p0 = s0 + c0, *p1 = s1 + c0;            \
                                    ptrdiff_t len = c1 - c0;                         \
                                    for (m = a; m < c0; m++) d0[2 * m] += s0[m];     \
                                    for (m = a1; m < c0; m++) d0[2 * m + 1] += s1[m]; \
                                    for (m = 0; m + 8 <= len; m += 8)                \
                                        pc_il8_##S(dd + 2 * m, p0 + m, p1 + m);      \
                                    for (; m + 4 <= len; m += 4)                     \
                                        pc_il4_##S(dd + 2 * m, p0 + m, p1 + m);      \
                                    for (; m < len; m++) {                           \
                                        dd[2 * m] += p0[m];                          \
                                        dd[2 * m + 1] += p1[m];                      \
                                    }                                                \
                                    for (m = c1; m < b; m++) d0[2 * m] += s0[m];     \
                                    for (m = c1; m < b1; m++) d0[2 * m + 1] += s1[m]; \
                                } else {                                             \
                                    for (m = a; m < b; m++) d0[2 * m] += s0[m];      \
                                    for (m = a1; m < b1; m++) d0[2 * m + 1] += s1[m]; \
                                }                                                    \
                                kx++;                                                \
                                continue;                                            \
                            }                                                        \
                            if (b > a) {                                             \
                                const T *src = srow + kx * ld + a;                   \
                                T *d = yrow + a * SX - LX + kx * DX;                 \
                                ptrdiff_t len = b - a;                               \
                                if (SX == 1)                                         \
                                    for (m = 0; m < len; m++) d[m] += src[m];        \
                                else if (SX == 2)                                    \
                                    for (m = 0; m < len; m++) d[2 * m] += src[m];    \
                                else                                                 \
                                    for (m = 0; m < len; m++) d[m * SX] += src[m];   \
                            }                                                        \
                        }                                                            \
                    }                                                                \
                    done += seg;                                                     \
                    ix += seg;                                                       \
                    if (ix == IX) {                                                  \
                        ix = 0;                                                      \
                        if (++iy == IY) { iy = 0; iz++; }                            \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

PC_DEFINE_COLS(float, f)
PC_DEFINE_COLS(double, d)

#endif /* PYCONV_KERNELS_COLS_H */
