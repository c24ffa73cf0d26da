"""Type stub of the compiled module ``pyconv._cy._winograd_w`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def workspace(geo: tuple[Any, ...], L: int, sb: int, nrw: int, dbl: bool) -> tuple[int, int]: ...

def release() -> None: ...

def conv_weight(x: NDArray[Any], gy: NDArray[Any], gw: NDArray[Any], geo: tuple[Any, ...], bt: NDArray[np.float64], gmat: NDArray[np.float64], at: NDArray[np.float64], L: int, sb: int, level: int, nrw: int, nthreads: int) -> None: ...
