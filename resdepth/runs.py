"""One training run: `RunConfig`, the value of every grid and recipe option for one (arch, depth,
seed), and `expand`, which turns a sweep's options into its runs.

A run's `run_id` hashes every field (the things that change its numbers; an option added later only
where it differs from what older rows meant), so runs of different sweeps can share one results folder
without mixing up. Its fields are also the runs.csv columns, in
this order, and `RunConfig.from_row` reads them back: every runs.csv row becomes a run the same way.
runs.csv rounds numbers to 6 decimals, so a run read back from a row whose recipe needed more (an lr
of 0.12345678) has another id: the row's own `run_id` column is the one that names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from resdepth.config import OPTIONS, PAPER_ITERATIONS, UNSET, WARMUP_DEPTH, SweepConfig
from resdepth.errors import UserError
from resdepth.models import CLASSIC_DEPTHS, NOT_APPLICABLE, NetSpec

if TYPE_CHECKING:
    from resdepth.data.store import Dataset


@dataclass(frozen=True)
class RunField:
    """One `RunConfig` field: the option it comes from, and what older results meant by it."""

    name: str
    option: str
    later: Any


# The fields of a run, in the order of the runs.csv columns: every grid and recipe option but those
# the sweep resolves into another (--iterations into epochs). `RunConfig` declares them with their
# types; a test holds the two to the same names in the same order.
RUN_FIELDS: tuple[RunField, ...] = tuple(
    RunField(meta.run or name, name, meta.later) for name, meta in OPTIONS.items() if meta.run is not None
)


@dataclass(frozen=True)
class RunConfig:
    """One training run, every option resolved: one arch, depth and seed; epochs, warm-up, width and
    shortcut made explicit; a classic net's residual-net options `NOT_APPLICABLE`."""

    arch: str
    depth: int
    family: str
    width: int  # 0 for a classic net
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
    warmup: bool  # whether this run warms up (the sweep's auto/always/none, resolved by depth)
    precision: str  # fp32 or bf16; auto only where each Ray node resolves its own

    def __post_init__(self) -> None:
        # The run id hashes JSON, where 1 and 1.0 differ: numbers take the type the options give them.
        for name in ("lr", "momentum", "weight_decay"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunConfig:
        """The run a runs.csv row (all text) records; a column an older resdepth did not write takes
        what its rows meant by it. A field that does not parse is a UserError naming the row."""
        values = {}
        for f in dataclasses.fields(cls):
            text = _text(row, f.name)
            try:
                values[f.name] = _parse(str(f.type), text)
            except ValueError:
                raise UserError(
                    f"runs.csv row {row.get('run_id', '?')}: {f.name} {text!r} is not a {f.type}"
                ) from None
        return cls(**values)

    def fields(self) -> dict[str, Any]:
        """Every field by name, in `RUN_FIELDS` order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    @property
    def run_id(self) -> str:
        values = self.fields()
        # Options added later are hashed only when they differ from what older rows meant, so the
        # runs of a results folder written before they existed keep their ids and still resume.
        for f in RUN_FIELDS:
            if f.later is not UNSET and values[f.name] in (f.later, NOT_APPLICABLE):
                del values[f.name]
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def spec(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> NetSpec:
        return NetSpec(
            self.arch,
            self.depth,
            family=self.family,
            width=self.width,
            shortcut=self.shortcut,
            num_classes=num_classes,
            in_channels=in_channels,
            input_size=input_size,
            norm=self.norm,
            activation=self.activation,
        )

    @property
    def name(self) -> str:
        return self.spec().name

    def split(self, whole: Dataset) -> Dataset:
        """The images this run trains, validates and tests on: the one place a run's split is made."""
        return whole.split(self.train_subset, self.val_split, self.seed, self.test_subset)


# The residual nets' model options: a classic net (LeNet-5, VGG-16) has none of them, so its rows say
# NOT_APPLICABLE (width 0) and it joins every recipe it shares the training settings with.
MODEL_FIELDS = ("family", "width", "shortcut", "norm", "activation")


def added_fields() -> dict[str, Any]:
    """Run fields added after results folders existed, with what an older row meant by each."""
    return {f.name: f.later for f in RUN_FIELDS if f.later is not UNSET}


def net_name(row: Mapping[Any, Any]) -> str:
    """The net's label from a row that names it: a runs.csv row, or a metrics.csv row (whose run
    fields are only those that name the net and its data)."""
    fields = ("arch", "depth", "norm", "activation")
    arch, depth, norm, activation = (_text(row, f) for f in fields)
    return NetSpec(arch, int(float(depth)), norm=norm, activation=activation).name


def _text(row: Mapping[Any, Any], field: str) -> str:
    """A row's text for `field`; where an older resdepth wrote none, what its rows meant by it."""
    text = row.get(field)
    if text is None or (text == "" and field in added_fields()):
        return added_value(field, str(row["arch"]))
    return str(text)


def added_value(field: str, arch: str) -> str:
    """What a runs.csv row written before `field` existed meant by it (as text): its `later` value,
    or for a classic net NOT_APPLICABLE where the field is a residual-net model option."""
    later = next(f.later for f in RUN_FIELDS if f.name == field)
    if later is UNSET:
        raise ValueError(f"runs.csv row lacks {field!r}, which every resdepth wrote")
    return NOT_APPLICABLE if arch in CLASSIC_DEPTHS and field in MODEL_FIELDS else str(later)


def _parse(kind: str, text: str) -> Any:
    """A runs.csv field's text as the value of its `RunConfig` annotation."""
    if kind.endswith("| None"):
        return None if text == "" else _parse(kind.removesuffix(" | None"), text)
    match kind:
        case "int":
            return int(float(text))
        case "float":
            return float(text)
        case "bool":
            if text not in ("True", "False"):
                raise ValueError(text)
            return text == "True"
        case "tuple[float, ...]":
            return tuple(float(m) for m in text.split())
    return text


def milestones_text(milestones: tuple[float, ...]) -> str:
    """How runs.csv writes the milestones (and `_parse` reads them back)."""
    return " ".join(f"{m:g}" for m in milestones)


def epochs_for(cfg: SweepConfig, train_size: int) -> int:
    """--epochs as given, else --iterations (default: the paper's 64k) rounded up to whole epochs."""
    if cfg.epochs is not None:
        return cfg.epochs
    per_epoch = math.ceil(train_size / cfg.batch_size)
    return math.ceil((cfg.iterations or PAPER_ITERATIONS) / per_epoch)


CIFAR_TRAIN_IMAGES = 50_000  # the paper trains on all of CIFAR-10's training set
PAPER_EPOCHS = epochs_for(SweepConfig(), CIFAR_TRAIN_IMAGES)  # 64k iterations at batch 128: 164 epochs


def grid(cfg: SweepConfig) -> Iterator[tuple[str, int, int]]:
    """(arch, depth, seed) of every run, in the order they train; a value given twice (`--depth 8,8`)
    is one run, not two runs writing the same rows."""
    for arch in dict.fromkeys(cfg.arch):
        for depth in dict.fromkeys(cfg.depths_for(arch)):
            for seed in dict.fromkeys(cfg.seeds):
                yield arch, depth, seed


def expand(cfg: SweepConfig, train_sizes: dict[str, int]) -> list[RunConfig]:
    """One RunConfig per (arch, depth, seed); `train_sizes` maps dataset -> training images used.

    Recipe options are copied as given, except those each run resolves for itself below.
    """
    runs = []
    for arch, depth, seed in grid(cfg):
        classic = arch in CLASSIC_DEPTHS
        spec = cfg.spec(arch, depth)
        dataset = cfg.dataset_for(arch)
        resolved: dict[str, Any] = {
            "arch": arch,
            "depth": depth,
            "seed": seed,
            "family": NOT_APPLICABLE if classic else cfg.family,
            "width": 0 if classic else spec.resolved_width,
            "shortcut": NOT_APPLICABLE if classic else spec.resolved_shortcut,
            "norm": NOT_APPLICABLE if classic else cfg.norm,
            "activation": NOT_APPLICABLE if classic else cfg.activation,
            "dataset": dataset,
            "epochs": epochs_for(cfg, train_sizes[dataset]),
            "warmup": not classic
            and (cfg.warmup == "always" or (cfg.warmup == "auto" and depth >= WARMUP_DEPTH)),
        }
        runs.append(RunConfig(**{f.name: resolved.get(f.name, getattr(cfg, f.option)) for f in RUN_FIELDS}))
    return runs
