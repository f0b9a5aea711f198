"""A run's checkpoint: everything needed to continue it exactly, written so that neither a kill nor a
power loss can leave a torn one, and never silently mistaken for "no checkpoint" when it is damaged.

The runs of a packed group (`--pack`) must also stay at one epoch with each other: a group resumed
with one run an epoch ahead would train in two parts, and its numbers would differ from the
uninterrupted ones by round-off. So a group's checkpoints are replaced all or none: each is written
whole beside its own (`ID.pt.next`), then a commit marker naming them is written, and only then are
they renamed into place. `recover` finishes a group save that a kill cut short after its commit,
and discards one cut short before it.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from resdepth import faults
from resdepth.files import atomic_write, inside, sync_folder
from resdepth.results import EpochRecord

# What a checkpoint must hold to continue its run; `records` (every epoch's row, so that rows a
# killed driver never wrote can be restored) is absent from checkpoints written before it existed.
KEYS = {"run_id": str, "epoch": int, "iteration": int, "schedule": dict, "model": dict, "optimizer": dict}


class DamagedCheckpoint(Exception):
    """A checkpoint file exists but cannot be used (truncated, corrupt, or another run's)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written atomically and durably: after a kill or a power loss the path holds the previous
    checkpoint or the new one, whole."""
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    inside(path.parent.parent, path.parent.name, path.name, mkdir=True)  # checkpoints/ is no link
    # Serialised in memory, then written: torch.save straight into a file turns a full disk into a
    # RuntimeError ("unexpected pos"); a plain write raises the OSError that names it.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(
        path, lambda f: f.write(buffer.getbuffer()), before_rename=lambda: faults.point("mid-checkpoint")
    )


NEXT = ".next"  # a group's new checkpoint, written whole, waiting for its commit
COMMIT = ".commit-"  # + the first run's id + .json: the marker that commits a group's checkpoints


def save_checkpoints(saves: list[tuple[Path, dict[str, Any]]]) -> None:
    """Several runs' checkpoints (in one folder), replaced all or none (see the module docstring)."""
    if len(saves) <= 1:  # nothing to keep in step with (none: every run of the epoch diverged)
        for path, state in saves:
            save_checkpoint(path, state)
        return
    for path, state in saves:
        save_checkpoint(path.with_name(path.name + NEXT), state)
    folder = saves[0][0].parent
    marker = folder / f"{COMMIT}{saves[0][0].stem}.json"
    names = [p.name for p, _ in saves]
    atomic_write(marker, lambda f: f.write(json.dumps(names).encode()))
    _commit(marker, names, after_first=lambda: faults.point("mid-commit"))


def _commit(marker: Path, names: list[str], after_first: Callable[[], None] | None = None) -> None:
    """Rename every checkpoint the marker names into place, then drop the marker."""
    for i, name in enumerate(names):
        waiting = marker.with_name(name + NEXT)
        if waiting.is_file():
            os.replace(waiting, marker.with_name(name))
        if i == 0 and after_first is not None:
            after_first()
    sync_folder(marker.parent)
    marker.unlink()
    sync_folder(marker.parent)


def recover(path: Path) -> None:
    """Finish the group save of this checkpoint that a kill cut short after its commit, or discard
    the new checkpoint of one cut short before. Call it only where no worker is saving this run."""
    for marker in path.parent.glob(f"{COMMIT}*.json"):
        try:
            names = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue  # written atomically, so not one of ours
        if isinstance(names, list) and path.name in names and all(_plain_name(n) for n in names):
            _commit(marker, names)
    path.with_name(path.name + NEXT).unlink(missing_ok=True)


def _plain_name(name: object) -> bool:
    """A checkpoint's file name, nothing that reaches out of its folder."""
    return isinstance(name, str) and name == Path(name).name and name.endswith(".pt")


def load_checkpoint(path: Path, run_id: str) -> dict[str, Any] | None:
    """The run's state, or None when it has no checkpoint yet; a file that cannot be read or belongs
    to another run raises DamagedCheckpoint."""
    return _load(path, run_id, KEYS, "checkpoint")


def _load(path: Path, run_id: str, keys: dict[str, type], what: str) -> dict[str, Any] | None:
    """A run's file of `keys`, or None where nothing stands at `path`; anything else there that is
    not such a file of this run (a folder, a torn file, another run's, rows that are not its
    epochs') raises DamagedCheckpoint.
    Files are read as tensors and plain values only, wherever they come from."""
    if not (path.exists() or path.is_symlink()):
        return None
    if not path.is_file():
        raise DamagedCheckpoint(path, "is not a file")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DamagedCheckpoint(path, f"cannot be read ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        raise DamagedCheckpoint(path, f"is not a {what} of run {run_id}")
    wrong = [key for key, kind in keys.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise DamagedCheckpoint(path, f"lacks what a {what} holds ({', '.join(wrong)})")
    if not _records_fit(state.get("records", []), state["epoch"]):
        raise DamagedCheckpoint(path, "holds rows that are not its epochs'")
    return state


# A completed run's final weights: what reloading the trained net needs, and no optimizer state;
# with the precision it trained in and its rows (`records`), where its checkpoint held them, so
# that rows metrics.csv loses are restored from them as from a checkpoint.
WEIGHT_KEYS = {"run_id": str, "epoch": int, "iteration": int, "model": dict}


def load_weights(path: Path, run_id: str) -> dict[str, Any] | None:
    """A completed run's final weights (`WEIGHT_KEYS`), or None where it has none."""
    return _load(path, run_id, WEIGHT_KEYS, "weights file")


def fits(weights: dict[str, torch.Tensor], model: torch.nn.Module) -> bool:
    """Whether a checkpoint's weights are this net's: the same names and shapes."""
    mine = model.state_dict()
    return weights.keys() == mine.keys() and all(
        isinstance(w, torch.Tensor) and w.shape == mine[k].shape for k, w in weights.items()
    )


def keep_final_weights(checkpoint: Path, weights: Path, run_id: str) -> bool:
    """Turn a completed run's checkpoint into its final weights: the model and the run's rows (a
    56-layer net's 3.4 MB in fp32, half its checkpoint), written whole before the checkpoint goes,
    so a kill in between leaves both, never neither. The optimizer state only served to train on,
    which a completed run never does. False where the run has no checkpoint (its weights kept)."""
    state = load_checkpoint(checkpoint, run_id)
    if state is None:
        return False
    save_checkpoint(
        weights, {key: state[key] for key in (*WEIGHT_KEYS, "precision", "records") if key in state}
    )
    checkpoint.unlink()
    sync_folder(checkpoint.parent)
    return True


RECORD_FIELDS = {f.name for f in fields(EpochRecord)}


def _records_fit(records: object, epoch: int) -> bool:
    """Rows of consecutive epochs ending at the checkpoint's (a run resumed from a checkpoint written
    before rows were kept holds only the later ones), each with exactly a row's numbers."""
    if not isinstance(records, list):
        return False
    for i, r in enumerate(records):
        if not isinstance(r, dict) or r.keys() != RECORD_FIELDS or r["epoch"] != epoch - len(records) + 1 + i:
            return False
        if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in r.values()):
            return False
    return True
