"""The results folder's CSV schemas, in this one place, and the only code that writes them.

`metrics.csv` gets one row per run per epoch, appended as each epoch ends (a single write of a whole
line, so a kill leaves at most one torn last line, which readers drop). `runs.csv` gets one row per
run and is rewritten atomically (temporary file, then rename) whenever a run's status changes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from resdepth.config import RUN_FIELDS, added_fields
from resdepth.errors import UserError
from resdepth.files import atomic_write
from resdepth.lock import FolderLock
from resdepth.models import CLASSIC_DEPTHS


class Status(StrEnum):
    """A run's state in runs.csv."""

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"  # the loss went non-finite; rerunning the same seed would diverge again
    FAILED = "failed"  # an exception, or a worker that kept dying
    INTERRUPTED = "interrupted"  # Ctrl-C; the next sweep resumes it

    @property
    def finished(self) -> bool:
        return self in (Status.COMPLETED, Status.DIVERGED)


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch of one run: the metrics.csv columns after the run's own."""

    epoch: int
    iteration: int
    lr: float
    train_loss: float
    train_error: float
    test_loss: float
    test_error: float
    val_loss: float | None
    val_error: float | None
    epoch_seconds: float
    images_per_second: float


@dataclass(frozen=True)
class Window:
    """Training since the last report (every `train.PROGRESS_EVERY` steps): means over its batches."""

    iteration: int  # iterations done at its end
    epoch: int
    lr: float
    loss: float
    error: float


# The run fields repeated on every metrics.csv row: what names the net and its data.
NET_COLUMNS = ("arch", "depth", "family", "width", "shortcut", "norm", "activation", "dataset", "seed")
METRICS_COLUMNS = ("run_id", *NET_COLUMNS, *(f.name for f in fields(EpochRecord)))
RUNS_COLUMNS = (
    "run_id",
    *(f.name for f in RUN_FIELDS),
    "params",
    "status",
    "epochs_done",
    "final_train_error",
    "final_test_error",
    "best_test_error",
    "wall_seconds",
    "device",
    "threads",
    "torch_version",
    "resdepth_version",
    "started_at",
    "ended_at",
    "error",
)

# `resdepth diagnose` writes one CSV per measurement into <results>/diagnostics/, whole each time.
DIAGNOSTICS = "diagnostics"
_NET = ("net", "arch", "depth", "norm", "activation", "seed", "state", "run_id")
DIAGNOSTICS_COLUMNS = {
    "grads": (*_NET, "layer", "name", "grad_norm", "weight_norm"),
    "responses": (*_NET, "layer", "name", "std"),
    "lesion": (*_NET, "kind", "block", "k", "sample", "error"),
    "identity": (
        *_NET,
        "grown_to",
        "max_abs_diff",
        "bitwise_equal",
        "grown_output_spread",
        "error",
        "grown_error",
    ),
    "scale": (*_NET, "layer", "name", "std", "rms", "loss"),
    "start": (*_NET, *(f.name for f in fields(Window))),
}
# Columns added after results folders already existed, with what an older row meant by them.
ADDED_COLUMNS = {**added_fields(), "threads": ""}
TEXT_COLUMNS = ("run_id", "arch", "family", "shortcut", "norm", "activation", "dataset")
METRICS = "metrics.csv"
RUNS = "runs.csv"
DISCARDED = "discarded"  # rows (and checkpoints) of runs restarted from scratch, kept, never deleted
SWEEPS = "sweeps"  # the resolved configuration of every sweep that wrote here, by start time (UTC)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(round(value, 6))
    return str(value)


def _line(columns: Iterable[str], row: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(row.get(c)) for c in columns])
    return buf.getvalue()


def _header(path: Path) -> list[str] | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as f:
        return next(csv.reader(f), None)


