"""vitc command line: thin Typer wiring, one command per stage, no stage logic here."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import runs, stages
from .cli_options import (
    Amp,
    Aug,
    AutoAug,
    BaseLr,
    Batch,
    CropPct,
    Cutmix,
    Data,
    DropPath,
    Ema,
    Epochs,
    EvalEvery,
    Force,
    ImgSize,
    Int8Isa,
    Lr,
    MinLr,
    Mixup,
    Out,
    PatchSize,
    Pretrained,
    Reprob,
    Resume,
    Seed,
    Smoothing,
    Stem,
    Threads,
    Warmup,
    Wd,
    Workers,
)
from .config import (
    DEFAULT_BATCH,
    DISTILL_TRAIN,
    PRUNE_TRAIN,
    QUANT_BACKENDS,
    TEACHER_TRAIN,
    BenchConfig,
    DistillConfig,
    ExportConfig,
    ModelArgs,
    PruneConfig,
    QuantizeConfig,
    TeacherConfig,
    TrainConfig,
    check_policies,
    default_warmup,
)
from .errors import AccuracyGateError, ConfigError, DataError, VitcError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Compress a big ViT/CNN teacher into a small, fast, verified edge model.",
)
err = Console(stderr=True, soft_wrap=True)  # a message is one line, however long: never hard-wrapped
_state = {"debug": False}
AUTO_TEACHER = "<auto teacher: trained or fetched once the rest is validated>"


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    data_root: Annotated[
        Optional[Path],
        typer.Option(
            help="where --data fashion-mnist looks first (torchvision's layout, or the four .gz files); "
            "also VITC_DATA_ROOT"
        ),
    ] = None,
) -> None:
    _state["debug"] = debug
    if data_root is not None:
        import os

        os.environ["VITC_DATA_ROOT"] = str(data_root)  # read by vitc.tv_data, here and in worker processes


def _train(args: dict) -> dict:
    """The training settings a command was given, for its stage config to merge over the stage's defaults
    (vitc.config.stage_train). A warm-up the user did not set is the stage's, cut to fit a short run (with a note)."""
    keys = set(TrainConfig.__dataclass_fields__) - {"aug"}
    train = {k: args[k] for k in keys if k in args}
    if train.get("batch_size") is None:
        train["batch_size"] = DEFAULT_BATCH  # and fit() caps it at the data (default_batch_size=True)
    train["aug"] = {
        "preset": args["aug"],
        **{k: args[k] for k in ("auto_augment", "reprob", "mixup", "cutmix", "smoothing")},
    }
    return train


def _data(data: str | None) -> str:
    """The dataset a training command uses: the one named, else digits (said by _data_note, never silently)."""
    return "digits" if data is None else data


def _data_note(args: dict, con: Console) -> None:
    """Said on the run's own output once the request is valid: a bad one gets its one error line only."""
    if args.get("data") is None:
        con.print("note: data: digits (the default; pass --data to choose)", highlight=False)


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a comma-separated list of numbers", f"e.g. {option} 0,0.25,0.5"
        ) from None


def _warmup_note(args: dict, defaults: dict) -> None:
    """Said once the request is known to be valid."""
    if args["warmup_epochs"] is None and isinstance(args["epochs"], int) and args["epochs"] >= 1:
        note = default_warmup(args["epochs"], defaults["warmup_epochs"])[1]
        if note:
            err.print(f"[yellow]note[/]: {note}", highlight=False)


def _inputs(con: Console, args: dict, **kw) -> stages.Inputs:
    return stages.Inputs(
        resume=args.get("resume", False),
        force=args.get("force", False),
        console=con,
        default_batch_size=args.get("batch_size", 0) is None,
        **kw,
    )


def _finish(name: str, out: Path, res: stages.Result) -> None:
    """What every stage command does with its result: print it, then exit non-zero on what failed."""
    for m in res.artifacts:
        _exported(m)
    if res.metrics and name in ("teacher", "distill", "prune"):
        _done(out, res.metrics)
    if res.skipped:
        s = res.skipped[0]
        raise VitcError(f"{s['target']} {s['precision']}: {s['reason']}")
    if res.failed:
        raise AccuracyGateError(res.failed[0], f"kept in {out}, marked failed")


