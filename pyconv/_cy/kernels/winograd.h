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
 * is processed in three steps:
 *
 *   input transform   V[p][ci][j] = (B^T d_j B)[p]     per channel ci, tile j
 *   products          M[p] = U[p] @ V[p]               one GEMM per position p
 *   output transform  y_j = A^T M[.][co][j] A + bias   per channel co
 *
 * where U[p] (C_out/g x C_in/g) is the transformed weight, packed once per
 * call in micro-kernel panels (pc_wino_filter).  The transforms take
 * PC_WINO_CCH channels at a time (the c0, c1 arguments): one step's rows go
 * from the input to V, and from M to the output, without leaving the L1
 * cache (with all channels at once they went through L2 twice each way).  The products run on the
 * implicit-GEMM micro-kernel (pc_ipanels with off[ci] = ci * ldv): V[p] is a
 * plain row-major matrix whose columns are the block's tiles.
 *
 * Columns.  A block is a run of *segments*: up to L consecutive tiles of one
 * row of tiles (fixed image, tz, ty).  Segment i owns the columns
 * [i*w, i*w + w) with w = L + h, h = (alpha_x - 1) / m_x: its tiles, then h
 * columns whose products are computed and thrown away.  Along x the input
 * rows are loaded de-interleaved by residue modulo m_x (row[res][u] =
 * x[x0 + u*m_x + res], u < w for each segment), so that input k of the tile
 * in column j is row[k % m_x][j + k / m_x]: the x transform of a whole
 * block is one contiguous run over its columns (the h extra columns absorb
 * the reads past a segment's tiles).  The z and y transforms are whole-row
 * operations.  Every output element is computed by exactly one tile, in an
 * order fixed by the matrices: the result does not depend on the cutting
 * into blocks or threads.
 *
 * The transforms of x and y run in the dtype of the call; the weight
 * transform in double (rounded once).
 */
#ifndef PYCONV_KERNELS_WINOGRAD_H
#define PYCONV_KERNELS_WINOGRAD_H

#include "common.h"

/* Largest alpha along one axis (F(6, 3), F(4, 5)). */
#define PC_WINO_MAX_ALPHA 8
/* Input channels per step of the weight transform. */
#define PC_WINO_FCH 8
/* Channels per step of the input and output transforms: a step's rows stay
   in the L1 cache from the load to V (and from M to the store). */
#define PC_WINO_CCH 4

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
    int level;             /* the SIMD level of the call (pc_uk_level) */
} pc_wino;

/* The transforms run over whole vectors of PC_WINO_VEC columns (the widest
   float vector): the buffers' rows are rounded up to it. */
#define PC_WINO_VEC 16

/* Extra columns per segment: h = (alpha_x - 1) / m_x. */
static inline ptrdiff_t pc_wino_halo(const pc_wino *wg)
{
    return (wg->a[2] - 1) / wg->m[2];
}

/* Columns of V's and M's rows for a block of q columns: whole vectors (the
   micro-kernel's last panel of a block is as many vectors wide as it needs,
   pc_ipanels). */
static inline ptrdiff_t pc_wino_ldv(ptrdiff_t q)
{
    return (q + PC_WINO_VEC - 1) / PC_WINO_VEC * PC_WINO_VEC;
}

/* Elements of one residue row of the input scratch: ldv + h. */
static inline ptrdiff_t pc_wino_rs(const pc_wino *wg, ptrdiff_t ldv)
{
    return ldv + pc_wino_halo(wg);
}

/* Elements of the per-thread transform scratch: two blocks of one step's
   channels (at most PC_WINO_CCH) x a_z * a_y rows x m_x residues x rs. */
static ptrdiff_t pc_wino_scratch(const pc_wino *wg, ptrdiff_t ldv)
{
    ptrdiff_t c = wg->g.cin_g > wg->g.cout_g ? wg->g.cin_g : wg->g.cout_g;
    if (c > PC_WINO_CCH) c = PC_WINO_CCH;
    return 2 * c * wg->a[0] * wg->a[1] * wg->m[2] * pc_wino_rs(wg, ldv);
}

/* The weight transform along one axis, in double:
   out[o][i][q] = sum_j mat[i][j] in[o][j][q] for q < n (j increasing, the
   zero coefficients skipped).  An axis without taps (1 x 1 identity) is no
   step: *cur stays; else the result goes to the buffer after *cur (of 3).
   Rows of up to 3 nonzero coefficients (every row of the 3-tap matrices)
   are one pass over q with the sum in a register; longer ones add term by
   term. */
PC_CLONES static void pc_wino_axis_dd(const double *mat, ptrdiff_t rows, ptrdiff_t cols,
                                      ptrdiff_t outer, ptrdiff_t n, double *const *bufs,
                                      int *cur)
{
    const double *in = bufs[*cur];
    double *out = bufs[(*cur + 1) % 3];
    ptrdiff_t o, i, j, q;
    if (rows == 1 && cols == 1)
        return;
    for (o = 0; o < outer; o++)
        for (i = 0; i < rows; i++) {
            double *restrict d = out + (o * rows + i) * n;
            const double *s = in + o * cols * n;
            const double *s0 = NULL, *s1 = NULL, *s2 = NULL;
            double c0 = 0, c1 = 0, c2 = 0;
            int nz = 0;
            for (j = 0; j < cols; j++) {
                const double c = mat[i * cols + j];
                if (c == 0) continue;
                if (nz == 0) { c0 = c; s0 = s + j * n; }
                else if (nz == 1) { c1 = c; s1 = s + j * n; }
                else if (nz == 2) { c2 = c; s2 = s + j * n; }
                nz++;
            }
            if (nz == 0) {
                for (q = 0; q < n; q++) d[q] = 0;
            } else if (nz == 1) {
                const double *restrict a0 = s0;
                for (q = 0; q < n; q++) d[q] = c0 * a0[q];
            } else if (nz == 2) {
                const double *restrict a0 = s0, *restrict a1 = s1;
                for (q = 0; q < n; q++) d[q] = c0 * a0[q] + c1 * a1[q];
            } else if (nz == 3) {
                const double *restrict a0 = s0, *restrict a1 = s1, *restrict a2 = s2;
                for (q = 0; q < n; q++) d[q] = c0 * a0[q] + c1 * a1[q] + c2 * a2[q];
            } else {
                for (j = 0; j < cols && mat[i * cols + j] == 0; j++) {}
                {
                    const double c = mat[i * cols + j];
                    const double *restrict sj = s + j * n;
                    for (q = 0; q < n; q++) d[q] = c * sj[q];
                }
                for (j++; j < cols; j++) {
                    const double c = mat[i * cols + j];
                    const double *restrict sj = s + j * n;
                    if (c == 0) continue;
                    for (q = 0; q < n; q++) d[q] += c * sj[q];
                }
            }
        }
    *cur = (*cur + 1) % 3;
}

/* The u ranges of pc_wino_load for a row of X inputs read from x0 on, w
   positions per residue: rng[2*res], rng[2*res+1] the u inside the row for
   residue res; rng[2*mx], rng[2*mx+1] the u where all residues are. */
