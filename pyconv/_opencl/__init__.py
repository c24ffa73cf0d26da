"""The ``opencl`` backend: pyconv's primitives as OpenCL kernels (PyOpenCL).

Imported lazily by :mod:`pyconv._registry`; ``import pyconv`` never imports
this package, pyopencl or an OpenCL driver.  :func:`load` returns the
backend, or raises ``ImportError`` (pyopencl missing) or
:class:`~pyconv.BackendUnavailableError` (no platform, no device, a device
variable that matches nothing) with the reason.

Device choice: ``PYCONV_OPENCL_DEVICE``, then ``PYOPENCL_CTX``, then the
first GPU, then any device (details in :mod:`pyconv._opencl._device`).

Inputs may be NumPy arrays (copied to the device and the result copied
back) or :class:`pyopencl.array.Array` (the result stays on the device as
a new device array, enqueued on the input's queue and not waited for;
call ``queue.finish()`` or ``.get()`` to synchronise).  The backend object
also offers ``to_device(ndarray)``, ``queue``, ``pad(x, pads, mode)`` for
device arrays and ``clear_cache()``.

Kernels live in ``kernels/*.cl``: ``common.cl`` (``PRECISION`` -> ``real``,
``ND``, tile defaults), ``conv_gemm.cl`` (conv and per-phase
conv_transpose as an implicit GEMM), ``conv_wgrad.cl`` (weight gradient)
and ``util.cl`` (fixed-order split sum, padding modes).
"""

from __future__ import annotations

__all__ = ["load"]


def load():
    """The OpenCL backend on the selected device.

    Raises
    ------
    ImportError
        pyopencl is not installed.
    BackendUnavailableError
        No OpenCL platform or device, or the requested device is not found.
    """
    from .._registry import BackendUnavailableError

    try:
        import pyopencl as cl
    except ImportError as exc:
        raise ImportError(f"pyopencl is not installed ({exc}); "
                          "`pip install pyconv[opencl]` (plus a driver, e.g. "
                          "pocl-binary-distribution for CPUs)") from exc
    from ._backend import OpenCLBackend

    try:
        return OpenCLBackend()
    except (cl.LogicError, cl.RuntimeError, cl.Error) as exc:
        raise BackendUnavailableError(
            f"OpenCL initialisation failed ({type(exc).__name__}: {exc})") from exc
