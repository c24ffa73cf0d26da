"""Build script: the pure-Python package plus the Cython/OpenMP kernel modules of ``pyconv._cy``.

``pip install .`` (or ``pip install -e .``) builds the extensions with no
extra step: one extension module per ``pyconv/_cy/*.pyx`` file (a path's
kernels; see ``pyconv/_cy/__init__.py``), all sharing ``_common.pxd`` and
the C headers ``_kernels.h`` and ``kernels/*.h``.  At build time this script

* compiles **and runs** a tiny OpenMP program with the compiler setuptools
  picked.  If that works the extension is built with OpenMP; otherwise a
  warning is printed and a working serial extension is built (the backend
  reports ``openmp: False`` in ``python -m pyconv``).  ``PYCONV_FAIL_NO_OPENMP=1``
  turns the missing OpenMP into a build error (for CI);
* checks that GCC ``target_clones`` works (runtime dispatch of the inner
  loops to AVX-512 / AVX2+FMA / baseline code).  The default build is
  portable: no ``-march=native``;
* cythonizes with ``boundscheck=False, wraparound=False, cdivision=True``,
  or with every check on when ``PYCONV_CYTHON_DEBUG=1``, and compiles the
  modules in parallel.

Supported platforms: Linux and macOS with GCC or Clang (the kernels use GCC
vector extensions, ``restrict`` and ``posix_memalign``).  Windows would need
MinGW-w64 or clang-cl and is not supported.

Generated C goes under ``build/`` (never into the source tree nor the sdist).
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CY_DIR = os.path.join("pyconv", "_cy")

OPENMP_TEST = textwrap.dedent("""\
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel num_threads(2) reduction(+:n)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads());
        return n == 2 ? 0 : 1;
    }
    """)

CLONES_TEST = textwrap.dedent("""\
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    static void axpy(long n, float a, const float *restrict x, float *restrict y)
    { for (long i = 0; i < n; i++) y[i] += a * x[i]; }
    int main(void) {
        float x[4] = {1, 2, 3, 4}, y[4] = {0, 0, 0, 0};
        axpy(4, 2.0f, x, y);
        return y[3] == 8.0f ? 0 : 1;
    }
    """)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _try_program(compiler, source, compile_args, link_args):
    """Compile, link and run ``source``; True when it ran and exited 0."""
    tmp = tempfile.mkdtemp(prefix="pyconv-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write(source)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        exe = os.path.join(tmp, "probe")
        compiler.link_executable(objects, exe, output_dir=tmp, extra_postargs=link_args)
        subprocess.run([exe], check=True, capture_output=True, timeout=60)
        return True
    except Exception:  # any compile, link or run failure means "not available"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_flags(compiler):
    """(compile, link) flags for OpenMP with this compiler, or None."""
    if sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        if _try_program(compiler, OPENMP_TEST, cflags, lflags):
            return cflags, lflags
    return None


class BuildExt(build_ext):
    """build_ext that cythonizes lazily and probes OpenMP / target_clones."""

    def finalize_options(self):
        from Cython.Build import cythonize

        debug = _env_flag("PYCONV_CYTHON_DEBUG")
        directives = {
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "cdivision": not debug,
            "initializedcheck": debug,
            "nonecheck": debug,
            "embedsignature": True,
        }
        self.distribution.ext_modules[:] = cythonize(
            self.distribution.ext_modules,
            compiler_directives=directives,
            build_dir=os.path.join("build", "cython"),
            quiet=True,
        )
        # setuptools' finalize_options annotates the extension objects, so it
        # runs after cythonize() has replaced them
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def get_source_files(self):
        # what sdist ships: the Cython sources and the C headers, never the
        # generated C that finalize_options put in the extension's sources
        return PYX_SOURCES + SHARED_SOURCES

    def build_extensions(self):
        compiler = self.compiler
        # -g0: no debug info (it doubles the compile time of the Cython modules)
        compile_args = ["-O3", "-g0", "-fno-math-errno", "-Wno-unused-function",
                        "-Wno-maybe-uninitialized", "-Wno-unreachable-code"]
        link_args, macros = [], []
        omp = _openmp_flags(compiler)
        if omp is None:
            msg = "pyconv: the C compiler cannot build and run an OpenMP program"
            if _env_flag("PYCONV_FAIL_NO_OPENMP"):
                raise RuntimeError(msg + " and PYCONV_FAIL_NO_OPENMP=1 is set")
            msg += ("; building the cython backend WITHOUT OpenMP (serial). "
                    "Set PYCONV_FAIL_NO_OPENMP=1 to make this an error.")
            warnings.warn(msg)
            print(msg, file=sys.stderr)
        else:
            compile_args += omp[0]
            link_args += omp[1]
        if _try_program(compiler, CLONES_TEST, ["-O2"], []):
            macros.append(("PYCONV_USE_TARGET_CLONES", "1"))
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + compile_args
            ext.extra_link_args = list(ext.extra_link_args or []) + link_args
            ext.define_macros = list(ext.define_macros or []) + macros
        super().build_extensions()


#: One extension module per kernel file; every module sees the shared files.
PYX_SOURCES = sorted(glob.glob(os.path.join(CY_DIR, "*.pyx")))
SHARED_SOURCES = ([os.path.join(CY_DIR, "_common.pxd"), os.path.join(CY_DIR, "_wino.pxd"),
                   os.path.join(CY_DIR, "_kernels.h")]
                  + sorted(glob.glob(os.path.join(CY_DIR, "kernels", "*.h"))))

extensions = [
    Extension(
        "pyconv._cy." + os.path.splitext(os.path.basename(src))[0],
        sources=[src],
        include_dirs=[CY_DIR, numpy.get_include()],
        # NumPy's C API (the kernels' array checks), without its deprecated names
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=SHARED_SOURCES,
    )
    for src in PYX_SOURCES
]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
