"""asv benchmarks for pyconv (workloads defined once, in pyconv._cli.bench)."""
