"""What every executor shares: the job a worker gets (one run, or a packed group), the messages it
sends back, and the loop that hands jobs to workers and retries the ones whose worker died.

Every executor runs the same `run_job` and sends its events (finished epochs, progress) back to
the driver, which alone writes the results folder (see `writer.Writer`): CSVs are never written by
two processes at once. A worker process that dies is started again, at most `MAX_ATTEMPTS` times
in all; the new attempt resumes from the run's last checkpoint, which lives in the results folder
(on a cluster, a filesystem every node shares).

Numbers are bit-identical across executors for the same threads per run: on CPU, PyTorch's batch
norm and convolution-gradient reductions are split across threads, so a different thread count
changes the last digits (about 1e-4 of a loss after two epochs).
"""

from __future__ import annotations

import errno
import socket
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from resdepth.data.store import Dataset, load
from resdepth.device import provenance
from resdepth.errors import Halted, refused_write
from resdepth.results import NONCE, EpochRecord, Status, Window
from resdepth.runs import RunConfig
from resdepth.step import DEFAULT_ENGINE, Engine
from resdepth.train import Member, train_group

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


@dataclass(frozen=True)
class Job:
    """What one worker trains at once: one run, or runs that differ only in their seed, packed into
    one model (`--pack`). A packed job is retried as a whole, less the runs that already ended."""

    tasks: tuple[Task, ...]

    @property
    def attempt(self) -> int:
        return self.tasks[0].attempt

    @property
    def key(self) -> tuple[str, int]:
        """Tells apart the jobs of a sweep, and each attempt of one."""
        return self.tasks[0].cfg.run_id, self.attempt

    def retried(self, ended: set[int]) -> Job:
        """The next attempt, with the runs whose end was reported left out."""
        return Job(
            tuple(replace(t, attempt=t.attempt + 1) for i, t in enumerate(self.tasks) if i not in ended)
        )


# --- what a worker sends back for each run of its job, in order: progress and epochs, then its end
# (or, seen by the driver, the worker's death) ------------------------------------------------------


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
    halt: bool = False  # the machine or the folder failed, not the run: the sweep stops (`Halted`)


News = Started | EpochDone | Progress  # what a worker reports while its run trains


@dataclass(frozen=True)
class Report:
    """A worker's news of run `run` (its index in the job)."""

    run: int
    event: News | RunEnded


@dataclass(frozen=True)
class WorkerCrashed:
    reason: str


Event = Report | WorkerCrashed


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


def run_job(job: Job, data: Sequence[Dataset] | None, emit: Callable[[Report], None], node: str = "") -> None:
    """Train a job's runs (or resume them from their checkpoints) on this node (`node`: its Ray id,
    if any), reporting each run's end as soon as it leaves the job. Never raises for a broken run,
    only for Ctrl-C, so one bad job cannot stop the others: an error fails the runs not yet ended."""
    first = job.tasks[0]
    ended: set[int] = set()

    def end(i: int, status: Status, error: str, halt: bool = False) -> None:
        ended.add(i)
        emit(Report(i, RunEnded(status, error, halt)))

    if first.nonce and not sees(Path(first.out), first.nonce):
        why = (
            f"node {socket.gethostname()}{f' ({node})' if node else ''} cannot see the results folder "
            f"{first.out}: every node must share it at that path (docs/cluster.md)"
        )
        for i in range(len(job.tasks)):
            end(i, Status.INTERRUPTED, why, halt=True)
        return
    torch.set_num_threads(first.threads)
    device = torch.device(first.device)
    try:
        members = [
            _member(i, task, data[i] if data else None, emit, end, node) for i, task in enumerate(job.tasks)
        ]
        train_group(members, device, first.engine)
    except Exception as exc:
        halt = isinstance(exc, OSError) and exc.errno in HALTING
        why = refused_write(exc) if isinstance(exc, OSError) and halt else f"{exc.__class__.__name__}: {exc}"
        for i in range(len(job.tasks)):
            if i not in ended:
                end(i, Status.INTERRUPTED if halt else Status.FAILED, why, halt)


# A write the machine refuses, whichever run makes it: every other run would fail the same way.
HALTING = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def halted(task: Task, error: str) -> Halted:
    """The one line a sweep stops with when a worker reports a halt: the worker's, unless the driver
    cannot see its own token either, which was then deleted or replaced meanwhile."""
    if task.nonce and not sees(Path(task.out), task.nonce):
        error = (
            f"{Path(task.out) / NONCE} was deleted or replaced while the sweep ran, so no node can tell "
            "that it shares the results folder; the same command resumes the interrupted runs"
        )
    return Halted(error)


def _member(
    i: int,
    task: Task,
    data: Dataset | None,
    emit: Callable[[Report], None],
    end: Callable[[int, Status, str], None],
    node: str,
) -> Member:
    """Run i of a job, its events reported as its own."""
    device = torch.device(task.device)
    return Member(
        task.cfg,
        data if data is not None else load_split(task),
        Path(task.checkpoint),
        on_epoch=lambda record: emit(Report(i, EpochDone(record))),
        on_progress=lambda window: emit(Report(i, Progress(window))),
        on_start=lambda precision: emit(Report(i, Started(precision, provenance(device, node)))),
        on_end=lambda why: end(i, Status.DIVERGED if why else Status.COMPLETED, why),
    )


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
    def run(self, jobs: Iterable[Job], sink: Sink, fail_fast: bool = False) -> None:
        """Train every job, reporting each run to `sink`; on Ctrl-C, end the active ones as interrupted."""

    @abstractmethod
    def close(self) -> None:
        """Release what the executor started; safe to repeat."""


