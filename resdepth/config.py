"""The sweep's options: defaults (He et al. §4.2), TOML merge, validation, expansion into runs.

A `SweepConfig` is what the user asked for; `expand` turns it into one `RunConfig` per
(arch, depth, seed). A run's `run_id` hashes every field that changes its numbers, so runs of
different sweeps can share one results folder without mixing up.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from resdepth.data.sources import DATASETS
from resdepth.errors import UserError
from resdepth.models import CLASSIC_DEPTHS, RESIDUAL_ARCHS, NetSpec, check_arch, validate

PAPER_ITERATIONS = 64_000
# The paper's warm-up: lr/10 until training error < 80%, for ResNet-110 and deeper.
WARMUP_DEPTH = 110
WARMUP_MAX_ITERATIONS = 400
WARMUP_ERROR = 80.0
WARMUP_WINDOW = 10  # mini-batches whose mean error decides that warm-up is over
# Classic nets train on the data they were designed for (lenet5: MNIST digits).
CLASSIC_DATASET = {"lenet5": "mnist"}
PRECISIONS = ("fp32", "bf16")
# auto: the paper's choice (depth >= 110 only); always: every plain and residual net, which short
# runs need because deep nets at lr 0.1 can take hundreds of iterations to start learning at all.
WARMUPS = ("auto", "always", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
LATER_OPTIONS = {"norm": "bn", "activation": "relu"}


@dataclass(frozen=True)
class RunConfig:
    """One training run. Every field but `out`-like ones changes the numbers, so all are hashed."""

    arch: str
    depth: int
    family: str
    width: int
    shortcut: str
    norm: str
    activation: str
    dataset: str
    seed: int
    train_subset: int | None
    val_split: int | None
    test_subset: int | None
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[float, ...]
    warmup: bool
    precision: str

    @property
    def run_id(self) -> str:
        fields = asdict(self)
        # Options added later are hashed only when not at the paper's value, so the runs of a
        # results folder written before they existed keep their ids and still resume.
        for key, paper in LATER_OPTIONS.items():
            if fields[key] in (paper, "-"):
                del fields[key]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def spec(self, num_classes: int, in_channels: int, input_size: int) -> NetSpec:
        return NetSpec(
            self.arch, self.depth, self.family, self.width, self.shortcut,
            num_classes, in_channels, input_size, self.norm, self.activation,
        )  # fmt: skip

    @property
    def name(self) -> str:
        return NetSpec(self.arch, self.depth, norm=self.norm, activation=self.activation).name


@dataclass
class SweepConfig:
    """Everything `resdepth sweep` takes; CLI options override the TOML file, which overrides these."""

    arch: list[str] = field(default_factory=lambda: ["plain", "resnet"])
    depth: list[int] = field(default_factory=lambda: [20, 32, 44, 56])
    family: str = "cifar"
    width: int | None = None
    shortcut: str | None = None
    norm: str = "bn"
    activation: str = "relu"
    dataset: str = "cifar10"
    data_dir: str | None = None
    train_subset: int | None = None
    val_split: int | None = None
    test_subset: int | None = None
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    warmup: str = "auto"
    seeds: list[int] = field(default_factory=lambda: [0])
    precision: str = "auto"  # bf16 where fast: matched fp32 within the seed spread (README)
    device: str = "auto"
    out: str = "results/sweep"

    def validate(self) -> None:
        for a in self.arch:
            check_arch(a)
        if not self.arch:
            raise UserError("--arch needs at least one architecture")
        if any(a in RESIDUAL_ARCHS for a in self.arch) and not self.depth:
            raise UserError("--depth needs at least one depth")
        if self.dataset not in DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if "alexnet" in self.arch:
            raise UserError(
                "alexnet needs 227-px images and no built-in dataset has them; "
                "use `resdepth describe --arch alexnet` to inspect it"
            )
        if self.epochs is not None and self.iterations is not None:
            raise UserError("give --epochs or --iterations, not both")
        _positive("--epochs", self.epochs)
        _positive("--iterations", self.iterations)
        _positive("--batch-size", self.batch_size)
        _positive("--train-subset", self.train_subset)
        _positive("--test-subset", self.test_subset)
        _positive("--width", self.width)
        if self.val_split is not None and self.val_split < 0:
            raise UserError(f"--val-split must be >= 0, got {self.val_split}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise UserError("--milestones are increasing fractions of training in (0, 1), e.g. 0.5,0.75")
        if self.warmup not in WARMUPS:
            raise UserError(f"--warmup must be one of {', '.join(WARMUPS)}, got {self.warmup!r}")
        check_precision(self.precision)
        if self.device not in DEVICES:
            raise UserError(f"--device must be one of {', '.join(DEVICES)}")
        if not self.seeds:
            raise UserError("--seeds needs at least one seed")
        for a in self.arch:
            for d in self.depths_for(a):
                validate(NetSpec(a, d, self.family, self.width, self.shortcut, norm=self.norm,
                                 activation=self.activation))  # fmt: skip

    def depths_for(self, arch: str) -> list[int]:
        return [CLASSIC_DEPTHS[arch]] if arch in CLASSIC_DEPTHS else list(self.depth)

    def dataset_for(self, arch: str) -> str:
        """lenet5 always trains on MNIST, except in the offline synthetic set used by tests."""
        if self.dataset == "synthetic":
            return self.dataset
        return CLASSIC_DATASET.get(arch, self.dataset)

    def to_toml(self) -> str:
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def check_precision(value: str) -> None:
    if value not in ("auto", *PRECISIONS):
        raise UserError(f"--precision must be auto, fp32 or bf16, got {value!r}")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{name} must be a positive number, got {value}")


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def parse_list(text: str, kind: type, option: str) -> list[Any]:
    """`20,32,44` -> [20, 32, 44], with an error that names the option and the bad item."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    out = []
    for item in items:
        try:
            out.append(kind(item))
        except ValueError:
            what = "whole numbers" if kind is int else "numbers" if kind is float else "names"
            raise UserError(f"{option} takes comma-separated {what}, got {item!r}") from None
    return out


