"""The typed hand-off beside every artifact: its manifest (`<artifact>.json`) and the pre-processing it travels
with. This module imports no torch: `vitc predict` on .onnx/.xml and `vitc bundle` read manifests through it, and
it is the one reader (`Manifest.read`) every other module uses too (vitc.handoff.Artifact, the bench, `vitc info`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import CheckpointError, VitcError


@dataclass(frozen=True)
class Preprocess:
    """The eval pre-processing that travels with a model (timm's data config)."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    crop_mode: str = "center"

    @classmethod
    def from_json(cls, d: dict) -> "Preprocess":
        return cls(
            tuple(int(v) for v in d["input_size"]),
            tuple(d["mean"]),
            tuple(d["std"]),
            d.get("interpolation", "bicubic"),
            float(d.get("crop_pct", 1.0)),
            d.get("crop_mode", "center"),
        )

    def to_json(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size), "mean": list(self.mean), "std": list(self.std)}

    @property
    def size(self) -> int:
        """The square input side in pixels."""
        return int(self.input_size[-1])


@dataclass
class Manifest:
    """What `vitc export` (and `vitc quantize`) write beside an artifact, every key typed. `validation` is the
    artifact against fp32 PyTorch on the val split (vitc.validate.Validation's fields, or compare_features's)."""

    artifact: str
    target: str
    precision: str
    status: str
    preprocess: Preprocess
    classes: list
    source: dict
    size_bytes: int = 0
    data: dict | None = None  # {"name", "split", "images"}: what the validation numbers come from
    validation: dict = field(default_factory=dict)
    output: str = "logits"  # or "features" (`vitc export --features`)
    tokens: list | None = None  # features: the token names, in output order
    input: dict | None = None  # {"preprocess": python | in-graph, "dtype", "layout"}
    options: dict = field(default_factory=dict)  # the target's export options
    export_s: float | None = None
    notes: dict = field(default_factory=dict)  # what the export did or skipped, said to the user
    versions: dict = field(default_factory=dict)  # runtime versions it was made and validated with
    isa: dict | None = None  # the int8 path it was validated on, and (int8) the CPUs it was built for
    calibration: dict | None = None  # {"data", "split", "images"}, or None: the target used none
    graph: dict | None = None  # what export/head_tokens.py changed in the graph, and its GFLOPs
    top1_drop: float | None = None
    max_drop: float | None = None
    selftest: dict | None = None  # reference images and the gate `vitc predict --selftest` checks
    baseline: str | None = None  # benchmarks/baselines.py: which by-hand recipe built it
    control: str | None = None  # benchmarks/baselines.py: the by-hand recipe run on vitc's own graph

    REQUIRED = ("target", "precision", "classes", "preprocess")

    @staticmethod
    def path_of(artifact: str | Path) -> Path:
        return Path(str(artifact) + ".json")

    @classmethod
    def from_json(cls, m: dict) -> "Manifest":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in m.items() if k in names}
        kw["preprocess"] = Preprocess.from_json(m["preprocess"])
        kw["classes"] = list(m["classes"])
        kw.setdefault("artifact", "")
        kw.setdefault("status", "")
        kw["source"] = dict(m.get("source") or {})
        for k in ("validation", "options", "notes", "versions"):
            kw[k] = dict(m.get(k) or {})
        kw["size_bytes"] = int(m.get("size_bytes") or 0)
        return cls(**kw)

    @classmethod
    def read(cls, artifact: str | Path) -> "Manifest":
        """The manifest beside `artifact`; one sentence when there is none or it is not vitc's."""
        p = cls.path_of(artifact)
        if not p.is_file():
            raise VitcError(f"no manifest {p.name} beside {artifact}", "use an artifact written by `vitc export`")
        try:
            m = json.loads(p.read_text())
            missing = [k for k in cls.REQUIRED if k not in m]
            if missing:
                raise KeyError(missing[0])
            return cls.from_json(m)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{p} is not a vitc manifest ({type(e).__name__}: {e})", "re-export the artifact with `vitc export`"
            ) from None

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["preprocess"] = self.preprocess.to_json()
        return d

    @property
    def in_graph(self) -> bool:
        """The artifact takes uint8 RGB pixels and normalizes inside (`--preprocess in-graph`)."""
        return (self.input or {}).get("preprocess") == "in-graph"

    @property
    def source_checkpoint(self) -> str | None:
        return self.source.get("checkpoint")
