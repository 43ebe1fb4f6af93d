"""The run options several `vitc` commands share (not config fields: where to write, whether to replace),
defined once as typer Annotated aliases. The stage options come from the stage configs (vitc/cli_gen.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import INT8_ISA_HELP

Out = Annotated[Optional[Path], typer.Option(help="output dir (default: the stage's folder under runs/, printed)")]
Threads = Annotated[Optional[int], typer.Option(help="torch threads per process (default: cores / processes)")]
Resume = Annotated[bool, typer.Option(help="continue the run in --out from its last epoch")]
Force = Annotated[bool, typer.Option(help="replace a previous run in --out")]
Int8Isa = Annotated[str, typer.Option(help=INT8_ISA_HELP)]
