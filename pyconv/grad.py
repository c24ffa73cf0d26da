"""Gradients of the convolution family, mirroring ``torch.nn.grad``.

Every function here is built from the three backend primitives:

* the input gradient of a convolution is a transposed convolution of the
  output gradient (with the ``output_padding`` that regrows the input
  positions the convolution never read),
* the input gradient of a transposed convolution is a convolution,
* weight gradients are the ``conv_weight`` primitive (for a transposed
  convolution, with the roles of input and output gradient swapped).

The bias gradient needs no function: it is
``grad_output.sum(axis=(0, 2, 3, ...))``.

For complex arrays the functions return what PyTorch's autograd returns for
a real-valued loss (the conjugate Wirtinger convention):
``conv_input = conv_transpose(grad_output, conj(weight))`` and
``conv_weight = sum(grad_output * conj(input))``.

.. autosummary::

   conv1d_input
   conv2d_input
   conv3d_input
   conv1d_weight
   conv2d_weight
   conv3d_weight
   conv_transpose1d_input
   conv_transpose2d_input
   conv_transpose3d_input
   conv_transpose1d_weight
   conv_transpose2d_weight
   conv_transpose3d_weight
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional, SupportsIndex, Tuple, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _dask
from ._dtypes import as_array
from ._spec import ConvCall, _shape_str, conv_call, conv_transpose_call, int_list
from ._typing import (BackendArray, DeviceArray, DeviceArrayT, IntOrSeq, Padding,
                      Result, Shape)
from .functional import run, zeros_for

__all__ = [f"conv{n}d_{w}" for w in ("input", "weight") for n in (1, 2, 3)] + [
    f"conv_transpose{n}d_{w}" for w in ("input", "weight") for n in (1, 2, 3)]


def _size(value: Shape, name: str, op: str, nd: Optional[int] = None) -> Tuple[int, ...]:
    """A full shape given as a sequence of non-negative ints.

    With ``nd``, the shape is an input's: ``nd + 1`` (unbatched) or ``nd + 2``
    entries.
    """
    items = int_list(value, name, op, "a sequence of ints (a full shape)")
    if any(v < 0 for v in items):
        raise ValueError(f"{op}(): {name} must not contain negative sizes, got {items}")
    if nd is not None and len(items) not in (nd + 1, nd + 2):
        raise ValueError(f"{op}(): {name} must be a full input shape with {nd + 1} "
                         f"(unbatched) or {nd + 2} (batched) entries, got {name}={items}")
    return tuple(items)


def _conj(a: BackendArray) -> BackendArray:
    return np.conj(a) if np.iscomplexobj(a) else a


def _check_grad_output(op: str, gy: BackendArray, expected: Tuple[int, ...]) -> None:
    if tuple(gy.shape) != tuple(expected):
        raise ValueError(f"{op}(): grad_output must have shape {_shape_str(expected)} for these "
                         f"sizes and arguments, got {_shape_str(gy.shape)}")


def _expected(call: ConvCall, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return shape[1:] if call.unbatched else shape


def _conv_input(op: str, nd: int, input_size: Shape, weight: ArrayLike | DeviceArray,
                grad_output: ArrayLike | DeviceArray, stride: IntOrSeq, padding: Padding,
                dilation: IntOrSeq, groups: SupportsIndex,
                backend: str | None) -> Result:
    if _dask.any_dask(weight, grad_output):
        return _dask.grad("conv_input", op, nd, input_size, weight, grad_output, stride,
                          padding, dilation, groups, backend)
    w = as_array(weight, "weight")
    gy = as_array(grad_output, "grad_output")
    size = _size(input_size, "input_size", op, nd)
    call = conv_call(op, nd, size, w.shape, None, stride, padding, dilation, groups)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    tcall = replace(call, spec=call.spec.as_transposed())
    return run("conv_transpose", tcall, gy, _conj(w), None, backend)


def _conv_weight(op: str, nd: int, input: ArrayLike | DeviceArray, weight_size: Shape,
                 grad_output: ArrayLike | DeviceArray, stride: IntOrSeq, padding: Padding,
                 dilation: IntOrSeq, groups: SupportsIndex,
                 backend: str | None) -> Result:
    if _dask.any_dask(input, grad_output):
        return _dask.grad("conv_weight", op, nd, input, weight_size, grad_output, stride,
                          padding, dilation, groups, backend)
    x = as_array(input, "input")
    gy = as_array(grad_output, "grad_output")
    size = _size(weight_size, "weight_size", op)
    call = conv_call(op, nd, x.shape, size, None, stride, padding, dilation, groups)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    if call.empty:  # the given weight_size, even where no weight reaches the output
        return zeros_for(size, x, gy)
    return run("conv_weight", call, _conj(x), gy, None, backend)


def _convt_input(op: str, nd: int, input_size: Shape, weight: ArrayLike | DeviceArray,
                 grad_output: ArrayLike | DeviceArray, stride: IntOrSeq, padding: IntOrSeq,
                 output_padding: IntOrSeq, groups: SupportsIndex, dilation: IntOrSeq,
                 backend: str | None) -> Result:
    if _dask.any_dask(weight, grad_output):
        return _dask.grad("convt_input", op, nd, input_size, weight, grad_output, stride,
                          padding, output_padding, groups, dilation, backend)
    w = as_array(weight, "weight")
    gy = as_array(grad_output, "grad_output")
    size = _size(input_size, "input_size", op, nd)
    call = conv_transpose_call(op, nd, size, w.shape, None, stride, padding, output_padding,
                               groups, dilation)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    return run("conv", replace(call, spec=call.spec.as_conv()), gy, _conj(w), None, backend)


def _convt_weight(op: str, nd: int, input: ArrayLike | DeviceArray, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArray, stride: IntOrSeq, padding: IntOrSeq,
                  output_padding: IntOrSeq, groups: SupportsIndex, dilation: IntOrSeq,
                  backend: str | None) -> Result:
    if _dask.any_dask(input, grad_output):
        return _dask.grad("convt_weight", op, nd, input, weight_size, grad_output, stride,
                          padding, output_padding, groups, dilation, backend)
    x = as_array(input, "input")
    gy = as_array(grad_output, "grad_output")
    size = _size(weight_size, "weight_size", op)
    call = conv_transpose_call(op, nd, x.shape, size, None, stride, padding, output_padding,
                               groups, dilation)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    if call.empty:
        return zeros_for(size, x, gy)
    # gw[ci, j, k] = sum x[n, ci, i] * gy[n, g*cout_g + j, i*s - p + k*d]: the conv_weight
    # primitive of the adjoint convolution, whose input is grad_output and output is x.
    return run("conv_weight", replace(call, spec=call.spec.as_conv()), gy, _conj(x), None,
               backend)


# The overloads are for type checkers (see pyconv.functional): a Dask or OpenCL
# operand makes the result an array of its kind, NumPy array-likes a NumPy array.

@overload
def conv1d_input(input_size: Shape, weight: DeviceArrayT,
                 grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                 padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                 backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d_input(input_size: Shape, weight: ArrayLike, grad_output: DeviceArrayT,
                 stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                 groups: SupportsIndex = 1, *, backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                 stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                 groups: SupportsIndex = 1, *, backend: str | None = None) -> NDArray[Any]: ...
def conv1d_input(input_size: Shape, weight: ArrayLike | DeviceArray,
                 grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                 padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                 backend: str | None = None) -> Result:
    return _conv_input("conv1d_input", 1, input_size, weight, grad_output, stride, padding,
                       dilation, groups, backend)


@overload
def conv2d_input(input_size: Shape, weight: DeviceArrayT,
                 grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                 padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                 backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d_input(input_size: Shape, weight: ArrayLike, grad_output: DeviceArrayT,
                 stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                 groups: SupportsIndex = 1, *, backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                 stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                 groups: SupportsIndex = 1, *, backend: str | None = None) -> NDArray[Any]: ...
def conv2d_input(input_size: Shape, weight: ArrayLike | DeviceArray,
                 grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                 padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                 backend: str | None = None) -> Result:
    return _conv_input("conv2d_input", 2, input_size, weight, grad_output, stride, padding,
                       dilation, groups, backend)


@overload
def conv3d_input(input_size: Shape, weight: DeviceArrayT,
                 grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                 padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                 backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d_input(input_size: Shape, weight: ArrayLike, grad_output: DeviceArrayT,
                 stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                 groups: SupportsIndex = 1, *, backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                 stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                 groups: SupportsIndex = 1, *, backend: str | None = None) -> NDArray[Any]: ...
def conv3d_input(input_size: Shape, weight: ArrayLike | DeviceArray,
                 grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                 padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                 backend: str | None = None) -> Result:
    return _conv_input("conv3d_input", 3, input_size, weight, grad_output, stride, padding,
                       dilation, groups, backend)


@overload
def conv1d_weight(input: DeviceArrayT, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                  padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d_weight(input: ArrayLike, weight_size: Shape, grad_output: DeviceArrayT,
                  stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                  groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                  stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                  groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> NDArray[Any]: ...
def conv1d_weight(input: ArrayLike | DeviceArray, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                  padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> Result:
    return _conv_weight("conv1d_weight", 1, input, weight_size, grad_output, stride, padding,
                        dilation, groups, backend)


@overload
def conv2d_weight(input: DeviceArrayT, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                  padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d_weight(input: ArrayLike, weight_size: Shape, grad_output: DeviceArrayT,
                  stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                  groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                  stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                  groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> NDArray[Any]: ...
def conv2d_weight(input: ArrayLike | DeviceArray, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                  padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> Result:
    return _conv_weight("conv2d_weight", 2, input, weight_size, grad_output, stride, padding,
                        dilation, groups, backend)


@overload
def conv3d_weight(input: DeviceArrayT, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                  padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d_weight(input: ArrayLike, weight_size: Shape, grad_output: DeviceArrayT,
                  stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                  groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                  stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
                  groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> NDArray[Any]: ...
def conv3d_weight(input: ArrayLike | DeviceArray, weight_size: Shape,
                  grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                  padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
                  backend: str | None = None) -> Result:
    return _conv_weight("conv3d_weight", 3, input, weight_size, grad_output, stride, padding,
                        dilation, groups, backend)


@overload
def conv_transpose1d_input(input_size: Shape, weight: DeviceArrayT,
                           grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                           padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                           groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d_input(input_size: Shape, weight: ArrayLike, grad_output: DeviceArrayT,
                           stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                           output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                           dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                           stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                           output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                           dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose1d_input(input_size: Shape, weight: ArrayLike | DeviceArray,
                           grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                           padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                           groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> Result:
    return _convt_input("conv_transpose1d_input", 1, input_size, weight, grad_output, stride,
                        padding, output_padding, groups, dilation, backend)


@overload
def conv_transpose2d_input(input_size: Shape, weight: DeviceArrayT,
                           grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                           padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                           groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d_input(input_size: Shape, weight: ArrayLike, grad_output: DeviceArrayT,
                           stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                           output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                           dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                           stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                           output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                           dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose2d_input(input_size: Shape, weight: ArrayLike | DeviceArray,
                           grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                           padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                           groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> Result:
    return _convt_input("conv_transpose2d_input", 2, input_size, weight, grad_output, stride,
                        padding, output_padding, groups, dilation, backend)


@overload
def conv_transpose3d_input(input_size: Shape, weight: DeviceArrayT,
                           grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                           padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                           groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d_input(input_size: Shape, weight: ArrayLike, grad_output: DeviceArrayT,
                           stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                           output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                           dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                           stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                           output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                           dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose3d_input(input_size: Shape, weight: ArrayLike | DeviceArray,
                           grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                           padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                           groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                           backend: str | None = None) -> Result:
    return _convt_input("conv_transpose3d_input", 3, input_size, weight, grad_output, stride,
                        padding, output_padding, groups, dilation, backend)


@overload
def conv_transpose1d_weight(input: DeviceArrayT, weight_size: Shape,
                            grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                            padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                            groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d_weight(input: ArrayLike, weight_size: Shape, grad_output: DeviceArrayT,
                            stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                            output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                            dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                            stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                            output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                            dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose1d_weight(input: ArrayLike | DeviceArray, weight_size: Shape,
                            grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                            padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                            groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> Result:
    return _convt_weight("conv_transpose1d_weight", 1, input, weight_size, grad_output,
                         stride, padding, output_padding, groups, dilation, backend)


@overload
def conv_transpose2d_weight(input: DeviceArrayT, weight_size: Shape,
                            grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                            padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                            groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d_weight(input: ArrayLike, weight_size: Shape, grad_output: DeviceArrayT,
                            stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                            output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                            dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                            stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                            output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                            dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose2d_weight(input: ArrayLike | DeviceArray, weight_size: Shape,
                            grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                            padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                            groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> Result:
    return _convt_weight("conv_transpose2d_weight", 2, input, weight_size, grad_output,
                         stride, padding, output_padding, groups, dilation, backend)


@overload
def conv_transpose3d_weight(input: DeviceArrayT, weight_size: Shape,
                            grad_output: ArrayLike | DeviceArrayT, stride: IntOrSeq = 1,
                            padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                            groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d_weight(input: ArrayLike, weight_size: Shape, grad_output: DeviceArrayT,
                            stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                            output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                            dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                            stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                            output_padding: IntOrSeq = 0, groups: SupportsIndex = 1,
                            dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose3d_weight(input: ArrayLike | DeviceArray, weight_size: Shape,
                            grad_output: ArrayLike | DeviceArray, stride: IntOrSeq = 1,
                            padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                            groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                            backend: str | None = None) -> Result:
    return _convt_weight("conv_transpose3d_weight", 3, input, weight_size, grad_output,
                         stride, padding, output_padding, groups, dilation, backend)


# ---------------------------------------------------------------------------
# docstrings

_SP = {1: "L", 2: "H, W", 3: "D, H, W"}

_CONV_ARGS = """    stride, padding, dilation, groups
        The arguments of the forward :func:`pyconv.conv{nd}d` call (ints or
        sequences; ``padding`` may also be ``'same'``/``'valid'``).
    backend : str, optional
        Run on this backend instead of the one in force."""

_CONVT_ARGS = """    stride, padding, output_padding, groups, dilation
        The arguments of the forward :func:`pyconv.conv_transpose{nd}d` call, in
        its positional order (``groups`` before ``dilation``).
    backend : str, optional
        Run on this backend instead of the one in force."""

_RAISES = """    Raises
    ------
    ValueError
        Inconsistent sizes or arguments (as the forward op would report), or
        ``grad_output`` not of the forward op's output shape.
    TypeError
        Non-integer sizes or arguments, or an unsupported dtype."""

_TEMPLATES = {
    "conv_input": """Gradient of :func:`pyconv.conv{nd}d` with respect to its input.

    Parameters
    ----------
    input_size : sequence of int
        Full shape of the forward input, ``(N, C_in, {sp})`` (or unbatched
        ``(C_in, {sp})``).
    weight : array_like
        ``(C_out, C_in / groups, *K)``, the forward weight.
    grad_output : array_like
        Gradient of the loss with respect to the forward output.
{args}

    Returns
    -------
    ndarray
        Array of shape ``input_size``.

