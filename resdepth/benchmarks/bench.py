"""`resdepth bench`: images per second of resdepth's loop and the textbook loop, same process, same nets.

Each loop gets warm-up steps, then several timed windows; the median window is quoted. Pixels are
random CIFAR-shaped uint8 images: throughput does not depend on their values.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from resdepth.benchmarks import textbook
from resdepth.config import SweepConfig, check_precision, read_toml, shipped
from resdepth.data.augment import Normalizer
from resdepth.device import device_name, on_device, pick_device, resolve_precision
from resdepth.errors import InvalidNet, UserError
from resdepth.models import RESIDUAL_ARCHS, NetSpec, build_model, validate
from resdepth.models.summary import check_memory
from resdepth.pack import Pack
from resdepth.runs import CIFAR_TRAIN_IMAGES as CIFAR_TRAIN
from resdepth.runs import PAPER_EPOCHS, epochs_for, expand
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
    runs: int = 1,
) -> tuple[float, str]:
    """resdepth's loop: the images on the device, augmented there, each step from `Stepper`; with
    `runs` above 1, that many runs packed into one model (`--pack`), each with its own batch. The
    rate counts every run's images: what a sweep trains per second."""
    batch = len(labels) // 10
    recipe = SweepConfig()  # the paper's SGD settings
    models, optimizers = [], []
    for seed in range(runs):
        torch.manual_seed(seed)
        models.append(on_device(build_model(spec), device))
        optimizers.append(
            make_optimizer(models[-1].parameters(), recipe.lr, recipe.momentum, recipe.weight_decay)
        )
    model: torch.nn.Module = models[0]
    optimizer: torch.optim.Optimizer = optimizers[0]
    if runs > 1:
        pack = Pack(models, optimizers, expand(recipe, {"cifar10": CIFAR_TRAIN})[0], device)
        model, optimizer = pack.model, pack.optimizer
    dev_images, dev_labels = images.to(device), labels.to(device)
    if runs > 1:  # every run draws its own batch (the same pixels: the rate does not depend on them)
        dev_images, dev_labels = (
            dev_images.expand(runs, *images.shape),
            dev_labels.expand(runs, *labels.shape),
        )
    normalize = Normalizer(textbook.CIFAR_MEAN, textbook.CIFAR_STD, device)
    step = Stepper(model, optimizer, normalize, precision, engine, batch)
    step.set_lr(recipe.lr)
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in range(runs)]
    cursor = [0]

    def fast() -> None:
        i = cursor[0] % 10
        cursor[0] += 1
        sl = slice(i * batch, (i + 1) * batch)
        if runs == 1:
            step(dev_images[sl], dev_labels[sl], generators[0])
        else:
            step(dev_images[:, sl], dev_labels[:, sl], generators)

    rate = _median_rate(fast, runs * batch, seconds, _sync(device), step.warm_steps + WARMUP_STEPS)
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


@dataclass(frozen=True)
class Setting:
    """What `resdepth bench` measures, and where: the nets, and the device, precision and engine
    asked for (each resolved on this machine by `resolved`)."""

    archs: list[str]
    depths: list[int]
    device: str = "auto"
    precision: str = "auto"
    seconds: float = 10.0
    norm: str = "bn"
    activation: str = "relu"
    compile: bool = False
    cuda_graphs: bool | None = None

    def specs(self) -> list[NetSpec]:
        """Every arch x depth, checked; an error in one line for one that cannot be benched."""
        for a in self.archs:
            if a not in RESIDUAL_ARCHS:
                raise UserError(f"bench measures plain and resnet nets, not {a!r}")
        specs = [
            NetSpec(a, d, norm=self.norm, activation=self.activation) for a in self.archs for d in self.depths
        ]
        for spec in specs:
            validate(spec)
        return specs

    def resolved(self) -> tuple[torch.device, str, Engine]:
        check_precision(self.precision)
        if not self.seconds > 0:
            raise UserError(f"--seconds must be positive, got {self.seconds}")
        dev = pick_device(self.device)
        return (
            dev,
            resolve_precision(self.precision, dev),
            Engine.asked(self.compile, self.cuda_graphs, dev, "local"),
        )


def run(setting: Setting) -> Bench:
    """Both loops on every arch x depth, and the projected paper sweep."""
    specs = setting.specs()
    dev, prec, engine = setting.resolved()
    measured = [
        measure(
            s.arch, s.depth, dev, prec, setting.seconds, norm=s.norm, activation=s.activation, engine=engine
        )
        for s in specs
    ]
    paper = {k: paper_sweep_seconds(measured, k) for k in ("resdepth", "textbook")}
    return Bench(device_name(dev), measured, paper)


@dataclass
class PackRates:
    """Sweep throughput (img/s, all runs together) of one net trained K runs to a model (`--pack`)."""

    label: str
    device: str
    precision: str
    engine: str
    rates: dict[int, float]  # K: img/s

    @property
    def best(self) -> int:
        return max(self.rates, key=lambda k: self.rates[k])


def pack_rates(
    spec: NetSpec,
    device: torch.device,
    precision: str,
    seconds: float,
    packs: list[int],
    engine: Engine,
    batch: int = 128,
) -> PackRates:
    """The sweep throughput of `spec` at each K of `packs`, each timed for `seconds`."""
    g = torch.Generator().manual_seed(0)
    shape = (10 * batch, spec.in_channels, spec.input_size, spec.input_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    labels = torch.randint(0, spec.num_classes, (10 * batch,), generator=g)
    rates, label = {}, ""
    for k in packs:
        rates[k], label = _resdepth_rate(spec, images, labels, device, precision, seconds, engine, runs=k)
    return PackRates(spec.name, str(device), precision, label, rates)


def run_packs(setting: Setting, packs: list[int]) -> tuple[str, list[PackRates]]:
    """`resdepth bench --pack`: every arch x depth at every K; and the hardware's name."""
    specs = setting.specs()
    if not packs or any(k < 1 for k in packs):
        raise UserError(f"--pack takes positive numbers of runs, got {','.join(map(str, packs))}")
    dev, prec, engine = setting.resolved()
    return device_name(dev), [pack_rates(s, dev, prec, setting.seconds, packs, engine) for s in specs]


AUTO_PACKS = (1, 2, 4, 8)  # what --pack auto chooses among, on a GPU
AUTO_SECONDS = 2.0  # timed per K, after its warm-up steps and CUDA graph capture


def auto_pack(
    spec: NetSpec, most: int, batch: int, device: torch.device, precision: str, engine: Engine
) -> int:
    """What `--pack auto` means for a sweep whose largest group of runs that could pack is `most`
    runs of `spec` (its deepest net): on a CPU 1, since packing measured no faster there
    (docs/speed.md), and nothing is timed; on a GPU the K of AUTO_PACKS (at most `most`, and
    whose memory fits) whose packed steps train the most images per second. Timed without
    torch.compile, which would compile every K."""
    if device.type != "cuda" or most < 2:
        return 1
    packs = []
    for k in (k for k in AUTO_PACKS if k <= most):
        try:
            check_memory(spec, batch * k, device)
        except InvalidNet:
            break
        packs.append(k)
    try:
        return pack_rates(
            spec, device, precision, AUTO_SECONDS, packs, replace(engine, compile=False), batch
        ).best
    except torch.OutOfMemoryError:  # the estimate was short: the safe choice
        return 1
