"""pyconv on Dask arrays against the same call in memory (docs/dask.rst).

Workloads (float32, zero padding 1, 3x3(x3) kernels):

* ``conv2d``: input ``(32, 64, 256, 256)`` (512 MiB), weight ``(64, 64, 3, 3)``,
  chunks ``(2, 64, 256, 256)`` (32 MiB, 16 blocks);
* ``conv3d``: input ``(2, 32, 128, 128, 128)`` (512 MiB), weight ``(32, 32, 3, 3, 3)``,
  chunks ``(1, 32, 16, 128, 128)`` (32 MiB, 16 blocks);
* ``conv3d_c16``: input ``(2, 16, 96, 128, 128)`` (192 MiB), weight
  ``(16, 16, 3, 3, 3)``, chunks ``(1, 16, 24, 128, 128)`` (24 MiB, 8 blocks):
  few channels, so little arithmetic per byte moved;
* ``conv3d_whole``: input ``(4, 32, 64, 128, 128)`` (512 MiB), weight
  ``(32, 32, 3, 3, 3)``, chunks ``(1, 32, 64, 128, 128)`` (128 MiB, 4
  blocks): volumes chunked along the batch only, as docs/dask.rst advises
  (no halo, no window copy).

Schedulers: ``distributed`` (a ``LocalCluster`` with two process workers of
one thread each; the input is persisted on the workers first, a contiguous
run of batch chunks on each, and the result is persisted there, as a
pipeline stage would leave it) and ``threads``
(Dask's threaded scheduler on a NumPy array wrapped with ``from_array``,
result persisted in this process).  The in-memory baseline is the same
call on the whole NumPy array (the ``cython`` backend on all threads).

Every timed call gets a weight differing in the last bits (the graph keys
depend on the weight's bytes: an identical call would find its result
already persisted).

As a script, ``python bench_dask.py [--rounds N] [--sweep]`` times the
three side by side, interleaved round by round (alternating the order), and
prints the median times, the CPU seconds of all processes (workers
included) and the ratio in-memory time / Dask time of each round (median and
quartiles: 1.0 is the in-memory throughput) and how many input chunks each
worker holds; ``--setups`` picks the cluster set-ups (:data:`SETUPS`: the
input where the scheduler put it or spread, default or quiet settings),
``--sweep`` also tries several chunk sizes of the conv2d workload.
"""

import argparse
import time

import numpy as np

WORKLOADS = {
    "conv2d": dict(shape=(32, 64, 256, 256), weight=(64, 64, 3, 3), chunks=(2, 64, 256, 256)),
    "conv3d": dict(shape=(2, 32, 128, 128, 128), weight=(32, 32, 3, 3, 3),
                   chunks=(1, 32, 16, 128, 128)),
    "conv3d_c16": dict(shape=(2, 16, 96, 128, 128), weight=(16, 16, 3, 3, 3),
                       chunks=(1, 16, 24, 128, 128)),
    "conv3d_whole": dict(shape=(4, 32, 64, 128, 128), weight=(32, 32, 3, 3, 3),
                         chunks=(1, 32, 64, 128, 128)),
}
SWEEP = [(8, 64, 256, 256), (4, 64, 256, 256), (2, 64, 256, 256), (1, 64, 128, 256),
         (1, 64, 64, 256), (1, 64, 32, 128)]


def _require():
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:  # asv: skip
        raise NotImplementedError(f"needs pyconv[dask]: {exc}")


#: ``dask.distributed`` settings that keep an idle cluster from taking CPU time
#: from the computation on a small machine (measured here, idle, per second:
#: 0.19 CPU s with the defaults, 0.04 with these): the workers' statistical
#: profiler (a stack sample of every thread every 10 ms) off, the event-loop
#: health check every 200 ms instead of 20 ms, the memory monitor every
#: second instead of every 100 ms, the system monitor every 5 s.
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "200ms",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}


