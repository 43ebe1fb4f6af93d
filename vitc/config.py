"""Stage configs: dataclasses validated when built, saved as JSON beside their output.

The CLI (vitc/cli_gen.py makes its options from these fields) and the pipeline YAML build these same classes; an
unknown key or a value out of range is a ConfigError naming the key. The training recipe lives in vitc/recipe.py."""

from __future__ import annotations

from dataclasses import dataclass, fields

from . import export  # the target registry: its modules import their runtimes (and torch) only where they run
from .bench_defaults import BENCH_MIN_RUNS, BENCH_MIN_SECONDS, BENCH_THREADS, BENCH_WARMUP, BENCH_WARMUP_SECONDS
from .budget import RUNTIMES, Budget
from .config_base import _check, _check_type, _choice, from_dict, opt, to_dict  # noqa: F401  (re-exported)
from .errors import ConfigError
from .recipe import (  # noqa: F401  (re-exported: the names stages and tests import from vitc.config)
    AUG_PRESETS,
    DATA_HELP,
    DATA_PRESETS,
    DEFAULT_BATCH,
    DEFAULT_DATA,
    DEFAULT_WARMUP,
    DISTILL_AMP,
    DISTILL_TRAIN,
    PRUNE_TRAIN,
    SCRATCH_STUDENT_LR,
    SCRATCH_TEACHER_LR,
    STAGE_TRAIN,
    STUDENT_MODEL,
    TEACHER_EPOCHS,
    TEACHER_MODEL,
    TEACHER_TRAIN,
    TEACHER_WARMUP,
    WARMUP_SHARE,
    AugConfig,
    TrainConfig,
    default_batch,
    default_warmup,
    model_defaults,
    preset_for,
    resolve,
)


@dataclass
class ModelArgs:
    name: str = opt(help="timm name or alias")
    img_size: int = opt(32, "input resolution (digits are upsampled to it)")
    # None: the model's own, or the largest that leaves a ViT a 4x4 grid (vitc.models.default_patch)
    patch_size: int | None = opt(
        None, "ViT patch size (default: the model's own, or the largest that leaves a 4x4 grid: 8 at 32 px)"
    )
    pretrained: bool = opt(False, "start from hub weights (needs internet or a warm HF cache)")
    crop_pct: float | None = opt(None, "eval centre-crop fraction (default: model's; 1.0 for digits)")
    # vitc.models.STEMS: "small" gives a ResNet's first stage 1/2 the input side, not 1/4
    stem: str = opt(
        "default", "default | small: a 3x3/1 ResNet stem, so a 28 px image reaches the first stage at 14x14"
    )

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


def _model(value, default_name: str, key: str, stage: str, data: str | None) -> "ModelArgs":
    """A stage's model section: a mapping (None: empty) over the stage's default model and its data's model
    defaults (recipe.model_defaults: Fashion-MNIST's 28 px), or a ModelArgs as it is."""
    if value is None:
        value = {}
    if isinstance(value, dict):
        value = from_dict(
            ModelArgs, {"name": default_name, **model_defaults(stage, data, "name" in value), **value}, key
        )
    _check(isinstance(value, ModelArgs), key, f"expected a mapping such as {{name: {default_name}}}, got {value!r}")
    return value


def _train(stage: str, value, data: str | None, pretrained: bool = False) -> TrainConfig:
    """A training stage's `train` section, resolved into its recipe (vitc.recipe.resolve)."""
    _check(value is None or isinstance(value, (dict, TrainConfig)), "train", f"expected a mapping, got {value!r}")
    return resolve(stage, value, data=data, pretrained=pretrained)


