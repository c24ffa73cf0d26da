"""Module classes: Conv1d/2d/3d and ConvTranspose1d/2d/3d.

Plain Python objects holding NumPy parameters (no autograd): constructor
signatures, parameter shapes, initialisation and ``repr`` as PyTorch's
``torch.nn`` modules; calling a module runs the functional op.  The
parameters by key (``state_dict``, ``load_state_dict``,
``named_parameters``) come from :mod:`pyconv._state`.

The constructor checks its arguments in PyTorch's order and names the
argument in every error; a weight too large for any array, or for this
machine's memory, is refused before NumPy is asked to allocate it.

.. autosummary::

   Conv1d
   Conv2d
   Conv3d
   ConvTranspose1d
   ConvTranspose2d
   ConvTranspose3d
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Iterable
from typing import Any, Callable, SupportsIndex, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import functional as F
from ._spec import _PADDING_MODES, _bytes_str, _is_int, _memory_bytes
from ._state import _Parameters
from ._typing import (DeviceArray, DeviceArrayT, IntOrSeq, Padding, PaddingMode, Result,
                      RngLike, Shape)

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d"]

_PARAM_DTYPES = tuple(np.dtype(t) for t in
                      (np.float16, np.float32, np.float64, np.complex64, np.complex128))


def _tuple(value: Any, nd: int, name: str, who: str) -> tuple[Any, ...]:
    """An int becomes an nd-tuple; an iterable is kept as a tuple (checked at call time)."""
    if _is_int(value):
        return (operator.index(value),) * nd
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return tuple(value)
    raise TypeError(f"{who}: {name} must be an int or a tuple of ints, got {value!r}")


def _param_dtype(dtype: Any, who: str) -> np.dtype[Any]:
    """The native NumPy dtype of a module's parameters, from what ``dtype=`` got.

    NumPy dtypes, their scalar types and names are accepted, byte order
    aside (``">f4"`` is float32); None is PyTorch's default, float32.
    """
    if dtype is None:
        return np.dtype(np.float32)
    text = str(dtype)
    if text.startswith("torch."):
        name = text[len("torch."):]
        if name in {dt.name for dt in _PARAM_DTYPES}:
            hint = f"pass np.{name} (or {name!r})"
        else:
            hint = "pass a NumPy float or complex dtype, such as np.float32"
        raise TypeError(f"{who}: dtype must be a NumPy dtype, got the PyTorch dtype {text}: "
                        f"{hint}")
    try:
        dt: np.dtype[Any] = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: dtype must be a NumPy dtype or its name ('float32', "
                        f"'complex64' ...), got {dtype!r}") from None
    native: np.dtype[Any] = dt.newbyteorder("=")
    if dt.kind in "fc" and native in _PARAM_DTYPES:
        return native
    raise TypeError(f"{who}: dtype must be a float or complex dtype (float16/32/64, "
                    f"complex64/128), got {dt}")


def _make_rng(rng: Any, who: str) -> np.random.Generator:
    """A Generator from ``rng=`` (what :func:`numpy.random.default_rng` takes)."""
    if isinstance(rng, np.random.Generator):
        return rng
    message = (f"{who}: rng must be None, a non-negative int seed (or a sequence of them), a "
               f"numpy.random.SeedSequence, BitGenerator or Generator, got {rng!r}")
    try:
        return np.random.default_rng(rng)
    except TypeError:
        raise TypeError(message) from None
    except ValueError:  # a negative seed
        raise ValueError(message) from None


def _check_weight_size(shape: tuple[int, ...], dtype: np.dtype[Any], who: str) -> None:
    """Refuse a weight no array, or no array in this machine's memory, can hold."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > np.iinfo(np.intp).max or any(s > np.iinfo(np.intp).max for s in shape):
        problem = "too large for any array"
    else:
        memory = _memory_bytes()
        if memory is None or nbytes <= memory:
            return
        problem = (f"which would need {_bytes_str(nbytes)}, more than this machine's "
                   f"{_bytes_str(memory)} of memory")
    raise ValueError(f"{who}: in_channels, out_channels and kernel_size give a weight of "
                     f"shape {shape} ({dtype}), {problem}")


