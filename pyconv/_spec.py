"""ConvSpec: the validated geometry of one convolution call.

The front layer (:mod:`pyconv.functional`, :mod:`pyconv.grad`) parses and
validates the user's arguments once and condenses them into a
:class:`ConvSpec`.  Backends receive nothing else: a batched, contiguous,
float32/float64 problem with explicit per-side zero padding.

Index conventions shared by every backend (``nd`` spatial dims, per dim):

* **conv** (``transposed=False``), gather form::

      y[n, co, o] = b[co] + sum_{c, k} w[co, c, k] * x[n, g*cin_g + c, o*s - lo + k*d]

  where ``g = co // cout_g`` and out-of-range input positions read as zero.
* **conv_transpose** (``transposed=True``), scatter form::

      y[n, g*cout_g + j, i*s - lo + k*d] += x[n, ci, i] * w[ci, j, k]

  with ``g = ci // cin_g``; targets outside ``[0, out_size)`` are dropped.
* **conv_weight** (a conv spec, ``transposed=False``)::

      gw[co, c, k] = sum_{n, o} gy[n, co, o] * x[n, g*cin_g + c, o*s - lo + k*d]

``lo`` is ``padding[i][0]``.  ``padding[i][1]`` (``hi``) is implied by the
sizes and is given for completeness: for conv,
``out = (in + lo + hi - d*(K-1) - 1) // s + 1``; for conv_transpose,
``out = (in - 1)*s - lo - hi + d*(K-1) + 1`` (so ``hi = p - output_padding``,
which may be negative).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import numpy as np
from numpy.typing import DTypeLike

from ._typing import IntOrSeq, Padding, Shape

if TYPE_CHECKING:
    from typing import SupportsIndex, TypeGuard

IntTuple = Tuple[int, ...]
#: Per spatial dim, ``(lo, hi)``.
Pads = Tuple[Tuple[int, int], ...]


@dataclass(frozen=True)
class ConvSpec:
    """Geometry of one batched N-d convolution, validated by the front layer.

    Attributes
    ----------
    transposed : bool
        False for conv (and conv_weight), True for conv_transpose.
    batch : int
        N, the batch size (may be 0).
    in_channels, out_channels : int
        Channel counts of the op's input and output.
    groups : int
        Number of channel groups.
    in_size, out_size : tuple of int
        Spatial sizes of the op's input and output.
    kernel_size, stride, dilation : tuple of int
        Per spatial dimension.
    padding : tuple of (int, int)
        Per spatial dimension ``(lo, hi)``: zeros before and after the
        input (conv) or positions cropped before and after the full
        output (conv_transpose).
    """

    transposed: bool
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: IntTuple
    out_size: IntTuple
    kernel_size: IntTuple
    stride: IntTuple
    padding: Pads
    dilation: IntTuple

    def __hash__(self) -> int:
        # computed once: a spec is a key of several memo tables at every call
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.transposed, self.batch, self.in_channels, self.out_channels,
                      self.groups, self.in_size, self.out_size, self.kernel_size,
                      self.stride, self.padding, self.dilation))
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def nd(self) -> int:
        """Number of spatial dimensions (1, 2 or 3)."""
        return len(self.kernel_size)

    @property
    def pad_lo(self) -> IntTuple:
        """Leading padding per spatial dim (the only one the index maps need)."""
        return tuple(lo for lo, _ in self.padding)

    @property
    def input_shape(self) -> IntTuple:
        return (self.batch, self.in_channels) + tuple(self.in_size)

    @functools.cached_property
    def output_shape(self) -> IntTuple:
        return (self.batch, self.out_channels) + tuple(self.out_size)

    @property
    def weight_shape(self) -> IntTuple:
        g = self.groups
        if self.transposed:
            return (self.in_channels, self.out_channels // g) + tuple(self.kernel_size)
        return (self.out_channels, self.in_channels // g) + tuple(self.kernel_size)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of the op (same for all three primitives)."""
        if self.transposed:
            cols = prod(self.in_size)
            per = self.out_channels // self.groups
            return 2 * self.batch * self.in_channels * per * cols * prod(self.kernel_size)
        cols = prod(self.out_size)
        per = self.in_channels // self.groups
        return 2 * self.batch * self.out_channels * per * cols * prod(self.kernel_size)

    def as_conv(self) -> "ConvSpec":
        """The conv spec whose input-gradient this transposed spec computes.

        A transposed spec maps "columns" (its input) to an "image" (its
        output); the returned conv spec maps the same image back to the
        columns, with the same kernel, stride, dilation, groups and padding.
        """
        if not self.transposed:
            return self
        return ConvSpec(False, self.batch, self.out_channels, self.in_channels,
                        self.groups, self.out_size, self.in_size, self.kernel_size,
                        self.stride, self.padding, self.dilation)

    def as_transposed(self) -> "ConvSpec":
        """The transposed spec that is the adjoint of this conv spec."""
        if self.transposed:
            return self
        # The floor in the conv size formula may leave r trailing input
        # positions unread; the transposed op regrows them as output_padding.
        padding = tuple(
            (lo, (c - 1) * s - lo + d * (k - 1) + 1 - i)
            for (lo, _), c, s, d, k, i in zip(self.padding, self.out_size, self.stride,
                                            self.dilation, self.kernel_size, self.in_size))
        return ConvSpec(True, self.batch, self.out_channels, self.in_channels,
                        self.groups, self.out_size, self.in_size, self.kernel_size,
                        self.stride, padding, self.dilation)


