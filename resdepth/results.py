"""The results folder's CSV schemas, in this one place, and the only code that writes them.

`metrics.csv` gets one row per run per epoch, appended as each epoch ends (a single write of a whole
line, so a kill leaves at most one torn last line: one without its newline, which readers ignore and
the next append cuts off, keeping a copy in discarded/). Every other line is checked when read: a row
with the wrong number of fields, a number that does not parse or an epoch logged twice is an error
naming the file and line, never trusted. `runs.csv` gets one row per run and is rewritten atomically
(temporary file, then rename) whenever a run's status changes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import pandas as pd

from resdepth import faults
from resdepth.errors import UserError
from resdepth.files import atomic_write, inside, open_append
from resdepth.lock import LOCK, OWNER
from resdepth.runs import RUN_FIELDS, RunConfig, added_fields, added_value


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


# What trained a run, written by the node that trained it (`device.provenance`): the host, the Ray
# node ("" outside Ray), its processor and whether that runs bf16 fast, the GPU ("" on a CPU), the
# Python and PyTorch versions.
PROVENANCE = ("host", "node", "cpu", "cpu_bf16", "gpu", "python_version", "torch_version")
# Where a run's epochs were trained: a run resumed on another machine or with other --threads names
# every value its logged epochs were trained with, in order, joined by MACHINES_JOIN.
MACHINE = ("device", "threads", *PROVENANCE)
MACHINES_JOIN = " + "
# The run fields repeated on every metrics.csv row: what names the net and its data.
NET_COLUMNS = ("arch", "depth", "family", "width", "shortcut", "norm", "activation", "dataset", "seed")
METRICS_COLUMNS = ("run_id", *NET_COLUMNS, *(f.name for f in fields(EpochRecord)))
# What metrics.csv says of a run, repeated in runs.csv (`summary_fields`).
SUMMARY_COLUMNS = ("final_train_error", "final_test_error", "best_test_error", "wall_seconds")
RUNS_COLUMNS = (
    "run_id",
    *(f.name for f in RUN_FIELDS),
    "params",
    "status",
    "epochs_done",
    *SUMMARY_COLUMNS,
    "device",
    "threads",
    "torch_version",
    "resdepth_version",
    "started_at",
    "ended_at",
    "error",
    *PROVENANCE[:-1],  # torch_version has its place above, from before the others existed
)

# `resdepth diagnose` writes one CSV per measurement into <results>/diagnostics/, whole each time.
DIAGNOSTICS = "diagnostics"
# What each column means, but the run fields (their option's help says it): the results-folder page
# (docs/results-folder.md) is generated from these, and a test holds every column to a line here.
COLUMN_HELP = {
    "run_id": "12 hex digits: a hash of every field that changes the run's numbers (an option added "
    "later only where it differs from what older rows meant, so their ids stay)",
    "epoch": "1-based epoch",
    "iteration": "iterations done at the epoch's end",
    "lr": "learning rate of the epoch's last step",
    "train_loss": "mean over the epoch's training mini-batches, in train mode, with augmentation "
    "(as the paper's curves; it lags the weights of the epoch's end)",
    "train_error": "as train_loss, in percent",
    "test_loss": "on the test split (or --test-subset), eval mode, no augmentation",
    "test_error": "as test_loss, in percent",
    "val_loss": "on the --val-split images; empty without it",
    "val_error": "as val_loss, in percent",
    "epoch_seconds": "wall time of the epoch, training and evaluation (packed: the group's training, "
    "then the evaluations up to this run's)",
    "images_per_second": "training images per second of the epoch's training part (packed: this run's "
    "images; the group trained K times as many)",
    "params": "trainable parameters",
    "status": "completed, diverged, failed, running or interrupted",
    "epochs_done": "epochs in metrics.csv",
    "final_train_error": "train_error of the last epoch",
    "final_test_error": "test_error of the last epoch",
    "best_test_error": "lowest test_error of any epoch",
    "wall_seconds": "sum of epoch_seconds",
    "device": "where it trained: cpu, cuda:0, ... (a run resumed elsewhere names each machine's, "
    "' + ' between; so do threads, torch_version and host to python_version)",
    "threads": "CPU threads it trained with (empty: not recorded)",
    "torch_version": "PyTorch version of the node that trained it",
    "resdepth_version": "resdepth version of the sweep that wrote the row",
    "started_at": "when the sweep that logged its first epoch started it (UTC; data loading included)",
    "ended_at": "when it last ended (UTC)",
    "error": "why a failed or diverged run stopped",
    "host": "host name of the node that trained it",
    "node": "its Ray node id (empty outside Ray)",
    "cpu": "the processor's name",
    "cpu_bf16": "yes where the processor runs bf16 fast (AMX or AVX512-BF16)",
    "gpu": "the GPU's name (empty on a CPU)",
    "python_version": "Python version of the node that trained it",
}
# Columns added after results folders already existed, with what an older row meant by them.
ADDED_COLUMNS = {**added_fields(), "threads": "", **dict.fromkeys(PROVENANCE[:-1], "")}  # "": unknown
METRICS = "metrics.csv"
RUNS = "runs.csv"
DISCARDED = "discarded"  # rows (and checkpoints) of runs restarted from scratch, kept, never deleted
SWEEPS = "sweeps"  # the resolved configuration of every sweep that wrote here, by start time (UTC)
SWEEP_TOML = "sweep.toml"  # the last sweep's configuration
NONCE = ".resdepth.nonce"  # a token of the sweep writing here: a worker that cannot read it cannot see --out
CHECKPOINTS = "checkpoints"  # what an unfinished run needs to go on: weights, optimizer, schedule, rows
WEIGHTS = "weights"  # a completed run's final weights alone (its checkpoint goes: it would only train on)
FIGURES = "figures"
TENSORBOARD = "tensorboard"  # event files of `sweep --tensorboard` and `export tensorboard`
# The folders resdepth writes in a results folder (the tensorboard folder's are TensorBoard's).
FOLDERS = (SWEEPS, CHECKPOINTS, WEIGHTS, DISCARDED, FIGURES, DIAGNOSTICS)
# What a sweep checks before it writes (`check_folder`): none of them may be a symbolic link. The
# tensorboard folder is checked where it is written, as --out may put it elsewhere.
MANAGED = (
    METRICS,
    RUNS,
    SWEEP_TOML,
    SWEEPS,
    CHECKPOINTS,
    WEIGHTS,
    DISCARDED,
    FIGURES,
    DIAGNOSTICS,
    LOCK,
    OWNER,
    NONCE,
)


def _format(value: Any) -> str:
    """Floats keep six decimals, and below 1 six significant digits: a gradient norm of 3e-9 is
    written as measured, not rounded to 0 (which would read as an underflow). Every CSV shares it,
    so a run resumed across the change has losses below 1 in both forms, the same values."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(float(f"{value:.6g}") if abs(value) < 1 else round(value, 6))
    return str(value)


