"""One sweep at a time per results folder.

The lock is an OS lock (flock) on an open file, `.resdepth.lock`: the kernel releases it when its
holder exits in any way, `kill -9` included, so a lock is never left behind. A lock on an open file
holds for that file only, so deleting or replacing `.resdepth.lock` would let a second sweep lock a
new file beside a running one: the holder therefore checks, before every write (`verify`), that the
file at that path is still the one it locked, and stops if not. Beside it the holder writes who it
is, so that a refused sweep can say which process (and host) is writing the folder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from resdepth.errors import UserError
from resdepth.files import NOFOLLOW, atomic_write, inside

LOCK = ".resdepth.lock"
OWNER = ".resdepth.lock.owner"


class FolderLock:
    """Held while a sweep writes `folder`; `acquire` refuses in one line when another process holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        path = inside(self.folder, LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)  # never truncates: holds nothing
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        text = f"process {os.getpid()} on {socket.gethostname()}, since {when}\n"
        atomic_write(inside(self.folder, OWNER), lambda f: f.write(text.encode()))
        return True

    def acquire(self) -> None:
        if not self.try_acquire():
            raise UserError(
                f"{self.folder} is being written by another resdepth sweep ({holder(self.folder)}); "
                "wait for it to end or choose another --out"
            )

    def verify(self) -> None:
        """Stop, before writing, if the lock file was deleted or replaced: another sweep may then
        hold a lock of its own on this folder."""
        if self.fd is None:
            return
        try:
            now = os.stat(self.folder / LOCK, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        held = os.fstat(self.fd)
        if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise UserError(
                f"{self.folder / LOCK} was removed or replaced while this sweep held it; stopped before "
                "writing, as another sweep may be writing the folder. Rerun to resume"
            )

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.verify()
            inside(self.folder, OWNER).unlink(missing_ok=True)
        except (UserError, OSError):
            pass  # the lock file is no longer ours: neither is the owner file beside it
        finally:
            os.close(self.fd)  # closing the file releases the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def holder(folder: Path) -> str:
    """Who holds the folder's lock, as its holder wrote it down."""
    try:
        path = inside(folder, OWNER)
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd) as f:
            return f.read(200).strip() or "unknown process"
    except (OSError, UserError):
        return "unknown process"
