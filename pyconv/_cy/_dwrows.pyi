"""Type stub of the compiled module ``pyconv._cy._dwrows`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def available() -> bool: ...

def items(geo: tuple[Any, ...], cpb: int) -> int: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], cpb: int, nthreads: int) -> None: ...
