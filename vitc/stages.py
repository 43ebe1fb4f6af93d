"""The stage table: every stage once, with its config dataclass (the one source of its defaults), its
`run(config, inputs, out)` and its run folder. `vitc <stage>` and `vitc pipeline` both run a stage through
`run()` below, so they get the same folder names, file stems, accuracy gates and defaults.

    stage     folder    reads      config            run
    teacher   teacher   -          TeacherConfig     vitc.compress.teacher:run
    distill   student   teacher    DistillConfig     vitc.compress.distill:run
    prune     pruned    student    PruneConfig       vitc.compress.prune:run
    quantize  int8      student    QuantizeConfig    vitc.compress.quantize_stage:run
    export    exports   student    ExportConfig      vitc.export.stage:run
    bench     bench     *          BenchConfig       vitc.benchmarks.bench:run

From the CLI a stage writes `runs/<folder>`; from a pipeline `<runs>/<name>/<folder>`. Adding a stage is one
entry here plus its modules: its runner, its hooks (vitc/stage_hooks.py: what it reads in a pipeline) and its
config, whose fields are its CLI options (vitc/cli_gen.py) and its pipeline YAML section. The runners and hooks
are named, not imported, so that reading the table (validating a YAML file, `vitc --help`) loads no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from . import runlog
from .config import BenchConfig, DistillConfig, ExportConfig, PruneConfig, QuantizeConfig, TeacherConfig, check_policies
from .errors import AccuracyGateError, ConfigError, VitcError
from .outlock import hold


@dataclass
class Inputs:
    """What a stage reads besides its config: resolved by the CLI (from runs/ or the arguments) or by the pipeline
    (from its earlier stages' folders)."""

    checkpoint: Path | None = None  # the model the stage compresses (prune, quantize, export)
    teacher: str | None = None  # the teacher checkpoint (distill, prune)
    paths: list[Path] = field(default_factory=list)  # what the bench times
    resume: bool = False
    force: bool = False
    console: Console | None = None
    # a stage that writes several artifacts: one that fails is listed in skipped.json and the others go on (the
    # pipeline); False raises at once and writes nothing more (a CLI command asked for that one artifact)
    keep_going: bool = False


@dataclass
class Result:
    summary: str  # one line: the pipeline's table, the CLI's last line
    metrics: dict = field(default_factory=dict)
    artifacts: list[dict] = field(default_factory=list)  # manifests of what it wrote (quantize, export)
    failed: list[str] = field(default_factory=list)  # kept on disk but marked failed (an accuracy gate), one line each
    skipped: list[dict] = field(default_factory=list)  # {"target", "precision", "reason"}: could not run here

    def guard(self, inputs: Inputs, label: str, skip: dict) -> _Guard:
        """`with res.guard(inputs, "onnx int8", {"target": ..., "precision": ...}) as g:` around one artifact of a
        multi-artifact stage: an accuracy-gate failure is kept on disk and listed in `failed`; any other VitcError
        stops the stage, or (keep_going: the pipeline) is listed in `skipped` and the stage goes on. g.outcome
        says which: ok | failed | skipped."""
        return _Guard(self, inputs, label, skip)


class _Guard:
    def __init__(self, res: Result, inputs: Inputs, label: str, skip: dict):
        self.res, self.inputs, self.label, self.skip, self.outcome = res, inputs, label, skip, "ok"

    def __enter__(self) -> _Guard:
        return self

    def __exit__(self, kind, e, tb) -> bool:
        if e is None:
            return False
        console = self.inputs.console or Console()
        if isinstance(e, AccuracyGateError):  # the artifact is kept, marked failed in its manifest
            console.print(f"[yellow]{self.label}: {e.message}[/]", highlight=False)
            self.res.failed.append(e.message)
            self.outcome = "failed"
            return True
        if isinstance(e, VitcError) and self.inputs.keep_going:
            console.print(f"[yellow]{self.label}: skipped: {e.message}[/]", highlight=False)
            self.res.skipped.append({**self.skip, "reason": e.message, "status": f"error: {e.message}"})
            self.outcome = "skipped"
            return True
        return False


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI command and the pipeline's stage name
    folder: str  # its run folder
    config: type
    runner: str  # "module:function", imported when the stage runs
    reads: str | None  # the folder it takes its model from when given none
    makes: str  # the command that makes its folder, for hints
    hooks: str  # "module:Class": what it reads and what decides a rerun inside a pipeline (vitc/stage_hooks.py)
    trains: bool = False  # a training stage: resumable, prints its top-1 when done
    optional: bool = False  # a pipeline may leave it out (no section; the teacher: teacher_checkpoint instead)
    makes_artifacts: bool = False  # writes deployable artifacts, which the bench times

    def run(self, config: Any, inputs: Inputs, out: Path) -> Result:
        if not isinstance(config, self.config):
            raise TypeError(f"stage {self.name} takes a {self.config.__name__}, not {type(config).__name__}")
        check_policies(config)
        module, fn = self.runner.split(":")
        with hold(Path(out), f"vitc {self.name} into {out}"):  # one run per output folder (vitc/outlock.py)
            with runlog.stage(Path(out)):  # other libraries' messages -> out/vitc.log (vitc/runlog.py)
                return getattr(importlib.import_module(module), fn)(config, inputs, Path(out))


H = "vitc.stage_hooks:"
TABLE: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "teacher",
            "teacher",
            TeacherConfig,
            "vitc.compress.teacher:run",
            None,
            "vitc teacher --model resnet18",
            H + "Teacher",
            trains=True,
            optional=True,
        ),
        Stage(
            "distill",
            "student",
            DistillConfig,
            "vitc.compress.distill:run",
            "teacher",
            "vitc distill --teacher resnet18 --student deit_tiny",
            H + "Distill",
            trains=True,
        ),
        Stage(
            "prune",
            "pruned",
            PruneConfig,
            "vitc.compress.prune:run",
            "student",
            "vitc prune",
            H + "Prune",
            trains=True,
            optional=True,
        ),
        Stage(
            "quantize",
            "int8",
            QuantizeConfig,
            "vitc.compress.quantize_stage:run",
            "student",
            "vitc quantize",
            H + "Compress",
            makes_artifacts=True,
        ),
        Stage(
            "export",
            "exports",
            ExportConfig,
            "vitc.export.stage:run",
            "student",
            "vitc export --target onnx",
            H + "Compress",
            makes_artifacts=True,
        ),
        Stage("bench", "bench", BenchConfig, "vitc.benchmarks.bench:run", None, "vitc bench", H + "Bench"),
    )
}
ORDER = tuple(TABLE)
FOLDERS = {s.folder: s for s in TABLE.values()}
BENCHED = ("student", "pruned", "int8", "exports")  # the folders a bench with no path times, in this order


def get(name: str) -> Stage:
    if name not in TABLE:
        raise ConfigError(f"unknown stage {name!r}", f"stages: {', '.join(ORDER)}")
    return TABLE[name]


def run(name: str, config: Any, inputs: Inputs, out: Path) -> Result:
    return get(name).run(config, inputs, out)
