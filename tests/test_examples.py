"""The gallery scripts (``examples/plot_*.py``) run and draw a figure.

Each script runs in a fresh interpreter with the non-interactive Agg
backend and the default pyconv backend (``PYCONV_BACKEND`` removed), from a
temporary directory, the way sphinx-gallery runs it when the docs are
built.  The scripts check their own numbers with ``assert`` (against NumPy
formulations, identities between the ops, or a falling loss), so exit status
0 means those checks passed too.  A matplotlib warning or a NumPy floating
point warning counts as a failure.  ``PYCONV_EXAMPLE_REPEATS`` keeps the
timing example short.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))

# run the script as __main__, then require at least one open figure
RUNNER = """
import runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
runpy.run_path(sys.argv[1], run_name="__main__")
n = len(plt.get_fignums())
assert n >= 1, "the example drew no figure"
print(f"[{n} figure(s)]")
"""


def test_the_gallery_is_there():
    assert (EXAMPLES / "README.txt").is_file()
    names = {p.name for p in SCRIPTS}
    assert {"plot_transposed_upsampling.py", "plot_padding_modes.py",
            "plot_edge_detection.py", "plot_volume_upsampling.py",
            "plot_train_conv1d.py", "plot_backend_timing.py", "plot_port_unet1d.py",
            "plot_scipy_filtering.py", "plot_dask_out_of_core.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs(script, tmp_path):
    pytest.importorskip("matplotlib",
                        reason="the gallery needs matplotlib (pip install -e .[docs])")
    # a docstring title first, as sphinx-gallery requires
    source = script.read_text(encoding="utf-8")
    assert source.lstrip().startswith('"""'), "an example starts with its reST docstring"
    env = dict(os.environ, MPLBACKEND="Agg", PYCONV_EXAMPLE_REPEATS="2")
    env.pop("PYCONV_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-W", "error::RuntimeWarning",
         "-c", RUNNER, str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"{script.name} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}")
    assert "figure(s)]" in proc.stdout
