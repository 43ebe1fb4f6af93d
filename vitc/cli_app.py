"""The Typer app every `vitc` command registers on, its root options, and how results are printed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import stages
from .errors import AccuracyGateError, VitcError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Compress a big ViT/CNN teacher into a small, fast, verified edge model.",
)
err = Console(stderr=True, soft_wrap=True)  # a message is one line, however long: never hard-wrapped
state = {"debug": False}


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
    state["debug"] = debug
    if data_root is not None:
        os.environ["VITC_DATA_ROOT"] = str(data_root)  # read by vitc.tv_data, here and in worker processes


def wide() -> Console:
    """Tables in a log file or CI output: rich would assume 80 columns and squeeze them unreadable."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def inputs(con: Console, run: dict, **kw) -> stages.Inputs:
    return stages.Inputs(resume=bool(run.get("resume")), force=bool(run.get("force")), console=con, **kw)


def finish(name: str, out: Path, res: stages.Result) -> None:
    """What every stage command does with its result: print it, then exit non-zero on what failed."""
    for m in res.artifacts:
        exported(m)
    if res.metrics and stages.get(name).trains:
        done(out, res.metrics)
    if res.skipped:
        s = res.skipped[0]
        raise VitcError(f"{s['target']} {s['precision']}: {s['reason']}")
    if res.failed:
        raise AccuracyGateError(res.failed[0], f"kept in {out}, marked failed")


def exported(m: dict) -> None:
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


def done(out: Path, metrics: dict) -> None:
    if os.environ.get("RANK", "0") != "0" or not metrics:
        return
    parts = [f"{k} {v:.2f}" for k, v in metrics.items() if k.startswith("top1") or k == "teacher_top1"]
    Console().print(f"[bold green]done[/]: {out}  " + "  ".join(parts))