_ModuleT = TypeVar("_ModuleT", bound="_ConvNd")


class _ConvNd(_Parameters):
    """Shared machinery of the six module classes."""

    _nd = 0
    _transposed = False

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    #: a tuple of ints, or the string 'same' or 'valid'
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...]
    groups: int
    transposed: bool
    padding_mode: str
    weight: NDArray[Any]
    bias: NDArray[Any] | None

    def __init__(self, in_channels: SupportsIndex, out_channels: SupportsIndex,
                 kernel_size: IntOrSeq, stride: IntOrSeq, padding: Padding, dilation: IntOrSeq,
                 groups: SupportsIndex, bias: bool, padding_mode: PaddingMode,
                 output_padding: IntOrSeq, dtype: DTypeLike, rng: RngLike) -> None:
        name = type(self).__name__
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}, '
                             f"got padding_mode={padding_mode!r}")
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not _is_int(value):
                raise TypeError(f"{name}: {arg} must be an int, got {value!r}")
            if operator.index(value) < 0:
                raise ValueError(f"{name}: {arg} must be a non-negative int, got {value!r}")
        if not _is_int(groups) or operator.index(groups) <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got groups={groups!r}")
        if operator.index(in_channels) % operator.index(groups) != 0:
            raise ValueError(f"{name}: in_channels must be divisible by groups, got "
                             f"in_channels={in_channels}, groups={groups}")
        if operator.index(out_channels) % operator.index(groups) != 0:
            raise ValueError(f"{name}: out_channels must be divisible by groups, got "
                             f"out_channels={out_channels}, groups={groups}")
        nd = self._nd
        kernel_size = _tuple(kernel_size, nd, "kernel_size", name)
        stride = _tuple(stride, nd, "stride", name)
        if isinstance(padding, str):
            if self._transposed:
                raise TypeError(f"{name}: padding must be an int or a tuple of ints "
                                f"('same'/'valid' are for convolutions only), got {padding!r}")
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one "
                                 "of 'same', 'valid'")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions, got stride={stride}")
        else:
            padding = _tuple(padding, nd, "padding", name)
        if not isinstance(padding_mode, str) or padding_mode not in _PADDING_MODES:
            modes = ", ".join(repr(m) for m in _PADDING_MODES)
            raise ValueError(f"{name}: padding_mode must be one of {modes}, but "
                             f"got padding_mode={padding_mode!r}")
        if not all(_is_int(k) for k in kernel_size):
            raise TypeError(f"{name}: kernel_size must hold ints, got {kernel_size!r}")
        if any(k < 0 for k in kernel_size):
            raise ValueError(f"{name}: kernel_size must hold non-negative ints, "
                             f"got {kernel_size!r}")
        dtype = _param_dtype(dtype, name)
        gen = _make_rng(rng, name)

        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.stride = stride
        self.padding = padding
        self.dilation = _tuple(dilation, nd, "dilation", name)
        self.output_padding = _tuple(output_padding, nd, "output_padding", name)
        self.groups = int(groups)
        self.transposed = self._transposed
        self.padding_mode = padding_mode
        self.dtype = dtype
        wshape = self._weight_shape()
        _check_weight_size(wshape, dtype, name)
        self.weight = np.zeros(wshape, dtype=dtype)
        self.bias = np.zeros(self.out_channels, dtype=dtype) if bias else None
        self.reset_parameters(gen)

    # -- parameters ---------------------------------------------------------

    def _weight_shape(self) -> tuple[int, ...]:
        if self._transposed:
            return (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"weight": self._weight_shape()}
        if self.bias is not None:
            shapes["bias"] = (self.out_channels,)
        return shapes

    @property
    def fan_in(self) -> int:
        """``weight.shape[1] * prod(kernel_size)``: sets the init bound ``1/sqrt(fan_in)``."""
        return int(self.weight.shape[1]) * math.prod(self.kernel_size)

    def reset_parameters(self, rng: RngLike = None) -> None:
        """Draw ``weight`` then ``bias`` from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

        Parameters
        ----------
        rng : None, int, sequence of int, SeedSequence, BitGenerator or Generator
            Source of randomness, as :func:`numpy.random.default_rng` takes it
            (a seed gives reproducible parameters).
            Complex parameters draw the real and imaginary parts separately.
        """
        gen = _make_rng(rng, f"{type(self).__name__}.reset_parameters()")
        bound = 1.0 / math.sqrt(self.fan_in) if self.fan_in > 0 else 0.0

        def draw(shape: tuple[int, ...]) -> NDArray[Any]:
            if self.dtype.kind == "c":
                return (gen.uniform(-bound, bound, shape)
                        + 1j * gen.uniform(-bound, bound, shape)).astype(self.dtype)
            return gen.uniform(-bound, bound, shape).astype(self.dtype)

        self.weight = draw(self.weight.shape)
        if self.bias is not None:
            self.bias = draw(self.bias.shape)

    def parameters(self) -> list[NDArray[Any]]:
        """``[weight]`` or ``[weight, bias]``."""
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def astype(self: _ModuleT, dtype: DTypeLike) -> _ModuleT:
        """A new module with the parameters converted to ``dtype``.

        Like :meth:`numpy.ndarray.astype`, this returns a copy and leaves
        this module unchanged (PyTorch's ``module.to(dtype)`` converts in
        place instead).

        Parameters
        ----------
        dtype : dtype or str
            float16/32/64 or complex64/128, as for the constructor.

        Returns
        -------
        module
            Same class and configuration, parameters copied to ``dtype``.

        Raises
        ------
        TypeError
            ``dtype`` is not a float or complex NumPy dtype, or is real
            while this module is complex (the imaginary parts would be lost).
        """
        who = f"{type(self).__name__}.astype()"
        dtype = _param_dtype(dtype, who)
        if self.dtype.kind == "c" and dtype.kind != "c":
            raise TypeError(f"{who}: a {self.dtype} module cannot become {dtype} without "
                            "dropping the imaginary parts of its parameters")
        new = copy.copy(self)
        new.dtype = dtype
        for name, value in self.named_parameters():
            setattr(new, name, np.array(value, dtype=dtype, order="C"))
        return new

    # -- repr ---------------------------------------------------------------

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}",
                 f"kernel_size={self.kernel_size}", f"stride={self.stride}"]
        if isinstance(self.padding, str):
            parts.append(f"padding={self.padding}")
        elif self.padding != (0,) * len(self.padding):
            parts.append(f"padding={self.padding}")
        if self.dilation != (1,) * len(self.dilation):
            parts.append(f"dilation={self.dilation}")
        if self.output_padding != (0,) * len(self.output_padding):
            parts.append(f"output_padding={self.output_padding}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


# ``__call__`` has ``forward``'s signature, overloads included (a Dask or OpenCL input
# gives a result of its kind, see pyconv._typing), so that type checkers and IDEs see
# it; it calls ``self.forward``, which a subclass may override.

_Op = Callable[..., Result]


class _Conv(_ConvNd):
    def __init__(self, in_channels: SupportsIndex, out_channels: SupportsIndex,
                 kernel_size: IntOrSeq, stride: IntOrSeq = 1, padding: Padding = 0,
                 dilation: IntOrSeq = 1, groups: SupportsIndex = 1, bias: bool = True,
                 padding_mode: PaddingMode = "zeros", *, dtype: DTypeLike = np.float32,
                 rng: RngLike = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, dtype, rng)

    @overload
    def forward(self, input: DeviceArrayT) -> DeviceArrayT: ...
    @overload
    def forward(self, input: ArrayLike) -> NDArray[Any]: ...
    def forward(self, input: ArrayLike | DeviceArray) -> Result:
        """Apply the convolution to ``input`` (batched or unbatched)."""
        op: _Op = getattr(F, f"conv{self._nd}d")
        return op(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                  self.groups, padding_mode=self.padding_mode)

    @overload
    def __call__(self, input: DeviceArrayT) -> DeviceArrayT: ...
    @overload
    def __call__(self, input: ArrayLike) -> NDArray[Any]: ...
    def __call__(self, input: ArrayLike | DeviceArray) -> Result:
        return self.forward(input)


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels: SupportsIndex, out_channels: SupportsIndex,
                 kernel_size: IntOrSeq, stride: IntOrSeq = 1, padding: IntOrSeq = 0,
                 output_padding: IntOrSeq = 0, groups: SupportsIndex = 1, bias: bool = True,
                 dilation: IntOrSeq = 1, padding_mode: PaddingMode = "zeros", *,
                 dtype: DTypeLike = np.float32, rng: RngLike = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype, rng)

    @overload
    def forward(self, input: DeviceArrayT,
                output_size: Shape | None = None) -> DeviceArrayT: ...
    @overload
    def forward(self, input: ArrayLike, output_size: Shape | None = None) -> NDArray[Any]: ...
    def forward(self, input: ArrayLike | DeviceArray,
                output_size: Shape | None = None) -> Result:
        """Apply the transposed convolution; ``output_size`` picks among valid sizes."""
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for "
                             f"{type(self).__name__}")
        op: _Op = getattr(F, f"conv_transpose{self._nd}d")
        output_padding = self.output_padding if output_size is None else 0
        return op(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                  self.groups, self.dilation, output_size=output_size)

    @overload
    def __call__(self, input: DeviceArrayT,
                 output_size: Shape | None = None) -> DeviceArrayT: ...
    @overload
    def __call__(self, input: ArrayLike, output_size: Shape | None = None) -> NDArray[Any]: ...
    def __call__(self, input: ArrayLike | DeviceArray,
                 output_size: Shape | None = None) -> Result:
        return self.forward(input, output_size)


