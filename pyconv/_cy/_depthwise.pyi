"""Type stub of the compiled module ``pyconv._cy._depthwise`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def block(dbl: bool, level: int) -> tuple[int, int]: ...

def workspace(geo: tuple[Any, ...], rows: int, vl: int, r: int, dbl: bool) -> tuple[int, int]: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], rows: int, level: int, nthreads: int) -> None: ...
