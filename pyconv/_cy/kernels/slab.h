/*
 * Slabs: the zero-padded copy of the input box one tile of output rows
 * reads, in which every kernel tap is a constant offset.  The "implicit"
 * conv and conv_weight paths (and, through them, the phases of a
 * transposed conv) work on slabs; the micro-kernels are in microkernels.h.
 */
#ifndef PYCONV_KERNELS_SLAB_H
#define PYCONV_KERNELS_SLAB_H

#include "common.h"
#include "microkernels.h"

/*
 * Slab geometry of one tile: output rows [t0, t1) along axis A.  Per axis
 * ax: start[ax] is the input coordinate of slab index 0, st[ax] the stride
 * and len[ax] the slab extent of one phase.  Axes before A are trivial
 * (one output, one input, one tap) but may still shift the input: a phase
 * of a transposed conv can read input position 1 (lo = -1) of a size-1
 * axis, which is then padding.
 *
 * With stride 1 a channel's slab is the input box itself.  With a stride s
 * (the weight gradient of a strided conv) the box is stored as its s-phases
 * per axis: phase r holds box positions r, r + s, r + 2s, ... (len of them),
 * so that output o meets tap k at phase (k d) mod s, index o + (k d) div s:
 * the same layout as stride 1 (a row of len[2] per output row), every tap
 * a constant offset into one phase.
 */
#define PC_SLAB_ALIGN 16

typedef struct {
    ptrdiff_t A, t0, t1;
    ptrdiff_t start[3], len[3], st[3];
    ptrdiff_t phase;     /* one phase: len[0]*len[1]*len[2] */
    ptrdiff_t plane;     /* one channel: its phases, rounded up to PC_SLAB_ALIGN */
    ptrdiff_t ncols;     /* virtual output positions of the tile */
} pc_slab;

static void pc_slab_geo(const pc_geo *g, ptrdiff_t A, ptrdiff_t t0, ptrdiff_t t1,
                        pc_slab *sl)
{
    ptrdiff_t ax, phases = 1;
    sl->A = A;
    sl->t0 = t0;
    sl->t1 = t1;
    for (ax = 0; ax < 3; ax++) {
        ptrdiff_t halo = (g->ks[ax] - 1) * g->dl[ax], s = g->st[ax], full;
        if (ax < A) {
            sl->start[ax] = -g->lo[ax];
            sl->st[ax] = 1;
            sl->len[ax] = 1;
            continue;
        }
        if (ax == A) {
            sl->start[ax] = t0 * s - g->lo[ax];
            full = (t1 - t0 - 1) * s + halo + 1;
        } else {
            sl->start[ax] = -g->lo[ax];
            full = (g->osz[ax] - 1) * s + halo + 1;
        }
        sl->st[ax] = s;
        sl->len[ax] = (full + s - 1) / s;
        phases *= s;
    }
    sl->phase = sl->len[0] * sl->len[1] * sl->len[2];
    /* channel planes start 16 elements apart (64 bytes or more): the same
       alignment for every channel's vector loads, none split by a cache line
       when the tile's is not */
    sl->plane = (phases * sl->phase + PC_SLAB_ALIGN - 1) / PC_SLAB_ALIGN * PC_SLAB_ALIGN;
    sl->ncols = (t1 - t0) * (A == 0 ? sl->len[1] * sl->len[2] : (A == 1 ? sl->len[2] : 1));
}

/* off[k] for k = (c, kz, ky, kx), c < cin_g: the tap's phase, then its shift */
static void pc_slab_offsets(const pc_geo *g, const pc_slab *sl, ptrdiff_t *off)
{
    ptrdiff_t c, kz, ky, kx, k = 0;
    if (sl->st[0] == 1 && sl->st[1] == 1 && sl->st[2] == 1) {
        /* one phase per axis (every stride-1 conv): the shifts alone, without
           the divisions (tens of them per tap, a visible share of a small call) */
        for (c = 0; c < g->cin_g; c++)
            for (kz = 0; kz < g->ks[0]; kz++)
                for (ky = 0; ky < g->ks[1]; ky++)
                    for (kx = 0; kx < g->ks[2]; kx++)
                        off[k++] = c * sl->plane
                                   + (kz * g->dl[0] * sl->len[1] + ky * g->dl[1]) * sl->len[2]
                                   + kx * g->dl[2];
        return;
    }
    for (c = 0; c < g->cin_g; c++)
        for (kz = 0; kz < g->ks[0]; kz++)
            for (ky = 0; ky < g->ks[1]; ky++)
                for (kx = 0; kx < g->ks[2]; kx++) {
                    const ptrdiff_t uz = kz * g->dl[0], uy = ky * g->dl[1], ux = kx * g->dl[2];
                    const ptrdiff_t ph = ((uz % sl->st[0]) * sl->st[1] + uy % sl->st[1])
                                         * sl->st[2] + ux % sl->st[2];
                    off[k++] = c * sl->plane + ph * sl->phase
                               + ((uz / sl->st[0]) * sl->len[1] + uy / sl->st[1]) * sl->len[2]
                               + ux / sl->st[2];
                }
}

