"""Type stub of the compiled module ``pyconv._cy._tgemm`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def workspace(geo: tuple[Any, ...], nb: int, nchb: int, level: int, dbl: bool) -> tuple[int, int]: ...

def conv_transpose(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], nb: int, nchb: int, level: int, nthreads: int) -> None: ...
