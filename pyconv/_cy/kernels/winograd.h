/*
 * Winograd minimal filtering: the transforms of the "winograd" paths.
 *
 * A stride-1, dilation-1 convolution with an r-tap kernel computes m outputs
 * along an axis from alpha = m + r - 1 inputs with alpha multiplications
 * instead of m * r (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks"): y = A^T [(G g) * (B^T d)], applied separably on every axis.
 * The matrices (B^T alpha x alpha, G alpha x r, A^T m x alpha) come from the
 * planner (pyconv/_cy/paths/winograd.py builds them exactly, Cook-Toom); an
 * axis that is not a real dim, or whose kernel has one tap, has m = r =
 * alpha = 1 and identity matrices, so 1-d, 2-d and 3-d share the code.
 *
 * The output is cut into tiles of m_z x m_y x m_x outputs.  A block of tiles
 * (consecutive in z, y, x order) is processed in three steps:
 *
 *   input transform   V[p][ci][t] = (B^T d_t B)[p]     per channel ci, tile t
 *   products          M[p] = U[p] @ V[p]               one GEMM per position p
 *   output transform  y_t = A^T M[.][co][t] A + bias   per channel co
 *
 * where U[p] (C_out/g x C_in/g) is the transformed weight, packed once per
 * call in micro-kernel panels (pc_wino_filter).  The products run on the
 * implicit-GEMM micro-kernel (pc_ipanels with off[ci] = ci * ldv): V[p] is a
 * plain row-major matrix whose columns are the block's tiles.
 *
 * A block is walked by *segments*: the tiles of one row of tiles (fixed
 * tz, ty) that lie in the block.  Along x the transforms are vectorised over
 * the tiles of a segment: the input rows are loaded de-interleaved by
 * residue modulo m_x (row[res][u] = x[x0 + u*m_x + res]), so that input
 * position t*m_x + k of tile t is row[k % m_x][t + k / m_x], a contiguous
 * run over t; the z and y transforms are whole-row operations.  Every
 * output element is computed by exactly one tile, in an order fixed by the
 * matrices: the result does not depend on the cutting into blocks or threads.
 *
 * The transforms of x and y run in the dtype of the call; the weight
 * transform in double (rounded once).
 */
#ifndef PYCONV_KERNELS_WINOGRAD_H
#define PYCONV_KERNELS_WINOGRAD_H

#include "common.h"

/* Largest alpha along one axis (F(6, 3), F(4, 5)). */
#define PC_WINO_MAX_ALPHA 8

/* The transform of one call: geometry, tiles and the per-axis matrices. */
typedef struct {
    pc_geo g;              /* the (stride-1, dilation-1) convolution */
    ptrdiff_t m[3];        /* outputs per tile along each axis */
    ptrdiff_t a[3];        /* alpha = m + r - 1 */
    ptrdiff_t nt[3];       /* tiles along each axis: ceil(osz / m) */
    ptrdiff_t P;           /* transformed positions: a[0] * a[1] * a[2] */
    double bt[3][PC_WINO_MAX_ALPHA * PC_WINO_MAX_ALPHA];   /* B^T, a x a */
    double gm[3][PC_WINO_MAX_ALPHA * PC_WINO_MAX_ALPHA];   /* G, a x r */
    double at[3][PC_WINO_MAX_ALPHA * PC_WINO_MAX_ALPHA];   /* A^T, m x a */
} pc_wino;

/* Elements of one de-interleaved input row of a segment of nt tiles. */
static inline ptrdiff_t pc_wino_ulen(const pc_wino *wg, ptrdiff_t nt)
{
    return nt + (wg->a[2] - 1) / wg->m[2];
}

/* Elements of the per-thread transform scratch for segments of up to nt tiles. */
static ptrdiff_t pc_wino_scratch(const pc_wino *wg, ptrdiff_t nt)
{
    ptrdiff_t rows = wg->a[0] * wg->a[1];
    return 2 * rows * wg->m[2] * (pc_wino_ulen(wg, nt) + 1);
}

