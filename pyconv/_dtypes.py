"""Dtype handling shared by every op: promotion, float16, complex.

Backends compute in float32 or float64 only.  This module maps every
accepted input dtype onto those two and back:

* the result dtype is ``np.result_type`` of the operands (NumPy promotion,
  where PyTorch would refuse mixed dtypes);
* integer and bool operands are computed, and returned, as float64;
* float16 is computed in float32 and rounded to float16 once at the end;
* complex64/complex128 are decomposed into real convolutions of the
  matching real dtype (Gauss's three-multiplication trick), so no backend
  needs complex kernels;
* anything else (object, str, datetime, void, longdouble) is a TypeError
  naming the argument and its dtype.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

from ._registry import device_owner
from ._typing import BackendArray

#: ``(result, compute, is_complex)``, see :func:`plan_dtypes`.
DtypePlan = Tuple[np.dtype[Any], np.dtype[Any], bool]

__all__ = ["as_array", "plan_dtypes", "host_dtypes", "complex_bilinear"]

_SUPPORTED_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_SUPPORTED_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
#: native-order dtypes accepted as they are (the fast path of as_array)
_ACCEPTED = frozenset(_SUPPORTED_FLOATS + _SUPPORTED_COMPLEX + tuple(
    np.dtype(c) for c in "?bBhHiIlLqQ"))


def as_array(value: object, name: str) -> BackendArray:
    """``value`` as an ndarray (a backend's device arrays pass through), dtype checked.

    The caller's object is never modified: later steps only copy from it.
    """
    if type(value) is np.ndarray and value.dtype in _ACCEPTED:  # the common case, quickly
        return value
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    arr: BackendArray
    if device_owner(value) is not None:
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    kind = arr.dtype.kind
    if kind in "biu":
        return arr
    if kind in "fc" and (arr.dtype.newbyteorder("=") in _SUPPORTED_FLOATS + _SUPPORTED_COMPLEX):
        return arr
    raise TypeError(
        f"{name} has unsupported dtype {arr.dtype}; pyconv computes with bool, integer, "
        "float16/32/64 and complex64/128 arrays")


def plan_dtypes(*arrays: Optional[BackendArray], device: Optional[str] = None) -> DtypePlan:
    """``(result, compute, is_complex)`` dtypes for a call on ``arrays``.

    ``compute`` is float32 or float64: the dtype the backend sees (the real
    dtype of the complex parts for complex results).

    With ``device`` (the backend owning some of the arrays, see
    :func:`pyconv._registry.device_owner`) nothing is converted on the
    device: the device arrays must all be float32 or all float64, and the
    host operands must fit that dtype.
    """
    if device is not None:
        return _device_dtypes(arrays, device)
    if len(arrays) == 3 and arrays[2] is None:     # (x, w, no bias): the usual call
        return host_dtypes((arrays[0].dtype, arrays[1].dtype))  # type: ignore[union-attr]
    return host_dtypes(tuple(a.dtype for a in arrays if a is not None))


@functools.lru_cache(maxsize=256)
def host_dtypes(present: Tuple[np.dtype[Any], ...]) -> DtypePlan:
    """:func:`plan_dtypes` of NumPy operands with the dtypes ``present`` (memoised)."""
    result = np.result_type(*present)
    if result.kind in "biu":
        result = np.dtype(np.float64)
    # the native-order singleton (np.dtype(np.float32) ...): an equal but
    # distinct dtype object would make np.ascontiguousarray return a new view
    # of every operand instead of the operand itself (about 1 us a call)
    result = np.dtype(result.type)
    if result.kind == "c":
        compute = np.dtype(np.float32) if result == np.complex64 else np.dtype(np.float64)
        return result, compute, True
    if result == np.float16:
        return result, np.dtype(np.float32), False
    return result, result, False


def _device_dtypes(arrays: Tuple[Optional[BackendArray], ...], device: str) -> DtypePlan:
    """The dtypes of a call with device arrays: theirs, unconverted."""
    on_dev: List[BackendArray] = []
    on_host: List[BackendArray] = []
    for a in arrays:
        if a is not None:
            (on_host if device_owner(a) is None else on_dev).append(a)
    dtype = np.dtype(on_dev[0].dtype)
    if dtype not in _NATIVE or any(np.dtype(a.dtype) != dtype for a in on_dev[1:]):
        raise TypeError(f"device arrays ({device} backend) must all be float32 or all "
                        f"float64, got {', '.join(str(a.dtype) for a in on_dev)}")
    for a in on_host:
        if np.result_type(a.dtype, dtype) != dtype:
            raise TypeError(f"a {a.dtype} operand cannot be combined with {dtype} device "
                            "arrays (device arrays are never converted)")
    return dtype, dtype, False


def complex_bilinear(f: Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]],
                     a: NDArray[Any], b: NDArray[Any],
                     real_dtype: np.dtype[Any]) -> NDArray[Any]:
    """``f(a, b)`` for complex operands, from real evaluations of a bilinear ``f``.

    ``f`` must be bilinear in its two arguments (every conv primitive is:
    conv(x, w), conv_transpose(x, w), conv_weight(x, grad_out)).  With
    ``a = ar + i ai`` and ``b = br + i bi``::

        k1 = f(ar + ai, br),  k2 = f(ar, bi - br),  k3 = f(ai, br + bi)
        f(a, b) = (k1 - k3) + i (k1 + k2)

    three real evaluations instead of four.  A real operand needs only two.
    """
    def part(z: NDArray[Any], which: str) -> NDArray[Any]:
        return np.ascontiguousarray(getattr(z, which), dtype=real_dtype)

    a_cplx = np.iscomplexobj(a)
    b_cplx = np.iscomplexobj(b)
    if a_cplx and b_cplx:
        ar, ai, br, bi = part(a, "real"), part(a, "imag"), part(b, "real"), part(b, "imag")
        k1 = f(ar + ai, br)
        k2 = f(ar, bi - br)
        k3 = f(ai, br + bi)
        real, imag = k1 - k3, k1 + k2
    elif a_cplx:
        bb = np.ascontiguousarray(b, dtype=real_dtype)
        real, imag = f(part(a, "real"), bb), f(part(a, "imag"), bb)
    else:
        aa = np.ascontiguousarray(a, dtype=real_dtype)
        real, imag = f(aa, part(b, "real")), f(aa, part(b, "imag"))
    out = np.empty(real.shape, dtype=np.result_type(real_dtype, np.complex64))
    out.real = real
    out.imag = imag
    return out
