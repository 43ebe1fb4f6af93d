"""`vitc attention | posembed | features | probe | info`: the commands that look inside a checkpoint or artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import runs
from .cli_app import app, wide
from .cli_options import Threads
from .errors import ConfigError


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
    wide().print(t)


@app.command()
def info(path: Annotated[Path, typer.Argument(help="checkpoint dir or artifact")]) -> None:
    """Describe a model: params, GFLOPs, layer types, input spec, metrics (or an artifact's manifest)."""
    import json

    from .inspect import describe

    Console().print_json(json.dumps(describe(path), default=str))
