/*
 * What every kernel family of the cython backend shares: the build facts
 * (OpenMP, SIMD dispatch), the geometry of a call, aligned work buffers,
 * integer helpers and the run control the per-item driver polls.
 *
 * The kernels are plain C so that they can carry GCC's target_clones
 * attribute: a PC_CLONES function is compiled for x86-64-v4 (AVX-512),
 * x86-64-v3 (AVX2 + FMA) and the baseline, and the loader picks the best
 * one for the running CPU (ifunc).  A build that cannot use target_clones
 * gets the plain portable versions.
 *
 * Supported compilers: GCC and Clang (vector extensions, ``restrict``,
 * ``posix_memalign``); supported systems: Linux and macOS.
 *
 * Every index is ptrdiff_t (64-bit): no int overflow whatever the array size.
 */
#ifndef PYCONV_KERNELS_COMMON_H
#define PYCONV_KERNELS_COMMON_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenMP, or serial stubs for the few runtime calls the backend makes */
#ifdef _OPENMP
#include <omp.h>
#define PYCONV_HAVE_OPENMP 1
static int pc_omp_max_threads(void) { return omp_get_max_threads(); }
static int pc_thread_num(void) { return omp_get_thread_num(); }
static int pc_team_size(void) { return omp_get_num_threads(); }
#else
#define PYCONV_HAVE_OPENMP 0
static int pc_omp_max_threads(void) { return 1; }
static int pc_thread_num(void) { return 0; }
static int pc_team_size(void) { return 1; }
#endif

#if defined(PYCONV_USE_TARGET_CLONES) && defined(__GNUC__) && defined(__x86_64__)
#define PYCONV_HAVE_CLONES 1
#define PC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define PC_TARGET(t) __attribute__((target(t)))
#else
#define PYCONV_HAVE_CLONES 0
#define PC_CLONES
#define PC_TARGET(t)
#endif
#define PC_NO_ATTR

/*
 * The SIMD level the micro-kernels run at on this CPU: 2 AVX-512
 * (x86-64-v4), 1 AVX2+FMA (x86-64-v3), 0 the baseline build.  Without
 * target_clones every level is the portable build, so the CPU says 0.
 */
static int pc_uk_level(void)
{
#if PYCONV_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

/* The instruction set the clones dispatch to on this CPU (for info()). */
static const char *pc_simd_level(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return PYCONV_HAVE_CLONES ? "avx512 (x86-64-v4 clone)" : "baseline (cpu has avx512)";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return PYCONV_HAVE_CLONES ? "avx2+fma (x86-64-v3 clone)" : "baseline (cpu has avx2)";
    return "baseline";
#else
    return "baseline";
#endif
}

/*
 * The transposing copy of the packing routines, at the AVX-512 level: for
 * n < count, dst[n * ldd + c] = src[c * ld + col] with col = pos[n] (or n when
 * pos is NULL), for the channels c < 16 set in ``lanes`` (zero in the others):
 * one masked 16-lane gather per column.  Element-by-element, the copy's
 * stores land a whole panel row apart.  The lane offsets c * ld are 32-bit:
 * callers keep 16 * ld below 2**31 (pc_gather16_ok).
 */
#define pc_gather16_ok(ld) ((ld) < ((ptrdiff_t)1 << 27))
#if PYCONV_HAVE_CLONES
#include <immintrin.h>
PC_TARGET("arch=x86-64-v4") static void pc_gather16_v4(const float *src, ptrdiff_t ld,
                                                     const ptrdiff_t *pos, ptrdiff_t count,
                                                     unsigned lanes, ptrdiff_t ldd,
                                                     float *dst)
{
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)ld));
    const __mmask16 m = (__mmask16)lanes;
    ptrdiff_t n;
    for (n = 0; n < count; n++)
        _mm512_storeu_ps(dst + n * ldd, _mm512_mask_i32gather_ps(
            _mm512_setzero_ps(), m, idx, src + (pos ? pos[n] : n), 4));
}
#endif

