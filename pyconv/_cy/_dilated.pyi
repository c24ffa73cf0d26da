"""Type stub of the compiled module ``pyconv._cy._dilated`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def tiles(geo: tuple[Any, ...], rows: int, nr: int) -> tuple[int, ...]: ...

def pieces(geo: tuple[Any, ...]) -> int: ...

def workspace(geo: tuple[Any, ...], ncols: int, kc: int, level: int, dbl: bool) -> tuple[int, int]: ...

def positions(rects: tuple[Any, ...]) -> int: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], rows: int, kc: int, level: int, nthreads: int) -> None: ...
