"""Named points where the fault-injection tests kill a process, to prove what survives a kill there.

`RESDEPTH_FAULT=POINT:N` kills the process (SIGKILL, as `kill -9` does) the Nth time it reaches
POINT; `RESDEPTH_FAULT=POINT:N:full` raises there what a write into a full disk raises instead. With `RESDEPTH_FAULT_ONCE=PATH` it fires only in the first process to get there (it creates
PATH), so a worker started again after the kill runs on. Unset, `point` costs one dictionary look-up.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

POINTS = (
    "row-sent",  # a worker handed an epoch's row to the driver and has not saved the checkpoint
    "row-received",  # the driver holds a row it has not written
    "row-written",  # the driver wrote a row to metrics.csv, nothing after it
    "mid-row",  # the driver wrote half a row
    "mid-checkpoint",  # a checkpoint's temporary file is written, not yet renamed into place
    "mid-commit",  # a packed group's checkpoints are committed, one renamed into place, not the others
)
_hits: dict[str, int] = {}


def point(name: str, before: Callable[[], object] | None = None) -> None:
    """Kill this process here if RESDEPTH_FAULT names this point and this is its hit, after calling
    `before` (what the process was doing when it died, such as half a write)."""
    spec = os.environ.get("RESDEPTH_FAULT")
    if not spec:
        return
    wanted, _, rest = spec.partition(":")
    if wanted != name:
        return
    nth, _, action = rest.partition(":")
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != int(nth or 1):
        return
    once = os.environ.get("RESDEPTH_FAULT_ONCE")
    if once:
        try:
            Path(once).touch(exist_ok=False)
        except FileExistsError:
            return
    if before is not None:
        before()
    if action == "full":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)