static void pc_wino_ranges(ptrdiff_t X, ptrdiff_t x0, ptrdiff_t mx, ptrdiff_t w,
                           ptrdiff_t *rng)
{
    ptrdiff_t res, a, b;
    for (res = 0; res <= mx; res++) {
        if (res < mx) {      /* 0 <= x0 + u*mx + res < X */
            a = pc_ceildiv(-x0 - res, mx);
            b = pc_ceildiv(X - x0 - res, mx);
        } else {             /* x0 + u*mx >= 0 and x0 + u*mx + mx - 1 < X */
            a = pc_ceildiv(-x0, mx);
            b = pc_floordiv(X - x0, mx);
        }
        if (a < 0) a = 0;
        if (b > w) b = w;
        if (b < a) b = a;
        rng[2 * res] = a;
        rng[2 * res + 1] = b;
    }
}

/* Input and output rows are read and written channel by channel, short runs
   that the hardware prefetchers miss: the same rows PC_WINO_AHEAD channels
   ahead are prefetched (elements [x0, x0 + n) of a row of X, clipped). */
#define PC_WINO_AHEAD 2

static inline void pc_wino_prefetch(const void *row, ptrdiff_t x0, ptrdiff_t n,
                                    ptrdiff_t X, size_t isz, int write)
{
    const char *p = (const char *)row;
    ptrdiff_t a = x0 < 0 ? 0 : x0, b = x0 + n > X ? X : x0 + n, e;
    for (e = a * (ptrdiff_t)isz; e < b * (ptrdiff_t)isz; e += 64) {
        if (write)
            __builtin_prefetch(p + e, 1, 3);
        else
            __builtin_prefetch(p + e, 0, 3);
    }
    if (b > a) {
        if (write)
            __builtin_prefetch(p + b * (ptrdiff_t)isz - 1, 1, 3);
        else
            __builtin_prefetch(p + b * (ptrdiff_t)isz - 1, 0, 3);
    }
}

/* GCC: the rows a transform reads and writes never overlap. */
#if defined(__GNUC__) && !defined(__clang__)
#define PC_IVDEP _Pragma("GCC ivdep")
#else
#define PC_IVDEP
#endif

/*
 * The de-interleaving load and the interleaving store of float rows at the
 * AVX-512 level, for m_x = 2 and 4 (the F(2, r) and F(4, r) tiles): 16
 * positions u per step, the m_x source vectors read with masked loads (the
 * lanes outside the row read as zeros, nothing outside it is touched) and
 * split by residue with two-source permutes; the stores are masked to the
 * positions asked for.  Same values as the scalar loops (the store adds
 * the bias to each element the same way): only the data movement changes.
 * The other dtypes, levels and tile sizes take the scalar loops.
 */
#if PYCONV_HAVE_CLONES
#include <immintrin.h>

/* Lanes [a, b) of a 16-lane mask, a and b clipped to [0, 16]. */
static inline unsigned pc_wino_lanes(ptrdiff_t a, ptrdiff_t b)
{
    if (a < 0) a = 0;
    if (b > 16) b = 16;
    if (b <= a) return 0;
    return ((1u << b) - 1u) & ~((1u << a) - 1u);
}

/* The permute network of the vector load and store, with (a, i, b) for
 * _mm512_permutex2var_ps(a, i, b) and the pairs (x[0], x[a]), (x[b], x[a+b]):
 * n = 2 gives o[0] = (x[0], p, x[a]) and o[1] = (x[0], q, x[a]); n = 4
 * gives, with e = (x[0], p, x[a]), f = (x[0], q, x[a]), g = (x[b], p,
 * x[a+b]) and h = (x[b], q, x[a+b]), o = {(e, p, g), (f, p, h), (e, q, g),
 * (f, q, h)}.  Only the n inputs are read. */
PC_TARGET("arch=x86-64-v4") static inline void pc_wino_perm_v4(
    const __m512 *x, ptrdiff_t a, ptrdiff_t b, ptrdiff_t n, __m512i p, __m512i q, __m512 *o)
{
    const __m512 e = _mm512_permutex2var_ps(x[0], p, x[a]);
    const __m512 f = _mm512_permutex2var_ps(x[0], q, x[a]);
    if (n == 2) {
        o[0] = e;
        o[1] = f;
        return;
    }
    {
        const __m512 g = _mm512_permutex2var_ps(x[b], p, x[a + b]);
        const __m512 h = _mm512_permutex2var_ps(x[b], q, x[a + b]);
        o[0] = _mm512_permutex2var_ps(e, p, g);
        o[1] = _mm512_permutex2var_ps(f, p, h);
        o[2] = _mm512_permutex2var_ps(e, q, g);
        o[3] = _mm512_permutex2var_ps(f, q, h);
    }
}

/* pc_wino_load_f's rows, at the AVX-512 level (the row is [0, X)). */
PC_TARGET("arch=x86-64-v4") static void pc_wino_load_v4(
    const float *const *rows, ptrdiff_t nrows, ptrdiff_t x0, ptrdiff_t mx, ptrdiff_t w,
    ptrdiff_t X, ptrdiff_t rs, ptrdiff_t ld, float *dst)
{
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
                                        14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    ptrdiff_t r, u0;
    for (r = 0; r < nrows; r++, dst += ld) {
        const float *src = rows[r];
        for (u0 = 0; u0 < w; u0 += 16) {
            const __mmask16 sm = (__mmask16)pc_wino_lanes(0, w - u0);
            __m512 o[4];
            if (src == NULL) {
                o[0] = o[1] = o[2] = o[3] = _mm512_setzero_ps();
            } else {
                /* element e of the step is src[base + e], inside for e in [lo, hi) */
                const ptrdiff_t base = x0 + u0 * mx, lo = -base, hi = X - base;
                __m512 v[4];
                ptrdiff_t i;
                for (i = 0; i < mx; i++)
                    v[i] = _mm512_maskz_loadu_ps(
                        (__mmask16)pc_wino_lanes(lo - 16 * i, hi - 16 * i),
                        src + base + 16 * i);
                /* residues (0, 2) and (1, 3) of 8 positions, then split */
                pc_wino_perm_v4(v, 1, 2, mx, ev, od, o);
            }
            {
                ptrdiff_t res;
                for (res = 0; res < mx; res++)
                    _mm512_mask_storeu_ps(dst + res * rs + u0, sm, o[res]);
            }
        }
    }
}

/* pc_wino_store_f at the AVX-512 level. */
PC_TARGET("arch=x86-64-v4") static void pc_wino_store_v4(
    const float *src, ptrdiff_t ld, ptrdiff_t nt, ptrdiff_t mx, ptrdiff_t x0, ptrdiff_t X,
    float bias, float *y)
{
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4,
                                        19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 b = _mm512_set1_ps(bias);
    ptrdiff_t t0, i;
    for (t0 = 0; t0 < nt; t0 += 16) {
        /* the tiles [t0, t0 + 16) of each row; element e of the step is
           y[base + e], written for e < n */
        const __mmask16 tm = (__mmask16)pc_wino_lanes(0, nt - t0);
        const ptrdiff_t base = x0 + t0 * mx;
        ptrdiff_t n = (nt - t0 < 16 ? nt - t0 : 16) * mx;
        __m512 s[4], o[4];
        if (n > X - base) n = X - base;
        for (i = 0; i < mx; i++)
            s[i] = _mm512_maskz_loadu_ps(tm, src + i * ld + t0);
        /* residues (0, 2) and (1, 3) paired, then the pairs merged */
        pc_wino_perm_v4(s, mx == 2 ? 1 : 2, 1, mx, lo, hi, o);
        if (mx == 4) {
            const __m512 t = o[1];
            o[1] = o[2];
            o[2] = t;
        }
        for (i = 0; i < mx; i++)
            _mm512_mask_storeu_ps(y + base + 16 * i,
                                  (__mmask16)pc_wino_lanes(0, n - 16 * i),
                                  _mm512_add_ps(o[i], b));
    }
}

