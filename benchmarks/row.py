"""One bench row: a typed record per artifact (target x precision), filled by the bench in its phases (load and
accuracy, timing rounds, summary) and serialized here only: `to_json()` is what bench.json, bench.csv and the
report read."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class BenchRow:
    artifact: str
    target: str
    precision: str
    path: str | None
    threads: int
    status: str = ""  # ok | validation failed | skipped: why | error: what
    size_mb: float | None = None
    # what the artifact is
    baseline: str | None = None  # a by-hand baseline: how it was made (benchmarks/baselines.py)
    control: str | None = None  # the by-hand recipe on vitc's graph (baselines.CONTROL)
    source: str | None = None  # the checkpoint it was exported from
    nncf: str | None = None  # which NNCF settings made an int8 IR
    gflops_exported: float | None = None  # the head-tokens graph's GFLOPs, when it differs from the model's
    # int8 dot-product paths (vitc/isa.py): timed_on (this host), validated_on (the exporting host), int8_isa (the
    # CPUs an int8 artifact was built for: portable | vnni)
    isa: dict | None = None
    # accuracy, on `split` of `data`
    data: str | None = None
    split: str | None = None
    top1: float | None = None
    top1_fp32: float | None = None
    agreement: float | None = None  # percent of images whose top-1 equals fp32 PyTorch's
    max_abs_diff: float | None = None
    # timing
    p50_ms: float | None = None
    latency: dict | None = None  # batch, p50/p90/p99/mean/std, per-round p50s, spread
    throughput: dict | None = None  # batch -> images/s
    worker: dict | None = None  # isolated, torch_imported, runtimes, load_s
    gflops_per_image: float | None = None
    peak_kind: str | None = None
    peak_gflops: float | None = None
    floor_ms: float | None = None
    efficiency: float | None = None
    crosscheck: dict | None = None  # benchmark_app / bare ORT loop in the same rounds
    # serving, in the isolated worker (benchmarks/serving.py): JPEG bytes -> top-5, process start -> first result, RSS
    preprocess: str | None = None  # python | in-graph: where normalize and transpose run
    e2e: dict | None = None  # p50_ms, preprocess_p50_ms (median of the rounds)
    cold_start: dict | None = None  # total_s, start_s, load_s, first_call_s (median of the rounds)
    rss_mb: dict | None = None  # peak_mb (max over rounds), end_mb
    flags: list | None = None  # unstable, disagrees with ...
    bench_s: float | None = None

    def to_json(self) -> dict:
        """The one serialization: unset fields are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}
