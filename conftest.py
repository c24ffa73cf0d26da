"""Collection rules for the whole checkout (``tests/`` and the doctests in ``pyconv/``).

Without pyopencl (it is an optional extra) the OpenCL backend's modules
cannot be imported, so ``--doctest-modules`` must not collect them; the
OpenCL tests skip themselves with the reason.
"""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("pyopencl") is None:
    collect_ignore.append("pyconv/_opencl")