_MODULE_DOC = """{kind} over {nd}-D inputs, holding ``weight`` and ``bias``.

    Same constructor signature, parameter shapes, initialisation and ``repr``
    as ``torch.nn.{name}``; parameters are NumPy arrays, also by PyTorch's
    key names (``state_dict``, ``load_state_dict``).

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int
        Channels of the output.
    kernel_size : int or tuple of int
        Spatial size of the kernel.
{args}
    dtype : dtype or str, default float32
        Parameter dtype: a NumPy float or complex dtype (float16/32/64,
        complex64/128) or its name (``"float32"``), any byte order (stored
        native); None means float32, as in PyTorch.  A PyTorch dtype is a
        ``TypeError`` that names the NumPy one to pass.
    rng : None, int, sequence of int, SeedSequence, BitGenerator or Generator
        Randomness for the initialisation, as :func:`numpy.random.default_rng`
        takes it (a seed makes it reproducible).

    Attributes
    ----------
    weight : ndarray
        ``{wshape}``, drawn from ``U(-sqrt(k), sqrt(k))`` with
        ``k = 1 / (weight.shape[1] * prod(kernel_size))``.
    bias : ndarray or None
        ``(out_channels,)``, same distribution; None when ``bias=False``.

    Raises
    ------
    ValueError
        ``groups`` not positive or not dividing the channel counts, an
        invalid ``padding`` string or ``padding_mode``{extra_raise}, a
        negative ``rng`` seed, or sizes whose weight no array can hold.
    TypeError
        Non-integer channel counts or kernel sizes, a ``dtype`` that is
        neither a float nor a complex NumPy dtype, or an ``rng`` that
        :func:`numpy.random.default_rng` does not take.


    See Also
    --------
    pyconv.{func} : the functional op ``forward`` calls.

    Notes
    -----
    {notes}

    Examples
    --------
{examples}
"""

