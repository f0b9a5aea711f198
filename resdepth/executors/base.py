"""What every executor shares: the task a worker gets, the messages it sends back, and the loop that
hands tasks to workers and retries the ones whose worker died.

Every executor runs the same `run_task` and sends its events (finished epochs, progress) back to
the driver, which alone writes the results folder (see `writer.Writer`): CSVs are never written by
two processes at once. A worker process that dies is started again, at most `MAX_ATTEMPTS` times
in all; the new attempt resumes from the run's last checkpoint, which lives in the results folder
(on a cluster, a filesystem every node shares).

Numbers are bit-identical across executors for the same threads per run: on CPU, PyTorch's batch
norm and convolution-gradient reductions are split across threads, so a different thread count
changes the last digits (about 1e-4 of a loss after two epochs).
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from resdepth.data.store import Dataset, load
from resdepth.device import provenance
from resdepth.results import NONCE, EpochRecord, Status, Window
from resdepth.runs import RunConfig
from resdepth.step import DEFAULT_ENGINE, Engine
from resdepth.train import Diverged, train_run

MAX_ATTEMPTS = 3  # a run whose worker dies three times is marked failed


@dataclass(frozen=True)
class Task:
    """One run as a worker needs it: everything is a plain value, so it pickles to any process."""

    cfg: RunConfig
    data_dir: str | None  # absolute, resolved by the driver: a worker's cwd and env may differ
    checkpoint: str
    device: str
    threads: int
    engine: Engine = DEFAULT_ENGINE
    offline: bool = False  # a worker whose node lacks the data downloads it unless this is set
    attempt: int = 1
    out: str = ""  # the results folder, absolute; with `nonce`, the worker checks that it sees it
    nonce: str = ""  # what the driver wrote into out/.resdepth.nonce for this sweep


# --- what a worker sends back, in order: progress and epochs, then the end (or, seen by the
# driver, the worker's death) --------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    precision: str  # what the run trains in, as the node that trains it resolved `auto`
    provenance: dict[str, str]  # what trains it (`device.provenance`), as that node sees itself


@dataclass(frozen=True)
class EpochDone:
    record: EpochRecord


@dataclass(frozen=True)
class Progress:
    window: Window


@dataclass(frozen=True)
class RunEnded:
    status: Status
    error: str


@dataclass(frozen=True)
class WorkerCrashed:
    reason: str


Event = Started | EpochDone | Progress | RunEnded | WorkerCrashed
News = Started | EpochDone | Progress  # what a worker reports while its run trains


class Outcome(NamedTuple):
    """How one run of a sweep ended."""

    cfg: RunConfig
    status: Status
    error: str


class Sink(Protocol):
    """What an executor reports to: the driver's single writer."""

    def start(self, task: Task) -> None: ...
    def event(self, task: Task, event: News) -> None: ...
    def end(self, task: Task, status: Status, error: str) -> None: ...
    def retry(self, task: Task, reason: str) -> None: ...


_loaded: dict[tuple[str, str | None], Dataset] = {}  # a worker process loads each dataset once


def load_split(task: Task) -> Dataset:
    cfg = task.cfg
    key = (cfg.dataset, task.data_dir)
    if key not in _loaded:
        _loaded[key] = load(cfg.dataset, task.data_dir, offline=task.offline)
    return cfg.split(_loaded[key])


def run_task(task: Task, data: Dataset | None, emit: Callable[[Event], None], node: str = "") -> RunEnded:
    """Train one run (or resume it from its checkpoint) on this node (`node`: its Ray id, if any).
    Never raises for a broken run, only for Ctrl-C, so one bad run cannot stop the others."""
    if task.nonce and not sees(Path(task.out), task.nonce):
        return RunEnded(
            Status.FAILED,
            f"node {socket.gethostname()}{f' ({node})' if node else ''} cannot see the results folder "
            f"{task.out}: every node must share it at that path (docs/cluster.md)",
        )
    torch.set_num_threads(task.threads)
    try:
        train_run(
            task.cfg,
            data if data is not None else load_split(task),
            torch.device(task.device),
            Path(task.checkpoint),
            on_epoch=lambda record: emit(EpochDone(record)),
            on_progress=lambda window: emit(Progress(window)),
            engine=task.engine,
            on_start=lambda precision: emit(Started(precision, provenance(torch.device(task.device), node))),
        )
    except Diverged as exc:
        return RunEnded(Status.DIVERGED, str(exc))
    except Exception as exc:
        return RunEnded(Status.FAILED, f"{exc.__class__.__name__}: {exc}")
    return RunEnded(Status.COMPLETED, "")