{raises}

    Notes
    -----
    Equals ``conv_transpose{nd}d(grad_output, weight, stride=s, padding=p,
    output_padding=op, groups=g, dilation=d)`` where, per dim,
    ``op = S - ((O - 1)*s - 2*p + d*(K - 1) + 1)`` regrows the input positions
    the forward convolution never read.

    Examples
    --------
    >>> import numpy as np
    >>> import pyconv
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 3, {ex}))
    >>> w = rng.standard_normal((4, 3, {exk}))
    >>> gy = np.ones_like(pyconv.conv{nd}d(x, w, stride=2))
    >>> gx = pyconv.grad.conv{nd}d_input(x.shape, w, gy, stride=2)
    >>> gx.shape == x.shape
    True
""",
    "conv_weight": """Gradient of :func:`pyconv.conv{nd}d` with respect to its weight.

    Parameters
    ----------
    input : array_like
        The forward input, ``(N, C_in, {sp})`` (or unbatched).
    weight_size : sequence of int
        Shape of the forward weight, ``(C_out, C_in / groups, *K)``.
    grad_output : array_like
        Gradient of the loss with respect to the forward output.
{args}

    Returns
    -------
    ndarray
        Array of shape ``weight_size``.

{raises}

    Notes
    -----
    ``gw[co, c, k] = sum_{{n, o}} grad_output[n, co, o] * x[n, g*C_in/groups + c, o*s - p + k*d]``
    (out-of-range input positions read zero).

    Examples
    --------
    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((1, 1, {ex}))
    >>> gy = np.ones_like(pyconv.conv{nd}d(x, np.ones((1, 1, {exk}))))
    >>> pyconv.grad.conv{nd}d_weight(x, (1, 1, {exk}), gy).shape
    (1, 1, {exk})
