"""The single writer of a results folder: every executor's events end here, in the driver. Training,
wherever it runs, only reports back (started, progress, each epoch's row, the end); this turns the
reports into rows (`results` says how a row is written durably) and keeps runs.csv and the live
display current."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

from resdepth import faults, results
from resdepth.checkpoints import DamagedCheckpoint, keep_final_weights, load_checkpoint, recover
from resdepth.errors import UserError
from resdepth.events import LiveBoard
from resdepth.executors import MAX_ATTEMPTS, EpochDone, News, Outcome, Progress, Started, Task
from resdepth.lock import FolderLock
from resdepth.progress import Display
from resdepth.results import Status
from resdepth.runs import milestones_text
from resdepth.state import PlannedRun, missing_rows
from resdepth.version import __version__


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Writer:
    """One per sweep, in the driver. Every write first checks that the folder's lock is still this
    sweep's: one that lost its folder stops rather than writing over another sweep's rows."""

    def __init__(
        self,
        out: Path,
        planned: list[PlannedRun],
        display: Display,
        lock: FolderLock,
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
        # A resumed run's machine columns name the new machine once it has trained an epoch there.
        self.earlier: dict[str, dict[str, str]] = {}
        self.attempt: dict[str, dict[str, object]] = {}
        self.outcomes: list[Outcome] = []

    def start(self, task: Task) -> None:
        """Before a run trains, on its first attempt and on every retry, make its rows match its
        checkpoint, read again here (a dead worker may have saved more epochs than the plan saw):
        rows only the checkpoint holds are restored, the row past it goes, and the new attempt
        writes it again."""
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
        # A run resumed from its checkpoint, by this sweep or a later one, started when its first epoch
        # did, and was trained where its logged epochs were.
        resumed = done > 0
        started = (resumed and before.get("started_at")) or _now()
        earlier = {c: before[c] for c in results.MACHINE if resumed and before.get(c)}
        self.earlier[cfg.run_id] = earlier
        known: dict[str, object] = {"device": task.device, "threads": task.threads, **earlier}
        # Under `auto`, the row keeps the precision its epochs were trained in until the node says.
        if cfg.precision == "auto" and before.get("precision", "auto") != "auto":
            known["precision"] = before["precision"]
        base = self.base[cfg.run_id] = {
            **cfg.fields(),
            "run_id": cfg.run_id,
            "milestones": milestones_text(cfg.milestones),
            "params": self.params[cfg.run_id],
            "resdepth_version": __version__,
            "started_at": started,
            **known,
        }
        results.drop_rows_after(self.out, cfg.run_id, done)
        summary = results.summary_fields(self.out, cfg.run_id)
        results.write_run(self.out, {**base, **summary, "status": Status.RUNNING})
        if self.board is not None:
            self.board.start(cfg.run_id, cfg.name, cfg.seed, cfg.fields())
        index = self.index.setdefault(cfg.run_id, len(self.index) + 1)
        self.display.start_run(cfg, index, self.total, done + 1)

    def event(self, task: Task, event: News) -> None:
        match event:
            case Started(precision, provenance):  # `auto` resolved, and the machine, as the node sees them
                run = task.cfg.run_id
                attempt = {"device": task.device, "threads": task.threads, **provenance}
                now: dict[str, object] = {"precision": precision}
                if self.earlier[run]:  # named once it has trained an epoch
                    self.attempt[run] = attempt
                else:
                    now |= attempt
                self._write_run(run, now)
            case EpochDone(record):
                run = task.cfg.run_id
                faults.point("row-received")
                self._check()
                line = {**self.base[run], **asdict(record)}
                results.append_metrics(self.out, line)
                faults.point("row-written")
                if attempt := self.attempt.pop(run, {}):  # a resumed run's first epoch on this machine
                    self._write_run(run, results.merged_machines(self.earlier[run], attempt))
                if self.board is not None:
                    self.board.row(run, line)
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
        if status == Status.COMPLETED:  # recorded first: a kill before this is caught up by the next sweep
            self._check()
            weights = results.run_file(self.out, results.WEIGHTS, cfg.run_id)
            with suppress(DamagedCheckpoint):  # left where it is, for diagnose to name
                keep_final_weights(Path(task.checkpoint), weights, cfg.run_id)
        self.display.end_run(cfg, status)
        self.outcomes.append(Outcome(cfg, status, error))

    def _write_run(self, run: str, changes: Mapping[str, object]) -> None:
        self.base[run] |= changes
        self._check()
        results.write_run(self.out, {**results.read_runs(self.out)[run], **changes})

    def _check(self) -> None:
        self.lock.verify()

    def retry(self, task: Task, reason: str) -> None:
        self.display.note(
            f"{task.cfg.name} seed {task.cfg.seed}: {reason}; attempt {task.attempt + 1} of "
            f"{MAX_ATTEMPTS} resumes from its last checkpoint"
        )
