# cython: language_level=3
"""Facts of the compiled kernels: the build (OpenMP, SIMD dispatch) and the CPU.

The planner reads the micro-kernels' register blocks from here
(:func:`microkernel`): they come from the one table in
``kernels/microkernels.h`` that also generates the kernels.
"""

from pyconv._cy._common cimport (PYCONV_HAVE_CLONES, PYCONV_HAVE_OPENMP, pc_fma_peak_run,
                                 pc_omp_max_threads, pc_shape, pc_simd_level, pc_uk_level,
                                 pc_uk_shape)


def build_info():
    """Facts fixed at build time / by the CPU: OpenMP, SIMD dispatch."""
    return {
        "openmp": bool(PYCONV_HAVE_OPENMP),
        "omp_max_threads": pc_omp_max_threads(),
        "target_clones": bool(PYCONV_HAVE_CLONES),
        "simd": pc_simd_level().decode("ascii"),
    }


def omp_max_threads():
    """The OpenMP runtime's current thread limit for the calling thread (1 without OpenMP).

    ``omp_get_max_threads()``: what ``OMP_NUM_THREADS`` set at start-up, or
    what ``omp_set_num_threads`` (threadpoolctl's ``threadpool_limits``)
    set since.  Cheap enough to read for every call
    (:meth:`pyconv._cy.CythonBackend.thread_limit`).
    """
    return pc_omp_max_threads()


def simd_level():
    """The micro-kernels' SIMD level on this CPU: 2 AVX-512, 1 AVX2+FMA, 0 baseline."""
    return pc_uk_level()


def microkernel(bint dbl, int level):
    """Register blocks at ``level``: ``(MR, NR, MRW, NRW)``.

    ``MR x NR``: output channels x positions of the conv micro-kernels
    (packed, implicit, strided 1-d); ``MRW x NRW``: taps x output channels
    of the weight-gradient micro-kernel.
    """
    if not 0 <= level <= 2:
        raise ValueError(f"SIMD level must be 0, 1 or 2, got {level}")
    cdef pc_uk_shape s = pc_shape(dbl, level)
    return s.mr, s.nrv * s.vl, s.mrw, s.nrvw * s.vl


def fma_flops(Py_ssize_t iters, int threads):
    """Run ``iters`` steps of independent float32 multiply-add chains on each of
    ``threads`` threads (GIL released); return the floating-point operations done.

    Timed by the caller (:func:`pyconv._cli.bench.fma_peak`): the machine's
    float32 FMA peak is the best rate over a few runs.
    """
    if iters < 0 or threads < 1:
        raise ValueError(f"fma_flops: iters must be >= 0 and threads >= 1, got {iters}, {threads}")
    cdef double flops
    with nogil:
        flops = pc_fma_peak_run(iters, threads)
    return flops
