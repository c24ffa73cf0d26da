"""Type stub of the compiled module ``pyconv._cy._implicit`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def conv_workspace(geo: tuple[Any, ...], rows: int, mr: int, nr: int, dbl: bool) -> tuple[int, int]: ...

def conv(x: NDArray[Any], w: NDArray[Any], b: NDArray[Any], y: NDArray[Any], geo: tuple[Any, ...], rows: int, level: int, mr: int, nr: int, nthreads: int, yview: tuple[Any, ...] | None = ..., mparts: int = ...) -> None: ...

def conv_many(x: NDArray[Any], weight_of: Any, b: NDArray[Any], y: NDArray[Any], geos: list[Any], rows: list[Any], level: int, mr: int, nr: int, nthreads: int, yviews: list[Any]) -> None: ...

def weight_workspace(geo: tuple[Any, ...], rows: int, nrw: int, images: int, nslots: int, dbl: bool, budget: int) -> tuple[int, int]: ...

def conv_weight(x: NDArray[Any], gy: NDArray[Any], gw: NDArray[Any], geo: tuple[Any, ...], rows: int, images: int, nslots: int, level: int, nrw: int, nthreads: int, budget: int) -> None: ...
