"""The functional API: conv1d/2d/3d and conv_transpose1d/2d/3d.

Each function parses and validates its arguments into a
:class:`~pyconv._spec.ConvSpec` (:mod:`pyconv._spec`), maps dtypes onto
float32/float64 (:mod:`pyconv._dtypes`), applies a non-zero padding mode
(:mod:`pyconv._padding`) and hands the canonical problem to the backend the
registry picks (:mod:`pyconv._registry`).

.. autosummary::

   conv1d
   conv2d
   conv3d
   conv_transpose1d
   conv_transpose2d
   conv_transpose3d
"""

from __future__ import annotations

import functools
from math import prod
from typing import Any, Callable, NamedTuple, Optional, SupportsIndex, Tuple, cast, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _blocks, _dask, _registry, _spec
from ._blocks import converted_bytes, needs_blocks, run_blocked
from ._dtypes import DtypePlan, as_array, complex_bilinear, host_dtypes, plan_dtypes
from ._spec import ConvCall, ConvSpec, check_output_size, conv_call, conv_transpose_call
from ._typing import (BackendArray, DeviceArray, DeviceArrayT, IntOrSeq, Padding,
                      PaddingMode, Result, Shape)

__all__ = ["conv1d", "conv2d", "conv3d",
           "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


# ---------------------------------------------------------------------------
# execution, shared by the functional ops and pyconv.grad

class _Primitive(NamedTuple):
    """How the front layer calls one backend primitive.

    ``per_sample`` primitives (conv, conv_transpose) take ``(x, w, b, spec)``
    and return one result per batch entry; conv_weight takes ``(x, grad_out,
    spec)``, both operands batched, and sums over the batch into one weight.
    """

    name: str
    per_sample: bool

    def output_shape(self, spec: ConvSpec) -> Tuple[int, ...]:
        return spec.output_shape if self.per_sample else spec.weight_shape

    def __call__(self, impl: _registry.Backend, a: BackendArray, c: BackendArray,
                 b: Optional[BackendArray], spec: ConvSpec) -> BackendArray:
        fn = getattr(impl, self.name)
        return fn(a, c, b, spec) if self.per_sample else fn(a, c, spec)


PRIMITIVES = {p.name: p for p in (_Primitive("conv", True),
                                   _Primitive("conv_transpose", True),
                                   _Primitive("conv_weight", False))}


def zeros_for(shape: Tuple[int, ...], *operands: BackendArray) -> Result:
    """Zeros of ``shape`` in the result dtype of ``operands``, where the operands live."""
    device = _registry.device_owner(*operands)
    result = plan_dtypes(*operands, device=device)[0]
    if device is None:
        return np.zeros(shape, dtype=result)
    return cast(Result, _registry.load_backend(device).zeros(tuple(shape), result,
                                                              like=operands))


def _bias_shape(b: Optional[BackendArray]) -> Optional[Tuple[int, ...]]:
    return None if b is None else tuple(b.shape)


def _output_shape(p: _Primitive, call: ConvCall) -> Tuple[int, ...]:
    """The shape of the array the caller gets (unbatched when the input was)."""
    shape = p.output_shape(call.spec)
    return shape[1:] if call.unbatched and p.per_sample else shape


class _HostFront(NamedTuple):
    """What the front layer works out for a call on NumPy operands."""

    dtypes: DtypePlan           # (result, compute, is_complex)
    out_shape: Tuple[int, ...]  # the caller's result
    out_bytes: int
    block_bytes: int            # a converted copy's (see _blocks.converted_bytes)


@functools.lru_cache(maxsize=1024)
def _host_front(prim: str, call: ConvCall, dtypes: Tuple[np.dtype[Any], ...]) -> _HostFront:
    """:class:`_HostFront` of a call whose operands have ``dtypes``.

    Memoised: it depends on the call and the dtypes only, and a layer
    applied batch after batch asks for it with the same key at every call
    (working it out costs over a microsecond, a tenth of a small call).
    """
    plan = host_dtypes(dtypes)
    shape = _output_shape(PRIMITIVES[prim], call)
    return _HostFront(plan, shape, prod(shape) * plan[0].itemsize,
                      converted_bytes(call.spec, plan[1], plan[2]))


def run(prim: str, call: ConvCall, x: BackendArray, w: BackendArray,
        b: Optional[BackendArray] = None, backend: Optional[str] = None) -> Result:
    """Run primitive ``prim`` on validated operands; return the caller-facing array.

    ``x`` and ``w`` are the two operands of the bilinear primitive (for
    ``conv_weight``: the input and the output gradient), ``b`` an optional
    bias.  Handles dtypes, complex, unbatched inputs and padding modes, for
    NumPy operands and for a backend's device arrays alike: every operand
    goes through the chosen backend's placement hooks
    (:meth:`~pyconv._registry.Backend.asarray`, ``zeros``, ``pad``).
    """
    p = PRIMITIVES[prim]
    spec = call.spec
    if type(x) is np.ndarray and type(w) is np.ndarray and (b is None or type(b) is np.ndarray):
        device = None
        dtypes = (x.dtype, w.dtype) if b is None else (x.dtype, w.dtype, b.dtype)
        (result, compute, cplx), out_shape, nbytes, block_bytes = _host_front(prim, call, dtypes)
        limit = _spec._memory_bytes()   # (read at every call, as BLOCK_BYTES: tests lower them)
        if limit is not None and nbytes > limit:
            check_output_size(call.op, out_shape, result)   # raises, naming the output
        may_block = block_bytes > _blocks.BLOCK_BYTES
    else:
        device = _registry.device_owner(x, w, b)
        result, compute, cplx = plan_dtypes(x, w, b, device=device)
        out_shape = _output_shape(p, call)
        if device is None:
            check_output_size(call.op, out_shape, result)
        may_block = True
    impl = _registry.resolve(prim, spec, compute, backend, device=device)
    if call.empty or 0 in out_shape:
        return cast(Result, impl.zeros(out_shape, result, like=(x, w, b)))

    if call.unbatched:
        x = x.reshape((1,) + tuple(x.shape))
        if not p.per_sample:
            w = w.reshape((1,) + tuple(w.shape))
    if (device is None and may_block
            and needs_blocks(call, x, None if p.per_sample else w, compute, cplx)):
        y = run_blocked(prim, impl, call, x, w, b, compute, result, cplx, x.shape[2:])
        return cast(Result, y.reshape(out_shape))
    if call.prepad is not None:
        x = impl.pad(x, *call.prepad)
    if cplx and (np.iscomplexobj(x) or np.iscomplexobj(w)):
        y = complex_bilinear(lambda a, c: p(impl, a, c, None, spec), x, w, compute)
    else:
        y = p(impl, impl.asarray(x, compute), impl.asarray(w, compute),
              None if b is None or cplx else impl.asarray(b, compute), spec)
    if cplx and b is not None:  # a complex bias is added to the complex result
        y = y.astype(result)
        y += b.astype(result).reshape((1, -1) + (1,) * spec.nd)
    if y.dtype != result:
        y = y.astype(result)
    if call.unbatched and p.per_sample:
        y = y.reshape(tuple(y.shape[1:]))
    return cast(Result, y)


def _conv(op: str, nd: int, input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
          bias: ArrayLike | DeviceArray | None, stride: IntOrSeq, padding: Padding,
          dilation: IntOrSeq, groups: SupportsIndex, padding_mode: PaddingMode,
          backend: str | None) -> Result:
    if _dask.any_dask(input, weight, bias):
        return _dask.conv(op, nd, input, weight, bias, stride, padding, dilation, groups,
                          padding_mode, backend)
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    call = conv_call(op, nd, x.shape, w.shape, _bias_shape(b), stride, padding, dilation,
                     groups, padding_mode)
    return run("conv", call, x, w, b, backend)


def _conv_transpose(op: str, nd: int, input: ArrayLike | DeviceArray,
                    weight: ArrayLike | DeviceArray, bias: ArrayLike | DeviceArray | None,
                    stride: IntOrSeq, padding: IntOrSeq, output_padding: IntOrSeq,
                    groups: SupportsIndex, dilation: IntOrSeq, output_size: Shape | None,
                    backend: str | None) -> Result:
    if _dask.any_dask(input, weight, bias):
        return _dask.conv_transpose(op, nd, input, weight, bias, stride, padding,
                                    output_padding, groups, dilation, output_size, backend)
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    call = conv_transpose_call(op, nd, x.shape, w.shape, _bias_shape(b), stride, padding,
                               output_padding, groups, dilation, output_size)
    return run("conv_transpose", call, x, w, b, backend)


# ---------------------------------------------------------------------------
# the public functions
#
# The overloads are for type checkers only (pyconv._typing explains them): an
# operand that is a Dask or OpenCL array makes the result an array of its
# kind (the first such operand's type), NumPy array-likes make a NumPy array.

@overload
def conv1d(input: DeviceArrayT, weight: ArrayLike | DeviceArrayT,
           bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d(input: ArrayLike, weight: DeviceArrayT,
           bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d(input: ArrayLike, weight: ArrayLike, bias: DeviceArrayT, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv1d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
           stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
           groups: SupportsIndex = 1, *, padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> NDArray[Any]: ...
def conv1d(input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
           bias: ArrayLike | DeviceArray | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> Result:
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, backend)


@overload
def conv2d(input: DeviceArrayT, weight: ArrayLike | DeviceArrayT,
           bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d(input: ArrayLike, weight: DeviceArrayT,
           bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d(input: ArrayLike, weight: ArrayLike, bias: DeviceArrayT, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv2d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
           stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
           groups: SupportsIndex = 1, *, padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> NDArray[Any]: ...
def conv2d(input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
           bias: ArrayLike | DeviceArray | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> Result:
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, backend)


@overload
def conv3d(input: DeviceArrayT, weight: ArrayLike | DeviceArrayT,
           bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d(input: ArrayLike, weight: DeviceArrayT,
           bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d(input: ArrayLike, weight: ArrayLike, bias: DeviceArrayT, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv3d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
           stride: IntOrSeq = 1, padding: Padding = 0, dilation: IntOrSeq = 1,
           groups: SupportsIndex = 1, *, padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> NDArray[Any]: ...
def conv3d(input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
           bias: ArrayLike | DeviceArray | None = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: SupportsIndex = 1, *,
           padding_mode: PaddingMode = "zeros",
           backend: str | None = None) -> Result:
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups,
                 padding_mode, backend)


@overload
def conv_transpose1d(input: DeviceArrayT, weight: ArrayLike | DeviceArrayT,
                     bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d(input: ArrayLike, weight: DeviceArrayT,
                     bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d(input: ArrayLike, weight: ArrayLike, bias: DeviceArrayT,
                     stride: IntOrSeq = 1, padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose1d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
                     stride: IntOrSeq = 1, padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose1d(input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
                     bias: ArrayLike | DeviceArray | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> Result:
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, output_size, backend)


@overload
def conv_transpose2d(input: DeviceArrayT, weight: ArrayLike | DeviceArrayT,
                     bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d(input: ArrayLike, weight: DeviceArrayT,
                     bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d(input: ArrayLike, weight: ArrayLike, bias: DeviceArrayT,
                     stride: IntOrSeq = 1, padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose2d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
                     stride: IntOrSeq = 1, padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose2d(input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
                     bias: ArrayLike | DeviceArray | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> Result:
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, output_size, backend)


@overload
def conv_transpose3d(input: DeviceArrayT, weight: ArrayLike | DeviceArrayT,
                     bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d(input: ArrayLike, weight: DeviceArrayT,
                     bias: ArrayLike | DeviceArrayT | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d(input: ArrayLike, weight: ArrayLike, bias: DeviceArrayT,
                     stride: IntOrSeq = 1, padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> DeviceArrayT: ...
@overload
def conv_transpose3d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
                     stride: IntOrSeq = 1, padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> NDArray[Any]: ...
def conv_transpose3d(input: ArrayLike | DeviceArray, weight: ArrayLike | DeviceArray,
                     bias: ArrayLike | DeviceArray | None = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0,
                     groups: SupportsIndex = 1, dilation: IntOrSeq = 1, *,
                     output_size: Shape | None = None,
                     backend: str | None = None) -> Result:
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation, output_size, backend)


# ---------------------------------------------------------------------------
# docstrings (one template per family, filled in per dimensionality)

_SPATIAL = {1: ("L", "(L)"), 2: ("H, W", "(H, W)"), 3: ("D, H, W", "(D, H, W)")}

_CONV_EXAMPLES = {
    1: """    >>> import numpy as np
    >>> import pyconv
    >>> x = np.arange(10.0).reshape(1, 1, 10)       # (N, C_in, L)
    >>> w = np.array([[[1.0, 0.0, -1.0]]])          # (C_out, C_in, K)
    >>> pyconv.conv1d(x, w)
    array([[[-2., -2., -2., -2., -2., -2., -2., -2.]]])
    >>> pyconv.conv1d(x, w, stride=2, padding=1).shape
    (1, 1, 5)
    >>> pyconv.conv1d(x, np.ones((1, 1, 4)), padding="same")   # 1 zero before, 2 after
    array([[[ 3.,  6., 10., 14., 18., 22., 26., 30., 24., 17.]]])
    >>> pyconv.conv1d(x, w, padding=1, padding_mode="circular")[0, 0, :3]
    array([ 8., -2., -2.])""",
    2: """    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((2, 3, 5, 5))                   # (N, C_in, H, W)
    >>> w = np.ones((4, 3, 3, 3))                   # (C_out, C_in, kH, kW)
    >>> y = pyconv.conv2d(x, w, padding=1)
    >>> y.shape
    (2, 4, 5, 5)
    >>> y[0, 0]
    array([[12., 18., 18., 18., 12.],
           [18., 27., 27., 27., 18.],
           [18., 27., 27., 27., 18.],
           [18., 27., 27., 27., 18.],
           [12., 18., 18., 18., 12.]])
    >>> pyconv.conv2d(x[0], w, stride=2).shape            # unbatched (C_in, H, W)
    (4, 2, 2)""",
    3: """    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((1, 2, 4, 4, 4), dtype=np.float32)  # (N, C_in, D, H, W)
    >>> w = np.ones((2, 1, 3, 3, 3), dtype=np.float32)  # depthwise: groups = C_in
    >>> y = pyconv.conv3d(x, w, groups=2)
    >>> y.shape, y.dtype
    ((1, 2, 2, 2, 2), dtype('float32'))
    >>> float(y[0, 0, 0, 0, 0])
    27.0""",
}

_CONVT_EXAMPLES = {
    1: """    >>> import numpy as np
    >>> import pyconv
    >>> x = np.array([[[1.0, 2.0, 3.0]]])           # (N, C_in, L)
    >>> w = np.ones((1, 1, 2))                      # (C_in, C_out/groups, K)
    >>> pyconv.conv_transpose1d(x, w, stride=2)     # each input spreads over 2 outputs
    array([[[1., 1., 2., 2., 3., 3.]]])
    >>> pyconv.conv_transpose1d(x, np.ones((1, 1, 3)), stride=2, padding=1).shape
    (1, 1, 5)
    >>> pyconv.conv_transpose1d(x, np.ones((1, 1, 3)), stride=2, padding=1,
    ...                         output_padding=1).shape
    (1, 1, 6)""",
    2: """    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((1, 4, 8, 8))                   # (N, C_in, H, W)
    >>> w = np.ones((4, 2, 4, 4)) / 16              # (C_in, C_out/groups, kH, kW)
    >>> pyconv.conv_transpose2d(x, w, stride=2, padding=1).shape   # 2x upsampling
    (1, 2, 16, 16)
    >>> pyconv.conv_transpose2d(x, np.ones((4, 2, 3, 3)), stride=2, padding=1,
    ...                         output_size=(16, 16)).shape
    (1, 2, 16, 16)""",
    3: """    >>> import numpy as np
    >>> import pyconv
    >>> x = np.ones((2, 3, 3, 3), dtype=np.float32)  # unbatched (C_in, D, H, W)
    >>> w = np.ones((2, 4, 2, 2, 2), dtype=np.float32)
    >>> pyconv.conv_transpose3d(x, w, stride=2).shape
    (4, 6, 6, 6)""",
}

_COMMON_NOTES = """
    Inputs may be any array-like of bool, integer, float16/32/64 or complex
    dtype; the result dtype follows NumPy promotion of ``input``, ``weight``
    and ``bias`` (integers and bools compute as float64, float16 computes in
    float32 and is rounded once).  The caller's arrays are never modified.
    ``pyopencl.array.Array`` operands stay on the device (``opencl`` backend)
    and the result is a device array.
"""

_CONV_DOC = """{nd}-D convolution (cross-correlation) of ``input`` with ``weight``.

    Same semantics and positional order as ``torch.nn.functional.conv{nd}d``,
    on NumPy arrays.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, {sp})`` or unbatched ``(C_in, {sp})``.
    weight : array_like
        ``(C_out, C_in / groups, {ksp})``.
    bias : array_like, optional
        ``(C_out,)``, added to every output position.
    stride : int or sequence of int, default 1
        Step between output positions (one value, or one per spatial dim).
    padding : int, sequence of int, 'valid' or 'same', default 0
        Implicit padding on both sides of each spatial dim.  ``'valid'`` is
        no padding; ``'same'`` (stride 1 only) pads ``dilation * (K - 1)`` in
        total per dim, ``total // 2`` before and the rest after, so the
        output has the input's size.
    dilation : int or sequence of int, default 1
        Spacing between kernel taps.
    groups : int, default 1
        Split input and output channels into this many independent groups;
        ``C_in`` must equal ``weight.shape[1] * groups`` and ``C_out`` must be
        divisible by ``groups`` (``groups == C_in``: depthwise).
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        How the padded positions are filled (as the ``padding_mode`` of
        PyTorch's ``Conv{nd}d`` module).  ``'reflect'`` needs each pad smaller
        than the input size, ``'circular'`` at most the input size.
    backend : str, optional
        Run on this backend (``'reference'``, ``'cython'``, ``'opencl'`` or
        ``'auto'``) instead of the one in force (see :func:`pyconv.use_backend`).

    Returns
    -------
    ndarray
        ``(N, C_out, {osp})``, or ``(C_out, {osp})`` for an unbatched input.

    Raises
    ------
    ValueError
        Inconsistent shapes (input rank, channels vs ``weight`` and
        ``groups``, ``bias`` length, kernel larger than the padded input),
        non-positive ``stride``/``dilation``/``groups``, negative or
        malformed ``padding``, an invalid ``padding_mode`` or padding string.
    TypeError
        Non-integer arguments, or an unsupported dtype (object, str, ...).
    pyconv.BackendUnavailableError
        The backend asked for by name cannot run the call.

    See Also
    --------
    conv_transpose{nd}d : its adjoint (gradient with respect to the input).
    pyconv.Conv{nd}d : the module holding ``weight`` and ``bias``.

    Notes
    -----
    Per spatial dim, with input size ``S``, kernel size ``K``, stride ``s``,
    padding ``p``, dilation ``d``::

        O = floor((S + 2*p - d*(K - 1) - 1) / s) + 1

    and, with ``g = co // (C_out / groups)`` the group of output channel ``co``::

        y[n, co, o] = bias[co] + sum_{{c, k}} weight[co, c, k] * x[n, g*C_in/groups + c, o*s - p + k*d]

    where positions outside the input read zero (or the ``padding_mode``
    value).  The kernel is not flipped.
{notes}
    Examples
    --------
{examples}
"""

_CONVT_DOC = """{nd}-D transposed convolution ("deconvolution") of ``input`` with ``weight``.

    Same semantics and positional order as
    ``torch.nn.functional.conv_transpose{nd}d`` (note ``groups`` before
    ``dilation``), on NumPy arrays.  It is the adjoint of :func:`conv{nd}d`:
    the gradient of ``conv{nd}d`` with respect to its input.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, {sp})`` or unbatched ``(C_in, {sp})``.
    weight : array_like
        ``(C_in, C_out / groups, {ksp})``.
    bias : array_like, optional
        ``(C_out,)`` with ``C_out = weight.shape[1] * groups``.
    stride : int or sequence of int, default 1
        Spacing of the input positions in the output.
    padding : int or sequence of int, default 0
        Positions cropped from both ends of each spatial dim of the full
        output (``dilation * (K - 1) - padding`` implicit zero padding of
        the input in the equivalent direct convolution).
    output_padding : int or sequence of int, default 0
        Extra size added at the end of each spatial dim; must be smaller
        than the stride or the dilation of that dim.  It only selects the
        output shape: the added positions receive real contributions.
    groups : int, default 1
        Independent channel groups; ``C_in`` must be divisible by ``groups``.
    dilation : int or sequence of int, default 1
        Spacing between kernel taps.
    output_size : sequence of int, optional
        Requested spatial output size (leading batch/channel entries are
        ignored); sets ``output_padding``.  Each size must lie in
        ``[O_min, O_min + stride - 1]``, ``O_min`` being the size with
        ``output_padding=0``.
    backend : str, optional
        Run on this backend instead of the one in force.

    Returns
    -------
    ndarray
        ``(N, C_out, {osp})``, or ``(C_out, {osp})`` for an unbatched input.

    Raises
    ------
    ValueError
        Inconsistent shapes, non-positive ``stride``/``dilation``/``groups``,
        negative ``padding``/``output_padding``, ``output_padding`` not
        smaller than ``stride`` or ``dilation``, an unreachable
        ``output_size``, or an output size below 1.
    TypeError
        Non-integer arguments (including the strings ``'same'``/``'valid'``
        for ``padding``), or an unsupported dtype.
    pyconv.BackendUnavailableError
        The backend asked for by name cannot run the call.

    See Also
    --------
    conv{nd}d : the convolution this op is the adjoint of.
    pyconv.ConvTranspose{nd}d : the module holding ``weight`` and ``bias``.

    Notes
    -----
    Per spatial dim, with input size ``S``::

        O = (S - 1)*s - 2*p + d*(K - 1) + output_padding + 1

    Every input position ``i`` scatters into the output::

        y[n, g*C_out/groups + j, i*s - p + k*d] += x[n, ci, i] * weight[ci, j, k]

    (``g`` the group of input channel ``ci``), dropping targets outside
    ``[0, O)``; then ``bias`` is added.  No zeros are inserted between
    input positions.
{notes}
    Examples
    --------
{examples}
"""

_f: Callable[..., object]
for _nd, _f in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _sp, _osp = _SPATIAL[_nd]
    _f.__doc__ = _CONV_DOC.format(
        nd=_nd, sp=_sp, ksp=", ".join("k" + c for c in _sp.split(", ")),
        osp=", ".join(c + "_out" for c in _sp.split(", ")), notes=_COMMON_NOTES,
        examples=_CONV_EXAMPLES[_nd])
for _nd, _f in ((1, conv_transpose1d), (2, conv_transpose2d), (3, conv_transpose3d)):
    _sp, _osp = _SPATIAL[_nd]
    _f.__doc__ = _CONVT_DOC.format(
        nd=_nd, sp=_sp, ksp=", ".join("k" + c for c in _sp.split(", ")),
        osp=", ".join(c + "_out" for c in _sp.split(", ")), notes=_COMMON_NOTES,
        examples=_CONVT_EXAMPLES[_nd])
del _nd, _f, _sp, _osp
