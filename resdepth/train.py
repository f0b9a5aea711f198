"""One training run, top to bottom: the paper's recipe, resumable at every epoch boundary.

The whole (sub)set lives on the device as uint8; each step augments its batch with tensor ops, and
loss and error counts are summed on the device and read back every PROGRESS_EVERY steps (for the
live display and the start-of-training diagnostics) and, during a warm-up, every step (its end
depends on the error), so the host rarely waits on the device. How a step executes (eager,
compiled, CUDA graph) is `resdepth.step`'s business. Data order and augmentation are drawn from a
generator seeded by (seed, epoch), which is what makes a resumed run write exactly the rows an
uninterrupted one would.

Each epoch's row is reported before its checkpoint is saved: a kill between the two leaves a row
past the checkpoint, which the sweep drops on resume and the resumed run writes again, identically.
The checkpoint holds every row the run reported (`records`), so a row handed to a driver that died
before writing it is restored from the checkpoint rather than lost.

Runs that differ only in their seed can train as a group (`--pack`): each is started, evaluated and
checkpointed as it would be alone, and one step moves them all through a packed copy
(`resdepth.pack`). A single run is a group of one, stepped on its own model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resdepth import faults
from resdepth.checkpoints import DamagedCheckpoint, load_checkpoint, save_checkpoints
from resdepth.config import (
    LR_DECAY,
    WARMUP_ERROR,
    WARMUP_LR_DIVISOR,
    WARMUP_MAX_ITERATIONS,
    WARMUP_WINDOW,
)
from resdepth.data.augment import Normalizer
from resdepth.data.store import Dataset
from resdepth.device import on_device, resolve_precision
from resdepth.models import build_model
from resdepth.models.summary import check_memory
from resdepth.pack import Pack
from resdepth.results import EpochRecord, Window
from resdepth.runs import RunConfig
from resdepth.step import DEFAULT_ENGINE, Engine, Stepper, autocast, make_optimizer

EVAL_BATCH = 1000
PROGRESS_EVERY = 20  # steps between progress reports (and the loss read back for them)
# MNIST is fed as LeNet-5 was: no crops or flips (a mirrored digit is another digit).
AUGMENTED = {"cifar10", "cifar100", "synthetic"}


class Diverged(Exception):
    """The loss became NaN or infinite; the epoch's row is written before this is raised."""


class Schedule:
    """Step decay by 10 at fractions of training, after the optional warm-up at lr/10.

    The warm-up ends once the mean error of the last WARMUP_WINDOW mini-batches is below
    WARMUP_ERROR (a single batch can dip below by chance), or after WARMUP_MAX_ITERATIONS.
    """

    def __init__(self, cfg: RunConfig, iterations_per_epoch: int) -> None:
        self.base = cfg.lr
        total = cfg.epochs * iterations_per_epoch
        self.milestones = [round(m * total) for m in cfg.milestones]
        self.warmup_end: int | None = None if cfg.warmup else 0
        self.recent: list[float] = []  # warm-up only: the last batch errors, kept in checkpoints

    def lr(self, iteration: int) -> float:
        if self.warmup_end is None or iteration < self.warmup_end:
            return self.base / WARMUP_LR_DIVISOR
        return self.base * LR_DECAY ** sum(iteration >= m for m in self.milestones)

    def observe(self, iteration: int, train_error: float) -> None:
        if self.warmup_end is not None:
            return
        self.recent = [*self.recent, train_error][-WARMUP_WINDOW:]
        settled = len(self.recent) == WARMUP_WINDOW and sum(self.recent) / WARMUP_WINDOW < WARMUP_ERROR
        if settled or iteration + 1 >= WARMUP_MAX_ITERATIONS:
            self.warmup_end = iteration + 1

    def state(self) -> dict[str, Any]:
        return {"warmup_end": -1 if self.warmup_end is None else self.warmup_end, "recent": self.recent}

    def load(self, state: dict[str, Any]) -> None:
        self.warmup_end = None if state["warmup_end"] < 0 else int(state["warmup_end"])
        self.recent = list(state["recent"])


DROPOUT_STREAM = 1 << 40  # keeps the dropout seeds apart from the data-order and augmentation seeds


