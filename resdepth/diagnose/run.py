"""Running the measurements: on fresh nets (the init a run with that seed starts from) or on a sweep's
checkpoints, writing `diagnostics/*.csv` and their figures, and the summary the terminal shows."""

from __future__ import annotations

import contextlib
import copy
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from resdepth import results
from resdepth.analysis import recipe_headings
from resdepth.checkpoints import DamagedCheckpoint, fits, load_checkpoint, load_weights
from resdepth.config import SweepConfig
from resdepth.data.sources import SHAPES
from resdepth.data.store import Dataset, load
from resdepth.diagnose.measures import Inputs, Net, Rows, inputs
from resdepth.diagnose.registry import REGISTRY, START, START_ITERATIONS, measured, read, write, write_figures
from resdepth.diagnose.summaries import KEYS
from resdepth.errors import UserError
from resdepth.models import RESIDUAL_ARCHS, NetSpec, build_model, validate
from resdepth.models.resnet import ResNet
from resdepth.progress import duration
from resdepth.results import Window
from resdepth.runs import RunConfig, expand
from resdepth.train import train_run

Tables = dict[str, Rows]
Step = Callable[[str, int, int], None]  # (what is being measured, done, total): a progress bar's update
# Measured on a run's initial weights too (rebuilt from its seed), to set the trained net beside them.
AT_INIT = ("grads", "scale", "shatter")


def fresh(spec: NetSpec, seed: int) -> Net:
    """The net as a run with this seed starts (the sweep seeds torch the same way before building)."""
    if spec.arch not in RESIDUAL_ARCHS:
        raise UserError(f"diagnose measures plain and resnet nets, not {spec.arch!r}")
    validate(spec)
    torch.manual_seed(seed)
    model = build_model(spec)
    assert isinstance(model, ResNet)
    return Net(spec, seed, "init", model.eval())


@dataclass(frozen=True)
class Chosen:
    """Which runs of a results folder to measure, e.g. the finished 20-layer runs of a folder whose
    56-layer runs still train: for each RunConfig field given (arch, depth, norm, activation, seed),
    the values a run must have."""

    wanted: tuple[tuple[str, tuple[object, ...]], ...] = ()

    def __call__(self, run: RunConfig) -> bool:
        return all(getattr(run, field) in values for field, values in self.wanted)

    def __str__(self) -> str:
        return " and ".join(f"{field} {', '.join(map(str, values))}" for field, values in self.wanted)


def from_results(folder: Path, chosen: Chosen = Chosen()) -> Iterator[tuple[Net, Net, dict[str, str]]]:
    """(at init, trained) for every chosen plain/resnet run of a results folder that has a checkpoint."""
    runs = results.read_runs(folder)
    if not runs:
        raise UserError(f"{folder} has no {results.RUNS}; give a results folder a sweep wrote")
    recipes = recipe_headings(folder)
    found = False
    for run_id, row in runs.items():
        if row["arch"] not in RESIDUAL_ARCHS:
            continue
        run = RunConfig.from_row(row)
        if not chosen(run):
            continue
        try:  # a completed run's final weights; else an unfinished run's checkpoint, as far as it got
            state = load_weights(folder / results.WEIGHTS / f"{run_id}.pt", run_id) or load_checkpoint(
                folder / results.CHECKPOINTS / f"{run_id}.pt", run_id
            )
        except DamagedCheckpoint as exc:
            warnings.warn(f"skipping run {run_id}: {exc}", stacklevel=2)
            continue
        if state is None:
            continue
        channels, size, classes = SHAPES[run.dataset]
        init = fresh(run.spec(classes, channels, size), run.seed)
        init.run_id, init.recipe = run_id, recipes.get(run_id, "")
        if not fits(state["model"], init.model):
            warnings.warn(f"skipping run {run_id}: its weights do not fit {run.name}", stacklevel=2)
            continue
        trained = copy.deepcopy(init)
        trained.model.load_state_dict(state["model"])
        trained.state, trained.start = f"epoch {int(state['epoch'])}", init.model
        found = True
        yield init, trained, row
    if not found:
        which = f"a plain or resnet run of {chosen}" if chosen.wanted else "a plain or resnet run"
        raise UserError(f"{folder} has no weights or checkpoint of {which} to diagnose")


def measure(net: Net, data: Inputs, what: list[str], step: Step) -> Tables:
    return {name: measured(name)(net, data, _steps(net, name, step)) for name in what}


def _steps(net: Net, name: str, step: Step) -> Callable[[int, int], None]:
    label = f"{net.label} seed {net.seed} ({net.state}): {name}"
    return lambda done, total: step(label, done, total)


def diagnose_results(
    folder: Path,
    chosen: Chosen,
    what: list[str],
    data_dir: str | None,
    test_subset: int | None,
    progress: Callable[[str], None],
    step: Step,
) -> Tables:
    """`AT_INIT` at init and trained; the rest on the trained nets only."""
    tables: Tables = {w: [] for w in what}
    datasets: dict[str, Dataset] = {}
    for init, trained, row in from_results(folder, chosen):
        name = row["dataset"]
        if name not in datasets:
            datasets[name] = load(name, data_dir, offline=True)
        run = RunConfig.from_row(row)
        split = run.replace(test_subset=test_subset or run.test_subset).split(datasets[name])
        data = inputs(split)
        progress(f"{trained.label} seed {trained.seed} ({trained.run_id}, {trained.state})")
        _announce(trained, data, what, progress)
        for key in AT_INIT:
            if key in what:
                tables[key] += measured(key)(init, data, _steps(init, key, step))
        for key, rows in measure(trained, data, what, step).items():
            tables[key] += rows
    return tables


