"""Stage configs: dataclasses validated when built, saved as JSON beside their output.

The CLI and (later) the pipeline YAML build these same classes; an unknown key or a value out of
range is a ConfigError naming the key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from . import export  # the target registry: its modules import their runtimes (and torch) only where they run
from .budget import RUNTIMES, Budget
from .errors import ConfigError

# Augmentation presets. "deit" is DeiT's ImageNet recipe (Touvron et al. 2021, main.py defaults):
# RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing
# 0.1, RandomResizedCrop scale (0.08, 1), horizontal flip. "digits" keeps digits legible: no flip
# (a mirrored 2 is not a 2), mild crops and RandAugment. "none": resize + normalize only.
AUG_PRESETS: dict[str, dict[str, Any]] = {
    "deit": dict(
        auto_augment="rand-m9-mstd0.5-inc1",
        reprob=0.25,
        mixup=0.8,
        cutmix=1.0,
        smoothing=0.1,
        scale=(0.08, 1.0),
        hflip=0.5,
    ),
    "digits": dict(
        auto_augment="rand-m6-mstd0.5", reprob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.1, scale=(0.7, 1.0), hflip=0.0
    ),
    # Fashion-MNIST, sized for a few epochs (results/fashion-cpu): mild crops and flips (products are left-right
    # symmetric, garments are not upside down), random erasing as in the leaderboard's 96.3% WRN; no RandAugment
    # or mixing, which pay off only over long schedules
    "fashion": dict(auto_augment=None, reprob=0.1, mixup=0.0, cutmix=0.0, smoothing=0.1, scale=(0.8, 1.0), hflip=0.5),
    "none": dict(auto_augment=None, reprob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.0, scale=(1.0, 1.0), hflip=0.0),
}


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def _choice(value, choices, key: str) -> None:
    """A value drawn from a fixed set: one sentence naming the valid ones, and the closest as the hint."""
    import difflib

    choices = [str(c) for c in choices]
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        raise ConfigError(
            f"{key}: {value!r} is not one of {', '.join(choices)}", f"did you mean {close[0]!r}?" if close else None
        )


def _check_auto_augment(spec: str) -> None:
    """Parse the policy string with timm's own parser now, not at the first training batch."""
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform

    build = (
        rand_augment_transform
        if spec.startswith("rand")
        else augment_and_mix_transform
        if spec.startswith("augmix")
        else auto_augment_transform
    )
    try:
        build(spec, {"translate_const": 10, "img_mean": (124, 116, 104)})
    except Exception as e:  # timm raises assert/KeyError/ValueError on a malformed policy string
        raise ConfigError(
            f"aug.auto_augment: {spec!r} is not a timm policy string ({type(e).__name__}: {e})",
            "e.g. rand-m9-mstd0.5-inc1, augmix-m5-w4-d2, or none",
        ) from None


# The preset a run gets when it names none: the one for the data it trains on (issue 35: never silently digits'),
# "deit" (DeiT's own recipe) for data vitc knows nothing about (an ImageFolder, other torchvision sets).
DATA_PRESETS = {
    "digits": "digits",
    "torchvision:MNIST": "digits",
    "fashion-mnist": "fashion",
    "torchvision:FashionMNIST": "fashion",
}


def preset_for(data: str) -> str:
    return DATA_PRESETS.get(data, "deit")


