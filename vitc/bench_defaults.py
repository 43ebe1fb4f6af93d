"""The bench's timing defaults, in a module that imports nothing: BenchConfig takes them, and so do the timing
functions of benchmarks/timing.py, which the bench's worker processes load before their start time is taken."""

BENCH_THREADS = 2
BENCH_WARMUP = 10
BENCH_WARMUP_SECONDS = 1.0
BENCH_MIN_RUNS = 50
BENCH_MIN_SECONDS = 2.0
