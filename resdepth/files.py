"""Writes inside a results folder: whole or not at all, and never through a symbolic link.

A results folder may come from anyone (a download, a colleague's tarball), so no file or folder in it
is trusted to be what its name says: a `metrics.csv` or `figures/` that is a symbolic link would
make resdepth write wherever it points. Every write goes through `inside`, which refuses a link at
any step below the results folder, and files are opened with O_NOFOLLOW, so a link put there between
the check and the open is refused too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from resdepth.errors import UserError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")  # what `atomic_write` writes: .<name>.<pid>.tmp


def inside(folder: Path, *parts: str, mkdir: bool = False) -> Path:
    """`folder/parts...`, refused in one line if any step below `folder` is a symbolic link. With
    `mkdir`, the folders among `parts` (all but the last) are created."""
    path = folder
    for i, part in enumerate(parts):
        path = path / part
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link; resdepth never writes through one (remove it)")
        if mkdir and i < len(parts) - 1:
            path.mkdir(exist_ok=True)
    return path


def open_exclusive(path: Path) -> BinaryIO:
    """A new file for writing; refused if anything, a link included, is already there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
    return os.fdopen(fd, "wb")


def open_append(path: Path) -> BinaryIO:
    """`path` for appending, created if missing; a symbolic link there is an error, not followed."""
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link; resdepth never writes through one (remove it)")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o644)
    if os.fstat(fd).st_nlink > 1:  # a hard link: appending would change the other name's file too
        os.close(fd)
        raise UserError(f"{path} has another name (a hard link); resdepth never appends to one (copy it)")
    return os.fdopen(fd, "ab")


def atomic_write(
    path: Path, write: Callable[[BinaryIO], object], before_rename: Callable[[], None] | None = None
) -> None:
    """`write` fills a temporary file beside `path`, which is fsynced, renamed over `path`, and the
    folder fsynced: afterwards `path` holds the old content or the new, whole. A rename replaces a
    link at `path` rather than writing through it. `before_rename` is the fault harness's hook."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # one left by a killed process that had this pid
    try:
        with open_exclusive(tmp) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: name the file being replaced, not its temporary
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def remove_temporaries(folder: Path, subfolders: tuple[str, ...]) -> list[Path]:
    """Delete what killed writes left: `atomic_write`'s temporaries (`.NAME.PID.tmp`) in `folder` and
    the `subfolders` resdepth writes in it, none deeper (a folder of the user's is theirs), whose
    writer is shown to be gone: its pid runs no more on this machine, and no process holds the file
    open (a user's program may write a file named like one). A sweep calls it under the folder's
    lock; `plot`, `diagnose` and `export` write figures without it, so a live writer's temporary is
    left to it (one on another machine of a shared folder cannot be told from a killed one's).
    Links are never followed."""
    removed = []
    for where in [folder, *(folder / name for name in subfolders)]:
        if where.is_symlink() or not where.is_dir():
            continue
        for path in where.iterdir():
            if _left_by_a_killed_write(path):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _left_by_a_killed_write(path: Path) -> bool:
    found = _TEMPORARY.match(path.name)
    if not found or path.is_symlink() or not path.is_file():
        return False
    return not alive(int(found[1])) and not held_open(path)


def held_open(path: Path) -> bool:
    """Linux: whether any process this one may look at holds `path` open (elsewhere: False)."""
    target = str(path.resolve())
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == target:
                return True
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return False


def alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (another user's counts) and can still write; a
    number no process can have (0, or past the system's range, as a file name from anywhere may say)
    is not one, and neither is a process that a SIGKILL ended (`_ending`)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass
    return not _ending(pid)


_PF_EXITING = 0x4  # the kernel's flag on a process that is tearing itself down
_SIGKILL_BIT = 1 << (9 - 1)  # SIGKILL in /proc's pending-signal masks


def _ending(pid: int) -> bool:
    """Linux: whether `pid` runs no more code of its own: a zombie, a process exiting, or one with a
    SIGKILL pending (a --jobs worker whose driver was killed gets one, and may sit in an fsync until
    it acts). A zombie can stay for seconds where init reaps late, as in containers, and kill(pid, 0)
    succeeds on it: without this, a rerun right after a kill kept the dead worker's temporary file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # not Linux, or it ended meanwhile (then kill(pid, 0) answers next time)
        return False
    fields = stat.rsplit(")", 1)[1].split()  # after the name, which may hold spaces and ")"
    state, flags = fields[0], int(fields[6])
    pending = [
        int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))
    ]
    return state in ("Z", "X") or bool(flags & _PF_EXITING) or any(m & _SIGKILL_BIT for m in pending)


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform can open a folder to sync it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