# ---------------------------------------------------------------------------
# Argument parsing and validation (the shared front layer).
#
# Checks run in PyTorch's order (docs/semantics.rst, "Validation"), so that a call with
# several problems reports the same first one; every failure is a
# ValueError/TypeError naming the argument and the values involved, raised
# before any backend runs.

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

#: Largest stride/padding/dilation/output_padding accepted: far beyond any
#: array that fits in memory, and small enough that every size and index the
#: backends derive from it stays well inside int64.
MAX_PARAM = 2**40


def _shape_str(shape: Shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _sizes_str(sizes: Shape) -> str:
    return "(" + " x ".join(str(int(s)) for s in sizes) + ")"


def _is_int(v: object) -> TypeGuard[SupportsIndex]:
    if isinstance(v, (bool, np.bool_)):
        return False
    try:
        operator.index(v)  # type: ignore[arg-type]  # the question asked
    except TypeError:
        return False
    return True


def parse_groups(groups: object, op: str) -> int:
    if not _is_int(groups):
        raise TypeError(f"{op}(): groups must be an int, got {type(groups).__name__} {groups!r}")
    value = operator.index(groups)
    if value <= 0:
        raise ValueError(f"{op}(): groups must be a positive integer, got groups={value}")
    return value


def int_list(value: object, name: str, op: str,
             what: str = "an int or a sequence of ints") -> list[int]:
    """A sequence of ints (anything with ``__index__``, not bool) as a list of int."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{op}(): {name} must be {what}, got {type(value).__name__} {value!r}")
    items = list(value)
    for pos, item in enumerate(items):
        if not _is_int(item):
            raise TypeError(f"{op}(): {name} must contain only ints, got "
                            f"{type(item).__name__} {item!r} at position {pos}")
    return [operator.index(i) for i in items]


def parse_ints(value: object, name: str, nd: int, op: str) -> IntTuple:
    """An int or a sequence of ints -> an nd-tuple (a 1-sequence broadcasts)."""
    if _is_int(value):
        return (operator.index(value),) * nd
    items = int_list(value, name, op)
    if len(items) == 1:
        return (items[0],) * nd
    if len(items) != nd:
        raise ValueError(
            f"{op}(): {name} must be a single int or a list of {nd} ints (one per spatial "
            f"dimension of the weight), got {name}={_shape_str(items)}")
    return tuple(items)


def same_padding(kernel_size: IntTuple, dilation: IntTuple) -> Pads:
    """PyTorch's split of padding='same': the odd element goes after."""
    pads = []
    for k, d in zip(kernel_size, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


@dataclass(frozen=True)
class ConvCall:
    """Everything the front layer learned from one call's arguments."""

    #: the public function's name, for messages (``"conv2d"``, ``"conv1d_input"``...)
    op: str
    spec: ConvSpec
    unbatched: bool
    #: padding_mode other than zeros: (mode, per-dim (lo, hi)) to apply to the
    #: input before the backend runs a zero-padding-free conv.
    prepad: Optional[Tuple[str, Pads]] = None

    def __hash__(self) -> int:
        # computed once, as ConvSpec's: a call is the key of the front layer's memo
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.op, self.spec, self.unbatched, self.prepad))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> Dict[str, object]:
        # not the kept hash: a string's hash differs from process to process
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @property
    def empty(self) -> bool:
        """No work to do: empty batch, or a zero-channel input/output."""
        s = self.spec
        return s.batch == 0 or s.in_channels == 0 or s.out_channels == 0


