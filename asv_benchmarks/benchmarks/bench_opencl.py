"""The opencl backend with device arrays: inputs and outputs stay on the device.

This is how a chain of layers runs on a GPU (no host round trip per call).
Each timing ends with ``queue.finish()``, so it covers the kernels, not only
their launch.  Skipped when the opencl backend is unavailable.
"""

from pyconv._cli import bench

from .common import WORKLOADS, finish, require_backend


class OpenCLDeviceArrays:
    """One public call on ``pyopencl.array.Array`` inputs, result left on the device."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 600

    def setup(self, workload):
        require_backend("opencl")
        from pyconv._registry import load_backend

        backend = load_backend("opencl")
        self.queue = backend.queue
        wl = bench.get_workload(workload)
        inputs = tuple(backend.to_device(a) for a in wl.make_inputs())
        self.fn = bench.pyconv_callable(wl, "opencl", inputs)
        finish(self.fn())  # programs built, caches filled
        self.queue.finish()

    def time_op(self, workload):
        finish(self.fn())
