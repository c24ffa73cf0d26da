"""Bounded memory for calls whose input must be converted before a backend takes it.

A backend computes on C-contiguous float32/float64 arrays with zero padding.
Some calls need a converted copy of their input first: a ``padding_mode``
other than zeros (the padded input), float16 or integer inputs (computed in
float32/float64), a float32 input promoted to float64 by its weight, a
non-contiguous or byte-swapped array, complex operands (their real and
imaginary parts).  Made whole, that copy costs as much memory as the input
again (twice for float16, three times for complex).

Such calls run in *blocks* instead, each converting only the part of the
input it reads, so that the extra memory stays about :data:`BLOCK_BYTES`
(plus the backend's own bounded workspace) whatever the input size:

* along the batch: a block is a run of whole samples;
* when one sample alone is too large, also along the first spatial axis of
  the output: a block is a slab of output rows, and it reads exactly the
  input window those rows need (the halo of the kernel, the stride), with
  the padding modes applied at the array's global borders only and the
  zero padding given to the block's own call.  Transposed convolutions
  gather the input window that reaches each slab (:mod:`pyconv._windows`
  has the index arithmetic, shared with the Dask support);
* a weight gradient sums the blocks' partial gradients, in block order.

Each block is an ordinary call of the backend's primitive with its own
:class:`~pyconv._spec.ConvSpec`; its result is written into the output (or
added to the weight gradient).  The cutting depends on the call's shapes and
dtypes only, so results stay deterministic; they may round differently from
an uncut call (another order of the same sums), within pyconv's tolerances.
Calls that need no conversion (the common case) are not cut.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

from . import _windows
from ._dtypes import complex_bilinear
from ._spec import ConvCall, ConvSpec, IntTuple, Pads
from ._typing import BackendArray

if TYPE_CHECKING:
    from ._registry import Backend

#: What a block reads on the slab axis (None: the whole axis) and the
#: padding of the other axes.
Window = Tuple[Optional[_windows.AxisBlock], Pads]
Index = Tuple[slice, ...]

__all__ = ["BLOCK_BYTES", "converted_bytes", "needs_blocks", "run_blocked"]

#: About the memory one block's converted operands and result take.
BLOCK_BYTES = 16 << 20


def _converted(a: NDArray[Any], compute: np.dtype[Any]) -> bool:
    """Whether a backend could not take ``a`` as it is."""
    return a.dtype != compute or not a.flags.c_contiguous


def needs_blocks(call: ConvCall, x: NDArray[Any], grad_out: Optional[NDArray[Any]],
                 compute: np.dtype[Any], cplx: bool) -> bool:
    """Whether the call would make a converted copy of its input larger than a block.

    ``x`` is the batched input; ``grad_out`` the batched output gradient of
    a conv_weight call (its conversion counts too), else None.
    """
    converted = (call.prepad is not None or cplx or _converted(x, compute)
                 or (grad_out is not None and _converted(grad_out, compute)))
    if not converted:
        return False
    return converted_bytes(call.spec, compute, cplx) > BLOCK_BYTES


def converted_bytes(spec: ConvSpec, compute: np.dtype[Any], cplx: bool) -> int:
    """Bytes a converted copy of a call's input and its result would take.

    At most :data:`BLOCK_BYTES`: the call never runs in blocks.
    """
    return _sample_bytes(spec, np.dtype(compute), cplx) * spec.batch


def _sample_bytes(spec: ConvSpec, compute: np.dtype[Any], cplx: bool) -> int:
    """Bytes one sample's converted input and its result take during a block."""
    factor = 3 if cplx else 1  # complex: the parts, and the real results
    per_in = spec.in_channels * prod(spec.in_size) * compute.itemsize
    per_out = spec.out_channels * prod(spec.out_size) * compute.itemsize
    return factor * (per_in + per_out)


def _spatial_axis(spec: ConvSpec) -> int:
    """The spatial axis slabs are cut along: the first with more than one output."""
    for d, o in enumerate(spec.out_size):
        if o > 1:
            return d
    return 0