@app.command()
def teacher(
    model: Annotated[str, typer.Option(help="timm name or alias (regnety_16gf, resnet18, ...)")] = "resnet18",
    data: Data = None,
    out: Out = None,
    img_size: ImgSize = 32,
    patch_size: PatchSize = None,
    pretrained: Pretrained = False,
    crop_pct: CropPct = None,
    stem: Stem = "default",
    epochs: Epochs = TEACHER_TRAIN["epochs"],
    batch_size: Batch = None,
    lr: Lr = None,
    base_lr: BaseLr = 5e-4,
    min_lr: MinLr = 1e-5,
    weight_decay: Wd = 0.05,
    warmup_epochs: Warmup = None,
    drop_path: DropPath = TEACHER_TRAIN["drop_path"],
    ema: Ema = 0.0,
    eval_every: EvalEvery = 0.0,
    amp: Amp = TEACHER_TRAIN["amp"],
    seed: Seed = 0,
    workers: Workers = 0,
    threads: Threads = None,
    aug: Aug = None,
    auto_augment: AutoAug = None,
    reprob: Reprob = None,
    mixup: Mixup = None,
    cutmix: Cutmix = None,
    smoothing: Smoothing = None,
    resume: Resume = False,
    force: Force = False,
) -> None:
    """Train or fine-tune a teacher classifier on the dataset."""
    args = dict(locals())
    data = _data(data)
    cfg = TeacherConfig(ModelArgs(model, img_size, patch_size, pretrained, crop_pct, stem), data, _train(args))
    _warmup_note(args, TEACHER_TRAIN)
    con = Console()
    _data_note(args, con)
    out = out or runs.default_out(stages.get("teacher").folder, con)
    _finish("teacher", out, stages.run("teacher", cfg, _inputs(con, args), out))


@app.command()
def distill(
    teacher: Annotated[
        Optional[str],
        typer.Option(help="teacher timm name or alias (needed with a .safetensors file or --teacher-pretrained)"),
    ] = None,
    teacher_checkpoint: Annotated[
        Optional[str], typer.Option(help="vitc checkpoint dir or .safetensors file of the teacher")
    ] = None,
    teacher_pretrained: Annotated[
        bool, typer.Option(help="take the teacher from the hub (online; 1000-class data only)")
    ] = False,
    auto_teacher: Annotated[
        bool,
        typer.Option(
            help="with --teacher NAME and no checkpoint: reuse runs/teacher, else fine-tune the "
            "hub weights (online) or train NAME on the data (offline) into runs/teacher first"
        ),
    ] = True,
    teacher_epochs: Annotated[
        int, typer.Option(help="epochs for a teacher that distill trains itself (see --auto-teacher)")
    ] = TEACHER_TRAIN["epochs"],
    student: Annotated[
        str, typer.Option(help="timm *_distilled_* name or alias (deit_tiny, deit_small)")
    ] = "deit_tiny",
    data: Data = None,
    out: Out = None,
    img_size: ImgSize = 32,
    patch_size: PatchSize = 8,
    pretrained: Annotated[bool, typer.Option(help="student from hub weights (online)")] = False,
    crop_pct: CropPct = None,
    distillation: Annotated[str, typer.Option(help="hard | soft | none")] = "hard",
    alpha: Annotated[float, typer.Option(help="weight of the distillation term")] = 0.5,
    tau: Annotated[float, typer.Option(help="soft-distillation temperature")] = 1.0,
    teacher_amp: Annotated[str, typer.Option(help="bf16 autocast for the teacher: auto | bf16 | off")] = "auto",
    init_checkpoint: Annotated[
        Optional[str],
        typer.Option(
            help="start the student from this vitc checkpoint (patch and position embeddings resampled to the new size)"
        ),
    ] = None,
    epochs: Epochs = DISTILL_TRAIN["epochs"],
    batch_size: Batch = None,
    lr: Lr = None,
    base_lr: BaseLr = 5e-4,
    min_lr: MinLr = 1e-5,
    weight_decay: Wd = 0.05,
    warmup_epochs: Warmup = None,
    drop_path: DropPath = DISTILL_TRAIN["drop_path"],
    ema: Ema = 0.0,
    eval_every: EvalEvery = 0.0,
    amp: Amp = DISTILL_TRAIN["amp"],
    seed: Seed = 0,
    workers: Workers = 0,
    threads: Threads = None,
    aug: Aug = None,
    auto_augment: AutoAug = None,
    reprob: Reprob = None,
    mixup: Mixup = None,
    cutmix: Cutmix = None,
    smoothing: Smoothing = None,
    resume: Resume = False,
    force: Force = False,
) -> None:
    """DeiT distillation (distillation token) of a frozen teacher into a small student."""
    args = dict(locals())
    data = _data(data)
    auto = distillation != "none" and teacher and not (teacher_checkpoint or teacher_pretrained) and auto_teacher
    # validated in full before a teacher is trained for it (the auto teacher's path is filled in below)
    cfg = DistillConfig(
        ModelArgs(student, img_size, patch_size, pretrained, crop_pct),
        teacher,
        AUTO_TEACHER if auto else teacher_checkpoint,
        teacher_pretrained,
        data,
        distillation,
        alpha,
        tau,
        teacher_amp,
        init_checkpoint,
        _train(args),
    )
    _warmup_note(args, DISTILL_TRAIN)
    con = Console()
    _data_note(args, con)
    out = out or runs.default_out(stages.get("distill").folder, con)
    if auto:
        from .compress.auto_teacher import resolve

        check_policies(cfg)  # the teacher trains with the same augmentation: a bad policy fails before it

        found, hub = resolve(
            teacher,
            data,
            img_size,
            epochs=teacher_epochs,
            threads=threads,
            seed=seed,
            aug=cfg.train.aug,
            student_out=out,
            resume=resume,
            force=force,
            console=con,
        )
        cfg = dataclasses.replace(cfg, teacher_pretrained=hub, teacher_checkpoint=None if hub else found)
    _finish("distill", out, stages.run("distill", cfg, _inputs(con, args), out))


