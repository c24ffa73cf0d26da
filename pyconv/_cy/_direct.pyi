"""Type stub of the compiled module ``pyconv._cy._direct`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def workspace(geo: tuple[Any, ...]) -> tuple[int, int]: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], nthreads: int) -> None: ...

def conv_transpose(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], nthreads: int) -> None: ...

def conv_weight(x: NDArray[Any], gy: NDArray[Any], gw: NDArray[Any], geo: tuple[Any, ...], nthreads: int) -> None: ...
