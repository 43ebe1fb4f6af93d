"""Progress of long steps (training batches, evaluation, calibration, export validation, bench rounds).

On a terminal: a rich progress bar with the count, the rate and the time left. Otherwise (CI, a log
file): a plain line every `every_s` seconds and one at the end, so a log shows that a long step is
alive and how long it has left. rich's own bar is disabled off a terminal, hence the plain lines.
"""

from __future__ import annotations

import time
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")
EVERY_S = 15.0


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Steps:
    """with Steps("epoch 1/30", total=22, unit="batch") as p: ... p.advance(1, info="loss 0.41")"""

    def __init__(
        self,
        description: str,
        total: int,
        console: Console | None = None,
        unit: str = "step",
        every_s: float = EVERY_S,
        visible: bool = True,
    ):
        self.description, self.total, self.unit, self.every_s = description, max(int(total), 0), unit, every_s
        self.console = console or Console()
        self.visible = visible
        self.done, self.info = 0, ""
        self._bar = None

    def __enter__(self) -> Steps:
        self.t0 = self._last = time.perf_counter()
        if self.visible and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}  {task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, rate="", info="")
        return self

    def _rate(self) -> float:
        return self.done / max(time.perf_counter() - self.t0, 1e-9)

    def line(self) -> str:
        r = self._rate()
        left = (self.total - self.done) / r if r > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        units = self.unit + ("es" if self.unit.endswith(("ch", "sh", "s", "x")) else "s")
        return (
            f"{self.description}: {self.done}/{self.total} {units} ({pct:.0f}%), {r:.1f} {self.unit}/s, "
            f"{_clock(left)} left" + (f"  {self.info}" if self.info else "")
        )

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.done += n
        if info is not None:
            self.info = info
        if not self.visible:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n, rate=f"{self._rate():.1f} {self.unit}/s", info=self.info)
        elif time.perf_counter() - self._last >= self.every_s and self.done < self.total:
            self._last = time.perf_counter()
            self.console.print(self.line(), highlight=False)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.visible and exc[0] is None and time.perf_counter() - self.t0 >= self.every_s:
            self.console.print(self.line(), highlight=False)  # long steps end with a line; short ones stay quiet


def track(
    items: Iterable[T],
    description: str,
    total: int,
    console: Console | None = None,
    unit: str = "step",
    every_s: float = EVERY_S,
) -> Iterator[T]:
    with Steps(description, total, console, unit, every_s) as p:
        for x in items:
            yield x
            p.advance()
