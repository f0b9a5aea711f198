"""Finding a dataset on disk (or fetching it), parsing it once, and keeping it as a tensor cache."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from resdepth.data import readers
from resdepth.data.download import download, md5sum
from resdepth.data.sources import CIFAR_FOLDERS, DATASETS, MNIST_FOLDER, REMOTES
from resdepth.errors import UserError
from resdepth.files import atomic_write

DATA_ENV = "RESDEPTH_DATA"
CACHE_VERSION = 2  # 2: caches are built only from copies whose content was checked (CONTENT)
# sha256 of each dataset's images, labels and class names as the readers return them (MNIST padded
# to 32x32): what any copy must hold, whatever its bytes (re-compressed, extracted, re-packed). An
# md5 vouches for one file's bytes only, and a damaged .tar.gz can still parse (tarfile never reads
# the gzip trailer, whose CRC would catch it).
CONTENT = {
    "cifar10": "3c5cd100257932317ec260f664c85a2f846d112fdb45bbaef77e3e555b2cb401",
    "mnist": "02f71b248a409ff735bd97f4c3e556f920f49c30b62877484860ab6d8ebcd2ce",
}


def default_root() -> Path:
    return Path.home() / ".cache" / "resdepth"


def resolve_root(data_dir: str | Path | None) -> Path:
    """`--data-dir` beats `$RESDEPTH_DATA`, which beats `~/.cache/resdepth`."""
    root = Path(data_dir or os.environ.get(DATA_ENV) or default_root()).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"data dir {root} is a file, not a folder")
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise UserError(f"data dir {root} is not readable")
    return root


@dataclass(frozen=True)
class Dataset:
    """A whole dataset as uint8 tensors (N, C, H, W) with int64 labels, plus what normalising needs."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of the full training split, in [0, 1]
    std: tuple[float, ...]
    source: str
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def size(self) -> int:
        return int(self.train_x.shape[-1])

    def per_class(self, labels: torch.Tensor) -> list[int]:
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    def facts(self) -> dict[str, object]:
        """What `resdepth data info` shows: where it is, split sizes, balance, statistics, classes."""
        return {
            "name": self.name,
            "source": self.source,
            "train": len(self.train_y),
            "test": len(self.test_y),
            "shape": [self.channels, self.size, self.size],
            "train_per_class": self.per_class(self.train_y),
            "test_per_class": self.per_class(self.test_y),
            "mean": [round(m, 4) for m in self.mean],
            "std": [round(s, 4) for s in self.std],
            "classes": list(self.classes),
        }

    def train_size(
        self, train_subset: int | None, val_split: int | None, test_subset: int | None = None
    ) -> int:
        """How many images a run trains on, whatever its seed; an error for a split that cannot be made."""
        n, val_split = len(self.train_y), val_split or 0
        if val_split < 0 or val_split >= n:
            raise UserError(f"--val-split must be between 0 and {n - 1}, got {val_split}")
        if train_subset is not None and not 0 < train_subset <= n - val_split:
            raise UserError(
                f"--train-subset must be between 1 and {n - val_split} for {self.name}, got {train_subset}"
            )
        if test_subset is not None and not 0 < test_subset <= len(self.test_y):
            raise UserError(f"--test-subset must be between 1 and {len(self.test_y)}, got {test_subset}")
        return n - val_split if train_subset is None else train_subset

    def split(
        self, train_subset: int | None, val_split: int | None, seed: int, test_subset: int | None = None
    ) -> Dataset:
        """Hold out `val_split` images, then keep a class-balanced `train_subset` of the rest.

        The training choice depends only on `seed`, so every run of a sweep with that seed sees the
        same images; a `test_subset` is the same class-balanced set for every seed, so runs compare.
        """
        self.train_size(train_subset, val_split, test_subset)
        val_split = val_split or 0
        order = _balanced_order(self.train_y, self.num_classes, seed)
        val_idx, rest = order[:val_split], order[val_split:]
        keep = rest if train_subset is None else rest[:train_subset]
        test = _balanced_order(self.test_y, self.num_classes, 0)[: test_subset or len(self.test_y)]
        test = test.sort().values
        keep = keep.sort().values
        val = val_idx.sort().values
        return replace(
            self,
            test_x=self.test_x[test],
            test_y=self.test_y[test],
            train_x=self.train_x[keep],
            train_y=self.train_y[keep],
            val_x=self.train_x[val] if val_split else None,
            val_y=self.train_y[val] if val_split else None,
        )


def _balanced_order(labels: torch.Tensor, classes: int, seed: int) -> torch.Tensor:
    """All indices, ordered so that every prefix is as class-balanced as possible (round-robin)."""
    g = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=g)
    by_class = [shuffled[labels[shuffled] == c] for c in range(classes)]
    rank = torch.empty(len(labels), dtype=torch.long)
    for c, idx in enumerate(by_class):
        rank[idx] = torch.arange(len(idx)) * classes + c
    return torch.argsort(rank)


def _locate(name: str, root: Path) -> Path | None:
    """The user's copy in any layout we accept: extracted folder, archive, or MNIST IDX files."""
    if name in CIFAR_FOLDERS:
        folder = CIFAR_FOLDERS[name]
        first = readers.CIFAR_LAYOUT[name][0][0]
        for candidate in (root / folder, root):
            if (candidate / first).is_file():
                return candidate
        archive = root / REMOTES[name][0].name
        return archive if archive.is_file() else None
    for candidate in (root / MNIST_FOLDER, root / "mnist" / "raw", root):
        if readers.mnist_file(candidate, "train-images-idx3-ubyte"):
            return candidate
    return None


