"""Where the time of a tiny call goes: pyconv's per-call overhead, piece by piece.

Usage (from the repository root, on a quiet machine)::

    python tools/overhead.py            # pyconv's pieces, then torch's (if installed)

The call is ``conv1d`` of a 2x4x32 float32 input with an 8x4x5 weight: a
few thousand multiply-adds, so its time is nearly all overhead.  Each piece
of the call is timed on its own (best of several repeats of many calls),
in the order the call runs them:

* the public call, ``backend=None`` (``auto``) and ``backend="cython"``;
* the front layer: argument validation (``conv_call``, memoised), dtype
  planning with the output-size check (memoised), backend resolution;
* the backend: ``CythonBackend.conv`` (output allocation, plan, run),
  ``plan()`` (memoised; it reads the thread count and the algorithm
  policy at every call), and the extension's entry plus the kernel.

The pieces overlap (a whole includes its parts) and a piece timed alone
runs with warmer caches than inside a call, so they do not add up exactly;
the public call is the number that counts.  With PyOpenCL and a device,
the ``opencl`` backend's host cost on device arrays follows, with the
driver's enqueue stubbed out (:func:`opencl_pieces`).  torch, when installed, is
timed on one thread with oneDNN (its default for this call) and with
oneDNN off (its own loops: the smallest overhead it has), on tensors and
on NumPy arrays converted both ways, as a NumPy user would call it.
"""

from __future__ import annotations

import timeit

import numpy as np


def best(fn, number=5000, repeat=7):
    """Best time of one call of ``fn`` in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def pyconv_pieces():
    import pyconv
    from pyconv import _cy, _registry, functional
    from pyconv._spec import conv_call

    x = np.random.default_rng(0).random((2, 4, 32), dtype=np.float32)
    w = np.random.default_rng(1).random((8, 4, 5), dtype=np.float32)
    call = conv_call("conv1d", 1, x.shape, w.shape, None, 1, 0, 1, 1, "zeros")
    spec = call.spec
    f32 = np.dtype(np.float32)
    impl = _registry.load_backend("cython")
    p = _cy.plan("conv", spec, f32)
    bias = _cy._EMPTY[f32]
    out = np.empty(spec.output_shape, f32)
    unit = _cy.BY_NAME[p.path]
    return [
        ("pyconv.conv1d(x, w)  [auto]", lambda: pyconv.conv1d(x, w)),
        ("pyconv.conv1d(x, w, backend='cython')",
         lambda: pyconv.conv1d(x, w, backend="cython")),
        ("  conv_call (validation, memoised)",
         lambda: conv_call("conv1d", 1, x.shape, w.shape, None, 1, 0, 1, 1, "zeros")),
        ("  functional.run", lambda: functional.run("conv", call, x, w, None, "cython")),
        ("    dtypes, output size (memoised)",
         lambda: functional._host_front("conv", call, (x.dtype, w.dtype))),
        ("    resolve (auto)", lambda: _registry.resolve("conv", spec, f32)),
        ("    CythonBackend.conv", lambda: impl.conv(x, w, None, spec)),
        ("      plan (memoised)", lambda: _cy.plan("conv", spec, f32)),
        ("        get_num_threads", _registry.get_num_threads),
        (f"      {p.path} path: extension + kernel",
         lambda: unit.run("conv", p, spec, x.reshape(-1), w.reshape(-1), bias,
                          out.reshape(-1))),
    ]


def opencl_pieces():
    """The ``opencl`` backend's host cost on device arrays, the driver left out.

    ``cl.enqueue_nd_range_kernel`` is replaced by a no-op while these run, so
    the time is pyconv's Python (front layer, plan lookup, output
    allocation from the pool, argument setting): on a GPU the launch and the
    wait come on top (about 20 us there), on a CPU driver the enqueue itself
    is far slower, which would hide the Python.  Nothing is computed.
    """
    try:
        import pyopencl as cl
        import pyopencl.array as cl_array
    except ImportError:
        return []
    import pyconv
    from pyconv import _registry

    try:
        be = _registry.load_backend("opencl")
    except pyconv.BackendUnavailableError:
        return []
    x = be.to_device(np.ones((1, 8, 32), np.float32))
    w = be.to_device(np.ones((8, 8, 3), np.float32))
    xt = be.to_device(np.ones((1, 8, 4), np.float32))
    wt = be.to_device(np.ones((8, 4, 16), np.float32))
    calls = [("opencl conv1d, device arrays (driver stubbed)",
              lambda: pyconv.conv1d(x, w, backend="opencl")),
             ("opencl conv_transpose1d K16 s8 (8 phases)",
              lambda: pyconv.conv_transpose1d(xt, wt, stride=8, padding=4, backend="opencl")),
             ("  pyopencl Array of 8 floats",
              lambda: cl_array.empty(be.queue, (1, 8, 32), np.float32))]
    for _, fn in calls:
        fn()
    be.queue.finish()

    def stubbed(fn):
        def run():
            real = cl.enqueue_nd_range_kernel
            cl.enqueue_nd_range_kernel = lambda *args, **kwargs: None
            try:
                return fn()
            finally:
                cl.enqueue_nd_range_kernel = real
        return run
    return [(name, stubbed(fn)) for name, fn in calls]


def torch_pieces():
    try:
        import torch
    except ImportError:
        return []
    torch.set_num_threads(1)
    x = np.random.default_rng(0).random((2, 4, 32), dtype=np.float32)
    w = np.random.default_rng(1).random((8, 4, 5), dtype=np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    conv = torch.nn.functional.conv1d

    def with_onednn(enabled, fn):
        def run():
            torch.backends.mkldnn.enabled = enabled
            return fn()
        return run

    def tensors():
        return conv(xt, wt)

    def numpy_round_trip():
        return conv(torch.from_numpy(x), torch.from_numpy(w)).numpy()

    pieces = []
    for enabled, label in ((True, "oneDNN (default)"), (False, "oneDNN off")):
        pieces.append((f"torch 1 thread, {label}, tensors", with_onednn(enabled, tensors)))
        pieces.append((f"torch 1 thread, {label}, NumPy in and out",
                       with_onednn(enabled, numpy_round_trip)))
    return pieces


def main():
    width = 52
    for pieces in (pyconv_pieces, opencl_pieces, torch_pieces):   # torch imported last
        for name, fn in pieces():
            fn()
            print(f"{name:<{width}}  {best(fn):8.2f} us")


if __name__ == "__main__":
    main()