/* row[r * rs + u] = 0 for r < nrows, q <= u < rs (the tails of the input
   transform's rows; one masked store per 16, where memset was a call for
   each few elements). */
PC_TARGET("arch=x86-64-v4") static void pc_wino_tails_v4(float *row, ptrdiff_t nrows,
                                                       ptrdiff_t rs, ptrdiff_t q)
{
    const __m512 z = _mm512_setzero_ps();
    ptrdiff_t r, u;
    for (r = 0; r < nrows; r++, row += rs)
        for (u = q; u < rs; u += 16)
            _mm512_mask_storeu_ps(row + u, (__mmask16)pc_wino_lanes(0, rs - u), z);
}

/* The taps of pc_wino_filter_f, at the AVX-512 level with 8-row panels: for
   c < nc and k < K, dst[(k * PC_WINO_FCH + c) * 8 + m] = f_m,c[tap k] for the
   nm rows m of the layer, zero for the others (f_m,c = w0 + m * sco + c *
   sci; tap k is K - 1 - k when swap).  One masked 8-lane gather per (c, k):
   the scalar copy spent its time on the scattered 8-byte stores. */
PC_TARGET("arch=x86-64-v4") static void pc_wino_taps_v4(const float *w0, ptrdiff_t sco,
                                                      ptrdiff_t sci, ptrdiff_t K, int swap,
                                                      ptrdiff_t nm, ptrdiff_t nc, double *dst)
{
    const __m256i idx = _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm256_set1_epi32((int)sco));
    const __mmask8 rows = (__mmask8)((1u << nm) - 1u);
    ptrdiff_t c, k;
    for (c = 0; c < PC_WINO_FCH; c++)
        for (k = 0; k < K; k++) {
            double *d = dst + (k * PC_WINO_FCH + c) * 8;
            if (c < nc) {
                const float *f = w0 + c * sci + (swap ? K - 1 - k : k);
                const __m256 v = _mm256_mmask_i32gather_ps(_mm256_setzero_ps(), rows, idx, f, 4);
                _mm512_storeu_pd(d, _mm512_cvtps_pd(v));
            } else {
                _mm512_storeu_pd(d, _mm512_setzero_pd());
            }
        }
}

/* The whole weight transform of one panel of 8 rows for 2-d 3x3 kernels,
   F(2x2, 3x3) and F(4x4, 3x3), at the AVX-512 level: the 8 rows are the
   lanes; per input channel the 9 taps are gathered (as pc_wino_taps_v4),
   both axis steps run in registers, in double, and the a*a positions are
   rounded once and stored.  pc_wino_filter's buffered steps spent most of
   their time moving the steps' rows through the cache (a third of a batch-1
   call at 28x28 x 128).  G's zero pattern is the one both matrices have
   (row 0 [g, 0, 0], row a-1 [0, 0, g], the rows between dense): the known
   zeros are skipped as pc_wino_axis_dd skips them, and each sum runs in the
   same order (j increasing).  dst: the panel's first element of position 0
   and channel 0; ps: elements between positions (mpad * cin_g). */
PC_TARGET("arch=x86-64-v4") static inline __attribute__((always_inline)) void
pc_wino_f33_body_v4(const int A, const double *gy, const double *gx, const float *w0,
                    ptrdiff_t sco, ptrdiff_t sci, int swap, ptrdiff_t nm, ptrdiff_t kc,
                    float *dst, ptrdiff_t ps)
{
    const __m256i idx = _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm256_set1_epi32((int)sco));
    const __mmask8 rows = (__mmask8)((1u << nm) - 1u);
    /* PC_WINO_FCH channels' positions, then copied out position by position
       (the positions lie ps apart: one channel at a time, each store was half
       a cache line of a different line, of 36 in the same cache set) */
    float stage[36 * PC_WINO_FCH * 8] __attribute__((aligned(64)));
    ptrdiff_t c0, c, nc, p, e;
    int k, ky, i, j;
    for (c0 = 0; c0 < kc; c0 += PC_WINO_FCH) {
        nc = kc - c0 < PC_WINO_FCH ? kc - c0 : PC_WINO_FCH;
        for (c = 0; c < nc; c++) {
            const float *f = w0 + (c0 + c) * sci;
            __m512d t[9], r[3][6];
            for (k = 0; k < 9; k++)
                t[k] = _mm512_cvtps_pd(_mm256_mmask_i32gather_ps(
                    _mm256_setzero_ps(), rows, idx, f + (swap ? 8 - k : k), 4));
            for (ky = 0; ky < 3; ky++) {  /* along x: r[ky][i] = sum_j gx[i][j] t[ky][j] */
                const __m512d *tk = t + 3 * ky;
                r[ky][0] = _mm512_mul_pd(_mm512_set1_pd(gx[0]), tk[0]);
                for (i = 1; i < A - 1; i++)
                    r[ky][i] = _mm512_fmadd_pd(
                        _mm512_set1_pd(gx[3 * i + 2]), tk[2],
                        _mm512_fmadd_pd(_mm512_set1_pd(gx[3 * i + 1]), tk[1],
                                        _mm512_mul_pd(_mm512_set1_pd(gx[3 * i]), tk[0])));
                r[ky][A - 1] = _mm512_mul_pd(_mm512_set1_pd(gx[3 * (A - 1) + 2]), tk[2]);
            }
            for (i = 0; i < A; i++)       /* along y: u[i][j] = sum_ky gy[i][ky] r[ky][j] */
                for (j = 0; j < A; j++) {
                    __m512d u;
                    if (i == 0)
                        u = _mm512_mul_pd(_mm512_set1_pd(gy[0]), r[0][j]);
                    else if (i == A - 1)
                        u = _mm512_mul_pd(_mm512_set1_pd(gy[3 * i + 2]), r[2][j]);
                    else
                        u = _mm512_fmadd_pd(
                            _mm512_set1_pd(gy[3 * i + 2]), r[2][j],
                            _mm512_fmadd_pd(_mm512_set1_pd(gy[3 * i + 1]), r[1][j],
                                            _mm512_mul_pd(_mm512_set1_pd(gy[3 * i]),
                                                          r[0][j])));
                    _mm256_store_ps(stage + ((i * A + j) * PC_WINO_FCH + c) * 8,
                                    _mm512_cvtpd_ps(u));
                }
        }
        for (p = 0; p < A * A; p++)
            for (e = 0; e < nc * 8; e += 16)
                _mm512_mask_storeu_ps(dst + p * ps + c0 * 8 + e,
                                      (__mmask16)pc_wino_lanes(0, nc * 8 - e),
                                      _mm512_load_ps(stage + p * PC_WINO_FCH * 8 + e));
    }
}

/* Whether an alpha x 3 matrix G has the zero pattern pc_wino_f33_body_v4 assumes. */
static inline int pc_wino_g3_pattern(const double *g, ptrdiff_t A)
{
    ptrdiff_t i, j;
    if (g[0] == 0 || g[1] != 0 || g[2] != 0) return 0;
    if (g[3 * (A - 1)] != 0 || g[3 * (A - 1) + 1] != 0 || g[3 * (A - 1) + 2] == 0) return 0;
    for (i = 1; i < A - 1; i++)
        for (j = 0; j < 3; j++)
            if (g[3 * i + j] == 0) return 0;
    return 1;
}