def _seed_for(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalize: Normalizer, precision: str
) -> tuple[float, float]:
    """Mean loss and error (%) in eval mode, never augmented."""
    model.eval()
    device = x.device
    loss = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, len(y), EVAL_BATCH):
        xb = normalize(x[i : i + EVAL_BATCH]).contiguous(memory_format=torch.channels_last)
        yb = y[i : i + EVAL_BATCH]
        with autocast(device, precision):
            logits = model(xb)
        loss += F.cross_entropy(logits.float(), yb, reduction="sum")
        wrong += (logits.argmax(1) != yb).sum()
    n = len(y)
    return loss.item() / n, 100.0 * wrong.item() / n


def build(cfg: RunConfig, data: Dataset, device: torch.device) -> nn.Module:
    spec = cfg.spec(data.num_classes, data.channels, data.size)
    check_memory(spec, cfg.batch_size, device)
    torch.manual_seed(cfg.seed)
    return on_device(build_model(spec), device)


def train_run(
    cfg: RunConfig,
    data: Dataset,
    device: torch.device,
    checkpoint: Path,
    on_epoch: Callable[[EpochRecord], None],
    on_progress: Callable[[Window], None] | None = None,
) -> None:
    """Train (or resume) one run outside a sweep (diagnose's short runs, the tests), calling
    `on_progress` every PROGRESS_EVERY steps and `on_epoch` with each finished epoch, before its
    checkpoint is saved (see the module's docstring for why that order loses nothing)."""
    diverged = train_group([Member(cfg, data, checkpoint, on_epoch, on_progress)], device)
    if diverged:
        raise Diverged(diverged[cfg.run_id])


@dataclass
class Member:
    """One run of a group, as its caller hands it over: what to train, on what, and who hears of it."""

    cfg: RunConfig
    data: Dataset  # the run's own split
    checkpoint: Path
    on_epoch: Callable[[EpochRecord], None]
    on_progress: Callable[[Window], None] | None = None
    on_start: Callable[[str], None] | None = None
    on_end: Callable[[str], None] | None = None  # why it diverged, or "" when it trained every epoch


@dataclass
class Run:
    """A run as it trains: its own model, optimizer and schedule, its data on the device, and where
    it goes on from. A packed group steps a packed copy and hands the state back every epoch."""

    member: Member
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    progress: Resumed
    train: Batches
    test: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    normalize: Normalizer  # its dataset's; one for every run of a group (they share the dataset)

    @property
    def resumes_at(self) -> tuple[int, int, str]:
        """Runs that resume at the same point (and precision) can train packed."""
        return self.progress.epoch, self.progress.iteration, self.progress.precision


def start(member: Member, device: torch.device) -> Run:
    """Build the run's model from its seed, resume it from its checkpoint, put its data on the device."""
    cfg, data = member.cfg, member.data
    if cfg.batch_size > len(data.train_y):
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(data.train_y)} training images")
    model = build(cfg, data, device)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    schedule = Schedule(cfg, math.ceil(len(data.train_y) / cfg.batch_size))
    progress = resume(member.checkpoint, cfg, model, optimizer, schedule)
    if member.on_start is not None:
        member.on_start(progress.precision)
    train = Batches(data.train_x.to(device), data.train_y.to(device), cfg, data.name in AUGMENTED)
    test = (data.test_x.to(device), data.test_y.to(device))
    val = None if data.val_x is None or data.val_y is None else (data.val_x.to(device), data.val_y.to(device))
    normalize = Normalizer(data.mean, data.std, device)
    return Run(member, model, optimizer, schedule, progress, train, test, val, normalize)


def train_group(
    members: Sequence[Member], device: torch.device, engine: Engine = DEFAULT_ENGINE
) -> dict[str, str]:
    """Train (or resume) runs that differ only in their seed; those that resume at the same point
    train packed into one model (`resdepth.pack`), the others apart. Each member hears of its end
    (`on_end`) when it leaves: after its last epoch, or the epoch it diverged in. Returns the runs
    that diverged (run id: why)."""
    groups: dict[tuple[int, int, str], list[Run]] = {}
    for run in (start(m, device) for m in members):
        groups.setdefault(run.resumes_at, []).append(run)
    diverged: dict[str, str] = {}
    for together in groups.values():
        while together:
            # Empty: every run reached its last epoch, and all end. Else only the runs that diverged
            # end, and the others go on from the next epoch.
            diverged_now = _train_together(together, device, engine)
            for r in together:
                if r.member.on_end is not None and (not diverged_now or r.member.cfg.run_id in diverged_now):
                    r.member.on_end(diverged_now.get(r.member.cfg.run_id, ""))
            diverged |= diverged_now
            together = (
                [r for r in together if r.member.cfg.run_id not in diverged_now] if diverged_now else []
            )
    return diverged


