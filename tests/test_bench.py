"""vitc bench on a tiny model with few runs: statuses, one failure never stops the others, the JSON
schema, report files. No speed is asserted here: speed targets live in benchmarks/ and results/."""

import csv
import json
import shutil
import time

import numpy as np
import pytest
import torch

from vitc import checkpoint as ckpt
from vitc.benchmarks import peak
from vitc.benchmarks.bench import BenchConfig, run_bench
from vitc.benchmarks.timing import time_calls, time_paired
from vitc.errors import ConfigError, VitcError

QUICK = dict(threads=1, batch=(1, 4), warmup=1, warmup_seconds=0.0, min_runs=3, min_seconds=0.0, repeats=2)
FAKE_PEAKS = {
    "threads": 1,
    "gflops": {"fp32": 100.0, "bf16": 200.0, "int8": 400.0},
    "method": {"int8": "fake", "statistic": "fake", "all": {}},
}


def test_time_calls_measures_each_call():
    t = time_calls(lambda x: time.sleep(0.002), None, warmup=1, warmup_seconds=0, min_runs=7, min_seconds=0)
    assert t.runs == 7
    assert 2.0 <= t.min_ms <= t.p50_ms <= t.p90_ms <= t.p99_ms  # a 2 ms sleep cannot be timed shorter
    with pytest.raises(ValueError):
        time_calls(lambda x: None, None, min_runs=0)


def test_only_the_latency_batch_gets_the_process_warm_up(monkeypatch):
    """The worker's timed warm-up is for a cold process: the latency batch gets warmup_seconds, a
    throughput batch timed after it in the same process gets at most LATER_WARMUP_S (and its count)."""
    from vitc.benchmarks import worker

    seen = []

    def fake(fn, x, **kw):
        seen.append((len(x), kw))
        return time_calls(fn, x, **{**kw, "warmup_seconds": 0, "min_seconds": 0, "min_runs": 2})

    monkeypatch.setattr(worker, "time_calls", fake)
    timing = {"warmup": 7, "warmup_seconds": 0.5, "min_runs": 20, "min_seconds": 0.5}
    res = worker.time_artifact(lambda x: x.sum(), [(1, np.ones((1, 3))), (16, np.ones((16, 3)))], timing)
    assert [b["batch"] for b in res] == [1, 16] and "samples_ms" in res[0] and "samples_ms" not in res[1]
    assert seen[0] == (1, timing)
    assert seen[1] == (16, {**timing, "warmup_seconds": worker.LATER_WARMUP_S})
    assert worker.LATER_WARMUP_S < timing["warmup_seconds"]


def test_time_paired_keeps_the_two_apart():
    ta, tb = time_paired(
        lambda x: time.sleep(0.004),
        lambda x: time.sleep(0.001),
        None,
        warmup=1,
        warmup_seconds=0,
        min_runs=5,
        min_seconds=0,
    )
    assert ta.runs == tb.runs >= 5
    assert ta.min_ms >= 4.0 and 1.0 <= tb.min_ms < ta.p50_ms  # each sample timed its own function


def test_peaks_are_measured_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(peak, "measure", lambda threads: calls.append(threads) or {**FAKE_PEAKS, "threads": threads})
    assert peak.peaks(1)["gflops"]["int8"] == 400.0 and peak.peaks(1)["cached"]
    assert calls == [1]
    peak.peaks(1, remeasure=True)
    assert calls == [1, 1]
    peak.cache_path(1).write_text("{broken")
    peak.peaks(1)
    assert calls == [1, 1, 1]  # a broken cache is re-measured, not trusted


def test_peak_probe_measures_all_three_precisions(monkeypatch):
    monkeypatch.setattr(peak, "SIZES", (128,))
    p = peak.measure(1, reps=1, warmup_seconds=0)
    assert set(p["gflops"]) == {"fp32", "bf16", "int8"} and all(v > 0 for v in p["gflops"].values())
    assert "MatMulInteger" in p["method"]["int8"] and p["threads"] == 1
    assert set(p["method"]["all"]["fp32"]) == {"torch.mm float32 (MKL)", "onnxruntime MatMul float32 (MLAS)"}
    assert p["gflops"]["fp32"] == max(p["method"]["all"]["fp32"].values())


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_ckpt):
    from vitc.export.stage import export_checkpoint

    out = tmp_path_factory.mktemp("exports")
    export_checkpoint(tiny_ckpt, "onnx", "fp32", out, threads=1)
    export_checkpoint(tiny_ckpt, "onnx", "int8", out, calib="digits", calib_size=16, threads=1)
    return out


