"""`resdepth bench`: images per second of resdepth's loop and the textbook loop, same process, same nets.

Each loop gets warm-up steps, then several timed windows; the median window is quoted. Pixels are
random CIFAR-shaped uint8 images: throughput does not depend on their values.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from resdepth.benchmarks import textbook
from resdepth.config import SweepConfig, check_precision, read_toml, shipped
from resdepth.data.augment import Normalizer
from resdepth.device import device_name, on_device, pick_device, resolve_precision
from resdepth.errors import UserError
from resdepth.models import RESIDUAL_ARCHS, NetSpec, build_model, validate
from resdepth.runs import CIFAR_TRAIN_IMAGES as CIFAR_TRAIN
from resdepth.runs import PAPER_EPOCHS, epochs_for
from resdepth.step import DEFAULT_ENGINE, Engine, Stepper, make_optimizer

CIFAR_TEST = 10_000
WINDOWS = 5
WARMUP_STEPS = 3  # after the engine's own warm-up (compilation, CUDA graph capture)


@dataclass
class Measurement:
    arch: str
    depth: int
    device: str
    precision: str
    resdepth: float  # img/s
    textbook: float
    norm: str = "bn"
    activation: str = "relu"
    engine: str = "eager"

    @property
    def ratio(self) -> float:
        return self.resdepth / self.textbook

    @property
    def label(self) -> str:
        return NetSpec(self.arch, self.depth, norm=self.norm, activation=self.activation).name


def _median_rate(
    step: Callable[[], None], batch: int, seconds: float, sync: Callable[[], None], warmup: int = WARMUP_STEPS
) -> float:
    for _ in range(warmup):
        step()
    sync()
    rates = []
    window = seconds / WINDOWS
    for _ in range(WINDOWS):
        started, images = time.perf_counter(), 0
        while time.perf_counter() - started < window:
            step()
            images += batch
        sync()
        rates.append(images / (time.perf_counter() - started))
    return statistics.median(rates)


def measure(
    arch: str,
    depth: int,
    device: torch.device,
    precision: str,
    seconds: float,
    *,
    batch: int = 128,
    norm: str = "bn",
    activation: str = "relu",
    engine: Engine = DEFAULT_ENGINE,
) -> Measurement:
    """Both loops on the same net (same init), each for `seconds` after its warm-up."""
    spec = NetSpec(arch, depth, norm=norm, activation=activation)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10 * batch, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (10 * batch,), generator=g)
    ours, label = _resdepth_rate(spec, images, labels, device, precision, seconds, engine)
    return Measurement(
        arch=arch,
        depth=depth,
        device=str(device),
        precision=precision,
        resdepth=ours,
        textbook=_textbook_rate(spec, images, labels, device, seconds),
        norm=norm,
        activation=activation,
        engine=label,
    )


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def _resdepth_rate(
    spec: NetSpec,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    precision: str,
    seconds: float,
    engine: Engine,
) -> tuple[float, str]:
    """resdepth's loop: the images on the device, augmented there, each step from `Stepper`."""
    batch = len(labels) // 10
    recipe = SweepConfig()  # the paper's SGD settings
    torch.manual_seed(0)
    model = on_device(build_model(spec), device)
    optimizer = make_optimizer(model.parameters(), recipe.lr, recipe.momentum, recipe.weight_decay)
    dev_images, dev_labels = images.to(device), labels.to(device)
    normalize = Normalizer(textbook.CIFAR_MEAN, textbook.CIFAR_STD, device)
    step = Stepper(model, optimizer, normalize, precision, engine, batch)
    step.set_lr(recipe.lr)
    dev_g = torch.Generator(device=device).manual_seed(0)
    cursor = [0]

    def fast() -> None:
        i = cursor[0] % 10
        cursor[0] += 1
        sl = slice(i * batch, (i + 1) * batch)
        step(dev_images[sl], dev_labels[sl], dev_g)

    rate = _median_rate(fast, batch, seconds, _sync(device), step.warm_steps + WARMUP_STEPS)
    return rate, Engine(engine.compile, step.graphed).label


def _textbook_rate(
    spec: NetSpec, images: torch.Tensor, labels: torch.Tensor, device: torch.device, seconds: float
) -> float:
    """The textbook loop: a DataLoader-style stream of CPU batches, copied over each step."""
    batch = len(labels) // 10
    recipe = SweepConfig()
    torch.manual_seed(0)
    ref = build_model(spec).to(device)
    ref_opt = torch.optim.SGD(
        ref.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    stream = textbook.batches(images, labels, batch)

    def slow() -> None:
        x, y = next(stream)
        textbook.step(ref, ref_opt, x.to(device), y.to(device))

    return _median_rate(slow, batch, seconds, _sync(device))


def epoch_seconds(rate: float) -> float:
    """One CIFAR-10 epoch: 50k training images plus the 10k test images (forward only, ~1/3 cost)."""
    return (CIFAR_TRAIN + CIFAR_TEST / 3) / rate


def paper_run_seconds(rate: float) -> float:
    """One net trained for the paper's PAPER_EPOCHS at `rate` training images per second."""
    return PAPER_EPOCHS * epoch_seconds(rate)


def paper_sweep_seconds(measured: list[Measurement], attr: str) -> float:
    """experiments/paper.toml's nets at PAPER_EPOCHS, from a per-depth linear fit of seconds per image."""
    paper = SweepConfig(**read_toml(shipped("paper")))
    epochs = epochs_for(paper, CIFAR_TRAIN)
    depths = np.array([m.depth for m in measured], dtype=float)
    cost = np.array([1.0 / getattr(m, attr) for m in measured])
    if len(set(depths)) >= 2:
        slope, intercept = np.polyfit(depths, cost, 1)
    else:
        slope, intercept = cost.mean() / depths.mean(), 0.0
    # plain and residual nets of one depth cost the same (the shortcut is a strided view and a pad).
    runs_per_depth = len(paper.arch) * len(paper.seeds)
    per_image = [max(intercept + slope * d, 1e-9) for d in paper.depth]
    return sum(epochs * epoch_seconds(1.0 / c) * runs_per_depth for c in per_image)


@dataclass
class Bench:
    """What `resdepth bench` measured, and on what."""

    hardware: str
    measurements: list[Measurement]
    paper_sweep_seconds: dict[str, float]  # by loop: resdepth, textbook


def run(
    archs: list[str],
    depths: list[int],
    *,
    device: str = "auto",
    precision: str = "auto",
    seconds: float = 10.0,
    norm: str = "bn",
    activation: str = "relu",
    compile: bool = False,
    cuda_graphs: bool | None = None,
) -> Bench:
    """Both loops on every arch x depth, and the projected paper sweep."""
    for a in archs:
        if a not in RESIDUAL_ARCHS:
            raise UserError(f"bench measures plain and resnet nets, not {a!r}")
        for d in depths:
            validate(NetSpec(a, d, norm=norm, activation=activation))
    check_precision(precision)
    if not seconds > 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    engine = Engine.asked(compile, cuda_graphs, dev, "local")
    measured = [
        measure(a, d, dev, prec, seconds, norm=norm, activation=activation, engine=engine)
        for a in archs
        for d in depths
    ]
    paper = {k: paper_sweep_seconds(measured, k) for k in ("resdepth", "textbook")}
    return Bench(device_name(dev), measured, paper)
