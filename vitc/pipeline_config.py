"""`vitc pipeline CONFIG.yaml`: the YAML file, validated into the same dataclasses the CLI builds.

An unknown key or a wrong type is a ConfigError that names the file, the line and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import stages
from .config import (
    BenchConfig,
    DistillConfig,
    ExportConfig,
    PruneConfig,
    QuantizeConfig,
    TeacherConfig,
    _check_type,
    from_dict,
)
from .errors import ConfigError

STAGES = stages.ORDER


@dataclass
class PipelineConfig:
    name: str
    data: str = "digits"
    runs: str = "runs"  # stages write into <runs>/<name>/<stage>/
    teacher: TeacherConfig | None = None
    teacher_checkpoint: str | None = None  # instead of a teacher stage: an existing vitc checkpoint dir
    distill: DistillConfig | None = None
    prune: PruneConfig | None = None  # optional: prune + re-distill the student before quantize/export/bench
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    data_named: bool = True  # False: the YAML names no `data`, so digits was chosen (and the CLI says so)

    @property
    def root(self) -> Path:
        return Path(self.runs) / self.name

    def stage_dir(self, stage: str) -> Path:
        """<runs>/<name>/<folder>: the stage table's folder name, the same as the CLI's runs/<folder>."""
        return self.root / stages.get(stage).folder


def _sections(raw: dict) -> PipelineConfig:
    top = {k: raw[k] for k in ("name", "data", "runs", "teacher_checkpoint") if k in raw}
    for k, v in top.items():
        _check_type(v, "str | None" if k == "teacher_checkpoint" else "str", k)
    if "name" not in top:
        raise ConfigError("name: missing", "add e.g. `name: digits` (stages write into runs/<name>/)")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", top["name"]):
        raise ConfigError(f"name: {top['name']!r} must be a plain folder name (letters, digits, . _ -)")
    data = top.get("data", "digits")
    for sec in ("teacher", "distill"):
        if isinstance(raw.get(sec), dict) and "data" in raw[sec]:
            raise ConfigError(f"{sec}.data: set `data` once at the top level", "every stage uses the same dataset")
    teacher = None
    if raw.get("teacher") is not None:
        t = {**raw["teacher"], "data": data} if isinstance(raw["teacher"], dict) else raw["teacher"]
        teacher = _prefixed("teacher", lambda: from_dict(TeacherConfig, t, "teacher"))
    if teacher is None and not top.get("teacher_checkpoint"):
        raise ConfigError("teacher: missing", "add a `teacher:` section to train one, or `teacher_checkpoint: PATH`")
    if teacher is not None and top.get("teacher_checkpoint"):
        raise ConfigError("teacher_checkpoint: give either a teacher section or teacher_checkpoint, not both")
    if not isinstance(raw.get("distill"), dict):
        raise ConfigError(
            "distill: missing or not a mapping", "add a `distill:` section with at least `student: {name: deit_tiny}`"
        )
    if "teacher_checkpoint" in raw["distill"]:
        raise ConfigError("distill.teacher_checkpoint: set by the pipeline", "use the top-level `teacher_checkpoint:`")
    # the teacher path is filled in by the pipeline; a placeholder satisfies the "needs a teacher" check
    distill = _prefixed(
        "distill",
        lambda: from_dict(
            DistillConfig, {**raw["distill"], "data": data, "teacher_checkpoint": "<pipeline>"}, "distill"
        ),
    )
    prune = None
    if raw.get("prune") is not None:
        if not isinstance(raw["prune"], dict):
            raise ConfigError("prune: expected a mapping, e.g. `prune: {ratio: 0.5, train: {epochs: 10}}`")
        for k in ("checkpoint", "teacher_checkpoint", "data"):
            if k in raw["prune"]:
                raise ConfigError(
                    f"prune.{k}: set by the pipeline",
                    "the prune stage reads the distill stage's student, its teacher and the top-level data",
                )
        # the student and teacher paths are filled in by the pipeline; the data is the one its student records,
        # as for `vitc prune` (the pipeline's own, which the distill stage trained on)
        prune = _prefixed(
            "prune", lambda: from_dict(PruneConfig, {**raw["prune"], "checkpoint": "<pipeline>"}, "prune")
        )
    for sec in ("quantize", "export", "bench"):
        if isinstance(raw.get(sec), dict) and "data" in raw[sec]:
            raise ConfigError(f"{sec}.data: set by the pipeline", "every stage uses the top-level `data`")
    return PipelineConfig(
        **top,
        data_named="data" in top,
        teacher=teacher,
        distill=distill,
        prune=prune,
        quantize=_prefixed("quantize", lambda: from_dict(QuantizeConfig, raw.get("quantize") or {}, "quantize")),
        export=_prefixed("export", lambda: from_dict(ExportConfig, raw.get("export") or {}, "export")),
        bench=_prefixed("bench", lambda: from_dict(BenchConfig, _tuples(raw.get("bench") or {}), "bench")),
    )


def _tuples(d: dict) -> dict:
    return (
        {k: tuple(v) if k == "batch" and isinstance(v, list) else v for k, v in d.items()} if isinstance(d, dict) else d
    )


def _key_lines(node, prefix=()) -> dict:
    """(key, path...) -> line number, from PyYAML's node marks."""
    import yaml

    out = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = prefix + (str(k.value),)
            out[path] = k.start_mark.line + 1
            out.update(_key_lines(v, path))
    return out


def _line_for(msg: str, lines: dict) -> int | None:
    """The line of the key an error names: a path in the file starting at the error's section and
    ending at its last key, preferring the one that holds every named key in order."""
    parts = msg.split(":", 1)[0].strip().split(".")

    def in_order(path: tuple) -> bool:
        it = iter(path)
        return all(p in it for p in parts)

    cands = [
        (in_order(path), -len(path), line)
        for path, line in lines.items()
        if path[0] == parts[0] and path[-1] == parts[-1]
    ]
    return max(cands)[2] if cands else None


def _prefixed(section: str, fn):
    try:
        return fn()
    except ConfigError as e:
        if not e.message.startswith(section + ".") and not e.message.startswith(section + ":"):
            e.message = f"{section}.{e.message}"
        raise


def load(path: Path) -> PipelineConfig:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline config {path} does not exist", "see configs/digits.yaml for an example")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)  # safe_load: a config never constructs Python objects
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (name, data, teacher, distill, ...)")
    known = {"name", "data", "runs", "teacher_checkpoint", *stages.ORDER}
    lines = _key_lines(node)
    for k in raw:
        if k not in known:
            raise ConfigError(
                f"{path}:{lines.get((str(k),), '?')}: {k}: unknown key",
                f"valid top-level keys: {', '.join(sorted(known))}",
            )
    try:
        return _sections(raw)
    except ConfigError as e:
        line = _line_for(e.message, lines)
        e.message = f"{path}{f':{line}' if line else ''}: {e.message}"
        raise
