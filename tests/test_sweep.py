"""`resdepth sweep`: configuration, CSV contents, resume after SIGKILL and Ctrl-C, faults, bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from resdepth import executors, results
from resdepth.config import PAPER_ITERATIONS, SweepConfig, epochs_for, expand, resolve
from resdepth.errors import UserError
from resdepth.train import Schedule

# Columns that must be identical between an interrupted-then-resumed sweep and an uninterrupted one.
NUMBERS = [c for c in results.METRICS_COLUMNS if c not in ("epoch_seconds", "images_per_second")]
TINY = ["--dataset", "synthetic", "--depth", "8", "--batch-size", "100"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resdepth", *args], capture_output=True, text=True, timeout=timeout
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
        ('epochs = "many"\n', "epochs"),
        ("lr = [0.1]\n", "lr must be a float"),
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
    assert len(list((out / "checkpoints").glob("*.pt"))) == 4
    for ckpt in (out / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, weights_only=True)
        assert state["epoch"] == 2 and {"model", "optimizer", "iteration"} <= set(state)
    again = cli("sweep", *TINY, "--depth", "8,14", "--epochs", "2", "--seeds", "0", "--out", str(out))
    assert again.code == 0 and "0 to train, 4 done" in again.out
    assert len(results.read_metrics(out)) == 8


def test_same_seed_same_numbers_and_dry_run_states(cli, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("sweep", *TINY, "--arch", "resnet", "--epochs", "2", "--out", str(a)).code == 0
    assert cli("sweep", *TINY, "--arch", "resnet", "--epochs", "2", "--out", str(b)).code == 0
    pd.testing.assert_frame_equal(numbers(a), numbers(b))
    r = cli("sweep", *TINY, "--arch", "resnet", "--epochs", "3", "--out", str(a), "--dry-run")
    assert r.code == 0 and "pending" in r.out  # a different length is a different run


def test_sigkill_mid_epoch_then_rerun_gives_the_uninterrupted_rows(tmp_path: Path) -> None:
    args = [*TINY, "--arch", "plain,resnet", "--epochs", "5", "--train-subset", "1000"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_cli("sweep", *args, "--out", str(clean)).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:  # kill during the second run's third epoch or so
        if (killed / "metrics.csv").is_file() and len(results.read_metrics(killed)) >= 7:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(results.read_metrics(killed)) < 10, "the sweep finished before it could be killed"
    dry = run_cli("sweep", *args, "--out", str(killed), "--dry-run")
    assert "partial (resumes at epoch" in dry.stdout
    resumed = run_cli("sweep", *args, "--out", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(numbers(clean), numbers(killed))
    assert set(pd.read_csv(killed / "runs.csv")["status"]) == {"completed"}


def test_ctrl_c_keeps_finished_epochs_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = [*TINY, "--arch", "resnet", "--epochs", "30", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "resdepth", "sweep", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoints").is_dir():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    runs = pd.read_csv(out / "runs.csv")
    assert runs["status"].tolist() == ["interrupted"]
    done = int(torch.load(next((out / "checkpoints").glob("*.pt")), weights_only=True)["epoch"])
    assert results.read_metrics(out)["epoch"].max() >= done >= 1


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
    real = executors.base.train_run

    def flaky(cfg, *args, **kwargs):  # type: ignore[no-untyped-def]
        if cfg.arch == "plain":
            raise RuntimeError("simulated out of memory")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(executors.base, "train_run", flaky)
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