/* The lanes mask of the first nc (clamped to 0..16) of 16 channels. */
static inline unsigned pc_lanes16(ptrdiff_t nc)
{
    return nc >= 16 ? 0xffffu : nc <= 0 ? 0u : (1u << nc) - 1u;
}

/* Geometry of one call, canonicalised to three spatial dims (z, y, x). */
typedef struct {
    ptrdiff_t N, Cin, Cout, G, cin_g, cout_g;
    ptrdiff_t isz[3];   /* op input spatial size */
    ptrdiff_t osz[3];   /* op output spatial size */
    ptrdiff_t ks[3];    /* kernel size */
    ptrdiff_t st[3];    /* stride */
    ptrdiff_t dl[3];    /* dilation */
    ptrdiff_t lo[3];    /* leading padding (conv) / leading crop (transposed) */
    ptrdiff_t Pin, Pout, Kp;
} pc_geo;

/*
 * Work buffers are 64-byte aligned and padded to a multiple of 64 bytes:
 * BLAS may take an alignment-dependent path, and a buffer that moved
 * between allocations (another thread's malloc arena) must not change the
 * result.
 */
static void *pc_alloc(size_t bytes)
{
    void *p = NULL;
    size_t n = (bytes + 63) / 64 * 64;
    if (n == 0)
        n = 64;
    if (posix_memalign(&p, 64, n) != 0)
        return NULL;
    return p;
}

/* Floor and ceiling division for a possibly negative numerator, b > 0. */
static inline ptrdiff_t pc_floordiv(ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static inline ptrdiff_t pc_ceildiv(ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t q = a / b;
    return (a % b != 0 && a > 0) ? q + 1 : q;
}

/*
 * Run control of one call, shared by its threads: ``stop`` is set when a
 * signal handler raised (Ctrl-C) and ``failed`` when a thread could not
 * allocate its buffers; the threads read both between work items.  Only
 * thread 0 polls for signals, at most every ``interval`` seconds
 * (PC_POLL_SECONDS; ``next`` is the monotonic time of its next poll);
 * ``exc`` keeps the exception the handler raised until the threads have
 * joined.
 */
#define PC_POLL_SECONDS 0.02

/* A barrier for the threads of a call, which they may pass several times
   (sense-reversing: *sense is the calling thread's own flag, 0 at the
   start; pc_team_wait).  Everything a thread wrote before it arrived is
   visible to all after. */
typedef struct {
    int count;         /* threads arrived at the current barrier */
    int sense;         /* flips when the last one arrives */
    int sleepers;      /* pc_team_while's count */
} pc_team_bar;

typedef struct {
    volatile int stop;
    volatile int failed;
    pc_team_bar passes;    /* between the passes (pc_team_barrier) */
    int done;              /* threads done (pc_team_end) */
    int poll;
    double interval, next;
    void *exc[3];
} pc_ctl;

static double pc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The id of Python's main thread (threading.main_thread().ident, the thread
   signals reach), kept by each module for its calls' signal polling: 0 until
   a call asks for it, and again in the child of a fork, whose main thread is
   the one that forked.  (Asking Python at every call cost 0.3 us.) */
#include <pthread.h>
static unsigned long pc_main_thread_id = 0;

static void pc_forget_main_thread(void)
{
    pc_main_thread_id = 0;
}

static unsigned long pc_main_thread(void)
{
    return pc_main_thread_id;
}

static void pc_set_main_thread(unsigned long id)
{
    static int registered = 0;
    if (!registered) {
        registered = 1;
        pthread_atfork(NULL, NULL, pc_forget_main_thread);
    }
    pc_main_thread_id = id;
}

