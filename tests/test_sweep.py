"""`resdepth sweep`: configuration, CSV contents, resume after SIGKILL and Ctrl-C, faults, bad input."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from resdepth import device, executors, results, step
from resdepth.checkpoints import DamagedCheckpoint, load_checkpoint, save_checkpoint
from resdepth.config import PAPER_ITERATIONS, SweepConfig, resolve
from resdepth.data.store import load
from resdepth.errors import UserError
from resdepth.results import EpochRecord
from resdepth.runs import epochs_for, expand
from resdepth.train import Schedule, train_run

# Columns that must be identical between an interrupted-then-resumed sweep and an uninterrupted one.
NUMBERS = [c for c in results.METRICS_COLUMNS if c not in ("epoch_seconds", "images_per_second")]
TINY = ["--dataset", "synthetic", "--depth", "8", "--batch-size", "100"]
# One small run of three epochs: killed at a fault point, then resumed.
THREE_EPOCHS = ["sweep", *TINY, "--arch", "resnet", "--epochs", "3", "--train-subset", "200", "--test-subset", "100"]  # fmt: skip


def run_cli(*args: str, timeout: float = 300, fault: str = "") -> subprocess.CompletedProcess[str]:
    """`resdepth ARGS` in a process of its own, killed at the fault point FAULT (faults.py) if given."""
    env = {**os.environ, "RESDEPTH_FAULT": fault}
    return subprocess.run(
        [sys.executable, "-m", "resdepth", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def numbers(out: Path) -> pd.DataFrame:
    frame = results.read_metrics(out)[NUMBERS]
    return frame.sort_values(["run_id", "epoch"]).reset_index(drop=True)


# --- configuration ----------------------------------------------------------------------------


def test_paper_defaults_give_164_epochs_on_cifar10() -> None:
    cfg = SweepConfig()
    assert (cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert epochs_for(cfg, 50_000) == 164 == -(-PAPER_ITERATIONS // 391)


def test_schedule_divides_by_ten_at_the_milestones() -> None:
    (run,) = expand(SweepConfig(arch=["resnet"], depth=[20], epochs=10), {"cifar10": 1000})
    s = Schedule(run, iterations_per_epoch=8)  # 80 iterations: drops at 40 and 60
    assert [s.lr(i) for i in (0, 39, 40, 59, 60, 79)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_the_paper_recipe_on_cifar10_drops_the_lr_at_epoch_ends_just_after_32k_and_48k() -> None:
    """docs/results.md states these iterations: 164 epochs of 391 mini-batches, so the fractions 0.5
    and 0.75 fall at the ends of epochs 82 and 123, 62 and 93 iterations after the paper's."""
    (run,) = expand(SweepConfig(arch=["resnet"], depth=[20]), {"cifar10": 50_000})
    assert (run.epochs, run.warmup) == (164, False)
    s = Schedule(run, iterations_per_epoch=391)
    assert s.milestones == [32_062, 48_093] == [82 * 391, 123 * 391]
    assert [s.lr(i) for i in (0, 32_061, 32_062, 48_092, 48_093, 164 * 391 - 1)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_warmup_for_depth_110_holds_lr_until_error_below_80() -> None:
    runs = expand(SweepConfig(arch=["resnet"], depth=[56, 110], epochs=10), {"cifar10": 1000})
    assert [r.warmup for r in runs] == [False, True]
    s = Schedule(runs[1], iterations_per_epoch=100)
    assert s.lr(0) == pytest.approx(0.01)
    s.observe(0, 50.0)  # one lucky batch is not enough: the mean of the last 10 decides
    assert s.lr(1) == pytest.approx(0.01)
    for i in range(1, 9):
        s.observe(i, 85.0)
    s.observe(9, 85.0)  # mean (50 + 9 * 85) / 10 = 81.5
    assert s.warmup_end is None
    s.observe(10, 60.0)  # the 50 leaves the window: (9 * 85 + 60) / 10 = 82.5
    assert s.warmup_end is None
    s.observe(11, 50.0)  # (8 * 85 + 60 + 50) / 10 = 79.0
    assert s.warmup_end == 12
    assert s.lr(11) == pytest.approx(0.01) and s.lr(12) == pytest.approx(0.1)
    capped = Schedule(runs[1], iterations_per_epoch=100)
    for i in range(400):
        capped.observe(i, 90.0)
    assert capped.warmup_end == 400


def test_warmup_always_applies_to_every_plain_and_residual_net() -> None:
    cfg = SweepConfig(arch=["plain", "resnet", "lenet5"], depth=[20], epochs=1, warmup="always")
    runs = expand(cfg, {"cifar10": 100, "mnist": 100})
    assert [(r.name, r.warmup) for r in runs] == [("plain-20", True), ("ResNet-20", True), ("lenet5", False)]
    none = expand(SweepConfig(depth=[110], epochs=1, warmup="none"), {"cifar10": 100})
    assert not any(r.warmup for r in none)


def test_toml_is_overridden_by_the_command_line(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('depth = [20, 56]\nepochs = 3\nlr = 0.05\ndataset = "synthetic"\ntrain-subset = 100\n')
    cfg = resolve(toml, {"lr": 0.2, "seeds": "1,2", "depth": None})
    assert (cfg.depth, cfg.epochs, cfg.lr, cfg.seeds, cfg.train_subset) == ([20, 56], 3, 0.2, [1, 2], 100)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("depths = [20]\n", "unknown key 'depths'"),
        ('epochs = "many"\n', "bad.toml: epochs must be a whole number, got 'many'"),
        ("lr = [0.1]\n", "lr must be a number"),
        ('epochs = "3,4"\n', "epochs must be a whole number, got '3,4'"),
        ("depth = [20\n", "not valid TOML"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(UserError, match=message):
        resolve(toml, {})


def test_run_id_changes_with_anything_that_changes_the_numbers() -> None:
    base = expand(SweepConfig(depth=[20], arch=["resnet"]), {"cifar10": 50_000})[0]
    same = expand(SweepConfig(depth=[20], arch=["resnet"], out="elsewhere"), {"cifar10": 50_000})[0]
    assert base.run_id == same.run_id
    for change in ({"lr": 0.05}, {"seeds": [1]}, {"width": 8}, {"precision": "bf16"}, {"train_subset": 10}):
        other = expand(SweepConfig(depth=[20], arch=["resnet"], **change), {"cifar10": 50_000})[0]
        assert other.run_id != base.run_id, change


def test_classic_nets_join_a_sweep_with_their_fixed_depth() -> None:
    cfg = SweepConfig(arch=["plain", "lenet5", "vgg16"], depth=[20, 56], epochs=1)
    runs = expand(cfg, {"cifar10": 100, "mnist": 100})
    assert [(r.name, r.depth, r.dataset) for r in runs] == [
        ("plain-20", 20, "cifar10"), ("plain-56", 56, "cifar10"), ("lenet5", 5, "mnist"), ("vgg16", 16, "cifar10"),
    ]  # fmt: skip


# --- a whole sweep ----------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_writes_documented_csvs_and_skips_done_runs(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = cli("sweep", *TINY, "--depth", "8,14", "--epochs", "2", "--seeds", "0", "--out", str(out))
    assert r.code == 0, r.err
    with (out / "metrics.csv").open() as f:
        assert f.readline().strip() == ",".join(results.METRICS_COLUMNS)
    m = results.read_metrics(out)
    assert len(m) == 4 * 2  # 2 archs x 2 depths x 2 epochs
    assert set(m["iteration"]) == {20, 40}  # 2000 images / batch 100
    assert m["train_error"].between(0, 100).all() and m["test_error"].between(0, 100).all()
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == list(results.RUNS_COLUMNS)
    assert set(runs["status"]) == {"completed"} and set(runs["epochs_done"]) == {2}
    assert (out / "sweep.toml").is_file()
    # A completed run keeps its final weights alone; its checkpoint (optimizer state) is gone.
    assert not list((out / "checkpoints").glob("*.pt"))
    assert {p.stem for p in (out / "weights").glob("*.pt")} == set(runs["run_id"])
    for path in (out / "weights").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        assert set(state) == {"run_id", "epoch", "iteration", "model", "precision", "records"}
        assert [r["epoch"] for r in state["records"]] == [1, 2]  # its rows, restorable
        assert (state["run_id"], state["epoch"], state["iteration"]) == (path.stem, 2, 40)
    again = cli("sweep", *TINY, "--depth", "8,14", "--epochs", "2", "--seeds", "0", "--out", str(out))
    assert again.code == 0 and "0 to train, 4 done" in again.out
    assert len(results.read_metrics(out)) == 8


def test_runs_csv_records_the_machine_that_trained_each_run(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert cli("sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(out)).code == 0
    (row,) = results.read_runs(out).values()
    assert {c: row[c] for c in results.PROVENANCE} == {
        "host": socket.gethostname(),
        "node": "",  # a Ray node's id, under Ray
        "cpu": device.cpu_model(),
        "cpu_bf16": "yes" if device.cpu_runs_bf16_fast() else "no",
        "gpu": "",
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
    }
    assert row["cpu"] and row["cpu"] != "CPU"  # the processor's own name, on Linux from /proc/cpuinfo


@pytest.mark.slow
def test_a_run_resumed_elsewhere_names_every_machine_that_trained_it(tmp_path: Path) -> None:
    """A long run outlives its machine: its row must say where each of its epochs was trained."""
    out = tmp_path / "r"

    def sweep(threads: str, fault: str = "") -> subprocess.CompletedProcess[str]:
        return run_cli(*THREE_EPOCHS, "--out", str(out), "--threads", threads, fault=fault)

    assert sweep("1", "row-written:2").returncode == -signal.SIGKILL  # rows 1-2, checkpoint at 1
    (run_id,) = results.read_runs(out)
    first = results.read_runs(out)[run_id]
    elsewhere = {**first, "host": "node-a", "cpu": "Other CPU"}  # as if it had trained on another machine
    results.write_run(out, elsewhere)
    # Resumed with 2 threads and killed holding its first row: the row is still the first machine's,
    # with the numbers of the one epoch logged and kept, and its first start.
    assert sweep("2", "row-received:1").returncode == -signal.SIGKILL
    row = results.read_runs(out)[run_id]
    epoch1 = results.read_metrics(out).iloc[0]
    assert (row["epochs_done"], float(row["final_test_error"])) == ("1", epoch1["test_error"])
    assert (row["threads"], row["host"], row["cpu"], row["started_at"]) == (
        "1",
        "node-a",
        "Other CPU",
        first["started_at"],
    )
    assert sweep("2").returncode == 0
    row = results.read_runs(out)[run_id]
    assert (row["status"], row["epochs_done"], row["device"]) == ("completed", "3", "cpu")
    assert (row["threads"], row["host"], row["cpu"]) == (
        "1 + 2",
        f"node-a + {socket.gethostname()}",
        f"Other CPU + {device.cpu_model()}",
    )
    assert (row["python_version"], row["gpu"]) == (platform.python_version(), "")  # the same: named once
    assert results.summary_fields(out, "000000000000") == {
        "epochs_done": 0, **dict.fromkeys(results.SUMMARY_COLUMNS)
    }  # fmt: skip


@pytest.mark.slow
def test_a_sweep_that_would_leave_a_partial_run_of_another_precision_says_how_to_continue_it(
    cli, tmp_path: Path
) -> None:
    """`--precision auto` is fp32 on one machine and bf16 on another, and a run id records which:
    the same command elsewhere would start the run again from scratch. Here bf16 stands for that."""
    out = tmp_path / "r"
    args = [*THREE_EPOCHS, "--out", str(out)]
    assert run_cli(*args, "--precision", "fp32", fault="row-written:2").returncode == -signal.SIGKILL
    (fp32,) = results.read_runs(out)
    note = f"note: ResNet-8 seed 0 stands partly trained here in fp32 ({fp32}); this sweep trains it in bf16"
    dry = cli(*args, "--precision", "bf16", "--dry-run")
    assert dry.code == 0 and note in " ".join(dry.err.split())
    assert "`--precision fp32` continues it instead" in " ".join(dry.err.split())
    assert "note:" not in cli(*args, "--precision", "fp32", "--dry-run").err
    other_recipe = cli(*args, "--precision", "bf16", "--epochs", "2", "--dry-run")
    assert other_recipe.code == 0 and "note:" not in other_recipe.err
    trained = cli(*args, "--precision", "bf16")  # said, then done as asked
    assert trained.code == 0 and note in " ".join(trained.err.split())
    runs = results.read_runs(out)
    assert {r["precision"]: r["status"] for r in runs.values()} == {
        "fp32": "interrupted",
        "bf16": "completed",
    }


@pytest.mark.slow
def test_same_seed_same_numbers_and_dry_run_states(cli, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("sweep", *TINY, "--arch", "resnet", "--epochs", "2", "--out", str(a)).code == 0
    assert cli("sweep", *TINY, "--arch", "resnet", "--epochs", "2", "--out", str(b)).code == 0
    pd.testing.assert_frame_equal(numbers(a), numbers(b))
    r = cli("sweep", *TINY, "--arch", "resnet", "--epochs", "3", "--out", str(a), "--dry-run")
    assert r.code == 0 and "pending" in r.out  # a different length is a different run


def kill_when(args: list[str], out: Path, ready: Callable[[], bool], timeout: float = 180) -> None:
    """Start `resdepth sweep ARGS --out OUT` and SIGKILL its whole process group (the driver and any
    workers: a machine that loses power) as soon as `ready()` holds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rows_at_least(out: Path, n: int) -> Callable[[], bool]:
    """True once metrics.csv has `n` rows and some run has a checkpoint to resume from: a run sends
    its epoch's row before it saves that epoch's checkpoint, so under --jobs 2 the first two rows
    can be both runs' epoch 1 with nothing yet to resume (a kill then leaves no partial run)."""
    has_checkpoint = checkpoint_at(out, 1)
    return lambda: (
        (out / "metrics.csv").is_file() and len(results.read_metrics(out)) >= n and has_checkpoint()
    )


def checkpoint_at(out: Path, epoch: int) -> Callable[[], bool]:
    """True once a checkpoint of `epoch` is on disk (read whole: it is written atomically)."""

    def ready() -> bool:
        for path in (out / "checkpoints").glob("*.pt"):
            try:
                if torch.load(path, weights_only=True)["epoch"] >= epoch:
                    return True
            except (OSError, RuntimeError, EOFError):
                pass
        return False

    return ready


RESUME_CASES = {
    # name: (sweep arguments, when to kill, rows of the uninterrupted sweep)
    "mid-epoch of the second run": (
        [*TINY, "--arch", "plain,resnet", "--epochs", "4", "--train-subset", "500", "--test-subset", "100"],
        ("rows", 6), 8,
    ),
    # What the quick demo runs: the warm-up for every net, a partial last batch (800 images at
    # batch 128: six full batches and one of 32), and a validation split. Warm-up ends after about
    # 16 iterations here, so the kill at epoch 1's checkpoint (7 iterations) lands mid-warm-up and
    # the resumed run must carry on its window of batch errors.
    "mid-warm-up, partial last batch, validation split": (
        [*TINY, "--arch", "resnet", "--epochs", "4", "--train-subset", "800", "--val-split", "200",
         "--batch-size", "128", "--warmup", "always", "--test-subset", "100"],
        ("checkpoint", 1), 4,
    ),
    "under --jobs 2": (
        [*TINY, "--arch", "plain,resnet", "--epochs", "3", "--train-subset", "400", "--test-subset", "100",
         "--jobs", "2", "--threads", "1"],
        ("rows", 2), 6,
    ),
    # Three seeds as one packed model, killed while it writes its rows of epoch 2 or later.
    "a packed group, mid-warm-up": (
        [*TINY, "--arch", "resnet", "--seeds", "0,1,2", "--pack", "3", "--epochs", "4", "--train-subset", "400",
         "--test-subset", "100", "--warmup", "always", "--threads", "1"],
        ("rows", 4), 12,
    ),
    "packed groups under --jobs 2": (
        [*TINY, "--arch", "plain,resnet", "--seeds", "0,1", "--pack", "2", "--epochs", "3", "--train-subset",
         "400", "--test-subset", "100", "--jobs", "2", "--threads", "1"],
        ("rows", 5), 12,
    ),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_sigkill_then_rerun_gives_the_uninterrupted_rows(tmp_path: Path, case: str) -> None:
    args, (kind, at), total = RESUME_CASES[case]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_cli("sweep", *args, "--out", str(clean)).returncode == 0
    assert len(results.read_metrics(clean)) == total
    kill_when(args, killed, rows_at_least(killed, at) if kind == "rows" else checkpoint_at(killed, at))
    assert 0 < len(results.read_metrics(killed)) < total, "the sweep finished before it could be killed"
    if "warm-up" in case:
        for ckpt in (killed / "checkpoints").glob("*.pt"):
            assert torch.load(ckpt, weights_only=True)["schedule"]["warmup_end"] == -1  # still warming up
    dry = run_cli("sweep", *args, "--out", str(killed), "--dry-run")
    assert "partial (resumes at epoch" in dry.stdout
    runs = results.read_runs(killed)
    started = {p.stem: runs[p.stem]["started_at"] for p in (killed / "checkpoints").glob("*.pt")}
    assert started
    resumed = run_cli("sweep", *args, "--out", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert "status repaired" in resumed.stdout  # the killed sweep had left its run `running`
    pd.testing.assert_frame_equal(numbers(clean), numbers(killed))
    runs = results.read_runs(killed)  # a resumed run started when its first epoch did
    assert {run: runs[run]["started_at"] for run in started} == started
    assert set(pd.read_csv(killed / "runs.csv")["status"]) == {"completed"}


class Stop(Exception):
    pass


@pytest.mark.slow
def test_a_resumed_vgg16_drops_the_units_an_uninterrupted_one_drops(tmp_path: Path) -> None:
    # Dropout draws from torch's global generator, seeded per epoch like the data order: a run
    # stopped after epoch 2 (its checkpoint holds epoch 1) and resumed writes the same rows.
    data = load("synthetic").split(64, None, 0, 20)
    (cfg,) = expand(
        SweepConfig(arch=["vgg16"], dataset="synthetic", epochs=3, batch_size=32), {"synthetic": 64}
    )
    clean: list[EpochRecord] = []
    train_run(cfg, data, torch.device("cpu"), tmp_path / "clean.pt", clean.append)
    resumed: list[EpochRecord] = []

    def stop_at_2(record: EpochRecord) -> None:
        resumed.append(record)
        if record.epoch == 2:
            raise Stop  # before epoch 2's checkpoint: a kill between the row and the save

    with pytest.raises(Stop):
        train_run(cfg, data, torch.device("cpu"), tmp_path / "killed.pt", stop_at_2)
    torch.manual_seed(12345)  # whatever the global generator held, the resumed epochs reseed it
    train_run(cfg, data, torch.device("cpu"), tmp_path / "killed.pt", resumed.append)
    assert [r.epoch for r in resumed] == [1, 2, 2, 3]
    same = ("train_loss", "train_error", "test_loss", "test_error")
    assert [[getattr(r, k) for k in same] for r in resumed[1:2] + resumed[3:]] == [
        [getattr(r, k) for k in same] for r in clean[1:]
    ]
    assert [getattr(resumed[2], k) for k in same] == [getattr(clean[1], k) for k in same]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "jobs", "code"),
    [
        # Ctrl-C, the run trained in the sweep's process; a batch system's time limit, in a worker
        (signal.SIGINT, [], 130),
        (signal.SIGTERM, ["--jobs", "2", "--threads", "1"], 143),
    ],
)
def test_ctrl_c_or_sigterm_keeps_finished_epochs_and_marks_the_run_interrupted(
    tmp_path: Path, stop: signal.Signals, jobs: list[str], code: int
) -> None:
    out = tmp_path / "r"
    args = [*TINY, "--arch", "resnet", "--epochs", "30", *jobs, "--out", str(out)]
    # A shell's background job starts with SIGINT ignored, and so would the sweep: give it the default.
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline, saved = time.time() + 120, checkpoint_at(out, 1)
    while time.time() < deadline and not saved():
        time.sleep(0.05)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    runs = pd.read_csv(out / "runs.csv")
    assert runs["status"].tolist() == ["interrupted"]
    done = int(torch.load(next((out / "checkpoints").glob("*.pt")), weights_only=True)["epoch"])
    assert results.read_metrics(out)["epoch"].max() >= done >= 1


@pytest.mark.slow
def test_diverged_run_keeps_its_rows_and_the_sweep_goes_on(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = cli("sweep", *TINY, "--depth", "8", "--epochs", "2", "--lr", "1e30", "--out", str(out))
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["status"]) == {"diverged"} and len(runs) == 2
    assert r.code == 0 and "diverged" in r.err
    assert len(pd.read_csv(out / "metrics.csv")) == 2  # the epoch where it diverged is recorded


def test_a_failing_run_is_marked_and_the_others_complete(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = executors.base.train_group

    def flaky(members, *args, **kwargs):  # type: ignore[no-untyped-def]
        if members[0].cfg.arch == "plain":
            raise RuntimeError("simulated out of memory")
        return real(members, *args, **kwargs)

    monkeypatch.setattr(executors.base, "train_group", flaky)
    out = tmp_path / "r"
    r = cli("sweep", *TINY, "--epochs", "1", "--out", str(out))
    assert r.code == 1
    assert "simulated out of memory" in r.err
    runs = pd.read_csv(out / "runs.csv").set_index("arch")
    assert runs.loc["plain", "status"] == "failed"
    assert "RuntimeError: simulated out of memory" in runs.loc["plain", "error"]
    assert runs.loc["resnet", "status"] == "completed"


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be a positive number"),
        (["--batch-size", "5000"], "larger than the 2000 training images"),
        (["--seeds", "x"], "--seeds takes comma-separated whole numbers"),
        (["--depth", "9"], "depth 9 cannot be built"),
        (["--arch", "alexnet"], "alexnet needs 227-px images"),
        (["--milestones", "0.75,0.5"], "--milestones are increasing fractions"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--train-subset", "0"], "--train-subset must be a positive number"),
        (["--out", "/proc/resdepth-test"], "cannot write to --out"),
        (["--seeds", "99999999999999999999"], "--seeds are whole numbers from 0 to 4294967295"),
        (["--seeds", "0,100000000000000", "--dry-run"], "got 100000000000000"),
        (["--seeds", "-1"], "--seeds are whole numbers from 0 to 4294967295"),
        (["--lr", "inf"], "--lr must be a positive finite number, got inf"),
        (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),
        (["--test-subset", "999999", "--dry-run"], "--test-subset must be between 1 and 500, got 999999"),
        (["--test-subset", "999999", "--executor", "ray"], "--test-subset must be between 1 and 500"),
    ],
)
def test_bad_sweep_input_is_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    r = cli("sweep", "--dataset", "synthetic", "--out", str(tmp_path / "o"), "--epochs", "1", *args)
    assert r.code == 2
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_out_that_is_a_file_or_holds_foreign_csv_is_refused_untouched(cli, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("mine")
    r = cli("sweep", *TINY, "--epochs", "1", "--out", str(f))
    assert r.code == 2 and "is a file" in r.err and f.read_text() == "mine"
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "metrics.csv").write_text("step,loss\n1,2.3\n")
    r = cli("sweep", *TINY, "--epochs", "1", "--out", str(folder))
    assert r.code == 2 and "other columns" in r.err
    assert (folder / "metrics.csv").read_text() == "step,loss\n1,2.3\n"
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.csv"]


def test_missing_config_file(cli, tmp_path: Path) -> None:
    r = cli("sweep", "--config", str(tmp_path / "nope.toml"))
    assert r.code == 2 and "does not exist" in r.err


def test_torn_last_line_is_dropped_and_healed(tmp_path: Path) -> None:
    row = dict.fromkeys(results.METRICS_COLUMNS, 1)
    row["run_id"] = "abc"
    results.append_metrics(tmp_path, row)
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("abc,plain,20,ci")  # a kill mid-write
    assert len(results.read_metrics(tmp_path)) == 1
    results.append_metrics(tmp_path, {**row, "epoch": 2})
    assert results.read_metrics(tmp_path)["epoch"].tolist() == [1, 2]


def test_a_kill_during_the_first_append_leaves_a_folder_a_sweep_still_takes(tmp_path: Path) -> None:
    row = {**dict.fromkeys(results.METRICS_COLUMNS, 1), "run_id": "abc"}
    torn = b"run_id,arch,depth,fam"  # the header and the first row are one write: cut in the header
    (tmp_path / "metrics.csv").write_bytes(torn)
    results.check_folder(tmp_path)  # not "other columns than resdepth writes"
    assert results.read_metrics(tmp_path).empty
    results.append_metrics(tmp_path, row)
    assert results.read_metrics(tmp_path)["run_id"].tolist() == ["abc"]
    (kept,) = (tmp_path / results.DISCARDED).glob("*-torn-line.csv")
    assert kept.read_bytes() == torn


@pytest.mark.slow
def test_a_folder_written_before_norm_activation_and_threads_is_upgraded_and_kept(
    cli, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    args = ["sweep", *TINY, "--arch", "resnet", "--epochs", "2", "--out", str(out)]
    assert cli(*args).code == 0
    before = numbers(out)
    for name in (results.METRICS, results.RUNS):  # as resdepth wrote them before those columns existed
        frame = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        frame.drop(columns=[c for c in results.ADDED_COLUMNS if c in frame]).to_csv(out / name, index=False)
    assert cli("report", str(out)).code == 0  # read as the paper's nets
    again = cli(*args)
    assert again.code == 0 and "0 to train, 1 done" in again.out  # same run ids: nothing retrained
    with (out / "metrics.csv").open() as f:
        assert f.readline().strip() == ",".join(results.METRICS_COLUMNS)
    pd.testing.assert_frame_equal(numbers(out), before)
    assert set(results.read_metrics(out)["norm"]) == {"bn"}


# --- nothing logged is ever lost silently -----------------------------------------------------


@pytest.mark.slow
def test_a_damaged_checkpoint_keeps_every_row_until_it_is_restarted(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = [*TINY, "--arch", "resnet", "--epochs", "4", "--train-subset", "500", "--test-subset", "100"]
    kill_when(args, out, checkpoint_at(out, 2))
    before = numbers(out)
    assert 2 <= len(before) < 4
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # torn by a power loss
    refused = run_cli("sweep", *args, "--out", str(out))
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    run_id = ckpt.stem
    assert f"cannot resume ResNet-8 seed 0 ({run_id}, {len(before)} epochs logged)" in refused.stderr
    assert str(ckpt) in refused.stderr and "--restart damaged" in refused.stderr
    pd.testing.assert_frame_equal(numbers(out), before)  # every logged row is still there
    again = run_cli("sweep", *args, "--out", str(out), "--restart", "damaged")
    assert again.returncode == 0, again.stderr
    (kept,) = (out / "discarded").glob(f"*-{run_id}.csv")
    old = results.read_metrics_file(kept)[NUMBERS].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, before)  # the replaced rows, moved, not deleted
    assert len(list((out / "discarded").glob(f"*-{run_id}.pt"))) == 1  # the damaged file, kept too
    assert results.read_metrics(out)["epoch"].tolist() == [1, 2, 3, 4]  # trained again from scratch
    assert pd.read_csv(out / "runs.csv")["status"].tolist() == ["completed"]


@pytest.mark.slow
def test_restart_by_run_id_and_bad_ids(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(out)]
    assert cli(*args).code == 0
    run_id = pd.read_csv(out / "runs.csv")["run_id"].iloc[0]
    r = cli(*args, "--restart", run_id)
    assert r.code == 0 and "1 to train" in r.out
    assert len(list((out / "discarded").glob("*.csv"))) == 1 and len(results.read_metrics(out)) == 1
    bad = cli(*args, "--restart", "nosuchrun")
    assert bad.code == 2 and "--restart nosuchrun: no run of this sweep has that id" in bad.err


@pytest.mark.slow
def test_one_sweep_at_a_time_and_the_lock_goes_with_its_holder(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    long = [*TINY, "--arch", "resnet", "--epochs", "50"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *long, "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not rows_at_least(out, 1)():
            time.sleep(0.05)
        second = cli("sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(out))
        assert second.code == 2 and len(second.err.strip().splitlines()) == 1
        assert (
            f"is being written by another resdepth sweep (process {proc.pid} on {socket.gethostname()}"
            in second.err
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    after = cli("sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(out))
    assert after.code == 0, after.err
    assert "status repaired" in after.out  # the killed sweep's run was left `running`
    statuses = pd.read_csv(out / "runs.csv").set_index("epochs")["status"]
    assert statuses[50] == "interrupted" and statuses[1] == "completed"


@pytest.mark.slow
def test_report_reads_statuses_from_the_rows_and_writes_nothing(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert cli("sweep", *TINY, "--arch", "plain,resnet", "--epochs", "2", "--out", str(out)).code == 0
    rows = results.read_runs(out)
    plain, resnet = sorted(rows.values(), key=lambda r: r["arch"])
    results.write_run(out, {**plain, "status": "interrupted"})  # Ctrl-C after its last row was logged
    results.write_run(out, {**resnet, "status": "running"})
    results.drop_rows_after(out, resnet["run_id"], 1)  # killed after epoch 1 of 2
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = cli("report", str(out))
    assert r.code == 0, r.err
    assert "plain-8" in r.out  # its rows are whole: completed, whatever runs.csv says
    assert f"left out: ResNet-8 seed 0 ({resnet['run_id']}): running, 1 of 2 epochs" in r.out
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing written
    swept = cli("sweep", *TINY, "--arch", "plain", "--epochs", "2", "--out", str(out))
    assert swept.code == 0 and swept.out.count("status repaired") == 2  # the sweep writes them
    after = results.read_runs(out)
    assert after[plain["run_id"]]["status"] == "completed"
    assert (after[resnet["run_id"]]["status"], after[resnet["run_id"]]["epochs_done"]) == ("interrupted", "1")


@pytest.mark.slow
def test_every_sweep_configuration_is_kept(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    for seeds in ("0", "1"):
        assert (
            cli("sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--seeds", seeds, "--out", str(out)).code
            == 0
        )
    kept = sorted((out / "sweeps").glob("*.toml"))
    assert [resolve(p, {}).seeds for p in kept] == [[0], [1]]
    assert (out / "sweep.toml").read_text() == kept[-1].read_text()


def test_a_checkpoint_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "c" / "run.pt"
    state = {"run_id": "abc", "iteration": 10, "schedule": {}, "model": {}, "optimizer": {}}
    save_checkpoint(path, {**state, "epoch": 1})
    save_checkpoint(path, {**state, "epoch": 2})
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.pt"]  # no temporary file left
    assert load_checkpoint(path, "abc") == {**state, "epoch": 2}
    with pytest.raises(DamagedCheckpoint, match="is not a checkpoint of run other"):
        load_checkpoint(path, "other")


# --- each option does what its help says ----------------------------------------------------------


@pytest.mark.slow
def test_val_split_fills_the_validation_columns(cli, tmp_path: Path) -> None:
    r = cli(
        "sweep",
        *TINY,
        "--arch",
        "resnet",
        "--epochs",
        "2",
        "--val-split",
        "300",
        "--out",
        str(tmp_path / "v"),
    )
    assert r.code == 0, r.err
    m = results.read_metrics(tmp_path / "v")
    assert m["val_error"].between(0, 100).all() and (m["val_loss"] > 0).all()
    assert set(m["iteration"]) == {17, 34}  # 1,700 training images left at batch 100
    assert cli("sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(tmp_path / "n")).code == 0
    assert results.read_metrics(tmp_path / "n")["val_error"].isna().all()


@pytest.mark.slow
def test_iterations_are_rounded_up_to_whole_epochs(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = cli(
        "sweep", *TINY, "--arch", "resnet", "--iterations", "45", "--train-subset", "1000", "--out", str(out)
    )
    assert r.code == 0, r.err
    m = results.read_metrics(out)
    assert m["epoch"].tolist() == [1, 2, 3, 4, 5] and m["iteration"].max() == 50  # 10 iterations an epoch
    assert pd.read_csv(out / "runs.csv")["epochs"].tolist() == [5]


def test_fail_fast_stops_at_the_first_failed_run(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(executors.base, "train_group", broken)
    out = tmp_path / "r"
    r = cli("sweep", *TINY, "--epochs", "1", "--fail-fast", "--out", str(out))
    assert r.code == 1 and "simulated out of memory" in r.err
    runs = pd.read_csv(out / "runs.csv")
    assert runs["arch"].tolist() == ["plain"] and runs["status"].tolist() == [
        "failed"
    ]  # resnet never started


@pytest.mark.parametrize(("flags", "expected", "bf16_by"), [("fpu avx2 amx_bf16", "bf16", "AMX"),
                          ("fpu avx512_bf16", "bf16", "AVX512-BF16"), ("fpu avx2 fma", "fp32", "")])  # fmt: skip
def test_precision_auto_is_bf16_only_where_the_cpu_runs_it_fast(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: str, expected: str, bf16_by: str
) -> None:
    monkeypatch.setattr(device, "_cpuinfo", lambda: f"model name : Test CPU\nflags : {flags}\n")
    assert device.resolve_precision("auto", torch.device("cpu")) == expected
    named = device.device_name(torch.device("cpu"))  # a timing names what sets its speed
    isa = torch.backends.cpu.get_cpu_capability()
    assert named.startswith(f"Test CPU ({isa}{', ' + bf16_by if bf16_by else ''}), ")
    assert device.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    dry = cli("sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(tmp_path), "--dry-run")
    assert dry.code == 0
    precision_id = expand(SweepConfig(arch=["resnet"], depth=[8], dataset="synthetic", epochs=1, batch_size=100,
                                      precision=expected), {"synthetic": 2000})[0].run_id  # fmt: skip
    assert precision_id in dry.out  # the run id hashes the precision that will run, not "auto"


def test_lenet5_trains_on_mnist_without_augmentation(
    cli, real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_crops(*args: object) -> None:
        raise AssertionError("MNIST digits must not be cropped or flipped")

    monkeypatch.setattr(step, "crop_flip", no_crops)
    out = tmp_path / "r"
    r = cli("sweep", "--arch", "lenet5", "--epochs", "1", "--train-subset", "2000", "--test-subset", "1000",
            "--data-dir", str(real_data), "--offline", "--out", str(out))  # fmt: skip
    assert r.code == 0, r.err
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["dataset"].tolist(), runs["params"].tolist()) == (["mnist"], [61_706])
    assert results.read_metrics(out)["test_error"].iloc[0] < 50  # one epoch on 2,000 digits learns
