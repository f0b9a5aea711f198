"""The single writer of a results folder: every executor's events end here, in the driver. Training,
wherever it runs, only reports epochs back; this turns them into rows (`results` says how a row is
written durably) and keeps runs.csv and the live display current."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import resdepth
from resdepth import faults, results
from resdepth.checkpoints import DamagedCheckpoint, load_checkpoint, recover
from resdepth.errors import UserError
from resdepth.events import LiveBoard
from resdepth.executors import MAX_ATTEMPTS, EpochDone, News, Outcome, Progress, Started, Task
from resdepth.lock import FolderLock
from resdepth.progress import Display
from resdepth.results import Status
from resdepth.runs import RunConfig, milestones_text

if TYPE_CHECKING:
    from resdepth.planner import PlannedRun


def missing_rows(cfg: RunConfig, state: dict[str, Any], logged: set[int]) -> list[dict[str, object]]:
    """The rows a run's checkpoint holds and metrics.csv lacks, as the driver would have written them."""
    fields = cfg.fields()
    net = {"run_id": cfg.run_id, **{c: fields[c] for c in results.NET_COLUMNS}}
    return [{**r, **net} for r in state.get("records", []) if r["epoch"] not in logged]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Writer:
    """The single writer of a results folder: every executor's events end here, in the driver."""

    def __init__(
        self,
        out: Path,
        planned: list[PlannedRun],
        display: Display,
        lock: FolderLock | None = None,
        board: LiveBoard | None = None,
    ) -> None:
        self.out = out
        self.lock = lock  # checked before every write: still ours?
        self.board = board  # TensorBoard files, fed with every row written
        self.display = display
        self.params = {p.cfg.run_id: p.params for p in planned}
        self.total = sum(not p.finished for p in planned)
        self.index: dict[str, int] = {}
        self.base: dict[str, dict[str, object]] = {}
        self.outcomes: list[Outcome] = []

    def start(self, task: Task) -> None:
        """Also on a retry. The run's rows are made to match its checkpoint, read again here (a dead
        worker may have saved more epochs than the plan saw): rows only the checkpoint holds are
        restored, the row past it goes, and the new attempt writes it again."""
        cfg = task.cfg
        self._check()
        recover(Path(task.checkpoint))  # a group save its dead worker had committed
        try:
            state = load_checkpoint(Path(task.checkpoint), cfg.run_id)
        except DamagedCheckpoint as exc:  # stop before a row is dropped
            raise UserError(f"cannot resume {cfg.name} seed {cfg.seed}: checkpoint {exc}") from None
        done = int(state["epoch"]) if state else 0
        self._check()
        lost = missing_rows(cfg, state, results.logged(self.out).get(cfg.run_id, set())) if state else []
        if lost:
            results.restore_rows(self.out, lost)
        before = results.read_runs(self.out).get(cfg.run_id, {})
        # A run resumed from its checkpoint, by this sweep or a later one, started when its first epoch did.
        started = (done and before.get("started_at")) or _now()
        # What the node that trained it last said of itself, until this attempt's node says its own.
        known = {c: before[c] for c in results.PROVENANCE if before.get(c)}
        if cfg.precision == "auto" and before.get("precision", "auto") != "auto":
            known["precision"] = before["precision"]
        base = self.base[cfg.run_id] = {
            **cfg.fields(),
            "run_id": cfg.run_id,
            "milestones": milestones_text(cfg.milestones),
            "params": self.params[cfg.run_id],
            "device": task.device,
            "threads": task.threads,
            "resdepth_version": resdepth.__version__,
            "started_at": started,
            **known,
        }
        results.drop_rows_after(self.out, cfg.run_id, done)
        results.write_run(self.out, {**base, "status": Status.RUNNING, "epochs_done": done})
        if self.board is not None:
            self.board.start(cfg.run_id, cfg.name, cfg.seed, cfg.fields())
        index = self.index.setdefault(cfg.run_id, len(self.index) + 1)
        self.display.start_run(cfg, index, self.total, done + 1)

    def event(self, task: Task, event: News) -> None:
        match event:
            case Started(precision, node):  # `auto` resolved, and the machine, as the node sees them
                self.base[task.cfg.run_id] |= {"precision": precision, **node}
                self._check()
                row = results.read_runs(self.out)[task.cfg.run_id]
                results.write_run(self.out, {**row, "precision": precision, **node})
            case EpochDone(record):
                faults.point("row-received")
                self._check()
                line = {**self.base[task.cfg.run_id], **asdict(record)}
                results.append_metrics(self.out, line)
                faults.point("row-written")
                if self.board is not None:
                    self.board.row(task.cfg.run_id, line)
                self.display.epoch(task.cfg, record)
            case Progress(window):
                self.display.step(task.cfg, window)

    def end(self, task: Task, status: Status, error: str) -> None:
        cfg = task.cfg
        self._check()
        summary = results.summary_fields(self.out, cfg.run_id)
        results.write_run(
            self.out,
            {**self.base[cfg.run_id], **summary, "status": status, "ended_at": _now(), "error": error},
        )
        self.display.end_run(cfg, status)
        self.outcomes.append(Outcome(cfg, status, error))

    def _check(self) -> None:
        if self.lock is not None:
            self.lock.verify()

    def retry(self, task: Task, reason: str) -> None:
        self.display.note(
            f"{task.cfg.name} seed {task.cfg.seed}: {reason}; attempt {task.attempt + 1} of "
            f"{MAX_ATTEMPTS} resumes from its last checkpoint"
        )
