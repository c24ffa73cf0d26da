"""pyconv: PyTorch's convolution family on NumPy arrays.

The six functional ops, their module classes and their gradients
(:mod:`pyconv.grad`), with PyTorch's exact semantics, computed by one of
several interchangeable backends (``reference``, ``cython``, ``opencl``)
chosen at run time.

.. autosummary::

   conv1d
   conv2d
   conv3d
   conv_transpose1d
   conv_transpose2d
   conv_transpose3d
   Conv1d
   Conv2d
   Conv3d
   ConvTranspose1d
   ConvTranspose2d
   ConvTranspose3d
   load_state_dict
   state_dict
   IncompatibleKeys
   backends
   get_backend
   set_backend
   use_backend
   set_num_threads
   get_num_threads
   use_algorithms
   set_algorithms
   get_algorithms
   BackendUnavailableError
"""

from . import grad
from ._registry import (
    BackendUnavailableError,
    backends,
    get_algorithms,
    get_backend,
    get_num_threads,
    set_algorithms,
    set_backend,
    set_num_threads,
    use_algorithms,
    use_backend,
)
from .functional import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from ._state import IncompatibleKeys, load_state_dict, state_dict
from .modules import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)

__version__ = "0.1.0"

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "Conv1d", "Conv2d", "Conv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "load_state_dict", "state_dict", "IncompatibleKeys",
    "grad",
    "backends", "get_backend", "set_backend", "use_backend",
    "set_num_threads", "get_num_threads",
    "use_algorithms", "set_algorithms", "get_algorithms",
    "BackendUnavailableError",
]