/* Weight transform of one element pair, in double: lanes = rows of a panel.
   in: [r_z][r_y][r_x][L], out: [a_z][a_y][a_x][L] (tmp: two scratch blocks). */
static void pc_wino_axis_dd(const double *mat, ptrdiff_t rows, ptrdiff_t cols,
                            ptrdiff_t outer, ptrdiff_t mid, ptrdiff_t inner,
                            const double *in, double *out)
{
    /* out[o][i][q][l] = sum_j mat[i][j] in[o][j][q][l] over mid*inner = q,l */
    ptrdiff_t o, i, j, q, n = mid * inner;
    for (o = 0; o < outer; o++)
        for (i = 0; i < rows; i++) {
            double *d = out + (o * rows + i) * n;
            for (q = 0; q < n; q++) d[q] = 0;
            for (j = 0; j < cols; j++) {
                const double c = mat[i * cols + j];
                const double *s = in + (o * cols + j) * n;
                if (c == 0) continue;
                for (q = 0; q < n; q++) d[q] += c * s[q];
            }
        }
}

#define PC_DEFINE_WINO(T, S)                                                         \
/* out[o][i][:] = sum_j mat[i][j] in[o][j][:] (rows of ``inner`` elements) */         \
PC_CLONES static void pc_wino_axis_##S(const double *mat, ptrdiff_t rows,            \
                                       ptrdiff_t cols, ptrdiff_t outer,              \
                                       ptrdiff_t inner, const T *restrict in,        \
                                       T *restrict out)                              \
{                                                                                    \
    ptrdiff_t o, i, j, q;                                                            \
    for (o = 0; o < outer; o++)                                                      \
        for (i = 0; i < rows; i++) {                                                 \
            T *restrict d = out + (o * rows + i) * inner;                            \
            int first = 1;                                                           \
            for (j = 0; j < cols; j++) {                                             \
                const T c = (T)mat[i * cols + j];                                    \
                const T *restrict s = in + (o * cols + j) * inner;                   \
                if (c == 0) continue;                                                \
                if (first)                                                           \
                    for (q = 0; q < inner; q++) d[q] = c * s[q];                     \
                else                                                                 \
                    for (q = 0; q < inner; q++) d[q] += c * s[q];                    \
                first = 0;                                                           \
            }                                                                        \
            if (first)                                                               \
                for (q = 0; q < inner; q++) d[q] = 0;                                \
        }                                                                            \
}                                                                                    \
                                                                                     \
/* dst[res][u] = src[x0 + u*mx + res] for u < ulen, zero outside [0, X) */            \
PC_CLONES static void pc_wino_load_##S(const T *restrict src, ptrdiff_t X,          \
                                       ptrdiff_t x0, ptrdiff_t mx, ptrdiff_t ulen,   \
                                       T *restrict dst)                              \
{                                                                                    \
    /* interior: the u whose mx inputs are all inside the row */                      \
    ptrdiff_t ua = pc_ceildiv(-x0, mx), ub = pc_floordiv(X - x0, mx), u, res;        \
    if (ua < 0) ua = 0;                                                              \
    if (ub > ulen) ub = ulen;                                                        \
    if (ub < ua) ub = ua;                                                            \
    for (res = 0; res < mx; res++) {                                                 \
        for (u = 0; u < ua; u++) {                                                   \
            ptrdiff_t xi = x0 + u * mx + res;                                        \
            dst[res * ulen + u] = (xi >= 0 && xi < X) ? src[xi] : (T)0;              \
        }                                                                            \
        for (u = ub; u < ulen; u++) {                                                \
            ptrdiff_t xi = x0 + u * mx + res;                                        \
            dst[res * ulen + u] = (xi >= 0 && xi < X) ? src[xi] : (T)0;              \
        }                                                                            \
    }                                                                                \
    {                                                                                \
        const T *restrict s = src + x0;                                              \
        if (mx == 1) {                                                               \
            for (u = ua; u < ub; u++) dst[u] = s[u];                                 \
        } else if (mx == 2) {                                                        \
            T *restrict d0 = dst, *restrict d1 = dst + ulen;                         \
            for (u = ua; u < ub; u++) {                                              \
                d0[u] = s[2 * u];                                                    \
                d1[u] = s[2 * u + 1];                                                \
            }                                                                        \
        } else if (mx == 4) {                                                        \
            T *restrict d0 = dst, *restrict d1 = dst + ulen;                         \
            T *restrict d2 = dst + 2 * ulen, *restrict d3 = dst + 3 * ulen;          \
            for (u = ua; u < ub; u++) {                                              \
                d0[u] = s[4 * u];                                                    \
                d1[u] = s[4 * u + 1];                                                \
                d2[u] = s[4 * u + 2];                                                \
                d3[u] = s[4 * u + 3];                                                \
            }                                                                        \
        } else {                                                                     \
            for (res = 0; res < mx; res++)                                           \
                for (u = ua; u < ub; u++) dst[res * ulen + u] = s[u * mx + res];     \
        }                                                                            \
    }                                                                                \
}                                                                                    \
                                                                                     \