@dataclass
class AugConfig:
    preset: str | None = None  # None: the data's (preset_for), filled in by for_data() once the data is known
    auto_augment: str | None = None
    reprob: float | None = None
    mixup: float | None = None
    cutmix: float | None = None
    smoothing: float | None = None
    scale: tuple[float, float] | None = None
    hflip: float | None = None

    def __post_init__(self):
        if self.preset is not None:
            _choice(self.preset, sorted(AUG_PRESETS), "aug.preset")
            for k, v in AUG_PRESETS[self.preset].items():  # explicit values win over the preset
                if getattr(self, k) is None:
                    setattr(self, k, v)
        # a value given explicitly is checked now, also while the preset waits for the data
        for k in ("reprob", "hflip"):
            if getattr(self, k) is not None:
                _check(0.0 <= getattr(self, k) <= 1.0, f"aug.{k}", "must be in [0, 1]")
        for k in ("mixup", "cutmix"):
            if getattr(self, k) is not None:
                _check(getattr(self, k) >= 0.0, f"aug.{k}", "must be >= 0")
        if self.smoothing is not None:
            _check(0.0 <= self.smoothing < 1.0, "aug.smoothing", "must be in [0, 1)")
        if self.scale is not None:
            _check(
                isinstance(self.scale, (list, tuple))
                and len(self.scale) == 2
                and all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in self.scale),
                "aug.scale",
                f"must be two numbers [lo, hi], got {self.scale!r}",
            )
            self.scale = tuple(float(s) for s in self.scale)
            _check(0 < self.scale[0] <= self.scale[1] <= 1, "aug.scale", "must be 0 < lo <= hi <= 1")
        if self.auto_augment in ("", "none"):
            self.auto_augment = None
        # the policy string is parsed by timm (and so torch) in check_policies(), when a stage is about to run:
        # validating a config file stays torch-free

    def for_data(self, data: str | None) -> "AugConfig":
        """This config with the preset of `data` where none was named (explicit values kept); as it is when named."""
        if self.preset is not None or data is None:
            return self
        return AugConfig(**{**dataclasses.asdict(self), "preset": preset_for(data)})

    def check_policy(self) -> None:
        if self.auto_augment is not None:
            _check_auto_augment(self.auto_augment)

    @property
    def mixing(self) -> bool:
        if self.preset is None:
            raise ConfigError("aug.preset: not resolved yet (AugConfig.for_data was not called with the run's data)")
        return self.mixup > 0 or self.cutmix > 0


DEFAULT_WARMUP = 5.0  # DeiT's linear warm-up, in epochs
TEACHER_WARMUP = 1.0  # `vitc teacher`'s (a short fine-tune)
TEACHER_EPOCHS = 10  # `vitc teacher`'s, also for the teacher `vitc distill` trains when it has none
# The CLI's from-scratch learning rates: the measured digits recipe (configs/digits.yaml: resnet18 teacher
# 99.17%, regnety_16gf 98.33% in 10 epochs; hard-distilled deit_tiny 96.85-98.06%). DeiT's rule
# (base_lr 5e-4 x batch / 512) is for fine-tuning at ImageNet batch sizes: at batch 64 it gives 6.25e-5,
# with which `vitc distill --teacher regnety_16gf --student deit_tiny` reached a 71% teacher and a 57.5% student.
SCRATCH_TEACHER_LR = 2e-3
SCRATCH_STUDENT_LR = 5e-4
WARMUP_SHARE = 0.2  # a default warm-up that does not fit the run takes this share of it
DEFAULT_BATCH = 64  # per process; when the CLI user sets none, fit() caps it at the data (default_batch)
DISTILL_AMP = "auto"  # the student's default autocast (see TrainConfig.amp)

# Each training stage's defaults: the one source that `vitc teacher|distill|prune`, a pipeline YAML and the
# auto teacher all build from (TeacherConfig, DistillConfig and PruneConfig merge the user's settings over these).
# lr is absent where it depends on the model: from scratch it is the measured recipe (SCRATCH_*_LR), when
# fine-tuning hub weights DeiT's scaling rule (base_lr x batch / 512).
TEACHER_TRAIN: dict[str, Any] = {
    "epochs": TEACHER_EPOCHS,
    "warmup_epochs": TEACHER_WARMUP,
    "drop_path": 0.0,
    "amp": "off",
}
DISTILL_TRAIN: dict[str, Any] = {"epochs": 40, "warmup_epochs": DEFAULT_WARMUP, "drop_path": 0.1, "amp": DISTILL_AMP}
PRUNE_TRAIN: dict[str, Any] = {
    "epochs": 10,
    "warmup_epochs": 1.0,
    "drop_path": 0.0,
    "amp": DISTILL_AMP,
    "lr": SCRATCH_STUDENT_LR,
}  # the measured 224 recipe (results/prune-224-cpu)


