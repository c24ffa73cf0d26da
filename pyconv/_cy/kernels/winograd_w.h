/*
 * Winograd weight gradient: the output-gradient side of the "winograd_w" path.
 *
 * dW[co][ci][k] = sum_n sum_j gy[n][co][j] x[n][ci][j + k - lo] is, per
 * (co, ci) and axis, a correlation whose "kernel" is gy and whose 3 outputs
 * are the taps.  A 4-wide tile of gy and the 6 inputs its taps read give the
 * 3 taps' share by F(3, 4):
 *
 *   dW_tile = A^T [(G g) * (B^T d)]     (per axis; 2-d: G g G^T, B^T d B)
 *
 * B^T of F(3, 4) is that of F(4, 3) (it depends only on the alpha = 6
 * points), and the 6 inputs are the forward F(4x4, 3x3) tile's window on
 * the same geometry: the input side is winograd.h's pc_wino_load_block and
 * pc_wino_input as they are, with the forward conv's tiles (a segment's
 * extra column included).  This header transforms the gy tiles of the same
 * segments into the same columns (G g G^T; the extra column and the tiles
 * past the map hold zeros, so their products add nothing) and packs them
 * in the weight-gradient micro-kernel's panels of nrw output channels
 * (pc_wpanels: gyt[panel][j][nrw]).  Summed over the tiles, each of the 36
 * transformed positions is one GEMM ``Mw[p] += X[p] Gy[p]^T`` with the
 * tiles as its reduction; A^T Mw A once per call gives dW (in the planner,
 * in double).
 *
 * Only 2-d calls (z is a unit axis) take it; the planner's rule only float32
 * ones (the double build is for the tests and forced paths).
 */
#ifndef PYCONV_KERNELS_WINOGRAD_W_H
#define PYCONV_KERNELS_WINOGRAD_W_H

#include "winograd.h"

#if defined(__linux__)
#include <stdint.h>
#include <sys/mman.h>
#endif

/*
 * Zeroed memory for the partials and the threads' blocks, in 2 MiB pages
 * where Linux gives them (transparent huge pages on request): these buffers
 * take tens of MB per call, and touching them page by page in 4 KiB pages
 * (a fault and a page clear each) took as long as the products on a
 * 256 x 256 layer.  Elsewhere: calloc.
 */
typedef struct {
    void *base;        /* what to release (NULL: nothing) */
    size_t len;        /* mmap'ed bytes (0: calloc'ed) */
} pc_wgw_mem;

static void *pc_wgw_map(size_t bytes, pc_wgw_mem *m)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    const size_t len = (bytes + huge - 1) / huge * huge + huge;
    char *p = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
    char *a;
    if (p == (char *)MAP_FAILED) {
        m->base = NULL;
        m->len = 0;
        return NULL;
    }
    a = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise(a, len - (size_t)(a - p), MADV_HUGEPAGE);
    m->base = p;
    m->len = len;
    return a;
#else
    m->base = calloc(1, bytes > 0 ? bytes : 1);
    m->len = 0;
    return m->base;
#endif
}

static void pc_wgw_unmap(pc_wgw_mem *m)
{
    if (m->base == NULL)
        return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (m->len > 0) {
        munmap(m->base, m->len);
        m->base = NULL;
        return;
    }
#endif
    free(m->base);
    m->base = NULL;
}

/*
 * The team's synchronisation inside the path's one parallel region (see
 * _winograd_w.pyx): work items handed out by an atomic counter per pass, and
 * a barrier between passes (pc_team_wait, common.h: it spins for at most
 * 50 us, then sleeps).  A call passes a barrier twice per round of tiles (tens of
 * times); the OpenMP barrier, with the passive wait policy pyconv sets, puts
 * a waiting thread to sleep and waking it costs tens of microseconds each
 * time.
 */

/* The next item of a pass: its counter's value before the increment. */
static inline ptrdiff_t pc_wgw_take(ptrdiff_t *ctr)
{
    return __atomic_fetch_add(ctr, (ptrdiff_t)1, __ATOMIC_RELAXED);
}

/* gy rows per tile (r of F(3, 4)) and transformed rows per axis (alpha). */
#define PC_WGW_R 4
#define PC_WGW_A 6