@app.command()
def prune(
    checkpoint: Annotated[
        Optional[Path], typer.Argument(help="the distilled student, a vitc checkpoint dir (default: runs/student)")
    ] = None,
    teacher_checkpoint: Annotated[
        Optional[str], typer.Option(help="teacher to re-distill from (default: the one the student was distilled from)")
    ] = None,
    ratio: Annotated[
        Optional[float],
        typer.Option(help="share of channels removed: embedding width, head dims, MLP hidden (default 0.5)"),
    ] = None,
    latency: Annotated[
        Optional[str],
        typer.Option(
            help="latency budget instead of --ratio: 0.33x (of the unpruned model) or 1.2ms; depth, width and "
            "input size are chosen from latency measured on --runtime"
        ),
    ] = None,
    runtime_name: Annotated[
        str, typer.Option("--runtime", help="with --latency: openvino-int8 | onnx-int8 | openvino-fp32 | onnx-fp32")
    ] = "openvino-int8",
    widths: Annotated[
        str, typer.Option(help="with --latency: the width ratios the latency table measures, comma-separated")
    ] = "0,0.25,0.5",
    token_scales: Annotated[
        str, typer.Option(help="with --latency: input side scales (fewer tokens), comma-separated; 1 keeps it")
    ] = "1,0.75",
    table: Annotated[
        Optional[Path], typer.Option(help="with --latency: the latency table JSON (default: a per-machine cache)")
    ] = None,
    head_ratio: Annotated[
        float, typer.Option(help="share of whole attention heads removed per block: ceil(H x heads) go (0: keep all)")
    ] = 0.0,
    importance: Annotated[
        str, typer.Option(help="magnitude (group L2) | taylor (gradients on train images)")
    ] = "magnitude",
    round_to: Annotated[int, typer.Option(help="keep channel counts multiples of this (0: no rounding)")] = 16,
    data: Annotated[Optional[str], typer.Option(help="dataset (default: the student's)")] = None,
    out: Out = None,
    distillation: Annotated[str, typer.Option(help="hard | soft | none")] = "hard",
    alpha: Annotated[float, typer.Option(help="weight of the distillation term")] = 0.5,
    epochs: Epochs = PRUNE_TRAIN["epochs"],
    batch_size: Batch = None,
    lr: Annotated[
        Optional[float],
        typer.Option(help="absolute learning rate (5e-4: the measured 224 recipe, results/prune-224-cpu)"),
    ] = PRUNE_TRAIN["lr"],
    base_lr: BaseLr = 5e-4,
    min_lr: MinLr = 1e-5,
    weight_decay: Wd = 0.05,
    warmup_epochs: Warmup = None,
    drop_path: DropPath = PRUNE_TRAIN["drop_path"],
    ema: Ema = 0.0,
    eval_every: EvalEvery = 0.0,
    amp: Amp = PRUNE_TRAIN["amp"],
    seed: Seed = 0,
    workers: Workers = 0,
    threads: Threads = None,
    aug: Aug = None,
    auto_augment: AutoAug = None,
    reprob: Reprob = None,
    mixup: Mixup = None,
    cutmix: Cutmix = None,
    smoothing: Smoothing = None,
    resume: Resume = False,
    force: Force = False,
) -> None:
    """Remove blocks, heads and channels (by --ratio, or to a --latency budget), then re-distill from the teacher."""
    args = dict(locals())
    cfg = PruneConfig(
        str(checkpoint) if checkpoint else "",
        teacher_checkpoint,
        data,
        ratio,
        head_ratio,
        importance,
        round_to or None,
        latency=latency,
        runtime=runtime_name,
        widths=_floats(widths, "--widths"),
        token_scales=_floats(token_scales, "--token-scales"),
        table=str(table) if table else None,
        distillation=distillation,
        alpha=alpha,
        train=_train(args),
    )
    _warmup_note(args, PRUNE_TRAIN)
    con = Console()
    checkpoint = checkpoint or runs.default_checkpoint(stages.get("prune").reads, con)
    out = out or runs.default_out(stages.get("prune").folder, con)
    _finish("prune", out, stages.run("prune", cfg, _inputs(con, args, checkpoint=checkpoint), out))


