"""A run that outlives its machine: an unfinished run's checkpoint shipped with the CSVs resumes
anywhere, and a completed run leaves its final weights alone (no optimizer state) for diagnose."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pytest
import torch
from test_sweep import TINY, checkpoint_at, kill_when, numbers, run_cli

import resdepth.writer
from resdepth import files, results
from resdepth.checkpoints import DamagedCheckpoint, load_checkpoint, load_weights, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ARGS = [*TINY, "--arch", "plain,resnet", "--epochs", "3", "--train-subset", "300", "--test-subset", "100"]
# What a commit of a results folder holds: no lock, owner or nonce file (they are ignored).
SHIPPED = ("metrics.csv", "runs.csv", "sweep.toml", "sweeps", "checkpoints", "weights")


def shipped_copy(folder: Path, to: Path) -> Path:
    """The folder as a fresh clone on another machine has it: the committed files, at another path."""
    to.mkdir()
    for name in SHIPPED:
        src = folder / name
        if src.is_dir():
            shutil.copytree(src, to / name)
        elif src.is_file():
            shutil.copy2(src, to / name)
    return to


@pytest.mark.slow
def test_the_shipped_56_layer_pair_is_partial_under_the_bare_command_on_any_machine(
    tmp_path: Path, real_data: Path
) -> None:
    """Issue 35's done-when on whatever CPU runs it: `sweep --config paper --depth 56` without
    `--precision` plans the shipped pair as partial at the epoch reached (or done), not pending."""
    clone = shipped_copy(ROOT / "results" / "reference" / "paper", tmp_path / "paper")
    runs = pd.read_csv(clone / "runs.csv")
    at56 = runs[runs["depth"] == 56]
    assert len(at56) == 2
    args = ("--config", "paper", "--depth", "56", "--data-dir", str(real_data), "--offline")
    dry = run_cli("sweep", *args, "--out", str(clone), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for run in at56.itertuples():
        state = "done" if run.status == "completed" else f"partial (resumes at epoch {run.epochs_done + 1})"
        assert any(run.run_id in line and state in line for line in dry.stdout.splitlines()), dry.stdout


@pytest.mark.slow
def test_a_committed_checkpoint_resumes_on_a_fresh_clone_with_the_uninterrupted_rows(tmp_path: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_cli("sweep", *ARGS, "--out", str(clean)).returncode == 0
    kill_when(ARGS, killed, checkpoint_at(killed, 2))
    clone = shipped_copy(killed, tmp_path / "clone")
    partial = {
        p.stem: torch.load(p, weights_only=True)["epoch"] for p in (clone / "checkpoints").glob("*.pt")
    }
    assert partial and all(1 <= e < 3 for e in partial.values())
    dry = run_cli("sweep", *ARGS, "--out", str(clone), "--dry-run")
    for run, epoch in partial.items():  # partial at the epoch reached, not pending
        assert any(
            run in line and f"partial (resumes at epoch {epoch + 1})" in line
            for line in dry.stdout.splitlines()
        )
    resumed = run_cli("sweep", *ARGS, "--out", str(clone))
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(numbers(clean), numbers(clone))
    # Done: final weights only, the very weights the uninterrupted sweep ended with.
    assert not list((clone / "checkpoints").glob("*.pt"))
    for path in (clean / "weights").glob("*.pt"):
        mine = load_weights(clone / "weights" / path.name, path.stem)
        theirs = load_weights(path, path.stem)
        assert mine is not None and theirs is not None and mine["epoch"] == 3
        for name, tensor in theirs["model"].items():
            assert torch.equal(mine["model"][name], tensor), name
    assert len(list((clean / "weights").glob("*.pt"))) == 2


@pytest.mark.slow
def test_a_completed_run_whose_checkpoint_was_left_gets_its_weights_at_the_next_sweep(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r"
    args = ["sweep", *TINY, "--arch", "resnet", "--epochs", "1", "--out", str(out)]
    with monkeypatch.context() as m:  # a driver killed between recording the end and keeping the weights
        m.setattr(resdepth.writer, "keep_final_weights", lambda *_: False)
        assert cli(*args).code == 0
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    model = load_checkpoint(ckpt, ckpt.stem)["model"]  # type: ignore[index]
    assert not (out / "weights").exists()
    again = cli(*args)
    assert again.code == 0 and "0 to train, 1 done" in again.out
    assert not ckpt.exists()
    weights = load_weights(out / "weights" / ckpt.name, ckpt.stem)
    assert weights is not None and weights["epoch"] == 1 and "optimizer" not in weights
    assert all(torch.equal(weights["model"][k], v) for k, v in model.items())
    # Restarted: the weights are kept in discarded/, beside the rows, and the run trains again.
    restarted = cli(*args, "--restart", ckpt.stem)
    assert restarted.code == 0, restarted.err
    assert len(list((out / results.DISCARDED).glob(f"*-{ckpt.stem}.weights.pt"))) == 1
    assert (out / "weights" / ckpt.name).is_file() and results.read_metrics(out)["epoch"].tolist() == [1]


def test_weights_of_another_run_or_a_folder_in_their_place_are_named_damaged(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "abc.pt").mkdir()
    with pytest.raises(DamagedCheckpoint, match="is not a file"):
        load_weights(folder / "abc.pt", "abc")
    torch.save({"run_id": "other", "epoch": 1, "iteration": 1, "model": {}}, folder / "def.pt")
    with pytest.raises(DamagedCheckpoint, match="is not a weights file of run def"):
        load_weights(folder / "def.pt", "def")
    assert load_weights(folder / "none.pt", "none") is None


@pytest.mark.slow
def test_a_folder_standing_where_a_checkpoint_goes_is_damaged_and_restart_clears_it(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = [*TINY, "--arch", "resnet", "--epochs", "3", "--train-subset", "300", "--test-subset", "100"]
    kill_when(args, out, checkpoint_at(out, 1))
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    ckpt.unlink()
    ckpt.mkdir()
    (ckpt / "note.txt").write_text("mine")
    refused = run_cli("sweep", *args, "--out", str(out))
    assert refused.returncode == 2 and f"checkpoint {ckpt} is not a file" in refused.stderr
    again = run_cli("sweep", *args, "--out", str(out), "--restart", "damaged")
    assert again.returncode == 0, again.stderr
    (kept,) = (out / results.DISCARDED).glob(f"*-{ckpt.stem}.pt")
    assert (kept / "note.txt").read_text() == "mine"  # moved aside, not deleted
    assert results.read_metrics(out)["epoch"].tolist() == [1, 2, 3]
    assert pd.read_csv(out / "runs.csv")["status"].tolist() == ["completed"]


def test_a_full_disk_while_a_checkpoint_is_written_is_the_error_that_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = files.open_exclusive

    def full(path: Path) -> BinaryIO:
        """The temporary is created, and its writes go to /dev/full: the kernel's ENOSPC."""
        real(path).close()
        return open("/dev/full", "wb")  # noqa: SIM115 - closed by atomic_write

    monkeypatch.setattr(files, "open_exclusive", full)
    path = tmp_path / "checkpoints" / "abc.pt"
    with pytest.raises(OSError) as caught:
        save_checkpoint(path, {"run_id": "abc", "model": {"w": torch.zeros(10_000)}})
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(path))
    assert not path.exists() and not list(path.parent.iterdir())  # no temporary left either