PC_TARGET("arch=x86-64-v4") static void pc_wino_f33_v4(
    ptrdiff_t A, const double *gy, const double *gx, const float *w0, ptrdiff_t sco,
    ptrdiff_t sci, int swap, ptrdiff_t nm, ptrdiff_t kc, float *dst, ptrdiff_t ps)
{
    if (A == 6)
        pc_wino_f33_body_v4(6, gy, gx, w0, sco, sci, swap, nm, kc, dst, ps);
    else
        pc_wino_f33_body_v4(4, gy, gx, w0, sco, sci, swap, nm, kc, dst, ps);
}

/* Whether the AVX-512 builds above take a call's rows. */
#define PC_WINO_V4(wg) ((wg)->level == 2 && ((wg)->m[2] == 2 || (wg)->m[2] == 4))
/* ... and its loads and stores: segments of at most this many columns.  On
   the short rows of 2-d tiles (8-15 columns at 28x28-56x56) the scalar loops
   spent their time on the row ends; on long rows (1-d, 200+ columns) the
   compiler's own vectorised loops measured faster (one thread, conv1d
   32 x 64 x 1024: load 3.8 vs 4.4, store 5.3 vs 7.0 Mcycles). */
#define PC_WINO_V4_COLS 64
#define PC_WINO_FAST_f(wg, w) (PC_WINO_V4(wg) && (w) <= PC_WINO_V4_COLS)
static inline int pc_wino_load_fast_f(const pc_wino *wg, const float *const *rows,
                                      ptrdiff_t nrows, ptrdiff_t x0, ptrdiff_t w,
                                      ptrdiff_t rs, ptrdiff_t ld, float *dst)
{
    if (!PC_WINO_FAST_f(wg, w)) return 0;
    pc_wino_load_v4(rows, nrows, x0, wg->m[2], w, wg->g.isz[2], rs, ld, dst);
    return 1;
}
static inline int pc_wino_store_fast_f(const pc_wino *wg, const float *src, ptrdiff_t ld,
                                       ptrdiff_t nt, ptrdiff_t x0, float bias, float *y)
{
    if (!PC_WINO_FAST_f(wg, nt)) return 0;
    pc_wino_store_v4(src, ld, nt, wg->m[2], x0, wg->g.osz[2], bias, y);
    return 1;
}
static inline int pc_wino_taps_fast_f(const pc_wino *wg, const float *w0, ptrdiff_t sco,
                                      ptrdiff_t sci, ptrdiff_t K, int swap, ptrdiff_t mr,
                                      ptrdiff_t nm, ptrdiff_t nc, double *dst)
{
    /* the lane offsets m * sco are 32-bit */
    if (wg->level != 2 || mr != 8 || nm < 1 || sco > ((ptrdiff_t)1 << 27)) return 0;
    pc_wino_taps_v4(w0, sco, sci, K, swap, nm, nc, dst);
    return 1;
}
/* pc_wino_filter_f for one panel by pc_wino_f33_v4, where it applies. */
static inline int pc_wino_filter_fast_f(const pc_wino *wg, const float *w, int swap,
                                        ptrdiff_t grp, ptrdiff_t panel, ptrdiff_t mr,
                                        ptrdiff_t mpad, float *upack)
{
    const pc_geo *g = &wg->g;
    const ptrdiff_t kc = g->cin_g, A = wg->a[2];
    const ptrdiff_t sco = swap ? 9 : kc * 9, sci = swap ? g->cout_g * 9 : 9;
    const ptrdiff_t nm = g->cout_g - panel * mr < mr ? g->cout_g - panel * mr : mr;
    if (wg->level != 2 || mr != 8 || nm < 1 || sco > ((ptrdiff_t)1 << 27)
        || g->ks[0] != 1 || g->ks[1] != 3 || g->ks[2] != 3 || wg->a[1] != A
        || (A != 4 && A != 6) || !pc_wino_g3_pattern(wg->gm[1], A)
        || !pc_wino_g3_pattern(wg->gm[2], A))
        return 0;
    pc_wino_f33_v4(A, wg->gm[1], wg->gm[2],
                   w + grp * g->cout_g * kc * 9 + panel * mr * sco, sco, sci, swap, nm, kc,
                   upack + grp * wg->P * mpad * kc + panel * kc * mr, mpad * kc);
    return 1;
}
static inline int pc_wino_tails_fast_f(const pc_wino *wg, float *row, ptrdiff_t nrows,
                                       ptrdiff_t rs, ptrdiff_t q)
{
    if (!PC_WINO_V4(wg)) return 0;
    pc_wino_tails_v4(row, nrows, rs, q);
    return 1;
}
#endif

/* Where there is no vector load/store (float without AVX-512, and double):
 * the fast entry points decline (return 0) and the scalar code runs. */
#define PC_DEFINE_WINO_NO_FAST(T, S)                                                 \
static inline int pc_wino_tails_fast_##S(const pc_wino *wg, T *row, ptrdiff_t nrows,  \
                                         ptrdiff_t rs, ptrdiff_t q)                  \
{                                                                                    \
    (void)wg; (void)row; (void)nrows; (void)rs; (void)q;                             \
    return 0;                                                                        \
}                                                                                    \
static inline int pc_wino_taps_fast_##S(const pc_wino *wg, const T *w0, ptrdiff_t sco, \
                                        ptrdiff_t sci, ptrdiff_t K, int swap, ptrdiff_t mr, \
                                        ptrdiff_t nm, ptrdiff_t nc, double *dst)     \
{                                                                                    \
    (void)wg; (void)w0; (void)sco; (void)sci; (void)K; (void)swap; (void)mr;         \
    (void)nm; (void)nc; (void)dst;                                                   \
    return 0;                                                                        \
}                                                                                    \
static inline int pc_wino_filter_fast_##S(const pc_wino *wg, const T *w, int swap,   \
                                          ptrdiff_t grp, ptrdiff_t panel, ptrdiff_t mr, \
                                          ptrdiff_t mpad, T *upack)                  \
{                                                                                    \
    (void)wg; (void)w; (void)swap; (void)grp; (void)panel; (void)mr; (void)mpad;     \
    (void)upack;                                                                     \
    return 0;                                                                        \
}                                                                                    \
static inline int pc_wino_load_fast_##S(const pc_wino *wg, const T *const *rows,      \
                                        ptrdiff_t nrows, ptrdiff_t x0, ptrdiff_t w,  \
                                        ptrdiff_t rs, ptrdiff_t ld, T *dst)          \
{                                                                                    \
    (void)wg; (void)rows; (void)nrows; (void)x0; (void)w; (void)rs; (void)ld;        \
    (void)dst;                                                                       \
    return 0;                                                                        \
}                                                                                    \
static inline int pc_wino_store_fast_##S(const pc_wino *wg, const T *src, ptrdiff_t ld, \
                                         ptrdiff_t nt, ptrdiff_t x0, T bias, T *y)   \
{                                                                                    \
    (void)wg; (void)src; (void)ld; (void)nt; (void)x0; (void)bias; (void)y;          \
    return 0;                                                                        \
}

