"""The shipped sweep configs and reference results: a user who runs `make demo` or `make course`
trains the very runs that `results/reference` holds, so `--reference` compares like with like."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from resdepth.config import SweepConfig, resolve
from resdepth.runs import expand

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_resolves(path: Path) -> None:
    cfg = resolve(path, {})
    assert cfg.arch == ["plain", "resnet"]
    assert len(cfg.depth) >= 2 or path.stem == "paper20"  # the paper's recipe at one depth, below


def test_paper20_is_the_paper_recipe_at_20_layers() -> None:
    paper, at20 = (
        resolve(ROOT / "experiments" / "paper.toml", {}),
        resolve(ROOT / "experiments" / "paper20.toml", {}),
    )
    assert (at20.depth, at20.out) == ([20], "results/paper20")  # never into the shipped reference
    assert replace(paper, depth=[20], out=at20.out) == at20


def shipped_run_ids(cfg: SweepConfig, runs: pd.DataFrame, **changes: object) -> set[str]:
    """The run ids CFG expands to for the seeds and the precision a shipped runs.csv records:
    precision `auto` resolves per machine, and the reference trained in one."""
    shipped = replace(cfg, precision=runs["precision"].iloc[0], seeds=sorted(set(runs["seed"])), **changes)
    assert cfg.train_subset is not None
    return {r.run_id for r in expand(shipped, {"cifar10": cfg.train_subset})}


@pytest.mark.parametrize("name", ["quick", "course"])
def test_reference_runs_are_the_shipped_configs_runs(name: str) -> None:
    folder = ROOT / "results" / "reference" / name
    runs = pd.read_csv(folder / "runs.csv")
    assert set(runs["status"]) == {"completed"}
    cfg = resolve(ROOT / "experiments" / f"{name}.toml", {})
    assert set(runs["run_id"]) == shipped_run_ids(cfg, runs)
    assert len(set(runs["seed"])) >= (3 if name == "quick" else 2)


def test_course_is_the_quick_demos_recipe_at_more_depths() -> None:
    """Same recipe, so at a depth both name the demo's runs are the course's runs (equal run ids)."""
    quick, course = (resolve(ROOT / "experiments" / f"{n}.toml", {}) for n in ("quick", "course"))
    assert len(course.depth) >= 4 and set(quick.depth) & set(course.depth)
    sizes = {"cifar10": 8000}
    as_course = replace(quick, depth=course.depth, seeds=course.seeds)
    assert {r.run_id for r in expand(as_course, sizes)} == {r.run_id for r in expand(course, sizes)}


def test_course_scan_holds_the_course_recipe_at_the_other_depths() -> None:
    """The scan's runs outside the config are shipped apart, trained with the very same recipe."""
    runs = pd.read_csv(ROOT / "results" / "reference" / "course-scan" / "runs.csv")
    course = resolve(ROOT / "experiments" / "course.toml", {})
    depths = sorted(set(runs["depth"]))
    assert not set(depths) & set(course.depth)
    assert set(runs["run_id"]) == shipped_run_ids(course, runs, depth=depths)