Ckpt = Annotated[
    Optional[Path], typer.Argument(help="a vitc checkpoint dir (default: runs/student, from `vitc distill`)")
]
Calib = Annotated[
    Optional[str],
    typer.Option(
        help="calibration images for int8 (train split): a dataset as --data takes (default: the checkpoint's data)"
    ),
]
CalibSize = Annotated[int, typer.Option(help="number of calibration images")]
MaxDrop = Annotated[
    Optional[float], typer.Option(help="fail (exit 3) when int8 top-1 drops more than this many points")
]
_Q = QuantizeConfig()


@app.command()
def quantize(
    checkpoint: Ckpt = None,
    out: Out = None,
    backend: Annotated[
        str,
        typer.Option(
            help="torch (dynamic int8 + mobile) | onnxruntime | openvino (static int8) | executorch (XNNPACK quantizer)"
        ),
    ] = "torch",
    calib: Calib = None,
    calib_size: CalibSize = _Q.calib_size,
    max_drop: MaxDrop = _Q.max_drop,
    data: Annotated[Optional[str], typer.Option(help="val data (default: the checkpoint's)")] = None,
    ort_mode: Annotated[
        str, typer.Option(help="onnxruntime int8: auto (dynamic for transformers, static for CNNs) | static | dynamic")
    ] = _Q.ort_mode,
    nncf: Annotated[
        str,
        typer.Option(
            help="openvino int8: auto (NNCF defaults if they agree with fp32 on >= 99% of the calibration images, "
            "else TRANSFORMER) | defaults | transformer"
        ),
    ] = _Q.nncf,
    threads: Threads = None,
    int8_isa: Int8Isa = _Q.int8_isa,
    force: Force = False,
) -> None:
    """int8: PyTorch dynamic (Linear) + TorchScript-lite, or with ONNX Runtime / OpenVINO NNCF (calibrated on real images)."""
    if backend not in QUANT_BACKENDS:
        import difflib

        close = difflib.get_close_matches(backend, QUANT_BACKENDS, n=1)
        raise ConfigError(
            f"unknown --backend {backend!r}; valid: {', '.join(QUANT_BACKENDS)}",
            f"did you mean {close[0]!r}?" if close else None,
        )
    cfg = QuantizeConfig([backend], calib, calib_size, max_drop, data, ort_mode, nncf, threads, int8_isa)
    con = Console()
    checkpoint = checkpoint or runs.default_checkpoint(stages.get("quantize").reads, con)
    out = out or runs.default_out(stages.get("quantize").folder, con)
    _finish("quantize", out, stages.run("quantize", cfg, _inputs(con, {"force": force}, checkpoint=checkpoint), out))


@app.command()
def export(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="vitc checkpoint dir")] = None,
    target: Annotated[str, typer.Option(help="onnx | openvino | tensorrt | torchscript-lite | executorch")] = "onnx",
    precision: Annotated[str, typer.Option(help="fp32 | fp16 | int8 (per target: see --list)")] = "fp32",
    out: Out = None,
    calib: Calib = None,
    calib_size: CalibSize = 128,
    max_drop: MaxDrop = None,
    data: Annotated[Optional[str], typer.Option(help="val data (default: the checkpoint's)")] = None,
    threads: Threads = None,
    features: Annotated[
        bool, typer.Option(help="export the pre-logits token features (for `vitc features`) instead of the logits")
    ] = False,
    preprocess: Annotated[
        str,
        typer.Option(
            help="python (the artifact takes the normalized float tensor) | in-graph (uint8 RGB pixels, NHWC)"
        ),
    ] = "python",
    int8_isa: Int8Isa = "portable",
    list_targets: Annotated[bool, typer.Option("--list", help="show the targets and what is available here")] = False,
) -> None:
    """Write an artifact for a runtime and prove it computes the same function as PyTorch."""
    from . import export as registry

    if list_targets:
        from rich.markup import escape
        from rich.table import Table

        t = Table("target", "suffix", "precisions", "extra", "available here")
        for r in registry.table():
            t.add_row(
                r["target"],
                r["suffix"],
                ", ".join(r["precisions"]),
                r["extra"] or "-",
                escape(r["unavailable"] or "yes"),
            )
        Console().print(t)
        return
    tgt = registry.get(target)
    if precision not in tgt.PRECISIONS:
        raise ConfigError(f"{tgt.NAME} supports {', '.join(tgt.PRECISIONS)}, not {precision!r}")
    why = tgt.check()
    if why:  # before any default is looked up or announced: nothing is read or written
        raise VitcError(f"{tgt.NAME} target unavailable here: {why}")
    cfg = ExportConfig(
        [target], [precision], calib, calib_size, max_drop, data, threads, features, [preprocess], int8_isa
    )
    con = Console()
    checkpoint = checkpoint or runs.default_checkpoint(stages.get("export").reads, con)
    out = out or runs.default_out(stages.get("export").folder, con)
    _finish("export", out, stages.run("export", cfg, _inputs(con, {}, checkpoint=checkpoint), out))


