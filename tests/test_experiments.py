"""The shipped sweep configs and reference results: a user who runs `make demo` or `make course`
trains the very runs that `results/reference` holds, so `--reference` compares like with like."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from resdepth.config import expand, resolve

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_resolves(path: Path) -> None:
    cfg = resolve(path, {})
    assert cfg.arch == ["plain", "resnet"]
    assert len(cfg.depth) >= 2


@pytest.mark.parametrize("name", ["quick", "course"])
def test_reference_runs_are_the_shipped_configs_runs(name: str) -> None:
    folder = ROOT / "results" / "reference" / name
    runs = pd.read_csv(folder / "runs.csv")
    assert set(runs["status"]) == {"completed"}
    cfg = resolve(ROOT / "experiments" / f"{name}.toml", {})
    assert cfg.train_subset is not None
    # Precision `auto` resolves per machine; the reference records the one it trained in.
    shipped = replace(cfg, precision=runs["precision"].iloc[0], seeds=sorted(set(runs["seed"])))
    expected = {r.run_id for r in expand(shipped, {"cifar10": cfg.train_subset})}
    assert set(runs["run_id"]) == expected
    assert len(set(runs["seed"])) >= (3 if name == "quick" else 2)


def test_course_holds_the_quick_demos_depths_with_the_same_recipe() -> None:
    """The course config is the demo's recipe at more depths, so the demo's runs are its runs."""
    quick, course = (resolve(ROOT / "experiments" / f"{n}.toml", {}) for n in ("quick", "course"))
    assert len(course.depth) >= 4 and set(quick.depth) <= set(course.depth)
    sizes = {"cifar10": 8000}
    assert {r.run_id for r in expand(quick, sizes)} <= {r.run_id for r in expand(course, sizes)}
