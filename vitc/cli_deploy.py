"""`vitc quantize | export | bench` (options generated from their stage configs), `vitc pipeline`, `vitc bundle` and
`vitc predict`: the commands that make, time and run deployable artifacts."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import runs, stages
from .cli_app import app, finish, inputs, wide
from .cli_gen import command, param
from .cli_options import Force, Int8Isa, Out, Threads
from .config import from_dict
from .errors import ConfigError, DataError, VitcError

Ckpt = Annotated[
    Optional[Path], typer.Argument(help="a vitc checkpoint dir (default: runs/student, from `vitc distill`)")
]


def _quantize(given: dict, run: dict) -> None:
    from . import export as registry
    from .config import QUANT_TARGET

    cfg = from_dict(stages.get("quantize").config, given)
    con = Console()
    missing = {b: why for b in cfg.backends if (why := registry.get(QUANT_TARGET[b]).check())}
    if missing and "backends" in given:  # one asked for by name must run
        b, why = next(iter(missing.items()))
        raise VitcError(f"--backend {b}: its runtime is unavailable here: {why}")
    if missing:  # the default three: those this install has (onnxruntime and openvino are extras)
        for b, why in missing.items():
            con.print(f"[yellow]note[/]: skipping the {b} backend: {why}", highlight=False)
        cfg = dataclasses.replace(cfg, backends=[b for b in cfg.backends if b not in missing])
    checkpoint = run["checkpoint"] or runs.default_checkpoint(stages.get("quantize").reads, con)
    out = run["out"] or runs.default_out(stages.get("quantize").folder, con)
    finish("quantize", out, stages.run("quantize", cfg, inputs(con, run, checkpoint=checkpoint), out))


def _export(given: dict, run: dict) -> None:
    from . import export as registry

    if run["list_targets"]:
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
    cfg = from_dict(stages.get("export").config, given)
    for name in cfg.targets:
        tgt = registry.get(name)
        unsupported = [p for p in cfg.precisions if p not in tgt.PRECISIONS]
        if len(cfg.targets) == 1 and unsupported:
            raise ConfigError(f"{tgt.NAME} supports {', '.join(tgt.PRECISIONS)}, not {unsupported[0]!r}")
        why = tgt.check()
        if why:  # before any default is looked up or announced: nothing is read or written
            raise VitcError(f"{tgt.NAME} target unavailable here: {why}")
    con = Console()
    checkpoint = run["checkpoint"] or runs.default_checkpoint(stages.get("export").reads, con)
    out = run["out"] or runs.default_out(stages.get("export").folder, con)
    finish("export", out, stages.run("export", cfg, inputs(con, {}, checkpoint=checkpoint), out))


def _bench(given: dict, run: dict) -> None:
    cfg = from_dict(stages.get("bench").config, given)
    if not run["paths"] and cfg.remeasure_peak:
        from .benchmarks.peak import peaks

        p = peaks(cfg.threads, remeasure=True)
        Console().print(", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in p["gflops"].items()) + f" ({cfg.threads} threads)")
        return
    con = wide()
    paths = run["paths"] or runs.bench_inputs(con)
    out = run["out"] or runs.default_out(stages.get("bench").folder, con)
    res = stages.run("bench", cfg, stages.Inputs(paths=list(paths), console=con), out)
    rows = res.metrics["rows"]
    con.print(f"report: {out / 'report.md'}", highlight=False)
    if res.failed:  # the report is complete; the exit status still tells a script that something broke
        raise VitcError(
            f"{len(res.failed)} of {len(rows)} artifacts could not be benchmarked, e.g. {res.failed[0]}",
            f"every row is in {out / 'report.md'}; re-export the broken ones",
        )


command(
    app,
    "quantize",
    _quantize,
    [param("checkpoint", Ckpt), param("out", Out), param("force", Force, False)],
    "int8: PyTorch dynamic (Linear) + TorchScript-lite, or with ONNX Runtime / OpenVINO NNCF (calibrated on real "
    "images) / ExecuTorch's XNNPACK quantizer.",
    first=("backend",),
)
command(
    app,
    "export",
    _export,
    [
        param("checkpoint", Annotated[Optional[Path], typer.Argument(help="vitc checkpoint dir")]),
        param("out", Out),
        param(
            "list_targets",
            Annotated[bool, typer.Option("--list", help="show the targets and what is available here")],
            False,
        ),
    ],
    "Write an artifact for a runtime and prove it computes the same function as PyTorch.",
    first=("target", "precision"),
)
command(
    app,
    "bench",
    _bench,
    [
        param(
            "paths",
            Annotated[
                Optional[list[Path]],
                typer.Argument(help="export dirs, artifacts or checkpoint dirs (default: what is under runs/)"),
            ],
        ),
        param(
            "out",
            Annotated[
                Optional[Path],
                typer.Option(help="report dir: bench.json, bench.csv, report.md, pareto.png (default: runs/bench)"),
            ],
        ),
    ],
    "Latency, throughput, size and accuracy per artifact; writes a report.",
)


@app.command()
def pipeline(
    config: Annotated[Path, typer.Argument(help="pipeline YAML, e.g. configs/digits.yaml")],
    from_stage: Annotated[
        Optional[str],
        typer.Option("--from", help=f"rerun from this stage: {' | '.join(stages.ORDER)}"),
    ] = None,
    force: Annotated[bool, typer.Option(help="rerun every stage")] = False,
) -> None:
    """teacher -> distill -> prune (optional) -> quantize -> export -> bench from one config; unchanged stages are skipped."""
    from .pipeline import Pipeline, summary_table
    from .pipeline_config import load

    con = wide()
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
        from .export.predict import selftest_artifact

        line, passed = selftest_artifact(artifact, threads)
        Console(soft_wrap=True).print(line, highlight=False)
        if not passed:
            raise typer.Exit(1)
        return
    if not images:
        raise ConfigError("no image given", "pass image files after the artifact, or --selftest")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise DataError(f"image {missing[0]} does not exist", "pass image files (jpg, png, ...)")
    if artifact.suffix in (".onnx", ".xml") and artifact.is_file():
        from .export.predict import bundle_top

        rows = bundle_top(artifact, list(images), topk, threads)
    else:
        from .inspect import predict as run

        rows = run(artifact, images, topk, threads)
    for r in rows:
        Console(soft_wrap=True).print(
            f"{r['image']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"]), highlight=False
        )


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