def _exported(m: dict) -> None:
    v = m["validation"]
    if m.get("output") == "features":
        Console().print(
            f"[{'green' if m['status'] == 'ok' else 'yellow'}]{m['status']}[/]: {m['artifact']} (features: "
            f"{', '.join(m['tokens'])} tokens)  max|diff| {v['max_abs_diff']:.2e}  min cosine {v['cosine_min']:.5f}",
            highlight=False,
        )
        return
    colour = "green" if m["status"] == "ok" else "yellow"
    Console().print(
        f"[{colour}]{m['status']}[/]: {m['artifact']} ({m['size_bytes'] / 1e6:.1f} MB)  "
        f"max|diff| {v['max_abs_diff']:.2e}  agreement {100 * v['top1_agreement']:.2f}%  "
        f"top-1 {v['top1_artifact']:.2f}% (PyTorch fp32 {v['top1_reference']:.2f}%)"
        + (f" on the {d['split']} split of {d['name']} ({d['images']} images)" if (d := m.get("data")) else ""),
        highlight=False,
    )
    for k, note in m.get("notes", {}).items():
        Console().print(f"[yellow]note[/]: {k}: {note}", highlight=False)


@app.command()
def bench(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="export dirs, artifacts or checkpoint dirs (default: what is under runs/)"),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(help="report dir: bench.json, bench.csv, report.md, pareto.png (default: runs/bench)"),
    ] = None,
    data: Annotated[Optional[str], typer.Option(help="val data for top-1 (default: each model's own)")] = None,
    threads: Annotated[int, typer.Option(help="threads for every runtime")] = 2,
    batch: Annotated[str, typer.Option(help="latency batch, then throughput batches, e.g. 1,16")] = "1,16",
    warmup: Annotated[int, typer.Option(help="untimed calls before timing")] = 10,
    min_runs: Annotated[int, typer.Option(help="at least this many timed calls ...")] = 50,
    min_seconds: Annotated[float, typer.Option(help="... and at least this many seconds")] = 2.0,
    crosscheck: Annotated[
        bool, typer.Option(help="time OpenVINO rows with benchmark_app and ONNX rows with a bare ORT loop too")
    ] = True,
    repeats: Annotated[
        int, typer.Option(help="timing rounds over all artifacts in turn; p50 = median of the rounds")
    ] = 3,
    isolate: Annotated[
        bool, typer.Option(help="time each artifact and round in a fresh process with only its runtime loaded")
    ] = True,
    baselines: Annotated[
        bool,
        typer.Option(
            help="also build and time by-hand baselines (NNCF defaults, ORT dynamic int8, ORT fp32) from each fp32 "
            "checkpoint given"
        ),
    ] = False,
    peak: Annotated[bool, typer.Option("--peak", help="(re)measure this CPU's fp32/bf16/int8 matmul peaks")] = False,
) -> None:
    """Latency, throughput, size and accuracy per artifact; writes a report."""
    try:
        sizes = tuple(int(b) for b in batch.split(","))
    except ValueError:
        raise ConfigError(f"--batch {batch!r} is not a comma-separated list of integers", "e.g. --batch 1,16") from None
    cfg = BenchConfig(
        threads=threads,
        batch=sizes,
        warmup=warmup,
        min_runs=min_runs,
        min_seconds=min_seconds,
        data=data,
        crosscheck=crosscheck,
        remeasure_peak=peak,
        repeats=repeats,
        baselines=baselines,
        isolate=isolate,
    )
    if not paths and peak:
        from .benchmarks.peak import peaks

        p = peaks(threads, remeasure=True)
        Console().print(", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in p["gflops"].items()) + f" ({threads} threads)")
        return
    con = _wide()
    paths = paths or runs.bench_inputs(con)
    out = out or runs.default_out(stages.get("bench").folder, con)
    res = stages.run("bench", cfg, stages.Inputs(paths=list(paths), console=con), out)
    rows = res.metrics["rows"]
    con.print(f"report: {out / 'report.md'}", highlight=False)
    if res.failed:  # the report is complete; the exit status still tells a script that something broke
        raise VitcError(
            f"{len(res.failed)} of {len(rows)} artifacts could not be benchmarked, e.g. {res.failed[0]}",
            f"every row is in {out / 'report.md'}; re-export the broken ones",
        )


@app.command()
def pipeline(
    config: Annotated[Path, typer.Argument(help="pipeline YAML, e.g. configs/digits.yaml")],
    from_stage: Annotated[
        Optional[str],
        typer.Option("--from", help="rerun from this stage: teacher | distill | prune | quantize | export | bench"),
    ] = None,
    force: Annotated[bool, typer.Option(help="rerun every stage")] = False,
) -> None:
    """teacher -> distill -> prune (optional) -> quantize -> export -> bench from one config; unchanged stages are skipped."""
    from .pipeline import Pipeline, summary_table
    from .pipeline_config import load

    con = _wide()
    cfg = load(config)
    if not cfg.data_named:
        con.print(f"note: data: digits ({config} names no `data:`; add one to choose)", highlight=False)
    res = Pipeline(cfg, con).run(from_stage, force)
    con.print(summary_table(res["summary"]))
    con.print(f"report: {res['report']}", highlight=False)


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="checkpoint dir or artifact (.onnx, .xml, .ptl, .pte, .engine)")],
    images: Annotated[Optional[list[Path]], typer.Argument(help="image files")] = None,
    topk: Annotated[int, typer.Option(help="labels per image")] = 5,
    threads: Threads = None,
    selftest: Annotated[
        bool,
        typer.Option(
            help="run the artifact's reference images and say whether this machine computes what vitc validated "
            "(exit 1 if not)"
        ),
    ] = False,
) -> None:
    """Classify images with any checkpoint or artifact; prints labels and probabilities (.onnx and .xml without
    torch: the runner a bundle ships)."""
    if selftest:
        return _selftest(artifact, threads)
    if not images:
        raise ConfigError("no image given", "pass image files after the artifact, or --selftest")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise DataError(f"image {missing[0]} does not exist", "pass image files (jpg, png, ...)")
    if artifact.suffix in (".onnx", ".xml") and artifact.is_file():
        from . import export as registry
        from .export.bundle import in_graph, read_manifest
        from .export.edge_run import Bundle

        m = read_manifest(artifact)
        why = registry.get(m["target"]).check()
        if why:
            raise VitcError(f"cannot run {artifact.name}: {why}")
        if artifact.suffix == ".onnx":
            from .export.onnx import check_external_data

            check_external_data(artifact)  # refuses data paths outside the model's folder, as the onnx target does
        try:
            b = Bundle(artifact, m["preprocess"], m["classes"], in_graph(m), threads)
        except Exception as e:  # the runtime's own error on a truncated or foreign file
            kind = "ONNX model" if artifact.suffix == ".onnx" else "OpenVINO IR"
            raise VitcError(
                f"{artifact.name} is not a readable {kind} ({type(e).__name__}: {str(e).splitlines()[0][:160]})",
                "re-export it with `vitc export`",
            ) from None
        tops = b.top(list(images), topk, on_error=DataError)
        rows = [
            {"image": str(p), "top": [{"label": label, "prob": prob} for label, prob in t]}
            for p, t in zip(images, tops)
        ]
    else:
        from .inspect import predict as run

        rows = run(artifact, images, topk, threads)
    for r in rows:
        Console(soft_wrap=True).print(
            f"{r['image']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"]), highlight=False
        )