@dataclass
class TeacherConfig:
    # None: the stage's default model with its data's defaults (_model)
    model: ModelArgs | dict | None = opt(
        None,
        nested=ModelArgs,
        rename={"name": "model"},
        help="timm name or alias (regnety_16gf, resnet18, ...)",
    )
    data: str = opt(DEFAULT_DATA, DATA_HELP)
    # the user's settings over TEACHER_TRAIN
    train: TrainConfig | dict | None = opt(None, nested=TrainConfig)

    def __post_init__(self):
        self.model = _model(self.model, TEACHER_MODEL, "model", "teacher", self.data)
        self.train = _train("teacher", self.train, self.data, self.model.pretrained)


DISTILL_TYPES = ("hard", "soft", "none")


@dataclass(kw_only=True)
class DistillLoss:
    """The distillation loss `vitc distill` trains with and `vitc prune` re-distills with: one definition, one check."""

    distillation: str = opt("hard", "hard | soft | none")
    alpha: float = opt(0.5, "weight of the distillation term")
    tau: float = opt(1.0, "soft-distillation temperature")
    teacher_amp: str = opt("auto", "bf16 autocast for the teacher: auto | bf16 | off")

    def check_loss(self) -> None:
        _choice(self.distillation, DISTILL_TYPES, "distillation")
        _check(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        _check(self.tau > 0, "tau", "must be > 0")
        _choice(self.teacher_amp, ("auto", "bf16", "off"), "teacher_amp")

    def loss(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(DistillLoss)}


@dataclass
class DistillConfig(DistillLoss):
    student: ModelArgs | dict | None = opt(
        None,
        nested=ModelArgs,
        rename={"name": "student", "pretrained": "pretrained"},
        help="timm *_distilled_* name or alias (deit_tiny, deit_small)",
    )
    # timm name/alias; optional when teacher_checkpoint is a dir
    teacher: str | None = opt(
        None, "teacher timm name or alias (needed with a .safetensors file or --teacher-pretrained)"
    )
    teacher_checkpoint: str | None = opt(None, "vitc checkpoint dir or .safetensors file of the teacher")
    teacher_pretrained: bool = opt(False, "take the teacher from the hub (online; 1000-class data only)")
    data: str = opt(DEFAULT_DATA, DATA_HELP)
    init_checkpoint: str | None = opt(
        None,
        "start the student from this vitc checkpoint (patch and position embeddings resampled to the new size)",
    )
    # the user's settings over DISTILL_TRAIN
    train: TrainConfig | dict | None = opt(None, nested=TrainConfig)

    def __post_init__(self):
        self.student = _model(self.student, STUDENT_MODEL, "student", "distill", self.data)
        self.train = _train("distill", self.train, self.data, self.student.pretrained)
        self.check_loss()
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
class PruneConfig(DistillLoss):
    """`vitc prune`: structured pruning of a distilled student (torch-pruning), then DeiT re-distillation."""

    # the distilled student (a vitc checkpoint dir); the CLI's argument, default runs/student
    checkpoint: str = opt("", "the distilled student, a vitc checkpoint dir (default: runs/student)", argument=True)
    teacher_checkpoint: str | None = opt(
        None, "teacher to re-distill from (default: the one the student was distilled from)"
    )
    data: str | None = opt(None, "dataset (default: the student's)")
    ratio: float | None = opt(
        None, "share of channels removed: embedding width, head dims, MLP hidden (default 0.5 without --latency)"
    )
    head_ratio: float = opt(0.0, "share of whole attention heads removed per block: ceil(H x heads) go (0: keep all)")
    importance: str = opt("magnitude", "magnitude (group L2) | taylor (gradients on train images)")
    round_to: int | None = opt(PRUNE_ROUND_TO, "keep channel counts multiples of this (0: no rounding)")
    taylor_batches: int = opt(8, "train batches whose gradients the Taylor importance sums")
    # the user's settings over PRUNE_TRAIN
    train: TrainConfig | dict | None = opt(None, nested=TrainConfig)
    # latency-first (compress/prune_latency.py): a budget, relative ("0.33x") or absolute ("1.2ms"), instead of
    # a ratio; depth, width and input size are chosen from latency measured on `runtime` (a cached table)
    latency: str | None = opt(
        None,
        "latency budget instead of --ratio: 0.33x (of the unpruned model) or 1.2ms; depth, width and input size are "
        "chosen from latency measured on --runtime",
    )
    runtime: str = opt("openvino-int8", "with --latency: openvino-int8 | onnx-int8 | openvino-fp32 | onnx-fp32")
    widths: tuple[float, ...] = opt(
        (0.0, 0.25, 0.5), "with --latency: the width ratios the latency table measures, comma-separated"
    )
    token_scales: tuple[float, ...] = opt(
        (1.0, 0.75), "with --latency: input side scales (fewer tokens), comma-separated; 1 keeps it"
    )
    table: str | None = opt(None, "with --latency: the latency table JSON (default: a per-machine cache)")
    latency_rounds: int = opt(2, "with --latency: timing rounds per latency-table entry")
    latency_threads: int = opt(2, "with --latency: threads the table times with (the bench's default)")

    def __post_init__(self):
        self.train = _train("prune", self.train, self.data)
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
        if self.round_to == 0:
            self.round_to = None  # the CLI's --round-to 0: no rounding
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
        self.check_loss()


QUANT_BACKENDS = ("torch", "onnxruntime", "openvino", "executorch")
QUANT_TARGET = {
    "torch": "torchscript-lite",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "executorch": "executorch",  # the XNNPACK quantizer (PT2E), lowered to the XNNPACK delegate: the mobile path
}  # the artifact each backend writes
ORT_MODES = ("auto", "static", "dynamic")
INT8_ISAS = ("portable", "vnni", "auto")
INT8_ISA_HELP = (
    "int8: which CPUs it is for: portable (right on every CPU; 7-bit weights where the runtime's int8 products "
    "saturate without VNNI) | vnni (full 8-bit weights: VNNI/AMX/ARM devices only) | auto (as this CPU)"
)  # vitc/isa.py (which imports the export registry, so not imported here)
NNCF_SCHEMES = ("auto", "defaults", "transformer")


@dataclass
class QuantizeConfig:
    """`vitc quantize` and a pipeline's `quantize:`: int8 through each runtime's own quantizer."""

    # executorch is asked for by name: its export is the slowest and it needs the `mobile` extra
    backends: list = opt(
        factory=lambda: [b for b in QUANT_BACKENDS if b != "executorch"],
        cli="backend",
        help="torch (dynamic int8 + mobile) | onnxruntime | openvino (static int8) | executorch (XNNPACK quantizer); "
        "repeat or comma-separate",
    )
    calib: str | None = opt(
        None, "calibration images for int8 (train split): a dataset as --data takes (default: the checkpoint's data)"
    )
    calib_size: int = opt(128, "number of calibration images")
    # an int8 model losing more top-1 points is kept but marked failed (exit 3 from the CLI)
    max_drop: float | None = opt(1.0, "fail (exit 3) when int8 top-1 drops more than this many points")
    data: str | None = opt(None, "val data (default: the checkpoint's)")
    ort_mode: str = opt("auto", "onnxruntime int8: auto (dynamic for transformers, static for CNNs) | static | dynamic")
    nncf: str = opt(
        "auto",
        "openvino int8: auto (NNCF defaults if they agree with fp32 on >= 99% of the calibration images, else "
        "TRANSFORMER) | defaults | transformer",
    )
    threads: int | None = opt(None, "torch threads per process (default: cores / processes)")
    int8_isa: str = opt("portable", INT8_ISA_HELP)  # which CPUs the int8 models are for (vitc/isa.py)

    def __post_init__(self):
        if not isinstance(self.backends, list) or not self.backends:
            raise ConfigError(f"backends: must be a list drawn from {list(QUANT_BACKENDS)}, got {self.backends!r}")
        for b in self.backends:
            _choice(b, QUANT_BACKENDS, "backends")
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

    # one ONNX fp32 artifact unless more are named (a pipeline YAML lists its targets; configs/*.yaml do)
    targets: list = opt(
        factory=lambda: ["onnx"],
        cli="target",
        help="onnx | openvino | tensorrt | torchscript-lite | executorch (repeat or comma-separate)",
    )
    # int8 comes from the quantize stage, or here with --precision int8 where the target has it
    precisions: list = opt(
        factory=lambda: ["fp32"], cli="precision", help="fp32 | fp16 | int8 (per target: see --list)"
    )
    calib: str | None = opt(
        None, "with int8: calibration images (train split) as --data takes (default: the checkpoint's)"
    )
    calib_size: int = opt(128, "with int8: number of calibration images")
    max_drop: float | None = opt(None, "fail (exit 3) when the artifact's top-1 drops more than this many points")
    data: str | None = opt(None, "val data (default: the checkpoint's)")
    threads: int | None = opt(None, "torch threads per process (default: cores / processes)")
    features: bool = opt(False, "export the pre-logits token features (for `vitc features`) instead of the logits")
    # python: the artifact takes the normalized float tensor; in-graph: uint8 RGB pixels, normalized inside (the
    # targets that can: export/stage.py IN_GRAPH_TARGETS; the others are exported for python only)
    preprocess: list = opt(
        factory=lambda: ["python"],
        help="python (the artifact takes the normalized float tensor) | in-graph (uint8 RGB pixels, NHWC)",
    )
    int8_isa: str = opt("portable", INT8_ISA_HELP)  # int8 precisions: which CPUs they are for (vitc/isa.py)

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
        if not isinstance(self.precisions, list) or not self.precisions:
            raise ConfigError(
                f"precisions: must be a list drawn from {', '.join(EXPORT_PRECISIONS)}; got {self.precisions!r}"
            )
        for p in self.precisions:
            _choice(p, EXPORT_PRECISIONS, "precisions")
        _check(isinstance(self.calib_size, int) and self.calib_size >= 1, "calib_size", "must be an integer >= 1")
        _check(
            self.max_drop is None or self.max_drop >= 0, "max_drop", "must be >= 0 (the allowed top-1 loss in points)"
        )


@dataclass
class BenchConfig:
    threads: int = opt(BENCH_THREADS, "threads for every runtime")
    # the first is the latency batch, the others throughput batches
    batch: tuple[int, ...] = opt((1, 16), "latency batch, then throughput batches, e.g. 1,16")
    warmup: int = opt(BENCH_WARMUP, "untimed calls before timing ...")
    warmup_seconds: float = opt(BENCH_WARMUP_SECONDS, "... and at least this many seconds of them")
    min_runs: int = opt(BENCH_MIN_RUNS, "at least this many timed calls ...")
    min_seconds: float = opt(BENCH_MIN_SECONDS, "... and at least this many seconds")
    data: str | None = opt(None, "val data for top-1 (default: each model's own)")
    crosscheck: bool = opt(True, "time OpenVINO rows with benchmark_app and ONNX rows with a bare ORT loop too")
    remeasure_peak: bool = opt(False, "(re)measure this CPU's fp32/bf16/int8 matmul peaks", cli="peak")
    eval_batch: int = opt(32, "batch for the top-1 evaluation")
    repeats: int = opt(3, "timing rounds over all artifacts in turn; p50 = median of the rounds")
    baselines: bool = opt(
        False,
        "also build and time by-hand baselines (NNCF defaults, ORT dynamic int8, ORT fp32) from each fp32 "
        "checkpoint given",
    )
    # each (artifact, round) timed in a fresh worker process with only its runtime loaded; False times
    # every artifact inside the bench process (the old way, kept for A/Bs: results/latency-ab/7-isolation)
    isolate: bool = opt(True, "time each artifact and round in a fresh process with only its runtime loaded")

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
