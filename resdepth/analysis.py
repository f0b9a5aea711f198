"""Reading a results folder back for figures and tables: pandas on the CSVs, never live objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resdepth import results
from resdepth.errors import UserError
from resdepth.models import NetSpec


@dataclass
class Loaded:
    folder: Path  # where figures go by default
    metrics: pd.DataFrame
    runs: pd.DataFrame  # empty when runs.csv is absent (e.g. a lone metrics.csv)


def load(path: str | Path) -> Loaded:
    """A results folder or a metrics.csv, with at least one finished epoch."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; give a results folder or its metrics.csv")
    folder, csv = (path, path / results.METRICS) if path.is_dir() else (path.parent, path)
    if not csv.is_file():
        raise UserError(f"{folder} has no {results.METRICS}; has a sweep written there yet?")
    metrics = results.read_metrics_file(csv)
    if metrics.empty:
        raise UserError(f"{csv} has no finished epoch yet")
    runs_csv = folder / results.RUNS
    runs = (
        results.read_csv(runs_csv, results.RUNS_COLUMNS)
        if runs_csv.is_file()
        else pd.DataFrame(columns=list(results.RUNS_COLUMNS))
    )
    runs["run_id"] = runs["run_id"].astype(str)
    metrics = metrics.copy()
    metrics["label"] = [
        NetSpec(str(a), int(d), norm=str(n), activation=str(f)).name
        for a, d, n, f in zip(
            metrics["arch"], metrics["depth"], metrics["norm"], metrics["activation"], strict=True
        )
    ]
    return Loaded(folder, metrics, runs)


def diverged_ids(loaded: Loaded) -> set[str]:
    """Runs whose status says so, or whose loss went non-finite (a lone metrics.csv has no status)."""
    ids = set(loaded.runs.loc[loaded.runs["status"] == "diverged", "run_id"])
    loss = pd.to_numeric(loaded.metrics["train_loss"], errors="coerce")
    ids |= set(loaded.metrics.loc[~np.isfinite(loss), "run_id"])
    return ids


def final_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Each run's last recorded epoch, plus its best test error and wall time so far."""
    ordered = metrics.sort_values(["run_id", "epoch"])
    last = ordered.groupby("run_id").tail(1).set_index("run_id")
    grouped = ordered.groupby("run_id")
    last["best_test_error"] = grouped["test_error"].min()
    last["wall_seconds"] = grouped["epoch_seconds"].sum()
    return last.reset_index()


def per_net(finals: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds for each (arch, depth); std is 0 for a single seed."""
    columns = ["final_test_error", "best_test_error", "final_train_error", "wall_seconds"]
    f = finals.rename(columns={"test_error": "final_test_error", "train_error": "final_train_error"})
    g = f.groupby(["arch", "depth", "label"], sort=True)
    out = g[columns].mean().add_suffix("_mean")
    std = g[columns].std(ddof=1).fillna(0.0).add_suffix("_std")
    out = out.join(std)
    out["seeds"] = g["seed"].nunique()
    out["epochs"] = g["epoch"].max()
    return out.reset_index()
