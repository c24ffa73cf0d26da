"""asv benchmarks for pyconv (workloads defined once, in pyconv._bench)."""
