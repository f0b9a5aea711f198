"""What a results folder holds of each run of a sweep: done, partial (at which epoch), pending, or
damaged, read from runs.csv, metrics.csv and the checkpoints; the types the planner, its time
estimate and the writer share.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from resdepth import results
from resdepth.checkpoints import (
    DamagedCheckpoint,
    fits,
    keep_final_weights,
    load_checkpoint,
    load_weights,
    recover,
)
from resdepth.config import SweepConfig
from resdepth.data.store import Dataset, load
from resdepth.errors import UserError
from resdepth.models import NetSpec, build_model
from resdepth.models.summary import check_memory, count_params
from resdepth.results import Status
from resdepth.runs import RunConfig, expand


def missing_rows(cfg: RunConfig, state: dict[str, Any], logged: set[int]) -> list[dict[str, object]]:
    """The rows a run's checkpoint holds and metrics.csv lacks, as the driver would have written them."""
    fields = cfg.fields()
    net = {"run_id": cfg.run_id, **{c: fields[c] for c in results.NET_COLUMNS}}
    return [{**r, **net} for r in state.get("records", []) if r["epoch"] not in logged]


@dataclass
class PlannedRun:
    cfg: RunConfig
    params: int
    done_epochs: int  # epochs in its checkpoint (0: none)
    finished: bool
    logged: int = 0  # epochs metrics.csv holds, with those its checkpoint restores
    damaged: str = ""  # why its checkpoint cannot be used ("" when it can, or has none)
    lost: list[dict[str, object]] = field(default_factory=list)  # rows only its checkpoint holds

    @property
    def state(self) -> str:
        if self.finished:
            return "done"
        if self.damaged:
            return f"damaged checkpoint ({self.damaged}); {self.logged} epochs logged"
        return f"partial (resumes at epoch {self.done_epochs + 1})" if self.done_epochs else "pending"


