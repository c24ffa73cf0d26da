/*
 * im2col straight into the micro-kernel's panel layout: the "packed" conv
 * path (strided convolutions).  pc_im2col_packed writes one tile of output
 * positions as panels of NR positions (panel-major, then k, then the NR
 * lanes), zeroing the lanes past the tile; pc_panels (microkernels.h) then
 * multiplies it by the packed weights.
 */
#ifndef PYCONV_KERNELS_PACKED_H
#define PYCONV_KERNELS_PACKED_H

#include "common.h"

#define PC_DEFINE_PACKED(T, S)                                                       \
static inline void pc_put_run_##S(T *restrict pack, ptrdiff_t kc, ptrdiff_t nr,      \
                                  ptrdiff_t r, ptrdiff_t q, ptrdiff_t len,           \
                                  const T *restrict src, ptrdiff_t sx)               \
{                                                                                    \
    /* positions q .. q+len-1 of row r <- src[i*sx] (zeros when src is NULL) */     \
    while (len > 0) {                                                                \
        ptrdiff_t lane = q % nr, n = nr - lane, i;                                   \
        T *d = pack + (q / nr) * kc * nr + r * nr + lane;                            \
        if (n > len) n = len;                                                        \
        if (!src)                                                                    \
            for (i = 0; i < n; i++) d[i] = 0;                                        \
        else if (sx == 1) {                                                          \
            for (i = 0; i < n; i++) d[i] = src[i];                                   \
            src += n;                                                                \
        } else if (sx == 2) {                                                        \
            for (i = 0; i < n; i++) d[i] = src[2 * i];                               \
            src += 2 * n;                                                            \
        } else {                                                                     \
            for (i = 0; i < n; i++) d[i] = src[i * sx];                              \
            src += n * sx;                                                           \
        }                                                                            \
        q += n;                                                                      \
        len -= n;                                                                    \
    }                                                                                \
}                                                                                    \
PC_CLONES static void pc_im2col_packed_##S(const pc_geo *g, const T *restrict xg,    \
                                           T *restrict pack, ptrdiff_t nr,           \
                                           ptrdiff_t p0, ptrdiff_t tl,               \
                                           const ptrdiff_t *xa, const ptrdiff_t *xb) \
{                                                                                    \
    const ptrdiff_t OY = g->osz[1], OX = g->osz[2];                                  \
    const ptrdiff_t IZ = g->isz[0], IY = g->isz[1], IX = g->isz[2];                  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], LX = g->lo[2], DX = g->dl[2];                     \
    const ptrdiff_t kc = g->cin_g * g->Kp;                                           \
    const ptrdiff_t tpad = (tl + nr - 1) / nr * nr;                                  \
    ptrdiff_t c, kz, ky, kx, r;                                                      \
    for (c = 0; c < g->cin_g; c++) {                                                 \
        const T *xc = xg + c * g->Pin;                                               \
        for (kz = 0; kz < KZ; kz++) {                                                \
            for (ky = 0; ky < KY; ky++) {                                            \
                ptrdiff_t rb = ((c * KZ + kz) * KY + ky) * KX;                       \
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
                            ptrdiff_t a = xa[kx], b = xb[kx], e = ox + seg;          \
                            if (a < ox) a = ox;                                      \
                            if (a > e) a = e;                                        \
                            if (b > e) b = e;                                        \
                            if (b < a) b = a;                                        \
                            r = rb + kx;                                             \
                            if (a > ox)                                              \
                                pc_put_run_##S(pack, kc, nr, r, done, a - ox, NULL, 0); \
                            if (b > a)                                               \
                                pc_put_run_##S(pack, kc, nr, r, done + a - ox, b - a,   \
                                               xrow + a * SX - LX + kx * DX, SX);    \
                            if (e > b)                                               \
                                pc_put_run_##S(pack, kc, nr, r, done + b - ox, e - b,   \
                                               NULL, 0);                             \
                        }                                                            \
                    } else {                                                         \
                        for (kx = 0; kx < KX; kx++)                                  \
                            pc_put_run_##S(pack, kc, nr, rb + kx, done, seg, NULL, 0); \
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
    if (tpad > tl)                                                                   \
        for (r = 0; r < kc; r++)                                                     \
            pc_put_run_##S(pack, kc, nr, r, tl, tpad - tl, NULL, 0);                 \
}

PC_DEFINE_PACKED(float, f)
PC_DEFINE_PACKED(double, d)

#endif /* PYCONV_KERNELS_PACKED_H */