def default_warmup(epochs: int, default: float) -> tuple[float, str | None]:
    """The warm-up a run gets when the user set none: the stage's default when it fits the run;
    otherwise (`--epochs 1` with DeiT's 5) a fifth of the run, so the request is valid. Runs the
    default fits keep exactly their old recipe (and pipeline fingerprint). -> (warm-up, a note when cut)."""
    w = default if default < epochs else round(WARMUP_SHARE * epochs, 3)
    note = (
        None
        if w == default
        else (
            f"warm-up: {w:g} epochs, a fifth of this {epochs}-epoch run (the default {default:g}-epoch warm-up "
            "needs a longer run); pass --warmup-epochs to choose"
        )
    )
    return w, note


def default_batch(n_train: int, mixing: bool) -> tuple[int, str | None]:
    """The batch a run gets when the user set none: DEFAULT_BATCH, capped at the training images (even,
    when mixup/cutmix pair the batch). -> (batch, a note when capped)."""
    b = min(DEFAULT_BATCH, n_train)
    if mixing and b % 2:
        b -= 1
    note = (
        None
        if b == DEFAULT_BATCH
        else (
            f"batch size: the default {DEFAULT_BATCH} is more than the {n_train} training images; "
            f"using {b} (pass --batch-size to choose)"
        )
    )
    return max(b, 1), note


def stage_train(
    defaults: dict, given: "dict | TrainConfig | None", where: str = "train", data: str | None = None
) -> "TrainConfig":
    """A stage's TrainConfig: the user's settings over the stage's defaults. A warm-up the user did not set is
    the stage's, cut to fit a short run (default_warmup); an augmentation preset not named is the data's (None:
    not known yet, as for `vitc prune` before it reads its checkpoint). A TrainConfig passed in is kept as it is,
    its preset aside."""
    if isinstance(given, TrainConfig):
        return given.for_data(data)
    given = dict(given or {})
    merged = {**{k: v for k, v in defaults.items() if k != "warmup_epochs"}, **given}
    if given.get("warmup_epochs") is None:
        epochs = merged.get("epochs", TrainConfig.epochs)
        if isinstance(epochs, int) and epochs >= 1:
            merged["warmup_epochs"] = default_warmup(epochs, defaults.get("warmup_epochs", DEFAULT_WARMUP))[0]
    return from_dict(TrainConfig, merged, where).for_data(data)


@dataclass
class TrainConfig:
    """The optimisation recipe shared by `vitc teacher` and `vitc distill`."""

    epochs: int = 30
    batch_size: int = DEFAULT_BATCH  # per process; the global batch is batch_size * world size
    base_lr: float = 5e-4  # DeiT: lr = base_lr * global_batch / 512
    lr: float | None = None  # absolute lr; when set, the scaling rule is not applied
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float | None = None  # None: DeiT's 5, cut by default_warmup when it does not fit the run
    warmup_lr: float = 1e-6
    drop_path: float = 0.1
    ema: float = 0.0  # EMA decay (e.g. 0.9998); 0 disables
    # held-out top-1 every this many epochs as well as at each epoch's end (0: epoch ends only), for the
    # time-to-accuracy curve (top-1 against images seen); needs data with a held-out part (DataSource.holdout)
    eval_every: float = 0.0
    # bf16 autocast for the trained model: off | bf16 | auto (when the CPU has BF16, or on GPU).
    # `vitc teacher` defaults to off; `vitc distill` to auto (DISTILL_AMP): on digits, 6 seeds, the
    # bf16 student matched the fp32 one (96.94 +- 0.35 vs 96.94 +- 0.93) and trained 1.6x faster.
    amp: str = "off"
    seed: int = 0
    workers: int = 0
    threads: int | None = None
    aug: AugConfig = field(default_factory=AugConfig)

    def __post_init__(self):
        if isinstance(self.aug, dict):
            self.aug = from_dict(AugConfig, self.aug, "aug")
        _check(
            isinstance(self.epochs, int) and self.epochs >= 1, "epochs", f"must be an integer >= 1, got {self.epochs!r}"
        )
        _check(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
            "batch_size",
            f"must be an integer >= 1, got {self.batch_size!r}",
        )
        _check(self.base_lr > 0, "base_lr", "must be > 0")
        _check(self.lr is None or self.lr > 0, "lr", "must be > 0")
        _check(0 <= self.min_lr, "min_lr", "must be >= 0")
        if self.warmup_epochs is None:
            self.warmup_epochs = default_warmup(self.epochs, DEFAULT_WARMUP)[0]
        _check(0 <= self.weight_decay < 1, "weight_decay", "must be in [0, 1)")
        _check(
            0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
            "warmup_epochs",
            f"{self.warmup_epochs:g} must be fewer than epochs ({self.epochs}); use --warmup-epochs 0 for short runs",
        )
        _check(0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)")
        _check(0 <= self.ema < 1, "ema", "must be in [0, 1)")
        _check(0 <= self.eval_every <= 1, "eval_every", "must be in [0, 1] epochs (0: at epoch ends only)")
        _choice(self.amp, ("auto", "bf16", "off"), "amp")
        _check(self.workers >= 0, "workers", "must be >= 0")
        _check(self.threads is None or self.threads >= 1, "threads", "must be >= 1")

    def for_data(self, data: str | None) -> "TrainConfig":
        """The augmentation preset of the data the run trains on, where none was named (AugConfig.for_data)."""
        aug = self.aug.for_data(data)
        return self if aug is self.aug else dataclasses.replace(self, aug=aug)

    def scaled_lr(self, global_batch: int) -> float:
        return self.lr if self.lr is not None else self.base_lr * global_batch / 512