def sees(out: Path, nonce: str) -> bool:
    """Whether this process sees the results folder the driver wrote `nonce` into."""
    try:
        return (out / NONCE).read_text() == nonce
    except OSError:
        return False


class Executor(ABC):
    def __init__(self, device: str, threads: int) -> None:
        self.device = device  # where a task trains unless a pool slot says otherwise
        self.threads = threads  # CPU threads of each run

    @property
    def at_once(self) -> int:
        return 1

    @abstractmethod
    def run(self, tasks: Iterable[Task], sink: Sink, fail_fast: bool = False) -> None:
        """Train every task, reporting to `sink`; on Ctrl-C, end the active ones as interrupted."""

    @abstractmethod
    def close(self) -> None:
        """Release what the executor started; safe to repeat."""


class _WriterFailed(BaseException):
    """The driver could not take a run's event: past `run_task`'s net for a broken run, since the
    run is not to blame and the sweep must stop (a BaseException, which that net lets through)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Inline(Executor):
    """One run at a time in this process (`--jobs 1`): nothing to start, data loaded once."""

    def __init__(self, device: str, threads: int, data: Callable[[RunConfig], Dataset]) -> None:
        super().__init__(device, threads)
        self.data = data

    def run(self, tasks: Iterable[Task], sink: Sink, fail_fast: bool = False) -> None:
        for task in tasks:
            sink.start(task)

            def emit(event: Event, task: Task = task) -> None:
                assert isinstance(event, Started | EpochDone | Progress)
                try:
                    sink.event(task, event)
                except Exception as exc:  # the driver's failure (a full disk), not the run's
                    raise _WriterFailed(exc) from exc

            try:
                ended = run_task(task, self.data(task.cfg), emit)
            except KeyboardInterrupt:
                sink.end(task, Status.INTERRUPTED, "")
                raise
            except _WriterFailed as failed:  # stop the sweep as a pool's driver would; the run resumes
                raise failed.error from None
            sink.end(task, ended.status, ended.error)
            if fail_fast and ended.status is Status.FAILED:
                return

    def close(self) -> None:
        pass  # nothing was started: runs train in this process


class Pool(Executor):
    """Runs in workers, one per slot; each slot names the device its run trains on."""

    def __init__(self, slots: list[str], threads: int) -> None:
        super().__init__(slots[0], threads)
        self.slots = slots

    @property
    def at_once(self) -> int:
        return len(self.slots)

    @abstractmethod
    def submit(self, task: Task, slot: int) -> Any:
        """Start `task` in a worker, on its slot; returns its handle."""

    @abstractmethod
    def wait(self, handles: list[Any]) -> list[tuple[Any, Event]]:
        """Events of these workers, in order, waiting a moment (at most a second) for them. A worker
        that died before its `RunEnded` yields `WorkerCrashed`."""

    @abstractmethod
    def cancel(self, handles: list[Any]) -> None: ...

    def run(self, tasks: Iterable[Task], sink: Sink, fail_fast: bool = False) -> None:
        pending = deque(tasks)
        free = list(range(len(self.slots)))
        active: dict[Any, tuple[Task, int]] = {}
        try:
            while pending or active:
                while pending and free:
                    slot = free.pop(0)
                    task = replace(pending.popleft(), device=self.slots[slot])
                    sink.start(task)
                    active[self.submit(task, slot)] = (task, slot)
                for handle, event in self.wait(list(active)):
                    task, slot = active[handle]
                    match event:
                        case Started() | EpochDone() | Progress():
                            sink.event(task, event)
                            continue
                        case WorkerCrashed(reason) if task.attempt < MAX_ATTEMPTS:
                            sink.retry(task, reason)
                            pending.appendleft(replace(task, attempt=task.attempt + 1))
                            ended = None
                        case WorkerCrashed(reason):
                            ended = RunEnded(
                                Status.FAILED, f"worker died {MAX_ATTEMPTS} times; last: {reason}"
                            )
                        case RunEnded():
                            ended = event
                    del active[handle]
                    free.append(slot)
                    if ended is not None:
                        sink.end(task, ended.status, ended.error)
                        if fail_fast and ended.status is Status.FAILED:
                            pending.clear()
        except KeyboardInterrupt:
            self.cancel(list(active))
            for task, _ in active.values():
                sink.end(task, Status.INTERRUPTED, "")
            raise
