"""Latency and throughput of one callable: warm-up, then at least N runs *and* T seconds.

Inputs are prepared by the caller outside the timed region; each call is timed on its own with
perf_counter_ns so the percentiles are real per-inference latencies, not a mean in disguise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from vitc.bench_defaults import BENCH_MIN_RUNS, BENCH_MIN_SECONDS, BENCH_WARMUP, BENCH_WARMUP_SECONDS

SPREAD_LIMIT = 1.25  # max/min of a row's round p50s above this marks the row unstable
AGREE = (0.9, 1.1)  # a row's p50 / its cross-check tool's median outside this: the row disagrees


@dataclass
class Timing:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    samples_ms: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "samples_ms"}


def _summary_ms(ms: np.ndarray) -> Timing:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Timing(
        len(ms),
        float(p50),
        float(p90),
        float(p99),
        float(ms.mean()),
        float(ms.std(ddof=1) if len(ms) > 1 else 0.0),
        float(ms.min()),
        ms,
    )


def _summary(samples_ns: list[int]) -> Timing:
    return _summary_ms(np.asarray(samples_ns, dtype=np.float64) / 1e6)


def over_rounds(rounds: list[Timing]) -> dict:
    """Several timing runs of one artifact (rounds interleaved with the other artifacts): p50 is the
    median of the rounds' p50s (what "median of several runs" means); tails, mean and std come from
    all samples pooled; the per-round p50s show the spread the machine caused."""
    pooled = _summary_ms(np.concatenate([t.samples_ms for t in rounds]))
    p50s = [t.p50_ms for t in rounds]
    return {**pooled.to_json(), "p50_ms": float(np.median(p50s)), "p50_rounds_ms": p50s, "rounds": len(rounds)}


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a/b of two rows timed in the same interleaved rounds."""
    return float(np.median([x / y for x, y in zip(a, b)]))


def _warm_up(step: Callable[[], None], warmup: int, warmup_seconds: float, min_runs: int, min_seconds: float) -> None:
    """Check the settings, then warm up by count *and* time (on this VM the first ~second of load
    runs up to 1.6x slower: OpenVINO int8 p50 1.32 ms in the first second, 0.80-0.84 ms after)."""
    if min_runs < 1 or min_seconds < 0 or warmup < 0 or warmup_seconds < 0:
        raise ValueError("need min_runs >= 1, min_seconds >= 0 and warmup >= 0")
    n, end = 0, time.perf_counter_ns() + int(warmup_seconds * 1e9)
    while n < warmup or time.perf_counter_ns() < end:
        step()
        n += 1


def time_calls(
    fn: Callable[[np.ndarray], object],
    x: np.ndarray,
    *,
    warmup: int = BENCH_WARMUP,
    warmup_seconds: float = BENCH_WARMUP_SECONDS,
    min_runs: int = BENCH_MIN_RUNS,
    min_seconds: float = BENCH_MIN_SECONDS,
    max_runs: int = 100_000,
) -> Timing:
    _warm_up(lambda: fn(x), warmup, warmup_seconds, min_runs, min_seconds)
    samples: list[int] = []
    deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter_ns() < deadline):
        t0 = time.perf_counter_ns()
        fn(x)
        samples.append(time.perf_counter_ns() - t0)
    return _summary(samples)


def time_paired(
    fa: Callable[[np.ndarray], object],
    fb: Callable[[np.ndarray], object],
    x: np.ndarray,
    *,
    warmup: int = BENCH_WARMUP,
    warmup_seconds: float = BENCH_WARMUP_SECONDS,
    min_runs: int = BENCH_MIN_RUNS,
    min_seconds: float = BENCH_MIN_SECONDS,
) -> tuple[Timing, Timing]:
    """Two implementations of one thing timed call by call in alternation (a, b, a, b, ...) so both
    see the same machine: this VM's speed drifts up to 2x within seconds, and two separate loops,
    even interleaved in rounds, then compare the drift rather than the code."""

    def both():
        fa(x)
        fb(x)

    _warm_up(both, warmup, warmup_seconds, min_runs, min_seconds)
    ta: list[int] = []
    tb: list[int] = []
    deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
    while len(ta) < min_runs or time.perf_counter_ns() < deadline:
        t0 = time.perf_counter_ns()
        fa(x)
        t1 = time.perf_counter_ns()
        fb(x)
        ta.append(t1 - t0)
        tb.append(time.perf_counter_ns() - t1)
    return _summary(ta), _summary(tb)


def images_per_second(t: Timing, batch: int) -> float:
    """Throughput from the median batch latency (robust to a slow outlier run)."""
    return batch / (t.p50_ms / 1e3)