@dataclass
class ModelArgs:
    name: str
    img_size: int = 32
    patch_size: int | None = None
    pretrained: bool = False
    crop_pct: float | None = None
    stem: str = "default"  # vitc.models.STEMS: "small" gives a ResNet's first stage 1/2 the input side, not 1/4

    def __post_init__(self):
        _choice(self.stem, ("default", "small"), "stem")
        _check(
            isinstance(self.img_size, int) and self.img_size >= 8,
            "img_size",
            f"must be an integer >= 8, got {self.img_size!r}",
        )
        if self.patch_size is not None:
            _check(self.patch_size >= 1, "patch_size", "must be >= 1")
            _check(
                self.img_size % self.patch_size == 0,
                "patch_size",
                f"image size {self.img_size} is not divisible by patch size {self.patch_size}; pick e.g. --patch-size "
                f"{next(p for p in (16, 8, 4, 2, 1) if self.img_size % p == 0)}",
            )
        _check(self.crop_pct is None or 0 < self.crop_pct <= 1, "crop_pct", "must be in (0, 1]")


@dataclass
class TeacherConfig:
    model: ModelArgs
    data: str = "digits"
    train: TrainConfig | dict | None = None  # the user's settings over TEACHER_TRAIN

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = from_dict(ModelArgs, self.model, "model")
        _check(
            isinstance(self.model, ModelArgs),
            "model",
            f"expected a mapping such as {{name: resnet18, img_size: 32}}, got {self.model!r}",
        )
        _check(
            self.train is None or isinstance(self.train, (dict, TrainConfig)),
            "train",
            f"expected a mapping, got {self.train!r}",
        )
        self.train = stage_train(TEACHER_TRAIN, self.train, data=self.data)
        if self.train.lr is None and not self.model.pretrained:
            self.train.lr = SCRATCH_TEACHER_LR  # from scratch: the measured recipe; fine-tuning keeps DeiT's rule


DISTILL_TYPES = ("hard", "soft", "none")