FIELD_TYPES: dict[str, tuple[type, bool]] = {
    # name: (item type, is a list)
    "arch": (str, True), "depth": (int, True), "family": (str, False), "width": (int, False),
    "shortcut": (str, False), "norm": (str, False), "activation": (str, False), "dataset": (str, False),
    "data_dir": (str, False),
    "train_subset": (int, False), "val_split": (int, False), "test_subset": (int, False),
    "epochs": (int, False),
    "iterations": (int, False), "batch_size": (int, False), "lr": (float, False),
    "momentum": (float, False), "weight_decay": (float, False), "milestones": (float, True),
    "warmup": (str, False), "seeds": (int, True), "precision": (str, False), "device": (str, False),
    "out": (str, False),
}  # fmt: skip


def coerce(key: str, value: Any, origin: str) -> Any:
    """Check one option's type (from TOML or the command line) and normalise lists."""
    kind, is_list = FIELD_TYPES[key]
    option = f"{origin}{key.replace('_', '-') if origin == '--' else key}"
    if is_list:
        if isinstance(value, str):
            return parse_list(value, kind, option)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"{option} must be a list, got {value!r}")
        return [coerce_scalar(v, kind, option) for v in value]
    return coerce_scalar(value, kind, option)


def coerce_scalar(value: Any, kind: type, option: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, float):
        return value
    if isinstance(value, str) and kind is not str:
        return parse_list(value, kind, option)[0] if value.strip() else None
    raise UserError(f"{option} must be a {kind.__name__}, got {value!r}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in FIELD_TYPES:
            raise UserError(f"{path}: unknown key {key!r}; valid keys: {', '.join(FIELD_TYPES)}")
        out[name] = coerce(name, value, f"{path.name}: ")
    return out


def resolve(config_file: Path | None, cli: dict[str, Any]) -> SweepConfig:
    """Defaults, then the TOML file, then whatever the command line set (None means not given)."""
    values: dict[str, Any] = read_toml(config_file) if config_file else {}
    for key, value in cli.items():
        if value is not None:
            values[key] = coerce(key, value, "--")
    cfg = SweepConfig(**values)
    cfg.validate()
    return cfg


def epochs_for(cfg: SweepConfig, train_size: int) -> int:
    """--epochs as given, else --iterations (default: the paper's 64k) rounded up to whole epochs."""
    if cfg.epochs is not None:
        return cfg.epochs
    per_epoch = math.ceil(train_size / cfg.batch_size)
    return math.ceil((cfg.iterations or PAPER_ITERATIONS) / per_epoch)


def expand(cfg: SweepConfig, train_sizes: dict[str, int]) -> list[RunConfig]:
    """One RunConfig per (arch, depth, seed); `train_sizes` maps dataset -> training images used."""
    runs = []
    for arch in cfg.arch:
        dataset = cfg.dataset_for(arch)
        for depth in cfg.depths_for(arch):
            for seed in cfg.seeds:
                classic = arch in CLASSIC_DEPTHS
                spec = NetSpec(arch, depth, cfg.family, cfg.width, cfg.shortcut)
                runs.append(
                    RunConfig(
                        arch=arch,
                        depth=depth,
                        family="-" if classic else cfg.family,
                        width=0 if classic else spec.resolved_width,
                        shortcut="-" if classic else spec.resolved_shortcut,
                        norm="-" if classic else cfg.norm,
                        activation="-" if classic else cfg.activation,
                        dataset=dataset,
                        seed=seed,
                        train_subset=cfg.train_subset,
                        val_split=cfg.val_split,
                        test_subset=cfg.test_subset,
                        epochs=epochs_for(cfg, train_sizes[dataset]),
                        batch_size=cfg.batch_size,
                        lr=cfg.lr,
                        momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay,
                        milestones=tuple(cfg.milestones),
                        warmup=not classic
                        and (cfg.warmup == "always" or (cfg.warmup == "auto" and depth >= WARMUP_DEPTH)),
                        precision=cfg.precision,
                    )
                )
    return runs
