"""vitc command line: the entry point. The commands live by concern (thin wiring, no stage logic):
cli_train (teacher, distill, prune), cli_deploy (quantize, export, bench, pipeline, bundle, predict), cli_inspect
(attention, posembed, features, probe, info); their options come from the stage configs (cli_gen)."""

from __future__ import annotations

import sys

from . import cli_deploy, cli_inspect, cli_train  # noqa: F401  (each registers its commands on the app)
from .cli_app import app, err, state  # noqa: F401  (`vitc.cli.app`: the Typer app, for tests and docs)
from .errors import VitcError


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
