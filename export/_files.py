"""Atomic multi-file artifact writes, shared by the targets."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vitc.errors import OutputError


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """Yield a temp dir beside `out`; on success move its files next to `out` (the file named
    `out.name` last), so a crash never leaves a half-written artifact under the final name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        files = sorted(tmp.iterdir(), key=lambda p: p.name == out.name)
        if not any(p.name == out.name for p in files):
            raise OutputError(f"the exporter did not write {out.name}")
        for p in files:
            os.chmod(p, 0o644)
            os.replace(p, out.parent / p.name)
    except OSError as e:
        raise OutputError(f"writing {out} failed: {e.strerror or e}", "free disk space or fix permissions") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
