"""The sweep's options, each defined once, and the paper's recipe, readable in one place.

Every option is a field of `SweepConfig` with its type, default, help text and role. Everything else is
derived from those fields: the TOML keys and their type checks, the `resdepth sweep` command-line
options, the `runs.csv` columns and the run id. `RunConfig` (`resdepth.runs`) declares its typed
fields by hand, one per grid and recipe option, and a test holds the two together: a new option of
either role needs a field there too (docs/contributing.md, "Adding something").
Execution options (device, jobs, step engine, ...) never change the numbers and are never hashed.
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from resdepth.data.sources import DATASETS
from resdepth.errors import InvalidNet, UserError
from resdepth.models import CLASSIC_DEPTHS, RESIDUAL_ARCHS, NetSpec, check_arch, validate

# --- He et al. 2016, §4.2 (CIFAR-10): the parts of the recipe that are not options ----------------
PAPER_ITERATIONS = 64_000  # "terminate training at 64k iterations" (default length; --iterations)
LR_DECAY = 0.1  # "divide it by 10 at 32k and 48k iterations" (the fractions are --milestones)
CROP_PADDING = 4  # "4 pixels are padded on each side, and a 32x32 crop is randomly sampled"
# "In this case [110 layers], we find that the initial learning rate of 0.1 is slightly too large to
# start converging. So we use 0.01 to warm up the training until the training error is below 80%
# (about 400 iterations), and then go back to 0.1."
WARMUP_DEPTH = 110  # --warmup auto warms up nets this deep and deeper
WARMUP_LR_DIVISOR = 10  # lr 0.1 -> 0.01
WARMUP_ERROR = 80.0  # training error (%) that ends the warm-up ...
WARMUP_WINDOW = 10  # ... as the mean of this many mini-batches (ours: one batch can dip by chance)
WARMUP_MAX_ITERATIONS = 400  # "about 400 iterations": the warm-up never lasts longer

# Classic nets train on the data they were designed for (lenet5: MNIST digits).
CLASSIC_DATASET = {"lenet5": "mnist"}
PRECISIONS = ("fp32", "bf16")
# auto: the paper's choice (depth >= WARMUP_DEPTH only); always: every plain and residual net, which
# short runs need, because deep nets at lr 0.1 can take hundreds of iterations to start learning.
WARMUPS = ("auto", "always", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
EXECUTORS = ("local", "ray")
# A run seeds torch with seed x 1,000,003 + epoch (plus 2^40 for dropout), which must stay below 2^63.
MAX_SEED = 2**32 - 1


class Role(StrEnum):
    """What an option is to a run."""

    GRID = "grid"  # one run per combination of their values (arch x depth x seed); hashed
    RECIPE = "recipe"  # the same for every run of a sweep and changes its numbers; hashed
    EXECUTION = "execution"  # where and how the runs train; never changes the numbers, never hashed


UNSET: Any = object()


@dataclass(frozen=True)
class Meta:
    """What the command line, the TOML reader, `RunConfig` and the run id need to know of an option."""

    help: str
    role: Role
    run: str | None  # the RunConfig field it becomes (None: the sweep resolves it into another)
    later: Any = UNSET  # added after results folders existed: what their rows meant (not hashed)
    flag: str | None = None  # a boolean's command-line form, e.g. "--compile/--no-compile"


def option(
    default: Any,
    help: str,
    role: Role,
    *,
    run: str | None | Any = UNSET,
    later: Any = UNSET,
    flag: str | None = None,
) -> Any:
    """A `SweepConfig` field. Grid and recipe options become the `RunConfig` field of their own name
    unless `run` says otherwise; execution options become none."""
    if run is UNSET:
        run = None if role is Role.EXECUTION else ""
    meta = {"option": Meta(help, role, run, later, flag)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SweepConfig:
    """Everything `resdepth sweep` takes; the command line overrides the TOML file, which overrides
    these defaults: He et al. 2016 §4.2, CIFAR-10."""

    # --- what to train: one run per arch x depth x seed ----------------------------------------
    arch: list[str] = option(list(RESIDUAL_ARCHS), "plain,resnet (also lenet5, vgg16).", Role.GRID)
    depth: list[int] = option([20, 32, 44, 56], "Depths, e.g. 20,32,44,56 (6n+2: §4.2).", Role.GRID)
    # --- the model: §4.2's nets are cifar family, width 16, option-A shortcuts, BN and ReLU -----
    family: str = option("cifar", "cifar (§4.2) or imagenet (Table 1).", Role.RECIPE)
    width: int | None = option(None, "Channels of the first stage (cifar 16, imagenet 64).", Role.RECIPE)
    shortcut: str | None = option(None, "A (zero-pad, §4.2's CIFAR nets) or B (projection).", Role.RECIPE)
    norm: str = option(
        "bn", "bn (the paper) or none: no normalisation, He init alone.", Role.RECIPE, later="bn"
    )
    activation: str = option("relu", "relu (the paper), tanh or sigmoid.", Role.RECIPE, later="relu")
    # --- the data ----------------------------------------------------------------------------------
    dataset: str = option("cifar10", "cifar10, cifar100, mnist or synthetic.", Role.RECIPE)
    seeds: list[int] = option(
        [0], "Seeds, e.g. 0,1,2: init, data order, augmentation.", Role.GRID, run="seed"
    )
    train_subset: int | None = option(None, "Class-balanced subset of N training images.", Role.RECIPE)
    val_split: int | None = option(None, "Hold out N training images for validation.", Role.RECIPE)
    test_subset: int | None = option(None, "Evaluate on a class-balanced N test images.", Role.RECIPE)
    # --- the training recipe, §4.2 -------------------------------------------------------------------
    epochs: int | None = option(None, "Training length in epochs (default: from --iterations).", Role.RECIPE)
    # "terminate training at 64k iterations", rounded up to whole epochs: 164 on 50k images
    iterations: int | None = option(
        None, f"Training length in iterations (default {PAPER_ITERATIONS}).", Role.RECIPE, run=None
    )
    batch_size: int = option(128, "Mini-batch size.", Role.RECIPE)  # "a mini-batch size of 128"
    lr: float = option(0.1, "Initial learning rate.", Role.RECIPE)  # "We start with a learning rate of 0.1"
    momentum: float = option(0.9, "SGD momentum.", Role.RECIPE)  # "a momentum of 0.9"
    weight_decay: float = option(1e-4, "Weight decay.", Role.RECIPE)  # "a weight decay of 0.0001"
    # "divide it by 10 at 32k and 48k iterations" of 64k
    milestones: list[float] = option([0.5, 0.75], "Fractions of training where lr /= 10.", Role.RECIPE)
    warmup: str = option(
        "auto",
        f"lr/{WARMUP_LR_DIVISOR} until train error < {WARMUP_ERROR:g}% (<= {WARMUP_MAX_ITERATIONS} its): "
        f"auto (depth >= {WARMUP_DEPTH}, as §4.2), always, none.",
        Role.RECIPE,
    )
    # bf16 matched fp32 within the seed spread on real CIFAR-10 (docs/results.md); the paper trained in fp32
    precision: str = option(
        "auto", "auto (bf16 where the hardware runs it fast, else fp32), fp32 or bf16.", Role.RECIPE
    )
    # --- execution: where and how the runs train -----------------------------------------------
    data_dir: str | None = option(
        None, "Where datasets live (default: $RESDEPTH_DATA, else ~/.cache/resdepth).", Role.EXECUTION
    )
    offline: bool = option(False, "Never download data.", Role.EXECUTION, flag="--offline/--online")
    out: str = option("results/sweep", "Results folder.", Role.EXECUTION)
    device: str = option("auto", "auto, cpu, cuda or mps.", Role.EXECUTION)
    jobs: str = option(
        "1",
        "Runs at a time on this machine, each its own process; auto: 1 per GPU or per 4 CPUs.",
        Role.EXECUTION,
    )
    threads: int | None = option(
        None, "CPU threads per run (default: this machine's, divided by --jobs).", Role.EXECUTION
    )
    runs_per_gpu: int = option(1, "Runs sharing one GPU under --jobs.", Role.EXECUTION)
    executor: str = option("local", "local (this machine) or ray (a Ray cluster).", Role.EXECUTION)
    address: str | None = option(
        None, "Ray cluster to join (default: $RAY_ADDRESS, else a local instance).", Role.EXECUTION
    )
    cpus_per_run: float = option(1.0, "Ray: CPUs each run asks for.", Role.EXECUTION)
    gpus_per_run: float | None = option(
        None, "Ray: GPUs each run asks for, e.g. 0.5 (default 1 if the cluster has GPUs).", Role.EXECUTION
    )
    compile: bool = option(
        False,
        "torch.compile the model: +30% on an H100, after about a minute of compiling.",
        Role.EXECUTION,
        flag="--compile/--no-compile",
    )
    cuda_graphs: bool | None = option(
        None,
        "Replay each step from a CUDA graph (default: on CUDA).",
        Role.EXECUTION,
        flag="--cuda-graphs/--no-cuda-graphs",
    )
    pack: str = option(
        "1",
        "Train up to K runs that differ only in their seed as one K-times-wider model: the same runs, "
        "rows within round-off (docs/speed.md); auto: on one GPU the fastest K, timed as the sweep "
        "starts, else 1.",
        Role.EXECUTION,
    )
    fail_fast: bool = option(False, "Stop at the first failed run.", Role.EXECUTION, flag="--fail-fast")
    tensorboard: bool = option(
        False,
        "Also write TensorBoard event files into RESULTS/tensorboard as epochs arrive (resdepth[tensorboard]).",
        Role.EXECUTION,
        flag="--tensorboard",
    )

    def validate(self) -> None:
        if not self.arch:
            raise UserError("--arch needs at least one architecture")
        for a in self.arch:
            _net_ok(check_arch, a)
        if any(a in RESIDUAL_ARCHS for a in self.arch) and not self.depth:
            raise UserError("--depth needs at least one depth")
        _choice("dataset", self.dataset, DATASETS, "unknown dataset {value!r}; valid: {valid}")
        if "alexnet" in self.arch:
            raise UserError(
                "alexnet needs 227-px images and no built-in dataset has them; "
                "use `resdepth describe --arch alexnet` to inspect it"
            )
        if self.epochs is not None and self.iterations is not None:
            raise UserError("give --epochs or --iterations, not both")
        for name in ("epochs", "iterations", "batch_size", "train_subset", "test_subset", "width"):
            _positive(name, getattr(self, name))
        if self.val_split is not None and self.val_split < 0:
            raise UserError(f"--val-split must be >= 0, got {self.val_split}")
        if not 0 < self.lr < math.inf:
            raise UserError(f"--lr must be a positive finite number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.weight_decay < math.inf:
            raise UserError(f"--weight-decay must be a finite number >= 0, got {self.weight_decay}")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise UserError("--milestones are increasing fractions of training in (0, 1), e.g. 0.5,0.75")
        _choice("warmup", self.warmup, WARMUPS)
        check_precision(self.precision)
        _choice("device", self.device, DEVICES)
        self._validate_execution()
        if not self.seeds:
            raise UserError("--seeds needs at least one seed")
        check_seeds(self.seeds)
        for a in self.arch:
            for d in self.depths_for(a):
                _net_ok(validate, self.spec(a, d))

    def _validate_execution(self) -> None:
        _choice("executor", self.executor, EXECUTORS)
        for name in COUNT_OR_AUTO:
            value = getattr(self, name)
            if value != "auto" and not (value.isdigit() and int(value) >= 1):
                raise UserError(f"--{name} takes a positive number or auto, got {value!r}")
        if self.pack not in ("1", "auto") and (classic := [a for a in self.arch if a in CLASSIC_DEPTHS]):
            raise UserError(
                f"--pack is for the plain and residual nets; {classic[0]} trains alone (--pack 1)"
            )
        for name in ("threads", "runs_per_gpu"):
            _positive(name, getattr(self, name))
        if self.executor == "ray":
            if self.jobs != "1":
                raise UserError(
                    "--jobs is for the local executor; with Ray, size runs by --cpus-per-run/--gpus-per-run"
                )
            if not self.cpus_per_run > 0:
                raise UserError(f"--cpus-per-run must be above 0, got {self.cpus_per_run:g}")
            if self.gpus_per_run is not None and self.gpus_per_run < 0:
                raise UserError(f"--gpus-per-run must be >= 0, got {self.gpus_per_run:g}")
        elif self.address is not None or self.gpus_per_run is not None or self.cpus_per_run != 1.0:
            raise UserError("--address, --cpus-per-run and --gpus-per-run are for --executor ray")

    def spec(self, arch: str, depth: int) -> NetSpec:
        return NetSpec(
            arch,
            depth,
            family=self.family,
            width=self.width,
            shortcut=self.shortcut,
            norm=self.norm,
            activation=self.activation,
        )

    def depths_for(self, arch: str) -> list[int]:
        return [CLASSIC_DEPTHS[arch]] if arch in CLASSIC_DEPTHS else list(self.depth)

    def dataset_for(self, arch: str) -> str:
        """lenet5 always trains on MNIST, except in the offline synthetic set used by tests."""
        if self.dataset == "synthetic":
            return self.dataset
        return CLASSIC_DATASET.get(arch, self.dataset)

    def to_toml(self) -> str:
        """The options that say what to train and how, as a TOML file `--config` reads back."""
        lines = [
            f"{f.name} = {_toml_value(getattr(self, f.name))}"
            for f in fields(self)
            if getattr(self, f.name) is not None
        ]
        return "\n".join(lines) + "\n"


def _meta(f: Any) -> Meta:
    meta: Meta = f.metadata["option"]
    return meta


OPTIONS: dict[str, Meta] = {f.name: _meta(f) for f in fields(SweepConfig)}


# --- reading options from TOML and the command line --------------------------------------------


@cache
def option_types() -> dict[str, tuple[type, bool]]:
    """Each option's item type and whether it takes a list, read off `SweepConfig`'s annotations."""
    out = {}
    for name, hint in typing.get_type_hints(SweepConfig).items():
        if name not in OPTIONS:
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) is list:
            out[name] = (args[0], True)
        elif typing.get_origin(hint) in (types.UnionType, typing.Union):
            out[name] = (args[0], False)
        else:
            out[name] = (hint, False)
    return out


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


# Options that take a count or `auto`: text, which a whole number given as a number is too.
COUNT_OR_AUTO = ("jobs", "pack")


def coerce(key: str, value: Any, origin: str) -> Any:
    """Check one option's type (from TOML or the command line) and normalise lists."""
    kind, is_list = option_types()[key]
    option_name = f"{origin}{key.replace('_', '-') if origin == '--' else key}"
    if key in COUNT_OR_AUTO:  # `jobs = 2` in TOML or `sweep(pack=2)` means what `--pack 2` does
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise UserError(f"{option_name} takes a positive number or auto, got {value!r}")
        value = str(value)
    if is_list:
        if isinstance(value, str):
            return parse_list(value, kind, option_name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise UserError(f"{option_name} must be a list, got {value!r}")
        return [coerce_scalar(v, kind, option_name) for v in value]
    return coerce_scalar(value, kind, option_name)


def coerce_scalar(value: Any, kind: type, option: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{option} must be true or false, got {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, float):
        return value
    what = {int: "a whole number", float: "a number", str: "a string"}.get(kind, kind.__name__)
    raise UserError(f"{option} must be {what}, got {value!r}")


def shipped(name: str) -> Path:
    """A sweep config resdepth ships (`experiments/NAME.toml`, installed as package data)."""
    return Path(str(resources.files("resdepth.experiments") / f"{name}.toml"))


def shipped_names() -> list[str]:
    """The shipped configs by name, shortest recipe first as a reader meets them."""
    order = ["quick", "course", "longer", "paper20", "paper"]
    names = [
        Path(str(f)).stem
        for f in resources.files("resdepth.experiments").iterdir()
        if str(f).endswith(".toml")
    ]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def config_path(given: Path) -> Path:
    """`--config`: a TOML file, or the name of a shipped one (`quick`, `course`, `paper`, ...)."""
    if given.suffix or given.exists() or not shipped(str(given)).is_file():
        return given
    return shipped(str(given))


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
        if name not in OPTIONS:
            raise UserError(f"{path}: unknown key {key!r}; valid keys: {', '.join(OPTIONS)}")
        out[name] = coerce(name, value, f"{path.name}: ")
    return out


def resolve(config_file: Path | None, cli: Mapping[str, Any]) -> SweepConfig:
    """Defaults, then the TOML file, then whatever the command line set (None means not given)."""
    values: dict[str, Any] = read_toml(config_path(config_file)) if config_file else {}
    for key, value in cli.items():
        if value is not None:
            values[key] = coerce(key, value, "--")
    cfg = SweepConfig(**values)
    cfg.validate()
    return cfg


def check_seeds(seeds: list[int]) -> None:
    """Seeds torch and the data order can take, for sweep and diagnose alike."""
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise UserError(f"--seeds are whole numbers from 0 to {MAX_SEED}, got {seed}")


def check_precision(value: str) -> None:
    _choice("precision", value, ("auto", *PRECISIONS))


def _choice(name: str, value: str, valid: tuple[str, ...], message: str | None = None) -> None:
    if value not in valid:
        text = message or "--{option} must be one of {valid}, got {value!r}"
        raise UserError(text.format(option=name.replace("_", "-"), value=value, valid=", ".join(valid)))


def _net_ok(check: Callable[[Any], None], value: Any) -> None:
    """A model check, its InvalidNet reported as the user's option mistake it is here."""
    try:
        check(value)
    except InvalidNet as exc:
        raise UserError(str(exc)) from None


def _positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value}")


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)