@dataclass
class DistillConfig:
    student: ModelArgs
    teacher: str | None = None  # timm name/alias; optional when teacher_checkpoint is a dir
    teacher_checkpoint: str | None = None
    teacher_pretrained: bool = False
    data: str = "digits"
    distillation: str = "hard"
    alpha: float = 0.5
    tau: float = 1.0
    teacher_amp: str = "auto"  # bf16 autocast for the frozen teacher: auto | bf16 | off
    init_checkpoint: str | None = None  # start the student from this checkpoint (resampled to the new grid)
    train: TrainConfig | dict | None = None  # the user's settings over DISTILL_TRAIN

    def __post_init__(self):
        if isinstance(self.student, dict):
            self.student = from_dict(ModelArgs, self.student, "student")
        _check(
            isinstance(self.student, ModelArgs),
            "student",
            f"expected a mapping such as {{name: deit_tiny}}, got {self.student!r}",
        )
        _check(
            self.train is None or isinstance(self.train, (dict, TrainConfig)),
            "train",
            f"expected a mapping, got {self.train!r}",
        )
        self.train = stage_train(DISTILL_TRAIN, self.train, data=self.data)
        if self.train.lr is None and not self.student.pretrained:
            self.train.lr = SCRATCH_STUDENT_LR  # from scratch (or from --init-checkpoint): the measured recipe
        _choice(self.distillation, DISTILL_TYPES, "distillation")
        _check(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        _check(self.tau > 0, "tau", "must be > 0")
        _choice(self.teacher_amp, ("auto", "bf16", "off"), "teacher_amp")
        if self.distillation != "none":
            _check(
                bool(self.teacher_checkpoint) or (bool(self.teacher) and self.teacher_pretrained),
                "teacher",
                "distillation needs a teacher: pass --teacher NAME (vitc gets or trains it), --teacher-checkpoint PATH, "
                "or --teacher NAME --teacher-pretrained when online",
            )


PRUNE_IMPORTANCE = ("magnitude", "taylor")
PRUNE_ROUND_TO = 16  # channels kept in multiples of this (see results/prune-224-cpu for the round-to study)


@dataclass
class PruneConfig:
    """`vitc prune`: structured pruning of a distilled student (torch-pruning), then DeiT re-distillation."""

    checkpoint: str  # the distilled student (a vitc checkpoint dir)
    teacher_checkpoint: str | None = None  # default: the teacher the student was distilled from
    data: str | None = None  # default: the student's own dataset
    ratio: float | None = None  # share of channels removed: embedding width, head dims, MLP hidden (default 0.5)
    head_ratio: float = 0.0  # share of whole heads removed per block (0: keep every head)
    importance: str = "magnitude"  # group L2 magnitude | first-order Taylor (needs gradients on train images)
    round_to: int | None = PRUNE_ROUND_TO
    taylor_batches: int = 8  # train batches whose gradients the Taylor importance sums
    distillation: str = "hard"
    alpha: float = 0.5
    tau: float = 1.0
    teacher_amp: str = "auto"
    train: TrainConfig | dict | None = None  # the user's settings over PRUNE_TRAIN
    # latency-first (compress/prune_latency.py): a budget, relative ("0.33x") or absolute ("1.2ms"), instead of
    # a ratio; depth, width and input size are chosen from latency measured on `runtime` (a cached table)
    latency: str | None = None
    runtime: str = "openvino-int8"
    widths: tuple[float, ...] = (0.0, 0.25, 0.5)  # the width ratios the table measures
    token_scales: tuple[float, ...] = (1.0, 0.75)  # input side x this, in whole patches: fewer tokens
    table: str | None = None  # the latency table's JSON (default: a per-machine cache under ~/.cache/vitc)
    latency_rounds: int = 2
    latency_threads: int = 2  # threads the table times with: the bench's default

    def __post_init__(self):
        _check(
            self.train is None or isinstance(self.train, (dict, TrainConfig)),
            "train",
            f"expected a mapping, got {self.train!r}",
        )
        self.train = stage_train(PRUNE_TRAIN, self.train, data=self.data)
        _check(
            self.ratio is None or self.latency is None,
            "latency",
            "give a latency budget or a ratio, not both",
        )
        if self.latency is not None:
            Budget.parse(self.latency)
            _choice(self.runtime, RUNTIMES, "runtime")
            self.widths, self.token_scales = tuple(map(float, self.widths)), tuple(map(float, self.token_scales))
            _check(
                all(0 <= w < 1 for w in self.widths) and all(0 < t <= 1 for t in self.token_scales),
                "widths",
                "widths must lie in [0, 1) and token_scales in (0, 1]",
            )
            _check(isinstance(self.latency_rounds, int) and self.latency_rounds >= 1, "latency_rounds", "must be >= 1")
        elif self.ratio is None:
            self.ratio = 0.5
        _check(
            self.ratio is None or isinstance(self.ratio, (int, float)) and 0 < self.ratio < 1,
            "ratio",
            f"must be in (0, 1), the share of channels removed; got {self.ratio!r}",
        )
        _check(
            isinstance(self.head_ratio, (int, float)) and 0 <= self.head_ratio < 1,
            "head_ratio",
            f"must be in [0, 1), the share of heads removed; got {self.head_ratio!r}",
        )
        _choice(self.importance, PRUNE_IMPORTANCE, "importance")
        _check(
            self.round_to is None or (isinstance(self.round_to, int) and self.round_to >= 1),
            "round_to",
            f"must be an integer >= 1, got {self.round_to!r}",
        )
        _check(
            isinstance(self.taylor_batches, int) and self.taylor_batches >= 1,
            "taylor_batches",
            "must be an integer >= 1",
        )
        _choice(self.distillation, DISTILL_TYPES, "distillation")
        _check(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        _check(self.tau > 0, "tau", "must be > 0")
        _choice(self.teacher_amp, ("auto", "bf16", "off"), "teacher_amp")


QUANT_BACKENDS = ("torch", "onnxruntime", "openvino", "executorch")
QUANT_TARGET = {
    "torch": "torchscript-lite",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "executorch": "executorch",  # the XNNPACK quantizer (PT2E), lowered to the XNNPACK delegate: the mobile path
}  # the artifact each backend writes
ORT_MODES = ("auto", "static", "dynamic")
INT8_ISAS = ("portable", "vnni", "auto")  # vitc/isa.py (which imports the export registry, so not imported here)
NNCF_SCHEMES = ("auto", "defaults", "transformer")


@dataclass
class QuantizeConfig:
    """`vitc quantize` and a pipeline's `quantize:`: int8 through each runtime's own quantizer."""

    # executorch is asked for by name: its export is the slowest and it needs the `mobile` extra
    backends: list = field(default_factory=lambda: [b for b in QUANT_BACKENDS if b != "executorch"])
    calib: str | None = None  # calibration images (train split); default: the checkpoint's own data
    calib_size: int = 128
    max_drop: float | None = (
        1.0  # an int8 model losing more top-1 points is kept but marked failed (exit 3 from the CLI)
    )
    data: str | None = None  # val data; default: the checkpoint's own
    ort_mode: str = "auto"  # onnxruntime int8: dynamic for transformers, static for CNNs
    nncf: str = "auto"  # openvino int8: NNCF defaults if they agree with fp32, else TRANSFORMER
    threads: int | None = None
    int8_isa: str = "portable"  # which CPUs the int8 models are for: portable | vnni | auto (vitc/isa.py)

    def __post_init__(self):
        if (
            not isinstance(self.backends, list)
            or not self.backends
            or any(b not in QUANT_BACKENDS for b in self.backends)
        ):
            raise ConfigError(f"backends: must be a list drawn from {list(QUANT_BACKENDS)}, got {self.backends!r}")
        _check(isinstance(self.calib_size, int) and self.calib_size >= 1, "calib_size", "must be an integer >= 1")
        _check(
            self.max_drop is None or self.max_drop >= 0, "max_drop", "must be >= 0 (the allowed top-1 loss in points)"
        )
        _choice(self.ort_mode, ORT_MODES, "ort_mode")
        _choice(self.nncf, NNCF_SCHEMES, "nncf")
        _check(self.threads is None or self.threads >= 1, "threads", "must be >= 1")
        _choice(self.int8_isa, INT8_ISAS, "int8_isa")


EXPORT_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportConfig:
    """`vitc export` and a pipeline's `export:`: every (target, precision) the target supports, from one load."""

    targets: list = field(default_factory=lambda: ["onnx", "openvino", "torchscript-lite", "executorch", "tensorrt"])
    precisions: list = field(default_factory=lambda: ["fp32", "fp16"])  # int8 comes from the quantize stage
    calib: str | None = None
    calib_size: int = 128
    max_drop: float | None = None
    data: str | None = None  # val data; default: the checkpoint's own
    threads: int | None = None
    features: bool = False  # the pre-logits token features instead of the logits
    # python: the artifact takes the normalized float tensor; in-graph: uint8 RGB pixels, normalized inside (the
    # targets that can: export/stage.py IN_GRAPH_TARGETS; the others are exported for python only)
    preprocess: list = field(default_factory=lambda: ["python"])
    int8_isa: str = "portable"  # int8 precisions: which CPUs they are for, portable | vnni | auto (vitc/isa.py)

    def __post_init__(self):
        _choice(self.int8_isa, INT8_ISAS, "int8_isa")
        _check(
            isinstance(self.preprocess, list) and self.preprocess and set(self.preprocess) <= {"python", "in-graph"},
            "preprocess",
            f"must be a non-empty list drawn from python, in-graph; got {self.preprocess!r}",
        )
        if not isinstance(self.targets, list) or not self.targets:
            raise ConfigError(f"targets: must be a non-empty list, got {self.targets!r}")
        for t in self.targets:
            export.get(t)  # unknown names raise with the closest match
        if not isinstance(self.precisions, list) or any(p not in EXPORT_PRECISIONS for p in self.precisions):
            raise ConfigError(
                f"precisions: must be a list drawn from {', '.join(EXPORT_PRECISIONS)}; got {self.precisions!r}"
            )
        _check(isinstance(self.calib_size, int) and self.calib_size >= 1, "calib_size", "must be an integer >= 1")
        _check(
            self.max_drop is None or self.max_drop >= 0, "max_drop", "must be >= 0 (the allowed top-1 loss in points)"
        )


@dataclass
class BenchConfig:
    threads: int = 2
    batch: tuple[int, ...] = (1, 16)  # the first is the latency batch, the others throughput batches
    warmup: int = 10
    warmup_seconds: float = 1.0
    min_runs: int = 50
    min_seconds: float = 2.0
    data: str | None = None  # val data for top-1 (default: each artifact's own)
    crosscheck: bool = True  # benchmark_app / bare ORT loop beside the OpenVINO / ONNX rows
    remeasure_peak: bool = False
    eval_batch: int = 32
    repeats: int = 3  # timing rounds over all artifacts in turn; p50 = median of the rounds
    baselines: bool = False  # also build and time issue 6's by-hand baselines (benchmarks/baselines.py)
    # each (artifact, round) timed in a fresh worker process with only its runtime loaded; False times
    # every artifact inside the bench process (the old way, kept for A/Bs: results/latency-ab/7-isolation)
    isolate: bool = True

    def __post_init__(self):
        if isinstance(self.batch, list):
            self.batch = tuple(self.batch)
        self.batch = tuple(self.batch)
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise ConfigError(f"bench.threads: must be an integer >= 1, got {self.threads!r}")
        if not self.batch or any(not isinstance(b, int) or b < 1 for b in self.batch):
            raise ConfigError(f"bench.batch: must be positive integers, e.g. 1,16; got {self.batch!r}")
        if not (isinstance(self.repeats, int) and self.repeats >= 1):
            raise ConfigError(
                f"bench.repeats: must be an integer >= 1, got {self.repeats!r}",
                "3 or more lets each row show its spread",
            )
        if self.min_runs < 1 or self.min_seconds < 0 or self.warmup < 0 or self.warmup_seconds < 0:
            raise ConfigError("bench: need min_runs >= 1, min_seconds >= 0, warmup >= 0, warmup_seconds >= 0")


def check_policies(*configs) -> None:
    """Parse every training config's RandAugment policy with timm's own parser: before the first stage of a
    run starts, so a typo in a later stage's policy fails now, not after an earlier stage has trained."""
    for c in configs:
        train = getattr(c, "train", None)
        if isinstance(train, TrainConfig):
            train.aug.check_policy()


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict, where: str = ""):
    """Build a config dataclass; unknown keys are errors naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where + '.' if where else ''}{unknown[0]}: unknown key", f"valid keys: {', '.join(sorted(names))}"
        )
    for f in fields(cls):
        if f.name in data:
            _check_type(data[f.name], f.type, f"{where + '.' if where else ''}{f.name}")
    try:
        return cls(**data)
    except TypeError as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}


def _check_type(value: Any, annotation: str, key: str) -> None:
    """Scalar fields get their declared type (YAML and JSON hand us anything); containers and nested
    configs are checked by their own constructors."""
    parts = [p.strip() for p in str(annotation).split("|")]
    if not all(p in _SCALARS for p in parts):
        return
    ok = any(isinstance(value, _SCALARS[p]) and not (p in ("int", "float") and isinstance(value, bool)) for p in parts)
    if not ok:
        hint = None
        if isinstance(value, str) and "float" in parts:
            try:
                float(value)
                hint = f"write it with a dot, e.g. {float(value)!r}: YAML 1.1 reads {value!r} as a string"
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected {' or '.join(parts)}, got {type(value).__name__} {value!r}", hint)