def check_folder(out: Path) -> None:
    """Refuse, before anything is written, a folder that cannot hold or already holds other results."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    for name, columns in ((METRICS, METRICS_COLUMNS), (RUNS, RUNS_COLUMNS)):
        header = _header(out / name)
        if header is None or tuple(header) == columns:
            continue
        if not _older(header, columns):
            raise UserError(
                f"{out / name} has other columns than resdepth writes; "
                "choose another --out (nothing was changed)"
            )
        _upgrade(out / name, columns)


def _older(header: list[str], columns: tuple[str, ...]) -> bool:
    """Whether `header` is this schema as an earlier resdepth wrote it: some added columns missing."""
    return [c for c in columns if c in header] == header and all(
        c in ADDED_COLUMNS for c in columns if c not in header
    )


def _added_value(column: str, arch: str) -> str:
    """What a row written before `column` existed meant by it."""
    if column in ("norm", "activation") and arch in CLASSIC_DEPTHS:
        return "-"
    return ADDED_COLUMNS[column]


def _upgrade(path: Path, columns: tuple[str, ...]) -> None:
    """Rewrite an older resdepth CSV in the current schema, atomically, so new rows can follow it."""
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r.values()]  # a torn last line is dropped
    for r in rows:
        for c in columns:
            if c not in r:
                r[c] = _added_value(c, r.get("arch", ""))
    text = _line(columns, {c: c for c in columns}) + "".join(_line(columns, r) for r in rows)
    _atomic_write(path, text)


def append_metrics(out: Path, row: Mapping[str, Any]) -> None:
    path = out / METRICS
    text = _line(METRICS_COLUMNS, row)
    if _header(path) is None:
        text = _line(METRICS_COLUMNS, {c: c for c in METRICS_COLUMNS}) + text
    with path.open("a") as f:
        _heal_torn_line(path, f)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _heal_torn_line(path: Path, f: io.TextIOBase) -> None:
    """A kill mid-write can leave a last line without its newline; end it so the next row is whole."""
    size = path.stat().st_size
    if size:
        with path.open("rb") as r:
            r.seek(size - 1)
            if r.read(1) != b"\n":
                f.write("\n")


def _atomic_write(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def read_csv(path: Path, columns: tuple[str, ...], text: bool = False) -> pd.DataFrame:
    """Rows whose every field parses; a torn or foreign line is dropped rather than trusted. With
    `text`, every value stays the string the file holds ("" where empty)."""
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    dtype = str if text else {"run_id": str}
    try:
        frame = pd.read_csv(path, dtype=dtype, on_bad_lines="skip", keep_default_na=not text)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV: {exc}") from None
    missing = [c for c in columns if c not in frame.columns]
    if any(c not in ADDED_COLUMNS for c in missing):
        raise UserError(f"{path} lacks resdepth's columns {', '.join(missing)}; is it another tool's?")
    for c in missing:  # written by an earlier resdepth
        frame[c] = [_added_value(c, str(a)) for a in frame.get("arch", pd.Series([""] * len(frame)))]
    return frame[list(columns)]


def read_metrics(out: Path) -> pd.DataFrame:
    return read_metrics_file(out / METRICS)


def read_metrics_file(path: Path) -> pd.DataFrame:
    """A metrics CSV under any name, with numeric columns parsed."""
    frame = read_csv(path, METRICS_COLUMNS)
    numeric = [c for c in METRICS_COLUMNS if c not in TEXT_COLUMNS]
    for c in numeric:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    # A torn last line parses with missing fields; a row without its epoch or error is dropped.
    return frame.dropna(subset=["epoch", "iteration", "train_error"]).reset_index(drop=True)


def _split_rows(out: Path, run_id: str, after: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """metrics.csv's header, the rows to keep, and run `run_id`'s rows past epoch `after`."""
    path = out / METRICS
    if not path.is_file():
        return [], [], []
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], [], []
    header = rows[0]
    kept: list[list[str]] = []
    removed: list[list[str]] = []
    at = header.index("epoch")
    for r in rows[1:]:
        if len(r) != len(header):
            continue  # torn by a kill
        past = r[0] == run_id and not (r[at].isdigit() and int(r[at]) <= after)
        (removed if past else kept).append(r)
    return header, kept, removed


def _csv_text(rows: Iterable[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def drop_rows_after(out: Path, run_id: str, epoch: int) -> None:
    """Keep run `run_id`'s rows up to `epoch` (its checkpoint): the resumed run writes the rest
    again, identically (data order and augmentation are seeded by epoch)."""
    header, kept, removed = _split_rows(out, run_id, epoch)
    if removed:
        _atomic_write(out / METRICS, _csv_text([header, *kept]))


def discard_run(out: Path, run_id: str, checkpoint: Path) -> None:
    """Move every row of `run_id` (and its checkpoint, if any) into `discarded/`, so that it trains
    again from scratch while nothing it logged is lost. The copy is written before the rows leave
    metrics.csv: a kill in between leaves them in both places, never in neither."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = out / DISCARDED
    folder.mkdir(exist_ok=True)
    header, kept, removed = _split_rows(out, run_id, 0)
    dest = folder / f"{stamp}-{run_id}.csv"
    if removed:
        _atomic_write(dest, _csv_text([header, *removed]))
        _atomic_write(out / METRICS, _csv_text([header, *kept]))
    if checkpoint.is_file():
        os.replace(checkpoint, folder / f"{stamp}-{run_id}{checkpoint.suffix}")


