"""One training run, top to bottom: the paper's recipe, resumable at every epoch boundary.

The whole (sub)set lives on the device as uint8; each step augments its batch with tensor ops, and
loss and error counts are summed on the device and read back only every PROGRESS_EVERY steps (for
the live display and the start-of-training diagnostics), so the host rarely waits on the device. How a step executes (eager, compiled, CUDA graph) is `resdepth.step`'s
business. Data order and augmentation are drawn from a generator seeded by (seed, epoch),
which is what makes a resumed run write exactly the rows an uninterrupted one would.

Each epoch's row is reported before its checkpoint is saved: a kill between the two leaves a row
past the checkpoint, which the sweep drops on resume and the resumed run writes again, identically.
The checkpoint holds every row the run reported (`records`), so a row handed to a driver that died
before writing it is restored from the checkpoint rather than lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resdepth import faults
from resdepth.checkpoints import DamagedCheckpoint, load_checkpoint, save_checkpoint
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
    engine: Engine = DEFAULT_ENGINE,
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Train (or resume) one run, calling `on_start` with the precision it trains in (`auto`, under
    Ray, resolved here; a resumed run keeps its checkpoint's), `on_progress` every PROGRESS_EVERY
    steps, and `on_epoch` with each finished epoch, before its checkpoint is saved (see the module's
    docstring for why that order loses nothing)."""
    if cfg.batch_size > len(data.train_y):
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(data.train_y)} training images")
    model = build(cfg, data, device)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    schedule = Schedule(cfg, math.ceil(len(data.train_y) / cfg.batch_size))
    progress = resume(checkpoint, cfg, model, optimizer, schedule)
    if on_start is not None:
        on_start(progress.precision)
    normalize = Normalizer(data.mean, data.std, device)
    step = Stepper(model, optimizer, normalize, progress.precision, engine, cfg.batch_size)
    train = Batches(data.train_x.to(device), data.train_y.to(device), cfg, data.name in AUGMENTED)
    test = (data.test_x.to(device), data.test_y.to(device))
    val = None if data.val_x is None or data.val_y is None else (data.val_x.to(device), data.val_y.to(device))
    iteration, records = progress.iteration, progress.records

    for epoch in range(progress.epoch, cfg.epochs + 1):
        started = time.perf_counter()
        train_loss, train_error, lr, iteration = train_epoch(
            step, schedule, train, epoch, iteration, on_progress
        )
        train_seconds = time.perf_counter() - started
        test_loss, test_error = evaluate(model, *test, normalize, progress.precision)
        val_loss, val_error = evaluate(model, *val, normalize, progress.precision) if val else (None, None)
        record = EpochRecord(
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
            images_per_second=len(train.y) / train_seconds,
        )
        on_epoch(record)
        faults.point("row-sent")
        records.append(asdict(record))
        if not math.isfinite(train_loss):
            raise Diverged(f"training loss became {train_loss} in epoch {epoch}")
        state = {"run_id": cfg.run_id, "epoch": epoch, "iteration": iteration, "schedule": schedule.state()}
        state |= {"precision": progress.precision, "records": records}
        save_checkpoint(
            checkpoint, state | {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        )


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
    step: Stepper,
    schedule: Schedule,
    train: Batches,
    epoch: int,
    iteration: int,
    on_progress: Callable[[Window], None] | None,
) -> tuple[float, float, float, int]:
    """One epoch of SGD steps: its mean loss, error (%) and last learning rate, and the iterations
    done at its end. The device is waited on once, at the end (and every PROGRESS_EVERY steps when
    progress is reported, and each step of a warm-up, which watches the error)."""
    n = len(train.y)
    device = train.y.device
    step.model.train()
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device, dtype=torch.long)
    reported = (0.0, 0, 0)  # loss sum, wrong count and images at the last progress report
    lr = schedule.lr(iteration)
    for i, (images, labels, augment) in enumerate(train.epoch(epoch)):
        lr = schedule.lr(iteration)
        step.set_lr(lr)
        loss, batch_wrong = step(images, labels, augment)
        loss_sum += loss * len(labels)
        wrong += batch_wrong
        if schedule.warmup_end is None:  # the only per-step sync, for at most 400 steps
            schedule.observe(iteration, 100.0 * batch_wrong.item() / len(labels))
        iteration += 1
        if on_progress is not None and (i % PROGRESS_EVERY == PROGRESS_EVERY - 1 or i == train.per_epoch - 1):
            now = (loss_sum.item(), int(wrong.item()), min(n, (i + 1) * train.cfg.batch_size))
            images_seen = now[2] - reported[2]
            mean_loss, error = (
                (now[0] - reported[0]) / images_seen,
                100.0 * (now[1] - reported[1]) / images_seen,
            )
            on_progress(Window(iteration, epoch, lr, mean_loss, error))
            reported = now
    return loss_sum.item() / n, 100.0 * wrong.item() / n, lr, iteration
