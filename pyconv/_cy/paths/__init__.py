"""The path units of the cython backend, in the planner's order.

Each module holds one :class:`~pyconv._cy._planning.Path` (``gemm.py``
holds two: ``pointwise`` is ``gemm`` without im2col) and names its kernel
module.  The order, and each unit's rule, is specified in the docstring of
:mod:`pyconv._cy`; a test checks that the two agree.

Adding a path:

1. its kernels: ``pyconv/_cy/_<name>.pyx`` (``setup.py`` builds every
   ``.pyx`` there), a ``Task`` struct, one fused item function run by
   ``run_items`` (``_common.pxd``), an entry that takes its arrays through
   ``operands`` (``_common.pxd``: checked, their data pointers, float32 or
   float64) and calls its fused body, and a ``*workspace`` function that
   reports the bytes its buffers take, from the layout the kernel
   allocates; C loops, if any, in ``kernels/<name>.h``; its type stub
   ``_<name>.pyi`` by ``python tools/gen_cy_stubs.py``;
2. its unit: ``paths/<name>.py``, a :class:`~pyconv._cy._planning.Path`
   (``supports``, ``chosen``, ``plan`` through ``finish``, ``run``), placed
   in :data:`ORDER` below and in the list of :mod:`pyconv._cy`'s docstring;
3. its tests: the shared matrix and ``tests/test_cython_backend.py`` force
   every unit of :data:`ORDER` already; add the cases its rule needs to the
   planner tests there.
"""

from .depthwise import DEPTHWISE
from .dilated import DILATED
from .direct import DIRECT
from .dwrows import DWROWS
from .fft import FFT
from .gemm import GEMM, POINTWISE
from .implicit import IMPLICIT
from .ocvec import OCVEC
from .packed import PACKED
from .phases import PHASES
from .strided1d import STRIDED1D
from .tgemm import TGEMM
from .winograd import WINOGRAD2, WINOGRAD4
from .winograd_oc import WINOGRAD_OC
from .winograd_w import WINOGRAD_W

#: The planner tries the units in this order (each for the ops it computes).
ORDER = (FFT, DWROWS, DEPTHWISE, DIRECT, WINOGRAD_OC, WINOGRAD4, WINOGRAD2, WINOGRAD_W, OCVEC, DILATED,
         IMPLICIT, STRIDED1D, PACKED, PHASES, POINTWISE, TGEMM, GEMM)

#: The units by name.
BY_NAME = {unit.name: unit for unit in ORDER}

__all__ = ["ORDER", "BY_NAME"]
