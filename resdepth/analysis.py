"""Reading a results folder back for figures and tables: pandas on the CSVs, never live objects.

A folder can hold many sweeps. Runs are only ever averaged with runs of the same *recipe*: every
setting that changes a run's numbers (everything its run id hashes) except the seed, and except what
names the row of a table (arch and depth) or is decided per net (the warm-up under `--warmup auto`;
a recipe in which one net ran both with and without warm-up splits in two by it). `groups` splits a
folder into its recipes; a classic net (LeNet-5, VGG-16), whose residual-net model options do not
apply, joins every recipe it shares the data and the training recipe with. A run that runs.csv does
not list has an unknown recipe and status: it is in no recorded recipe's means.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resdepth import results
from resdepth.errors import UserError
from resdepth.models import CLASSIC_DEPTHS, NOT_APPLICABLE
from resdepth.results import Status
from resdepth.runs import MODEL_FIELDS, RUN_FIELDS, net_name

# What makes two runs comparable: every hashed field but the seed, the row (arch, depth) and the
# warm-up, which `--warmup auto` decides per depth within one sweep (a warmed-up row is labelled).
RECIPE_FIELDS = tuple(f.name for f in RUN_FIELDS if f.name not in ("arch", "depth", "seed", "warmup"))
# A group's settings: its recipe, and its warm-up where one of its nets ran both ways (`_by_warmup`).
GROUP_FIELDS = (*RECIPE_FIELDS, "warmup")
PARTIAL_MARK = " *"  # on a net whose mean includes runs that did not complete (--include-partial)


@dataclass
class Loaded:
    folder: Path  # where figures go by default
    metrics: pd.DataFrame  # every logged row of the runs kept, with a `label` column
    runs: pd.DataFrame  # one row per run, as text: runs.csv, or what metrics.csv tells without it
    folder_runs: pd.DataFrame  # every run of the folder, `--where` or not: what recipe headings name


@dataclass
class Group:
    """The runs of one recipe: the only runs a table, a figure or a verdict may average."""

    settings: dict[str, str]  # the recipe's values ("" where the folder does not say)
    heading: str  # the settings in which it differs from the folder's other recipes ("" if alone),
    # and "recipe not recorded" for runs that runs.csv does not list
    metrics: pd.DataFrame  # rows of the runs its means include
    left_out: pd.DataFrame  # runs not known to have completed, not in the means: their runs rows
    runs: pd.DataFrame  # every run of the recipe, in the means or not

    @property
    def slug(self) -> str:
        """A file-name form of the heading (empty for a folder of one recipe)."""
        if not self.heading:
            return ""
        text = (
            re.sub(r"[^A-Za-z0-9.=,-]+", "", self.heading.replace(" ", ""))
            .replace("=", "-")
            .replace(",", "_")
        )
        return text if len(text) <= 60 else hashlib.sha256(self.heading.encode()).hexdigest()[:8]


def load(path: str | Path, *, where: Iterable[str] = ()) -> Loaded:
    """A results folder or a metrics.csv, with at least one finished epoch; `where` (KEY=VALUE, on
    the runs.csv columns) keeps only the runs that match every condition."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; give a results folder or its metrics.csv")
    folder, csv = (path, path / results.METRICS) if path.is_dir() else (path.parent, path)
    if csv.name == results.RUNS:  # resdepth's own file, but not the one with the epochs
        raise UserError(f"{path} lists runs; give its folder, {folder}, or the {results.METRICS} beside it")
    if not csv.is_file():
        raise UserError(f"{folder} has no {results.METRICS}; has a sweep written there yet?")
    metrics = results.read_metrics_file(csv)
    if metrics.empty:
        raise UserError(f"{csv} has no finished epoch yet")
    runs = every = _runs(folder / results.RUNS, metrics)
    for condition in where:
        runs = runs[_matches(runs, condition)]
    metrics = metrics[metrics["run_id"].isin(runs["run_id"])].copy()
    if metrics.empty:
        raise UserError(f"no run of {path} matches --where {' '.join(where)}")
    labels = {r["run_id"]: net_name(r) for r in runs.to_dict("records")}
    metrics["label"] = metrics["run_id"].map(labels)
    return Loaded(folder, metrics.reset_index(drop=True), runs.reset_index(drop=True), every)


