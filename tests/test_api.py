"""The Python API a notebook calls: `resdepth.sweep` trains and resumes exactly as the command does,
`resdepth.report` returns each recipe's table and verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

import resdepth
from resdepth.config import SweepConfig
from resdepth.errors import UserError
from resdepth.results import Status, read_runs

TINY = {
    "dataset": "synthetic",
    "depth": [8],
    "batch_size": 50,
    "epochs": 2,
    "seeds": [0, 1],
    "train_subset": 200,
    "test_subset": 100,
}


def test_a_notebook_sweeps_reports_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "r"
    outcomes = resdepth.sweep(None, out=str(out), **TINY)
    assert [o.status for o in outcomes] == [Status.COMPLETED] * 4
    runs = read_runs(out)
    assert len(runs) == 4 and {r["epochs_done"] for r in runs.values()} == {"2"}
    (recipe,) = resdepth.report(out)
    assert recipe.nets is not None
    assert sorted(recipe.nets["label"]) == ["ResNet-8", "plain-8"]
    assert list(recipe.nets["seeds"]) == [2, 2]
    assert "fewer than two depths" in recipe.verdict
    # The same sweep again trains nothing; three epochs resume each run at epoch 3, as the CLI does.
    assert resdepth.sweep(None, out=str(out), **TINY) == []
    longer = SweepConfig(out=str(out), **{**TINY, "epochs": 3})
    assert [o.status for o in resdepth.sweep(longer)] == [Status.COMPLETED] * 4


def test_a_notebook_gets_the_commands_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--depth takes comma-separated whole numbers"):
        resdepth.sweep(None, out=str(tmp_path), depth="8,x")
    with pytest.raises(UserError, match="no such config|does not exist"):
        resdepth.sweep("no-such-config", out=str(tmp_path))
    with pytest.raises(UserError, match="unknown sweep option.s. depht; valid: arch, depth"):
        resdepth.sweep(None, out=str(tmp_path), depht=[20])
    with pytest.raises(UserError, match="--depth must be a whole number, got 'x'"):
        resdepth.sweep(SweepConfig(depth=["x"]), out=str(tmp_path))  # type: ignore[list-item]


def test_a_notebook_gives_counts_as_numbers_as_the_command_line_does(tmp_path: Path) -> None:
    from resdepth.config import resolve

    cfg = resolve(None, {"jobs": 2, "pack": 2, "seeds": [0, 1], "out": str(tmp_path)})
    assert (cfg.jobs, cfg.pack) == ("2", "2")
    assert resolve(None, {"jobs": "auto", "pack": "auto"}).jobs == "auto"
    with pytest.raises(UserError, match="--pack takes a positive number or auto, got '0'"):
        resolve(None, {"pack": 0})
    with pytest.raises(UserError, match="--jobs takes a positive number or auto, got True"):
        resolve(None, {"jobs": True})