class Sweep:
    """The datasets a sweep needs, its runs, and where their results go."""

    def __init__(self, cfg: SweepConfig, device: torch.device | None = None) -> None:
        self.cfg = cfg
        self.device = device  # where the runs train, when this machine trains them (memory check)
        # Runs trained as one model, at most; `--pack auto` is resolved later, by `prepare`'s
        # `_auto_pack` once the plan is known, and `run` reads it.
        self.pack = min(int(cfg.pack), len(cfg.seeds)) if cfg.pack.isdigit() else 1
        self.out = Path(cfg.out)
        self.datasets: dict[str, Dataset] = {}
        for arch in cfg.arch:
            name = cfg.dataset_for(arch)
            if name not in self.datasets:
                self.datasets[name] = load(name, cfg.data_dir, offline=cfg.offline)
        self._splits: dict[tuple[object, ...], Dataset] = {}
        sizes = {
            name: d.train_size(cfg.train_subset, cfg.val_split, cfg.test_subset)
            for name, d in self.datasets.items()
        }
        self.runs = expand(cfg, sizes)
        for name, size in sizes.items():
            if cfg.batch_size > size:
                raise UserError(
                    f"--batch-size {cfg.batch_size} is larger than the {size} training images of {name}"
                )

    def split(self, run: RunConfig) -> Dataset:
        """`run.split`, made once for all the runs that share it (every net of a seed)."""
        key = (run.dataset, run.seed, run.train_subset, run.val_split, run.test_subset)
        if key not in self._splits:
            self._splits[key] = run.split(self.datasets[run.dataset])
        return self._splits[key]

    def checkpoint(self, cfg: RunConfig) -> Path:
        return results.run_file(self.out, results.CHECKPOINTS, cfg.run_id)

    def weights(self, cfg: RunConfig) -> Path:
        return results.run_file(self.out, results.WEIGHTS, cfg.run_id)

    def keep_final_weights(self) -> list[str]:
        """Completed runs whose checkpoint a killed sweep left behind (or a sweep from before final
        weights were kept): their weights kept, their checkpoints gone. Only under the folder's lock.
        Returns their run ids; a damaged checkpoint is left where it is, for diagnose to name."""
        rows = results.read_runs(self.out)
        kept = []
        for cfg in self.runs:
            if rows.get(cfg.run_id, {}).get("status") != Status.COMPLETED:
                continue
            with contextlib.suppress(DamagedCheckpoint):
                if keep_final_weights(self.checkpoint(cfg), self.weights(cfg), cfg.run_id):
                    kept.append(cfg.run_id)
        return kept

    def recover(self) -> None:
        """Finish (or undo) the group saves of packed runs that a kill cut short: only under the
        folder's lock, where no worker is saving."""
        for cfg in self.runs:
            recover(self.checkpoint(cfg))

    def plan(self) -> list[PlannedRun]:
        """Every run's state. A run is done when runs.csv says so (a diverged run stops early) or its
        checkpoint and its rows both hold every epoch; rows that only its checkpoint holds (`lost`)
        count as logged, since a sweep restores them. Its checkpoint is damaged when it cannot be
        used, or when the rows are ahead of it by more than the one row a kill between row and
        checkpoint leaves (a missing checkpoint included), or it is ahead of the rows by rows it
        cannot restore (written before checkpoints held their rows)."""
        known = results.read_runs(self.out) if self.out.is_dir() else {}
        have = results.logged(self.out) if self.out.is_dir() else {}
        planned = []
        nets: dict[NetSpec, torch.nn.Module] = {}  # one per distinct net, not per run: seeds share it
        for cfg in self.runs:
            data = self.datasets[cfg.dataset]
            spec = cfg.spec(data.num_classes, data.channels, data.size)
            if spec not in nets:
                check_memory(spec, cfg.batch_size * self.pack, self.device)  # K runs at once
                nets[spec] = build_model(spec)
            model = nets[spec]
            epochs = have.get(cfg.run_id, set())
            finished = Status(known.get(cfg.run_id, {}).get("status") or Status.RUNNING).finished
            done, damaged, lost = 0, "", []
            try:  # a completed run's weights hold its rows as its checkpoint did
                state = load_checkpoint(self.checkpoint(cfg), cfg.run_id) or load_weights(
                    self.weights(cfg), cfg.run_id
                )
            except DamagedCheckpoint as exc:
                state, damaged = None, exc.why
            if state is not None:
                done = int(state["epoch"])
                lost = missing_rows(cfg, state, epochs)
                if not fits(state["model"], model):
                    damaged = f"does not fit {cfg.name}"
            n = len(epochs) + len(lost)
            if finished:
                damaged = ""  # a finished run never trains again
            elif not damaged and n > done + 1:
                damaged = f"at epoch {done}" if done else "missing"
            elif not damaged and n < done:
                damaged = f"at epoch {done}, but only {n} epochs are logged and it cannot restore the rest"
            done_all = finished or (done >= cfg.epochs and n >= cfg.epochs)
            planned.append(PlannedRun(cfg, count_params(model), done, done_all, n, damaged, lost))
        return planned

    def in_other_precision(self, planned: list[PlannedRun]) -> dict[str, RunConfig]:
        """Runs this sweep would start from scratch whose net, recipe and seed stand partly trained
        in the folder in another precision: `auto` resolves per machine, and a run id records what it
        resolved to, so the same command on another machine would leave them behind."""
        rows = results.read_runs(self.out) if self.out.is_dir() else {}
        logged = results.logged(self.out) if self.out.is_dir() else {}
        partial = [
            RunConfig.from_row(r)
            for run, r in rows.items()
            if logged.get(run) and not Status(r["status"] or Status.RUNNING).finished
        ]
        return {
            p.cfg.run_id: other
            for p in planned
            if not (p.finished or p.done_epochs)
            for other in partial
            if other.precision != p.cfg.precision and other.replace(precision=p.cfg.precision) == p.cfg
        }

    def restart(self, p: PlannedRun) -> PlannedRun:
        """Train `p` again from scratch: its rows and checkpoint move to discarded/, and runs.csv
        stops calling it done."""
        if p.logged or any(
            f.exists() or f.is_symlink() for f in (self.checkpoint(p.cfg), self.weights(p.cfg))
        ):
            results.discard_run(self.out, p.cfg.run_id, (self.checkpoint(p.cfg), self.weights(p.cfg)))
        row = results.read_runs(self.out).get(p.cfg.run_id)
        if row is not None:
            results.write_run(
                self.out,
                {**row, **results.summary_fields(self.out, p.cfg.run_id), "status": Status.INTERRUPTED},
            )
        return replace(p, done_epochs=0, finished=False, logged=0, damaged="")
