"""pyconv: PyTorch's convolution family on NumPy arrays.

The six functional ops, their module classes and their gradients, with
PyTorch's exact semantics, computed by one of several interchangeable
backends (``reference``, ``cython``, ``opencl``).
"""

from ._registry import (
    BackendUnavailableError,
    backends,
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
    use_backend,
)

__version__ = "0.1.0"
