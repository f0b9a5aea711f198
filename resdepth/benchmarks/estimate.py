"""How long a sweep's remaining runs will take here: a few real, timed training steps of each distinct
net on this device, scaled to the epochs left. The planner prints it; `resdepth bench` is the
benchmark proper."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from resdepth.data.augment import Normalizer
from resdepth.data.store import Dataset
from resdepth.runs import RunConfig
from resdepth.step import Engine, Stepper, make_optimizer
from resdepth.train import AUGMENTED, build

if TYPE_CHECKING:
    from resdepth.state import PlannedRun, Sweep


def estimate_seconds(sweep: Sweep, planned: list[PlannedRun], device: torch.device, engine: Engine) -> float:
    """Seconds to train what `planned` leaves, one run at a time, on `device`."""
    per_image: dict[tuple[str, int, str], float] = {}
    total = 0.0
    for p in planned:
        if p.finished:
            continue
        cfg = p.cfg
        key = (cfg.arch, cfg.depth, cfg.dataset)
        if key not in per_image:
            per_image[key] = _seconds_per_image(cfg, sweep.datasets[cfg.dataset], device, engine)
        data = sweep.split(cfg)
        val = 0 if data.val_y is None else len(data.val_y)
        # Evaluation is forward only: about a third of a training step's cost per image.
        images = len(data.train_y) + (len(data.test_y) + val) / 3
        total += (cfg.epochs - p.done_epochs) * images * per_image[key]
    return total


def _seconds_per_image(cfg: RunConfig, data: Dataset, device: torch.device, engine: Engine) -> float:
    """Three real training steps (augmentation included) on random pixels, timed once the engine is
    warm. Compilation is left out: its kernels run about as fast as a graph's, and it takes minutes."""
    model = build(cfg, data, device).train()
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    step = Stepper(
        model,
        optimizer,
        Normalizer(data.mean, data.std, device),
        cfg.precision,
        replace(engine, compile=False),
        cfg.batch_size,
    )
    step.set_lr(cfg.lr)
    g = torch.Generator(device=device).manual_seed(0)
    shape = (cfg.batch_size, data.channels, data.size, data.size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device, generator=g)
    labels = torch.randint(0, data.num_classes, (cfg.batch_size,), device=device, generator=g)
    augment = g if data.name in AUGMENTED else None
    for _ in range(step.warm_steps):
        step(images, labels, augment)
    started = time.perf_counter()
    for _ in range(3):
        loss, _ = step(images, labels, augment)
    loss.item()  # wait for the device
    return (time.perf_counter() - started) / (3 * cfg.batch_size)
