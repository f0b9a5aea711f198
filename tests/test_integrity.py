"""Nothing logged is ever lost or forged: whatever the executor, the grid, the disk or the folder.

The fault harness (`resdepth.faults`) kills a sweep with SIGKILL at each named point, under each
executor; the rerun must give exactly the rows of an uninterrupted sweep. The other tests each hold
one promise that an adversarial user once broke (docs/guarantees.md lists them).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from resdepth import faults, results
from resdepth.checkpoints import save_checkpoint
from resdepth.config import SweepConfig
from resdepth.errors import InvalidNet, UserError
from resdepth.executors import ray_pool
from resdepth.files import alive
from resdepth.lock import LOCK, OWNER, FolderLock
from resdepth.models import NetSpec
from resdepth.models.summary import MEMORY_LIMIT, check_memory
from resdepth.runs import expand

pytestmark = pytest.mark.slow  # minutes of real sweeps: `make test` runs them, `make test-fast` does not

NUMBERS = [c for c in results.METRICS_COLUMNS if c not in ("epoch_seconds", "images_per_second")]
# Two runs of three epochs, one thread each (so every executor computes the same digits).
ARGS = ["--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--seeds", "0,1", "--epochs", "3",
        "--train-subset", "300", "--test-subset", "100", "--batch-size", "100", "--threads", "1",
        "--precision", "fp32"]  # fmt: skip
RAY = importlib.util.find_spec("ray") is not None
EXECUTORS = {"jobs 1": [], "jobs 2": ["--jobs", "2"], "ray": ["--executor", "ray"]}


def sweep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resdepth", "sweep", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


def numbers(out: Path) -> pd.DataFrame:
    return results.read_metrics(out)[NUMBERS].sort_values(["run_id", "epoch"]).reset_index(drop=True)


def command_lines() -> list[bytes]:
    """Every process's command line (Linux)."""
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # it ended meanwhile
            lines.append(path.read_bytes())
    return lines


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The rows of the uninterrupted sweep."""
    out = tmp_path_factory.mktemp("clean")
    done = sweep(*ARGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return numbers(out)


def assert_whole(out: Path, clean: pd.DataFrame) -> None:
    """Every row of the uninterrupted sweep, each once, both runs completed, no temporary file left."""
    pd.testing.assert_frame_equal(numbers(out), clean)
    runs = results.read_runs(out)
    assert [(r["status"], r["epochs_done"]) for r in runs.values()] == [("completed", "3")] * 2
    assert not [p for p in out.rglob(".*.tmp")]


# --- the fault harness: a kill at every point, under every executor ---------------------------


# Every point under --jobs 1. Under --jobs 2 and Ray, the point whose handling is theirs alone: the
# driver killed holding a row its worker went on to checkpoint (Ray's queue, a worker process's pipe);
# the writes themselves are the same driver code under every executor, and a killed worker is
# retried from its checkpoint under both (tests/test_executors.py).
# `mid-commit` fires only in a packed group's save (tests/test_pack.py kills a group there).
CASES = [("jobs 1", point) for point in faults.POINTS if point != "mid-commit"]
CASES += [("jobs 2", "row-received"), ("ray", "row-received")]


@pytest.mark.parametrize(("executor", "point"), CASES, ids=[f"{e}-{p}" for e, p in CASES])
def test_a_kill_at_any_point_loses_and_forges_nothing(
    cli, clean: pd.DataFrame, tmp_path: Path, executor: str, point: str
) -> None:
    if executor == "ray" and not RAY and not os.environ.get("RESDEPTH_REQUIRE_RAY"):
        pytest.skip("the ray extra is not installed")
    out, fired = tmp_path / "r", tmp_path / "fired"
    args = [*ARGS, *EXECUTORS[executor], "--out", str(out)]
    sweep(*args, env={"RESDEPTH_FAULT": f"{point}:2", "RESDEPTH_FAULT_ONCE": str(fired)})
    assert fired.exists(), f"the fault at {point} never fired"
    orphans = [p for p in Path(tempfile.gettempdir()).glob(f"{ray_pool.PRIVATE}*")
               if not alive(int(p.name.split("-")[2]))]  # fmt: skip
    again = cli("sweep", *args)  # in this process: only the killed sweep needs one of its own
    assert again.code == 0, again.err
    assert_whole(out, clean)
    # The row a kill left past its run's checkpoint is kept in discarded/, and its numbers are the
    # ones the resumed run wrote again.
    past = [
        results.read_metrics_file(p)[NUMBERS] for p in (out / results.DISCARDED).glob("*-past-epoch-*.csv")
    ]
    assert len(past) == 1 if point == "row-written" else len(past) <= 1
    for row in past:
        assert len(row) == 1 and len(row.merge(clean)) == 1
    if executor == "ray":  # the killed driver's private instance: its folder and processes are gone
        assert orphans and not any(p.exists() for p in orphans)
        assert not [c for c in command_lines() for p in orphans if str(p).encode() in c]


def test_ray_cleanup_removes_only_what_a_dead_driver_recorded_making(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # $TMPDIR for this test
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> int:
        started.append(subprocess.Popen(command))
        return started[-1].pid

    def instance(folder: Path, driver: tuple[int, int], procs: list[int]) -> Path:
        folder.mkdir()
        ids = [(pid, ray_pool._start_time(pid)) for pid in procs]
        (folder / ray_pool.RECORD).write_text(json.dumps({"driver": driver, "processes": ids}))
        return folder

    gone = subprocess.Popen(["true"])
    gone.wait()  # a driver that ran and was killed: its pid runs no more
    private = f"{tmp_path}/{ray_pool.PRIVATE}"
    try:
        raylet = start("sh", "-c", "sleep 600 & wait")  # recorded; its child is a worker started later
        reused = start("sleep", "600")  # its pid is recorded, but for a process that started earlier
        orphan = Path(f"{private}{gone.pid}-a")
        orphan.mkdir()
        ids = [[raylet, ray_pool._start_time(raylet)], [reused, ray_pool._start_time(reused) - 1]]
        (orphan / ray_pool.RECORD).write_text(json.dumps({"driver": [gone.pid, 1], "processes": ids}))
        live_ray = start("sleep", "600")  # a live sweep's instance (this process is its driver)
        live = instance(
            Path(f"{private}{os.getpid()}-b"), (os.getpid(), ray_pool._start_time(os.getpid())), [live_ray]
        )
        users = Path(f"{private}{gone.pid}")  # named like one, no record: a user's, and read
        users.mkdir()
        (users / "notes.txt").write_text("mine")
        reader = start("tail", "-f", str(users / "notes.txt"))
        elsewhere = instance(tmp_path / "elsewhere", (gone.pid, 1), [])  # a link named like one, to it
        Path(f"{private}{gone.pid}-c").symlink_to(elsewhere)
        deadline = time.time() + 10
        while not ray_pool._descendants([raylet]) and time.time() < deadline:
            time.sleep(0.01)
        (worker,) = ray_pool._descendants([raylet])
        assert ray_pool.remove_orphans() == [orphan]
        assert not orphan.exists() and not alive(raylet) and not alive(worker)
        assert all(alive(pid) for pid in (reused, live_ray, reader))
        assert (live / ray_pool.RECORD).is_file() and (users / "notes.txt").read_text() == "mine"
        assert (elsewhere / ray_pool.RECORD).is_file() and Path(f"{private}{gone.pid}-c").is_symlink()
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def test_a_row_handed_to_a_driver_that_died_is_restored_from_the_checkpoint(cli, tmp_path: Path) -> None:
    # A driver killed between receiving a row and writing it, while the worker went on to save the
    # checkpoint that follows the row: the row exists only in that checkpoint. (With a validation
    # split, so that its columns are restored too.)
    out = tmp_path / "r"
    args = [*ARGS, "--val-split", "100", "--out", str(out)]
    assert cli("sweep", *args).code == 0
    whole = numbers(out)
    assert whole["val_error"].notna().all()
    run_id = sorted(results.read_runs(out))[0]
    results.drop_rows_after(out, run_id, 1)  # epochs 2 and 3 never written
    report = cli("report", str(out))
    assert f"({run_id}): interrupted, 1 of 3 epochs" in report.out  # never shown as finished
    dry = cli("sweep", *args, "--dry-run")
    assert dry.out.count(" done ") + dry.out.count(" done\n") >= 2, dry.out  # restorable
    again = cli("sweep", *args)
    assert again.code == 0, again.err
    assert f"{run_id}: 2 row(s) restored from its checkpoint" in again.out
    assert "0 to train" in again.out
    pd.testing.assert_frame_equal(numbers(out), whole)
    assert [r["status"] for r in results.read_runs(out).values()] == ["completed"] * 2


# --- the grid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid", [["--depth", "8,8"], ["--seeds", "0,0,1"], ["--depth", "8,8", "--jobs", "2"]]
)
def test_a_value_given_twice_is_one_run(cli, clean: pd.DataFrame, tmp_path: Path, grid: list[str]) -> None:
    out = tmp_path / "r"
    done = cli("sweep", *ARGS, *grid, "--out", str(out))
    assert done.code == 0, done.err
    assert "2 runs" in done.out
    assert_whole(out, clean)
    assert len(expand(SweepConfig(depth=[8, 8], seeds=[0, 0]), {"cifar10": 1000})) == 2  # plain, resnet


# --- the disk -------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_its_torn_row_is_never_trusted(
    cli, clean: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r"
    real = results.open_append
    appends = []

    class Full:
        """The second row's write gets half way before the disk is full."""

        def __init__(self, path: Path) -> None:
            self.f, self.path = real(path), path

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def fileno(self) -> int:
            return self.f.fileno()

        def write(self, data: bytes) -> int:
            appends.append(data)
            if len(appends) < 2:
                return self.f.write(data)
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() raises it: no file name

        def flush(self) -> None:
            self.f.flush()

    monkeypatch.setattr(results, "open_append", Full)
    r = cli("sweep", *ARGS, "--out", str(out))
    assert r.code == 1
    assert (
        one_line(r.err)
        == f"error: No space left on device: {out / 'metrics.csv'} (nothing already written was lost)"
    )
    assert not (out / "metrics.csv").read_bytes().endswith(b"\n")  # the torn row is on disk
    assert len(results.read_metrics(out)) == 1  # and not read as a row
    monkeypatch.setattr(results, "open_append", real)
    again = cli("sweep", *ARGS, "--out", str(out))
    assert again.code == 0, again.err
    assert_whole(out, clean)
    (torn,) = (out / results.DISCARDED).glob("*-torn-line.csv")
    assert torn.read_bytes() == appends[1][: len(appends[1]) // 2]  # kept, not deleted


@pytest.mark.parametrize("executor", ["jobs 1", "jobs 2"])
def test_a_full_disk_at_a_checkpoint_stops_the_sweep_in_one_line_and_resumes(
    clean: pd.DataFrame, tmp_path: Path, executor: str
) -> None:
    out = tmp_path / "r"
    # Each process's second checkpoint (epoch 2 of a run) meets a full disk.
    full = sweep(
        *ARGS, *EXECUTORS[executor], "--out", str(out), env={"RESDEPTH_FAULT": "mid-checkpoint:2:full"}
    )
    assert full.returncode == 1
    line = one_line(full.stderr)
    assert line.startswith(f"error: No space left on device: {out / results.CHECKPOINTS}/")
    assert line.endswith(".pt (nothing already written was lost)")
    runs = results.read_runs(out)
    assert "completed" not in {r["status"] for r in runs.values()}  # the other run did not fail in turn
    assert "failed" not in {r["status"] for r in runs.values()} and "interrupted" in {
        r["status"] for r in runs.values()
    }
    assert not list(out.rglob(".*.tmp"))
    again = sweep(*ARGS, *EXECUTORS[executor], "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert_whole(out, clean)


def test_a_token_deleted_during_a_sweep_is_said_by_the_driver_and_the_runs_resume(
    clean: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / results.CHECKPOINTS).glob("*.pt")):
        time.sleep(0.02)
    (out / results.NONCE).unlink()  # while the first run trains; the second cannot start
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert one_line(err) == (
        f"error: {out / results.NONCE} was deleted or replaced while the sweep ran, so no node can tell "
        "that it shares the results folder; the same command resumes the interrupted runs"
    )
    again = sweep(*ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert_whole(out, clean)


def test_a_damaged_row_is_an_error_naming_its_line(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert cli("sweep", *ARGS, "--seeds", "0", "--out", str(out)).code == 0
    lines = (out / "metrics.csv").read_text().splitlines(keepends=True)  # a header and 3 rows
    test_error = lines[2].split(",")[results.METRICS_COLUMNS.index("test_error")]
    fields = lines[2].split(",")
    fields[results.METRICS_COLUMNS.index("epoch")] = "inf"  # parses as a float, counts nothing
    cases = {
        "short": (lines[:2] + ["abc,resnet,8\n"] + lines[2:], "line 3 has 3 fields where the header has"),
        "not a number": (
            [*lines[:2], lines[2].replace(test_error, "4O.1"), *lines[3:]],
            "line 3: test_error is '4O.1', not a number",
        ),
        "infinite": (
            [*lines[:2], ",".join(fields), *lines[3:]],
            "line 3: epoch is 'inf', not a whole number",
        ),
        "twice": ([*lines, lines[2]], "line 5: epoch 2 of run"),
        "a carriage return": ([*lines[:2], "abc\rdef,x\n", *lines[2:]], "line 3 is damaged"),
    }
    for case, (text, message) in cases.items():
        (out / "metrics.csv").write_text("".join(text), newline="")
        for command in (["report", str(out)], ["sweep", *ARGS, "--seeds", "0", "--out", str(out)]):
            r = cli(*command)
            assert r.code == 2, (case, r.err)
            assert f"{out / 'metrics.csv'} {message}" in one_line(r.err), case
    (out / "metrics.csv").write_bytes("".join(lines[:2]).encode() + b"\x80\xff junk\n")
    r = cli("sweep", *ARGS, "--seeds", "0", "--out", str(out))
    assert r.code == 2 and "metrics.csv line 3 is not text" in one_line(r.err)
    # runs.csv: a status resdepth never writes
    (out / "metrics.csv").write_text("".join(lines), newline="")
    runs = (out / "runs.csv").read_text()
    (out / "runs.csv").write_text(runs.replace(",completed,", ",done,"))
    for command in (["report", str(out)], ["sweep", *ARGS, "--seeds", "0", "--out", str(out), "--dry-run"]):
        r = cli(*command)
        assert (
            r.code == 2
            and f"{out / 'runs.csv'} line 2: status 'done' is not one resdepth writes" in one_line(r.err)
        ), r.err


# --- checkpoints ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A run of seed 0 killed after epoch N's row, before its checkpoint (N = 2 and 3)."""
    folders = {}
    for at in (2, 3):
        out = tmp_path_factory.mktemp(f"killed-at-{at}")
        env = {"RESDEPTH_FAULT": f"row-written:{at}", "RESDEPTH_FAULT_ONCE": str(out.parent / f"fired-{at}")}
        sweep(*ARGS, "--seeds", "0", "--out", str(out / "r"), env=env)
        folders[at] = out / "r"
    return folders


@pytest.mark.parametrize("damage", ["missing", "wrong keys", "another net", "forged rows", "rows lost"])
def test_a_partial_run_whose_checkpoint_is_unusable_is_refused_until_restarted(
    cli, clean: pd.DataFrame, killed: dict[int, Path], tmp_path: Path, damage: str
) -> None:
    at = 3 if damage == "rows lost" else 2
    out = tmp_path / "r"
    shutil.copytree(killed[at], out)
    args = [*ARGS, "--seeds", "0", "--out", str(out)]
    before = numbers(out)
    assert len(before) == at  # the last epoch logged, its checkpoint not yet saved
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    if damage == "missing":
        ckpt.unlink()
    elif damage == "wrong keys":
        save_checkpoint(ckpt, {"run_id": ckpt.stem, "epochs": 1})
    else:
        state = torch.load(ckpt, weights_only=True)
        if damage == "another net":
            state["model"] = {"fc.weight": torch.zeros(3, 3)}
        elif damage == "forged rows":
            state["records"][0]["test_error"] = "0.0"
        else:  # a checkpoint written before they held rows (epoch 2), and metrics.csv lost epoch 2's
            del state["records"]
            results.drop_rows_after(out, ckpt.stem, 1)
            before = numbers(out)
        save_checkpoint(ckpt, state)
    refused = cli("sweep", *args)
    assert refused.code == 2
    assert "--restart damaged" in one_line(refused.err)
    pd.testing.assert_frame_equal(numbers(out), before)  # nothing lost, nothing trained over it
    again = cli("sweep", *args, "--restart", "damaged")
    assert again.code == 0, again.err
    pd.testing.assert_frame_equal(numbers(out), clean[clean["seed"] == 0].reset_index(drop=True))
    (kept,) = (out / results.DISCARDED).glob(f"*-{ckpt.stem}.csv")
    pd.testing.assert_frame_equal(results.read_metrics_file(kept)[NUMBERS].reset_index(drop=True), before)


# --- the folder -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [OWNER, LOCK, results.METRICS, results.CHECKPOINTS, results.FIGURES])
def test_a_link_in_a_results_folder_is_never_written_through(cli, tmp_path: Path, name: str) -> None:
    out = tmp_path / "r"
    assert cli("sweep", *ARGS, "--seeds", "0", "--epochs", "1", "--out", str(out)).code == 0
    victim = tmp_path / "victim"
    if name in (results.CHECKPOINTS, results.FIGURES):
        victim.mkdir()
    else:
        victim.write_text("precious\n")
    target = out / name
    if target.is_dir():
        for p in target.iterdir():
            p.unlink()
        target.rmdir()
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(victim)
    swept = cli("sweep", *ARGS, "--seeds", "0", "--epochs", "2", "--out", str(out))
    assert swept.code == 2 and "is a symbolic link" in one_line(swept.err)
    if name == results.FIGURES:
        plotted = cli("plot", str(out))
        assert plotted.code == 2 and "is a symbolic link" in one_line(plotted.err)
    if name != results.METRICS:
        assert cli("report", str(out)).code == 0
    assert (sorted(victim.iterdir()) == []) if victim.is_dir() else victim.read_text() == "precious\n"


def test_report_writes_nothing(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert cli("sweep", *ARGS, "--seeds", "0", "--epochs", "1", "--out", str(out)).code == 0
    (out / LOCK).unlink()
    (out / "runs.csv").write_text((out / "runs.csv").read_text().replace("completed", "running"))
    before = {p: p.read_bytes() if p.is_file() else None for p in out.rglob("*")}
    assert cli("report", str(out)).code == 0
    assert {p: p.read_bytes() if p.is_file() else None for p in out.rglob("*")} == before


def test_a_lock_file_deleted_or_replaced_stops_its_holder_before_it_writes(tmp_path: Path) -> None:
    first = FolderLock(tmp_path)
    first.acquire()
    (tmp_path / LOCK).unlink()  # the holder's lock now guards nothing
    second = FolderLock(tmp_path)
    assert second.try_acquire()
    with pytest.raises(UserError, match="was removed or replaced while this sweep held it"):
        first.verify()
    second.verify()
    first.release()  # the lock file is not its own any more: it leaves the second's owner file
    assert (tmp_path / OWNER).is_file()
    second.release()
    assert not (tmp_path / OWNER).exists()


def test_a_sweep_whose_lock_is_deleted_stops_at_its_next_write(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = [*ARGS, "--seeds", "0", "--epochs", "50", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.csv").is_file():
        time.sleep(0.05)
    (out / LOCK).unlink()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "was removed or replaced" in one_line(err)
    at = results.METRICS_COLUMNS.index("epoch")
    epochs = [line.split(",")[at] for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, len(epochs) + 1)]  # each once, none after the stop


def test_temporaries_of_killed_writes_are_removed_by_the_next_sweep_and_no_others(
    cli, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    zombie = subprocess.Popen(["true"])  # ended but not reaped: kill(pid, 0) still finds it
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    left = [  # pids no process has (past any pid_max, 2**22, and past what a pid can be), and a zombie's
        out / ".metrics.csv.2147483647.tmp",
        out / results.CHECKPOINTS / ".abc.pt.99999999999999999999.tmp",
        out / results.CHECKPOINTS / f".def.pt.{zombie.pid}.tmp",  # a killed --jobs worker's, seconds after
    ]
    left[1].parent.mkdir(parents=True)
    for p in left:
        p.write_text("half")
    keep = out / ".notes.tmp"  # not a name resdepth writes
    keep.write_text("mine")
    live = out / f".layers.png.{os.getpid()}.tmp"  # a plot writing beside the sweep (no lock)
    live.write_text("half drawn")
    # Named like a killed write's (no process has pid 2147483647), but a live program's: one in a
    # folder of the user's, one held open in a folder resdepth writes.
    drafts = [out / "mine" / ".draft.2147483647.tmp", out / results.CHECKPOINTS / ".notes.pt.2147483647.tmp"]
    drafts[0].parent.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; fs = [open(p, 'w') for p in sys.argv[1:]]; time.sleep(600)",
         *map(str, drafts)],
    )  # fmt: skip
    try:
        while not all(d.exists() for d in drafts):
            time.sleep(0.01)
        assert cli("sweep", *ARGS, "--seeds", "0", "--epochs", "1", "--out", str(out)).code == 0
        assert not any(p.exists() for p in left) and keep.exists() and live.read_text() == "half drawn"
        assert all(d.exists() for d in drafts)
    finally:
        writer.kill()
        writer.wait()
    zombie.wait()


# --- a mistake is one line, decided the same on every host ----------------------------------------


def test_memory_rule_is_the_same_on_every_host(monkeypatch: pytest.MonkeyPatch) -> None:
    check_memory(NetSpec("resnet", 1202), 128)  # the paper's deepest net, everywhere
    with pytest.raises(InvalidNet, match=r"ResNet-10002 would need about 138\.5 GiB .* limit of 32\.0 GiB"):
        check_memory(NetSpec("resnet", 10002), 128)
    assert MEMORY_LIMIT == 32 * 2**30
    with pytest.raises(InvalidNet, match=r"would need about 57\.4 GiB to train at batch 1"):
        check_memory(NetSpec("plain", 200_002), 1)  # what `describe` builds: refused on a large host too

    class SmallGPU:
        total_memory = 8 * 2**30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SmallGPU())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "a small GPU")
    with pytest.raises(InvalidNet, match=r"more than the 8\.0 GiB of a small GPU"):
        check_memory(NetSpec("resnet", 1202), 128, torch.device("cuda"))


def test_a_cifar_batch_of_text_is_one_line(cli, tmp_path: Path) -> None:
    import pickle
    import tarfile

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": [["x"] * 3072] * 10000, b"labels": [0] * 10000}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    r = cli("sweep", "--depth", "8", "--epochs", "1", "--data-dir", str(tmp_path), "--offline", "--dry-run")
    assert r.code == 2
    assert "data_batch_1" in one_line(r.err) and "pixels must be bytes" in r.err


def test_writing_where_the_system_refuses_is_one_line(cli, tmp_path: Path, real_data: Path) -> None:
    blocker = tmp_path / "file"  # as root, a read-only folder is writable: a file in the way is not
    blocker.write_text("")
    r = cli("diagnose", "--arch", "resnet", "--depth", "8", "--what", "grads", "--out", str(blocker / "sub"),
        "--data-dir", str(real_data), "--offline")  # fmt: skip
    assert r.code != 0 and "Not a directory" in one_line(r.err)