class _WriterFailed(BaseException):
    """The driver could not take a run's event: past `run_job`'s net for a broken run, since the
    run is not to blame and the sweep must stop (a BaseException, which that net lets through)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Inline(Executor):
    """One job at a time in this process (`--jobs 1`): nothing to start, data loaded once."""

    def __init__(self, device: str, threads: int, data: Callable[[RunConfig], Dataset]) -> None:
        super().__init__(device, threads)
        self.data = data

    def run(self, jobs: Iterable[Job], sink: Sink, fail_fast: bool = False) -> None:
        for job in jobs:
            for task in job.tasks:
                sink.start(task)
            ended: dict[int, Status] = {}
            halts: list[Halted] = []

            def emit(
                report: Report, job: Job = job, ended: dict[int, Status] = ended, halts: list[Halted] = halts
            ) -> None:
                task = job.tasks[report.run]
                try:
                    if isinstance(report.event, RunEnded):
                        sink.end(task, report.event.status, report.event.error)
                        ended[report.run] = report.event.status
                        if report.event.halt:
                            halts.append(halted(task, report.event.error))
                    else:
                        sink.event(task, report.event)
                except Exception as exc:  # the driver's failure (a full disk), not the run's
                    raise _WriterFailed(exc) from exc

            try:
                run_job(job, [self.data(t.cfg) for t in job.tasks], emit)
            except KeyboardInterrupt:
                for i, task in enumerate(job.tasks):
                    if i not in ended:
                        sink.end(task, Status.INTERRUPTED, "")
                raise
            except _WriterFailed as failed:  # stop the sweep as a pool's driver would; the run resumes
                raise failed.error from None
            if halts:  # its runs all ended, interrupted
                raise halts[0]
            if fail_fast and Status.FAILED in ended.values():
                return

    def close(self) -> None:
        pass  # nothing was started: runs train in this process


@dataclass
class _Active:
    """A job a worker trains: its slot, and the runs whose end it reported."""

    job: Job
    slot: int
    ended: set[int] = field(default_factory=set)


def _drop(pending: deque[Job], sink: Sink) -> None:
    """`--fail-fast`: the jobs not yet started are not started. Those waiting for another attempt
    after their worker died had started: their runs end interrupted, to resume next time."""
    for job in pending:
        if job.attempt > 1:
            for task in job.tasks:
                sink.end(task, Status.INTERRUPTED, "")
    pending.clear()


class Pool(Executor):
    """Jobs in workers, one per slot; each slot names the device its job trains on."""

    def __init__(self, slots: list[str], threads: int) -> None:
        super().__init__(slots[0], threads)
        self.slots = slots

    @property
    def at_once(self) -> int:
        return len(self.slots)

    @abstractmethod
    def submit(self, job: Job, slot: int) -> Any:
        """Start `job` in a worker, on its slot; returns its handle."""

    @abstractmethod
    def wait(self, handles: list[Any]) -> list[tuple[Any, Event]]:
        """Events of these workers, in order, waiting a moment (at most a second) for them. A worker
        that died before reporting the end of every run of its job yields `WorkerCrashed`."""

    @abstractmethod
    def cancel(self, handles: list[Any]) -> None: ...

    def run(self, jobs: Iterable[Job], sink: Sink, fail_fast: bool = False) -> None:
        pending = deque(jobs)
        free = list(range(len(self.slots)))
        active: dict[Any, _Active] = {}
        try:
            while pending or active:
                while pending and free:
                    slot = free.pop(0)
                    job = pending.popleft()
                    job = Job(tuple(replace(t, device=self.slots[slot]) for t in job.tasks))
                    for task in job.tasks:
                        sink.start(task)
                    active[self.submit(job, slot)] = _Active(job, slot)
                for handle, event in self.wait(list(active)):
                    if handle not in active:  # Ray: a task that failed after it reported every end
                        continue
                    a = active[handle]
                    match event:
                        case Report(i, RunEnded(status, error, halt)):
                            a.ended.add(i)
                            sink.end(a.job.tasks[i], status, error)
                            if halt:
                                raise halted(a.job.tasks[i], error)
                            if fail_fast and status is Status.FAILED:
                                _drop(pending, sink)
                        case Report(i, news):
                            sink.event(a.job.tasks[i], news)  # type: ignore[arg-type]
                        case WorkerCrashed(reason):
                            if not self._retried(a, reason, sink, pending) and fail_fast:
                                _drop(pending, sink)
                            a.ended = set(range(len(a.job.tasks)))
                    if len(a.ended) == len(a.job.tasks):
                        del active[handle]
                        free.append(a.slot)
        except (KeyboardInterrupt, Halted):  # every run still training stops, interrupted
            self.cancel(list(active))
            for a in active.values():
                for i, task in enumerate(a.job.tasks):
                    if i not in a.ended:
                        sink.end(task, Status.INTERRUPTED, "")
            raise

    @staticmethod
    def _retried(a: _Active, reason: str, sink: Sink, pending: deque[Job]) -> bool:
        """The runs of a dead worker's job that had not ended: tried again (True), or failed after
        MAX_ATTEMPTS (False)."""
        left = [t for i, t in enumerate(a.job.tasks) if i not in a.ended]
        if a.job.attempt < MAX_ATTEMPTS:
            for task in left:
                sink.retry(task, reason)
            pending.appendleft(a.job.retried(a.ended))
            return True
        for task in left:
            sink.end(task, Status.FAILED, f"worker died {MAX_ATTEMPTS} times; last: {reason}")
        return False