_CONV_ARGS = """    stride : int or tuple of int, default 1
    padding : int, tuple of int, 'valid' or 'same', default 0
    dilation : int or tuple of int, default 1
    groups : int, default 1
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'"""

_CONVT_ARGS = """    stride : int or tuple of int, default 1
    padding : int or tuple of int, default 0
    output_padding : int or tuple of int, default 0
    groups : int, default 1
    bias : bool, default True
    dilation : int or tuple of int, default 1
    padding_mode : {'zeros'}, default 'zeros'
        Only zeros is supported for transposed convolutions."""

_CONV_NOTES = ("Output size per dim: ``O = floor((S + 2*p - d*(K - 1) - 1) / s) + 1``; "
               "``forward(x)`` equals ``pyconv.conv{nd}d(x, weight, bias, stride, padding, "
               "dilation, groups, padding_mode=padding_mode)``.")
_CONVT_NOTES = ("Output size per dim: ``O = (S - 1)*s - 2*p + d*(K - 1) + output_padding + 1``; "
                "``forward(x, output_size=None)`` picks ``output_padding`` from "
                "``output_size`` when given (the module's own ``output_padding`` is then "
                "ignored).")

_EXAMPLES = {
    "Conv1d": """    >>> import numpy as np
    >>> import pyconv
    >>> m = pyconv.Conv1d(4, 6, 3, stride=2, padding=1, rng=0)
    >>> m
    Conv1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,))
    >>> m.weight.shape, m.bias.shape
    ((6, 4, 3), (6,))
    >>> m(np.zeros((2, 4, 10), dtype=np.float32)).shape
    (2, 6, 5)""",
    "Conv2d": """    >>> import numpy as np
    >>> import pyconv
    >>> m = pyconv.Conv2d(3, 8, 3, padding="same", padding_mode="reflect", rng=0)
    >>> m(np.ones((3, 16, 16), dtype=np.float32)).shape   # unbatched
    (8, 16, 16)
    >>> bool(np.abs(m.weight).max() <= 1 / np.sqrt(3 * 9))
    True""",
    "Conv3d": """    >>> import numpy as np
    >>> import pyconv
    >>> m = pyconv.Conv3d(2, 4, (1, 3, 3), groups=2, bias=False, rng=0)
    >>> m
    Conv3d(2, 4, kernel_size=(1, 3, 3), stride=(1, 1, 1), groups=2, bias=False)
    >>> m(np.ones((1, 2, 4, 6, 6), dtype=np.float32)).shape
    (1, 4, 4, 4, 4)""",
    "ConvTranspose1d": """    >>> import numpy as np
    >>> import pyconv
    >>> m = pyconv.ConvTranspose1d(4, 2, 3, stride=2, padding=1, rng=0)
    >>> m.weight.shape
    (4, 2, 3)
    >>> x = np.ones((1, 4, 5), dtype=np.float32)
    >>> m(x).shape, m(x, output_size=[10]).shape
    ((1, 2, 9), (1, 2, 10))""",
    "ConvTranspose2d": """    >>> import numpy as np
    >>> import pyconv
    >>> m = pyconv.ConvTranspose2d(8, 4, 4, stride=2, padding=1, rng=0)
    >>> m
    ConvTranspose2d(8, 4, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))
    >>> m(np.ones((2, 8, 7, 7), dtype=np.float32)).shape
    (2, 4, 14, 14)""",
    "ConvTranspose3d": """    >>> import numpy as np
    >>> import pyconv
    >>> m = pyconv.ConvTranspose3d(2, 2, 2, stride=2, rng=0)
    >>> m(np.ones((1, 2, 3, 3, 3), dtype=np.float32)).shape
    (1, 2, 6, 6, 6)""",
}