def _bench(tmp_path, monkeypatch, paths, **kw):
    monkeypatch.setattr(peak, "peaks", lambda threads, remeasure=False: FAKE_PEAKS)
    return run_bench(paths, tmp_path / "report", BenchConfig(**{**QUICK, **kw}))


def test_bench_rows_statuses_and_report_files(tmp_path, monkeypatch, exports, tiny_ckpt):
    d = tmp_path / "arts"
    shutil.copytree(exports, d)
    # a broken artifact with a valid manifest, and a target the pipeline could not run here
    fp32 = next(d.glob("*-onnx-fp32.onnx"))
    broken = d / "broken-onnx-fp32.onnx"
    broken.write_bytes(fp32.read_bytes()[:100])
    shutil.copy(str(fp32) + ".json", str(broken) + ".json")
    (d / "skipped.json").write_text(json.dumps([{"target": "tensorrt", "precision": "fp16", "reason": "no GPU"}]))
    res = _bench(tmp_path, monkeypatch, [tiny_ckpt, d], crosscheck=True)
    rows = {r["artifact"]: r for r in res["rows"]}
    assert set(rows) == {"tiny-pytorch-fp32", "tiny-onnx-fp32", "tiny-onnx-int8", "broken-onnx-fp32", "tensorrt-fp16"}
    assert rows["broken-onnx-fp32"]["status"].startswith("error: ")
    assert rows["tensorrt-fp16"]["status"] == "skipped: no GPU"
    for name in ("tiny-pytorch-fp32", "tiny-onnx-fp32", "tiny-onnx-int8"):
        r = rows[name]
        assert r["status"] == "ok", r
        assert r["latency"]["runs"] >= 6 and 0 < r["latency"]["p50_ms"] <= r["latency"]["p99_ms"]
        assert len(r["latency"]["p50_rounds_ms"]) == 2 and r["latency"]["spread"] >= 1.0
        # timed in worker processes: ONNX Runtime rows without torch, the eager row with it
        assert r["worker"]["isolated"] and r["worker"]["torch_imported"] == (name == "tiny-pytorch-fp32")
        assert set(r["throughput"]) == {"1", "4"} and r["threads"] == 1
        assert 0 < r["top1"] <= 100 and r["peak_kind"] == ("int8" if "int8" in name else "fp32")
        # serving, in the same workers: JPEG bytes -> top-5, process start -> first result, memory
        e, c, m = r["e2e"], r["cold_start"], r["rss_mb"]
        assert r["preprocess"] == "python" and e["p50_ms"] > 0 and e["preprocess_p50_ms"] > 0
        assert len(e["p50_rounds_ms"]) == 2 and e["jpeg"].startswith("640x480")
        assert c["total_s"] == pytest.approx(c["start_s"] + c["load_s"] + c["first_call_s"]) and c["load_s"] > 0
        assert m["peak_mb"] >= m["end_mb"] > 0
        assert r["efficiency"] == pytest.approx(
            r["gflops_per_image"] / (r["p50_ms"] / 1e3) / FAKE_PEAKS["gflops"][r["peak_kind"]]
        )
    assert rows["tiny-onnx-fp32"]["agreement"] == 100.0 and rows["tiny-onnx-fp32"]["max_abs_diff"] < 1e-3
    # exported ViTs run the head-tokens-only graph; the eager checkpoint row runs the whole model
    assert 0 < rows["tiny-onnx-fp32"]["gflops_exported"] < rows["tiny-onnx-fp32"]["gflops_per_image"]
    assert "gflops_exported" not in rows["tiny-pytorch-fp32"]
    assert rows["tiny-pytorch-fp32"]["top1"] == rows["tiny-onnx-fp32"]["top1_fp32"]
    cc = rows["tiny-onnx-fp32"]["crosscheck"]
    assert cc["tool"].startswith("bare InferenceSession.run loop") and cc["p50_ms"] > 0 and cc["rounds"] == 2
    # the ratio compares the reported p50 (median of vitc's rounds) with the tool's median of the same rounds
    assert cc["vitc_p50_ms"] == rows["tiny-onnx-fp32"]["p50_ms"] and cc["p50_ms"] == pytest.approx(
        float(np.median(cc["tool_p50s_ms"]))
    )
    assert cc["ratio"] == pytest.approx(cc["vitc_p50_ms"] / cc["p50_ms"]) and cc["agrees"] == (
        0.9 <= cc["ratio"] <= 1.1
    )
    assert ("disagrees with bare InferenceSession.run loop" in rows["tiny-onnx-fp32"]["flags"]) == (not cc["agrees"])
    # beside it, the paired ratio: the median of the per-round ratios (each pair timed seconds apart)
    assert cc["paired_ratio"] == pytest.approx(
        float(np.median(np.array(cc["vitc_p50s_ms"]) / np.array(cc["tool_p50s_ms"])))
    )
    # the files, and what they hold
    out = tmp_path / "report"
    saved = json.loads((out / "bench.json").read_text())
    assert saved["schema"] == 2 and len(saved["rows"]) == 5 and saved["wall_s"] > 0
    env = saved["environment"]
    assert {"cpu", "cores", "isa", "versions", "command", "method", "threads"} <= set(env) and "onnxruntime" in env[
        "versions"
    ]
    with open(out / "bench.csv") as f:
        assert [r["artifact"] for r in csv.DictReader(f)] == [r["artifact"] for r in res["rows"]]
    md = (out / "report.md").read_text()
    assert all(f"| {a} |" in md for a in rows) and "## Reading" in md and "pre-processing is excluded" in md
    assert "Bench wall time:" in md and "fresh worker process" in md and "Stability: " in md and "Cross-checks: " in md
    assert "2 of the rows run vitc's head-tokens-only graph" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_reports_validation_failure(tmp_path, monkeypatch, exports, tiny_ckpt):
    """An artifact that does not compute its source checkpoint's function is timed but marked."""
    from vitc.models import load_checkpoint_model

    other = tmp_path / "other"
    model, meta = load_checkpoint_model(tiny_ckpt)
    with torch.no_grad():
        model.head.weight.copy_(model.head.weight.flip(0))  # another model: its classes permuted
    ckpt.save_checkpoint(other, model, {k: v for k, v in meta.items() if k not in ("weights_sha256", "format")})
    d = tmp_path / "arts"
    d.mkdir()
    src = next(exports.glob("*-onnx-fp32.onnx"))
    shutil.copy(src, d / src.name)
    man = json.loads((exports / (src.name + ".json")).read_text())
    man["source"]["checkpoint"] = str(other)
    (d / (src.name + ".json")).write_text(json.dumps(man))
    row = _bench(tmp_path, monkeypatch, [d], crosscheck=False)["rows"][0]
    assert row["status"] == "validation failed" and row["agreement"] < 100.0 and row["p50_ms"] > 0


