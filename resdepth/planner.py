"""A sweep's plan: expand the grid, find what is done, estimate the rest, and hand it to an executor.

`prepare` plans (nothing trains; a dry run writes nothing in the results folder, though it fetches
the data as a sweep would unless `--offline`); `run` trains what the plan left to
do, its events written by `writer.Writer`, the single writer of a results folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from rich.console import Console

from resdepth import results
from resdepth.benchmarks.bench import auto_pack
from resdepth.benchmarks.estimate import estimate_seconds
from resdepth.config import SweepConfig
from resdepth.data.store import resolve_root
from resdepth.device import pick_device, resolve_precision
from resdepth.errors import UserError
from resdepth.events import LiveBoard
from resdepth.executors import (
    Executor,
    Job,
    Outcome,
    Task,
    make_executor,
)
from resdepth.files import remove_temporaries
from resdepth.lock import FolderLock
from resdepth.models import RESIDUAL_ARCHS
from resdepth.progress import Display, display
from resdepth.runs import RunConfig
from resdepth.state import PlannedRun, Sweep
from resdepth.step import Engine
from resdepth.writer import Writer


@dataclass
class Plan:
    """What `resdepth sweep` will do: the resolved config, every run's state, and where they train."""

    cfg: SweepConfig
    sweep: Sweep
    runs: list[PlannedRun]
    device: torch.device
    engine: Engine
    executor: Executor | None  # None on a dry run
    estimate: float | None  # seconds, one run at a time; timed only for the local executor
    repaired: list[str] = field(default_factory=list)  # runs whose stale status was repaired
    restored: dict[str, int] = field(default_factory=dict)  # rows restored from each run's checkpoint
    lock: FolderLock | None = None  # held from prepare to close (None on a dry run)

    def close(self) -> None:
        """Stop the executor (a Ray instance, worker processes) and let go of the results folder."""
        _release(self.executor, self.lock)

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def todo(self) -> list[PlannedRun]:
        return [p for p in self.runs if not p.finished]

    @property
    def where(self) -> str:
        if self.cfg.executor == "ray":
            at_once = self.executor.at_once if self.executor else "?"
            where = f"Ray ({at_once} at a time)"
        else:
            where = f"{self.device}, {self.cfg.jobs} at a time" if self.cfg.jobs != "1" else str(self.device)
        return where + (f", seeds packed {self.sweep.pack} to a model" if self.sweep.pack > 1 else "")


def _release(executor: Executor | None, lock: FolderLock | None) -> None:
    """Stop the executor, then let go of the folder even if stopping failed."""
    try:
        if executor is not None:
            executor.close()
    finally:
        if lock is not None:
            lock.release()


def prepare(cfg: SweepConfig, *, dry_run: bool = False, restart: Sequence[str] = ()) -> Plan:
    """Resolve the device and precision, load the data and plan every run. Unless `dry_run`, also
    lock the results folder (released by `Plan.close`), repair statuses a killed sweep left behind,
    restart what `restart` names (run ids, or `damaged`), start the executor and time the work left.

    A run whose checkpoint is damaged while metrics.csv holds its epochs is an error, not a silent
    fresh start: `--restart` it, and its rows move to discarded/.
    """
    device = pick_device(cfg.device)
    if not (cfg.executor == "ray" and cfg.precision == "auto"):  # Ray: each node resolves its own
        cfg = replace(cfg, precision=resolve_precision(cfg.precision, device))  # what run ids record
    engine = Engine.asked(cfg.compile, cfg.cuda_graphs, device, cfg.executor)
    out = Path(cfg.out)
    lock, executor = None, None
    if not dry_run:
        results.check_folder(out)
        lock = FolderLock(out)
        try:
            lock.acquire()
        except OSError as exc:
            raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    try:
        sweep = Sweep(cfg, device if cfg.executor == "local" else None)
        repaired: list[str] = []
        restored: dict[str, int] = {}
        if lock:
            results.prepare_files(out)
            remove_temporaries(out, results.FOLDERS)  # left by killed writes (a live plot's are left to it)
            sweep.recover()
        planned = sweep.plan()
        if lock:
            if lost := [r for p in planned for r in p.lost]:
                results.restore_rows(out, lost)
                restored = {p.cfg.run_id: len(p.lost) for p in planned if p.lost}
            repaired = results.repair_stale(out)
            sweep.keep_final_weights()
            if restored or repaired:
                planned = sweep.plan()
        planned = _restarted(sweep, planned, restart, dry_run)
        if dry_run:
            return Plan(cfg, sweep, planned, device, engine, None, None)
        for p in [p for p in planned if p.damaged and not p.logged]:  # nothing logged: nothing to lose
            planned[planned.index(p)] = sweep.restart(p)
        damaged = [p for p in planned if p.damaged]
        if damaged:
            names = ", ".join(
                f"{p.cfg.name} seed {p.cfg.seed} ({p.cfg.run_id}, {p.logged} epochs logged)" for p in damaged
            )
            raise UserError(
                f"cannot resume {names}: checkpoint {sweep.checkpoint(damaged[0].cfg)} {damaged[0].damaged}; "
                f"nothing was changed. `--restart damaged` trains {'it' if len(damaged) == 1 else 'them'} "
                f"again from scratch and keeps the logged rows in {out / results.DISCARDED}"
            )
        cfg = _auto_pack(cfg, sweep, planned, device, engine)
        executor = make_executor(cfg, device, sweep.split)
        estimate = estimate_seconds(sweep, planned, device, engine) if cfg.executor == "local" else None
        return Plan(cfg, sweep, planned, device, engine, executor, estimate, repaired, restored, lock)
    except BaseException:
        _release(executor, lock)
        raise