def _cluster(local_cluster, config=None):
    """Two process workers of one thread each (``config``: dask settings, e.g.
    :data:`QUIET_CLUSTER`, for the scheduler and, through the nannies, the workers).

    A nanny leaves its workers' environment (``OMP_NUM_THREADS=1``...) in
    this process; it is put back, or the in-memory baseline would run on
    one thread.
    """
    import os

    import dask

    keys = dask.config.get("distributed.nanny.pre-spawn-environ", {})
    saved = {k: os.environ.get(k) for k in keys}
    with dask.config.set(config or {}):
        cluster = local_cluster(n_workers=2, threads_per_worker=1, processes=True,
                                dashboard_address=None, silence_logs=50)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return cluster


def _spread(client, source):
    """``source`` persisted as even runs of whole batch chunks, one run per worker.

    Where the chunks of a generated array end up is the scheduler's choice
    (and an earlier ``compute()`` of it joined them all on one worker, after
    which the active memory manager could leave every chunk there: 16 of 16,
    twice); a worker without its blocks' chunks fetches them (32 MiB each)
    before computing: a cost of the data's placement, not of the
    convolution.  A pipeline reading its input from storage (Zarr) spreads
    it over the workers; this gives each worker a contiguous run of batch
    chunks, so blocks that gather a halo find their neighbours on the same
    worker.
    """
    import dask.array as da

    workers = sorted(client.scheduler_info()["workers"])
    bounds = np.cumsum((0,) + source.chunks[0])
    nblocks = len(source.chunks[0])
    if nblocks < len(workers):
        raise ValueError(f"{nblocks} batch chunks for {len(workers)} workers")
    edges = [nblocks * i // len(workers) for i in range(len(workers) + 1)]
    parts = [client.persist(source[bounds[lo]:bounds[hi]], workers=[w])
             for w, lo, hi in zip(workers, edges, edges[1:])]
    return client.persist(da.concatenate(parts, axis=0))


def _gathered(client, x):
    """The persisted Dask array ``x`` as one NumPy array, assembled in this process.

    (``compute()`` would join the chunks on one worker first, leaving copies
    of the other worker's chunks there.)
    """
    from distributed import futures_of

    out = np.empty(x.shape, dtype=x.dtype)
    starts = [np.cumsum((0,) + c) for c in x.chunks]
    futures = futures_of(x)
    for future, block in zip(futures, client.gather(futures)):
        index = future.key[1:]
        out[tuple(slice(s[i], s[i + 1]) for s, i in zip(starts, index))] = block
    return out


def _placement(client, x):
    """How many of ``x``'s chunks each worker holds, e.g. ``'8+8'``."""
    from collections import Counter

    held = Counter(addr for holders in client.who_has(x).values() for addr in holders)
    return "+".join(str(held[w]) for w in sorted(client.scheduler_info()["workers"]))


class Runner:
    """The three ways of running one workload, each returning once the result exists."""

    def __init__(self, workload, chunks=None, config=None, spread=True):
        import dask.array as da
        from distributed import Client, LocalCluster, futures_of, wait

        import pyconv

        spec = WORKLOADS[workload]
        self.chunks = chunks or spec["chunks"]
        self.op = getattr(pyconv, f"conv{len(spec['shape']) - 2}d")
        self.weight = (np.random.default_rng(0).standard_normal(spec["weight"])
                       .astype(np.float32) * np.float32(0.05))
        self.cluster = _cluster(LocalCluster, config)
        self.client = Client(self.cluster, set_as_default=False)
        def settle(collection):
            with self.client.as_current():
                wait(futures_of(collection))

        self._wait = settle
        source = da.random.default_rng(0).standard_normal(spec["shape"], chunks=self.chunks,
                                                           dtype=np.float32)
        self.xd = _spread(self.client, source) if spread else self.client.persist(source)
        self._wait(self.xd)
        self.x = _gathered(self.client, self.xd)
        self.placement = _placement(self.client, self.xd)
        self.xt = da.from_array(self.x, chunks=self.chunks)  # hashed once, not per call
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
        self.op(self.xt, self.fresh_weight(), padding=1).persist(scheduler="threads")

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


def _cpu_seconds():
    """CPU seconds used so far by this process and its children (the workers)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me] + me.children(recursive=True):
        try:
            t = proc.cpu_times()
        except psutil.Error:  # a process that just ended
            continue
        total += t.user + t.system
    return total


def compare(workload, rounds, chunks=None, schedulers=("distributed", "threads"), config=None,
            spread=True):
    """Per-round times and ratios of in-memory and Dask calls, interleaved.

    Each round times the in-memory call and each scheduler once, in an
    order that alternates from round to round; the ratio of a round is its
    in-memory time over its Dask time, so that both saw the same load.
    Returns ``{name: {"time": median s, "cpu": median CPU s, "ratio":
    (median, q1, q3)}}``.
    """
    runner = Runner(workload, chunks, config, spread)
    try:
        fns = {"in-memory": runner.in_memory}
        fns.update({s: getattr(runner, s) for s in schedulers})
        for fn in fns.values():
            fn()  # warm up
        times = {name: [] for name in fns}
        cpus = {name: [] for name in fns}
        order = list(fns)
        for r in range(rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                c0 = _cpu_seconds()
                times[name].append(_timed(fns[name]))
                cpus[name].append(_cpu_seconds() - c0)
        out = {}
        for name in fns:
            ratios = np.array(times["in-memory"]) / np.array(times[name])
            out[name] = {"time": float(np.median(times[name])),
                         "cpu": float(np.median(cpus[name])),
                         "ratio": tuple(float(np.percentile(ratios, q)) for q in (50, 25, 75))}
        out["placement"] = f"{runner.placement}, after {_placement(runner.client, runner.xd)}"
        return out
    finally:
        runner.close()


def _row(label, res):
    parts = [f"{label:<40s} in-memory {res['in-memory']['time']:6.3f} s "
             f"({res['in-memory']['cpu']:5.2f} CPU s)"]
    for name in ("distributed", "threads"):
        if name in res:
            r = res[name]
            parts.append(f"{name} {r['time']:6.3f} s ({r['cpu']:5.2f} CPU s) ratio "
                         f"{r['ratio'][0]:.2f} [{r['ratio'][1]:.2f}-{r['ratio'][2]:.2f}]")
    parts.append(f"input chunks per worker {res['placement']}")
    return "  ".join(parts)


#: The cluster set-ups of the script: (input spread over the workers, dask settings).
SETUPS = {
    "natural": (False, None),       # input where the scheduler put it when generated
    "spread": (True, None),         # input in even runs per worker, default settings
    "quiet": (True, QUIET_CLUSTER),  # the same, and a quiet idle cluster
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sweep", action="store_true", help="also try other conv2d chunks")
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--setups", nargs="*", default=["spread", "quiet"], choices=list(SETUPS),
                        help="distributed cluster set-ups (the threaded scheduler runs with "
                        "the first)")
    args = parser.parse_args(argv)
    import os

    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()}; ratio = in-memory time / "
          "Dask time of the same round: median [quartiles] over the rounds")
    for name in args.workloads:
        spec = WORKLOADS[name]
        mib = np.prod(spec["chunks"]) * 4 / 2**20
        for i, setup in enumerate(args.setups):
            schedulers = ("distributed", "threads") if i == 0 else ("distributed",)
            res = compare(name, args.rounds, None, schedulers, *SETUPS[setup][::-1])
            print(_row(f"{name} {spec['shape']} / {spec['chunks']} {mib:g} MiB [{setup}]", res),
                  flush=True)
    if args.sweep:
        spread, config = SETUPS[args.setups[-1]]
        for chunks in SWEEP:
            res = compare("conv2d", args.rounds, chunks, ("distributed",), config, spread)
            mib = np.prod(chunks) * 4 / 2**20
            print(_row(f"conv2d chunks {chunks} {mib:g} MiB [{args.setups[-1]}]", res),
                  flush=True)
    print(f"load average {os.getloadavg()}")

if __name__ == "__main__":
    main()