def _source_files(name: str, source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if name == "mnist":
        found = [
            readers.mnist_file(source, stem) for pair in readers.MNIST_FILES.values() for stem in pair[:2]
        ]
        return sorted(p for p in found if p is not None)
    return sorted(p for p in source.iterdir() if p.is_file())


def _fingerprint(name: str, source: Path) -> str:
    """Changes when any source file changes, so a stale cache is rebuilt."""
    h = hashlib.sha256(f"{CACHE_VERSION}:{name}".encode())
    for f in _source_files(name, source):
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def cache_dirs(root: Path) -> list[Path]:
    """Beside the data first, else the user cache: a read-only data folder is never written to.

    A folder without write bits counts as read-only even for root, who could write to it anyway;
    a read-only mount shows up when the write itself fails, and the next folder is tried.
    """
    dirs = [default_root() / "tensors"]
    if root.is_dir() and root.stat().st_mode & 0o222 and root != default_root():
        dirs.insert(0, root / "tensors")
    return dirs


def content_digest(train: readers.Split, test: readers.Split, classes: list[str]) -> str:
    """sha256 of a dataset's tensors (their shapes and types too) and class names."""
    h = hashlib.sha256()
    for t in (*train, *test):
        h.update(f"{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.contiguous().numpy().tobytes())
    h.update("\n".join(classes).encode())
    return h.hexdigest()


def _check(name: str, source: Path, train: readers.Split, test: readers.Split, classes: list[str]) -> None:
    """A copy is the dataset when its files are the official ones (md5), or else when it holds
    exactly the official images, labels and class names (`CONTENT`): a re-compressed or extracted
    copy passes, a damaged or altered one does not. A CIFAR-100 archive that is not the official
    file, whose content is not known here, is used with a warning."""
    checked = _against_publisher(name, source)
    if name not in CONTENT:
        for f, official in checked if source.is_file() else []:
            if not official:
                warnings.warn(
                    f"{f} differs from the official file (md5); its structure checks out, using it",
                    stacklevel=3,
                )
        return
    if checked and all(official for _, official in checked):
        return
    if content_digest(train, test, classes) != CONTENT[name]:
        raise UserError(
            f"{source} does not hold {name}'s official images and labels (damaged or altered); "
            f"remove it and run `resdepth data download {name}`"
        )


def _against_publisher(name: str, source: Path) -> list[tuple[Path, bool]]:
    """The copy's files the publisher gives an md5 for, each with whether its md5 is that one."""
    known = {r.name: r.md5 for r in REMOTES[name]}
    return [(f, md5sum(f) == known[f.name]) for f in _source_files(name, source) if f.name in known]


def _parse(name: str, source: Path) -> tuple[readers.Split, readers.Split, list[str]]:
    if name == "mnist":
        return readers.read_mnist(source)
    return readers.read_cifar(name, source, CIFAR_FOLDERS[name])


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.double().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def load(name: str, data_dir: str | Path | None = None, offline: bool = False, seed: int = 0) -> Dataset:
    """The named dataset, from the tensor cache when it is fresh, else parsed (and downloaded)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if name == "synthetic":
        train, test, classes = readers.synthetic(seed)
        mean, std = _stats(train[0])
        return Dataset(name, *train, *test, tuple(classes), mean, std, f"synthetic(seed={seed})")
    root = resolve_root(data_dir)
    source = _locate(name, root)
    if source is None:
        if offline:
            raise UserError(
                f"{name} is not in {root}; run `resdepth data download {name} --data-dir {root}` "
                f"or point --data-dir / ${DATA_ENV} at a folder holding it"
            )
        source = download(name, root)
    fingerprint = _fingerprint(name, source)
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    caches = [d / f"{name}-{key}.pt" for d in cache_dirs(root)]
    for cache in caches:
        cached = _read_cache(cache, fingerprint)
        if cached is not None:
            return cached
    train, test, classes = _parse(name, source)
    _check(name, source, train, test, classes)
    mean, std = _stats(train[0])
    dataset = Dataset(name, *train, *test, tuple(classes), mean, std, str(source))
    for cache in caches:
        if _write_cache(cache, fingerprint, dataset):
            break
    return dataset


def _read_cache(path: Path, fingerprint: str) -> Dataset | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        if blob["fingerprint"] != fingerprint:
            return None
        return Dataset(
            blob["name"],
            blob["train_x"],
            blob["train_y"],
            blob["test_x"],
            blob["test_y"],
            tuple(blob["classes"]),
            tuple(blob["mean"]),
            tuple(blob["std"]),
            blob["source"],
        )
    except Exception:  # a corrupt or foreign cache file is simply rebuilt
        return None


def _write_cache(path: Path, fingerprint: str, d: Dataset) -> bool:
    """Best effort: a cache that cannot be written only costs a re-parse next time."""
    blob = {
        "fingerprint": fingerprint,
        "name": d.name,
        "train_x": d.train_x,
        "train_y": d.train_y,
        "test_x": d.test_x,
        "test_y": d.test_y,
        "classes": list(d.classes),
        "mean": list(d.mean),
        "std": list(d.std),
        "source": d.source,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(blob, f))  # removes its temporary file on failure
        return True
    except (OSError, RuntimeError):
        return False
