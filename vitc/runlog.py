"""Other libraries' warnings and log lines go to the run's log file, not between vitc's own lines.

torch's UserWarnings and FutureWarnings, NNCF's INFO lines and ExecuTorch's C++ `[cpuinfo_utils.cpp:...]` lines
all write to the process's stderr, some from C++. So `vitc` (the console command; not `main([...])` called
in-process, which tests do) points file descriptor 2 at a capture file under the temp dir and writes its own
messages to a duplicate of the real stderr (`terminal()`). Each stage appends what was captured while it ran to
`<out>/vitc.log`. A failed command keeps its capture file (`vitc-*.log` under the temp dir; an internal error
names it); a command that succeeds without an output folder (predict, info) drops it. Under `--debug` nothing is
captured."""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_NAME = "vitc.log"
_state: dict = {}  # terminal: the real stderr; path: the capture file; taken: bytes already copied to a stage log


def start() -> None:
    if _state or not hasattr(os, "dup2"):
        return
    sys.stderr.flush()
    fd, path = tempfile.mkstemp(prefix="vitc-", suffix=".log")
    saved = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    _state.update(terminal=os.fdopen(saved, "w", buffering=1), path=Path(path), taken=0)
    atexit.register(_finish)


def terminal() -> TextIO:
    """Where vitc's own messages go: the real stderr (while capturing), else sys.stderr."""
    return _state.get("terminal") or sys.stderr


def _size() -> int:
    sys.stderr.flush()
    return _state["path"].stat().st_size


@contextmanager
def stage(out: Path):
    """Append what other libraries printed while the block ran to out/vitc.log, when it ran to the end (a run that
    fails leaves nothing in its folder; its messages stay in the capture file)."""
    if not _state:
        yield
        return
    yield
    begin, end = _state["taken"], _size()  # from what no stage took yet: an auto-trained teacher's, say
    if end > begin and Path(out).is_dir():
        with open(_state["path"], "rb") as src, open(Path(out) / LOG_NAME, "ab") as dst:
            src.seek(begin)
            dst.write(src.read(end - begin))
        _state["taken"] = end


@contextmanager
def foreign_stdout():
    """While the block runs, stdout (fd 1) goes to the capture too: NNCF logs INFO lines and draws its progress bars
    on stdout, through handlers that hold the stream itself, so only the file descriptor can be moved."""
    if not _state:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def leftover() -> Path | None:
    """The capture file when it holds messages no run's log took (a failed run): the error names it."""
    if _state and _state["path"].exists() and _size() > _state["taken"]:
        return _state["path"]
    return None


def done() -> None:
    """The command succeeded: what no run's log took (a command without an output folder) is not kept."""
    if _state:
        _state["taken"] = _size()


def _finish() -> None:
    """At exit the capture file goes, unless a failed command left messages in it (and named it)."""
    path = _state.get("path")
    if path and path.exists() and _size() <= _state["taken"]:
        path.unlink(missing_ok=True)
