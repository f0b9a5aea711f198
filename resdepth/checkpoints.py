"""A run's checkpoint: everything needed to continue it exactly, written so that neither a kill nor a
power loss can leave a torn one, and never silently mistaken for "no checkpoint" when it is damaged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resdepth.files import atomic_write


class DamagedCheckpoint(Exception):
    """A checkpoint file exists but cannot be used (truncated, corrupt, or another run's)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written atomically and durably: after a kill or a power loss the path holds the previous
    checkpoint or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, run_id: str) -> dict[str, Any] | None:
    """The run's state, or None when it has no checkpoint yet; a file that cannot be read or belongs
    to another run raises DamagedCheckpoint."""
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DamagedCheckpoint(path, f"cannot be read ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        raise DamagedCheckpoint(path, f"is not a checkpoint of run {run_id}")
    return state