#if !PYCONV_HAVE_CLONES
#define PC_WINO_FAST_f(wg, w) 0
PC_DEFINE_WINO_NO_FAST(float, f)
#endif
#define PC_WINO_FAST_d(wg, w) 0
PC_DEFINE_WINO_NO_FAST(double, d)

/*
 * The one transform step, ``outer`` times (o < outer):
 *
 *   dst[o*ds + doff[i] + q] = sum_j c[i][j] src[o*ss + soff[j] + q],  q < n
 *
 * for an R x C matrix c (R destination rows, C source rows given by their
 * offsets).  Built for the shapes of F(2, 2), F(4, 2), F(2, 3), F(4, 3),
 * F(2, 5), F(4, 5) and the identity of an axis without taps (1 x 1)
 * with R and C constant (the sums unrolled, q vectorised), any other shape
 * by the generic loop; every build sums in the same order (j increasing).
 */
#define PC_DEFINE_WINO_MAT(T, S, R, C)                                               \
PC_CLONES static void pc_wino_mat_##S##_##R##x##C(                                  \
    const T *c, const T *src, const ptrdiff_t *soff, ptrdiff_t ss, T *dst,           \
    const ptrdiff_t *doff, ptrdiff_t ds, ptrdiff_t n, ptrdiff_t outer)               \
{                                                                                    \
    T k[R * C];                                                                      \
    ptrdiff_t o, q;                                                                  \
    int i, j;                                                                        \
    for (i = 0; i < R * C; i++) k[i] = c[i];                                         \
    for (o = 0; o < outer; o++) {                                                    \
        const T *s[C];                                                               \
        T *d[R];                                                                     \
        for (j = 0; j < C; j++) s[j] = src + o * ss + soff[j];                       \
        for (i = 0; i < R; i++) d[i] = dst + o * ds + doff[i];                       \
        PC_IVDEP                                                                     \
        for (q = 0; q < n; q++) {                                                    \
            T v[C];                                                                  \
            for (j = 0; j < C; j++) v[j] = s[j][q];                                  \
            for (i = 0; i < R; i++) {                                                \
                T acc = k[i * C] * v[0];                                             \
                for (j = 1; j < C; j++) acc += k[i * C + j] * v[j];                  \
                d[i][q] = acc;                                                       \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

/*
 * The F(4, 3) and F(2, 3) matrices as the planner builds them
 * (``matrices`` in paths/winograd.py), as compile-time constants: their
 * builds below skip the zero coefficients and turn the +-1 ones into
 * additions (B^T of F(4, 3) has 26 nonzeros of 36, A^T 18 of 24).  A call
 * takes them only when its matrix equals the table bit for bit, else the
 * builds above; the sums keep their order (j increasing), so the result is
 * that of the general build up to the sign of a zero.
 */
#include "wino_tables.h"

#define PC_WINO_TABLES(X, T, S)                                                      \
    X(T, S, bt43, 6, 6) X(T, S, at43, 4, 6) X(T, S, bt23, 4, 4) X(T, S, at23, 2, 4)

#if defined(__GNUC__) && !defined(__clang__)
#define PC_UNROLL _Pragma("GCC unroll 8")
#else
#define PC_UNROLL
#endif

#define PC_DEFINE_WINO_CONST(T, S, NAME, R, C)                                       \
PC_CLONES static void pc_wino_##NAME##_##S(                                          \
    const T *src, const ptrdiff_t *soff, ptrdiff_t ss, T *dst,                       \
    const ptrdiff_t *doff, ptrdiff_t ds, ptrdiff_t n, ptrdiff_t outer)               \
{                                                                                    \
    ptrdiff_t o, q;                                                                  \
    int i, j;                                                                        \
    for (o = 0; o < outer; o++) {                                                    \
        const T *s[C];                                                               \
        T *d[R];                                                                     \
        for (j = 0; j < C; j++) s[j] = src + o * ss + soff[j];                       \
        for (i = 0; i < R; i++) d[i] = dst + o * ds + doff[i];                       \
        PC_IVDEP                                                                     \
        for (q = 0; q < n; q++) {                                                    \
            T v[C];                                                                  \
            PC_UNROLL                                                                \
            for (j = 0; j < C; j++) v[j] = s[j][q];                                  \
            PC_UNROLL                                                                \
            for (i = 0; i < R; i++) {                                                \
                T acc = 0;                                                           \
                int any = 0;                                                         \
                PC_UNROLL                                                            \
                for (j = 0; j < C; j++) {                                            \
                    const T kk = (T)pc_wino_tab_##NAME[i * C + j];                   \
                    if (kk == 0) continue;                                           \
                    acc = any ? acc + kk * v[j] : kk * v[j];                         \
                    any = 1;                                                         \
                }                                                                    \
                d[i][q] = acc;                                                       \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

#define PC_WINO_TABLE_CASE(T, S, NAME, R, C)                                         \
    if (rows == R && cols == C                                                       \
        && memcmp(mat, pc_wino_tab_##NAME, sizeof pc_wino_tab_##NAME) == 0) {        \
        pc_wino_##NAME##_##S(src, soff, ss, dst, doff, ds, n, outer);                \
        return;                                                                      \
    }

#define PC_WINO_SHAPES(X, T, S)                                                      \
    X(T, S, 1, 1) X(T, S, 3, 3) X(T, S, 4, 4) X(T, S, 5, 5) X(T, S, 6, 6)            \
    X(T, S, 8, 8) X(T, S, 2, 3) X(T, S, 2, 4) X(T, S, 4, 5) X(T, S, 4, 6)            \
    X(T, S, 2, 6) X(T, S, 4, 8)

#define PC_WINO_CASE(T, S, R, C)                                                     \
    if (rows == R && cols == C) {                                                    \
        pc_wino_mat_##S##_##R##x##C(k, src, soff, ss, dst, doff, ds, n, outer);      \
        return;                                                                      \
    }

#define PC_DEFINE_WINO(T, S)                                                         \
PC_WINO_SHAPES(PC_DEFINE_WINO_MAT, T, S)                                             \
PC_WINO_TABLES(PC_DEFINE_WINO_CONST, T, S)                                           \
                                                                                     \
PC_CLONES static void pc_wino_mat_##S##_any(                                        \
    int rows, int cols, const T *c, const T *src, const ptrdiff_t *soff, ptrdiff_t ss, \
    T *dst, const ptrdiff_t *doff, ptrdiff_t ds, ptrdiff_t n, ptrdiff_t outer)       \
{                                                                                    \
    ptrdiff_t o, q;                                                                  \
    int i, j;                                                                        \
    for (o = 0; o < outer; o++)                                                      \
        for (i = 0; i < rows; i++) {                                                 \
            const T *s = src + o * ss;                                               \
            T *d = dst + o * ds + doff[i];                                           \
            for (q = 0; q < n; q++) {                                                \
                T acc = c[i * cols] * s[soff[0] + q];                                \
                for (j = 1; j < cols; j++) acc += c[i * cols + j] * s[soff[j] + q];  \
                d[q] = acc;                                                          \
            }                                                                        \
        }                                                                            \
}                                                                                    \
                                                                                     \
/* the step above for the matrix ``mat`` (rows x cols, in double) */                 \
static void pc_wino_mat_##S(const double *mat, int rows, int cols, const T *src,     \
                            const ptrdiff_t *soff, ptrdiff_t ss, T *dst,             \
                            const ptrdiff_t *doff, ptrdiff_t ds, ptrdiff_t n,        \
                            ptrdiff_t outer)                                         \
{                                                                                    \
    T k[PC_WINO_MAX_ALPHA * PC_WINO_MAX_ALPHA];                                      \
    int i;                                                                           \
    PC_WINO_TABLES(PC_WINO_TABLE_CASE, T, S)                                         \
    for (i = 0; i < rows * cols; i++) k[i] = (T)mat[i];                              \
    PC_WINO_SHAPES(PC_WINO_CASE, T, S)                                               \
    pc_wino_mat_##S##_any(rows, cols, k, src, soff, ss, dst, doff, ds, n, outer);    \
}                                                                                    \
                                                                                     \
/* The z and y steps on whole rows of ``len`` elements, for ``nch`` channels:       \
 * in: per channel [a_z][a_y] rows; out: per channel [rz][ry] rows (the           \
 * matrices: B^T, or A^T with rz = m_z, ry = m_y).  *result: buf or other. */       \
static void pc_wino_zy_##S(const pc_wino *wg, const double *matz, const double *maty, \
                           int rz, int ry, ptrdiff_t len, ptrdiff_t nch, T *buf,     \
                           T *other, T **result)                                     \
{                                                                                    \
    const int az = (int)wg->a[0], ay = (int)wg->a[1];                                \
    ptrdiff_t so[PC_WINO_MAX_ALPHA], dof[PC_WINO_MAX_ALPHA];                         \
    T *cur = buf, *nxt = other, *tmp;                                                \
    int i;                                                                           \
    if (ay > 1) {                       /* (channel, z) rows of a_y -> ry rows */   \
        for (i = 0; i < ay; i++) so[i] = i * len;                                    \
        for (i = 0; i < ry; i++) dof[i] = i * len;                                   \
        pc_wino_mat_##S(maty, ry, ay, cur, so, ay * len, nxt, dof, ry * len, len,    \
                        nch * az);                                                   \
        tmp = cur; cur = nxt; nxt = tmp;                                             \
    }                                                                                \
    if (az > 1) {                       /* per channel: a_z blocks -> rz blocks */  \
        for (i = 0; i < az; i++) so[i] = i * ry * len;                               \
        for (i = 0; i < rz; i++) dof[i] = i * ry * len;                              \
        pc_wino_mat_##S(matz, rz, az, cur, so, az * ry * len, nxt, dof, rz * ry * len, \
                        ry * len, nch);                                              \
        cur = nxt;                                                                   \
    }                                                                                \
    *result = cur;                                                                   \
}                                                                                    \
                                                                                     \
/* For each of ``nrows`` rows: dst[r*ld + res*rs + u] = row_r[x0 + u*mx + res]   \
 * for u < w, zero outside the row (and for a NULL row): ``rng``                     \
 * (pc_wino_ranges) holds, per residue, the u range [va, vb) inside the row,       \
 * then the range [ua, ub) where every residue is inside. */                        \
PC_CLONES static void pc_wino_load_##S(const T *const *rows, ptrdiff_t nrows,       \
                                       ptrdiff_t x0, ptrdiff_t mx, ptrdiff_t w,      \
                                       ptrdiff_t rs, ptrdiff_t ld,                   \
                                       const ptrdiff_t *rng, T *restrict dst)        \
{                                                                                    \
    const ptrdiff_t ua = rng[2 * mx], ub = rng[2 * mx + 1];                          \
    ptrdiff_t u, res, r;                                                             \
    for (r = 0; r < nrows; r++, dst += ld) {                                         \
        const T *restrict src = rows[r];                                             \
        const T *restrict s;                                                         \
        if (src == NULL) {                                                           \
            for (res = 0; res < mx; res++)                                           \
                for (u = 0; u < w; u++) dst[res * rs + u] = 0;                       \
            continue;                                                                \
        }                                                                            \
        for (res = 0; res < mx; res++) {    /* zeros and the partial ends */         \
            const ptrdiff_t va = rng[2 * res], vb = rng[2 * res + 1];                \
            T *d = dst + res * rs;                                                   \
            for (u = 0; u < va; u++) d[u] = 0;                                       \
            for (u = va; u < ua && u < vb; u++) d[u] = src[x0 + u * mx + res];       \
            for (u = ub > va ? ub : va; u < vb; u++) d[u] = src[x0 + u * mx + res];  \
            for (u = vb; u < w; u++) d[u] = 0;                                       \
        }                                                                            \
        s = src + x0;                                                                \
        if (mx == 1) {                                                               \
            for (u = ua; u < ub; u++) dst[u] = s[u];                                 \
        } else if (mx == 2) {                                                        \
            T *restrict d0 = dst, *restrict d1 = dst + rs;                           \
            for (u = ua; u < ub; u++) {                                              \
                d0[u] = s[2 * u];                                                    \
                d1[u] = s[2 * u + 1];                                                \
            }                                                                        \
        } else if (mx == 4) {                                                        \
            T *restrict d0 = dst, *restrict d1 = dst + rs;                           \
            T *restrict d2 = dst + 2 * rs, *restrict d3 = dst + 3 * rs;              \
            for (u = ua; u < ub; u++) {                                              \
                d0[u] = s[4 * u];                                                    \
                d1[u] = s[4 * u + 1];                                                \
                d2[u] = s[4 * u + 2];                                                \
                d3[u] = s[4 * u + 3];                                                \
            }                                                                        \
        } else {                                                                     \
            for (res = 0; res < mx; res++)                                           \
                for (u = ua; u < ub; u++) dst[res * rs + u] = s[u * mx + res];       \
        }                                                                            \
    }                                                                                \
}                                                                                    \
                                                                                     \
/* y[x0 + t*mx + j] = src[j*ld + t] + bias for t < nt, within [0, X) */               \
PC_CLONES static void pc_wino_store_##S(const T *restrict src, ptrdiff_t ld,        \
                                        ptrdiff_t nt, ptrdiff_t mx, ptrdiff_t x0,    \
                                        ptrdiff_t X, T bias, T *restrict y)          \
{                                                                                    \
    ptrdiff_t full = (X - x0) / mx, t, j;       /* tiles wholly inside the row */    \
    T *restrict d = y + x0;                                                          \
    if (full > nt) full = nt;                                                        \
    if (full < 0) full = 0;                                                          \
    if (mx == 1) {                                                                   \
        for (t = 0; t < full; t++) d[t] = src[t] + bias;                             \
    } else if (mx == 2) {                                                            \
        const T *restrict s0 = src, *restrict s1 = src + ld;                         \
        for (t = 0; t < full; t++) {                                                 \
            d[2 * t] = s0[t] + bias;                                                 \
            d[2 * t + 1] = s1[t] + bias;                                             \
        }                                                                            \
    } else if (mx == 4) {                                                            \
        const T *restrict s0 = src, *restrict s1 = src + ld;                         \
        const T *restrict s2 = src + 2 * ld, *restrict s3 = src + 3 * ld;            \
        for (t = 0; t < full; t++) {                                                 \
            d[4 * t] = s0[t] + bias;                                                 \
            d[4 * t + 1] = s1[t] + bias;                                             \
            d[4 * t + 2] = s2[t] + bias;                                             \
            d[4 * t + 3] = s3[t] + bias;                                             \
        }                                                                            \
    } else {                                                                         \
        for (j = 0; j < mx; j++)                                                     \
            for (t = 0; t < full; t++) d[t * mx + j] = src[j * ld + t] + bias;       \
    }                                                                                \
    for (t = full; t < nt; t++)             /* the partial tile at the row's end */  \
        for (j = 0; j < mx && x0 + t * mx + j < X; j++)                              \
            d[t * mx + j] = src[j * ld + t] + bias;                                  \
}                                                                                    \
                                                                                     \
/* The taps of the weight transform's lanes, in double: bufs0[k][c][m] = tap k  \
 * of (input channel c0 + c, row panel*mr + m) of group grp, zeros for the rows \
 * past C_out/g and the channels past nc (c < PC_WINO_FCH).  ``swap``: w is the  \
 * weight of the stride-1 transposed conv this conv computes, (C_in, C_out/g,   \
 * *k) with each group's [ci][co] swapped and the taps in reverse order. */       \
static void pc_wino_taps_##S(const pc_wino *wg, const T *w, int swap, ptrdiff_t grp, \
                             ptrdiff_t panel, ptrdiff_t mr, ptrdiff_t c0, ptrdiff_t nc, \
                             double *bufs0)                                          \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t kc = g->cin_g, K = g->Kp;                                        \
    /* the strides of (co, ci) in w, and of a group */                              \
    const ptrdiff_t sco = swap ? K : kc * K, sci = swap ? g->cout_g * K : K;         \
    const T *wg0 = w + grp * g->cout_g * kc * K;                                     \
    const ptrdiff_t nm = g->cout_g - panel * mr < mr ? g->cout_g - panel * mr : mr;  \
    ptrdiff_t m, c, k;                                                               \
    if (pc_wino_taps_fast_##S(wg, wg0 + panel * mr * sco + c0 * sci, sco, sci, K,     \
                              swap, mr, nm, nc, bufs0))                              \
        return;                                                                      \
    for (m = 0; m < mr; m++)                 /* each filter's taps read in order */  \
        for (c = 0; c < PC_WINO_FCH; c++) {                                          \
            const T *f = m < nm && c < nc ? wg0 + (panel * mr + m) * sco + (c0 + c) * sci \
                                          : NULL;                                    \
            for (k = 0; k < K; k++)                                                  \
                bufs0[(k * PC_WINO_FCH + c) * mr + m] =                              \
                    f ? (double)f[swap ? K - 1 - k : k] : 0.0;                       \
        }                                                                            \
}                                                                                    \
                                                                                     \