def _line(columns: Iterable[str], row: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(row.get(c)) for c in columns])
    return buf.getvalue()


def _header(path: Path) -> list[str] | None:
    """The first line's column names (None for a missing or empty file, or one whose first line is
    torn: a kill during the first append, which wrote the header and the first row at once)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb") as f:
        first = f.readline()
    if not first.endswith(b"\n"):
        return None
    return next(csv.reader([first.decode(errors="replace")]), None) or None


@dataclass(frozen=True)
class Table:
    """A resdepth CSV as read: its header, and each whole row with its line number in the file."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]


def read_table(path: Path) -> Table:
    """Every whole row, each checked to have the header's number of fields. A torn last line (a kill
    mid-append: no newline) is left out; any other damage is an error naming the line."""
    data = path.read_bytes() if path.is_file() else b""
    data = data[: data.rfind(b"\n") + 1]  # a torn last line is not a row, whatever its bytes
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path} line {line} is not text; the file is damaged (nothing was changed)"
        ) from None
    reader = csv.reader(io.StringIO(text))
    header: list[str] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        header = next(reader, [])
        for row in reader:
            if len(row) != len(header):
                raise UserError(
                    f"{path} line {reader.line_num} has {len(row)} fields where the header has "
                    f"{len(header)}: a damaged row, not trusted (move it out of the file to go on)"
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise UserError(f"{path} line {reader.line_num} is damaged ({exc}); nothing was changed") from None
    return Table(path, header, rows, lines)


def check_folder(out: Path) -> None:
    """Refuse, before anything is written, a folder that cannot hold results, holds a symbolic link
    where resdepth writes, or holds CSVs of another tool; creates it."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    for name in MANAGED:
        inside(out, name)
    _older_schemas(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}") from None


def _older_schemas(out: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """The CSVs an earlier resdepth wrote with fewer columns; CSVs of another tool are refused."""
    older = []
    for name, columns in ((METRICS, METRICS_COLUMNS), (RUNS, RUNS_COLUMNS)):
        header = _header(out / name)
        if header is None or tuple(header) == columns:
            continue
        if not _older(header, columns):
            raise UserError(
                f"{out / name} has other columns than resdepth writes; "
                "choose another --out (nothing was changed)"
            )
        older.append((out / name, columns))
    return older


def prepare_files(out: Path) -> None:
    """Under the folder's lock, before a sweep writes: cut off a torn last row (keeping its bytes in
    discarded/), and upgrade an earlier resdepth's CSVs to the current columns."""
    older = _older_schemas(out)
    if (out / METRICS).is_file():
        with open_append(inside(out, METRICS)) as f:
            _cut_torn_line(out, f)
    for path, columns in older:
        _upgrade(path, columns)