def _selftest(artifact: Path, threads: int | None) -> None:
    from . import export as registry
    from .export.bundle import in_graph, read_manifest
    from .export.edge_run import SelftestUnavailable, device_fn, selftest, selftest_line

    if not artifact.is_file():
        raise ConfigError(
            f"{artifact} is not an artifact file", "pass a file written by `vitc export` or `vitc quantize`"
        )
    m = read_manifest(artifact)
    if m.get("output") == "features":
        raise ConfigError(f"{artifact.name} outputs features, which have no self-test", "pass a logits artifact")
    target = registry.get(m["target"])
    why = target.check()
    if why:
        raise VitcError(f"cannot run {artifact.name}: {why}")
    # .onnx/.xml/.pte: the bundle's own runner, as on the device (the exporter took its reference logits so)
    fn = device_fn(artifact, target.load, threads)
    try:
        r = selftest(fn, artifact, m.get("selftest"), m["preprocess"], in_graph(m))
    except SelftestUnavailable as e:
        raise VitcError(str(e)) from None
    Console(soft_wrap=True).print(selftest_line(artifact.name, r), highlight=False)
    if not r["passed"]:
        raise typer.Exit(1)


@app.command()
def bundle(
    source: Annotated[
        Path, typer.Argument(help="an artifact (.onnx, .xml, .pte), or a checkpoint dir to export first")
    ],
    out: Annotated[Path, typer.Option(help="the folder that goes onto the device")],
    target: Annotated[str, typer.Option(help="with a checkpoint: onnx | openvino | executorch")] = "onnx",
    precision: Annotated[
        str, typer.Option(help="with a checkpoint: fp32 | fp16 | int8 (those the target has)")
    ] = "fp32",
    preprocess: Annotated[
        str, typer.Option(help="with a checkpoint: in-graph (the artifact takes uint8 RGB) | python")
    ] = "in-graph",
    calib_size: Annotated[int, typer.Option(help="with a checkpoint and int8: train images to calibrate on")] = 128,
    int8_isa: Int8Isa = "portable",
    force: Annotated[bool, typer.Option(help="replace a non-empty --out")] = False,
) -> None:
    """A folder that runs on a device without torch or vitc: the artifact, labels.json, run.py (numpy, Pillow and the
    runtime), requirements.txt and a README."""
    import tempfile

    from .export.bundle import make

    con = Console()
    if source.is_dir():
        from .export.stage import export_checkpoint

        with tempfile.TemporaryDirectory(prefix="vitc-bundle-") as tmp:
            m = export_checkpoint(
                source,
                target,
                precision,
                Path(tmp),
                preprocess=preprocess,
                calib_size=calib_size,
                max_drop=None,
                int8_isa=int8_isa,
            )
            con.print(f"exported {m['artifact']}: {m['status']}", highlight=False)
            r = make(Path(tmp) / m["artifact"], out, force)
    else:
        r = make(source, out, force)
    how = "pre-processing in the graph" if r["in_graph"] else "pre-processing in run.py"
    con.print(
        f"{r['out']}: {r['artifact']} for {r['runtime']} ({how}); run: python {out}/run.py IMAGE", highlight=False
    )