def _slabs(n: int, parts: int) -> List[int]:
    """Boundaries of ``parts`` near-equal ranges of ``[0, n)``."""
    parts = max(1, min(n, parts))
    return [n * i // parts for i in range(parts + 1)]


def _plan(spec: ConvSpec, compute: np.dtype[Any],
          cplx: bool) -> Tuple[List[int], Optional[List[int]], int]:
    """(batch boundaries, output-slab boundaries or None, slab axis)."""
    per_sample = _sample_bytes(spec, compute, cplx)
    per_block = max(1, BLOCK_BYTES // max(1, per_sample))
    batch = _slabs(spec.batch, -(-spec.batch // per_block))
    if per_sample <= BLOCK_BYTES:
        return batch, None, 0
    axis = _spatial_axis(spec)
    rows = spec.out_size[axis]
    return batch, _slabs(rows, -(-per_sample // BLOCK_BYTES)), axis


def run_blocked(prim: str, impl: Backend, call: ConvCall, x: NDArray[Any], w: NDArray[Any],
                b: Optional[NDArray[Any]], compute: np.dtype[Any], result: np.dtype[Any],
                cplx: bool, source_size: IntTuple) -> NDArray[Any]:
    """Run ``prim`` block by block (the module docstring); return the full result.

    ``x`` is the batched caller's input (unconverted, unpadded: ``source_size``
    is its spatial size), ``w`` the weight (conv, conv_transpose) or the
    batched output gradient (conv_weight), ``b`` the bias or None.
    """
    spec = call.spec
    compute = np.dtype(compute)
    batch, slabs, axis = _plan(spec, compute, cplx)
    mode = call.prepad[0] if call.prepad is not None else "zeros"
    pads = call.prepad[1] if call.prepad is not None else spec.padding
    if prim == "conv_weight":
        out = np.zeros(spec.weight_shape, dtype=np.result_type(compute, result))
    else:
        out = np.empty(spec.output_shape, dtype=result)
    for n0, n1 in zip(batch[:-1], batch[1:]):
        for sub, window, grad_slice, out_slice in _blocks(spec, mode, pads, source_size, axis,
                                                           slabs, n0, n1, prim):
            xb = _window(x, n0, n1, axis, window, mode, pads, source_size, spec.stride)
            if sub is None or xb is None:  # a transposed slab no input reaches: the bias alone
                out[out_slice] = 0 if b is None else b.astype(result).reshape(
                    (1, -1) + (1,) * spec.nd)
            elif prim == "conv_weight":
                gyb = w[(slice(n0, n1), slice(None)) + grad_slice]
                out += _call(impl, prim, sub, xb, gyb, None, compute, cplx)
            else:
                out[out_slice] = _call(impl, prim, sub, xb, w, b, compute, cplx)
    return out.astype(result, copy=False)


def _blocks(spec: ConvSpec, mode: str, pads: Pads, source_size: IntTuple, axis: int,
            slabs: Optional[List[int]], n0: int, n1: int, prim: str
            ) -> Iterator[Tuple[Optional[ConvSpec], Optional[Window], Index, Index]]:
    """Per block of the batch run ``[n0, n1)``: (sub-spec, window, grad slice, out slice).

    ``window`` is None for a transposed slab no input reaches, else
    ``(AxisBlock or None, padding of the other axes)``.
    """
    nd = spec.nd
    lead = (slice(n0, n1), slice(None))
    whole = tuple(slice(None) for _ in range(nd))
    in_size = tuple(source_size)
    if slabs is None:  # whole samples: the window is the input, padded as the call says
        sub = _sub_spec(spec, n1 - n0, None, axis, mode, pads, in_size)
        yield sub, (None, pads), whole, lead + whole
        return
    k, s, d, lo = (spec.kernel_size[axis], spec.stride[axis], spec.dilation[axis],
                   pads[axis][0])
    if spec.transposed:
        blocks = _windows.transposed_axis(slabs, in_size[axis], k, s, d, lo)
    else:
        blocks = _windows.conv_axis(slabs, in_size[axis], k, s, d, lo, mode)
    for blk in blocks:
        rows = tuple(slice(blk.start, blk.stop) if a == axis else slice(None)
                     for a in range(nd))
        if blk.kind == "none":
            yield None, None, rows, lead + rows
            continue
        sub = _sub_spec(spec, n1 - n0, blk, axis, mode, pads, in_size)
        yield sub, (blk, pads), rows, lead + rows


def _sub_spec(spec: ConvSpec, batch: int, blk: Optional[_windows.AxisBlock], axis: int,
              mode: str, pads: Pads, in_size: IntTuple) -> ConvSpec:
    """The ConvSpec of one block: its batch, and on ``axis`` its window and output rows."""
    nd = spec.nd
    sizes, out, padding = list(in_size), list(spec.out_size), list(spec.padding)
    if mode != "zeros":  # the window arrives padded by the mode on every axis
        sizes = [n + lo + hi for n, (lo, hi) in zip(in_size, pads)]
        padding = [(0, 0)] * nd
    if blk is not None:
        sizes[axis] = blk.in_len
        out[axis] = blk.stop - blk.start
        padding[axis] = blk.pad if mode == "zeros" else (0, 0)
    return ConvSpec(spec.transposed, batch, spec.in_channels, spec.out_channels, spec.groups,
                    tuple(sizes), tuple(out), spec.kernel_size, spec.stride, tuple(padding),
                    spec.dilation)


def _along(axis: int, nd: int, start: int, stop: int) -> Index:
    """Index of ``[start, stop)`` along spatial ``axis`` of a batched array."""
    return (slice(None), slice(None)) + tuple(
        slice(start, stop) if a == axis else slice(None) for a in range(nd))


def _window(x: NDArray[Any], n0: int, n1: int, axis: int, window: Optional[Window], mode: str,
            pads: Pads, source_size: IntTuple, stride: IntTuple) -> Optional[NDArray[Any]]:
    """The input a block reads (a view, or one copy of just the window; not yet converted)."""
    if window is None:
        return None
    blk, _ = window
    nd = len(source_size)
    xb = x[n0:n1]
    if mode != "zeros":
        # one gather: every axis mapped through the mode at the global borders (the
        # slab axis only over the block's window: padded positions o0*s onwards)
        index = []
        for a, (n, (lo, hi)) in enumerate(zip(source_size, pads)):
            pos = np.arange(-lo, n + hi)
            if blk is not None and a == axis:
                first = blk.start * stride[a]
                pos = pos[first:first + blk.in_len]
            index.append(_windows.source_index(pos, n, mode))
        return xb[(slice(None), slice(None)) + np.ix_(*index)]
    if blk is None:
        return xb
    if blk.kind == "zeros":  # the window lies in the zero padding
        shape = list(xb.shape)
        shape[2 + axis] = blk.in_len
        return np.zeros(shape, dtype=x.dtype)
    parts = [xb[_along(axis, nd, r0, r1)] for r0, r1 in blk.runs]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2 + axis)


def _call(impl: Backend, prim: str, sub: ConvSpec, xb: NDArray[Any], w: NDArray[Any],
          b: Optional[NDArray[Any]], compute: np.dtype[Any], cplx: bool) -> BackendArray:
    """One block through the backend, converting only the block's operands."""
    fn = getattr(impl, prim)

    def real(a: NDArray[Any], c: NDArray[Any]) -> BackendArray:
        return fn(a, c, sub) if prim == "conv_weight" else fn(a, c, None, sub)

    if cplx and (np.iscomplexobj(xb) or np.iscomplexobj(w)):
        y = complex_bilinear(real, xb, w, compute)
        if b is not None:
            y += b.astype(y.dtype).reshape((1, -1) + (1,) * sub.nd)
        return y
    xc, wc = impl.asarray(xb, compute), impl.asarray(w, compute)
    if prim == "conv_weight":
        return fn(xc, wc, sub)
    if cplx and b is not None:  # only the bias is complex
        y = fn(xc, wc, None, sub)
        return y + b.reshape((1, -1) + (1,) * sub.nd)
    return fn(xc, wc, None if b is None else impl.asarray(b, compute), sub)
