"""TensorBoard: `resdepth export tensorboard` and `sweep --tensorboard` write event files that
TensorBoard's own reader returns with the values of metrics.csv, a run per (net, seed, recipe)."""

from __future__ import annotations

import builtins
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resdepth import events, results

pytestmark = pytest.mark.slow  # minutes of real sweeps: `make test` runs them, `make test-fast` does not

ROOT = Path(__file__).resolve().parents[1]
# CI installs the extra and sets RESDEPTH_REQUIRE_TENSORBOARD, so these fail there instead of skipping.
needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None and not os.environ.get("RESDEPTH_REQUIRE_TENSORBOARD"),
    reason="the tensorboard extra is not installed",
)


def board(path: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows of one run: (step, value) per tag, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_board_is_metrics(root: Path, metrics: pd.DataFrame) -> None:
    """Every run of `metrics` has its board, and every tag holds exactly that run's rows (float32)."""
    assert len(list(root.iterdir())) == metrics["run_id"].nunique()
    for run_id, rows in metrics.groupby("run_id"):
        (path,) = root.glob(f"*-{run_id}")
        shown = board(path)
        rows = rows.sort_values("epoch")
        for column, tag in events.TAGS.items():
            values = rows[column].astype(float)
            if values.isna().all():
                assert tag not in shown, tag
                continue
            steps, got = zip(*shown[tag], strict=True)
            assert list(steps) == rows["iteration"].astype(int).tolist(), (path.name, tag)
            np.testing.assert_allclose(got, values.to_numpy(), rtol=1e-6, err_msg=f"{path.name} {tag}")


@needs_tensorboard
def test_export_of_a_shipped_reference_reads_back_as_its_metrics(cli, tmp_path: Path) -> None:
    course = ROOT / "results" / "reference" / "course"
    r = cli("export", "tensorboard", str(course), "--out", str(tmp_path / "tb"))
    assert r.code == 0, r.err
    assert r.out.startswith("24 runs written to")  # plain and ResNet at 8, 14, 20, 26 layers, seeds 0-2
    assert_board_is_metrics(tmp_path / "tb", results.read_metrics(course))
    assert sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "tb").iterdir())[:3] == [
        "ResNet-14-seed0",
        "ResNet-14-seed1",
        "ResNet-14-seed2",
    ]


@needs_tensorboard
def test_sweep_tensorboard_writes_live_and_a_resume_shows_each_epoch_once(tmp_path: Path) -> None:
    out, fired = tmp_path / "r", tmp_path / "fired"
    args = ["sweep", "--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--epochs", "3",
            "--train-subset", "300", "--test-subset", "100", "--batch-size", "100", "--val-split", "100",
            "--tensorboard", "--out", str(out)]  # fmt: skip
    # Killed after epoch 2's row reached metrics.csv and the board, before its checkpoint: the rerun
    # writes epoch 2 again, and TensorBoard must show it once.
    env = {**os.environ, "RESDEPTH_FAULT": "row-sent:2", "RESDEPTH_FAULT_ONCE": str(fired)}
    subprocess.run([sys.executable, "-m", "resdepth", *args], env=env, capture_output=True, timeout=300)
    assert fired.exists()
    done = subprocess.run(
        [sys.executable, "-m", "resdepth", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert_board_is_metrics(out / events.FOLDER, results.read_metrics(out))


def test_without_the_extra_export_is_one_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_tensorboard(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    r = cli("export", "tensorboard", str(ROOT / "results" / "reference" / "course"), "--out", str(tmp_path))
    assert r.code == 2
    assert (
        r.err.strip()
        == "error: TensorBoard files need the tensorboard package: pip install 'resdepth[tensorboard]'"
    )


def plant_links(board: Path, target: Path, pid: int) -> list[Path]:
    """Links at every event-file name TensorBoard's writer could pick in the next minute (time, host,
    pid, counter), all pointing at `target`."""
    import socket
    import time

    board.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    links = [
        board / f"{events.EVENTS}{now + t}.{socket.gethostname()}.{pid}.{n}"
        for t in range(60)
        for n in range(50)
    ]
    for link in links:
        link.unlink(missing_ok=True)  # an event file the board holds already
        link.symlink_to(target)
    return links


@needs_tensorboard
def test_a_link_at_an_event_file_name_is_never_written_through(cli, tmp_path: Path) -> None:
    course = ROOT / "results" / "reference" / "course"
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    folder = tmp_path / "course"
    folder.mkdir()
    for name in (results.METRICS, results.RUNS):
        (folder / name).write_bytes((course / name).read_bytes())
    boards = [b.name for b in events.export(folder)]  # the names an export gives, known in advance
    links = plant_links(folder / events.FOLDER / boards[0], target, os.getpid())
    r = cli("export", "tensorboard", str(folder))
    assert r.code == 0, r.err
    assert target.read_text() == "mine" and not any(link.is_symlink() for link in links)
    assert_board_is_metrics(folder / events.FOLDER, results.read_metrics(folder))
    # --out inside the results folder, other than its tensorboard folder, is refused.
    refused = cli("export", "tensorboard", str(folder), "--out", str(folder / results.CHECKPOINTS))
    assert refused.code == 2 and "is inside the results folder" in refused.err


@needs_tensorboard
def test_sweep_tensorboard_never_writes_through_a_link(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    args = ["sweep", "--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--epochs", "1",
            "--train-subset", "200", "--test-subset", "100", "--batch-size", "100", "--tensorboard"]  # fmt: skip
    assert cli(*args, "--out", str(out)).code == 0
    (board,) = (out / events.FOLDER).iterdir()
    links = plant_links(board, target, os.getpid())
    run_id = board.name.rsplit("-", 1)[1]
    again = cli(*args, "--restart", run_id, "--out", str(out))  # the run trains again: its board is remade
    assert again.code == 0, again.err
    assert target.read_text() == "mine" and not any(link.is_symlink() for link in links)
    assert_board_is_metrics(out / events.FOLDER, results.read_metrics(out))