@app.command()
def attention(
    images: Annotated[
        Optional[list[Path]], typer.Argument(help="image files (default: the whole val split of --data)")
    ] = None,
    model: Annotated[
        Optional[Path],
        typer.Option(help="reference: a ViT checkpoint dir or ONNX/OpenVINO artifact (default: runs/student)"),
    ] = None,
    compare: Annotated[
        Optional[list[Path]],
        typer.Option(help="a model to compare with the reference (repeatable): checkpoint, .onnx or .xml"),
    ] = None,
    token: Annotated[str, typer.Option(help="whose attention: cls (class token) | dist (distillation token)")] = "cls",
    data: Annotated[Optional[str], typer.Option(help="dataset whose val split is used when no image is given")] = None,
    pngs: Annotated[int, typer.Option(help="PNGs to write (the first N images)")] = 4,
    out: Annotated[Path, typer.Option(help="output dir: attention-*.png and attention.json")] = Path(
        "runs/diagnostics/attention"
    ),
) -> None:
    """Per-head attention maps and rollout of a ViT, compressed vs reference: PNGs and Jensen-Shannon / rollout measures."""
    import numpy as np

    from .inspect.attention_run import run

    if token not in ("cls", "dist"):
        raise ConfigError(f"--token {token!r} is not cls or dist")
    con = Console()
    model = model or runs.default_checkpoint("student", con)
    res = run(model, list(compare or []), out, images=list(images or []) or None, data=data, token=token, pngs=pngs)
    for c in res["compared"]:
        js = (
            f"mean JS {np.mean(c['js_per_layer']):.4f}, most changed block {c['most_changed_layer']}"
            if "js_per_layer" in c
            else c["js_note"]
        )
        con.print(
            f"{c['compared']}: {js}; rollout r {c['rollout_pearson_mean']:.3f}; top-10% IoU {c['top10_iou_mean']:.3f}; "
            f"agreement {100 * c['agreement']:.1f}% over {c['images']} images",
            highlight=False,
        )
    con.print(f"wrote {out / 'attention.json'} and {min(pngs, res['images'])} PNGs", highlight=False)


@app.command()
def posembed(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="a ViT checkpoint dir (default: runs/student)")] = None,
    out: Annotated[Path, typer.Option(help="output dir: posembed.png and posembed.json")] = Path(
        "runs/diagnostics/posembed"
    ),
) -> None:
    """Cosine similarity of the learned position embeddings, patch by patch (ViT paper, figure 7)."""
    from .inspect.posembed import run

    con = Console()
    r = run(checkpoint or runs.default_checkpoint("student", con), out)
    con.print(
        f"{r['model']} {r['grid'][0]}x{r['grid'][1]}: mean cosine with the 4 neighbours {r['neighbours']:.3f}, same row "
        f"{r['same_row']:.3f}, same column {r['same_column']:.3f}, elsewhere {r['other']:.3f} -> {r['png']}",
        highlight=False,
    )


@app.command()
def features(
    data: Annotated[
        str,
        typer.Argument(help="a dataset as --data takes: digits, fashion-mnist, torchvision:NAME or an ImageFolder dir"),
    ],
    model: Annotated[
        Optional[Path],
        typer.Option(help="checkpoint dir, or an artifact exported with --features (default: runs/student)"),
    ] = None,
    token: Annotated[
        str, typer.Option(help="cls | dist | avg (the mean of both: what the distilled heads read)")
    ] = "cls",
    random_init: Annotated[
        bool, typer.Option(help="the checkpoint's architecture with untrained weights: the probe's floor")
    ] = False,
    out: Annotated[Path, typer.Option(help="output .safetensors file")] = Path("runs/diagnostics/features.safetensors"),
    threads: Threads = None,
    train_limit: Annotated[
        Optional[int], typer.Option(min=1, help="a fixed stratified subset of this many train images (default: all)")
    ] = None,
) -> None:
    """Pre-logits features and labels of every train and val image, to safetensors."""
    from .inspect.features import extract

    con = Console()
    ckpt_dir = model or runs.default_checkpoint("student", con)
    r = extract(data, ckpt_dir, token, out, random_init, threads, train_limit=train_limit)
    con.print(f"{r['model']}: {r['token']} features, train {r['train']}, val {r['val']} -> {r['out']}", highlight=False)