/* Packed transformed weights of one panel of ``mr`` output channels:              \
 * U[grp][p] (mpad x cin_g, panels of mr rows, k-major; pc_pack_w's layout)         \
 * for rows [panel * mr, panel * mr + mr).  The transform runs in double, with     \
 * the lanes (input channel, row) of PC_WINO_FCH input channels at a time;       \
 * tmp: 3 * P * PC_WINO_FCH * mr doubles; swap as for pc_wino_taps. */             \
PC_CLONES static void pc_wino_filter_##S(const pc_wino *wg, const T *w, int swap,    \
                                         ptrdiff_t grp, ptrdiff_t panel, ptrdiff_t mr, \
                                         ptrdiff_t mpad, T *upack, double *tmp)      \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], ax = wg->a[2];                     \
    const ptrdiff_t rz = g->ks[0], ry = g->ks[1], rx = g->ks[2];                     \
    const ptrdiff_t kc = g->cin_g, L = PC_WINO_FCH * mr;                             \
    double *const bufs[3] = {tmp, tmp + wg->P * L, tmp + 2 * wg->P * L};             \
    ptrdiff_t c0, nc, k, p;                                                          \
    int cur;                                                                         \
    if (pc_wino_filter_fast_##S(wg, w, swap, grp, panel, mr, mpad, upack))           \
        return;                                                                      \
    for (c0 = 0; c0 < kc; c0 += PC_WINO_FCH) {                                       \
        nc = kc - c0 < PC_WINO_FCH ? kc - c0 : PC_WINO_FCH;                          \
        pc_wino_taps_##S(wg, w, swap, grp, panel, mr, c0, nc, bufs[0]);              \
        /* x: [rz*ry][rx][L] -> [rz*ry][ax][L]; y: [rz][ry][ax*L] -> [rz][ay][ax*L]; \
           z: [rz][ay*ax*L] -> [az][ay*ax*L] */                                      \
        cur = 0;                                                                     \
        pc_wino_axis_dd(wg->gm[2], ax, rx, rz * ry, L, bufs, &cur);                  \
        pc_wino_axis_dd(wg->gm[1], ay, ry, rz, ax * L, bufs, &cur);                  \
        pc_wino_axis_dd(wg->gm[0], az, rz, 1, ay * ax * L, bufs, &cur);              \
        for (p = 0; p < wg->P; p++) {                                                \
            T *dst = upack + (grp * wg->P + p) * mpad * kc + panel * kc * mr + c0 * mr; \
            const double *u = bufs[cur] + p * L;                                     \
            for (k = 0; k < nc * mr; k++) dst[k] = (T)u[k];                          \
        }                                                                            \
    }                                                                                \
}                                                                                    \
                                                                                     \