def _runs(runs_csv: Path, metrics: pd.DataFrame) -> pd.DataFrame:
    """runs.csv as text; a run that metrics.csv has and runs.csv lacks gets what metrics.csv says of
    it (its net, data and seed: NET_COLUMNS), and an unknown recipe and status ("")."""
    known = (
        results.read_runs_file(runs_csv)
        if runs_csv.is_file()
        else pd.DataFrame(columns=list(results.RUNS_COLUMNS))
    )
    first = metrics.drop_duplicates("run_id")
    missing = first[~first["run_id"].isin(known["run_id"])]
    from_metrics = pd.DataFrame(
        {
            c: missing[c].map(_text) if c in (*results.NET_COLUMNS, "run_id") else ""
            for c in results.RUNS_COLUMNS
        },
        index=missing.index,
    )
    runs = pd.concat([known, from_metrics], ignore_index=True) if not from_metrics.empty else known
    runs = runs.astype(str).replace("nan", "")
    # What the rows show beats what runs.csv says: a run whose rows are missing is not completed,
    # one killed after its last epoch is. Read-only: a sweep writes the settled status (under lock).
    logged = metrics.groupby("run_id")["epoch"].count()
    counts = runs["run_id"].map(logged).fillna(0).astype(int)
    runs["status"] = [
        results.settled_status(r, n, live=True) for r, n in zip(runs.to_dict("records"), counts, strict=True)
    ]
    runs["epochs_done"] = counts.astype(str).where(
        runs["status"] != results.Status.COMPLETED, runs["epochs_done"]
    )
    return runs


