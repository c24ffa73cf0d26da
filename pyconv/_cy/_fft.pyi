"""Type stub of the compiled module ``pyconv._cy._fft`` (written by tools/gen_cy_stubs.py)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


class Frames:
    frames: int
    phases: int
    length: int
    extent: int
    def __init__(self, axes: Any) -> None: ...

def gather(m: Frames, src: Any, src_off: int, img: int, f0: int, T: int, C: int, buf: Any) -> None: ...

def scatter(m: Frames, buf: Any, dst: Any, dst_off: int, img: int, f0: int, T: int, C: int, bias: Any, bias_off: int) -> None: ...

def chunk(dbl: bool, level: int) -> int: ...

def pack(level: int, F: int, n1: int, s1: int, n2: int, s2: int, src: Any, src_off: int, dst: Any, dst_off: int, cs: int = ...) -> None: ...

def unpack(level: int, F: int, n1: int, s1: int, n2: int, s2: int, src: Any, src_off: int, dst: Any, dst_off: int, cs: int = ...) -> None: ...

def cgemm(level: int, F: int, I: int, J: int, L: int, A: Any, a_off: int, B: Any, b_off: int, C: Any, c_off: int, ci: int, cj: int, cpacked: bool, conj: bool, acc: bool) -> None: ...