def _train_together(runs: list[Run], device: torch.device, engine: Engine) -> dict[str, str]:
    """Train runs that resume at one point in lock-step, one step for all of them, to their last
    epoch; or to the end of an epoch in which some diverged, which are returned (run id: why), the
    others ready to go on from there."""
    first, cfg = runs[0], runs[0].member.cfg
    if first.progress.epoch > cfg.epochs:
        return {}
    pack = Pack([r.model for r in runs], [r.optimizer for r in runs], cfg, device) if len(runs) > 1 else None
    model, optimizer = (pack.model, pack.optimizer) if pack else (first.model, first.optimizer)
    step = Stepper(model, optimizer, first.normalize, first.progress.precision, engine, cfg.batch_size)
    iteration = first.progress.iteration
    for epoch in range(first.progress.epoch, cfg.epochs + 1):
        started = time.perf_counter()
        trained, iteration = train_epoch(step, runs, epoch, iteration)
        train_seconds = time.perf_counter() - started
        if pack is not None:
            pack.unpack([lr for _, _, lr in trained])
        diverged = {}
        for run, (train_loss, train_error, lr) in zip(runs, trained, strict=True):
            row = _epoch_row(run, epoch, iteration, lr, train_loss, train_error, started, train_seconds)
            run.member.on_epoch(row)
            faults.point("row-sent")
            run.progress.records.append(asdict(row))
            if not math.isfinite(train_loss):
                diverged[run.member.cfg.run_id] = f"training loss became {train_loss} in epoch {epoch}"
        save_checkpoints([_state(r, epoch, iteration) for r in runs if r.member.cfg.run_id not in diverged])
        if diverged:
            for r in runs:
                r.progress = replace(r.progress, epoch=epoch + 1, iteration=iteration)
            return diverged
    return {}


def _epoch_row(
    run: Run,
    epoch: int,
    iteration: int,
    lr: float,
    train_loss: float,
    train_error: float,
    started: float,
    train_seconds: float,
) -> EpochRecord:
    """The run's row for an epoch trained: its test (and validation) error in eval mode."""
    precision = run.progress.precision
    test_loss, test_error = evaluate(run.model, *run.test, run.normalize, precision)
    val_loss, val_error = evaluate(run.model, *run.val, run.normalize, precision) if run.val else (None, None)
    return EpochRecord(
        epoch=epoch,
        iteration=iteration,
        lr=lr,
        train_loss=train_loss,
        train_error=train_error,
        test_loss=test_loss,
        test_error=test_error,
        val_loss=val_loss,
        val_error=val_error,
        epoch_seconds=time.perf_counter() - started,
        images_per_second=len(run.train.y) / train_seconds,
    )


def _state(run: Run, epoch: int, iteration: int) -> tuple[Path, dict[str, Any]]:
    """The run's checkpoint after `epoch`: the same file whether it trained alone or packed."""
    state = {"run_id": run.member.cfg.run_id, "epoch": epoch, "iteration": iteration}
    state |= {"schedule": run.schedule.state(), "precision": run.progress.precision}
    state |= {"records": run.progress.records}
    return run.member.checkpoint, state | {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
    }


@dataclass
class Resumed:
    """Where a run goes on from: its next epoch, the iterations done, its rows, its precision."""

    epoch: int
    iteration: int
    records: list[dict[str, Any]]
    precision: str