def _text(value: object) -> str:
    """A CSV value as runs.csv writes it (whole numbers without a trailing .0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _matches(runs: pd.DataFrame, condition: str) -> pd.Series:
    key, sep, value = condition.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in runs.columns:
        raise UserError(
            f"--where takes KEY=VALUE with KEY one of {', '.join(runs.columns)}; got {condition!r}"
        )
    value = value.strip()
    column = runs[key].astype(str)
    try:
        number = float(value)
    except ValueError:
        return column == value
    return pd.to_numeric(column, errors="coerce").sub(number).abs().lt(1e-12) | (column == value)


def groups(loaded: Loaded, include_partial: bool = False) -> list[Group]:
    """The folder's recipes, in the order their first run appears. Only completed runs are in the
    means unless `include_partial`: a run that runs.csv does not list has an unknown status (and an
    unknown recipe, so it never joins a recipe that runs.csv records)."""
    runs = loaded.runs
    keys = _by_warmup(_by_recipe(runs), runs)
    # Headings name how a recipe differs from the folder's others, `--where` or not: a figure of the
    # recipe it keeps is titled and named as without it, never as the folder's only recipe.
    every = _by_warmup(_by_recipe(loaded.folder_runs), loaded.folder_runs)
    differ = [
        f for j, f in enumerate(GROUP_FIELDS) if len({k[j] for k in every if k[j] != NOT_APPLICABLE}) > 1
    ]
    out = []
    for key, rows in keys.items():
        settings = dict(zip(GROUP_FIELDS, key, strict=True))
        members = runs.loc[rows]
        counted = (members["status"] == Status.COMPLETED) | include_partial
        metrics = loaded.metrics[loaded.metrics["run_id"].isin(members.loc[counted, "run_id"])].copy()
        metrics["label"] = _labels(metrics, members, counted)
        unrecorded = (members["status"] == "").all()  # only runs.csv's own rows have a status
        said = [
            f"{f}={settings[f]}"
            for f in differ
            if settings[f] != NOT_APPLICABLE and (settings[f] or not unrecorded)
        ]
        if differ and unrecorded:
            said.append("recipe not recorded (runs missing from runs.csv)")
        heading = ", ".join(said)
        out.append(Group(settings, heading, metrics, members[~counted], members))
    return [g for g in out if not g.metrics.empty or not g.left_out.empty]


def _by_recipe(runs: pd.DataFrame) -> dict[tuple[str, ...], list[int]]:
    """Row indexes of `runs` by their RECIPE_FIELDS values; a classic net joins every recipe it
    shares the training settings with."""
    classic = runs["arch"].isin(CLASSIC_DEPTHS)
    training = [f for f in RECIPE_FIELDS if f not in MODEL_FIELDS]
    keys: dict[tuple[str, ...], list[int]] = {}
    for i, r in runs[~classic].iterrows():
        keys.setdefault(tuple(r[f] for f in RECIPE_FIELDS), []).append(i)  # type: ignore[arg-type]
    for i, r in runs[classic].iterrows():
        joined = [k for k in keys if all(k[RECIPE_FIELDS.index(f)] == r[f] for f in training)]
        for k in joined or [tuple(r[f] for f in RECIPE_FIELDS)]:
            keys.setdefault(k, []).append(i)  # type: ignore[arg-type]
    return keys


def _by_warmup(
    keys: dict[tuple[str, ...], list[int]], runs: pd.DataFrame
) -> dict[tuple[str, ...], list[int]]:
    """Each recipe keyed on its warm-up too: NOT_APPLICABLE where each net has one warm-up (`--warmup
    auto` decides it per depth), or else split in two by warm-up, because a net that ran both with
    and without it (sweeps of different --warmup in one folder) is two nets, never one mean."""
    out: dict[tuple[str, ...], list[int]] = {}
    for key, rows in keys.items():
        members = runs.loc[rows]
        split = bool(members.groupby(["arch", "depth"])["warmup"].nunique().gt(1).any())
        for i in rows:
            if not split:
                halves = [NOT_APPLICABLE]
            elif runs.at[i, "arch"] in CLASSIC_DEPTHS:  # never warmed up: it joins both halves
                halves = ["True", "False"]
            else:
                halves = [str(runs.at[i, "warmup"])]
            for half in halves:
                out.setdefault((*key, half), []).append(i)
    return out


def _labels(metrics: pd.DataFrame, members: pd.DataFrame, counted: pd.Series) -> pd.Series:
    """Net labels, marked where the recipe warms up only some of its nets of an arch, and where a
    mean includes runs that did not complete."""
    warm = members.set_index("run_id")["warmup"]
    mixed = len(set(warm[~members.set_index("run_id")["arch"].isin(CLASSIC_DEPTHS)])) > 1
    partial = set(members.loc[counted & (members["status"] != Status.COMPLETED), "run_id"])
    labels = metrics["label"].copy()
    if mixed:
        labels = labels.where(metrics["run_id"].map(warm) != "True", labels + " (warm-up)")
    marked = metrics.groupby(["arch", "depth", labels])["run_id"].transform(
        lambda ids: bool(set(ids) & partial)
    )
    return labels.where(~marked.astype(bool), labels + PARTIAL_MARK)


# A reference may differ from the runs it is compared with in these settings alone, said on the
# figure and in the report: bf16 matched fp32 within the seed spread on real CIFAR-10 (docs/results.md), so
# references trained on one kind of CPU serve a user on the other.
ACROSS = ("precision",)


def differences(group: Group, other: Group) -> list[str]:
    """The settings in which `other`'s runs differ from `group`'s: its recipe's, and the warm-up
    where a net of both was warmed up in one and not in the other."""
    found = [f for f in RECIPE_FIELDS if other.settings[f] != group.settings[f]]
    if _warmup_differs(group, other):
        found.append("warmup")
    return found


def _warmup_differs(group: Group, other: Group) -> list[str]:
    """The nets that both groups ran, warmed up in one and not in the other."""
    theirs = {(r["arch"], r["depth"]): r["warmup"] for r in other.runs.to_dict("records")}
    return sorted(
        {
            net_name(r)
            for r in group.runs.to_dict("records")
            if theirs.get((r["arch"], r["depth"]), r["warmup"]) != r["warmup"]
        }
    )


def matching(group: Group, reference: Loaded) -> Group:
    """The reference's runs of `group`'s recipe, or else of a recipe that differs in ACROSS settings
    alone (`reference_note` says how); any other reference is refused, naming the settings in which
    its closest recipe differs."""
    found = [g for g in groups(reference) if not g.metrics.empty]
    if not found:
        raise UserError(f"{reference.folder} has no completed run to compare with")
    for candidate in sorted(found, key=lambda g: len(differences(group, g))):
        if all(f in ACROSS for f in differences(group, candidate)):
            return candidate
    closest = min(found, key=lambda g: len([f for f in differences(group, g) if f not in ACROSS]))
    said = "; ".join(
        f"warm-up of {', '.join(_warmup_differs(group, closest))}"
        if f == "warmup"
        else f"{f} {group.settings[f] or '(not recorded)'} here, {closest.settings[f] or '(not recorded)'} there"
        for f in differences(group, closest)
        if f not in ACROSS
    )
    raise UserError(f"{reference.folder} holds no run of this recipe, so nothing to compare with: {said}")


def reference_note(group: Group, reference: Group) -> str:
    """How the reference's recipe differs from the runs' ("" when it is the same): "fp32 reference"."""
    return ", ".join(
        f"{reference.settings[f] or f'({f} not recorded)'} reference" for f in differences(group, reference)
    )


def diverged_ids(group: Group) -> set[str]:
    """Runs whose status says so, or whose loss went non-finite (a run missing from runs.csv has no status)."""
    ids = set(group.runs.loc[group.runs["status"] == Status.DIVERGED, "run_id"])
    loss = pd.to_numeric(group.metrics["train_loss"], errors="coerce")
    ids |= set(group.metrics.loc[~np.isfinite(loss), "run_id"])
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
    """Mean and std over seeds for each net of one recipe; std is 0 for a single run. `seeds` counts
    runs, so that runs wrongly sharing a seed number would still show."""
    columns = ["final_test_error", "best_test_error", "final_train_error", "wall_seconds"]
    f = finals.rename(columns={"test_error": "final_test_error", "train_error": "final_train_error"})
    g = f.groupby(["arch", "depth", "label"], sort=True)
    out = g[columns].mean().add_suffix("_mean")
    std = g[columns].std(ddof=1).fillna(0.0).add_suffix("_std")
    out = out.join(std)
    out["seeds"] = g["run_id"].nunique()
    out["epochs"] = g["epoch"].max()
    return out.reset_index()


def recipe_headings(folder: Path) -> dict[str, str]:
    """run_id -> the heading of its recipe, for a folder of several recipes (else empty headings)."""
    try:
        found = groups(load(folder), include_partial=True)
    except UserError:
        return {}
    return {run_id: g.heading for g in found for run_id in g.runs["run_id"]}