/* y[x0 + t*mx + j] = src[j][t] + bias for t < nt, within [0, X) */                   \
PC_CLONES static void pc_wino_store_##S(const T *restrict src, ptrdiff_t nt,        \
                                        ptrdiff_t mx, ptrdiff_t x0, ptrdiff_t X,     \
                                        T bias, T *restrict y)                       \
{                                                                                    \
    ptrdiff_t full = (X - x0) / mx, t, j;       /* tiles wholly inside the row */    \
    T *restrict d = y + x0;                                                          \
    if (full > nt) full = nt;                                                        \
    if (full < 0) full = 0;                                                          \
    if (mx == 1) {                                                                   \
        for (t = 0; t < full; t++) d[t] = src[t] + bias;                             \
    } else if (mx == 2) {                                                            \
        const T *restrict s0 = src, *restrict s1 = src + nt;                         \
        for (t = 0; t < full; t++) {                                                 \
            d[2 * t] = s0[t] + bias;                                                 \
            d[2 * t + 1] = s1[t] + bias;                                             \
        }                                                                            \
    } else if (mx == 4) {                                                            \
        const T *restrict s0 = src, *restrict s1 = src + nt;                         \
        const T *restrict s2 = src + 2 * nt, *restrict s3 = src + 3 * nt;            \
        for (t = 0; t < full; t++) {                                                 \
            d[4 * t] = s0[t] + bias;                                                 \
            d[4 * t + 1] = s1[t] + bias;                                             \
            d[4 * t + 2] = s2[t] + bias;                                             \
            d[4 * t + 3] = s3[t] + bias;                                             \
        }                                                                            \
    } else {                                                                         \
        for (j = 0; j < mx; j++)                                                     \
            for (t = 0; t < full; t++) d[t * mx + j] = src[j * nt + t] + bias;       \
    }                                                                                \
    for (t = full; t < nt; t++)             /* the partial tile at the row's end */  \
        for (j = 0; j < mx && x0 + t * mx + j < X; j++)                              \
            d[t * mx + j] = src[j * nt + t] + bias;                                  \
}                                                                                    \
                                                                                     \
/* Packed transformed weights of one panel of ``mr`` output channels:              \
 * U[grp][p] (mpad x cin_g, panels of mr rows, k-major; pc_pack_w's layout)         \
 * for rows [panel * mr, panel * mr + mr).  The transform runs in double. */         \