/* The input rows of a block's segments, channels [c0, c1), de-interleaved into \
 * the scratch D: segment i (seg[4i..4i+3] = image, tz, ty, first tile a) at      \
 * column i*w, w = L + h columns per residue row.  Channel by channel, so that    \
 * the input is read in order; rng: room for nseg * (2 m_x + 2) ranges. */          \
static void pc_wino_load_block_##S(const pc_wino *wg, const T *x, ptrdiff_t grp,    \
                                   const ptrdiff_t *seg, ptrdiff_t nseg, ptrdiff_t w, \
                                   ptrdiff_t ldv, ptrdiff_t c0, ptrdiff_t c1,        \
                                   ptrdiff_t *rng, T *D)                             \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], mx = wg->m[2];                     \
    const ptrdiff_t rs = pc_wino_rs(wg, ldv), row = mx * rs, blk = az * ay * row;    \
    ptrdiff_t ci, i, kz, ky;                                                         \
    const int fast = PC_WINO_FAST_##S(wg, w);                                        \
    for (i = 0; i < nseg && !fast; i++)   /* the x ranges of each segment, once */   \
        pc_wino_ranges(g->isz[2], seg[4 * i + 3] * mx - g->lo[2], mx, w,             \
                       rng + i * (2 * mx + 2));                                      \
    for (ci = c0; ci < c1; ci++)                                                     \
        for (i = 0; i < nseg; i++) {                                                 \
            const ptrdiff_t *sg = seg + 4 * i;                                       \
            const T *xc = x + (sg[0] * g->Cin + grp * g->cin_g + ci) * g->Pin;       \
            const ptrdiff_t z0 = sg[1] * wg->m[0] - g->lo[0];                        \
            const ptrdiff_t y0 = sg[2] * wg->m[1] - g->lo[1];                        \
            const ptrdiff_t x0 = sg[3] * mx - g->lo[2];                              \
            const T *rows[PC_WINO_MAX_ALPHA * PC_WINO_MAX_ALPHA];                    \
            for (kz = 0; kz < az; kz++)                                              \
                for (ky = 0; ky < ay; ky++) {                                        \
                    ptrdiff_t iz = z0 + kz, iy = y0 + ky;                            \
                    rows[kz * ay + ky] =                                             \
                        (iz < 0 || iz >= g->isz[0] || iy < 0 || iy >= g->isz[1])     \
                        ? NULL : xc + (iz * g->isz[1] + iy) * g->isz[2];             \
                }                                                                    \
            if (ci + PC_WINO_AHEAD < g->cin_g)    /* the same rows, channels ahead */ \
                for (kz = 0; kz < az * ay; kz++)                                     \
                    if (rows[kz] != NULL)                                            \
                        pc_wino_prefetch(rows[kz] + PC_WINO_AHEAD * g->Pin, x0, w * mx,  \
                                         g->isz[2], sizeof(T), 0);                   \
            if (!pc_wino_load_fast_##S(wg, rows, az * ay, x0, w, rs, row,           \
                                       D + (ci - c0) * blk + i * w))                 \
                pc_wino_load_##S(rows, az * ay, x0, mx, w, rs, row,                  \
                                 rng + i * (2 * mx + 2), D + (ci - c0) * blk + i * w); \
        }                                                                            \
}                                                                                    \
                                                                                     \