def _older(header: list[str], columns: tuple[str, ...]) -> bool:
    """Whether `header` is this schema as an earlier resdepth wrote it: some added columns missing."""
    return [c for c in columns if c in header] == header and all(
        c in ADDED_COLUMNS for c in columns if c not in header
    )


def _added_value(column: str, arch: str) -> str:
    """What a row written before `column` existed meant by it."""
    return added_value(column, arch) if column in added_fields() else ADDED_COLUMNS[column]


def _upgrade(path: Path, columns: tuple[str, ...]) -> None:
    """Rewrite an older resdepth CSV in the current schema, atomically, so new rows can follow it."""
    table = read_table(path)
    rows = [dict(zip(table.header, r, strict=True)) for r in table.rows]
    for r in rows:
        for c in columns:
            if c not in r:
                r[c] = _added_value(c, r.get("arch", ""))
    text = _line(columns, {c: c for c in columns}) + "".join(_line(columns, r) for r in rows)
    _atomic_write(path, text)


def append_metrics(out: Path, row: Mapping[str, Any]) -> None:
    """Append one row, durably, in one write; a torn line a kill left at the end is cut off first."""
    path = inside(out, METRICS)
    text = _line(METRICS_COLUMNS, row).encode()
    if _header(path) is None:
        text = _line(METRICS_COLUMNS, {c: c for c in METRICS_COLUMNS}).encode() + text
    try:
        with open_append(path) as f:
            _cut_torn_line(out, f)
            faults.point("mid-row", before=lambda: (f.write(text[: len(text) // 2]), f.flush()))
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a full disk: say which file
        raise OSError(exc.errno, exc.strerror, exc.filename or str(path)) from None


def _cut_torn_line(out: Path, f: Any) -> None:
    """A kill (or a full disk) mid-append leaves a last line without its newline. It is never a row:
    cut it off, so the next row starts a line of its own, and keep its bytes in discarded/."""
    size = os.fstat(f.fileno()).st_size
    if not size:
        return
    with inside(out, METRICS).open("rb") as r:
        r.seek(size - 1)
        if r.read(1) == b"\n":
            return
        r.seek(0)
        data = r.read(size)
    keep = data.rfind(b"\n") + 1
    torn = inside(out, DISCARDED, f"{_stamp()}-torn-line.csv", mkdir=True)
    atomic_write(torn, lambda w: w.write(data[keep:]))
    os.truncate(f.fileno(), keep)


def _stamp() -> str:
    """UTC time to the microsecond: names of kept files, never two alike in one folder."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _atomic_write(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def read_csv(path: Path, columns: tuple[str, ...], text: bool = False) -> pd.DataFrame:
    """Every whole row (`read_table`), in `columns`; columns an earlier resdepth did not write get
    what its rows meant. With `text`, every value stays the string the file holds ("" where empty);
    without, pandas parses the numbers."""
    table = read_table(path)
    if not table.header:
        return pd.DataFrame(columns=list(columns))
    if text:
        frame = pd.DataFrame(table.rows, columns=table.header, dtype=str)
    else:
        body = io.StringIO(_csv_text([table.header, *table.rows]))
        frame = pd.read_csv(body, dtype={"run_id": str})
    frame.attrs["lines"] = table.lines
    missing = [c for c in columns if c not in frame.columns]
    if any(c not in ADDED_COLUMNS for c in missing):
        raise UserError(f"{path} lacks resdepth's columns {', '.join(missing)}; is it another tool's?")
    for c in missing:  # written by an earlier resdepth
        frame[c] = [_added_value(c, str(a)) for a in frame.get("arch", pd.Series([""] * len(frame)))]
    return frame[list(columns)]


def read_metrics(out: Path) -> pd.DataFrame:
    return read_metrics_file(out / METRICS)


# What each metrics.csv column holds, from the type of the field that defines it: text; counts (whole
# numbers); measured values, which are "nan" where the loss went non-finite, and of those the ones
# empty where a run holds out no validation set.
_TYPES = {f.name: str(f.type) for f in (*fields(RunConfig), *fields(EpochRecord))}
TEXT_COLUMNS = ("run_id", *(c for c in NET_COLUMNS if _TYPES[c] == "str"))
COUNTS = tuple(c for c in METRICS_COLUMNS if _TYPES.get(c) == "int")
MEASURED = tuple(c for c in METRICS_COLUMNS if "float" in _TYPES.get(c, ""))
OPTIONAL = tuple(c for c in MEASURED if "None" in _TYPES[c])


def not_a_number(path: Path, line: int, column: str, value: object, kind: str = "a number") -> UserError:
    """What a resdepth CSV whose value does not parse is told as: its line, never trusted."""
    return UserError(
        f"{path} line {line}: {column} is {value!r}, not {kind}: a damaged row, not trusted "
        "(move it out of the file to go on)"
    )


def read_metrics_file(path: Path) -> pd.DataFrame:
    """A metrics CSV under any name, with numeric columns parsed. A row whose number does not parse
    (or whose count is not a whole number), or a second row for one epoch of a run, is an error
    naming its line."""
    frame = read_csv(path, METRICS_COLUMNS, text=True)
    lines = frame.attrs.get("lines", [])
    numeric = [c for c in METRICS_COLUMNS if c not in TEXT_COLUMNS]
    for c in numeric:
        values = pd.to_numeric(frame[c], errors="coerce")
        allowed = []
        if c in MEASURED:
            allowed.append("nan")
        if c in OPTIONAL:
            allowed.append("")
        bad = values.isna() & ~frame[c].isin(allowed)
        if c in COUNTS:  # `inf` and `1e999` parse too
            bad |= ~(values.abs() < math.inf) | (values % 1 != 0)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            kind = "a whole number" if c in COUNTS else "a number"
            raise not_a_number(path, lines[i], c, frame[c].iloc[i], kind)
        frame[c] = values
    twice = frame.duplicated(["run_id", "epoch"])
    if twice.any():
        i = int(twice.to_numpy().nonzero()[0][0])
        raise UserError(
            f"{path} line {lines[i]}: epoch {int(frame['epoch'].iloc[i])} of run {frame['run_id'].iloc[i]} "
            "is logged twice; the file is damaged (nothing was changed)"
        )
    return frame.reset_index(drop=True)


def _split_rows(out: Path, run_id: str, after: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """metrics.csv's header, the rows to keep, and run `run_id`'s rows past epoch `after`."""
    table = read_table(inside(out, METRICS))
    if not table.header:
        return [], [], []
    kept: list[list[str]] = []
    removed: list[list[str]] = []
    run, at = table.header.index("run_id"), table.header.index("epoch")
    for r in table.rows:
        # The run's rows past `after` go, and so does one of its rows whose epoch is not a number.
        past = r[run] == run_id and not (r[at].isdigit() and int(r[at]) <= after)
        (removed if past else kept).append(r)
    return table.header, kept, removed


def _csv_text(rows: Iterable[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _move_rows(out: Path, run_id: str, after: int, name: str) -> None:
    """Move run `run_id`'s rows past epoch `after` from metrics.csv into discarded/`name`. The copy
    is written before the rows leave metrics.csv: a kill in between leaves them in both places,
    never in neither."""
    header, kept, removed = _split_rows(out, run_id, after)
    if removed:
        _keep(out, name, [header, *removed])
        _atomic_write(inside(out, METRICS), _csv_text([header, *kept]))


def drop_rows_after(out: Path, run_id: str, epoch: int) -> None:
    """Keep run `run_id`'s rows up to `epoch` (its checkpoint): the resumed run trains the rest again
    and writes the same numbers (data order and augmentation are seeded by epoch), with timings of
    its own. What goes (the one row a kill leaves past a checkpoint) is kept in discarded/."""
    _move_rows(out, run_id, epoch, f"{run_id}-past-epoch-{epoch}.csv")


def restore_rows(out: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add rows a checkpoint holds and metrics.csv lost (a driver killed between receiving a row and
    writing it, a truncated file): one atomic rewrite."""
    table = read_table(inside(out, METRICS))
    if table.header and tuple(table.header) != METRICS_COLUMNS:
        raise UserError(f"{out / METRICS} has other columns than resdepth writes; nothing was restored")
    text = _csv_text([list(METRICS_COLUMNS), *table.rows]) + "".join(_line(METRICS_COLUMNS, r) for r in rows)
    _atomic_write(inside(out, METRICS), text)


def _keep(out: Path, name: str, rows: list[list[str]]) -> Path:
    """Write rows into discarded/ under a name no earlier file has."""
    path = inside(out, DISCARDED, f"{_stamp()}-{name}", mkdir=True)
    _atomic_write(path, _csv_text(rows))
    return path


def discard_run(out: Path, run_id: str, files: Iterable[Path]) -> None:
    """Move every row of `run_id` (and whatever stands at its checkpoint's and weights' paths: a
    file, or a folder someone put there) into `discarded/`, so that it trains again from scratch
    while nothing it logged is lost."""
    _move_rows(out, run_id, 0, f"{run_id}.csv")
    for path in files:
        if path.exists() or path.is_symlink():
            kind = ".weights" if path.parent.name == WEIGHTS else ""  # both are RUN.pt in their folders
            os.replace(path, inside(out, DISCARDED, f"{_stamp()}-{run_id}{kind}.pt", mkdir=True))


def run_file(out: Path, folder: str, run_id: str) -> Path:
    """Run `run_id`'s file in `folder` (`CHECKPOINTS` or `WEIGHTS`), refused where a link stands."""
    return inside(out, folder, f"{run_id}.pt")


def save_config(out: Path, toml: str) -> Path:
    """Keep this sweep's resolved configuration beside every earlier one's; sweep.toml is the last."""
    path = inside(out, SWEEPS, f"{_stamp()}.toml", mkdir=True)
    _atomic_write(path, toml)
    _atomic_write(inside(out, SWEEP_TOML), toml)
    return path


def write_nonce(out: Path) -> str:
    """A new random token in out/.resdepth.nonce, which each worker reads before it trains: a node
    that cannot see the results folder (not shared with the driver's) fails its run at once."""
    token = secrets.token_hex(16)
    _atomic_write(inside(out, NONCE), token)
    return token


def logged(out: Path) -> dict[str, set[int]]:
    """The epochs metrics.csv holds for each run (no epoch is ever logged twice)."""
    m = read_metrics(out)
    return {str(k): set(v.astype(int)) for k, v in m.groupby("run_id")["epoch"]} if not m.empty else {}


def summary_fields(out: Path, run_id: str) -> dict[str, object]:
    """Final and best errors and wall time, read back from metrics.csv (the one source of truth)."""
    rows = read_metrics(out)
    rows = rows[rows["run_id"] == run_id].sort_values("epoch")
    if rows.empty:  # e.g. restarted: none of its discarded numbers stay
        return {"epochs_done": 0, **dict.fromkeys(SUMMARY_COLUMNS)}
    last = rows.iloc[-1]
    return {
        "epochs_done": int(last["epoch"]),
        "final_train_error": float(last["train_error"]),
        "final_test_error": float(last["test_error"]),
        "best_test_error": float(rows["test_error"].min()),
        "wall_seconds": round(float(rows["epoch_seconds"].sum()), 1),
    }


def merged_machines(earlier: Mapping[str, object], attempt: Mapping[str, object]) -> dict[str, str]:
    """The MACHINE columns of a run whose earlier epochs were trained as `earlier` says and whose
    next ones by `attempt`: each value once, in the order they trained."""
    merged = {}
    for column in MACHINE:
        values = [v for v in str(earlier.get(column) or "").split(MACHINES_JOIN) if v]
        new = str(attempt.get(column) or "")
        merged[column] = MACHINES_JOIN.join(values + [new] if new and new not in values else values)
    return merged


def settled_status(row: Mapping[Any, Any], logged: int, live: bool) -> str:
    """A run's status as its rows show it: `running` or `interrupted` with every epoch logged is
    `completed` (a sweep killed before it could say so); `completed` with epochs missing is
    `interrupted` (its rows were lost; a sweep restores them from the checkpoint, or says it cannot);
    `running` in a folder no sweep is writing (`live` false) is `interrupted`."""
    status, epochs = row.get("status", ""), row.get("epochs", "")
    whole = epochs.isdigit() and logged >= int(epochs)
    if status in (Status.RUNNING, Status.INTERRUPTED) and whole:
        return Status.COMPLETED
    if status == Status.COMPLETED and epochs.isdigit() and not whole:
        return Status.INTERRUPTED
    if status == Status.RUNNING and not live:
        return Status.INTERRUPTED
    return status


def repair_stale(out: Path) -> list[str]:
    """Write the statuses a killed sweep could not (`settled_status`). Call only while no sweep
    writes `out` (under its lock). Returns the repaired run ids."""
    repaired = []
    epochs = logged(out)
    for row in read_runs(out).values():
        status = settled_status(row, len(epochs.get(row["run_id"], ())), live=False)
        if status != row["status"]:
            write_run(out, {**row, **summary_fields(out, row["run_id"]), "status": status})
            repaired.append(row["run_id"])
    return repaired


def write_table(path: Path, columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> None:
    """A whole CSV (header and rows), replaced atomically: what `resdepth diagnose` writes."""
    _atomic_write(path, _line(columns, {c: c for c in columns}) + "".join(_line(columns, r) for r in rows))


def read_runs(out: Path) -> dict[str, dict[str, str]]:
    """runs.csv by run id (`read_runs_file`); empty where the folder has none."""
    path = out / RUNS
    if not path.is_file():
        return {}
    rows = cast(list[dict[str, str]], read_runs_file(path).to_dict("records"))
    return {r["run_id"]: r for r in rows if r["run_id"]}


def read_runs_file(path: Path) -> pd.DataFrame:
    """A runs.csv, each value the string the file holds (a column an earlier resdepth did not write
    holds what its rows meant). A file without resdepth's columns, or a status resdepth never
    writes, is an error naming the file (and its line) before anything reads on."""
    frame = read_csv(path, RUNS_COLUMNS, text=True)
    for line, status in zip(frame.attrs["lines"], frame["status"], strict=True):
        if status not in ("", *Status):
            raise UserError(
                f"{path} line {line}: status {status!r} is not one resdepth writes ({', '.join(Status)}): "
                "a damaged row, not trusted (nothing was changed)"
            )
    return frame


def write_run(out: Path, row: Mapping[str, Any]) -> None:
    """Insert or replace one run's row; the file is replaced whole, never left half-written."""
    runs = read_runs(out)
    runs[str(row["run_id"])] = {c: _format(row.get(c)) for c in RUNS_COLUMNS}
    text = _line(RUNS_COLUMNS, {c: c for c in RUNS_COLUMNS})
    text += "".join(_line(RUNS_COLUMNS, r) for r in runs.values())
    _atomic_write(inside(out, RUNS), text)
