/* conv_wgrad.cl -- weight gradient of conv as an implicit GEMM, per
 * group g and reduction split z (get_group_id(2) = z*G + g):
 *
 *     GW[m, (c, tap)] = sum_{(n, o)} GY[m, (n, o)] * X[(n, o), (c, tap)]
 *
 * with GY[m, (n, o)] = grad_out[n, g*cout_g + m, o] and
 * X[(n, o), (c, tap)] = x[n, g*cin_g + c, o*stride - pad_lo + k*dilation]
 * (zero outside).  The reduction over (n, o) runs in registers inside
 * each work-item.  With several splits each one writes its own slice of
 * a partial buffer and sum_splits adds the slices in a fixed order:
 * no atomics, the same bits on every run.
 */

#define W_M 0
#define W_NC 1
#define W_KK 2
#define W_N 3
#define W_OPROD 4
#define W_RCHUNK 5
#define W_G 6
#define W_CIN_G 7
#define W_XC 8
#define W_YC 9
#define W_SPROD 10
#define W_TAB 11
#define W_DIM 12   /* per dim d: W_DIM + 4*d + (O, S, STRIDE, LO) */

__kernel __attribute__((reqd_work_group_size(WGN, WGM, 1)))
void conv_wgrad(__global const real* restrict x,
                __global const real* restrict gy,
                __global real* restrict out,
                __global const int* restrict plan)
{
    __local real As[TK][TM + 1];
    __local real Bs[TK][TN];

    __global const int* P = plan;
    const int tx = get_local_id(0);
    const int ty = get_local_id(1);
    const int lid = ty * WGN + tx;
    const int G = P[W_G];
    const int g = get_group_id(2) % G;
    const int z = get_group_id(2) / G;
    const int m0 = get_group_id(1) * TM;
    const int col0 = get_group_id(0) * TN;

    const int M = P[W_M];
    const int NC = P[W_NC];
    const int KK = P[W_KK];
    const idx_t OPROD = P[W_OPROD];
    const idx_t R = (idx_t)P[W_N] * OPROD;
    const idx_t r_lo = (idx_t)z * P[W_RCHUNK];
    const idx_t r_hi = min(R, r_lo + P[W_RCHUNK]);
    const idx_t SPROD = P[W_SPROD];
    const idx_t XN = (idx_t)P[W_XC] * SPROD;
    const idx_t YN = (idx_t)P[W_YC] * OPROD;
    __global const int* tab = plan + P[W_TAB];

    int O[ND], S[ND], STR[ND], LO[ND];
    idx_t XSTR[ND];
    for (int d = 0; d < ND; ++d) {
        O[d] = P[W_DIM + 4 * d];
        S[d] = P[W_DIM + 4 * d + 1];
        STR[d] = P[W_DIM + 4 * d + 2];
        LO[d] = P[W_DIM + 4 * d + 3];
    }
    XSTR[ND - 1] = 1;
    for (int d = ND - 2; d >= 0; --d) XSTR[d] = XSTR[d + 1] * S[d + 1];

    /* own columns (c, tap) */
    idx_t xcb[RN];
    int koff[RN][ND];
    bool cvalid[RN];
    for (int j = 0; j < RN; ++j) {
        const int col = col0 + CIDX(tx, j);
        cvalid[j] = col < NC;
        const int cc = cvalid[j] ? col : 0;
        const int c = cc / KK;
        const int tap = cc - c * KK;
        __global const int* tr = tab + tap * TAB_STRIDE;
        for (int d = 0; d < ND; ++d) koff[j][d] = tr[d];
        xcb[j] = ((idx_t)g * P[W_CIN_G] + c) * SPROD + tr[3];
    }

    ACC_DECL;
    ACC_ZERO();

    for (idx_t r0 = r_lo; r0 < r_hi; r0 += TK) {
        /* A tile: TM x TK of grad_out, consecutive work-items along (n, o) */
        for (int e = lid; e < TM * TK; e += WG) {
            const int mm = e / TK;
            const int kr = e - mm * TK;
            const idx_t r = r0 + kr;
            const int m = m0 + mm;
            real v = ZERO;
            if (m < M && r < r_hi) {
                const idx_t n = r / OPROD;
                v = gy[n * YN + ((idx_t)g * M + m) * OPROD + (r - n * OPROD)];
            }
            As[kr][mm] = v;
        }
        /* B tile: TK x TN of gathered inputs, own columns */
        for (int kr = ty; kr < TK; kr += WGM) {
            const idx_t r = r0 + kr;
            const bool rvalid = r < r_hi;
            const idx_t rr = rvalid ? r : r_lo;
            const idx_t n = rr / OPROD;
            idx_t rem = rr - n * OPROD;
            int pos[ND];
            idx_t xb = n * XN;
            for (int d = ND - 1; d >= 0; --d) {
                const idx_t od = rem % O[d];
                rem /= O[d];
                pos[d] = (int)od * STR[d] - LO[d];
                xb += (idx_t)pos[d] * XSTR[d];
            }
            for (int j = 0; j < RN; ++j) {
                bool ok = rvalid && cvalid[j];
                for (int d = 0; d < ND; ++d) {
                    const int t = pos[d] + koff[j][d];
                    ok = ok && (uint)t < (uint)S[d];  /* also rejects t < 0 */
                }
                real v = ZERO;
                if (ok) v = x[xb + xcb[j]];
                Bs[kr][CIDX(tx, j)] = v;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        ACC_STAGE();
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const idx_t zbase = ((idx_t)z * G + g) * M;
    for (int i = 0; i < RM; ++i) {
        const int m = m0 + RIDX(ty, i);
        if (m >= M) continue;
        real row[RN];
        ACC_ROW(i, row);
        for (int j = 0; j < RN; ++j) {
            const int col = col0 + CIDX(tx, j);
            if (cvalid[j]) out[(zbase + m) * NC + col] = row[j];
        }
    }
}
