"""SciPy on the one workload it can express: the depthwise 1-D convolution.

``scipy.signal.oaconvolve`` / ``fftconvolve`` with ``axes=-1`` convolve every
(batch, channel) row with its own channel's kernel by broadcasting, which is
exactly a depthwise ``conv1d`` (``groups = channels``, ``padding='same'``,
odd kernel).  The channel-mixing workloads have no SciPy counterpart.
"""

import numpy as np

from pyconv._cli import bench

from .common import BACKENDS, require_backend


def _inputs():
    wl = bench.get_workload("conv1d_depthwise")
    x, w, b = wl.make_inputs()
    # conv1d is a cross-correlation: flip the kernel for scipy's convolution
    kernel = np.ascontiguousarray(w[:, 0, ::-1])[None]     # (1, C, K)
    return wl, x, w, b, kernel


class ScipyDepthwise:
    """SciPy's overlap-add and FFT convolutions on the depthwise workload."""

    params = [["oaconvolve", "fftconvolve"]]
    param_names = ["method"]
    timeout = 300

    def setup(self, method):
        import scipy.signal

        self.wl, self.x, w, b, self.kernel = _inputs()
        self.fn = getattr(scipy.signal, method)
        self.b = b[None, :, None]
        got = self.fn(self.x, self.kernel, mode="same", axes=-1) + self.b
        expect = bench.pyconv_callable(self.wl, _fast(), (self.x, w, b))()
        if not np.allclose(got, expect, rtol=1e-3, atol=1e-3):
            raise AssertionError("scipy's result differs from pyconv's: not the same op")

    def time_scipy(self, method):
        self.fn(self.x, self.kernel, mode="same", axes=-1) + self.b


def _fast():
    """The first available fast backend (scipy's result is checked against it)."""
    for name in BACKENDS[1:]:
        try:
            require_backend(name)
        except NotImplementedError:
            continue
        return name
    raise NotImplementedError("no fast pyconv backend to compare with")