@functools.lru_cache(maxsize=None)
def _memory_bytes() -> Optional[int]:
    """This machine's physical memory in bytes (None where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _bytes_str(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_output_size(op: str, shape: Shape, dtype: DTypeLike) -> None:
    """Raise ValueError when a result of ``shape`` and ``dtype`` cannot fit in memory.

    Checked before any work, so that an impossible call names its output
    instead of failing with a ``MemoryError`` (or worse) from inside.
    """
    nbytes = prod(map(int, shape)) * np.dtype(dtype).itemsize
    limit = _memory_bytes()
    if limit is not None and nbytes > limit:
        raise ValueError(
            f"{op}(): the output of shape {_shape_str(shape)} ({np.dtype(dtype).name}) would "
            f"need {_bytes_str(nbytes)}, more than this machine's {_bytes_str(limit)} of "
            "memory")


def _check_rank(op: str, nd_op: int, x_shape: IntTuple) -> bool:
    """Validate the input rank for the op; return True for an unbatched input."""
    if len(x_shape) not in (nd_op + 1, nd_op + 2):
        raise ValueError(
            f"{op}(): input must be {nd_op + 1}-D (unbatched) or {nd_op + 2}-D (batched), "
            f"got input of shape {_shape_str(x_shape)}")
    return len(x_shape) == nd_op + 1


def _check_weight_rank(op: str, w_shape: IntTuple) -> int:
    if len(w_shape) < 3:
        raise ValueError(
            f"{op}(): weight must have at least 3 dimensions (channels, channels, *kernel), "
            f"got weight of shape {_shape_str(w_shape)}")
    return len(w_shape) - 2


def _check_common(op: str, x_shape: IntTuple, w_shape: IntTuple, padding: IntTuple,
                  stride: IntTuple, dilation: IntTuple, groups: int,
                  output_padding: Optional[IntTuple] = None) -> None:
    """Sign checks, weight/input rank agreement and groups vs weight.shape[0]."""
    for name, values in (("stride", stride), ("padding", padding), ("dilation", dilation),
                         ("output_padding", output_padding or ())):
        if any(abs(v) > MAX_PARAM for v in values):
            raise ValueError(f"{op}(): {name}={values} is out of range (|value| <= 2**40)")
    if any(p < 0 for p in padding):
        raise ValueError(f"{op}(): negative padding is not supported, got padding={padding}")
    if output_padding is not None and any(p < 0 for p in output_padding):
        raise ValueError(f"{op}(): negative output_padding is not supported, "
                         f"got output_padding={output_padding}")
    if any(s <= 0 for s in stride):
        raise ValueError(f"{op}(): stride must be positive, got stride={stride}")
    if any(d <= 0 for d in dilation):
        raise ValueError(f"{op}(): dilation should be greater than zero, got dilation={dilation}")
    if len(w_shape) != len(x_shape):
        raise ValueError(
            f"{op}(): a {len(w_shape)}-D weight {_shape_str(w_shape)} needs a "
            f"{len(w_shape)}-D (batched) input, got {len(x_shape)}-D input of shape "
            f"{_shape_str(x_shape)}")
    if w_shape[0] < groups:
        raise ValueError(
            f"{op}(): with groups={groups}, weight.shape[0] must be at least {groups}, "
            f"got weight of shape {_shape_str(w_shape)}")
    if w_shape[0] % groups:
        raise ValueError(
            f"{op}(): with groups={groups}, weight.shape[0] must be divisible by {groups}, "
            f"got weight of shape {_shape_str(w_shape)}")


def _check_bias(op: str, b_shape: Optional[IntTuple], w_shape: IntTuple,
                expected: int) -> None:
    if b_shape is not None and (len(b_shape) != 1 or b_shape[0] != expected):
        raise ValueError(
            f"{op}(): with weight of shape {_shape_str(w_shape)}, bias must be 1-D with "
            f"{expected} elements, got bias of shape {_shape_str(b_shape)}")


def _check_kernel_positive(op: str, kernel: IntTuple) -> None:
    if any(k <= 0 for k in kernel):
        raise ValueError(f"{op}(): kernel size should be greater than zero, "
                         f"got weight spatial shape {tuple(kernel)}")


def _conv_call(op: str, nd_op: int, x_shape: IntTuple, w_shape: IntTuple,
               b_shape: Optional[IntTuple], stride: IntOrSeq, padding: Padding,
               dilation: IntOrSeq, groups: object, padding_mode: str = "zeros") -> ConvCall:
    """Validate a conv{nd_op}d call and return its batched geometry."""
    from ._padding import mode_pads

    unbatched = _check_rank(op, nd_op, x_shape)
    xb = (1,) + tuple(x_shape) if unbatched else tuple(x_shape)
    if not isinstance(padding_mode, str) or padding_mode not in _PADDING_MODES:
        raise ValueError(f"{op}(): padding_mode must be one of {_PADDING_MODES}, "
                         f"got padding_mode={padding_mode!r}")
    if isinstance(padding, str) and padding not in ("same", "valid"):
        raise ValueError(f"{op}(): invalid padding string {padding!r}, "
                         "expected 'same', 'valid' or ints")
    nd = _check_weight_rank(op, w_shape)
    groups = parse_groups(groups, op)
    stride = parse_ints(stride, "stride", nd, op)
    if isinstance(padding, str):
        pad_ints = (0,) * nd
    else:
        pad_ints = parse_ints(padding, "padding", nd, op)
        if (padding_mode != "zeros" and not _is_int(padding)
                and len(int_list(padding, "padding", op)) != nd):
            raise ValueError(
                f"{op}(): with padding_mode={padding_mode!r}, padding must be an int or "
                f"have {nd} entries (one per spatial dimension), got padding={padding!r}")
    dilation = parse_ints(dilation, "dilation", nd, op)
    same = isinstance(padding, str) and padding == "same"
    if same and any(s != 1 for s in stride):
        raise ValueError(f"{op}(): padding='same' is not supported for strided convolutions, "
                         f"got stride={stride}")
    _check_common(op, xb, w_shape, pad_ints, stride, dilation, groups)

    n, c_in, in_size = xb[0], xb[1], tuple(xb[2:])
    kernel = tuple(w_shape[2:])
    if c_in != w_shape[1] * groups:
        raise ValueError(
            f"{op}(): with groups={groups} and weight of shape {_shape_str(w_shape)}, the input "
            f"must have {w_shape[1] * groups} channels, got input of shape {_shape_str(xb)} "
            f"with {c_in} channels")
    _check_bias(op, b_shape, w_shape, w_shape[0])
    _check_kernel_positive(op, kernel)

    if same:
        pads = same_padding(kernel, dilation)
    else:
        pads = tuple((p, p) for p in pad_ints)
    if padding_mode in ("reflect", "replicate") and c_in == 0:
        raise ValueError(
            f"{op}(): padding_mode={padding_mode!r} needs an input with channels, got input "
            f"of shape {_shape_str(xb)} with 0 channels")
    prepad = None
    if padding_mode != "zeros" and any(lo or hi for lo, hi in pads):
        mode_pads(op, padding_mode, in_size, pads, xb)
        prepad = (padding_mode, pads)
        in_size = tuple(s + lo + hi for s, (lo, hi) in zip(in_size, pads))
        pads = tuple((0, 0) for _ in pads)

    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(in_size, pads))
    if any(p < e for p, e in zip(padded, eff)):
        raise ValueError(
            f"{op}(): padded input size per channel {_sizes_str(padded)} is smaller than the "
            f"dilated kernel size {_sizes_str(eff)}")
    if n > 0 and c_in > 0 and 0 in in_size:
        raise ValueError(
            f"{op}(): only the batch or channel dimension may be empty, got input of shape "
            f"{_shape_str(xb)}")
    out_size = tuple((p - e) // s + 1 for p, e, s in zip(padded, eff, stride))
    c_out = w_shape[0] if c_in > 0 else 0
    spec = ConvSpec(False, n, c_in, c_out, groups, in_size, out_size, kernel, stride,
                    pads, dilation)
    return ConvCall(op, spec, unbatched, prepad)


def output_padding_for(op: str, output_size: Shape, x_shape: IntTuple, nd: int,
                       in_size: IntTuple, stride: IntTuple, pad: IntTuple, kernel: IntTuple,
                       dilation: IntTuple) -> IntTuple:
    """output_padding that makes a transposed conv produce ``output_size``.

    ``output_size`` may hold just the spatial sizes, or also the leading
    (batch and) channel entries, which are ignored.  Valid sizes per dim are
    ``[min, min + stride - 1]`` with ``min`` the output_padding=0 size.
    """
    sizes = int_list(output_size, "output_size", op, "a sequence of ints")
    leading = len(x_shape) - nd
    if len(sizes) == nd + leading:
        sizes = sizes[leading:]
    if len(sizes) != nd:
        raise ValueError(
            f"{op}(): for a {len(x_shape)}-D input, output_size must have {nd} or "
            f"{nd + leading} elements, got {len(sizes)}")
    lo = [(s - 1) * st - 2 * p + d * (k - 1) + 1
          for s, st, p, k, d in zip(in_size, stride, pad, kernel, dilation)]
    hi = [m + st - 1 for m, st in zip(lo, stride)]
    if any(not (a <= r <= b) for r, a, b in zip(sizes, lo, hi)):
        raise ValueError(
            f"{op}(): requested an output size of {sizes}, but valid sizes range from {lo} "
            f"to {hi} (for an input of spatial size {list(in_size)})")
    return tuple(r - a for r, a in zip(sizes, lo))


def _conv_transpose_call(op: str, nd_op: int, x_shape: IntTuple, w_shape: IntTuple,
                         b_shape: Optional[IntTuple], stride: IntOrSeq, padding: IntOrSeq,
                         output_padding: IntOrSeq, groups: object, dilation: IntOrSeq,
                         output_size: Optional[Shape] = None) -> ConvCall:
    """Validate a conv_transpose{nd_op}d call and return its batched geometry."""
    unbatched = _check_rank(op, nd_op, x_shape)
    xb = (1,) + tuple(x_shape) if unbatched else tuple(x_shape)
    if isinstance(padding, str):
        raise TypeError(f"{op}(): padding must be an int or a sequence of ints (the strings "
                        f"'same'/'valid' are only accepted by convolutions), got {padding!r}")
    nd = _check_weight_rank(op, w_shape)
    groups = parse_groups(groups, op)
    stride = parse_ints(stride, "stride", nd, op)
    padding = parse_ints(padding, "padding", nd, op)
    dilation = parse_ints(dilation, "dilation", nd, op)
    output_padding = parse_ints(output_padding, "output_padding", nd, op)
    _check_common(op, xb, w_shape, padding, stride, dilation, groups, output_padding)

    n, c_in, in_size = xb[0], xb[1], tuple(xb[2:])
    kernel = tuple(w_shape[2:])
    if c_in != w_shape[0]:
        raise ValueError(
            f"{op}(): a transposed convolution with weight of shape {_shape_str(w_shape)} "
            f"needs an input with {w_shape[0]} channels, got input of shape {_shape_str(xb)} "
            f"with {c_in} channels")
    c_out = w_shape[1] * groups
    _check_bias(op, b_shape, w_shape, c_out)
    _check_kernel_positive(op, kernel)
    if c_out == 0:
        raise ValueError(f"{op}(): weight.shape[1] (output channels per group) must be "
                         f"positive, got weight of shape {_shape_str(w_shape)}")
    if output_size is not None:
        if any(output_padding):
            raise ValueError(f"{op}(): give output_size or output_padding, not both "
                             f"(got output_padding={output_padding})")
        output_padding = output_padding_for(op, output_size, x_shape, nd, in_size, stride,
                                            padding, kernel, dilation)
    out_size = tuple((s - 1) * st - 2 * p + d * (k - 1) + op_ + 1
                     for s, st, p, d, k, op_ in zip(in_size, stride, padding, dilation,
                                                   kernel, output_padding))
    if n > 0:
        if 0 in in_size:
            raise ValueError(
                f"{op}(): only the batch or channel dimension may be empty, got input of "
                f"shape {_shape_str(xb)}")
        if any(o >= s and o >= d for o, s, d in zip(output_padding, stride, dilation)):
            raise ValueError(
                f"{op}(): output_padding must be smaller than either stride or dilation in "
                f"every dimension, got output_padding={output_padding}, stride={stride}, "
                f"dilation={dilation}")
    if any(o < (1 if n > 0 else 0) for o in out_size):
        raise ValueError(
            f"{op}(): input size per channel {_sizes_str(in_size)} gives an output size per "
            f"channel of {_sizes_str(out_size)}: output size is too small")
    pads = tuple((p, p - o) for p, o in zip(padding, output_padding))
    spec = ConvSpec(True, n, c_in, c_out, groups, in_size, out_size, kernel, stride,
                    pads, dilation)
    return ConvCall(op, spec, unbatched)


# ---------------------------------------------------------------------------
# The validated geometry of a call depends only on its shapes and arguments;
# calls repeat them (a layer applied to batch after batch), so the result is
# memoised.  Only arguments whose type, not just value, is unambiguous are
# keys (``True == 1`` but ``stride=True`` is an error): plain ints, strings,
# None and tuples of plain ints; other forms (lists, NumPy integers, arrays)
# are validated afresh each time.  (The shapes are arrays' shapes, tuples of
# ints: only the caller's arguments are checked.)  Errors are never cached.

def _plain(args: Tuple[object, ...]) -> bool:
    """Whether every argument is a plain int, str, None or tuple of plain ints."""
    for value in args:          # (plain loops: this runs at every call)
        t = type(value)
        if t is tuple:
            for e in value:     # type: ignore[attr-defined]
                if type(e) is not int:
                    return False
        elif not (t is int or t is str or value is None):
            return False
    return True


# (typed as plain callables: _plain() checked that the arguments are hashable)
_conv_call_cached: Callable[..., ConvCall] = functools.lru_cache(maxsize=1024)(_conv_call)
_conv_transpose_call_cached: Callable[..., ConvCall] = functools.lru_cache(maxsize=1024)(
    _conv_transpose_call)


def conv_call(op: str, nd_op: int, x_shape: IntTuple, w_shape: IntTuple,
              b_shape: Optional[IntTuple], stride: IntOrSeq, padding: Padding,
              dilation: IntOrSeq, groups: object, padding_mode: str = "zeros") -> ConvCall:
    """Validate a conv{nd_op}d call and return its batched geometry (memoised)."""
    if _plain((stride, padding, dilation, groups, padding_mode)):
        return _conv_call_cached(op, nd_op, x_shape, w_shape, b_shape, stride, padding,
                                 dilation, groups, padding_mode)
    return _conv_call(op, nd_op, x_shape, w_shape, b_shape, stride, padding, dilation, groups,
                      padding_mode)


def conv_transpose_call(op: str, nd_op: int, x_shape: IntTuple, w_shape: IntTuple,
                        b_shape: Optional[IntTuple], stride: IntOrSeq, padding: IntOrSeq,
                        output_padding: IntOrSeq, groups: object, dilation: IntOrSeq,
                        output_size: Optional[Shape] = None) -> ConvCall:
    """Validate a conv_transpose{nd_op}d call and return its batched geometry (memoised)."""
    if _plain((stride, padding, output_padding, groups, dilation, output_size)):
        return _conv_transpose_call_cached(op, nd_op, x_shape, w_shape, b_shape, stride,
                                           padding, output_padding, groups, dilation,
                                           output_size)
    return _conv_transpose_call(op, nd_op, x_shape, w_shape, b_shape, stride, padding,
                                output_padding, groups, dilation, output_size)