/* Input transform of channels [c0, c1) of a block whose q columns were loaded   \
 * into scratch: V[p][ci][j] for j < ldv (columns past q: zeros in, finite values \
 * out). */                                                                          \
static void pc_wino_input_##S(const pc_wino *wg, ptrdiff_t q, ptrdiff_t ldv,        \
                              ptrdiff_t c0, ptrdiff_t c1, T *V, T *scratch)          \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], ax = wg->a[2], mx = wg->m[2];      \
    const ptrdiff_t rs = pc_wino_rs(wg, ldv), row = mx * rs, blk = az * ay * row;    \
    const ptrdiff_t nch = c1 - c0;                                                   \
    T *D = scratch, *E = scratch + nch * blk, *F;                                    \
    ptrdiff_t so[PC_WINO_MAX_ALPHA], dof[PC_WINO_MAX_ALPHA];                         \
    ptrdiff_t i, r, k;                                                               \
    if (!pc_wino_tails_fast_##S(wg, D, nch * az * ay * mx, rs, q))                  \
        for (i = 0; i < nch * az * ay * mx; i++)      /* every residue row's tail */ \
            memset(D + i * rs + q, 0, (size_t)(rs - q) * sizeof(T));                 \
    pc_wino_zy_##S(wg, wg->bt[0], wg->bt[1], (int)az, (int)ay, row, nch, D, E, &F);  \
    /* x: input k of the tile in column j is row[k % mx][j + k / mx] */              \
    for (r = 0; r < az * ay; r++) {                                                  \
        for (k = 0; k < ax; k++) {                                                   \
            so[k] = r * row + (k % mx) * rs + k / mx;                                \
            dof[k] = ((r * ax + k) * g->cin_g + c0) * ldv;                           \
        }                                                                            \
        pc_wino_mat_##S(wg->bt[2], (int)ax, (int)ax, F, so, blk, V, dof, ldv, ldv,   \
                        nch);                                                        \
    }                                                                                \
}                                                                                    \
                                                                                     \
/* Output transform of channels [c0, c1) of a block: returns the outputs, per    \
 * channel co - c0 the rows [m_z][m_y][m_x] of ldv columns (in scratch). */         \
static T *pc_wino_output_##S(const pc_wino *wg, const T *M, ptrdiff_t ldv,          \
                             ptrdiff_t c0, ptrdiff_t c1, T *scratch)                 \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t az = wg->a[0], ay = wg->a[1], ax = wg->a[2];                     \
    const ptrdiff_t mz = wg->m[0], my = wg->m[1], mx = wg->m[2];                     \
    const ptrdiff_t row = mx * ldv, blk = az * ay * row, nch = c1 - c0;              \
    T *Sx = scratch, *E = scratch + nch * blk, *F;                                   \
    ptrdiff_t so[PC_WINO_MAX_ALPHA], dof[PC_WINO_MAX_ALPHA];                         \
    ptrdiff_t r, k;                                                                  \
    /* x: Sx[co][r][jx][j] = sum_px A^T[jx][px] M[(r, px)][co][j] */                  \
    for (r = 0; r < az * ay; r++) {                                                  \
        for (k = 0; k < ax; k++)                                                     \
            so[k] = ((r * ax + k) * g->cout_g + c0) * ldv;                           \
        for (k = 0; k < mx; k++)                                                     \
            dof[k] = r * row + k * ldv;                                              \
        pc_wino_mat_##S(wg->at[2], (int)mx, (int)ax, M, so, ldv, Sx, dof, blk, ldv,  \
                        nch);                                                        \
    }                                                                                \
    pc_wino_zy_##S(wg, wg->at[0], wg->at[1], (int)mz, (int)my, row, nch, Sx, E, &F); \
    return F;                                                                        \
}                                                                                    \
                                                                                     \
/* The outputs of channels [c0, c1) of a block's segments (seg as for            \
 * pc_wino_load_block; segment i: its nt = min(L, tiles left in the row) tiles    \
 * from column i*w; F as pc_wino_output returns it) into y, plus bias; channel    \
 * by channel. */                                                                    \
static void pc_wino_store_block_##S(const pc_wino *wg, const T *F, ptrdiff_t ldv,    \
                                    const ptrdiff_t *seg, ptrdiff_t nseg,            \
                                    ptrdiff_t L, ptrdiff_t w, ptrdiff_t grp,         \
                                    ptrdiff_t c0, ptrdiff_t c1, T *y, const T *bias) \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t mz = wg->m[0], my = wg->m[1], mx = wg->m[2], row = mx * ldv;     \
    ptrdiff_t co, i, uz, uy;                                                         \
    for (co = c0; co < c1; co++) {                                                   \
        const T bv = bias ? bias[grp * g->cout_g + co] : (T)0;                       \
        for (i = 0; i < nseg; i++) {                                                 \
            const ptrdiff_t *sg = seg + 4 * i;                                       \
            const ptrdiff_t nt = wg->nt[2] - sg[3] < L ? wg->nt[2] - sg[3] : L;      \
            T *yc = y + (sg[0] * g->Cout + grp * g->cout_g + co) * g->Pout;          \
            for (uz = 0; uz < mz; uz++) {                                            \
                ptrdiff_t oz = sg[1] * mz + uz;                                      \
                if (oz >= g->osz[0]) break;                                          \
                for (uy = 0; uy < my; uy++) {                                        \
                    ptrdiff_t oy = sg[2] * my + uy;                                  \
                    if (oy >= g->osz[1]) break;                                      \
                    T *yr = yc + (oz * g->osz[1] + oy) * g->osz[2];                  \
                    if (co + PC_WINO_AHEAD < g->cout_g)                              \
                        pc_wino_prefetch(yr + PC_WINO_AHEAD * g->Pout, sg[3] * mx,   \
                                         nt * mx, g->osz[2], sizeof(T), 1);          \
                    const T *src = F + ((co - c0) * mz * my + uz * my + uy) * row    \
                                   + i * w;                                          \
                    if (!pc_wino_store_fast_##S(wg, src, ldv, nt, sg[3] * mx, bv, yr))  \
                        pc_wino_store_##S(src, ldv, nt, mx, sg[3] * mx, g->osz[2], bv, yr); \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

PC_DEFINE_WINO(float, f)
PC_DEFINE_WINO(double, d)

#endif /* PYCONV_KERNELS_WINOGRAD_H */