def test_bench_bad_input(tmp_path, monkeypatch):
    with pytest.raises(VitcError, match="does not exist"):
        _bench(tmp_path, monkeypatch, [tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(VitcError, match="no artifacts"):
        _bench(tmp_path, monkeypatch, [tmp_path / "empty"])
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(VitcError, match="no manifest"):
        _bench(tmp_path, monkeypatch, [tmp_path / "model.onnx"])
    with pytest.raises(ConfigError, match="batch"):
        BenchConfig(batch=(0,))


def test_speed_comparisons_read_as_faster_or_slower():
    from vitc.benchmarks.report import speed_vs

    assert speed_vs(6.0, 3.0) == "2.00x faster"
    assert speed_vs(0.621, 1.046) == "1.68x slower"  # the digits run's "is 0.59x faster" case


def test_over_rounds_takes_the_median_of_the_rounds():
    from vitc.benchmarks.timing import _summary_ms, over_rounds

    rounds = [_summary_ms(np.full(5, v)) for v in (1.0, 3.0, 2.0)] + [_summary_ms(np.array([9.0, 10.0, 11.0]))]
    r = over_rounds(rounds)
    assert r["p50_rounds_ms"] == [1.0, 3.0, 2.0, 10.0] and r["p50_ms"] == 2.5  # median of the rounds' p50s
    assert r["runs"] == 18 and r["rounds"] == 4 and r["p99_ms"] > 10.0  # tails from every call, pooled
    assert "samples_ms" not in rounds[0].to_json()


def test_bench_repeats_and_by_hand_baselines(tmp_path, monkeypatch, tiny_ckpt):
    """--baselines builds the by-hand artifacts from the fp32 checkpoint, and every row is timed in
    each of the --repeats rounds."""
    res = _bench(tmp_path, monkeypatch, [tiny_ckpt], crosscheck=False, repeats=2, baselines=True)
    rows = {r["artifact"]: r for r in res["rows"]}
    assert list(rows) == [
        "tiny-pytorch-fp32",
        "baseline-openvino-nncf-default-int8",
        "baseline-openvino-nncf-default-int8-vitc-graph",
        "baseline-onnx-dynamic-int8",
        "baseline-onnx-fp32",
    ]
    # the same-graph control: the by-hand NNCF recipe on vitc's head-tokens graph (fewer FLOPs than the plain one)
    ctl = rows["baseline-openvino-nncf-default-int8-vitc-graph"]
    assert ctl["control"] == "same-graph" and "vitc's exported graph" in ctl["baseline"]
    assert ctl["gflops_exported"] < rows["baseline-openvino-nncf-default-int8"]["gflops_per_image"]
    assert "gflops_exported" not in rows["baseline-openvino-nncf-default-int8"]
    for r in rows.values():
        # NNCF's default (non-transformer) settings can miss the int8 agreement bar on this tiny
        # model (89% measured): a baseline is timed and reported whatever its accuracy
        assert r["status"] == "ok" or (r["status"] == "validation failed" and "nncf" in r["artifact"]), r
        assert r["baseline"] and r["latency"]["rounds"] == 2 and len(r["latency"]["p50_rounds_ms"]) == 2
        assert r["p50_ms"] == pytest.approx(float(np.median(r["latency"]["p50_rounds_ms"])))
    assert rows["baseline-onnx-fp32"]["agreement"] == 100.0
    assert (
        rows["baseline-onnx-dynamic-int8"]["precision"]
        == rows["baseline-openvino-nncf-default-int8"]["precision"]
        == "int8"
    )
    ov = rows["baseline-openvino-nncf-default-int8"]
    assert ov["throughput"]["4"] > 0 and 0 < ov["agreement"] <= 100.0
    assert "nncf.quantize" in ov["baseline"]
    base = tmp_path / "report" / "baselines" / tiny_ckpt.name
    assert {p.name for p in base.iterdir()} >= {
        "baseline-onnx-fp32.onnx",
        "baseline-onnx-fp32.onnx.json",
        "baseline-openvino-nncf-default-int8.bin",
    }
    assert all(p.name.startswith("baseline-") for p in base.iterdir())  # no staging or intermediate leftovers
    assert (
        rows["baseline-onnx-fp32"]["size_mb"] > 0.9 * rows["tiny-pytorch-fp32"]["size_mb"]
    )  # external weights counted
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Baseline baseline-onnx-dynamic-int8 (" in md and "2 timing round(s)" in md


def _timed(name: str, p50s: list[float], **kw) -> dict:
    return {
        "artifact": name,
        "target": "openvino",
        "precision": "int8",
        "status": "ok",
        "source": "/s",
        "p50_ms": float(np.median(p50s)),
        "latency": {"p50_rounds_ms": p50s},
        **kw,
    }


def test_same_recipe_is_judged_against_the_same_graph():
    """vitc's NNCF-defaults IR is compared with the by-hand recipe on vitc's own graph (the 5% check);
    the plain by-hand IR's difference is reported as what the graph rewrite gains, not as a failure."""
    from vitc.benchmarks.report import _same_recipe

    ours = _timed(
        "student-openvino-int8", [3.0, 3.1, 2.9], nncf="defaults", gflops_exported=2.35, gflops_per_image=2.52
    )
    control = _timed(
        "baseline-openvino-nncf-default-int8-vitc-graph", [3.05, 3.0, 3.1], baseline="x", control="same-graph"
    )
    plain = _timed("baseline-openvino-nncf-default-int8", [3.4, 3.5, 3.3], baseline="y")
    (line,) = _same_recipe([ours, control, plain])
    assert "vs by-hand baseline-openvino-nncf-default-int8-vitc-graph 3.050 ms, -1.6% (within 5%)" in line, line
    assert (
        "The by-hand IR of the plain timm graph, baseline-openvino-nncf-default-int8, 3.400 ms: vitc's IR is -11.8%"
        in line
    ), line
    slow = {**control, "p50_ms": 3.5}  # the same recipe and graph timing 14% apart: the bench is not to be trusted
    assert "(OUTSIDE 5%)" in _same_recipe([ours, slow, plain])[0]
    assert _same_recipe([{**ours, "nncf": "transformer"}, control, plain]) == []  # another recipe: nothing to compare


def test_openvino_profile_counts_the_matmul_flops(tmp_path, tiny_ckpt):
    """The per-node profile's FullyConnected + Convolution GFLOPs equal torch's count of the exported
    graph's linear and conv FLOPs, and the node medians add up to about the call's wall time."""
    pytest.importorskip("openvino", reason="optional runtime openvino is not installed")
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.studies.ov_profile import markdown, profile
    from vitc.export.head_tokens import rewrite
    from vitc.export.stage import export_checkpoint
    from vitc.models import load_checkpoint_model

    m = export_checkpoint(tiny_ckpt, "openvino", "fp32", tmp_path, threads=1)
    res = profile(tmp_path / m["artifact"], threads=1, calls=30, precision=None)
    model, meta = load_checkpoint_model(tiny_ckpt)
    lean, _ = rewrite(model)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        lean(torch.zeros(1, *meta["preprocess"]["input_size"]))
    counts = fc.get_flop_counts()["Global"]
    # linear layers and the patch conv; attention (SDPA) is counted under its own op, not here
    want = sum(v for k, v in counts.items() if str(k).split(".")[1] in ("addmm", "mm", "convolution")) / 1e9
    got = sum(r["gflop"] for r in res["rows"])
    assert res["precision"] == "f32" and got == pytest.approx(want, rel=0.01)
    assert 0.5 * res["wall_p50_ms"] < res["nodes_ms"] < 2 * res["wall_p50_ms"]
    res["graph"] = m["graph"]
    md = markdown(res, 400.0, "cmd", "stamp")
    assert "| FullyConnected |" in md and "1.1x the floor leaves" in md


FAKE_TARGET = """
import time
from pathlib import Path

import numpy as np

NAME, SUFFIX, PRECISIONS, EXTRA = "fake", ".fake", ("fp32",), None


def check():
    return None


def load(path, threads=None):
    # every load (the bench's accuracy pass, then one worker per round) counts itself in a file, so the
    # worker processes can take turns: a "flaky" artifact sleeps twice as long in every other round
    count = Path(str(path) + ".count")
    n = int(count.read_text()) if count.exists() else 0
    count.write_text(str(n + 1))
    slow = n % 2 == 1 and "flaky" in Path(path).name

    def run(x):
        time.sleep(0.002 if slow else 0.001)
        return np.repeat(np.eye(10, dtype=np.float32)[:1], len(x), 0)
    return run
"""


@pytest.fixture
def fake_target(tmp_path, monkeypatch, tiny_ckpt):
    """A registered export target whose artifact is a file and whose runtime is time.sleep; the bench's
    worker processes import it through PYTHONPATH like any target module."""
    import importlib
    import os

    from vitc import export
    from vitc.data import load_source

    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "vitc_fake_target.py").write_text(FAKE_TARGET)
    monkeypatch.syspath_prepend(str(mods))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(mods), os.environ.get("PYTHONPATH")])))
    export.names()
    monkeypatch.setitem(export._REGISTRY, "fake", importlib.import_module("vitc_fake_target"))
    d = tmp_path / "fakes"
    d.mkdir()
    pre = ckpt.load_meta(tiny_ckpt)["preprocess"]
    for name in ("flaky.fake", "steady.fake"):
        (d / name).write_bytes(b"x")
        (d / (name + ".json")).write_text(
            json.dumps(
                {
                    "artifact": name,
                    "target": "fake",
                    "precision": "fp32",
                    "size_bytes": 1,
                    "source": {"checkpoint": None},
                    "data": {"name": "digits", "split": "val"},
                    "classes": load_source("digits", 32).classes,
                    "preprocess": pre,
                }
            )
        )
    return d