static void pc_wino_filter_##S(const pc_wino *wg, const T *w, ptrdiff_t grp,        \
                               ptrdiff_t panel, ptrdiff_t mr, ptrdiff_t mpad,        \
                               T *upack, double *tmp)                                \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], ax = wg->a[2];                     \
    const ptrdiff_t rz = g->ks[0], ry = g->ks[1], rx = g->ks[2];                     \
    const ptrdiff_t kc = g->cin_g, L = mr;                                           \
    double *b0 = tmp, *b1 = tmp + wg->P * L, *b2 = tmp + 2 * wg->P * L;              \
    ptrdiff_t ci, m, k, p;                                                           \
    for (ci = 0; ci < kc; ci++) {                                                    \
        /* b0[k][l]: tap k of row panel*mr + l (zero past the group's rows) */        \
        for (k = 0; k < g->Kp; k++)                                                  \
            for (m = 0; m < L; m++) {                                                \
                ptrdiff_t co = panel * mr + m;                                       \
                b0[k * L + m] = co < g->cout_g                                       \
                    ? (double)w[((grp * g->cout_g + co) * kc + ci) * g->Kp + k] : 0.0; \
            }                                                                        \
        /* x: [rz*ry][rx] -> [rz*ry][ax]; y: [rz][ry][ax] -> [rz][ay][ax];         \
           z: [rz][ay*ax] -> [az][ay*ax] */                                          \
        pc_wino_axis_dd(wg->gm[2], ax, rx, rz * ry, 1, L, b0, b1);                   \
        pc_wino_axis_dd(wg->gm[1], ay, ry, rz, ax, L, b1, b2);                       \
        pc_wino_axis_dd(wg->gm[0], az, rz, 1, ay * ax, L, b2, b0);                   \
        for (p = 0; p < wg->P; p++) {                                                \
            T *dst = upack + (grp * wg->P + p) * mpad * kc + panel * kc * mr + ci * mr; \
            for (m = 0; m < L; m++) dst[m] = (T)b0[p * L + m];                       \
        }                                                                            \
    }                                                                                \
}                                                                                    \
                                                                                     \
/* Input transform of one segment (tiles a .. a+nt-1 of the tile row (tz, ty))      \
 * for every channel of the group: V[p][ci][j0 + t]. */                             \
