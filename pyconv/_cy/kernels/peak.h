/*
 * The CPU's float32 multiply-add throughput: the ceiling of any convolution
 * that does all of its multiplications (python -m pyconv bench prints it
 * beside NumPy's sgemm; fewer-multiplication algorithms can go above it).
 *
 * Each thread runs PC_PEAK_CHAINS independent chains of 16-float vector
 * multiply-adds, more chains than the FMA latency times the FMA units, so
 * the units never wait for a result.  The AVX-512 clone issues one 512-bit
 * FMA per chain and step, the AVX2 clone two 256-bit ones, the baseline four
 * SSE multiplies and adds: what each instruction set can do.
 */
#ifndef PYCONV_KERNELS_PEAK_H
#define PYCONV_KERNELS_PEAK_H

#define PC_PEAK_CHAINS 16

typedef float pc_peak_v __attribute__((vector_size(64)));

/* ``iters`` steps of every chain on one thread; returns a value that depends
 * on every chain (so no step can be optimised away) */
PC_CLONES
static float pc_fma_chains(ptrdiff_t iters, float seed)
{
    pc_peak_v acc[PC_PEAK_CHAINS];
    pc_peak_v a, b;
    for (int j = 0; j < 16; ++j) {
        a[j] = 1.0f - 1e-7f * (float)j * seed;
        b[j] = 1e-7f * seed;
    }
    for (int c = 0; c < PC_PEAK_CHAINS; ++c)
        acc[c] = a * (float)(c + 1);
    for (ptrdiff_t i = 0; i < iters; ++i) {
        for (int c = 0; c < PC_PEAK_CHAINS; ++c)
            acc[c] = acc[c] * a + b;
    }
    float s = 0.0f;
    for (int c = 0; c < PC_PEAK_CHAINS; ++c)
        for (int j = 0; j < 16; ++j)
            s += acc[c][j];
    return s;
}

/* the same on ``threads`` OpenMP threads at once; floating-point operations
 * done in all (2 per multiply-add) */
static double pc_fma_peak_run(ptrdiff_t iters, int threads)
{
    volatile float sink = 0.0f;
    #pragma omp parallel num_threads(threads)
    {
        float s = pc_fma_chains(iters, 1.0f + (float)pc_thread_num());
        #pragma omp critical
        sink += s;
    }
    (void)sink;
    return 2.0 * 16.0 * PC_PEAK_CHAINS * (double)iters * threads;
}

#endif /* PYCONV_KERNELS_PEAK_H */