def diagnose_fresh(
    specs: list[NetSpec],
    seeds: list[int],
    what: list[str],
    data: Dataset,
    progress: Callable[[str], None],
    step: Step,
) -> Tables:
    tables: Tables = {w: [] for w in what}
    batches = inputs(data)
    for spec in specs:
        for seed in seeds:
            net = fresh(spec, seed)
            progress(f"{spec.name} seed {seed} (init)")
            _announce(net, batches, what, progress)
            for key, rows in measure(net, batches, what, step).items():
                tables[key] += rows
    return tables


def _announce(net: Net, data: Inputs, what: list[str], progress: Callable[[str], None]) -> None:
    """Say how long each measurement that takes a while will take, before it starts."""
    for name in what:
        seconds = REGISTRY[name].seconds
        if seconds is not None:
            points, estimate = seconds(net, data)
            progress(f"{net.label}'s {name}: {points}, about {duration(estimate)}")


class _Enough(Exception):
    """Raised from the progress callback once a start-of-training run has done its iterations."""


def start_of_training(
    specs: list[NetSpec], seeds: list[int], iterations: int, data: Dataset, progress: Callable[[str], None]
) -> Rows:
    """The first `iterations` of each net trained by the paper's recipe on the whole training split,
    in fp32: the mean loss and error of every PROGRESS_EVERY mini-batches (He et al. §4.2 train
    ResNet-56 at lr 0.1 from the first step; a net that starts slowly sits at loss ln 10)."""
    rows: Rows = []
    for spec in specs:
        for seed in seeds:
            net = fresh(spec, seed)  # the same checks (and the same init) as the other measurements
            sweep = SweepConfig(
                arch=[spec.arch],
                depth=[spec.depth],
                seeds=[seed],
                dataset=data.name,
                norm=spec.norm,
                activation=spec.activation,
                precision="fp32",
            )
            (cfg,) = expand(sweep, {data.name: len(data.train_y)})
            net.state, net.run_id = "start", cfg.run_id
            progress(f"{spec.name} seed {seed} (first {iterations} iterations)")

            def record(w: Window, net: Net = net) -> None:
                rows.append({**net.key, **asdict(w)})
                if w.iteration >= iterations:
                    raise _Enough

            with tempfile.TemporaryDirectory() as folder, contextlib.suppress(_Enough):
                train_run(cfg, data, torch.device("cpu"), Path(folder) / "c.pt", lambda _: None, record)
    return rows


@dataclass
class Diagnosis:
    folder: Path  # where diagnostics/ and figures/ went
    tables: Tables
    written: list[Path]


def run(
    results_path: Path | None = None,
    *,
    specs: list[NetSpec] | None = None,
    seeds: list[int] | None = None,
    chosen: Chosen = Chosen(),
    what: list[str],
    iterations: int = START_ITERATIONS,
    dataset: str = "cifar10",
    data_dir: str | None = None,
    test_subset: int | None = None,
    out: Path | None = None,
    offline: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    step: Step = lambda *_: None,
) -> Diagnosis:
    """Measure a results folder's `chosen` runs (their weights or checkpoints) or fresh `specs` x
    `seeds`, and write the CSVs and figures: into the results folder, or into `out` (default
    results/diagnose)."""
    for w in what:
        if w not in REGISTRY:
            raise UserError(f"--what takes {', '.join(REGISTRY)}; got {w!r}")
    if test_subset is not None and test_subset <= 0:
        raise UserError(f"--test-subset must be a positive number, got {test_subset}")
    if iterations <= 0:
        raise UserError(f"--iterations must be a positive number, got {iterations}")
    if results_path is not None and START in what:
        raise UserError(
            "--what start trains fresh nets from their seed; give --arch/--depth, not a results folder"
        )
    if results_path is not None:
        if not results_path.is_dir():
            raise UserError(f"{results_path} is not a folder; give a results folder a sweep wrote")
        folder = results_path
        tables = diagnose_results(folder, chosen, what, data_dir, test_subset, progress, step)
    else:
        for spec in specs or []:
            fresh(spec, 0)  # every net is checked before any data is loaded
        whole = load(dataset, data_dir, offline=offline)
        folder = out or Path("results/diagnose")
        results.check_folder(folder)
        looked = [w for w in what if w != START]
        tables = (
            diagnose_fresh(
                specs or [], seeds or [0], looked, whole.split(None, None, 0, test_subset), progress, step
            )
            if looked
            else {}
        )
        if START in what:
            tables[START] = start_of_training(specs or [], seeds or [0], iterations, whole, progress)
    written = [write(folder, name, rows) for name, rows in tables.items()]
    frames = {name: frame for name, frame in read(folder).items() if name in tables}
    written += write_figures(folder, frames)
    return Diagnosis(folder, tables, written)


def summaries(tables: Tables) -> dict[str, pd.DataFrame]:
    """One line per net and state for each measurement, mean over seeds: what the terminal shows."""
    out: dict[str, pd.DataFrame] = {}
    for name, rows in tables.items():
        if rows:
            f = pd.DataFrame(rows)
            out[name] = REGISTRY[name].summary(f).reindex(pd.MultiIndex.from_frame(f[KEYS].drop_duplicates()))
    return out
