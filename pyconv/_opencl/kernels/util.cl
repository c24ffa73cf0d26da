/* util.cl -- small element-wise kernels: the fixed-order sums of split
 * reductions (weight gradients, convolutions), and the non-zero padding modes.
 * Compiled with the default tile defines (unused here). */

/* out[i] = part[i] + part[L + i] + ... + part[(S-1)*L + i], in that order */
__kernel void sum_splits(__global const real* restrict part,
                         __global real* restrict out,
                         const idx_t L, const int S)
{
    const idx_t i = get_global_id(0);
    if (i >= L) return;
    real s = part[i];
    for (int k = 1; k < S; ++k) s += part[(idx_t)k * L + i];
    out[i] = s;
}

/* out[i] = (part[i] + part[L + i] + ... + part[(S-1) L + i]) + bias of i's
 * channel (layout (N, C, inner)), in that order: a split convolution's result. */
__kernel void sum_splits_bias(__global const real* restrict part,
                              __global real* restrict out,
                              __global const real* restrict bias,
                              const idx_t L, const int S, const idx_t inner,
                              const int C, const int hasbias)
{
    const idx_t i = get_global_id(0);
    if (i >= L) return;
    real s = part[i];
    for (int k = 1; k < S; ++k) s += part[(idx_t)k * L + i];
    if (hasbias) s += bias[(i / inner) % C];
    out[i] = s;
}

#define MODE_REFLECT 0
#define MODE_REPLICATE 1
#define MODE_CIRCULAR 2

int pad_source(int i, const int L, const int mode)
{
    if (mode == MODE_REFLECT) {
        /* mirror about 0 and L-1: period 2(L-1), folded back into [0, L).
         * (No `if (i < 0) i = -i`: compilers turn it into an abs intrinsic
         * that some OpenCL implementations, Oclgrind among them, lack.) */
        if (L == 1) return 0;
        const int period = 2 * (L - 1);
        i %= period;
        if (i < 0) i += period;
        if (i >= L) i = period - i;
    } else if (mode == MODE_REPLICATE) {
        i = clamp(i, 0, L - 1);
    } else {
        i %= L;
        if (i < 0) i += L;
    }
    return i;
}

/* y (NC, O0, O1, O2) <- x (NC, L0, L1, L2) with leading pads lo0..lo2;
 * always three spatial dims (the host pads shapes with 1s) */
__kernel void pad_nd(__global const real* restrict x,
                     __global real* restrict y,
                     const idx_t total, const int mode,
                     const int L0, const int L1, const int L2,
                     const int O0, const int O1, const int O2,
                     const int lo0, const int lo1, const int lo2)
{
    const idx_t idx = get_global_id(0);
    if (idx >= total) return;
    idx_t rem = idx;
    const int o2 = rem % O2; rem /= O2;
    const int o1 = rem % O1; rem /= O1;
    const int o0 = rem % O0; rem /= O0;
    const int i0 = pad_source(o0 - lo0, L0, mode);
    const int i1 = pad_source(o1 - lo1, L1, mode);
    const int i2 = pad_source(o2 - lo2, L2, mode);
    y[idx] = x[((rem * L0 + i0) * L1 + i1) * (idx_t)L2 + i2];
}

/* y[n, c, p] = bias[c] (0 without a bias) for every element: the output
 * positions of a transposed convolution that no kernel tap reaches */
__kernel void fill_bias(__global const real* restrict bias,
                        __global real* restrict y,
                        const idx_t total, const idx_t P, const int C,
                        const int has_bias)
{
    const idx_t i = get_global_id(0);
    if (i >= total) return;
    y[i] = has_bias ? bias[(i / P) % C] : (real)0;
}