/* The 6 x 4 transform step (G), unrolled like winograd.h's shapes. */
PC_DEFINE_WINO_MAT(float, f, 6, 4)
PC_DEFINE_WINO_MAT(double, d, 6, 4)

/* Most output channels per step of the gy transform: 16 (float: a divisor of
   every nrw), so that the packing writes whole 64-byte runs of a panel's
   rows; the step is min(16, nrw). */
#define PC_WGW_CCH 16

/* Floats of the per-thread scratch of pc_wgw_gy_f: per step channel the
   loaded tile rows (R * R), the y step (A * R) and one row of transformed
   positions (A), rows of ldv. */
static inline ptrdiff_t pc_wgw_scratch(ptrdiff_t ldv)
{
    return (ptrdiff_t)PC_WGW_CCH * (PC_WGW_R * PC_WGW_R + PC_WGW_A * PC_WGW_R + PC_WGW_A) * ldv;
}

/* The panels of one transformed position for PC_WGW_CCH channels: dst[n * nrw
   + c] = src[c * ldv + pos[n]] (c < nch, then zeros up to nch + pad), n < nval;
   at the AVX-512 level one gather per column (pc_gather16_v4) when nch is a
   full step. */
static int pc_wgw_pack_fast_f(int level, const float *src, ptrdiff_t ldv,
                              const ptrdiff_t *pos, ptrdiff_t nval, ptrdiff_t nch,
                              ptrdiff_t pad, ptrdiff_t nrw, float *dst)
{
#if PYCONV_HAVE_CLONES
    if (level == 2 && nch == 16 && pad == 0 && pc_gather16_ok(ldv)) {
        pc_gather16_v4(src, ldv, pos, nval, 0xffffu, nrw, dst);
        return 1;
    }
#else
    (void)level; (void)src; (void)ldv; (void)pos; (void)nval; (void)nch; (void)pad;
    (void)nrw; (void)dst;
#endif
    return 0;
}

static int pc_wgw_pack_fast_d(int level, const double *src, ptrdiff_t ldv,
                              const ptrdiff_t *pos, ptrdiff_t nval, ptrdiff_t nch,
                              ptrdiff_t pad, ptrdiff_t nrw, double *dst)
{
    (void)level; (void)src; (void)ldv; (void)pos; (void)nval; (void)nch; (void)pad;
    (void)nrw; (void)dst;
    return 0;
}

#define PC_DEFINE_WGW(T, S)                                                          \
/*                                                                                   \
 * The transformed gy tiles of output channels [c0, c1) of group grp                 \
 * (c1 - c0 <= PC_WGW_CCH, c0 a multiple of c1 - c0, which divides nrw) for a block of nseg                  \
 * segments (seg[4i..4i+3] = image, tz, ty, first tile, as for                       \
 * pc_wino_load_block; segment i owns columns [i*w, i*w + w), its first              \
 * min(L, tiles left in the row) are tiles, the rest zeros), q = nseg * w            \
 * columns in all; the nval columns pos[n] that hold tiles are packed into           \
 * Gp: transformed position p, tile n, channel co at                                 \
 * Gp[(p * npan + co / nrw) * nval * nrw + n * nrw + co % nrw] (npan panels          \
 * of nrw channels, nrw a multiple of PC_WGW_CCH; the last panel's padding           \
 * channels are zeros).  G: the 6 x 4 matrix of F(3, 4), row-major.                  \
 * scratch: pc_wgw_scratch(ldv) elements, ldv >= q.                                        \
 */                                                                                  \
