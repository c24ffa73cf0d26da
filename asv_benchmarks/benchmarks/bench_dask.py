"""pyconv on Dask arrays against the same call in memory (docs/dask.rst).

Workloads (float32, zero padding 1, 3x3(x3) kernels):

* ``conv2d``: input ``(16, 64, 256, 256)`` (256 MiB), weight ``(64, 64, 3, 3)``,
  chunks ``(2, 64, 128, 256)`` (16 MiB, 16 blocks);
* ``conv3d``: input ``(2, 16, 96, 128, 128)`` (192 MiB), weight ``(16, 16, 3, 3, 3)``,
  chunks ``(1, 16, 12, 128, 128)`` (12 MiB, 16 blocks).

Schedulers: ``distributed`` (a ``LocalCluster`` with two process workers of
one thread each; the input is persisted on the workers first and the result
is persisted there, as a pipeline stage would leave it) and ``threads``
(Dask's threaded scheduler on a NumPy array wrapped with ``from_array``,
result persisted in this process).  The in-memory baseline is the same
call on the whole NumPy array (the ``cython`` backend on all threads).

Every timed call gets a weight differing in the last bits (the graph keys
depend on the weight's bytes: an identical call would find its result
already persisted).

As a script, ``python bench_dask.py [--rounds N] [--sweep]`` times the
three side by side, interleaved round by round, and prints the medians and
the ratios (in-memory time / Dask time: 1.0 is the in-memory throughput);
``--sweep`` also tries several chunk sizes of the conv2d workload.
"""

import argparse
import time

import numpy as np

WORKLOADS = {
    "conv2d": dict(shape=(16, 64, 256, 256), weight=(64, 64, 3, 3), chunks=(2, 64, 128, 256)),
    "conv3d": dict(shape=(2, 16, 96, 128, 128), weight=(16, 16, 3, 3, 3),
                   chunks=(1, 16, 12, 128, 128)),
}
SWEEP = [(8, 64, 256, 256), (4, 64, 256, 256), (2, 64, 128, 256), (1, 64, 64, 256),
         (1, 64, 32, 128), (1, 64, 16, 64)]


def _require():
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:  # asv: skip
        raise NotImplementedError(f"needs pyconv[dask]: {exc}")


class Runner:
    """The three ways of running one workload, each returning once the result exists."""

    def __init__(self, workload, chunks=None):
        import dask.array as da
        from distributed import Client, LocalCluster, futures_of, wait

        import pyconv

        spec = WORKLOADS[workload]
        self.chunks = chunks or spec["chunks"]
        self.op = getattr(pyconv, f"conv{len(spec['shape']) - 2}d")
        self.weight = (np.random.default_rng(0).standard_normal(spec["weight"])
                       .astype(np.float32) * np.float32(0.05))
        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    dashboard_address=None, silence_logs=40)
        self.client = Client(self.cluster, set_as_default=False)
        def settle(collection):
            with self.client.as_current():
                wait(futures_of(collection))

        self._wait = settle
        source = da.random.default_rng(0).standard_normal(spec["shape"], chunks=self.chunks,
                                                           dtype=np.float32)
        self.xd = self.client.persist(source)
        self._wait(self.xd)
        self.x = self.client.compute(self.xd).result()
        self.calls = 0

    def fresh_weight(self):
        self.calls += 1
        return self.weight * np.float32(1 + 1e-6 * self.calls)

    def in_memory(self):
        self.op(self.x, self.fresh_weight(), padding=1)

    def distributed(self):
        y = self.client.persist(self.op(self.xd, self.fresh_weight(), padding=1))
        self._wait(y)
        del y

    def threads(self):
        import dask.array as da

        xd = da.from_array(self.x, chunks=self.chunks)
        self.op(xd, self.fresh_weight(), padding=1).persist(scheduler="threads")

    def close(self):
        self.client.close()
        self.cluster.close()


class DaskThroughput:
    """Wall time of one Dask call, and its throughput relative to the in-memory call."""

    params = [list(WORKLOADS), ["distributed", "threads"]]
    param_names = ["workload", "scheduler"]
    timeout = 900
    number = 1
    repeat = 3

    def setup(self, workload, scheduler):
        _require()
        self.runner = Runner(workload)
        self.fn = getattr(self.runner, scheduler)
        self.fn()  # warm up: workers import pyconv, caches filled

    def teardown(self, workload, scheduler):
        self.runner.close()

    def time_dask(self, workload, scheduler):
        self.fn()

    def track_ratio_to_in_memory(self, workload, scheduler):
        # in-memory time / Dask time, medians of 3 interleaved pairs
        pairs = [(_timed(self.runner.in_memory), _timed(self.fn)) for _ in range(3)]
        return float(np.median([m for m, _ in pairs]) / np.median([d for _, d in pairs]))

    track_ratio_to_in_memory.unit = "ratio"


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(workload, rounds, chunks=None, schedulers=("distributed", "threads")):
    """Median seconds of in-memory and each scheduler, timed interleaved round by round."""
    runner = Runner(workload, chunks)
    try:
        fns = {"in-memory": runner.in_memory}
        fns.update({s: getattr(runner, s) for s in schedulers})
        for fn in fns.values():
            fn()  # warm up
        times = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                times[name].append(_timed(fn))
        return {name: float(np.median(t)) for name, t in times.items()}
    finally:
        runner.close()


def _row(label, med):
    base = med["in-memory"]
    parts = [f"{label:<34s} in-memory {base:7.3f} s"]
    for name in ("distributed", "threads"):
        if name in med:
            parts.append(f"{name} {med[name]:7.3f} s ({base / med[name]:.2f})")
    return "  ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="also try other conv2d chunks")
    args = parser.parse_args(argv)
    import os

    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()}; "
          "ratio = in-memory time / Dask time (medians)")
    for name in WORKLOADS:
        print(_row(f"{name} {WORKLOADS[name]['chunks']}", compare(name, args.rounds)),
              flush=True)
    if args.sweep:
        for chunks in SWEEP:
            med = compare("conv2d", args.rounds, chunks, ("distributed",))
            mib = np.prod(chunks) * 4 / 2**20
            print(_row(f"conv2d {chunks} {mib:g} MiB", med), flush=True)


if __name__ == "__main__":
    main()