/* Whether some tap reads phase r of axis ax (k d = r mod s for some k). */
static int pc_slab_phase_used(const pc_geo *g, int ax, ptrdiff_t r)
{
    ptrdiff_t k;
    for (k = 0; k < g->ks[ax]; k++)
        if ((k * g->dl[ax]) % g->st[ax] == r) return 1;
    return 0;
}

#define PC_DEFINE_SLAB(T, S)                                                         \
/* slab[c, phase r, u] = x_g[c, start + u s + r] (zero outside the input); the    \
   gaps between the planes and the tail zeroed */                                    \
PC_CLONES static void pc_slab_fill_##S(const pc_geo *g, const pc_slab *sl,           \
                                       const T *restrict xg, T *restrict slab,       \
                                       ptrdiff_t tail)                               \
{                                                                                    \
    const ptrdiff_t LZ = sl->len[0], LY = sl->len[1], LX = sl->len[2];               \
    const ptrdiff_t SZ = sl->st[0], SY = sl->st[1], SX = sl->st[2];                  \
    ptrdiff_t c, rz, ry, rx, uz, uy, i;                                              \
    for (rz = 0; rz < SZ; rz++)                                                      \
    for (ry = 0; ry < SY; ry++)                                                      \
    for (rx = 0; rx < SX; rx++) {                                                    \
        const ptrdiff_t x0 = sl->start[2] + rx;  /* input column of index 0 */       \
        /* the indices a <= i < b read input columns inside the row */               \
        ptrdiff_t a = x0 < 0 ? (-x0 + SX - 1) / SX : 0;                              \
        ptrdiff_t b = x0 < g->isz[2] ? (g->isz[2] - x0 + SX - 1) / SX : 0;           \
        if (!(pc_slab_phase_used(g, 0, rz) && pc_slab_phase_used(g, 1, ry)            \
              && pc_slab_phase_used(g, 2, rx)))                                      \
            continue;                       /* no tap reads it (a 1x1 kernel) */    \
        if (a > LX) a = LX;                                                          \
        if (b > LX) b = LX;                                                          \
        if (b < a) b = a;                                                            \
        for (c = 0; c < g->cin_g; c++) {                                             \
            const T *xc = xg + c * g->Pin;                                           \
            T *sc = slab + c * sl->plane + ((rz * SY + ry) * SX + rx) * sl->phase;   \
            for (uz = 0; uz < LZ; uz++) {                                            \
                ptrdiff_t iz = sl->start[0] + uz * SZ + rz;                          \
                for (uy = 0; uy < LY; uy++) {                                        \
                    ptrdiff_t iy = sl->start[1] + uy * SY + ry;                      \
                    T *d = sc + (uz * LY + uy) * LX;                                 \
                    if (iz < 0 || iz >= g->isz[0] || iy < 0 || iy >= g->isz[1]) {    \
                        for (i = 0; i < LX; i++) d[i] = 0;                           \
                        continue;                                                    \
                    }                                                                \
                    {                                                                \
                        const T *src = xc + (iz * g->isz[1] + iy) * g->isz[2] + x0;  \
                        for (i = 0; i < a; i++) d[i] = 0;                            \
                        if (SX == 1)                                                 \
                            for (i = a; i < b; i++) d[i] = src[i];                   \
                        else                                                         \
                            for (i = a; i < b; i++) d[i] = src[i * SX];              \
                        for (i = b; i < LX; i++) d[i] = 0;                           \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    for (c = 0; c < g->cin_g; c++)          /* the gaps between the planes */        \
        for (i = SZ * SY * SX * sl->phase; i < sl->plane; i++)                       \
            slab[c * sl->plane + i] = 0;                                             \
    for (i = 0; i < tail; i++) slab[g->cin_g * sl->plane + i] = 0;                   \
}                                                                                    \
/* y_g[co, valid outputs of the tile] = ybuf[co, q] + bias[co] */                     \
PC_CLONES static void pc_slab_store_##S(const pc_geo *g, const pc_slab *sl,          \
                                        const T *restrict ybuf, ptrdiff_t ld,        \
                                        T *restrict yg, const ptrdiff_t *ys,         \
                                        const T *bias)                               \
{                                                                                    \
    /* ys: element strides of y per (channel, z, y, x) */                            \
    const ptrdiff_t A = sl->A, LY = sl->len[1], LX = sl->len[2];                     \
    ptrdiff_t co, oz, oy, i;                                                         \
    ptrdiff_t z0 = A == 0 ? sl->t0 : 0, z1 = A == 0 ? sl->t1 : g->osz[0];            \
    ptrdiff_t y0 = A == 1 ? sl->t0 : 0, y1 = A == 1 ? sl->t1 : g->osz[1];            \
    ptrdiff_t x0 = A == 2 ? sl->t0 : 0, x1 = A == 2 ? sl->t1 : g->osz[2];            \
    const ptrdiff_t xs = ys[3];                                                      \
    for (co = 0; co < g->cout_g; co++) {                                             \
        const T bv = bias ? bias[co] : (T)0;                                         \
        const T *yb = ybuf + co * ld;                                                \
        T *yc = yg + co * ys[0];                                                     \
        for (oz = z0; oz < z1; oz++)                                                 \
            for (oy = y0; oy < y1; oy++) {                                           \
                const T *s = yb + ((oz - z0) * LY + (oy - y0)) * LX;                 \
                T *d = yc + oz * ys[1] + oy * ys[2] + x0 * xs;                       \
                if (xs == 1)                                                         \
                    for (i = 0; i < x1 - x0; i++) d[i] = s[i] + bv;                  \
                else                                                                 \
                    for (i = 0; i < x1 - x0; i++) d[i * xs] = s[i] + bv;             \
            }                                                                        \
    }                                                                                \
}

PC_DEFINE_SLAB(float, f)
PC_DEFINE_SLAB(double, d)

/*
 * The panels of one slab tile.  In 3-d the last (KY-1)*DY rows of every
 * slab plane only feed thrown-away positions: each plane's panels stop at its
 * last valid row (ldo must leave NR columns of slack past the tile).
 */
#define PC_DEFINE_ITILE(T, S)                                                        \
static void pc_itile_##S(int level, const pc_geo *g, const pc_slab *sl, ptrdiff_t kc, \
                         ptrdiff_t mrows, const T *wpack, const T *slab,             \
                         const ptrdiff_t *off, T *out, ptrdiff_t ldo)                \
{                                                                                    \
    ptrdiff_t uz, pl = sl->len[1] * sl->len[2];                                      \
    if (sl->A != 0) {                                                                \
        pc_ipanels_##S(level, kc, mrows, wpack, slab, off, sl->ncols, out, ldo);     \
        return;                                                                      \
    }                                                                                \
    for (uz = 0; uz < sl->t1 - sl->t0; uz++)                                         \
        pc_ipanels_##S(level, kc, mrows, wpack, slab + uz * pl, off,                 \
                       g->osz[1] * sl->len[2], out + uz * pl, ldo);                  \
}

PC_DEFINE_ITILE(float, f)
PC_DEFINE_ITILE(double, d)

/* valid segments of a slab tile: virtual start q and packed start j, length */
static ptrdiff_t pc_slab_segments(const pc_geo *g, const pc_slab *sl, ptrdiff_t *seg)
{
    const ptrdiff_t A = sl->A, LY = sl->len[1], LX = sl->len[2];
    ptrdiff_t z0 = A == 0 ? sl->t0 : 0, z1 = A == 0 ? sl->t1 : g->osz[0];
    ptrdiff_t y0 = A == 1 ? sl->t0 : 0, y1 = A == 1 ? sl->t1 : g->osz[1];
    ptrdiff_t x0 = A == 2 ? sl->t0 : 0, x1 = A == 2 ? sl->t1 : g->osz[2];
    ptrdiff_t oz, oy, n = 0, j = 0;
    for (oz = z0; oz < z1; oz++)
        for (oy = y0; oy < y1; oy++) {
            seg[3 * n] = ((oz - z0) * LY + (oy - y0)) * LX;
            seg[3 * n + 1] = j;
            seg[3 * n + 2] = x1 - x0;
            j += x1 - x0;
            n++;
        }
    return n;
}

/* Whether pc_pack_gy_f takes 16 channels at a time (pc_gather16_v4): the
   scalar transpose stored each element 4 * nrw bytes from the last, one cache
   line per store, and took a quarter of a long 1-d weight gradient
   (conv1d_weight N32 C64->128 L1024 K5: 28% of the samples on one thread). */
#define PC_PACK_V4(nrw, ld) (PYCONV_HAVE_CLONES && (nrw) % 16 == 0 && pc_gather16_ok(ld) \
                             && pc_uk_level() == 2)

#define PC_DEFINE_PACK_GY(T, S, FAST)                                                  \
/* gyt[panel][j][c] = gy_g[c0 + c, valid position j of the tile] (0 past cout); \
   nval: the positions of a panel (its stride), at least the tile's valid ones. \
   A transpose, in blocks of PC_PACK_BLOCK positions so that the panel's rows   \
   being written stay in the L1 cache (or 16 channels at a time by FAST). */    \
PC_CLONES static void pc_pack_gy_##S(const pc_geo *g, const pc_slab *sl,             \
                                     const T *restrict gyg, ptrdiff_t nrw,           \
                                     T *restrict gyt, ptrdiff_t nval)                \
{                                                                                    \
    const ptrdiff_t A = sl->A, OY = g->osz[1], OX = g->osz[2];                       \
    ptrdiff_t z0 = A == 0 ? sl->t0 : 0, z1 = A == 0 ? sl->t1 : g->osz[0];            \
    ptrdiff_t y0 = A == 1 ? sl->t0 : 0, y1 = A == 1 ? sl->t1 : OY;                   \
    ptrdiff_t x0 = A == 2 ? sl->t0 : 0, x1 = A == 2 ? sl->t1 : OX;                   \
    const ptrdiff_t nx = x1 - x0;                                                    \
    const int fast = FAST(nrw, g->Pout);                                             \
    ptrdiff_t c0, c, oz, oy, i, i0, i1, j;                                           \
    for (c0 = 0; c0 < g->cout_g; c0 += nrw) {                                        \
        T *panel = gyt + (c0 / nrw) * nval * nrw;                                    \
        const ptrdiff_t nc = g->cout_g - c0 < nrw ? g->cout_g - c0 : nrw;            \
        j = 0;                                                                       \
        for (oz = z0; oz < z1; oz++)                                                 \
            for (oy = y0; oy < y1; oy++, j += nx) {                                  \
                const T *src = gyg + c0 * g->Pout + (oz * OY + oy) * OX + x0;        \
                if (fast) {                                                          \
                    PC_PACK_GATHER(src, nc, nx, nrw, g->Pout, panel + j * nrw);      \
                    continue;                                                        \
                }                                                                    \
                for (i0 = 0; i0 < nx; i0 = i1) {                                     \
                    i1 = nx - i0 < PC_PACK_BLOCK ? nx : i0 + PC_PACK_BLOCK;          \
                    for (c = 0; c < nrw; c++) {                                      \
                        T *d = panel + j * nrw + c;                                  \
                        if (c >= nc) {                                               \
                            for (i = i0; i < i1; i++) d[i * nrw] = 0;                \
                        } else {                                                     \
                            const T *s = src + c * g->Pout;                          \
                            for (i = i0; i < i1; i++) d[i * nrw] = s[i];             \
                        }                                                            \
                    }                                                                \
                }                                                                    \
            }                                                                        \
    }                                                                                \
}

/* Positions per block of the portable transpose (the block's panel rows:
   PC_PACK_BLOCK * nrw elements, 16 KiB at nrw = 64 floats). */
#define PC_PACK_BLOCK 64
#define PC_PACK_NONE(nrw, ld) 0
/* 16 channels at a time of one row run (float, AVX-512 builds only) */
#if PYCONV_HAVE_CLONES
#define PC_PACK_GATHER(src, nc, nx, nrw, ld, dst)                                    \
    do {                                                                             \
        ptrdiff_t c_;                                                                \
        for (c_ = 0; c_ < (nrw); c_ += 16)                                           \
            pc_gather16_v4((const float *)(src) + c_ * (ld), (ld), NULL, (nx),       \
                           pc_lanes16((nc) - c_), (nrw), (float *)(dst) + c_);       \
    } while (0)
#else
#define PC_PACK_GATHER(src, nc, nx, nrw, ld, dst) ((void)0)
#endif

PC_DEFINE_PACK_GY(float, f, PC_PACK_V4)
PC_DEFINE_PACK_GY(double, d, PC_PACK_NONE)

#endif /* PYCONV_KERNELS_SLAB_H */