""",
    "convt_input": """Gradient of :func:`pyconv.conv_transpose{nd}d` with respect to its input.

    Parameters
    ----------
    input_size : sequence of int
        Full shape of the forward input, ``(N, C_in, {sp})`` (or unbatched).
    weight : array_like
        ``(C_in, C_out / groups, *K)``, the forward weight.
    grad_output : array_like
        Gradient of the loss with respect to the forward output.
{args}

    Returns
    -------
    ndarray
        Array of shape ``input_size``.

{raises}

    Notes
    -----
    Equals ``conv{nd}d(grad_output, weight, stride=s, padding=p, dilation=d,
    groups=g)``: a transposed convolution's adjoint is the convolution.

    Examples
    --------
    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((1, 2, {ex}))
    >>> w = np.ones((2, 3, {exk}))
    >>> gy = np.ones_like(pyconv.conv_transpose{nd}d(x, w, stride=2))
    >>> pyconv.grad.conv_transpose{nd}d_input(x.shape, w, gy, stride=2).shape == x.shape
    True
""",
    "convt_weight": """Gradient of :func:`pyconv.conv_transpose{nd}d` with respect to its weight.

    Parameters
    ----------
    input : array_like
        The forward input, ``(N, C_in, {sp})`` (or unbatched).
    weight_size : sequence of int
        Shape of the forward weight, ``(C_in, C_out / groups, *K)``.
    grad_output : array_like
        Gradient of the loss with respect to the forward output.
{args}

    Returns
    -------
    ndarray
        Array of shape ``weight_size``.

