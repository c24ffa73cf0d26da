"""Time and peak memory of every workload on every pyconv backend.

Workloads: :data:`pyconv._cli.bench.WORKLOADS` (float32, the Cython issue's list);
the parameters are ``backend`` first, then ``workload``.
"""

import contextlib

import numpy as np

from pyconv._cli import bench

from .common import BACKENDS, WORKLOADS, finish, require_backend, touch


class Conv:
    """Wall time of one public call (front layer included), after a warm-up call.

    A workload marked ``busy`` runs with a CPU-bound neighbour process on
    every core (started in ``setup``, killed in ``teardown``); one with
    ``calls > 1`` is timed as that many calls in a row.
    """

    params = [BACKENDS, WORKLOADS]
    param_names = ["backend", "workload"]
    timeout = 600

    def setup(self, backend, workload):
        require_backend(backend)
        self.workload = bench.get_workload(workload)
        self.fn = bench.pyconv_callable(self.workload, backend)
        self.neighbours = contextlib.ExitStack()
        if self.workload.busy:
            self.neighbours.enter_context(bench.busy_neighbours())
        finish(self.fn())  # warm up: OpenCL programs compiled, caches filled

    def teardown(self, backend, workload):
        self.neighbours.close()

    def time_op(self, backend, workload):
        for _ in range(self.workload.calls):
            finish(self.fn())

    def track_gflops(self, backend, workload):
        # GFLOP/s of the best of three calls (2 x multiply-adds / time)
        t = bench.best_of(lambda: finish(self.fn()), repeat=3, warmup=0)
        return self.workload.flops / t / 1e9

    track_gflops.unit = "GFLOP/s"


class ConvMemory:
    """Peak resident memory of one call; compare with ``peakmem_reference``.

    ``peakmem_reference`` allocates only what any implementation must hold
    (the inputs and one output), so the difference between ``peakmem_op``
    and it is the workspace the backend used (bounded by output size + 64 MB
    for the cython backend).
    """

    params = [BACKENDS, WORKLOADS]
    param_names = ["backend", "workload"]
    timeout = 600

    def setup(self, backend, workload):
        require_backend(backend)
        self.workload = bench.get_workload(workload)
        self.inputs = self.workload.make_inputs()
        self.backend = backend

    def peakmem_op(self, backend, workload):
        finish(bench.pyconv_callable(self.workload, backend, self.inputs)())

    def peakmem_reference(self, backend, workload):
        touch(self.workload.result_shape)


class Dispatch:
    """Overhead of one call on a tiny input (argument parsing, registry, copies)."""

    params = [BACKENDS, ["conv1d", "conv2d", "conv_transpose1d"]]
    param_names = ["backend", "op"]

    def setup(self, backend, op):
        require_backend(backend, allow_reference=True)
        import pyconv

        nd = 2 if op == "conv2d" else 1
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 2) + (8,) * nd, dtype=np.float32)
        w = rng.standard_normal((2, 2) + (3,) * nd, dtype=np.float32)
        fn = getattr(pyconv, op)
        self.fn = lambda: fn(x, w, None, backend=backend)
        finish(self.fn())

    def time_call(self, backend, op):
        finish(self.fn())


class Quick:
    """The workloads at the tiny ``--quick`` sizes, where every backend runs.

    This is the only place the reference backend is timed: it shows how far
    the fast backends are from the oracle, not a user-facing speed.
    """

    params = [BACKENDS, WORKLOADS]
    param_names = ["backend", "workload"]

    def setup(self, backend, workload):
        require_backend(backend, allow_reference=True)
        self.fn = bench.pyconv_callable(bench.get_workload(workload, quick=True), backend)
        finish(self.fn())

    def time_op(self, backend, workload):
        finish(self.fn())


class ConvertedInputMemory:
    """Peak memory of calls whose input must be converted before a backend takes it.

    A padding mode (the padded input), float16 (computed in float32), a
    non-contiguous view and complex operands (their real and imaginary parts)
    run in blocks (:mod:`pyconv._blocks`): compare ``peakmem_op`` with
    ``peakmem_reference`` (the input and the output alone) -- the difference
    stays within the 64 MB workspace bound, where a whole converted copy would
    cost the input's size again (this 1 x 32 x 1024 x 1024 input: 128 MiB).
    """

    params = [["cython", "opencl"], ["zeros", "reflect", "float16", "noncontig", "complex"]]
    param_names = ["backend", "case"]
    timeout = 600

    def setup(self, backend, case):
        require_backend(backend)
        shape = (1, 32, 1024, 1024)
        if case == "complex":
            x = np.empty(shape, np.complex64)
            x.real, x.imag = 1.0, 0.5
        elif case == "float16":
            x = np.ones(shape, np.float16)
        elif case == "noncontig":
            x = np.ones(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]
        else:
            x = np.ones(shape, np.float32)
        self.x = x
        self.w = np.full((32, 32, 3, 3), 1 / 288, np.float32)
        self.mode = "reflect" if case == "reflect" else "zeros"
        self.result = np.result_type(x.dtype, np.float32)

    def peakmem_op(self, backend, case):
        import pyconv
        finish(pyconv.conv2d(self.x, self.w, padding=1, padding_mode=self.mode,
                             backend=backend))

    def peakmem_reference(self, backend, case):
        touch(self.x.shape, self.result)
