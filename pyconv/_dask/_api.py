"""The Dask entry points: the functional ops and the gradients on Dask arrays.

Each function mirrors its in-memory twin in :mod:`pyconv.functional` or
:mod:`pyconv.grad` step by step: the operands are checked in the same
order (dtype, then shape) and the geometry is validated by the same front
layer (:func:`pyconv._spec.conv_call` / :func:`~pyconv._spec.conv_transpose_call`)
from the Dask arrays' shapes, so every ``ValueError``/``TypeError`` is the
in-memory one, raised while the graph is built.  Dask-only checks come
after: unknown (NaN) chunk sizes, a Dask weight chunked along an axis the
convolution sums over.

The backend is resolved once, when the graph is built (``backend=``, then
:func:`pyconv.use_backend`, :func:`pyconv.set_backend`, ``PYCONV_BACKEND``,
``auto``), on the geometry of the largest block, and every block runs on
it: a ``use_backend`` block around ``compute()`` does not change it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional, SupportsIndex

import numpy as np

from .. import _registry
from .._typing import IntOrSeq, Padding, PaddingMode, Shape
from .._dtypes import as_array, plan_dtypes
from .._spec import conv_call, conv_transpose_call
from ..grad import _check_grad_output, _expected, _size
from . import is_dask

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["conv", "conv_transpose", "conv_input", "conv_weight", "convt_input",
           "convt_weight"]


def _da():
    import dask.array as da

    return da


def _operand(value, name, op):
    """A Dask array checked without computing it (dtype, known chunks), else ``as_array``."""
    if not is_dask(value):
        return as_array(value, name)
    da = _da()
    if not isinstance(value, da.Array):
        raise TypeError(f"{op}(): {name} is a Dask {type(value).__name__}; pyconv accepts "
                        "dask.array.Array (for example dask.array.asarray(...) of it)")
    as_array(np.empty(0, dtype=value.dtype), name)
    if any(c != c for chunks in value.chunks for c in chunks):
        raise ValueError(f"{op}(): {name} has unknown (NaN) chunk sizes, shape "
                         f"{value.shape}; call {name}.compute_chunk_sizes() first")
    return value


def _as_dask(a):
    """A NumPy operand as a one-chunk Dask array (the other operand is the Dask one)."""
    da = _da()
    if isinstance(a, da.Array):
        return a
    return da.from_array(a, chunks=tuple(max(1, n) for n in a.shape))


def _one_chunk(a):
    """A weight or bias for the graph: NumPy (or None) as is, a Dask array as one chunk."""
    if isinstance(a, _da().Array) and a.numblocks != (1,) * a.ndim:
        return a.rechunk(a.shape)
    return a


def _check_weight_chunks(op, prim, w):
    """A Dask weight must be one chunk along the axes ``prim`` sums over.

    Those are axis 1 and the kernel axes for a convolution, axis 0 and the
    kernel axes for a transposed one; the remaining axis may be chunked.
    """
    if not isinstance(w, _da().Array):
        return
    axes = tuple(range(1, w.ndim)) if prim == "conv" else (0,) + tuple(range(2, w.ndim))
    chunked = [ax for ax in axes if len(w.chunks[ax]) > 1]
    if chunked:
        hint = ", ".join(f"{ax}: -1" for ax in chunked)
        raise ValueError(
            f"{op}(): a Dask weight must be one chunk along the axes the convolution sums "
            f"over (axes {list(axes)} of the weight), got weight chunks {w.chunks}; "
            f"rechunk it first, e.g. weight.rechunk({{{hint}}})")


def _backend(prim, spec, compute, backend):
    """The concrete backend name every block runs on (errors raised now)."""
    return _registry.resolve(prim, spec, compute, backend).name


def _out_shape(call, prim):
    shape = call.spec.weight_shape if prim == "conv_weight" else call.spec.output_shape
    return shape[1:] if call.unbatched and prim != "conv_weight" else shape


def _zeros(shape, dtype):
    return _da().zeros(shape, dtype=dtype, chunks=tuple(max(1, n) for n in shape))


def _batched(a, call):
    return a[None] if call.unbatched else a


def _forward(prim, call, x, w, b, backend):
    """conv / conv_transpose of a Dask ``x`` with a validated ``call``."""
    from . import _graph

    spec = call.spec
    result, compute, _ = plan_dtypes(x, w, b)
    if call.empty or 0 in spec.output_shape:
        _backend(prim, spec, compute, backend)
        return _zeros(_out_shape(call, prim), result)
    w, b = _one_chunk(w), _one_chunk(b)
    xb = _batched(_as_dask(x), call)
    mode, pads = call.prepad if call.prepad is not None else ("zeros", None)
    axes = _graph.forward_blocks(xb, spec, mode, pads)
    name = _backend(prim, _graph.largest_block_spec(spec, axes), compute, backend)
    y = _graph.blocked(call.op, prim, xb, w, b, spec, axes, result, name)
    return y[0] if call.unbatched else y


def _weight(call, x, gy, backend):
    """The conv_weight primitive: ``x`` gathered, ``gy`` (Dask) defining the blocks."""
    from . import _graph

    spec = call.spec
    result, compute, _ = plan_dtypes(x, gy)
    xb, gyb = _batched(_as_dask(x), call), _batched(_as_dask(gy), call)
    gyb = gyb.rechunk((tuple(c for c in gyb.chunks[0] if c), -1)
                      + tuple(tuple(c for c in ch if c) for ch in gyb.chunks[2:]))
    axes = _graph.weight_blocks(gyb, spec, tuple(xb.shape[2:]))
    name = _backend("conv_weight", _graph.largest_block_spec(spec, axes), compute, backend)
    return _graph.reduced_weight(call.op, xb, gyb, spec, axes, result, name)


def _conj(a):
    return a.conj() if np.iscomplexobj(np.empty(0, dtype=a.dtype)) else a


# ---------------------------------------------------------------------------
# the functional ops

def conv(op: str, nd: int, input: Any, weight: Any, bias: Any, stride: IntOrSeq,
         padding: Padding, dilation: IntOrSeq, groups: SupportsIndex,
         padding_mode: PaddingMode, backend: Optional[str]) -> da.Array:
    x = _operand(input, "input", op)
    w = _operand(weight, "weight", op)
    b = None if bias is None else _operand(bias, "bias", op)
    call = conv_call(op, nd, x.shape, w.shape, None if b is None else tuple(b.shape), stride,
                     padding, dilation, groups, padding_mode)
    _check_weight_chunks(op, "conv", w)
    return _forward("conv", call, x, w, b, backend)


def conv_transpose(op: str, nd: int, input: Any, weight: Any, bias: Any, stride: IntOrSeq,
                   padding: IntOrSeq, output_padding: IntOrSeq, groups: SupportsIndex,
                   dilation: IntOrSeq, output_size: Optional[Shape],
                   backend: Optional[str]) -> da.Array:
    x = _operand(input, "input", op)
    w = _operand(weight, "weight", op)
    b = None if bias is None else _operand(bias, "bias", op)
    call = conv_transpose_call(op, nd, x.shape, w.shape, None if b is None else tuple(b.shape),
                               stride, padding, output_padding, groups, dilation, output_size)
    _check_weight_chunks(op, "conv_transpose", w)
    return _forward("conv_transpose", call, x, w, b, backend)


# ---------------------------------------------------------------------------
# pyconv.grad

def conv_input(op, nd, input_size, weight, grad_output, stride, padding, dilation, groups,
               backend):
    w = _operand(weight, "weight", op)
    gy = _operand(grad_output, "grad_output", op)
    size = _size(input_size, "input_size", op, nd)
    call = conv_call(op, nd, size, w.shape, None, stride, padding, dilation, groups)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    _check_weight_chunks(op, "conv_transpose", w)
    tcall = replace(call, spec=call.spec.as_transposed())
    return _forward("conv_transpose", tcall, gy, _conj(w), None, backend)


def conv_weight(op, nd, input, weight_size, grad_output, stride, padding, dilation, groups,
                backend):
    x = _operand(input, "input", op)
    gy = _operand(grad_output, "grad_output", op)
    size = _size(weight_size, "weight_size", op)
    call = conv_call(op, nd, x.shape, size, None, stride, padding, dilation, groups)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    if call.empty:
        return _zeros(size, plan_dtypes(x, gy)[0])
    return _weight(call, _conj(x), gy, backend)


def convt_input(op, nd, input_size, weight, grad_output, stride, padding, output_padding,
                groups, dilation, backend):
    w = _operand(weight, "weight", op)
    gy = _operand(grad_output, "grad_output", op)
    size = _size(input_size, "input_size", op, nd)
    call = conv_transpose_call(op, nd, size, w.shape, None, stride, padding, output_padding,
                               groups, dilation)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    _check_weight_chunks(op, "conv", w)
    return _forward("conv", replace(call, spec=call.spec.as_conv()), gy, _conj(w), None,
                    backend)


def convt_weight(op, nd, input, weight_size, grad_output, stride, padding, output_padding,
                 groups, dilation, backend):
    x = _operand(input, "input", op)
    gy = _operand(grad_output, "grad_output", op)
    size = _size(weight_size, "weight_size", op)
    call = conv_transpose_call(op, nd, x.shape, size, None, stride, padding, output_padding,
                               groups, dilation)
    _check_grad_output(op, gy, _expected(call, call.spec.output_shape))
    if call.empty:
        return _zeros(size, plan_dtypes(x, gy)[0])
    # the conv_weight primitive of the adjoint convolution (see pyconv.grad): its
    # input is grad_output (gathered) and its output gradient is x (the blocks)
    return _weight(replace(call, spec=call.spec.as_conv()), gy, _conj(x), backend)
