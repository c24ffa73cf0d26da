"""The type aliases of pyconv's public signatures (see the "Typing" note in ``docs/api.rst``).

The public functions take array-likes and return NumPy arrays, with one
exception: an operand that is a Dask array or an OpenCL device array makes
the result an array of the same kind (a lazy Dask array, an array on the
device).  The signatures say so with overloads (:func:`typing.overload`):
one per operand that can carry such an array, whose result is that
operand's own type (the type variable :data:`DeviceArrayT`), and a last one,
array-likes in and ``NDArray[Any]`` out, for everything else.

The two array kinds are recognised by *protocols* (structural types), not
by importing Dask or PyOpenCL: a type checker then needs neither installed
to check NumPy code, and the overloads do not silently widen to ``Any`` in
an environment that lacks them.

The aliases are written with :data:`typing.Union` and :data:`typing.Optional`,
not ``X | Y``, because they are evaluated when the module is imported and
pyconv still runs on Python 3.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, SupportsIndex, TypeVar, Union

import numpy as np
from numpy.typing import NDArray

__all__ = ["IntOrSeq", "Padding", "PaddingMode", "Shape", "RngLike", "DaskArray",
           "OpenCLArray", "DeviceArray", "DeviceArrayT", "Result", "BackendArray", "NDArray"]

#: ``stride``, ``dilation``, ``output_padding``, ``kernel_size``: one int for
#: every spatial dim, or one per dim (anything with ``__index__``, such as a
#: NumPy integer, counts as an int; a bool does not, at run time).
IntOrSeq = Union[SupportsIndex, Sequence[SupportsIndex]]

#: ``padding`` of a convolution: ints as :data:`IntOrSeq`, or ``'same'`` /
#: ``'valid'`` (transposed convolutions take :data:`IntOrSeq` only).
Padding = Union[IntOrSeq, Literal["same", "valid"]]

#: ``padding_mode`` of a convolution.
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

#: A full shape (``input_size`` and ``weight_size`` of the gradients) or
#: the ``output_size`` of a transposed convolution.
Shape = Sequence[SupportsIndex]

#: What :func:`numpy.random.default_rng` takes: the ``rng`` of the modules.
RngLike = Union[None, int, Sequence[int], np.random.SeedSequence, np.random.BitGenerator,
                np.random.Generator]


class DaskArray(Protocol):
    """A Dask collection (``dask.array.Array``): the result is a lazy Dask array."""

    def __dask_graph__(self) -> object: ...


class OpenCLArray(Protocol):
    """A ``pyopencl.array.Array``: the result stays on its device."""

    @property
    def queue(self) -> object: ...

    def get(self) -> NDArray[Any]: ...


#: An operand that makes the result an array of its own kind.
DeviceArray = Union[DaskArray, OpenCLArray]

#: The type of the Dask or device operand, which the result keeps.
DeviceArrayT = TypeVar("DeviceArrayT", bound=DeviceArray)

#: What a public function returns, seen from inside: a NumPy array, or an
#: array of the kind of its Dask or device operand.
Result = Union[NDArray[Any], DeviceArray]

#: Inside pyconv: an operand or result of a backend primitive, a NumPy array
#: or a device array of the backend that owns it.  The front layer treats the
#: two alike, through the backend's placement hooks (``asarray``, ``zeros``,
#: ``pad``) and what both kinds of array have (``shape``, ``dtype``,
#: ``reshape``, ``astype``), so no narrower type than ``Any`` describes it.
BackendArray = Any
