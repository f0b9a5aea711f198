"""Parsers for the official file formats, each returning uint8 images (N, C, H, W) and int64 labels.

They check structure (counts, shapes, label range) and turn any malformed file into one UserError
that names the file, because a truncated download is the most common way these fail.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from resdepth.errors import UserError

Split = tuple[torch.Tensor, torch.Tensor]
# No official member comes near this: CIFAR-100's `train` pickle, the largest, is about 155 MB. A
# gzip or tar member that would decompress past it is refused before it fills memory or disk.
MAX_MEMBER_BYTES = 2 * 160 * 2**20
# What reading a damaged archive raises: a torn tar, a short or corrupt gzip stream (zlib's own error
# where the deflate data itself is bad, which is not an OSError).
UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error)


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only the numpy reconstruction they need, never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def corrupt(path: str | Path, what: str) -> UserError:
    return UserError(
        f"{path}: {what}; the file is truncated or corrupt: delete it and run `resdepth data download` again"
    )


def _load_pickle(stream: IO[bytes], label: str) -> dict[bytes, Any]:
    try:
        obj = _ArrayUnpickler(stream, encoding="bytes").load()
    except Exception as exc:  # any parse failure means a damaged file
        raise corrupt(label, f"cannot read the pickle ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise corrupt(label, "not a CIFAR batch")
    return obj


def _cifar_batch(obj: dict[bytes, Any], label_key: bytes, label: str, n: int, classes: int) -> Split:
    try:
        data = np.asarray(obj[b"data"])
        labels = np.asarray(obj[label_key])
    except KeyError as exc:
        raise corrupt(label, f"missing key {exc.args[0]!r}") from None
    except (ValueError, TypeError) as exc:  # ragged or unconvertible contents
        raise corrupt(label, f"not arrays of numbers ({exc.__class__.__name__})") from None
    if data.dtype != np.uint8 or labels.dtype.kind not in "iu":
        raise corrupt(
            label, f"pixels must be bytes and labels whole numbers, found {data.dtype} and {labels.dtype}"
        )
    if data.shape != (n, 3072) or labels.shape != (n,):
        raise corrupt(label, f"expected {n} images of 3072 bytes, found {data.shape}")
    if labels.min() < 0 or labels.max() >= classes:
        raise corrupt(label, f"labels outside 0..{classes - 1}")
    images = torch.from_numpy(data.reshape(n, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.astype(np.int64))


CIFAR_LAYOUT = {
    # name: (train members, test member, meta member, label key, names key, images per member, classes)
    "cifar10": (
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
        10000,
        10,
    ),
    "cifar100": (["train"], "test", "meta", b"fine_labels", b"fine_label_names", 50000, 100),
}


def read_cifar(name: str, path: Path, folder: str) -> tuple[Split, Split, list[str]]:
    """Read CIFAR from its archive (in place, nothing extracted) or from an extracted folder."""
    train_members, test_member, meta_member, label_key, names_key, per, classes = CIFAR_LAYOUT[name]
    opener: Callable[[str], IO[bytes]]
    archive: tarfile.TarFile | None = None
    if path.is_dir():

        def opener(member: str) -> IO[bytes]:
            file = path / member
            if not file.is_file():
                raise UserError(f"{file} is missing; the {name} folder is incomplete")
            return io.BytesIO(file.read_bytes())

    else:
        try:
            archive = tarfile.open(path, "r:gz")  # noqa: SIM115 (closed in the finally below)
        except UNREADABLE as exc:
            raise corrupt(path, f"not a readable .tar.gz ({exc})") from None

        def opener(member: str) -> IO[bytes]:
            assert archive is not None
            try:
                info = archive.getmember(f"{folder}/{member}")
                if info.size > MAX_MEMBER_BYTES:
                    raise corrupt(path, f"{member} claims {info.size:,} bytes, more than any official file")
                f = archive.extractfile(info)
            except KeyError:
                raise UserError(f"{path} has no {folder}/{member}; is it the {name} archive?") from None
            except UNREADABLE as exc:
                raise corrupt(path, f"cannot read {member} ({exc})") from None
            if f is None:
                raise corrupt(path, f"{member} is not a file")
            try:
                return io.BytesIO(f.read())
            except UNREADABLE as exc:
                raise corrupt(path, f"cannot read {member} ({exc})") from None

    try:
        parts = [
            _cifar_batch(_load_pickle(opener(m), f"{path}/{m}"), label_key, f"{path}/{m}", per, classes)
            for m in train_members
        ]
        test = _cifar_batch(
            _load_pickle(opener(test_member), f"{path}/{test_member}"),
            label_key,
            f"{path}/{test_member}",
            10000,
            classes,
        )
        meta = _load_pickle(opener(meta_member), f"{path}/{meta_member}")
    finally:
        if archive is not None:
            archive.close()
    train = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(names_key, [])]
    if len(names) != classes:
        raise corrupt(f"{path}/{meta_member}", f"expected {classes} class names")
    return train, test, names


def _read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzipped or not): big-endian magic, dims, then uint8 data."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                raw = f.read(MAX_MEMBER_BYTES + 1)
        else:
            raw = path.read_bytes()
    except UNREADABLE as exc:
        raise corrupt(path, f"cannot decompress ({exc})") from None
    if len(raw) > MAX_MEMBER_BYTES:
        raise corrupt(path, f"decompresses past {MAX_MEMBER_BYTES:,} bytes, more than any official file")
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise corrupt(path, "not an IDX file of unsigned bytes")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise corrupt(path, f"the header promises {ndim} dimensions but the file ends first")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = math.prod(dims)  # Python integers: a forged header cannot overflow this
    if len(raw) - offset != expected:
        raise corrupt(path, f"header says {dims} but the data has {len(raw) - offset} bytes")
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)
    return torch.from_numpy(data.copy())


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}


def mnist_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def read_mnist(folder: Path) -> tuple[Split, Split, list[str]]:
    """MNIST zero-padded from 28x28 to 32x32 with one channel, as LeNet-5 was fed."""
    splits = []
    for images_stem, labels_stem, n in MNIST_FILES.values():
        images_path, labels_path = mnist_file(folder, images_stem), mnist_file(folder, labels_stem)
        if images_path is None or labels_path is None:
            raise UserError(f"{folder} lacks {images_stem} or {labels_stem} (.gz or not)")
        images, labels = _read_idx(images_path), _read_idx(labels_path).long()
        if tuple(images.shape) != (n, 28, 28):
            raise corrupt(images_path, f"expected {n} images of 28x28, found {tuple(images.shape)}")
        if tuple(labels.shape) != (n,) or labels.max() > 9:
            raise corrupt(labels_path, f"expected {n} labels in 0..9")
        padded = torch.nn.functional.pad(images, (2, 2, 2, 2)).unsqueeze(1)
        splits.append((padded, labels))
    return splits[0], splits[1], [str(i) for i in range(10)]


def synthetic(seed: int = 0, train: int = 2000, test: int = 500) -> tuple[Split, Split, list[str]]:
    """A learnable CIFAR-shaped set made from a seed: each class is a smooth colour template + noise.

    It stands in for real data in fast tests and for users with no network; its numbers say nothing
    about CIFAR-10.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(10, 3, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") * 255

    def make(n: int) -> Split:
        labels = torch.arange(n) % 10
        labels = labels[torch.randperm(n, generator=g)]
        noise = torch.randn(n, 3, 32, 32, generator=g) * 60
        images = (templates[labels] + noise).clamp(0, 255).to(torch.uint8)
        return images, labels

    return make(train), make(test), [f"class{i}" for i in range(10)]
