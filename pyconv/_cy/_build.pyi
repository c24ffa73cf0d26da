"""Type stub of the compiled module ``pyconv._cy._build`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def build_info() -> dict[str, Any]: ...

def omp_max_threads() -> int: ...

def simd_level() -> int: ...

def microkernel(dbl: bool, level: int) -> tuple[int, int, int, int]: ...

def fma_flops(iters: int, threads: int) -> float: ...