def test_a_slow_mode_in_every_other_round_is_marked_unstable(tmp_path, monkeypatch, fake_target):
    """The issue-14 failure, made on purpose: an artifact whose timed call sleeps twice as long in every
    other round must come out unstable; the same artifact without the slow mode must not."""
    res = _bench(tmp_path, monkeypatch, [fake_target], crosscheck=False, repeats=4, batch=(1,), min_runs=20)
    rows = {r["artifact"]: r for r in res["rows"]}
    flaky, steady = rows["flaky"], rows["steady"]
    p = flaky["latency"]["p50_rounds_ms"]
    assert len(p) == 4 and min(p[0], p[2]) > 1.6 * max(p[1], p[3])  # rounds 1 and 3 were the slow ones
    assert flaky["latency"]["spread"] > 1.25 and "unstable" in flaky["flags"]
    assert steady["latency"]["spread"] < 1.25 and "unstable" not in steady["flags"], steady["latency"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| flaky | ok (no fp32 reference: source checkpoint not found), unstable |" in md
    assert "flaky is **unstable**" in md and "steady is **unstable**" not in md


def test_timing_workers_load_only_their_runtime(tmp_path, exports, tiny_ckpt):
    """An OpenVINO or ONNX Runtime timing worker never imports torch (its own sys.modules, reported back);
    the eager checkpoint's worker does, which shows the check can see it."""
    from vitc.benchmarks.launcher import loader_for, run_worker, write_inputs
    from vitc.export.stage import export_checkpoint

    pytest.importorskip("openvino", reason="optional runtime openvino is not installed")
    m = export_checkpoint(tiny_ckpt, "openvino", "fp32", tmp_path, threads=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    inputs = write_inputs(x, (1, 2), tmp_path, "x")
    timing = dict(warmup=1, warmup_seconds=0, min_runs=3, min_seconds=0)
    cases = [
        ("artifact", "onnx", next(exports.glob("*-onnx-int8.onnx")), "onnxruntime"),
        ("artifact", "openvino", tmp_path / m["artifact"], "openvino"),
        ("checkpoint", "pytorch", tiny_ckpt, "torch"),
    ]
    from vitc.benchmarks.serving import camera_jpeg

    jpeg = camera_jpeg(np.zeros((32, 32, 3), np.uint8), tmp_path / "cam.jpg")
    pre = json.loads((tmp_path / (m["artifact"] + ".json")).read_text())["preprocess"]
    e2e = {"jpeg": str(jpeg), "preprocess": pre, "in_graph": False}  # Pillow and numpy only: still no torch
    for kind, target, path, runtime in cases:
        res = run_worker(loader_for(kind, target), str(path), 1, inputs, timing, e2e)
        assert res["e2e"]["p50_ms"] > 0 and res["rss"]["peak_mb"] > 0
        assert res["torch_imported"] == (runtime == "torch"), (target, res["runtimes"])
        assert res["runtimes"] == [runtime] if runtime != "torch" else "torch" in res["runtimes"]
        assert [b["batch"] for b in res["batches"]] == [1, 2] and all(b["runs"] >= 3 for b in res["batches"])
    bare = run_worker("vitc.benchmarks.worker:bare_onnxruntime", str(cases[0][2]), 1, inputs[:1], timing)
    assert bare["torch_imported"] is False and bare["batches"][0]["p50_ms"] > 0


def test_a_failing_worker_becomes_an_error_row(tmp_path, monkeypatch, exports):
    """A worker that dies (here: its artifact vanished after the accuracy pass) gives that row an error
    status with the worker's last line; the other rows are still timed."""
    from vitc.benchmarks import bench

    d = tmp_path / "arts"
    shutil.copytree(exports, d)
    victim = next(d.glob("*-onnx-int8.onnx"))
    real = bench.prepare_item

    def prepare_then_delete(item, cfg, sources):
        live = real(item, cfg, sources)
        if item.path == victim:
            victim.unlink()
        return live

    monkeypatch.setattr(bench, "prepare_item", prepare_then_delete)
    rows = {r["artifact"]: r for r in _bench(tmp_path, monkeypatch, [d], crosscheck=False)["rows"]}
    assert rows["tiny-onnx-int8"]["status"].startswith(
        "error: the timing worker for tiny-onnx-int8.onnx failed (exit 1)"
    )
    assert rows["tiny-onnx-fp32"]["status"] == "ok" and rows["tiny-onnx-fp32"]["p50_ms"] > 0


def test_in_process_timing_is_still_available(tmp_path, monkeypatch, exports):
    """--no-isolate times inside the bench process (kept for the isolation A/B)."""
    rows = _bench(tmp_path, monkeypatch, [exports], crosscheck=False, isolate=False)["rows"]
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 and not r["worker"]["isolated"] for r in rows)
    assert all(r["worker"]["torch_imported"] for r in rows)  # the bench process itself has torch


def test_a_pair_split_by_a_machine_change_is_retimed(monkeypatch):
    """vitc's worker and its tool, timed back to back, more than 1.25x apart: the machine changed
    between them, so the pair is timed again (counted in the report). A harness that is really off
    splits every pair, stops after `repeats` re-times and is still flagged as disagreeing."""
    from vitc.benchmarks import bench, crosscheck, launcher
    from vitc.benchmarks.report import _trust
    from vitc.benchmarks.row import BenchRow

    def worker(loader, path, threads, inputs, timing, e2e=None):
        s = np.full(60, 1.0)
        return {
            "batches": [{"batch": b, "p50_ms": 1.0, "runs": 60, "samples_ms": s.tolist()} for b, _ in inputs],
            "torch_imported": False,
            "runtimes": ["openvino"],
            "load_s": 0.1,
        }

    def live(tools):
        it = iter(tools)
        monkeypatch.setattr(
            crosscheck, "tool_round", lambda *a: {"tool": "benchmark_app -hint latency", "p50_ms": next(it)}
        )
        item = bench.Item("artifact", __import__("pathlib").Path("m.xml"), "openvino", "int8", "m")
        return bench._Live(
            BenchRow("m", "openvino", "int8", "m.xml", 1, status="ok"), None, item, None, None, inputs=[[1, "x1.npy"]]
        )

    monkeypatch.setattr(launcher, "run_worker", worker)
    cfg = bench.BenchConfig(repeats=3)
    lv = live([1.02, 1.95, 1.01, 0.98])  # round 2's first pair split (a slow spell on the tool's side only)
    for r in range(3):
        bench.time_round(lv, cfg, r)
    assert [t["p50_ms"] for t in lv.tool] == [1.02, 1.01, 0.98] and lv.split == [
        {"round": 2, "vitc_p50_ms": 1.0, "tool_p50_ms": 1.95}
    ]
    row = bench.finish_item(lv, cfg, {"gflops": {}})
    assert row.crosscheck["agrees"] and row.crosscheck["split_pairs"] == lv.split
    assert any(
        "Re-timed: 1 vitc/tool pair(s)" in s and "m round 2 (1.000 vs 1.950 ms)" in s
        for s in _trust({"rows": [row.to_json()]})
    )

    off = live([2.0] * 20)  # vitc's harness twice as fast as the tool in every pair: not the machine
    for r in range(3):
        bench.time_round(off, cfg, r)
    assert len(off.split) == 3 and len(off.tool) == 3  # at most `repeats` re-times per row
    row = bench.finish_item(off, cfg, {"gflops": {}})
    assert not row.crosscheck["agrees"] and "disagrees with benchmark_app -hint latency" in row.flags
