"""The path units of the cython backend, in the planner's order.

Each module holds one :class:`~pyconv._cy._planning.Path` (``gemm.py``
holds two: ``pointwise`` is ``gemm`` without im2col) and names its kernel
module.  The order, and each unit's rule, is specified in the docstring of
:mod:`pyconv._cy`; a test checks that the two agree.
"""

from .direct import DIRECT
from .gemm import GEMM, POINTWISE
from .implicit import IMPLICIT
from .packed import PACKED
from .phases import PHASES
from .strided1d import STRIDED1D

#: The planner tries the units in this order (each for the ops it computes).
ORDER = (DIRECT, IMPLICIT, STRIDED1D, PACKED, PHASES, POINTWISE, GEMM)

#: The units by name.
BY_NAME = {unit.name: unit for unit in ORDER}

__all__ = ["ORDER", "BY_NAME"]
