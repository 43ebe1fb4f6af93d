"""The two typed hand-offs between stages: a `Checkpoint` (a checkpoint dir, loaded once) and an
`Artifact` (a file plus its typed manifest). Stages, the bench and the diagnostics take these instead
of reading `vitc.json` or a manifest by key; this module is the one place that does.

The data a model was trained on travels with it: `Checkpoint.data_name()` is the recorded dataset
unless an explicit `--data` overrides it, and when neither names data that can still be read it is
one sentence, never a silent fall-back to digits.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .data import DataSource, eval_pixels, eval_tensors, is_builtin, load_source
from .errors import DataError
from .int8_recipe import apply_recipe
from .manifest import Manifest, Preprocess  # noqa: F401  (re-exported: the typed hand-offs live together here)
from .models import build_from_spec, gflops
from .validate import reference_logits

VAL_SPLIT = "val"  # what every validation and accuracy number is measured on


def recorded_data(meta: dict) -> str | None:
    """The dataset a checkpoint or manifest says it was trained (or validated) on, or None."""
    d = meta.get("data")
    if isinstance(d, dict):
        d = d.get("name")
    return d or (meta.get("config") or {}).get("data") or ((meta.get("inputs") or {}).get("data") or {}).get("name")


def resolve_data(recorded: str | None, override: str | None, what: str) -> str:
    """--data when given, else the recorded dataset; one sentence when there is none that can be read."""
    if override:
        return override
    if not recorded:
        raise DataError(
            f"{what} does not record the data it was trained on",
            "pass --data (digits, or the ImageFolder dir it was trained on)",
        )
    if not is_builtin(recorded) and not Path(recorded).exists():
        raise DataError(
            f"{what} was trained on {recorded}, which no longer exists",
            "pass --data with that dataset (an ImageFolder with the same classes)",
        )
    return recorded


class Checkpoint:
    """A vitc checkpoint dir, read once. Model, runner, val tensors and fp32 reference are cached."""

    def __init__(self, path: str | Path, meta: dict):
        self.path, self.meta = Path(path), meta
        self._sources: dict[str, DataSource] = {}
        self._val: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._ref: dict[str, np.ndarray] = {}
        self._pixels: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def open(cls, path: str | Path) -> "Checkpoint":
        return cls(path, ckpt.load_meta(path))

    @staticmethod
    def is_one(path: str | Path) -> bool:
        return ckpt.is_checkpoint_dir(path)

    # -- what vitc.json says
    @property
    def spec(self) -> dict:
        return self.meta["model"]

    @property
    def name(self) -> str:
        return self.spec["name"]

    @cached_property
    def pre(self) -> Preprocess:
        return Preprocess.from_json(self.meta["preprocess"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def stage(self) -> str | None:
        return self.meta.get("stage")

    @property
    def sha256(self) -> str:
        return self.meta["weights_sha256"]

    @property
    def quantization(self) -> dict | None:
        return self.meta.get("quantization")

    @property
    def metrics(self) -> dict:
        return dict(self.meta.get("metrics") or {})

    @property
    def lineage(self) -> dict:
        """What this checkpoint was made from, each input by its sha256 (teacher, source, init, data)."""
        return dict(self.meta.get("inputs") or {})

    @property
    def recorded_data(self) -> str | None:
        return recorded_data(self.meta)

    @property
    def teacher_path(self) -> str | None:
        """The teacher it was distilled from, as recorded (None when it had none)."""
        return (self.lineage.get("teacher") or {}).get("path")

    @property
    def pruning(self) -> dict | None:
        """What `vitc prune` did to it (ratio or latency budget, before/after), when it did."""
        return self.meta.get("pruning")

    @property
    def fp32_source(self) -> Path:
        """The fp32 checkpoint a dynamic-int8 one was made from, when it still exists; else itself."""
        p = (self.lineage.get("checkpoint") or {}).get("path")
        return Path(p) if p and ckpt.is_checkpoint_dir(p) else self.path

    # -- data
    def data_name(self, override: str | None = None) -> str:
        return resolve_data(self.recorded_data, override, f"checkpoint {self.path}")

    def source(self, override: str | None = None) -> DataSource:
        name = self.data_name(override)
        if name not in self._sources:
            src = load_source(name, self.pre.size)
            if len(src.classes) != len(self.classes) or (is_builtin(name) and src.classes != self.classes):
                raise DataError(
                    f"--data {name} has {len(src.classes)} classes {src.classes[:5]}, but {self.path} predicts "
                    f"{len(self.classes)} {self.classes[:5]}",
                    "pass the dataset the model was trained on",
                )
            self._sources[name] = src
        return self._sources[name]

    def val(self, override: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole val split with this model's eval pre-processing, computed once per dataset."""
        name = self.data_name(override)
        if name not in self._val:
            self._val[name] = eval_tensors(self.source(name).val, self.pre.to_json())
        return self._val[name]

    def pixels(self, override: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The val split as uint8 pixels (N, H, W, 3), resized and cropped: an in-graph artifact's input."""
        name = self.data_name(override)
        if name not in self._pixels:
            self._pixels[name] = eval_pixels(self.source(name).val, self.pre.to_json())
        return self._pixels[name]

    # -- the model
    @cached_property
    def model(self) -> torch.nn.Module:
        """The fp32 model (a quantization recipe is not applied: see `runnable`)."""
        ckpt.verify_weights(self.path, self.meta)
        m = build_from_spec(self.spec)
        ckpt.load_into(m, ckpt.load_weights(self.path / ckpt.WEIGHTS), str(self.path))
        return m.eval()

    @cached_property
    def runnable(self) -> torch.nn.Module:
        """The model as it serves: the dynamic-int8 recipe applied when the checkpoint holds one."""
        return apply_recipe(self.model, self.quantization)

    def runner(self):
        """fn(np.ndarray) -> logits, for the bench and `vitc predict`."""
        model = self.runnable

        def fn(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        return fn

    def reference(self, override: str | None = None) -> np.ndarray:
        """fp32 PyTorch logits on the val split, computed once per dataset."""
        name = self.data_name(override)
        if name not in self._ref:
            self._ref[name] = reference_logits(self.model, self.val(name)[0])
        return self._ref[name]

    @cached_property
    def gflops(self) -> float:
        return gflops(self.model, list(self.pre.input_size))

    def __repr__(self) -> str:
        return f"Checkpoint({self.path}, {self.name}, stage={self.stage})"


class Artifact:
    """An exported file and its manifest."""

    def __init__(self, path: str | Path, manifest: Manifest):
        self.path, self.manifest = Path(path), manifest

    @staticmethod
    def manifest_path(path: str | Path) -> Path:
        return Manifest.path_of(path)

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        return cls(path, Manifest.read(path))

    @property
    def target(self) -> str:
        return self.manifest.target

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def pre(self) -> Preprocess:
        return self.manifest.preprocess

    @property
    def classes(self) -> list:
        return self.manifest.classes

    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint it was exported from, when that still exists."""
        p = self.manifest.source_checkpoint
        return Checkpoint.open(p) if p and ckpt.is_checkpoint_dir(p) else None

    def data_name(self, override: str | None = None) -> str:
        rec = (self.manifest.data or {}).get("name")
        if not rec and not override:
            c = self.checkpoint()
            rec = c.recorded_data if c else None
        return resolve_data(rec, override, f"artifact {self.path.name}")


__all__ = ["Artifact", "Checkpoint", "Manifest", "Preprocess", "VAL_SPLIT", "recorded_data", "resolve_data"]
