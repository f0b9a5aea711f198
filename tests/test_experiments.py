"""The shipped sweep configs and reference results: a user who runs `make demo` or `make course`
trains the very runs that `results/reference` holds, so `--reference` compares like with like."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from resdepth.checkpoints import load_checkpoint, load_weights
from resdepth.config import SweepConfig, resolve
from resdepth.runs import CIFAR_TRAIN_IMAGES, expand

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_resolves(path: Path) -> None:
    cfg = resolve(path, {})
    assert cfg.arch == ["plain", "resnet"]
    assert len(cfg.depth) >= 2 or path.stem == "paper20"  # the paper's recipe at one depth, below


@pytest.mark.parametrize("name", ["longer", "paper20", "paper"])
def test_a_config_of_runs_longer_than_a_session_pins_its_precision(name: str) -> None:
    """Rerun anywhere, the same command must name the same runs (docs/guarantees.md): under `auto` a
    run resumed on a CPU of another kind would be another run, started from scratch."""
    assert resolve(ROOT / "experiments" / f"{name}.toml", {}).precision == "fp32"


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
    return {r.run_id for r in expand(shipped, {"cifar10": cfg.train_subset or CIFAR_TRAIN_IMAGES})}


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


def test_the_paper_reference_is_paper_toml_at_20_and_56_layers_each_run_done_or_resumable() -> None:
    """He et al.'s recipe run to its end (issues 22 and 35): every run is one of paper.toml's, at 20
    or 56 layers, in the precision runs.csv records; none was restarted (each epoch once); ResNet-20
    and plain-20 completed 64k iterations. The fp32 plain-20 whose checkpoint was lost with its
    machine ships as interrupted; the 56-layer pair, while it trains, with the checkpoint of its
    last logged epoch, so the same command resumes it on any machine, and once completed with its
    final weights (and no checkpoint), so that `resdepth diagnose` needs no training."""
    folder = ROOT / "results" / "reference" / "paper"
    runs = pd.read_csv(folder / "runs.csv")
    metrics = pd.read_csv(folder / "metrics.csv")
    paper = resolve(ROOT / "experiments" / "paper.toml", {})
    for _, these in runs.groupby("precision"):
        assert set(these["run_id"]) <= shipped_run_ids(paper, these, depth=[20, 56])
    # The config pins the precision the 56-layer pair trains in, so the bare command names these
    # very runs on any machine (`auto` would name bf16 runs on a CPU with AMX or AVX512-BF16).
    at56 = expand(replace(paper, depth=[56]), {"cifar10": CIFAR_TRAIN_IMAGES})
    assert set(runs.loc[runs["depth"] == 56, "run_id"]) == {r.run_id for r in at56}
    for run in runs.itertuples():
        assert metrics.loc[metrics["run_id"] == run.run_id, "epoch"].tolist() == list(
            range(1, run.epochs_done + 1)
        )
        checkpoint, weights = (folder / sub / f"{run.run_id}.pt" for sub in ("checkpoints", "weights"))
        if run.depth == 20:  # trained before reference runs shipped their weights
            assert not checkpoint.exists() and not weights.exists()
            continue
        if run.status == "completed":
            assert not checkpoint.exists()
            state = load_weights(weights, run.run_id)
        else:
            state = load_checkpoint(checkpoint, run.run_id)
        assert state is not None and state["epoch"] == run.epochs_done
    twenty = runs[runs["depth"] == 20]
    done = twenty[twenty["status"] == "completed"].set_index("arch")
    assert sorted(done.index) == ["plain", "resnet"]
    assert (metrics.groupby("run_id")["iteration"].max()[done["run_id"]] >= 64_000).all()
    # Table 6: ResNet-20 8.75%; reproductions of the recipe 7.8-9.3%; plain-20 above ResNet-20.
    assert 7.8 <= done.loc["resnet", "final_test_error"] <= 9.3
    assert done.loc["plain", "final_test_error"] >= done.loc["resnet", "final_test_error"]
    assert set(twenty.loc[twenty["status"] != "completed", "run_id"]) == {"22ae093b3ec1"}  # the lost one


def test_the_longer_reference_is_longer_toml_in_fp32_each_run_done_or_resumable_on_a_fresh_clone() -> None:
    """Figure 6's runs (issue 35), trained across sessions and machines: every run is one of
    longer.toml's, all in fp32, each epoch logged once; a completed run ships its final weights (and
    no checkpoint), an unfinished one the checkpoint of its last logged epoch, so the same command
    resumes it anywhere."""
    folder = ROOT / "results" / "reference" / "longer"
    runs = pd.read_csv(folder / "runs.csv")
    metrics = pd.read_csv(folder / "metrics.csv")
    longer = resolve(ROOT / "experiments" / "longer.toml", {})
    assert set(runs["precision"]) == {"fp32"} and set(runs["run_id"]) <= shipped_run_ids(longer, runs)
    for run in runs.itertuples():
        epochs = metrics.loc[metrics["run_id"] == run.run_id, "epoch"].tolist()
        assert epochs == list(range(1, run.epochs_done + 1))  # each once
        checkpoint, weights = (folder / sub / f"{run.run_id}.pt" for sub in ("checkpoints", "weights"))
        if run.status == "completed":
            assert run.epochs_done == longer.epochs and not checkpoint.exists()
            state = load_weights(weights, run.run_id)
        else:
            state = load_checkpoint(checkpoint, run.run_id)
        assert state is not None and state["epoch"] == run.epochs_done