def save_config(out: Path, toml: str) -> Path:
    """Keep this sweep's resolved configuration beside every earlier one's; sweep.toml is the last."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    (out / SWEEPS).mkdir(exist_ok=True)
    path = out / SWEEPS / f"{stamp}.toml"
    _atomic_write(path, toml)
    _atomic_write(out / "sweep.toml", toml)
    return path


def logged_epochs(out: Path) -> dict[str, int]:
    """The last epoch metrics.csv holds for each run."""
    m = read_metrics(out)
    return {str(k): int(v) for k, v in m.groupby("run_id")["epoch"].max().items()} if not m.empty else {}


def summary_fields(out: Path, run_id: str) -> dict[str, object]:
    """Final and best errors and wall time, read back from metrics.csv (the one source of truth)."""
    rows = read_metrics(out)
    rows = rows[rows["run_id"] == run_id].sort_values("epoch")
    if rows.empty:
        return {"epochs_done": 0}
    last = rows.iloc[-1]
    return {
        "epochs_done": int(last["epoch"]),
        "final_train_error": float(last["train_error"]),
        "final_test_error": float(last["test_error"]),
        "best_test_error": float(rows["test_error"].min()),
        "wall_seconds": round(float(rows["epoch_seconds"].sum()), 1),
    }


def repair_if_idle(out: Path) -> list[str]:
    """`repair_stale`, when no sweep is writing `out` and it can be written; else nothing."""
    lock = FolderLock(out)
    try:
        if not lock.try_acquire():
            return []
    except OSError:  # a read-only folder: shown as it is
        return []
    try:
        return repair_stale(out)
    finally:
        lock.release()


def repair_stale(out: Path) -> list[str]:
    """Statuses a killed or interrupted sweep could not finish writing: a run left `running`, or
    `interrupted` after its last epoch, is `completed` when metrics.csv holds all its epochs; a
    `running` one that does not is `interrupted`. Call only while no sweep writes `out` (under its
    lock). Returns the repaired run ids."""
    repaired = []
    for row in read_runs(out).values():
        if row.get("status") not in (Status.RUNNING, Status.INTERRUPTED):
            continue
        fields = summary_fields(out, row["run_id"])
        done = int(fields["epochs_done"])  # type: ignore[call-overload]
        whole = row.get("epochs", "").isdigit() and done >= int(row["epochs"])
        status = Status.COMPLETED if whole else Status.INTERRUPTED
        if status != row["status"]:
            write_run(out, {**row, **fields, "status": status})
            repaired.append(row["run_id"])
    return repaired


def write_diagnostics(out: Path, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
    path = out / DIAGNOSTICS / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = DIAGNOSTICS_COLUMNS[name]
    text = _line(columns, {c: c for c in columns}) + "".join(_line(columns, r) for r in rows)
    _atomic_write(path, text)
    return path


def read_diagnostics(out: Path) -> dict[str, pd.DataFrame]:
    """The diagnostics CSVs a results folder has, by measurement."""
    folder = out / DIAGNOSTICS
    return {
        name: read_csv(folder / f"{name}.csv", columns)
        for name, columns in DIAGNOSTICS_COLUMNS.items()
        if (folder / f"{name}.csv").is_file()
    }


def read_runs(out: Path) -> dict[str, dict[str, str]]:
    path = out / RUNS
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {r["run_id"]: r for r in csv.DictReader(f) if r.get("run_id")}


def write_run(out: Path, row: Mapping[str, Any]) -> None:
    """Insert or replace one run's row; the file is replaced whole, never left half-written."""
    runs = read_runs(out)
    runs[str(row["run_id"])] = {c: _format(row.get(c)) for c in RUNS_COLUMNS}
    text = _line(RUNS_COLUMNS, {c: c for c in RUNS_COLUMNS})
    text += "".join(_line(RUNS_COLUMNS, r) for r in runs.values())
    _atomic_write(out / RUNS, text)