static void pc_wino_input_##S(const pc_wino *wg, const T *xg, ptrdiff_t tz,         \
                              ptrdiff_t ty, ptrdiff_t a, ptrdiff_t nt, T *V,         \
                              ptrdiff_t ldv, ptrdiff_t j0, T *scratch)               \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], ax = wg->a[2], mx = wg->m[2];      \
    const ptrdiff_t ulen = pc_wino_ulen(wg, nt), row = mx * ulen;                    \
    const ptrdiff_t z0 = tz * wg->m[0] - g->lo[0], y0 = ty * wg->m[1] - g->lo[1];    \
    const ptrdiff_t x0 = a * mx - g->lo[2];                                          \
    const ptrdiff_t half = pc_wino_scratch(wg, nt) / 2;                              \
    T *D = scratch, *E = scratch + half, *F;                                         \
    ptrdiff_t ci, kz, ky, r, px, kx, t;                                              \
    for (ci = 0; ci < g->cin_g; ci++) {                                              \
        const T *xc = xg + ci * g->Pin;                                              \
        for (kz = 0; kz < az; kz++)                                                  \
            for (ky = 0; ky < ay; ky++) {                                            \
                ptrdiff_t iz = z0 + kz, iy = y0 + ky;                                \
                T *d = D + (kz * ay + ky) * row;                                     \
                if (iz < 0 || iz >= g->isz[0] || iy < 0 || iy >= g->isz[1])          \
                    memset(d, 0, (size_t)row * sizeof(T));                           \
                else                                                                 \
                    pc_wino_load_##S(xc + (iz * g->isz[1] + iy) * g->isz[2],         \
                                     g->isz[2], x0, mx, ulen, d);                    \
            }                                                                        \
        /* y then z: whole de-interleaved rows */                                    \
        F = D;                                                                       \
        if (ay > 1) {                                                                \
            pc_wino_axis_##S(wg->bt[1], ay, ay, az, row, F, E);                      \
            F = E;                                                                   \
        }                                                                            \
        if (az > 1) {                                                                \
            T *out = F == D ? E : D;                                                 \
            pc_wino_axis_##S(wg->bt[0], az, az, 1, ay * row, F, out);                \
            F = out;                                                                 \
        }                                                                            \
        /* x: over the tiles, input k of tile t is row[k % mx][t + k / mx] */         \
        for (r = 0; r < az * ay; r++) {                                              \
            const T *fr = F + r * row;                                               \
            for (px = 0; px < ax; px++) {                                            \
                T *restrict v = V + ((r * ax + px) * g->cin_g + ci) * ldv + j0;      \
                int first = 1;                                                       \
                for (kx = 0; kx < ax; kx++) {                                        \
                    const T c = (T)wg->bt[2][px * ax + kx];                          \
                    const T *restrict s = fr + (kx % mx) * ulen + kx / mx;           \
                    if (c == 0) continue;                                            \
                    if (first)                                                       \
                        for (t = 0; t < nt; t++) v[t] = c * s[t];                    \
                    else                                                             \
                        for (t = 0; t < nt; t++) v[t] += c * s[t];                   \
                    first = 0;                                                       \
                }                                                                    \
                if (first)                                                           \
                    for (t = 0; t < nt; t++) v[t] = 0;                               \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}                                                                                    \
                                                                                     \
/* Output transform of one segment for every channel of the group:                 \
 * y_g[co, tile outputs] = A^T M[.][co][j0 + t] A + bias (inside the output). */     \
static void pc_wino_output_##S(const pc_wino *wg, const T *M, ptrdiff_t ldv,        \
                               ptrdiff_t j0, ptrdiff_t tz, ptrdiff_t ty, ptrdiff_t a, \
                               ptrdiff_t nt, T *yg, const T *bias, T *scratch)       \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], ax = wg->a[2];                     \
    const ptrdiff_t mz = wg->m[0], my = wg->m[1], mx = wg->m[2];                     \
    const ptrdiff_t row = mx * nt, half = pc_wino_scratch(wg, nt) / 2;               \
    T *Sx = scratch, *E = scratch + half, *F;                                        \
    ptrdiff_t co, r, jx, px, t, uz, uy;                                              \
    for (co = 0; co < g->cout_g; co++) {                                             \
        /* x: Sx[r][jx][t] = sum_px A^T[jx][px] M[(r, px)][co][j0 + t] */             \
        for (r = 0; r < az * ay; r++)                                                \
            for (jx = 0; jx < mx; jx++) {                                            \
                T *restrict d = Sx + r * row + jx * nt;                              \
                int first = 1;                                                       \
                for (px = 0; px < ax; px++) {                                        \
                    const T c = (T)wg->at[2][jx * ax + px];                          \
                    const T *restrict s = M + ((r * ax + px) * g->cout_g + co) * ldv + j0; \
                    if (c == 0) continue;                                            \
                    if (first)                                                       \
                        for (t = 0; t < nt; t++) d[t] = c * s[t];                    \
                    else                                                             \
                        for (t = 0; t < nt; t++) d[t] += c * s[t];                   \
                    first = 0;                                                       \
                }                                                                    \
                if (first)                                                           \
                    for (t = 0; t < nt; t++) d[t] = 0;                               \
            }                                                                        \
        F = Sx;                                                                      \
        if (ay > 1) {                                                                \
            pc_wino_axis_##S(wg->at[1], my, ay, az, row, F, E);                      \
            F = E;                                                                   \
        }                                                                            \
        if (az > 1) {                                                                \
            T *out = F == Sx ? E : Sx;                                               \
            pc_wino_axis_##S(wg->at[0], mz, az, 1, my * row, F, out);                \
            F = out;                                                                 \
        }                                                                            \
        for (uz = 0; uz < mz; uz++) {                                                \
            ptrdiff_t oz = tz * mz + uz;                                             \
            if (oz >= g->osz[0]) break;                                              \
            for (uy = 0; uy < my; uy++) {                                            \
                ptrdiff_t oy = ty * my + uy;                                         \
                if (oy >= g->osz[1]) break;                                          \
                pc_wino_store_##S(F + (uz * my + uy) * row, nt, mx, a * mx,          \
                                  g->osz[2], bias ? bias[co] : (T)0,                 \
                                  yg + co * g->Pout + (oz * g->osz[1] + oy) * g->osz[2]); \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

PC_DEFINE_WINO(float, f)
PC_DEFINE_WINO(double, d)

#endif /* PYCONV_KERNELS_WINOGRAD_H */
