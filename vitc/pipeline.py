"""`vitc pipeline`: teacher -> distill -> [prune] -> quantize -> export -> bench from one YAML config.

Each stage writes into <runs>/<name>/<stage>/ with a stage.json holding its settings, the hashes of
its inputs and their fingerprint. A rerun skips a stage whose fingerprint is unchanged and whose
stage.json says done; an interrupted training stage (stage.json says running, same fingerprint)
resumes from its last epoch; `--from STAGE` reruns that stage and the ones after it; `--force`
reruns everything.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import checkpoint as ckpt
from .config import to_dict
from .errors import AccuracyGateError, ConfigError, VitcError
from .pipeline_config import STAGES, PipelineConfig

STAGE_FILE = "stage.json"


def _fingerprint(config: dict, inputs: dict) -> str:
    return hashlib.sha256(json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str).encode()).hexdigest()


def _weights_sha(ckpt_dir: Path) -> str:
    return ckpt.load_meta(ckpt_dir)["weights_sha256"]


def _state(d: Path) -> dict:
    try:
        return json.loads((d / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return {}


class Pipeline:
    def __init__(self, cfg: PipelineConfig, console: Console | None = None):
        self.cfg, self.console = cfg, console or Console()
        self.summary: list[dict] = []

    # -- inputs and settings per stage: what decides whether it must run again
    def _teacher_dir(self) -> Path:
        return Path(self.cfg.teacher_checkpoint) if self.cfg.teacher is None else self.cfg.stage_dir("teacher")

    @functools.cached_property
    def _data_inputs(self) -> dict:
        """The dataset's provenance, read once per run (teacher and distill both depend on it)."""
        from .data import load_source

        img = self.cfg.distill.student.img_size
        return {"data": load_source(self.cfg.data, img).provenance}

    def spec(self, stage: str) -> tuple[dict, dict]:
        c = self.cfg
        if stage == "teacher":
            return to_dict(c.teacher), self._data_inputs
        if stage == "distill":
            cfg = to_dict(c.distill)
            cfg["teacher_checkpoint"] = str(self._teacher_dir())
            inputs = {**self._data_inputs, "teacher_sha256": _weights_sha(self._teacher_dir())}
            if c.distill.init_checkpoint:
                inputs["init_sha256"] = _weights_sha(Path(c.distill.init_checkpoint))
            return cfg, inputs
        if stage == "prune":
            cfg = to_dict(c.prune)
            cfg.update(checkpoint=str(c.stage_dir("distill")), teacher_checkpoint=str(self._teacher_dir()))
            return cfg, {**self._data_inputs, "distilled_sha256": _weights_sha(c.stage_dir("distill")),
                         "teacher_sha256": _weights_sha(self._teacher_dir())}
        student = {"student_sha256": _weights_sha(self.student_dir())}
        if stage == "quantize":
            return to_dict(c.quantize), student
        if stage == "export":
            return to_dict(c.export), student
        if stage == "bench":
            bench = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(c.bench).items()}
            ups = {s: _state(c.stage_dir(s)).get("fingerprint") for s in ("quantize", "export")}
            return bench, {**student, **ups}
        raise ValueError(stage)

    def stages(self) -> list[str]:
        return [s for s in STAGES if (s != "teacher" or self.cfg.teacher is not None) and (s != "prune" or self.cfg.prune is not None)]

    def student_dir(self) -> Path:
        """The checkpoint that quantize and export compress: the pruned student when there is a prune stage."""
        return self.cfg.stage_dir("prune" if self.cfg.prune is not None else "distill")

    # -- running
    def run(self, start: str | None = None, force: bool = False) -> dict:
        order = self.stages()
        if start is not None and start not in order:
            raise ConfigError(f"--from {start!r} is not a stage of this pipeline", f"stages: {', '.join(order)}")
        if self.cfg.teacher is None and not ckpt.is_checkpoint_dir(self.cfg.teacher_checkpoint):
            raise ConfigError(f"teacher_checkpoint: {self.cfg.teacher_checkpoint} is not a vitc checkpoint dir",
                              "train one with `vitc teacher` or add a teacher section")
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        rerun = force
        for stage in order:
            rerun = rerun or stage == start
            d = self.cfg.stage_dir(stage)
            if not rerun and start is not None and _state(d).get("status") != "done":
                raise ConfigError(f"--from {start}: the earlier stage {stage!r} has not finished in {d}",
                                  f"run `vitc pipeline CONFIG` without --from (or with --from {stage})")
            config, inputs = self.spec(stage)
            fp = _fingerprint(config, inputs)
            st = _state(d)
            if not rerun and st.get("status") == "done" and st.get("fingerprint") == fp:
                self.console.print(f"[dim]{stage}: skipped, inputs and settings unchanged ({d})[/]", highlight=False)
                self.summary.append({"stage": stage, "status": "skipped (unchanged)", "seconds": 0.0, "result": st.get("result", "")})
                continue
            if st and st.get("fingerprint") != fp and not rerun:
                self.console.print(f"{stage}: settings or inputs changed since the last run: running again", highlight=False)
            resume = (stage in ("teacher", "distill", "prune") and not rerun and st.get("status") == "running"
                      and st.get("fingerprint") == fp and (d / ckpt.TRAIN_STATE).is_file())
            rerun = True  # everything downstream of a stage that runs must run too
            self.console.rule(f"{stage}" + (" (resuming)" if resume else ""))
            t0 = time.perf_counter()
            if not resume:
                _fresh_dir(d)  # a stage that runs again starts empty: nothing stale is mistaken for its output
            ckpt.write_json(d / STAGE_FILE, {"stage": stage, "status": "running", "fingerprint": fp, "config": config, "inputs": inputs})
            result = getattr(self, f"_{stage}")(d, resume)
            secs = time.perf_counter() - t0
            ckpt.write_json(d / STAGE_FILE, {"stage": stage, "status": "done", "fingerprint": fp, "config": config,
                                             "inputs": inputs, "seconds": secs, "result": result})
            self.summary.append({"stage": stage, "status": "ran" + (" (resumed)" if resume else ""), "seconds": secs, "result": result})
        return {"summary": self.summary, "report": str(self.cfg.stage_dir("bench") / "report.md")}

    def _teacher(self, d: Path, resume: bool) -> str:
        from .compress.teacher import run_teacher

        m = run_teacher(self.cfg.teacher, d, resume=resume, force=True, console=self.console)
        return f"top-1 {m['top1']:.2f}%"

    def _distill(self, d: Path, resume: bool) -> str:
        from .compress.distill import run_distill

        cfg = dataclasses.replace(self.cfg.distill, teacher_checkpoint=str(self._teacher_dir()))
        m = run_distill(cfg, d, resume=resume, force=True, console=self.console)
        return f"top-1 {m['top1']:.2f}% (teacher {m.get('teacher_top1', float('nan')):.2f}%)"

    def _prune(self, d: Path, resume: bool) -> str:
        from .compress.prune import run_prune

        cfg = dataclasses.replace(self.cfg.prune, checkpoint=str(self.cfg.stage_dir("distill")),
                                  teacher_checkpoint=str(self._teacher_dir()))
        m = run_prune(cfg, d, resume=resume, force=True, console=self.console)
        return (f"top-1 {m['top1']:.2f}% (unpruned {m['top1_unpruned']:.2f}%), "
                f"{m['gflops']:.2f} GFLOPs (unpruned {m['gflops_unpruned']:.2f})")

    def _quantize(self, d: Path, resume: bool) -> str:
        from .compress.quantize import quantize_checkpoint
        from .export.stage import export_checkpoint

        q, student, done, skipped = self.cfg.quantize, self.student_dir(), [], []
        calib = q.calib or self.cfg.data
        targets = {"torch": "torchscript-lite", "onnxruntime": "onnx", "openvino": "openvino"}
        for b in q.backends:
            try:
                if b == "torch":
                    quantize_checkpoint(student, d / "torch-int8", q.max_drop, self.cfg.data)
                    m = export_checkpoint(student, "torchscript-lite", "int8", d, data=self.cfg.data, stem="student")
                else:
                    m = export_checkpoint(student, targets[b], "int8", d, data=self.cfg.data, calib=calib,
                                          calib_size=q.calib_size, max_drop=q.max_drop, stem="student")
                done.append(f"{b} {m['validation']['top1_artifact']:.2f}%")
            except AccuracyGateError as e:  # kept, marked failed in its manifest; the bench shows it
                self.console.print(f"[yellow]{b}: {e.message}[/]", highlight=False)
                done.append(f"{b} failed gate")
            except VitcError as e:
                self.console.print(f"[yellow]{b}: skipped: {e.message}[/]", highlight=False)
                skipped.append({"target": targets[b], "precision": "int8", "reason": e.message})
        ckpt.write_json(d / "skipped.json", skipped)
        return ", ".join(done + [f"{s['target']} skipped" for s in skipped])

    def _export(self, d: Path, resume: bool) -> str:
        from . import export
        from .export.stage import export_checkpoint

        student, done, skipped = self.student_dir(), [], []
        for name in self.cfg.export.targets:
            t = export.get(name)
            for p in [p for p in self.cfg.export.precisions if p in t.PRECISIONS]:
                why = t.check()
                if why:
                    skipped.append({"target": name, "precision": p, "reason": why})
                    continue
                try:
                    m = export_checkpoint(student, name, p, d, data=self.cfg.data, stem="student")
                    done.append(f"{name}-{p} {m['status']}")
                except VitcError as e:
                    self.console.print(f"[yellow]{name} {p}: {e.message}[/]", highlight=False)
                    skipped.append({"target": name, "precision": p, "reason": e.message, "status": f"error: {e.message}"})
        ckpt.write_json(d / "skipped.json", skipped)
        return f"{len(done)} artifacts, {len(skipped)} skipped"

    def _bench(self, d: Path, resume: bool) -> str:
        from .benchmarks.bench import run_bench

        c = self.cfg
        paths = [c.stage_dir("distill"), c.stage_dir("quantize"), c.stage_dir("export")]
        if c.prune is not None:  # the unpruned student (and its by-hand baselines) next to the pruned one
            paths.insert(1, c.stage_dir("prune"))
        if ckpt.is_checkpoint_dir(c.stage_dir("quantize") / "torch-int8"):  # eager PyTorch dynamic int8
            paths.insert(1, c.stage_dir("quantize") / "torch-int8")
        res = run_bench(paths, d, c.bench, self.console)
        ok = sum(r["status"].startswith("ok") for r in res["rows"])
        return f"{ok}/{len(res['rows'])} rows ok"


def _fresh_dir(d: Path) -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)


def summary_table(summary: list[dict]) -> Table:
    t = Table("stage", "status", "seconds", "result", title="vitc pipeline")
    for s in summary:
        t.add_row(s["stage"], s["status"], f"{s['seconds']:.0f}", str(s["result"]))
    return t