class Conv1d(_Conv):
    _nd = 1


class Conv2d(_Conv):
    _nd = 2


class Conv3d(_Conv):
    _nd = 3


class ConvTranspose1d(_ConvTranspose):
    _nd = 1


class ConvTranspose2d(_ConvTranspose):
    _nd = 2


class ConvTranspose3d(_ConvTranspose):
    _nd = 3


def _document(cls: type[_ConvNd]) -> None:
    """Fill in the class docstring from :data:`_MODULE_DOC`."""
    name, nd, transposed = cls.__name__, cls._nd, cls._transposed
    wshape = ("(in_channels, out_channels / groups, *kernel_size)" if transposed
              else "(out_channels, in_channels / groups, *kernel_size)")
    cls.__doc__ = _MODULE_DOC.format(
        kind="Transposed convolution" if transposed else "Convolution", nd=nd, name=name,
        args=_CONVT_ARGS if transposed else _CONV_ARGS, wshape=wshape,
        extra_raise=", a padding_mode other than zeros" if transposed else "",
        func=f"conv_transpose{nd}d" if transposed else f"conv{nd}d",
        notes=(_CONVT_NOTES if transposed else _CONV_NOTES).format(nd=nd),
        examples=_EXAMPLES[name])


for _cls in (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d):
    _document(_cls)
del _cls
