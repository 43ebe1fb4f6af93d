"""`vitc teacher | distill | prune`: the training stages' commands, their options generated from the stage configs
(vitc/cli_gen.py), so a command and a pipeline YAML section build the same config from the same defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import runs, stages
from .cli_app import app, err, finish, inputs
from .cli_gen import command, param
from .cli_options import Force, Out, Resume
from .config import DEFAULT_DATA, TEACHER_TRAIN, check_policies, default_warmup, from_dict
from .recipe import stage_defaults

AUTO_TEACHER = "<auto teacher: trained or fetched once the rest is validated>"
RUN = [param("out", Out), param("resume", Resume, False), param("force", Force, False)]


def build(stage: str, given: dict):
    """The stage's config from what the command was given: the same from_dict a pipeline YAML section goes through."""
    return from_dict(stages.get(stage).config, given)


def notes(stage: str, given: dict, cfg, con: Console) -> None:
    """Said once the request is known to be valid: a warm-up cut to fit (stderr, as before), the data chosen."""
    train = given.get("train", {})
    if train.get("warmup_epochs") is None:
        default = stage_defaults(stage, cfg.data, False)["warmup_epochs"]
        note = default_warmup(cfg.train.epochs, default)[1]
        if note:
            err.print(f"[yellow]note[/]: {note}", highlight=False)
    if stage != "prune" and "data" not in given:
        con.print(f"note: data: {DEFAULT_DATA} (the default; pass --data to choose)", highlight=False)


def _teacher(given: dict, run: dict) -> None:
    cfg = build("teacher", given)
    con = Console()
    notes("teacher", given, cfg, con)
    out = run["out"] or runs.default_out(stages.get("teacher").folder, con)
    finish("teacher", out, stages.run("teacher", cfg, inputs(con, run), out))


def _distill(given: dict, run: dict) -> None:
    auto = (
        given.get("distillation", "hard") != "none"
        and given.get("teacher")
        and not (given.get("teacher_checkpoint") or given.get("teacher_pretrained"))
        and run["auto_teacher"]
    )
    if auto:  # validated in full before a teacher is trained for it (the auto teacher's path is filled in below)
        given = {**given, "teacher_checkpoint": AUTO_TEACHER}
    cfg = build("distill", given)
    con = Console()
    notes("distill", given, cfg, con)
    out = run["out"] or runs.default_out(stages.get("distill").folder, con)
    if auto:
        from .compress.auto_teacher import resolve

        check_policies(cfg)  # the teacher trains with the same augmentation: a bad policy fails before it
        found, hub = resolve(
            cfg.teacher,
            cfg.data,
            cfg.student.img_size,
            epochs=run["teacher_epochs"],
            threads=cfg.train.threads,
            seed=cfg.train.seed,
            aug=cfg.train.aug,
            student_out=out,
            resume=run["resume"],
            force=run["force"],
            console=con,
        )
        cfg = dataclasses.replace(cfg, teacher_pretrained=hub, teacher_checkpoint=None if hub else found)
    finish("distill", out, stages.run("distill", cfg, inputs(con, run), out))


def _prune(given: dict, run: dict) -> None:
    cfg = build("prune", given)
    con = Console()
    notes("prune", given, cfg, con)
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else runs.default_checkpoint(stages.get("prune").reads, con)
    out = run["out"] or runs.default_out(stages.get("prune").folder, con)
    finish("prune", out, stages.run("prune", cfg, inputs(con, run, checkpoint=checkpoint), out))


command(
    app, "teacher", _teacher, RUN, "Train or fine-tune a teacher classifier on the dataset.", first=("model", "data")
)
command(
    app,
    "distill",
    _distill,
    [
        param(
            "auto_teacher",
            Annotated[
                bool,
                typer.Option(
                    help="with --teacher NAME and no checkpoint: reuse runs/teacher, else fine-tune the hub weights "
                    "(online) or train NAME on the data (offline) into runs/teacher first"
                ),
            ],
            True,
        ),
        param(
            "teacher_epochs",
            Annotated[int, typer.Option(help="epochs for a teacher that distill trains itself (see --auto-teacher)")],
            TEACHER_TRAIN["epochs"],
        ),
        *RUN,
    ],
    "DeiT distillation (distillation token) of a frozen teacher into a small student.",
    first=("teacher", "teacher_checkpoint", "teacher_pretrained", "student", "data"),
)
command(
    app,
    "prune",
    _prune,
    RUN,
    "Remove blocks, heads and channels (by --ratio, or to a --latency budget), then re-distill from the teacher.",
    first=("checkpoint", "teacher_checkpoint", "ratio", "latency"),
)
