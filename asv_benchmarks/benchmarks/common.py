"""Shared helpers: which backends exist, and the skip convention.

asv skips a parameter combination when ``setup`` raises
``NotImplementedError``; every benchmark class here does that for a backend
that is unavailable on this machine (with the reason as the message) and for
the pure-Python reference backend at full size.
"""

import numpy as np

from pyconv._cli import bench

#: every registered backend, first parameter of every class
BACKENDS = ["reference", "cython", "opencl"]
#: workload names (full size), defined once in pyconv._cli.bench
WORKLOADS = list(bench.WORKLOAD_NAMES)


def require_backend(name, allow_reference=False):
    """Raise NotImplementedError (asv: skip) unless backend ``name`` can run here."""
    import pyconv

    if name == "reference" and not allow_reference:
        raise NotImplementedError("the reference backend is pure Python loops: "
                                  "not timed at full size")
    for row in pyconv.backends():
        if row["name"] == name:
            if not row["available"]:
                raise NotImplementedError(f"backend {name!r} unavailable: {row['reason']}")
            return
    raise NotImplementedError(f"backend {name!r} is not registered")


def touch(shape, dtype=np.float32):
    """A new array of ``shape`` whose pages are all written (so they count in RSS)."""
    a = np.empty(shape, dtype=dtype)
    a.fill(1.0)
    return a


def finish(result):
    """Wait for the device when a backend returns a device array (pyopencl).

    Results of NumPy inputs are NumPy arrays, already complete; a
    ``pyopencl.array.Array`` is finished on its queue so the timing covers the
    kernels, not just their launch.
    """
    queue = getattr(result, "queue", None)
    if queue is not None:
        queue.finish()
    return result
