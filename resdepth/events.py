"""TensorBoard event files of a results folder: one TensorBoard run per resdepth run, from metrics.csv.

`export` writes the event files of a whole folder (shipped references too); `LiveBoard` writes them
from the sweep's driver as epochs arrive, so the driver stays the only writer. Either way the event
files say what metrics.csv says: each time a run (re)starts, its board is made anew and filled from
the rows metrics.csv holds, so rows a resume dropped or restored are never shown twice or missed.
Each board is written in a folder made anew for it (`fresh_board`): nothing is written through a link.
TensorBoard is the optional extra `resdepth[tensorboard]`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from resdepth import analysis, results
from resdepth.errors import UserError
from resdepth.files import inside
from resdepth.models import NOT_APPLICABLE

FOLDER = results.TENSORBOARD  # RESULTS/tensorboard unless --out says otherwise
# metrics.csv column -> TensorBoard tag; every scalar is drawn against the iteration.
TAGS = {
    "train_error": "error/train",
    "test_error": "error/test",
    "val_error": "error/val",
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "val_loss": "loss/val",
    "lr": "lr",
    "images_per_second": "images_per_second",
}


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "TensorBoard files need the tensorboard package: pip install 'resdepth[tensorboard]'"
        ) from None
    return SummaryWriter


def run_name(label: str, seed: object, run_id: str) -> str:
    """A TensorBoard run's folder: `ResNet-20-seed0-75880789c336`, readable first, and the run id,
    since one folder may hold the same net and seed in several recipes (its text tag names the recipe)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", f"{label}-seed{seed}").strip("-") + f"-{run_id}"


def _write_rows(writer: Any, rows: pd.DataFrame | list[Mapping[str, Any]]) -> None:
    for row in rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows:
        step = int(row["iteration"])
        for column, tag in TAGS.items():
            value = row.get(column)
            if value is not None and value != "" and not pd.isna(value):
                writer.add_scalar(tag, float(value), step)


def _recipe_text(settings: Mapping[str, Any], run_id: str) -> str:
    """The recipe's settings as TensorBoard's text tab shows them (markdown lines)."""
    shown = [f"{k}: {v}" for k, v in settings.items() if str(v) not in ("", NOT_APPLICABLE)]
    return "  \n".join([*shown, f"run_id: {run_id}"])


EVENTS = "events.out.tfevents."  # how TensorBoard's writer names its files (+ time.host.pid.n)


def fresh_board(root: Path, name: str) -> Path:
    """A run's board folder `root/name`, made anew and empty by this process, where TensorBoard's
    writer then makes its event file. The writer opens that file by name at every write, following
    links, and its name is predictable: so no file may stand in the folder but the writer's own. An
    earlier board there is moved aside and its event files (or links named like them) removed,
    never followed; the new folder is made exclusively, so one put in its place meanwhile is refused."""
    target = inside(root, name)
    if target.exists():
        aside = inside(root, f".{name}.{os.getpid()}.old")
        os.rename(target, aside)
        for path in aside.iterdir():
            if path.name.startswith(EVENTS) and (path.is_symlink() or path.is_file()):
                path.unlink()
        with contextlib.suppress(OSError):  # anything else put in it stays, aside
            aside.rmdir()
    try:
        target.mkdir(mode=0o755)
    except FileExistsError:
        raise UserError(f"{target} appeared while resdepth replaced it; run the command again") from None
    return target


def export(folder: Path, out: Path | None = None) -> list[Path]:
    """Event files for every run of a results folder, into `out` (default RESULTS/tensorboard), one
    TensorBoard run per (arch, depth, seed) of each recipe, each tagged with its recipe's settings."""
    summary_writer = _summary_writer()
    loaded = analysis.load(folder)
    if out is not None and _within(out, loaded.folder) and not _within(out, loaded.folder / FOLDER):
        raise UserError(
            f"--out {out} is inside the results folder {loaded.folder}, whose files are resdepth's: "
            f"leave --out out (the default is {loaded.folder / FOLDER}) or name a folder outside it"
        )
    root = out if out is not None else inside(loaded.folder, FOLDER)  # the user's, or a checked one
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for group in analysis.groups(loaded, include_partial=True):
        # A classic net joins every recipe it shares its training with: written once, with the first.
        ids = set(group.runs["run_id"]) - {p.name.rsplit("-", 1)[1] for p in written}
        rows = loaded.metrics[loaded.metrics["run_id"].isin(ids)]
        for run_id, run_rows in rows.groupby("run_id", sort=False):
            first = run_rows.iloc[0]
            path = fresh_board(root, run_name(str(first["label"]), first["seed"], str(run_id)))
            writer = summary_writer(str(path))
            writer.add_text("recipe", _recipe_text(group.settings, str(run_id)), 1)
            _write_rows(writer, run_rows.sort_values("epoch"))
            writer.close()
            written.append(path)
    return written


def _within(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class LiveBoard:
    """`resdepth sweep --tensorboard`: the driver's boards, one per run, fed as rows are written."""

    def __init__(self, out: Path) -> None:
        self.summary_writer = _summary_writer()
        self.out = out
        self.writers: dict[str, Any] = {}

    def start(self, run_id: str, label: str, seed: int, settings: Mapping[str, Any]) -> None:
        """A (re)started run: its board made anew and filled with the rows metrics.csv holds."""
        self.close(run_id)
        root = inside(self.out, FOLDER)
        root.mkdir(exist_ok=True)
        path = fresh_board(root, run_name(label, seed, run_id))
        writer = self.writers[run_id] = self.summary_writer(str(path))
        writer.add_text("recipe", _recipe_text(settings, run_id), 1)
        logged = results.read_metrics(self.out)
        _write_rows(writer, logged[logged["run_id"] == run_id].sort_values("epoch"))
        writer.flush()

    def row(self, run_id: str, row: Mapping[str, Any]) -> None:
        writer = self.writers[run_id]
        _write_rows(writer, [row])
        writer.flush()

    def close(self, run_id: str | None = None) -> None:
        for key in [run_id] if run_id is not None else list(self.writers):
            if key in self.writers:
                self.writers.pop(key).close()