def resume(
    checkpoint: Path, cfg: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule
) -> Resumed:
    """Load the run's checkpoint, if it has one, into its model, optimizer and schedule."""
    state = load_checkpoint(checkpoint, cfg.run_id)
    if state is None:
        return Resumed(1, 0, [], resolve_precision(cfg.precision, next(model.parameters()).device))
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load(state["schedule"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise DamagedCheckpoint(checkpoint, f"does not fit {cfg.name} ({exc.__class__.__name__})") from None
    precision = state.get("precision") or resolve_precision(cfg.precision, next(model.parameters()).device)
    return Resumed(state["epoch"] + 1, state["iteration"], list(state.get("records", [])), precision)


@dataclass
class Batches:
    """A run's training images on its device, and how it draws them: a fresh order (and crops and
    flips) each epoch, seeded by (seed, epoch) so a resumed run draws what an uninterrupted one does."""

    x: torch.Tensor
    y: torch.Tensor
    cfg: RunConfig
    augment: bool

    def __post_init__(self) -> None:
        self.generator = torch.Generator(device=self.x.device)
        self.per_epoch = math.ceil(len(self.y) / self.cfg.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Generator | None]]:
        self.generator.manual_seed(_seed_for(self.cfg.seed, epoch))
        # Dropout (VGG-16's classifier) draws from torch's global generator: seeded per epoch too,
        # on a stream of its own, so a resumed run drops the same units an uninterrupted one does.
        torch.manual_seed(_seed_for(self.cfg.seed, epoch) + DROPOUT_STREAM)
        order = torch.randperm(len(self.y), generator=self.generator, device=self.x.device)
        size = self.cfg.batch_size
        for step in range(self.per_epoch):
            idx = order[step * size : (step + 1) * size]
            yield self.x[idx], self.y[idx], self.generator if self.augment else None


def train_epoch(
    step: Stepper, runs: Sequence[Run], epoch: int, iteration: int
) -> tuple[list[tuple[float, float, float]], int]:
    """One epoch of SGD steps for runs that train together (one step for all): each run's mean
    loss, error (%) and last learning rate, and the iterations done at its end. The device is waited
    on once, at the end (and every PROGRESS_EVERY steps when progress is reported, and each step of
    a warm-up, which watches the error)."""
    first = runs[0].train
    n, size, device = len(first.y), first.cfg.batch_size, first.y.device
    step.model.train()
    shape = () if len(runs) == 1 else (len(runs),)
    loss_sum = torch.zeros(shape, device=device)
    wrong = torch.zeros(shape, device=device, dtype=torch.long)
    reported = [(0.0, 0, 0)] * len(runs)  # each run's loss sum, wrong count and images at its last report
    reporting = any(r.member.on_progress is not None for r in runs)
    for i, batches in enumerate(zip(*(r.train.epoch(epoch) for r in runs), strict=True)):
        lrs = tuple(r.schedule.lr(iteration) for r in runs)
        step.set_lr(lrs[0] if len(runs) == 1 else lrs)
        images, labels, augment = batches[0] if len(runs) == 1 else _stacked(batches)
        loss, batch_wrong = step(images, labels, augment)
        loss_sum += loss * labels.shape[-1]
        wrong += batch_wrong
        if any(r.schedule.warmup_end is None for r in runs):  # the only per-step sync, for at most 400 steps
            for r, w in zip(runs, batch_wrong.reshape(-1).tolist(), strict=True):
                r.schedule.observe(iteration, 100.0 * w / labels.shape[-1])
        iteration += 1
        if reporting and (i % PROGRESS_EVERY == PROGRESS_EVERY - 1 or i == first.per_epoch - 1):
            seen = min(n, (i + 1) * size)
            losses, wrongs = loss_sum.reshape(-1).tolist(), wrong.reshape(-1).tolist()
            for k, r in enumerate(runs):
                loss_then, wrong_then, seen_then = reported[k]
                if r.member.on_progress is not None:
                    images_seen = seen - seen_then
                    mean_loss = (losses[k] - loss_then) / images_seen
                    error = 100.0 * (wrongs[k] - wrong_then) / images_seen
                    r.member.on_progress(Window(iteration, epoch, lrs[k], mean_loss, error))
            reported = [(loss, w, seen) for loss, w in zip(losses, wrongs, strict=True)]
    losses, wrongs = loss_sum.reshape(-1).tolist(), wrong.reshape(-1).tolist()
    return [(loss / n, 100.0 * w / n, lr) for loss, w, lr in zip(losses, wrongs, lrs, strict=True)], iteration


def _stacked(
    batches: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Generator | None]],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Generator] | None]:
    """A packed step's batch: each run's images and labels, stacked, and each run's augmentation."""
    generators = [g for _, _, g in batches if g is not None]
    images = torch.stack([x for x, _, _ in batches])
    labels = torch.stack([y for _, y, _ in batches])
    return images, labels, generators or None
