"""Which implicit-GEMM tile shape the ``opencl`` backend should use on a GPU.

A developer tool: on a machine with a GPU and its OpenCL driver, ::

    python tools/gpu_tiles.py [--workloads conv2d,...] [--json tiles.json]

For each workload of ``python -m pyconv bench`` it notes which tile classes
(``large``/``mid``/``small``/``tiny``, :data:`pyconv._opencl._programs.TILE_CLASSES`)
its calls use, then times the call with each candidate shape put first in
that class (device arrays, ``queue.finish()`` after each call, median of
repeated calls).  It also times an empty-ish call (a 1x1x8 convolution) to
show the fixed cost of a call: Python, the plan lookup and the launches.
The results are the evidence for the GPU entries of ``TILE_CLASSES``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyconv  # noqa: E402
from pyconv import _registry  # noqa: E402
from pyconv._cli import bench  # noqa: E402
from pyconv._opencl import _programs  # noqa: E402
from pyconv._opencl._programs import Tiles  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_bench import _median_time, workloads_named  # noqa: E402

#: Candidates per class (each keeps TK % (TM / RM) == 0).
CANDIDATES = {
    "large": [Tiles(64, 64, 16, 4, 4), Tiles(128, 128, 16, 8, 8), Tiles(128, 64, 16, 8, 4),
              Tiles(64, 128, 16, 4, 8), Tiles(64, 64, 32, 4, 4), Tiles(64, 128, 8, 8, 8),
              Tiles(32, 128, 16, 4, 8), Tiles(32, 64, 16, 2, 4), Tiles(32, 32, 16, 4, 4)],
    "mid": [Tiles(16, 64, 16, 2, 4), Tiles(16, 128, 16, 2, 8), Tiles(16, 128, 16, 1, 8),
            Tiles(16, 256, 16, 2, 8), Tiles(16, 32, 16, 2, 4)],
    "small": [Tiles(1, 256, 16, 1, 4), Tiles(1, 512, 16, 1, 4), Tiles(1, 256, 16, 1, 2),
              Tiles(1, 128, 16, 1, 1), Tiles(1, 256, 16, 1, 1), Tiles(1, 64, 16, 1, 4)],
    "tiny": [Tiles(4, 16, 16, 1, 1), Tiles(4, 32, 16, 1, 2), Tiles(8, 32, 16, 1, 2)],
}
# the occupancy classes (few output tiles, many of them) try their plain class's shapes
CANDIDATES["large_few"] = [Tiles(32, 64, 16, 2, 4), Tiles(16, 64, 16, 2, 4)] + CANDIDATES["large"]
CANDIDATES["mid_many"] = [Tiles(16, 256, 16, 2, 8)] + CANDIDATES["mid"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="")
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    be = _registry.load_backend("opencl")
    # the GPU lists, also where a CPU driver runs this (a smoke test)
    _programs.tile_classes = lambda device: _programs.TILE_CLASSES
    sync = be.queue.finish
    original = dict(_programs.TILE_CLASSES)
    out = {"device": be.device.name.strip()}

    x = be.to_device(np.ones((1, 1, 8), np.float32))
    w = be.to_device(np.ones((1, 1, 1), np.float32))
    out["tiny_call"] = _median_time(lambda: pyconv.conv1d(x, w, backend="opencl"), sync, 0.3,
                                    max_calls=2000)
    print(json.dumps(out), flush=True)

    rows = []
    for wl in workloads_named(args.workloads):
        arrays = [be.to_device(a) if isinstance(a, np.ndarray) else a for a in wl.make_inputs()]
        call = bench.pyconv_callable(wl, "opencl", arrays)
        be.programs.clear()
        call()
        classes = sorted({key[4] for key in be.programs._tiles})
        row = {"label": wl.label, "classes": classes,
               "default": _median_time(call, sync, args.budget), "tried": {}}
        for cls in classes:
            for tiles in CANDIDATES[cls]:
                _programs.TILE_CLASSES[cls] = (tiles,) + original[cls]
                be.programs.clear()
                try:
                    call()
                    used = {t for t, _ in be.programs._tiles.values()}
                    if tiles in used:
                        row["tried"][f"{cls} {tiles.tm}x{tiles.tn}x{tiles.tk} "
                                     f"{tiles.rm}x{tiles.rn}"] = _median_time(call, sync,
                                                                              args.budget)
                except Exception as exc:  # a shape the device refuses is a result too
                    row["tried"][f"{cls} {tiles}"] = f"{type(exc).__name__}: {exc}"[:200]
                finally:
                    _programs.TILE_CLASSES[cls] = original[cls]
        timed = {k: v for k, v in row["tried"].items() if isinstance(v, float)}
        if timed:
            best = min(timed, key=timed.get)
            row["best"], row["best_time"] = best, timed[best]
        rows.append(row)
        print(json.dumps(row), flush=True)
    out["rows"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
