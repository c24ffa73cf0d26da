"""Write the type stubs (``.pyi``) of the cython backend's compiled modules.

Type checkers cannot read a ``.pyx`` file, so each kernel module
``pyconv/_cy/_<name>.pyx`` has a stub ``_<name>.pyi`` beside it that declares
its Python-visible functions (``def``) and extension types (``cdef class``).
This script derives the stubs from the ``.pyx`` sources:

* parameter types from their Cython declarations (:data:`PARAM_TYPES`:
  typed memoryviews are NumPy arrays, C integers ``int``, ``bint`` ``bool``);
  an untyped parameter is ``Any``;
* return types: ``None`` for a function without a ``return`` statement,
  otherwise from :data:`RETURNS` (a new function that returns something
  must be added there: the script stops with an error naming it);
* for a ``cdef class``: its ``__cinit__``/``__init__`` signature and its
  ``cdef readonly``/``cdef public`` attributes.

Run it after changing a ``def`` of a kernel module::

    python tools/gen_cy_stubs.py          # rewrite the stubs
    python tools/gen_cy_stubs.py --check  # exit 1 if a stub is out of date

``tests/test_cython_backend.py`` runs the check, so a stale stub fails the
tests.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CY_DIR = Path(__file__).resolve().parent.parent / "pyconv" / "_cy"

#: Cython parameter declarations -> Python types (matched on the type text
#: before the parameter's name, ``const`` dropped).
PARAM_TYPES = {
    "floating[::1]": "NDArray[Any]",
    "float[::1]": "NDArray[np.float32]",
    "double[::1]": "NDArray[np.float64]",
    "double[:, :, ::1]": "NDArray[np.float64]",
    "Py_ssize_t": "int",
    "int": "int",
    "long": "int",
    "bint": "bool",
    "double": "float",
    "float": "float",
    "tuple": "tuple[Any, ...]",
    "list": "list[Any]",
    "dict": "dict[str, Any]",
    "str": "str",
    "object": "Any",
    "cnp.ndarray": "NDArray[Any]",
}

#: Return types of the functions that return something, by
#: ``module.function`` (``*.name`` matches the function in every module).
RETURNS = {
    "*.workspace": "tuple[int, int]",
    "*.conv_workspace": "tuple[int, int]",
    "*.transpose_workspace": "tuple[int, int]",
    "*.weight_workspace": "tuple[int, int]",
    "_build.build_info": "dict[str, Any]",
    "_build.simd_level": "int",
    "_build.microkernel": "tuple[int, int, int, int]",
    "_build.fma_flops": "float",
    "_build.omp_max_threads": "int",
    "_depthwise.block": "tuple[int, int]",
    "_ocvec.shape": "tuple[int, int, int]",
    "_winograd_oc.block": "tuple[int, int]",
    "_dwrows.available": "bool",
    "_dwrows.items": "int",
    "_winograd_oc.items": "int",
    "_winograd_oc.workspace": "tuple[int, int]",
    "_dilated.tiles": "tuple[int, ...]",
    "_dilated.pieces": "int",
    "_dilated.positions": "int",
    "_fft.chunk": "int",
}

_DEF = re.compile(r"^def (\w+)\((.*?)\):", re.S | re.M)
_CLASS = re.compile(r"^cdef class (\w+):\n(.*?)(?=^\S|\Z)", re.S | re.M)


def _param(text: str, where: str) -> str:
    """One parameter of a ``def`` as it reads in a stub."""
    text = " ".join(text.split())
    default = None
    if "=" in text:
        text, default = (part.strip() for part in text.split("=", 1))
    decl = text.replace("const ", "").split()
    name = decl[-1]
    ctype = " ".join(decl[:-1])
    if not ctype:
        annotation = "Any"
    elif ctype in PARAM_TYPES:
        annotation = PARAM_TYPES[ctype]
    elif re.fullmatch(r"[A-Z]\w*", ctype):        # an extension type of the module
        annotation = ctype
    else:
        raise SystemExit(f"{where}: no Python type for the Cython type {ctype!r}: "
                         "add it to PARAM_TYPES")
    if default is not None:
        if default == "None" and annotation != "Any":
            annotation += " | None"
        return f"{name}: {annotation} = ..."
    return f"{name}: {annotation}"


def _split(text: str) -> list[str]:
    """The parameters of a signature: commas outside brackets separate them."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _params(text: str, where: str, skip_self: bool = False) -> str:
    parts = _split(text)
    if skip_self:
        parts = parts[1:]
    return ", ".join(_param(p, where) for p in parts)


def _body(source: str, start: int) -> str:
    """The indented body that follows position ``start`` (a def's colon)."""
    rest = source[start:]
    end = re.search(r"^\S", rest, re.M)
    return rest[:end.start()] if end else rest


def stub(pyx: Path) -> str:
    """The stub text of one kernel module."""
    module = pyx.stem
    source = pyx.read_text()
    lines = [f'"""Type stub of the compiled module ``pyconv._cy.{module}`` '
             f'(written by tools/gen_cy_stubs.py)."""',
             "",
             "from typing import Any",
             "",
             "import numpy as np",
             "from numpy.typing import NDArray",
             ""]
    for m in _CLASS.finditer(source):
        name, body = m.group(1), m.group(2)
        lines += ["", f"class {name}:"]
        for attrs in re.findall(r"^    cdef (?:readonly|public) (.*)$", body, re.M):
            ctype, _, names = attrs.partition(" ")
            for attr in (a.strip() for a in names.split(",")):
                lines.append(f"    {attr}: {PARAM_TYPES[ctype]}")
        init = re.search(r"^    def __(?:c)?init__\((.*?)\):", body, re.S | re.M)
        args = _params(init.group(1), f"{module}.{name}", skip_self=True) if init else ""
        lines.append(f"    def __init__(self{', ' if args else ''}{args}) -> None: ...")
    for m in _DEF.finditer(source):
        name = m.group(1)
        where = f"{module}.{name}"
        body = _body(source, m.end())
        if re.search(r"^\s+return \S", body, re.M):
            ret = RETURNS.get(where) or RETURNS.get(f"*.{name}")
            if ret is None:
                raise SystemExit(f"{where} returns a value: add its type to RETURNS")
        else:
            ret = "None"
        lines += ["", f"def {name}({_params(m.group(2), where)}) -> {ret}: ..."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report stubs that differ from their .pyx (exit 1)")
    args = parser.parse_args(argv)
    stale = []
    for pyx in sorted(CY_DIR.glob("_*.pyx")):
        pyi = pyx.with_suffix(".pyi")
        text = stub(pyx)
        if pyi.exists() and pyi.read_text() == text:
            continue
        stale.append(pyi.name)
        if not args.check:
            pyi.write_text(text)
    if args.check and stale:
        print("out of date (run python tools/gen_cy_stubs.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
