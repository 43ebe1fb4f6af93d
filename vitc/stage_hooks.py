"""What each stage of the table (vitc.stages) reads and what decides whether it reruns, inside a pipeline: the
hooks a stage's row names. `spec(p)` gives (settings, input hashes) for the stage's fingerprint; `inputs(p,
resume)` the stages.Inputs it runs with, from the pipeline's earlier stage folders (`vitc <stage>` reads runs/
instead). `p` is the vitc.pipeline.Pipeline running it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from . import checkpoint as ckpt
from . import runs, stages
from .config import DEFAULT_BATCH, to_dict


def _training(cfg) -> dict:
    """A training stage's settings as its fingerprint records them: a batch left to the recipe is the default it
    was before it could be capped at the data, so that pipelines run before issue 35 keep their fingerprints."""
    d = to_dict(cfg)
    if d["train"]["batch_size"] is None:
        d["train"]["batch_size"] = DEFAULT_BATCH
    return d


def weights_sha(ckpt_dir: Path) -> str:
    return ckpt.load_meta(ckpt_dir)["weights_sha256"]


def state(d: Path) -> dict:
    """A pipeline stage folder's stage.json, {} when there is none yet."""
    try:
        return json.loads((d / "stage.json").read_text())
    except (OSError, ValueError):
        return {}


class Hooks:
    """The defaults: the stage's own config decides; it reads nothing but what its run options say."""

    @staticmethod
    def spec(p, stage: str) -> tuple[dict, dict]:
        return to_dict(p.config(stage)), {}

    @staticmethod
    def inputs(p, stage: str, resume: bool) -> dict:
        return {}


class Teacher(Hooks):
    @staticmethod
    def spec(p, stage: str) -> tuple[dict, dict]:
        return _training(p.cfg.teacher), p.data_inputs


class Distill(Hooks):
    @staticmethod
    def spec(p, stage: str) -> tuple[dict, dict]:
        cfg = {**_training(p.cfg.distill), "teacher_checkpoint": str(p.teacher_dir())}
        inputs = {**p.data_inputs, "teacher_sha256": weights_sha(p.teacher_dir())}
        if p.cfg.distill.init_checkpoint:
            inputs["init_sha256"] = weights_sha(Path(p.cfg.distill.init_checkpoint))
        return cfg, inputs

    @staticmethod
    def inputs(p, stage: str, resume: bool) -> dict:
        return {"teacher": str(p.teacher_dir())}


class Prune(Hooks):
    @staticmethod
    def spec(p, stage: str) -> tuple[dict, dict]:
        c = p.cfg
        cfg = {
            # the data its student records is the pipeline's own: hashed as the prune stage then resolves it
            **_training(dataclasses.replace(c.prune, data=c.data)),
            "checkpoint": str(c.stage_dir("distill")),
            "teacher_checkpoint": str(p.teacher_dir()),
        }
        return cfg, {
            **p.data_inputs,
            "distilled_sha256": weights_sha(c.stage_dir("distill")),
            "teacher_sha256": weights_sha(p.teacher_dir()),
        }

    @staticmethod
    def inputs(p, stage: str, resume: bool) -> dict:
        return {"teacher": str(p.teacher_dir()), "checkpoint": p.cfg.stage_dir("distill")}


class Compress(Hooks):
    """quantize and export: they compress the pipeline's final student (the pruned one when there is a prune stage)."""

    @staticmethod
    def spec(p, stage: str) -> tuple[dict, dict]:
        return to_dict(p.config(stage)), {"student_sha256": weights_sha(p.student_dir())}

    @staticmethod
    def inputs(p, stage: str, resume: bool) -> dict:
        return {"checkpoint": p.student_dir()}


class Bench(Hooks):
    @staticmethod
    def spec(p, stage: str) -> tuple[dict, dict]:
        bench = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(p.cfg.bench).items()}
        # the fingerprints of the stages whose artifacts it times
        ups = {
            s.name: state(p.cfg.stage_dir(s.name)).get("fingerprint")
            for s in stages.TABLE.values()
            if s.makes_artifacts
        }
        return bench, {"student_sha256": weights_sha(p.student_dir()), **ups}

    @staticmethod
    def inputs(p, stage: str, resume: bool) -> dict:
        # the unpruned student (and its by-hand baselines) next to the pruned one; not a pruned/ left by a config
        # that had a prune stage
        ours = {stages.get(s).folder for s in p.stages()}
        return {"paths": [d for d in runs.benchable(p.cfg.root) if d.name in ours]}
