"""Fetching the official archives: temporary file, md5 check, then rename; bounded retries."""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from resdepth.data.sources import CIFAR_FOLDERS, MNIST_FOLDER, REMOTES, Remote
from resdepth.errors import UserError

CHUNK = 1 << 20
# Institutional mirrors (and the tests' local server) replace the official base address with this.
MIRROR_ENV = "RESDEPTH_MIRROR"


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_once(url: str, part: Path, progress: Progress | None, label: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
        length = response.headers.get("Content-Length") or ""
        total = int(length) if length.isdigit() and int(length) > 0 else None  # else unknown
        task = progress.add_task(label, total=total) if progress else None
        received = 0
        while chunk := response.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
            if progress and task is not None:
                progress.update(task, completed=received)
        if total is not None and received != total:
            raise ConnectionError(f"connection closed after {received} of {total} bytes")
        out.flush()
        os.fsync(out.fileno())  # on disk before the rename makes it the file


def download_file(url: str, dest: Path, md5: str, retries: int = 3, progress: Progress | None = None) -> Path:
    """Download `url` to `dest`; `dest` appears only once its md5 matched, never half-written."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to {dest.parent}: {exc.strerror or exc}") from None
    # A name of its own, so that two downloads of the same file at once cannot write into one part.
    part = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    last_error = ""
    try:
        for attempt in range(1, retries + 1):
            try:
                _fetch_once(url, part, progress, dest.name)
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # the address is wrong, not the network: asking again cannot help
                    raise UserError(f"could not download {url}: HTTP {exc.code} ({exc.reason})") from None
                last_error = f"HTTP {exc.code} ({exc.reason})"
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
                OSError,
            ) as exc:
                last_error = str(getattr(exc, "reason", exc))
            if attempt < retries:
                time.sleep(min(2.0 ** (attempt - 1), 10.0) * 0.5)
        else:
            raise UserError(f"could not download {url} after {retries} tries: {last_error}")
        actual = md5sum(part)
        if actual != md5:
            raise UserError(
                f"checksum mismatch for {url}: md5 {actual}, expected {md5}; "
                "the download was deleted, try again later or from another network"
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def download(name: str, root: Path, show_progress: bool = True) -> Path:
    """Fetch dataset `name` into `root` in torchvision's layout and return what holds it: MNIST's
    folder, or CIFAR's archive, which the readers read in place (an extraction would be a second
    copy on disk, and one a kill could leave half-written for the next run to find)."""
    if name not in REMOTES:
        raise UserError(f"{name} has nothing to download; valid: {', '.join(REMOTES)}")
    mirror = os.environ.get(MIRROR_ENV)
    target = root / MNIST_FOLDER if name == "mnist" else root
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show_progress) as progress:
        for remote in REMOTES[name]:
            dest = target / remote.name
            if dest.is_file() and md5sum(dest) == remote.md5:
                continue
            download_file(_url(remote, mirror), dest, remote.md5, progress=progress)
    return root / REMOTES[name][0].name if name in CIFAR_FOLDERS else target


def _url(remote: Remote, mirror: str | None) -> str:
    if mirror and urllib.parse.urlsplit(mirror).scheme not in ("http", "https", "file"):
        raise UserError(f"${MIRROR_ENV} must be an http://, https:// or file:// address, got {mirror!r}")
    base = mirror.rstrip("/") + "/" if mirror else remote.base_url
    return base + remote.name
