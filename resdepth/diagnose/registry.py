"""Each measurement of `resdepth diagnose` in one entry: the columns of its CSV, how it measures one
net, the line the terminal shows per net, and its figure. A new measurement is one entry here and
its functions; the command's `--what`, the CSVs, the summaries, the figures and the results-folder
page all read this table."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from resdepth import results
from resdepth.diagnose import figures, measures, summaries
from resdepth.diagnose.measures import Inputs, Net, Rows, Tick
from resdepth.files import inside
from resdepth.results import DIAGNOSTICS, Window
from resdepth.style import figure_path, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

START = "start"  # trains fresh nets; every other measurement only looks at a net
START_ITERATIONS = 300  # `--what start`: how far each fresh net trains, by default
# Every row starts with the net it measured and its state (`init` or `epoch N`); not metrics.csv's
# results.NET_COLUMNS, which name a run's net and data.
NET_STATE_COLUMNS = ("net", "arch", "depth", "norm", "activation", "seed", "state", "run_id")
NET_STATE_NUMBERS = ("depth", "seed")  # the others are names


@dataclass(frozen=True)
class Measurement:
    columns: tuple[str, ...]  # of its CSV, after NET_STATE_COLUMNS
    measure: Callable[[Net, Inputs, Tick], Rows] | None  # on one net (None: the start, which trains)
    summary: Callable[[pd.DataFrame], pd.DataFrame]  # one line per net and state
    figure: Callable[[pd.DataFrame], Figure]
    help: str  # what `--what NAME` measures
    by_default: bool = True  # measured without --what (not the ones that take minutes a net)
    # (what it will evaluate, about how many seconds) for one net, said before a measurement that
    # takes a while; one step timed
    seconds: Callable[[Net, Inputs], tuple[str, float]] | None = None
    text: tuple[str, ...] = ()  # its columns of names and flags; every other one holds numbers


REGISTRY: dict[str, Measurement] = {
    "grads": Measurement(
        ("layer", "name", "grad_norm", "weight_norm"),
        lambda net, d, _: measures.grad_norms(net, d.train_x, d.train_y),
        summaries.grads,
        figures.grads_figure,
        "gradient norm per layer",
        text=("name",),
    ),
    "responses": Measurement(
        ("layer", "name", "std"),
        lambda net, d, _: measures.responses(net, d.test_x),
        summaries.responses,
        figures.responses_figure,
        "layer responses (He et al. Fig. 7)",
        text=("name",),
    ),
    "lesion": Measurement(
        ("kind", "block", "k", "sample", "error"),
        lambda net, d, tick: measures.lesions(net, d.test_x, d.test_y, tick=tick),
        summaries.lesion,
        figures.lesion_figure,
        "deleting blocks (Veit et al.)",
        text=("kind",),
    ),
    "identity": Measurement(
        ("grown_to", "max_abs_diff", "bitwise_equal", "grown_output_spread", "error", "grown_error"),
        lambda net, d, _: measures.identity(net, d.test_x, d.test_y),
        summaries.identity,
        figures.identity_figure,
        "the net grown by zeroed blocks, unchanged",
        text=("bitwise_equal",),
    ),
    "scale": Measurement(
        ("layer", "name", "std", "rms", "loss"),
        lambda net, d, _: measures.scale(net, d.train_x, d.train_y),
        summaries.scale,
        figures.scale_figure,
        "std of the residual stream and the logits",
        text=("name",),
    ),
    "shatter": Measurement(
        ("lag", "correlation"),
        lambda net, d, _: measures.shatter(net, d.test_x),
        summaries.shatter,
        figures.shatter_figure,
        "shattered gradients: how alike the input gradients are along a line between two test images (Balduzzi et al.)",
    ),
    "paths": Measurement(
        ("blocks", "k", "paths", "sample", "grad_norm"),
        lambda net, d, tick: measures.paths(net, d.train_x, d.train_y, tick=tick),
        summaries.paths,
        figures.paths_figure,
        "the gradient carried by paths of each length k through a ResNet's blocks (Veit et al.)",
        seconds=lambda net, d: measures.paths_seconds(net, d.train_x, d.train_y),
    ),
    "landscape": Measurement(
        ("kind", "alpha", "beta", "loss", "error", "direction_seed", "images"),
        lambda net, d, tick: measures.landscape(net, d.train_x, d.train_y, tick=tick),
        summaries.landscape,
        figures.landscape_figure,
        "the training loss around the weights along filter-normalised random directions, 1-D and 2-D, "
        "and along the path from init (Li et al.; minutes a net, so only when asked)",
        by_default=False,
        seconds=lambda net, d: measures.landscape_seconds(net, d.train_x, d.train_y),
        text=("kind",),
    ),
    START: Measurement(
        tuple(f.name for f in fields(Window)),
        None,
        summaries.start,
        figures.start_figure,
        "the first --iterations of training, loss and error per 20 iterations (fresh nets)",
    ),
}
LOOKS = tuple(
    name for name, m in REGISTRY.items() if m.measure is not None and m.by_default
)  # without --what


def columns(name: str) -> tuple[str, ...]:
    return (*NET_STATE_COLUMNS, *REGISTRY[name].columns)


def measured(name: str) -> Callable[[Net, Inputs, Tick], Rows]:
    measure = REGISTRY[name].measure
    assert measure is not None, f"{name} trains; it does not measure one net"
    return measure


def write(out: Path, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
    """`diagnostics/NAME.csv`. A results folder's runs measured now replace their earlier rows (at
    any state), where those stood; every other run's rows stay as the file holds them, so measuring
    some runs of a folder (the finished ones, while the others train) loses nothing measured before.
    Fresh nets (no run id) are not runs of the folder: their file is rewritten whole, as is a file
    an older resdepth wrote with other columns."""
    out.mkdir(parents=True, exist_ok=True)
    path = inside(out, DIAGNOSTICS, f"{name}.csv", mkdir=True)
    cols = columns(name)
    new: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        new.setdefault(str(row["run_id"]), []).append(row)
    measured_now = set(new)
    merged: list[Mapping[str, Any]] = []
    earlier = results.read_table(path) if path.is_file() else None
    if earlier is not None and earlier.header == list(cols):
        for values in earlier.rows:
            row = dict(zip(cols, values, strict=True))
            run = row["run_id"]
            if run and run not in measured_now:
                merged.append(row)
            elif run in new:  # the run's new rows, where its first earlier row stood
                merged += new.pop(run)
    merged += [r for rows_of_run in new.values() for r in rows_of_run]
    results.write_table(path, cols, merged)
    return path


def read(out: Path) -> dict[str, pd.DataFrame]:
    """The diagnostics CSVs a results folder has, by measurement. A value that should be a number
    and does not parse is an error naming its line (empty is a number here: a lesion of no block)."""
    tables = {}
    for name, m in REGISTRY.items():
        path = out / DIAGNOSTICS / f"{name}.csv"
        if not path.is_file():
            continue
        frame = tables[name] = results.read_csv(path, columns(name))
        for c in (*NET_STATE_NUMBERS, *(c for c in m.columns if c not in m.text)):
            bad = pd.to_numeric(frame[c], errors="coerce").isna() & frame[c].notna()
            if bad.any():
                i = int(bad.to_numpy().nonzero()[0][0])
                raise results.not_a_number(path, frame.attrs["lines"][i], c, frame[c].iloc[i])
    if "lesion" in tables and not _lesion_kinds_apart(out / DIAGNOSTICS / "lesion.csv", tables["lesion"]):
        del tables["lesion"]
    return tables


def _lesion_kinds_apart(path: Path, lesion: pd.DataFrame) -> bool:
    """False, with a warning, for lesions of a ResNet written before its downsampling blocks were a
    kind apart: they stand among `single` there, where a mean over single deletions would no longer
    compare with a plain net's. The table is then left out, the other measurements drawn."""
    residual = lesion[lesion["arch"] == "resnet"]
    kinds = residual.groupby(residual["net"] + " (" + residual["state"] + ")")["kind"].agg(set)
    old = [str(name) for name, k in kinds.items() if "single" in k and "downsampling" not in k]
    if old:
        warnings.warn(
            f"{path} left out: the lesions of {', '.join(old)} were measured before resdepth told a "
            "ResNet's downsampling blocks apart; measure them again with `resdepth diagnose ... --what lesion`",
            stacklevel=2,
        )
    return not old


def write_figures(folder: Path, tables: dict[str, pd.DataFrame], out: Path | None = None) -> list[Path]:
    """One figure per diagnostics table that has rows."""
    return [
        save(REGISTRY[name].figure(frame), figure_path(folder, out, name))
        for name, frame in tables.items()
        if not frame.empty
    ]