PC_CLONES static void pc_wgw_gy_##S(const pc_wino *wg, const double *G, const T *gy, \
                        ptrdiff_t grp, const ptrdiff_t *seg, ptrdiff_t nseg, ptrdiff_t L, \
                        ptrdiff_t w, ptrdiff_t ldv, const ptrdiff_t *pos, ptrdiff_t nval, \
                        ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t nrw, T *Gp, T *scratch) \
{                                                                                    \
    const pc_geo *g = &wg->g;                                                        \
    const ptrdiff_t R = PC_WGW_R, A = PC_WGW_A;                                      \
    const ptrdiff_t nch = c1 - c0, OY = g->osz[1], OX = g->osz[2], q = nseg * w;     \
    const ptrdiff_t npan = (g->cout_g + nrw - 1) / nrw;                              \
    const ptrdiff_t pad = c1 == g->cout_g ? (nrw - g->cout_g % nrw) % nrw : 0;       \
    T *D = scratch, *E = D + nch * R * R * ldv, *Tb = E + nch * A * R * ldv;         \
    T gf[PC_WGW_A * PC_WGW_R];                                                       \
    ptrdiff_t so[PC_WINO_MAX_ALPHA], dof[PC_WINO_MAX_ALPHA];                         \
    ptrdiff_t c, i, ky, k, j, py, px;                                                \
    for (i = 0; i < A * R; i++) gf[i] = (T)G[i];                                     \
    /* D[c][ky][k][i*w + j] = gy row ty*R + ky, column (a + j)*R + k; zero           \
       outside the map and past the segment's tiles */                               \
    for (c = 0; c < nch; c++)                                                        \
        for (i = 0; i < nseg; i++) {                                                 \
            const ptrdiff_t *sg = seg + 4 * i;                                       \
            const ptrdiff_t a = sg[3];                                               \
            const ptrdiff_t nt = wg->nt[2] - a < L ? wg->nt[2] - a : L;              \
            const T *gn = gy + (sg[0] * g->Cout + grp * g->cout_g + c0 + c) * g->Pout; \
            /* the tiles wholly inside the row */                                    \
            ptrdiff_t full = (OX - a * R) / R;                                       \
            if (full > nt) full = nt;                                                \
            for (ky = 0; ky < R; ky++) {                                             \
                const ptrdiff_t oy = sg[2] * R + ky;                                 \
                T *d = D + (c * R + ky) * R * ldv + i * w;                           \
                if (oy >= OY) {                                                      \
                    for (k = 0; k < R; k++) memset(d + k * ldv, 0, (size_t)w * sizeof(T)); \
                    continue;                                                        \
                }                                                                    \
                {                                                                    \
                    const T *row = gn + oy * OX + a * R;                             \
                    T *restrict d0 = d, *restrict d1 = d + ldv;                      \
                    T *restrict d2 = d + 2 * ldv, *restrict d3 = d + 3 * ldv;        \
                    for (j = 0; j < full; j++) {                                     \
                        d0[j] = row[R * j];                                          \
                        d1[j] = row[R * j + 1];                                      \
                        d2[j] = row[R * j + 2];                                      \
                        d3[j] = row[R * j + 3];                                      \
                    }                                                                \
                    for (k = 0; k < R; k++)                                          \
                        for (j = full; j < w; j++)                                   \
                            d[k * ldv + j] = (j < nt && (a + j) * R + k < OX) ? row[R * j + k] : (T)0; \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    /* y: E[c][py][k] = sum_ky G[py][ky] D[c][ky][k] */                              \
    for (k = 0; k < R; k++) {                                                        \
        for (ky = 0; ky < R; ky++) so[ky] = (ky * R + k) * ldv;                      \
        for (py = 0; py < A; py++) dof[py] = (py * R + k) * ldv;                     \
        pc_wino_mat_##S##_6x4(gf, D, so, R * R * ldv, E, dof, A * R * ldv, q, nch);  \
    }                                                                                \
    for (py = 0; py < A; py++) {                                                     \
        /* x: Tb[px][c] = sum_k G[px][k] E[c][py][k] */                              \
        for (k = 0; k < R; k++) so[k] = (py * R + k) * ldv;                          \
        for (px = 0; px < A; px++) dof[px] = px * nch * ldv;                         \
        pc_wino_mat_##S##_6x4(gf, E, so, A * R * ldv, Tb, dof, ldv, q, nch);         \
        /* the panels: position p = py * A + px, channels c0 + c */                  \
        for (px = 0; px < A; px++) {                                                 \
            const ptrdiff_t p = py * A + px;                                         \
            const T *src = Tb + px * nch * ldv;                                      \
            T *dst = Gp + (p * npan + c0 / nrw) * nval * nrw + c0 % nrw;             \
            if (!pc_wgw_pack_fast_##S(wg->level, src, ldv, pos, nval, nch, pad, nrw, dst)) \
                for (j = 0; j < nval; j++) {                                         \
                    for (c = 0; c < nch; c++) dst[j * nrw + c] = src[c * ldv + pos[j]]; \
                    for (c = nch; c < nch + pad; c++) dst[j * nrw + c] = (T)0;       \
                }                                                                    \
        }                                                                            \
    }                                                                                \
}                                                                                    \
                                                                                     \
/*                                                                                   \
 * The weight gradient of input channel ci of group grp from the slots'              \
 * partials mw[slot][grp][p][ci][co] (each G * 36 * cin_g * cout_g elements):              \
 * their sum in slot order, then A^T S A per output channel (At: the 3 x 6           \
 * A^T of F(3, 4)), all in double and vectorised over the output channels;           \
 * dw is the (C_out, cin_g, 3, 3) gradient.  tmp: 63 * cout_g doubles.               \
 */                                                                                  \
PC_CLONES static void pc_wgw_finish_##S(const double *At, const T *mw, ptrdiff_t nslots, \
                                      ptrdiff_t G, ptrdiff_t cin_g, ptrdiff_t cout_g, \
                                      ptrdiff_t grp, ptrdiff_t ci, double *tmp, T *dw) \
{                                                                                    \
    const ptrdiff_t A = PC_WGW_A, P = PC_WGW_A * PC_WGW_A, mwg = P * cin_g * cout_g; \
    double *Sm = tmp, *Tq = tmp + P * cout_g, *Rw = Tq + 3 * A * cout_g;              \
    ptrdiff_t s, p, co, py, px, a, b;                                                \
    for (p = 0; p < P; p++) {                                                        \
        double *restrict d = Sm + p * cout_g;                                         \
        for (co = 0; co < cout_g; co++) d[co] = 0.0;                                 \
        for (s = 0; s < nslots; s++) {                                               \
            const T *restrict m = mw + (s * G + grp) * mwg + (p * cin_g + ci) * cout_g; \
            for (co = 0; co < cout_g; co++) d[co] += (double)m[co];                  \
        }                                                                            \
    }                                                                                \
    /* x: Tq[py][b][co] = sum_px A^T[b][px] S[py * A + px][co] */                    \
    for (py = 0; py < A; py++)                                                       \
        for (b = 0; b < 3; b++) {                                                    \
            double *restrict d = Tq + (py * 3 + b) * cout_g;                         \
            for (co = 0; co < cout_g; co++) d[co] = 0.0;                             \
            for (px = 0; px < A; px++) {                                             \
                const double c = At[b * A + px];                                     \
                const double *restrict src = Sm + (py * A + px) * cout_g;             \
                if (c == 0.0) continue;                                              \
                for (co = 0; co < cout_g; co++) d[co] += c * src[co];                \
            }                                                                        \
        }                                                                            \
    /* y: Rw[a][b][co] = sum_py A^T[a][py] Tq[py][b][co] */                          \
    for (a = 0; a < 3; a++)                                                          \
        for (b = 0; b < 3; b++) {                                                    \
            double *restrict d = Rw + (a * 3 + b) * cout_g;                          \
            for (co = 0; co < cout_g; co++) d[co] = 0.0;                             \
            for (py = 0; py < A; py++) {                                             \
                const double c = At[a * A + py];                                     \
                const double *restrict src = Tq + (py * 3 + b) * cout_g;             \
                if (c == 0.0) continue;                                              \
                for (co = 0; co < cout_g; co++) d[co] += c * src[co];                \
            }                                                                        \
        }                                                                            \
    for (co = 0; co < cout_g; co++) {                                                \
        T *w = dw + ((grp * cout_g + co) * cin_g + ci) * 9;                          \
        for (a = 0; a < 9; a++) w[a] = (T)Rw[a * cout_g + co];                       \
    }                                                                                \
}                                                                                    \

PC_DEFINE_WGW(float, f)
PC_DEFINE_WGW(double, d)

#endif /* PYCONV_KERNELS_WINOGRAD_W_H */
