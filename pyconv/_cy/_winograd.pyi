"""Type stub of the compiled module ``pyconv._cy._winograd`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def workspace(geo: tuple[Any, ...], tiles: tuple[Any, ...], L: int, sb: int, mr: int, dbl: bool) -> tuple[int, int]: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], tiles: tuple[Any, ...], coef: NDArray[np.float64], L: int, sb: int, level: int, mr: int, nthreads: int, swap: bool = ...) -> None: ...