def _auto_pack(
    cfg: SweepConfig, sweep: Sweep, planned: list[PlannedRun], device: torch.device, engine: Engine
) -> SweepConfig:
    """`--pack auto` resolved for the runs left to train: timed on the deepest of them where a
    group of two or more could pack (on one GPU, `benchmarks.bench.auto_pack`); else 1 (and always
    under Ray, whose nodes may differ, and for the classic nets). Sets `sweep.pack` too, which
    `run` reads."""
    if cfg.pack != "auto":
        return cfg
    k, todo = 1, [p for p in planned if not p.finished]
    most = max((len(g) for g in packs(planned, len(cfg.seeds))), default=0)
    if todo and most >= 2 and cfg.executor == "local" and all(a in RESIDUAL_ARCHS for a in cfg.arch):
        deepest = max(todo, key=lambda p: p.cfg.depth).cfg
        data = sweep.datasets[deepest.dataset]
        spec = deepest.spec(data.num_classes, data.channels, data.size)
        k = auto_pack(spec, most, cfg.batch_size, device, cfg.precision, engine)
    sweep.pack = k
    return replace(cfg, pack=str(k))


def _restarted(
    sweep: Sweep, planned: list[PlannedRun], restart: Sequence[str], dry_run: bool
) -> list[PlannedRun]:
    """The plan with the runs `restart` names trained again from scratch (on a dry run, only shown so)."""
    ids = {p.cfg.run_id for p in planned}
    for token in restart:
        if token != "damaged" and token not in ids:
            raise UserError(
                f"--restart {token}: no run of this sweep has that id (see --dry-run); or say damaged"
            )
    out = []
    for p in planned:
        wanted = p.cfg.run_id in restart or ("damaged" in restart and p.damaged)
        if wanted and dry_run:
            p = replace(p, done_epochs=0, finished=False, damaged="", logged=0)
        elif wanted:
            p = sweep.restart(p)
        out.append(p)
    return out


def run(plan: Plan, display: Display) -> list[Outcome]:
    """Train every unfinished run of the plan; returns how each run it touched ended."""
    assert plan.executor is not None and plan.lock is not None, "a dry-run plan trains nothing"
    cfg, sweep = plan.cfg, plan.sweep
    results.save_config(sweep.out, cfg.to_toml())
    nonce = results.write_nonce(sweep.out)
    data_dir = None if cfg.dataset == "synthetic" else str(resolve_root(cfg.data_dir).absolute())
    tasks = {
        p.cfg.run_id: Task(
            cfg=p.cfg,
            data_dir=data_dir,
            checkpoint=str(sweep.checkpoint(p.cfg).absolute()),
            device=plan.executor.device,
            threads=plan.executor.threads,
            engine=plan.engine,
            offline=cfg.offline,
            out=str(sweep.out.absolute()),
            nonce=nonce,
        )
        for p in plan.todo
    }
    jobs = [Job(tuple(tasks[p.cfg.run_id] for p in group)) for group in packs(plan.runs, sweep.pack)]
    board = LiveBoard(sweep.out) if cfg.tensorboard else None
    writer = Writer(sweep.out, plan.runs, display, plan.lock, board)
    try:
        plan.executor.run(jobs, writer, cfg.fail_fast)
    finally:
        if board is not None:
            board.close()
    return writer.outcomes


def packs(planned: list[PlannedRun], most: int) -> list[list[PlannedRun]]:
    """The runs left to train, in groups that train as one model. Each net's runs (those that differ
    only in their seed) are dealt, in plan order, into packs of at most `most`, finished runs
    included, so a run has the same partners in every sweep of the same command and a rerun
    resumes the groups an interrupted sweep trained; a pack trains its unfinished runs, as one
    group per epoch they resume at (one run at a time in the plan's order when `most` is 1)."""
    if most == 1:
        return [[p] for p in planned if not p.finished]
    nets: dict[RunConfig, list[PlannedRun]] = {}
    for p in planned:
        nets.setdefault(p.cfg.replace(seed=0), []).append(p)
    groups: list[list[PlannedRun]] = []
    for runs in nets.values():
        for i in range(0, len(runs), most):
            by_epoch: dict[int, list[PlannedRun]] = {}
            for p in runs[i : i + most]:
                if not p.finished:
                    by_epoch.setdefault(p.done_epochs, []).append(p)
            groups += by_epoch.values()
    return groups


def run_shown(plan: Plan, console: Console) -> list[Outcome]:
    """`run`, shown on `console` (bars on a terminal, a line per epoch elsewhere), the display closed
    however the sweep ends: what `resdepth sweep` and `resdepth.sweep` do."""
    shown = display(console, len(plan.todo))
    try:
        return run(plan, shown)
    finally:
        shown.close()
