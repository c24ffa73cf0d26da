"""Type stub of the compiled module ``pyconv._cy._winograd_oc`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def block(level: int, dbl: bool) -> tuple[int, int]: ...

def workspace(geo: tuple[Any, ...], m: int, tc: int, rt: int, cb: int, kbs: int, level: int, dbl: bool, local: bool = ...) -> tuple[int, int]: ...

def items(geo: tuple[Any, ...], m: int, tc: int, rt: int, kbs: int, level: int, dbl: bool, local: bool = ...) -> int: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], m: int, tc: int, rt: int, cb: int, cch: int, kbs: int, coef: Any, level: int, nthreads: int) -> None: ...
