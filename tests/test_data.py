"""Datasets from the real official files, their cache, download path, augmentation and subsets."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resdepth.config import CROP_PADDING
from resdepth.data import readers, store
from resdepth.data.augment import crop_flip
from resdepth.data.download import MIRROR_ENV, download, download_file
from resdepth.data.sources import Remote
from resdepth.data.store import load
from resdepth.errors import UserError

CIFAR_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
MNIST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ~/.cache/resdepth, so cache tests see only their own files."""
    monkeypatch.setattr(store, "default_root", lambda: tmp_path / "home-cache")
    return tmp_path / "home-cache"


def _listing(path: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*"))


def test_cifar10_archive_read_in_place_matches_known_facts(real_data: Path) -> None:
    before = _listing(real_data)
    d = load("cifar10", real_data, offline=True)
    assert _listing(real_data) == before  # nothing extracted or cached into the data folder
    assert d.train_x.shape == (50_000, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (10_000, 3, 32, 32)
    assert d.per_class(d.train_y) == [5000] * 10
    assert d.per_class(d.test_y) == [1000] * 10
    assert d.test_y[:10].tolist() == CIFAR_TEST_LABELS
    assert d.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=1e-4)
    assert d.std == pytest.approx((0.2470, 0.2435, 0.2616), abs=1e-4)
    assert d.classes[0] == "airplane" and d.classes[9] == "truck"


@pytest.mark.slow
def test_cifar10_extracted_folder_gives_the_same_tensors(real_data: Path, tmp_path: Path, home: Path) -> None:
    with tarfile.open(real_data / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "data", filter="data")
    a = load("cifar10", real_data, offline=True)
    b = load("cifar10", tmp_path / "data", offline=True)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    # The extracted folder itself is accepted too.
    c = load("cifar10", tmp_path / "data" / "cifar-10-batches-py", offline=True)
    assert torch.equal(a.test_x, c.test_x)


def test_mnist_real_files_padded_to_32(real_data: Path) -> None:
    d = load("mnist", real_data, offline=True)
    assert d.train_x.shape == (60_000, 1, 32, 32) and d.test_x.shape == (10_000, 1, 32, 32)
    assert d.train_y[:10].tolist() == MNIST_TRAIN_LABELS
    assert torch.count_nonzero(d.train_x[:, :, :2]) == 0  # zero padding
    centre = d.train_x[:, :, 2:30, 2:30].double() / 255
    assert centre.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert centre.std().item() == pytest.approx(0.3081, abs=1e-4)


def test_a_copy_is_used_when_it_holds_the_official_content_and_refused_when_one_label_differs(
    real_data: Path, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _mnist_copy(real_data, tmp_path)  # re-compressed: not the official bytes, the official content
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = load("mnist", tmp_path, offline=True)
    assert len(d.train_y) == 60_000
    labels = raw / "train-labels-idx1-ubyte.gz"
    idx = bytearray(gzip.decompress(labels.read_bytes()))
    idx[8] = 6  # the first training label, a 5: one wrong label in 70,000 images
    labels.write_bytes(gzip.compress(bytes(idx)))
    with pytest.raises(UserError, match="does not hold mnist's official images and labels"):
        load("mnist", tmp_path, offline=True)
    # Files whose md5 is the publisher's are the official ones as they stand: no digest is asked of them
    # (here the altered copy's own md5s stand in for the publisher's, and the digest for another's).
    official = tuple(Remote(r.base_url, r.name, _md5(raw / r.name)) for r in store.REMOTES["mnist"])
    monkeypatch.setattr(store, "REMOTES", {**store.REMOTES, "mnist": official})
    monkeypatch.setattr(store, "CONTENT", {**store.CONTENT, "mnist": "not this copy's"})
    assert load("mnist", tmp_path, offline=True).train_y[0] == 6


def test_mnist_uncompressed_idx_files_in_a_flat_folder(real_data: Path, tmp_path: Path, home: Path) -> None:
    for gz in (real_data / "MNIST" / "raw").glob("*.gz"):
        (tmp_path / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    d = load("mnist", tmp_path, offline=True)
    assert d.train_y[:10].tolist() == MNIST_TRAIN_LABELS
    assert len(d.test_y) == 10_000


def _mnist_copy(real_data: Path, dest: Path) -> Path:
    raw = dest / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (real_data / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    return raw


def test_second_load_comes_from_the_cache_and_a_stale_cache_is_rebuilt(
    real_data: Path, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _mnist_copy(real_data, tmp_path)
    first = load("mnist", tmp_path, offline=True)
    assert list((tmp_path / "tensors").glob("mnist-*.pt"))  # writable data dir: cache beside it

    def no_parse(_folder: Path) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(readers, "read_mnist", no_parse)
    assert torch.equal(load("mnist", tmp_path, offline=True).train_x, first.train_x)
    monkeypatch.undo()
    monkeypatch.setattr(store, "default_root", lambda: home)

    # Replace the test labels file (re-compressed: other bytes, the same labels): the cache is stale
    # and must be rebuilt from the new file.
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()), compresslevel=1))
    parsed: list[Path] = []
    read_mnist = readers.read_mnist
    monkeypatch.setattr(readers, "read_mnist", lambda folder: parsed.append(folder) or read_mnist(folder))
    rebuilt = load("mnist", tmp_path, offline=True)
    assert parsed == [raw] and torch.equal(rebuilt.test_y, first.test_y)

    # A corrupt cache file is rebuilt, not trusted.
    (cache,) = (tmp_path / "tensors").glob("mnist-*.pt")
    cache.write_bytes(b"garbage")
    assert torch.equal(load("mnist", tmp_path, offline=True).test_y, rebuilt.test_y)


def test_truncated_archive_names_the_file(real_data: Path, tmp_path: Path, home: Path) -> None:
    blob = (real_data / "cifar-10-python.tar.gz").read_bytes()
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(UserError, match=r"cifar-10-python\.tar\.gz.*(truncated or corrupt|cannot read)"):
        load("cifar10", tmp_path, offline=True)


def test_corrupt_pickle_and_idx_header_are_one_clear_error(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(UserError, match="data_batch_1: cannot read the pickle"):
        load("cifar10", tmp_path, offline=True)
    mnist = tmp_path / "m"
    mnist.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # fmt: skip
        (mnist / stem).write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + b"\x00" * 12)
    with pytest.raises(UserError, match="train-images-idx3-ubyte: header says"):
        load("mnist", mnist, offline=True)
    # A gzip header before deflate data that is not deflate (block type 3): zlib's error, not an OSError.
    images = mnist / "train-images-idx3-ubyte"
    images.unlink()
    images.with_suffix(".gz").write_bytes(gzip.compress(b"")[:10] + b"\xff" * 64)
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz.*cannot decompress"):
        load("mnist", mnist, offline=True)


def test_pickles_cannot_run_code(tmp_path: Path) -> None:
    evil = io.BytesIO(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(UserError, match="cannot read the pickle"):
        readers._load_pickle(evil, "evil")


def test_missing_data_offline_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="resdepth data download cifar10"):
        load("cifar10", tmp_path, offline=True)


def test_bad_dataset_name_and_data_dir_that_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'imagenet'"):
        load("imagenet", tmp_path)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load("cifar10", f)


# --- download, against a local server ---------------------------------------------------------


class _Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut_next = 0  # how many requests to cut half-way
        self.garble_next = 0  # how many requests to answer with something that is not HTTP
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                if server.garble_next:
                    server.garble_next -= 1
                    self.wfile.write(b"garbage\r\n\r\n")  # http.client: BadStatusLine, an HTTPException
                    self.wfile.flush()
                    self.close_connection = True
                    return
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.cut_next:
                    server.cut_next -= 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(real_data: Path) -> Iterator[_Server]:
    s = _Server(real_data / "MNIST" / "raw")
    yield s
    s.httpd.shutdown()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_checks_md5_then_renames(server: _Server, real_data: Path, tmp_path: Path) -> None:
    src = real_data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    dest = download_file(server.url + src.name, tmp_path / src.name, _md5(src), progress=None)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def test_download_with_wrong_md5_deletes_the_file(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="checksum mismatch.*deleted"):
        download_file(server.url + "t10k-labels-idx1-ubyte.gz", tmp_path / "x.gz", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_connection_cut_half_way_is_retried(server: _Server, real_data: Path, tmp_path: Path) -> None:
    src = real_data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    server.cut_next = 1
    dest = download_file(server.url + src.name, tmp_path / src.name, _md5(src))
    assert server.requests == 2
    assert _md5(dest) == _md5(src)


def test_a_missing_file_is_said_at_once_not_retried(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="HTTP 404"):
        download_file(server.url + "no-such-file.gz", tmp_path / "a.gz", "0" * 32)
    assert server.requests == 1 and list(tmp_path.iterdir()) == []


def test_connection_cut_every_time_gives_up_cleanly(server: _Server, tmp_path: Path) -> None:
    server.cut_next = 5
    with pytest.raises(UserError, match="after 2 tries"):
        download_file(server.url + "t10k-images-idx3-ubyte.gz", tmp_path / "a.gz", "0" * 32, retries=2)
    assert list(tmp_path.iterdir()) == []


def test_download_command_checks_the_official_md5(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shared copies are re-compressed, so their md5 is not the official one: refused, nothing kept.
    monkeypatch.setenv(MIRROR_ENV, server.url)
    with pytest.raises(UserError, match="checksum mismatch"):
        download("mnist", tmp_path, show_progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_mirror_that_is_not_an_address_is_one_line(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRROR_ENV, "mirror.example.org/mnist")
    r = cli("data", "download", "mnist", "--data-dir", str(tmp_path))
    assert r.code == 2 and "$RESDEPTH_MIRROR must be an http://, https:// or file:// address" in r.err


def test_download_into_an_unwritable_place_is_one_line(cli) -> None:
    r = cli("data", "download", "mnist", "--data-dir", "/proc/resdepth-test")
    assert r.code == 2 and "cannot write to /proc/resdepth-test" in r.err


# --- augmentation and subsets -----------------------------------------------------------------


def test_crops_lie_inside_the_padded_image_and_flips_are_mirrors() -> None:
    images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8)
    out, offsets, flips = crop_flip(images, torch.Generator().manual_seed(1), CROP_PADDING)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert offsets.min() >= 0 and offsets.max() <= 8
    padded = F.pad(images, (4, 4, 4, 4))
    for i in range(len(images)):
        r, c = offsets[i].tolist()
        crop = padded[i, :, r : r + 32, c : c + 32]
        assert torch.equal(out[i], crop.flip(-1) if flips[i] else crop)
    # every offset pair occurs: the crop is uniform over the 9x9 positions
    assert len({tuple(o) for o in offsets.tolist()}) > 70


def test_about_half_the_images_are_flipped_and_seeds_repeat() -> None:
    images = torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8)
    a = crop_flip(images, torch.Generator().manual_seed(7), CROP_PADDING)
    b = crop_flip(images, torch.Generator().manual_seed(7), CROP_PADDING)
    assert 4_800 < int(a[2].sum()) < 5_200  # +-4 sigma of Binomial(10000, 0.5)
    assert torch.equal(a[0], b[0])
    c = crop_flip(images, torch.Generator().manual_seed(8), CROP_PADDING)
    assert not torch.equal(a[0], c[0])


def test_subsets_are_class_balanced_and_fixed_by_seed() -> None:
    d = load("synthetic")
    s = d.split(train_subset=500, val_split=200, seed=3)
    assert len(s.train_y) == 500 and d.per_class(s.train_y) == [50] * 10
    assert s.val_y is not None and len(s.val_y) == 200 and d.per_class(s.val_y) == [20] * 10
    again = d.split(train_subset=500, val_split=200, seed=3)
    assert torch.equal(s.train_x, again.train_x)
    other = d.split(train_subset=500, val_split=200, seed=4)
    assert not torch.equal(s.train_x, other.train_x)
    t = d.split(None, None, seed=0, test_subset=100)
    assert d.per_class(t.test_y) == [10] * 10


@pytest.mark.parametrize(("subset", "val"), [(0, None), (2001, None), (1900, 200), (None, 2000)])
def test_impossible_subsets_are_refused(subset: int | None, val: int | None) -> None:
    with pytest.raises(UserError, match="--(train-subset|val-split) must be between"):
        load("synthetic").split(subset, val, seed=0)


# --- files and servers that lie: refused or retried, never trusted --------------------------------


def test_an_idx_header_whose_sizes_overflow_is_refused(tmp_path: Path) -> None:
    # 2^31 x 2^31 x 4 = 2^64 images: a 64-bit product wraps to 0, which an empty body would match.
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big"))
    with pytest.raises(
        UserError, match=r"header says \[2147483648, 2147483648, 4\] but the data has 0 bytes"
    ):
        readers._read_idx(path)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 200]) + b"\0" * 8)
    with pytest.raises(UserError, match="promises 200 dimensions but the file ends first"):
        readers._read_idx(short)


def test_members_that_decompress_past_any_official_size_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "MAX_MEMBER_BYTES", 1_000)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(bytes(5_000)))  # 5 kB of zeros from a few dozen bytes
    with pytest.raises(UserError, match="decompresses past 1,000 bytes"):
        readers._read_idx(bomb)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = 5_000
        tar.addfile(info, io.BytesIO(bytes(5_000)))
    with pytest.raises(UserError, match="data_batch_1 claims 5,000 bytes, more than any official file"):
        readers.read_cifar("cifar10", archive, "cifar-10-batches-py")


def test_an_answer_that_is_not_http_is_retried(server: _Server, real_data: Path, tmp_path: Path) -> None:
    src = real_data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    server.garble_next = 1
    dest = download_file(server.url + src.name, tmp_path / src.name, _md5(src))
    assert server.requests == 2 and _md5(dest) == _md5(src)


def test_two_downloads_of_one_file_at_once_both_end_whole(
    server: _Server, real_data: Path, tmp_path: Path
) -> None:
    src = real_data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def fetch() -> None:
        start.wait()
        try:
            download_file(server.url + src.name, tmp_path / src.name, _md5(src))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _md5(tmp_path / src.name) == _md5(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # no part file left behind
