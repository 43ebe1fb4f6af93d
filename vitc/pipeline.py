"""`vitc pipeline`: teacher -> distill -> [prune] -> quantize -> export -> bench from one YAML config.

Each stage runs through the stage table (vitc.stages), as `vitc <stage>` does, and writes into
<runs>/<name>/<folder>/ (teacher, student, pruned, int8, exports, bench: the CLI's runs/<folder>), with a
stage.json holding its settings, the hashes of its inputs and their fingerprint. A rerun skips a stage
whose fingerprint is unchanged and whose stage.json says done; an interrupted training stage (stage.json
says running, same fingerprint) resumes from its last epoch; `--from STAGE` reruns that stage and the
ones after it; `--force` reruns everything.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import checkpoint as ckpt
from . import stages
from .config import check_policies
from .errors import ConfigError
from .outlock import hold
from .pipeline_config import PipelineConfig
from .stage_hooks import state as _state

STAGE_FILE = "stage.json"  # read by vitc.stage_hooks.state


def _fingerprint(config: dict, inputs: dict) -> str:
    return hashlib.sha256(
        json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str).encode()
    ).hexdigest()


class Pipeline:
    def __init__(self, cfg: PipelineConfig, console: Console | None = None):
        self.cfg, self.console = cfg, console or Console()
        self.summary: list[dict] = []

    # -- inputs and settings per stage: what decides whether it must run again (the row's hooks)
    def teacher_dir(self) -> Path:
        return Path(self.cfg.teacher_checkpoint) if self.cfg.teacher is None else self.cfg.stage_dir("teacher")

    @functools.cached_property
    def data_inputs(self) -> dict:
        """The dataset's provenance, read once per run (teacher, distill and prune depend on it)."""
        from .data import load_source

        img = self.cfg.distill.student.img_size
        return {"data": load_source(self.cfg.data, img).provenance}

    @staticmethod
    def hooks(stage: str):
        """The row's hooks (vitc/stage_hooks.py), imported by name as the runners are."""
        module, name = stages.get(stage).hooks.split(":")
        return getattr(importlib.import_module(module), name)

    def spec(self, stage: str) -> tuple[dict, dict]:
        return self.hooks(stage).spec(self, stage)

    def stages(self) -> list[str]:
        """The stages this pipeline runs: the optional ones only when their section is there."""
        return [s.name for s in stages.TABLE.values() if not s.optional or self.config(s.name) is not None]

    def student_dir(self) -> Path:
        """The checkpoint that quantize and export compress: the pruned student when there is a prune stage."""
        return self.cfg.stage_dir("prune" if self.cfg.prune is not None else "distill")

    def inputs(self, stage: str, resume: bool) -> stages.Inputs:
        """What each stage reads, from this pipeline's earlier stage folders (the CLI reads runs/ instead)."""
        kw = self.hooks(stage).inputs(self, stage, resume)
        return stages.Inputs(resume=resume, force=True, console=self.console, keep_going=True, **kw)

    def config(self, stage: str):
        return getattr(self.cfg, stages.get(stage).name)

    # -- running
    def run(self, start: str | None = None, force: bool = False) -> dict:
        # one pipeline per run folder: a second one would wipe the stage folders of the first (vitc/outlock.py)
        with hold(self.cfg.root, f"vitc pipeline into {self.cfg.root}"):
            return self._run(start, force)

    def _run(self, start: str | None, force: bool) -> dict:
        order = self.stages()
        if start is not None and start not in order:
            raise ConfigError(f"--from {start!r} is not a stage of this pipeline", f"stages: {', '.join(order)}")
        if self.cfg.teacher is None and not ckpt.is_checkpoint_dir(self.cfg.teacher_checkpoint):
            raise ConfigError(
                f"teacher_checkpoint: {self.cfg.teacher_checkpoint} is not a vitc checkpoint dir",
                "train one with `vitc teacher` or add a teacher section",
            )
        check_policies(*(self.config(s) for s in order))
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        rerun = force
        for stage in order:
            rerun = rerun or stage == start
            d = self.cfg.stage_dir(stage)
            if not rerun and start is not None and _state(d).get("status") != "done":
                raise ConfigError(
                    f"--from {start}: the earlier stage {stage!r} has not finished in {d}",
                    f"run `vitc pipeline CONFIG` without --from (or with --from {stage})",
                )
            config, inputs = self.spec(stage)
            fp = _fingerprint(config, inputs)
            st = _state(d)
            if not rerun and st.get("status") == "done" and st.get("fingerprint") == fp:
                self.console.print(f"[dim]{stage}: skipped, inputs and settings unchanged ({d})[/]", highlight=False)
                self.summary.append(
                    {"stage": stage, "status": "skipped (unchanged)", "seconds": 0.0, "result": st.get("result", "")}
                )
                continue
            if st and st.get("fingerprint") != fp and not rerun:
                self.console.print(
                    f"{stage}: settings or inputs changed since the last run: running again", highlight=False
                )
            resume = (
                stages.get(stage).trains
                and not rerun
                and st.get("status") == "running"
                and st.get("fingerprint") == fp
                and (d / ckpt.TRAIN_STATE).is_file()
            )
            rerun = True  # everything downstream of a stage that runs must run too
            self.console.rule(f"{stage}" + (" (resuming)" if resume else ""))
            t0 = time.perf_counter()
            with hold(d, f"vitc pipeline, stage {stage}, into {d}"):  # before the wipe: a run there may be alive
                if not resume:
                    _fresh_dir(d)  # a stage that runs again starts empty: nothing stale is mistaken for its output
                ckpt.write_json(
                    d / STAGE_FILE,
                    {"stage": stage, "status": "running", "fingerprint": fp, "config": config, "inputs": inputs},
                )
                res = stages.run(stage, self.config(stage), self.inputs(stage, resume), d)
            secs = time.perf_counter() - t0
            status = "failed: accuracy gate" if res.failed and stage != "bench" else "done"
            ckpt.write_json(
                d / STAGE_FILE,
                {
                    "stage": stage,
                    "status": "done",
                    "outcome": status,
                    "fingerprint": fp,
                    "config": config,
                    "inputs": inputs,
                    "seconds": secs,
                    "result": res.summary,
                    "failed": res.failed,
                    "skipped": res.skipped,
                },
            )
            ran = "ran" + (" (resumed)" if resume else "") + (f", {len(res.failed)} failed" if res.failed else "")
            self.summary.append(
                {"stage": stage, "status": ran, "seconds": secs, "result": res.summary, "failed": res.failed}
            )
        return {"summary": self.summary, "report": str(self.cfg.stage_dir("bench") / "report.md")}


def _fresh_dir(d: Path) -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)


def summary_table(summary: list[dict]) -> Table:
    t = Table("stage", "status", "seconds", "result", title="vitc pipeline")
    for s in summary:
        t.add_row(s["stage"], s["status"], f"{s['seconds']:.0f}", str(s["result"]))
    return t