{raises}

    Notes
    -----
    ``gw[ci, j, k] = sum_{{n, i}} x[n, ci, i] * grad_output[n, g*C_out/groups + j, i*s - p + k*d]``
    over in-range output positions.

    Examples
    --------
    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((1, 2, {ex}))
    >>> gy = np.ones_like(pyconv.conv_transpose{nd}d(x, np.ones((2, 3, {exk}))))
    >>> pyconv.grad.conv_transpose{nd}d_weight(x, (2, 3, {exk}), gy).shape
    (2, 3, {exk})
""",
}

_EX = {1: ("7", "3"), 2: ("7, 6", "3, 2"), 3: ("5, 4, 4", "3, 2, 2")}

for _nd in (1, 2, 3):
    _fmt = dict(nd=_nd, sp=_SP[_nd], ex=_EX[_nd][0], exk=_EX[_nd][1], raises=_RAISES)
    for _kind, _name, _args in (("conv_input", f"conv{_nd}d_input", _CONV_ARGS),
                                ("conv_weight", f"conv{_nd}d_weight", _CONV_ARGS),
                                ("convt_input", f"conv_transpose{_nd}d_input", _CONVT_ARGS),
                                ("convt_weight", f"conv_transpose{_nd}d_weight", _CONVT_ARGS)):
        globals()[_name].__doc__ = _TEMPLATES[_kind].format(args=_args.format(nd=_nd), **_fmt)
del _nd, _fmt, _kind, _name, _args
