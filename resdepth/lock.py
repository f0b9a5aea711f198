"""One sweep at a time per results folder.

The lock is an OS file lock (flock on Unix, through the `filelock` package that torch already
depends on): the kernel releases it when its holder exits in any way, `kill -9` included, so a lock
is never left behind. Beside it the holder writes who it is, so that a refused sweep can say which
process (and host) is writing the folder.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from resdepth.errors import UserError

LOCK = ".resdepth.lock"
OWNER = ".resdepth.lock.owner"


class FolderLock:
    """Held while a sweep writes `folder`; `acquire` refuses in one line when another process holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = FileLock(str(folder / LOCK), timeout=0)

    def try_acquire(self) -> bool:
        try:
            self.lock.acquire()
        except Timeout:
            return False
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        (self.folder / OWNER).write_text(f"process {os.getpid()} on {socket.gethostname()}, since {when}\n")
        return True

    def acquire(self) -> None:
        if not self.try_acquire():
            raise UserError(
                f"{self.folder} is being written by another resdepth sweep ({holder(self.folder)}); "
                "wait for it to end or choose another --out"
            )

    def release(self) -> None:
        if self.lock.is_locked:
            (self.folder / OWNER).unlink(missing_ok=True)
            self.lock.release()

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
        return (folder / OWNER).read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"
