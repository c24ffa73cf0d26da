"""PyTorch on the same workloads, for comparison (skipped when torch is missing).

torch uses the same number of threads as pyconv (``pyconv.get_num_threads()``).
"""

from pyconv._cli import bench

from .common import WORKLOADS


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise NotImplementedError(f"torch is not importable: {exc}")
    import pyconv

    torch.set_num_threads(pyconv.get_num_threads())
    return torch


def _torch_call(wl, inputs=None):
    """torch's function for the workload (NotImplementedError, asv: skip, if it has none)."""
    fn = bench.torch_callable(wl, inputs)
    if fn is None:
        raise NotImplementedError(f"torch has no function for {wl.op}")
    return fn


class TorchConv:
    """torch.nn.functional / torch.nn.grad on the workloads of ``bench_conv.Conv``."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 600

    def setup(self, workload):
        _torch()
        self.workload = bench.get_workload(workload)
        self.fn = _torch_call(self.workload)
        self.fn()

    def time_op(self, workload):
        self.fn()

    def track_gflops(self, workload):
        t = bench.best_of(self.fn, repeat=3, warmup=0)
        return self.workload.flops / t / 1e9

    track_gflops.unit = "GFLOP/s"


class TorchConvMemory:
    """Peak resident memory of the torch call (compare with ConvMemory)."""

    params = [WORKLOADS]
    param_names = ["workload"]
    timeout = 600

    def setup(self, workload):
        _torch()
        self.fn = _torch_call(bench.get_workload(workload))

    def peakmem_op(self, workload):
        self.fn()
