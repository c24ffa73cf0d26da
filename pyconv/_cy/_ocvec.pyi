"""Type stub of the compiled module ``pyconv._cy._ocvec`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def shape(level: int, sh: int, dbl: bool) -> tuple[int, int, int]: ...

def workspace(geo: tuple[Any, ...], rows: int, imgs: int, fused: bool, shared: bool, level: int, sh: int, dbl: bool) -> tuple[int, int]: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], rows: int, parts: int, imgs: int, fused: bool, shared: bool, level: int, sh: int, nthreads: int) -> None: ...