/*
 * Waiting for the other threads of a call, inside its parallel region.
 *
 * The OpenMP runtime runs with a passive wait policy (pyconv._cy explains
 * why): a thread that waits at one of its barriers goes to sleep at once,
 * and on the development machine (a VM) waking it took 50-100 us.  The
 * waits inside a call (between passes, and thread 0's for the others at
 * the end of the region) spin first instead, for at most PC_SPIN_SECONDS:
 * on a quiet machine the other threads usually arrive within that time.
 * Then they sleep (a futex on Linux, sched_yield in a loop elsewhere): on
 * a machine whose cores other processes keep busy, a waiter that kept
 * spinning, or yielding in a loop, took CPU time its partners needed (a
 * batch-1 conv2d: medians of 1.3-4.7 ms per call against 1.2).  The
 * runtime's own spinning, which lasts milliseconds and also runs between
 * calls, is what the passive policy turns off.
 */
#define PC_SPIN_SECONDS 50e-6

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PC_PAUSE() __builtin_ia32_pause()
#else
#define PC_PAUSE() ((void)0)
#endif

#ifdef __linux__
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Sleep while *addr == val (returns at once if it is not; may return early). */
static void pc_sleep_while(int *addr, int val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void pc_wake_all(int *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#else
#include <sched.h>
static void pc_sleep_while(int *addr, int val) { (void)addr; (void)val; sched_yield(); }
static void pc_wake_all(int *addr) { (void)addr; }
#endif

/* Spin while *addr == val, until the deadline *end (PC_SPIN_SECONDS after
   the first check when *end < 0): whether *addr changed in time. */
static int pc_spin_while(int *addr, int val, double *end)
{
    int i;
    for (;;) {
        for (i = 0; i < 32; i++) {
            if (__atomic_load_n(addr, __ATOMIC_SEQ_CST) != val)
                return 1;
            PC_PAUSE();
        }
        {
            const double now = pc_now();
            if (*end < 0)
                *end = now + PC_SPIN_SECONDS;
            else if (now >= *end)
                return 0;
        }
    }
}

/* Wait while *addr == val: spin (pc_spin_while), then sleep, counted in
   *sleepers so that the thread that changes *addr wakes it (pc_team_set). */
static void pc_team_while(int *addr, int val, int *sleepers)
{
    double end = -1;
    if (pc_spin_while(addr, val, &end))
        return;
    __atomic_add_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(addr, __ATOMIC_SEQ_CST) == val)
        pc_sleep_while(addr, val);
}

/* *addr = val, waking the threads asleep in pc_team_while on it (once one
   has slept there, every later change wakes: a ~1 us system call). */
static void pc_team_set(int *addr, int val, int *sleepers)
{
    __atomic_store_n(addr, val, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST))
        pc_wake_all(addr);
}

static void pc_team_wait(pc_team_bar *b, int team, int *sense)
{
    const int s = !*sense;
    *sense = s;
    if (team <= 1)
        return;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_SEQ_CST) == team) {
        __atomic_store_n(&b->count, 0, __ATOMIC_SEQ_CST);
        pc_team_set(&b->sense, s, &b->sleepers);
        return;
    }
    pc_team_while(&b->sense, !s, &b->sleepers);
}

/* The barrier between the two passes of a call (once per call; n: the
   size of its team). */
static void pc_team_barrier(pc_ctl *c, int n)
{
    int sense = 0;
    pc_team_wait(&c->passes, n, &sense);
}

/* The last statement of a call's parallel region on each of its n threads:
   thread 0 waits (spinning, at most PC_SPIN_SECONDS) until the others are
   done too, so that it reaches the runtime's end barrier last and returns
   from it without sleeping; the others go on to that barrier. */
static void pc_team_end(pc_ctl *c, int n)
{
    double end = -1;
    int v = __atomic_add_fetch(&c->done, 1, __ATOMIC_SEQ_CST);
    if (pc_thread_num() != 0)
        return;
    while (v < n && pc_spin_while(&c->done, v, &end))
        v = __atomic_load_n(&c->done, __ATOMIC_SEQ_CST);
}

#endif /* PYCONV_KERNELS_COMMON_H */