@app.command()
def probe(
    files: Annotated[list[Path], typer.Argument(help="features files written by `vitc features`")],
    out: Annotated[Optional[Path], typer.Option(help="also write the table as JSON here")] = None,
    shuffle_labels: Annotated[
        bool, typer.Option(help="control: shuffle the train labels (the probe should fall to chance)")
    ] = False,
) -> None:
    """Linear probe (logistic regression, C chosen on a train split) and k-NN (cosine, k=20) on frozen features."""
    from rich.table import Table

    from .inspect.probe import run

    rows = run(files, out, shuffle_labels)
    t = Table(
        "features",
        "model",
        "token",
        "dim",
        "logreg top-1 %",
        "C",
        "k-NN top-1 %",
        "chance %",
        title="val top-1 of probes on frozen features",
    )
    for r in rows:
        t.add_row(
            Path(r["file"]).name,
            str(r["model"]),
            str(r["token"]),
            str(r["dim"]),
            f"{r['logreg']['top1']:.2f}",
            f"{r['logreg']['C']:g}",
            f"{r['knn']['top1']:.2f}",
            f"{r['chance']:.1f}",
        )
    _wide().print(t)


@app.command()
def info(path: Annotated[Path, typer.Argument(help="checkpoint dir or artifact")]) -> None:
    """Describe a model: params, GFLOPs, layer types, input spec, metrics (or an artifact's manifest)."""
    import json

    from .inspect import describe

    Console().print_json(json.dumps(describe(path), default=str))


def _wide() -> Console:
    """Tables in a log file or CI output: rich would assume 80 columns and squeeze them unreadable."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def _done(out: Path, metrics: dict) -> None:
    import os

    if os.environ.get("RANK", "0") != "0" or not metrics:
        return
    parts = [f"{k} {v:.2f}" for k, v in metrics.items() if k.startswith("top1") or k == "teacher_top1"]
    Console().print(f"[bold green]done[/]: {out}  " + "  ".join(parts))


def _name_the_capture() -> None:
    """After a failed command's error: where other libraries' messages of the run went, when there were any."""
    from . import runlog

    path = runlog.leftover()
    if path:
        err.print(f"[dim]other libraries' messages of this run: {path}[/]", highlight=False)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage-error, abort) classes of the click that typer runs on: typer >= 0.16 ships its own copy as
    typer._click (Abort in typer.exceptions), whose exceptions are not click's."""
    import importlib

    usage, abort = [], []
    for mod_name, usage_cls, abort_mod in (
        ("typer._click.exceptions", "ClickException", "typer.exceptions"),
        ("click.exceptions", "ClickException", "click.exceptions"),
    ):
        try:
            usage.append(getattr(importlib.import_module(mod_name), usage_cls))
            abort.append(importlib.import_module(abort_mod).Abort)
        except (ImportError, AttributeError):
            continue
    return tuple(usage), tuple(abort)


def main(argv: list[str] | None = None) -> None:
    """Entry point: VitcErrors become one or two lines and exit 2; --debug shows the traceback."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    from . import runlog

    if argv is None and not debug:  # the console command: other libraries' output -> the run's log (vitc/runlog.py)
        runlog.start()
        err.file = runlog.terminal()
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="vitc")
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        if argv is None and not debug:
            runlog.done()
    except VitcError as e:
        if debug:
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False)
        if e.hint:
            err.print(f"[dim]hint:[/] {escape(e.hint)}", highlight=False)
        sys.exit(e.exit_code)  # a mistake stays one sentence; the run's captured messages stay in runlog's file
    except SystemExit as e:  # a message (the torch-free runner's) goes to the terminal, not the captured stderr
        if isinstance(e.code, str):
            err.print(e.code, highlight=False, markup=False)
            sys.exit(1)
        raise
    except KeyboardInterrupt:
        err.print("interrupted: completed epochs are saved; continue with --resume")
        sys.exit(130)
    except Exception as e:  # click usage errors keep their own formatting: usage line, closest name, exit 2
        usage, abort = _click_errors()
        if isinstance(e, usage):
            e.show(file=err.file)
            sys.exit(e.exit_code)
        if isinstance(e, abort):
            sys.exit(1)
        if debug:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(e).__name__}: {e}  (rerun with --debug for the traceback)",
            highlight=False,
        )
        _name_the_capture()
        sys.exit(1)
