"""What a sweep shows while it runs (a live rich display on a terminal, plain lines elsewhere), the
bars of a measurement that takes a while, and how durations read."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from resdepth.results import EpochRecord, Status, Window
from resdepth.runs import RunConfig


class Display(Protocol):
    """What a sweep shows as it trains: each run's start, progress, epochs and end."""

    def start_run(self, cfg: RunConfig, index: int, total: int, start_epoch: int) -> None: ...
    def step(self, cfg: RunConfig, window: Window) -> None: ...
    def epoch(self, cfg: RunConfig, record: EpochRecord) -> None: ...
    def end_run(self, cfg: RunConfig, status: Status) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class LineDisplay:
    """One line per epoch: for CI logs, pipes and files."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def start_run(self, cfg: RunConfig, index: int, total: int, start_epoch: int) -> None:
        resume = f", resuming at epoch {start_epoch}" if start_epoch > 1 else ""
        self.console.print(
            f"[{index}/{total}] {cfg.name} seed {cfg.seed} ({cfg.run_id}): {cfg.epochs} epochs{resume}",
            highlight=False,
        )

    def step(self, cfg: RunConfig, window: Window) -> None:
        pass

    def epoch(self, cfg: RunConfig, r: EpochRecord) -> None:
        self.console.print(
            f"  {cfg.name} seed {cfg.seed} epoch {r.epoch}/{cfg.epochs} it {r.iteration} "
            f"lr {r.lr:g} train {r.train_error:.2f}% test {r.test_error:.2f}% "
            f"{r.images_per_second:,.0f} img/s",
            highlight=False,
        )

    def end_run(self, cfg: RunConfig, status: Status) -> None:
        self.console.print(f"  {cfg.name} seed {cfg.seed}: {status}", highlight=False)

    def note(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)

    def close(self) -> None:
        pass


class LiveDisplay:
    """A bar for the sweep, one per run in progress, and the last epoch's errors of every run."""

    def __init__(self, console: Console, runs: int) -> None:
        self.console = console
        self.sweep = Progress(
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TimeRemainingColumn(),
            console=console,
        )
        self.runs = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self.sweep_task = self.sweep.add_task("sweep", total=runs)
        self.bars: dict[str, TaskID] = {}  # by run_id, while the run trains
        self.last: dict[str, tuple[RunConfig, EpochRecord]] = {}  # by run_id, in start order
        self.live = Live(self._render(), console=console, refresh_per_second=4)
        self.live.start()

    def _render(self) -> Group:
        table = Table(title="last epoch", title_justify="left")
        for col in ("run", "seed", "epoch", "train err %", "test err %"):
            table.add_column(col, justify="right")
        for cfg, r in self.last.values():
            table.add_row(
                cfg.name,
                str(cfg.seed),
                f"{r.epoch}/{cfg.epochs}",
                f"{r.train_error:.2f}",
                f"{r.test_error:.2f}",
            )
        return Group(self.sweep, self.runs, table)

    def start_run(self, cfg: RunConfig, index: int, total: int, start_epoch: int) -> None:
        if cfg.run_id in self.bars:  # a retry
            self.runs.remove_task(self.bars[cfg.run_id])
        self.bars[cfg.run_id] = self.runs.add_task(
            f"{cfg.name} seed {cfg.seed}", total=cfg.epochs, completed=start_epoch - 1, info=""
        )

    def step(self, cfg: RunConfig, w: Window) -> None:
        info = f"epoch {w.epoch} it {w.iteration} lr {w.lr:g} loss {w.loss:.3f} err {w.error:.1f}%"
        self.runs.update(self.bars[cfg.run_id], info=info)

    def epoch(self, cfg: RunConfig, r: EpochRecord) -> None:
        self.runs.update(self.bars[cfg.run_id], completed=r.epoch)
        self.last[cfg.run_id] = (cfg, r)
        self.live.update(self._render())

    def end_run(self, cfg: RunConfig, status: Status) -> None:
        self.runs.remove_task(self.bars.pop(cfg.run_id))
        self.sweep.advance(self.sweep_task)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def close(self) -> None:
        self.live.stop()


def display(console: Console, runs: int) -> Display:
    """Bars on a terminal, one line per epoch elsewhere (logs, pipes)."""
    if console.is_terminal and sys.stdout.isatty():
        return LiveDisplay(console, runs)
    return LineDisplay(console)


@contextmanager
def bars(console: Console, shown: bool) -> Iterator[Callable[[str, int, int], None]]:
    """`step(label, done, total)` draws a bar per label while it is unfinished, on a terminal when
    `shown`; elsewhere (a log, a pipe, JSON on stdout) it does nothing, the lines around it say enough."""
    if not (shown and console.is_terminal):
        yield lambda *_: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def step(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done)
            if done >= total:
                progress.remove_task(tasks[label])

        yield step


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`: how long something takes, as a person reads it, rounded
    to its last unit (57,400 s is 15 h 57 min, not 15 h 56)."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"
