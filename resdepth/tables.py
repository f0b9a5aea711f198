"""The table of final errors by architecture and depth, one per recipe, and a verdict that knows its
noise.

The verdict compares the shallowest and the deepest depth that plain nets and ResNets share, on
completed runs only. A change counts only beyond NOISE_FACTOR times the seed-to-seed standard
deviation of the final training error, pooled over those four nets' runs (a net that ran once adds
nothing to it), and at least `MIN_RISE`; with one run of every net it counts beyond `MIN_RISE`, and
the verdict says which nets ran once. A line per seed follows, because a claim about every seed (the
course config's) cannot be read off the means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from resdepth import analysis
from resdepth.analysis import PARTIAL_MARK, Group, final_rows, per_net
from resdepth.models import RESIDUAL_ARCHS
from resdepth.progress import duration
from resdepth.results import Status
from resdepth.runs import PAPER_EPOCHS, net_name

# He et al. call it degradation when the deeper plain net trains worse. We ask for a plain rise
# beyond the noise, a ResNet whose rise (if any) stays under a third of the plain net's, and a deep
# ResNet below the deep plain net by more than the noise.
MIN_RISE = 1.0  # percentage points: the smallest change ever counted
NOISE_FACTOR = 2.0  # a change counts beyond this many pooled seed-to-seed standard deviations
MAX_RESNET_SHARE = 1 / 3  # of the plain net's rise, the most a ResNet may rise for degradation


@dataclass
class Recipe:
    """One recipe of a results folder, as `resdepth report` shows it."""

    group: Group  # its runs and rows (`group.heading`: how it differs from the folder's others)
    nets: pd.DataFrame | None  # one row per net (None: no run known to have completed)
    reference: str = ""  # how the reference's runs differ from these ("": the same recipe, or none)

    @property
    def verdict(self) -> str:
        return verdict(self.nets) if self.nets is not None else "no run known to have completed"


def report(
    folder: Path, where: list[str] | None = None, include_partial: bool = False, reference: Path | None = None
) -> list[Recipe]:
    """Every recipe of a results folder: its table of nets (beside `reference`'s runs of the same
    recipe, if given) and its verdict. Runs that differ in anything but the seed are never averaged."""
    found = analysis.groups(analysis.load(folder, where=where or []), include_partial)
    recipes = [Recipe(g, table(g) if not g.metrics.empty else None) for g in found]
    if reference is not None:
        ref = analysis.load(reference)
        for r in recipes:
            if r.nets is not None:
                matched = analysis.matching(r.group, ref)
                r.reference = analysis.reference_note(r.group, matched)
                r.nets = with_reference(r.nets, matched)
    return recipes


def table(group: Group) -> pd.DataFrame:
    """One row per net: runs (seeds), errors as mean and std, parameters and wall time."""
    nets = per_net(final_rows(group.metrics))
    runs = group.runs.assign(
        depth=pd.to_numeric(group.runs["depth"], errors="coerce"),
        params=pd.to_numeric(group.runs["params"], errors="coerce"),
    )
    params = runs.groupby(["arch", "depth"])["params"].first()
    nets["params"] = [params.get((a, d), "") for a, d in zip(nets["arch"], nets["depth"], strict=True)]
    order = {"plain": 0, "resnet": 1}
    nets["_order"] = nets["arch"].map(order).fillna(2)
    return nets.sort_values(["_order", "arch", "depth"]).drop(columns="_order").reset_index(drop=True)


def with_reference(nets: pd.DataFrame, reference: Group) -> pd.DataFrame:
    """`nets` with, per net, the reference runs' final training error (mean, std, runs) and how many
    reference standard deviations the net's mean lies from the reference mean (NaN with fewer than
    two reference runs or no spread between them)."""
    ref = per_net(final_rows(reference.metrics)).set_index(["arch", "depth"])
    out = nets.copy()
    keys = list(zip(out["arch"], out["depth"], strict=True))
    for column, source in (
        ("ref_mean", "final_train_error_mean"),
        ("ref_std", "final_train_error_std"),
        ("ref_runs", "seeds"),
    ):
        out[column] = [ref[source].get(k, float("nan")) for k in keys]
    spread = out["ref_std"].where((out["ref_runs"] >= 2) & (out["ref_std"] > 0))
    out["ref_z"] = (out["final_train_error_mean"] - out["ref_mean"]) / spread
    return out


def threshold(nets: pd.DataFrame) -> tuple[float, int]:
    """The smallest change (points) that counts, and the fewest runs of any of these nets. The std is
    pooled with each net's degrees of freedom, so a net that ran once adds nothing to it, and the
    spread measured on the others still counts (one noise for all: they differ in depth alone)."""
    seeds = int(nets["seeds"].min())
    dof = nets["seeds"] - 1
    if dof.sum() == 0:
        return MIN_RISE, seeds
    pooled = math.sqrt(float((dof * nets["final_train_error_std"] ** 2).sum() / dof.sum()))
    return max(MIN_RISE, NOISE_FACTOR * pooled), seeds


def shared_depths(frame: pd.DataFrame) -> list[int]:
    """The depths at which both plain nets and ResNets ran: only those are compared."""
    plain, resnet = (set(frame.loc[frame["arch"] == arch, "depth"]) for arch in RESIDUAL_ARCHS)
    return sorted(plain & resnet)


def verdict(nets: pd.DataFrame) -> str:
    """A sentence that says whether the data shows degradation, with the numbers, or why not."""
    series = {
        arch: nets[nets["arch"] == arch].drop_duplicates("depth").set_index("depth").sort_index()
        for arch in RESIDUAL_ARCHS
    }
    if any(s.empty for s in series.values()):
        return "no verdict: the sweep needs both plain and resnet runs"
    depths = shared_depths(nets)
    if len(depths) < 2:  # a question the sweep did not ask, not a failure to reproduce
        shared = f" ({depths[0]})" if depths else ""
        return f"no verdict: degradation is a change with depth, and plain and resnet share fewer than two depths{shared}"
    shallow, deep = depths[0], depths[-1]
    compared = pd.concat([series[a].loc[[shallow, deep]] for a in RESIDUAL_ARCHS])
    partial = [str(x) for x in compared["label"] if str(x).endswith(PARTIAL_MARK)]
    if partial:  # a mean of runs stopped at different epochs says nothing about depth
        return (
            f"no verdict: {', '.join(partial)} include runs that did not complete; the verdict compares "
            "completed runs (without --include-partial)"
        )
    limit, seeds = threshold(compared)
    p, r = (series[a]["final_train_error_mean"] for a in RESIDUAL_ARCHS)
    plain_rise, res_rise = p[deep] - p[shallow], r[deep] - r[shallow]
    plain_txt = (
        f"plain training error {_trend(plain_rise, limit)} with depth "
        f"({shallow}: {p[shallow]:.1f}% -> {deep}: {p[deep]:.1f}%)"
    )
    res_txt = f"ResNet's {_trend(res_rise, limit)} ({shallow}: {r[shallow]:.1f}% -> {deep}: {r[deep]:.1f}%)"
    single = int((compared["seeds"] < 2).sum())
    basis = _basis(single, len(compared), seeds, limit)
    if plain_rise > limit and res_rise < plain_rise * MAX_RESNET_SHARE and p[deep] - r[deep] > limit:
        if res_rise > limit:  # a short run: deeper ResNets lag a little before they overtake
            res_txt = res_txt.replace("rises", f"rises far less, {res_rise:.1f} points")
        return f"degradation reproduced: {plain_txt}, {res_txt}{basis}"
    epochs = int(nets["epochs"].max())
    hint = (
        f" ({epochs} epochs may be too short: the paper trains {PAPER_EPOCHS})"
        if epochs < PAPER_EPOCHS
        else ""
    )
    if single < len(compared) and abs(plain_rise) <= limit:  # within a noise that was measured
        return (
            f"not enough evidence: the plain rise ({plain_rise:.1f} points) is within the seed-to-seed "
            f"noise: {plain_txt}, {res_txt}{basis}{hint}"
        )
    why = []
    if plain_rise <= limit:
        why.append("the deeper plain net does not train worse")
    elif res_rise >= plain_rise * MAX_RESNET_SHARE:
        why.append("the deeper ResNet also trains much worse")
    if p[deep] - r[deep] <= limit:
        why.append(f"ResNet-{deep} is not below plain-{deep}")
    return f"not reproduced: {'; '.join(why)}: {plain_txt}, {res_txt}{basis}{hint}"


def per_seed(group: Group) -> str:
    """How each seed's final training error changes from the shallowest to the deepest depth that
    plain nets and ResNets share, and, with more depths, in how many seeds the plain net rises at
    every step: a mean can hide a seed that goes the other way. Each part counts the seeds that have
    every net it needs, completed (never a run stopped early, which `--include-partial` shows); empty
    with fewer than two such seeds."""
    completed = group.runs.loc[group.runs["status"] == Status.COMPLETED, "run_id"]
    finals = final_rows(group.metrics[group.metrics["run_id"].isin(completed)])
    finals = finals[finals["arch"].isin(RESIDUAL_ARCHS)]
    if finals.duplicated(["arch", "depth", "seed"]).any():
        return ""  # runs sharing a seed number: the table counts them, a per-seed line cannot
    shared = shared_depths(finals)
    if len(shared) < 2:
        return ""
    errors = finals.pivot(index="seed", columns=["arch", "depth"], values="train_error")
    shallow, deep = shared[0], shared[-1]
    ends = errors[[(a, d) for a in RESIDUAL_ARCHS for d in (shallow, deep)]].dropna()
    if len(ends) < 2:
        return ""
    changes = [
        f"{name} " + ", ".join(f"{x:+.1f}" for x in ends[(arch, deep)] - ends[(arch, shallow)])
        for arch, name in (("plain", "plain"), ("resnet", "ResNet"))
    ]
    seeds = ", ".join(str(s) for s in ends.index)
    text = f"per seed ({seeds}), {shallow} -> {deep} layers: {'; '.join(changes)} points"
    plain = errors["plain"][shared].dropna()
    if len(shared) > 2 and len(plain) >= 2:
        values = plain.to_numpy()
        rising = int((values[:, 1:] > values[:, :-1]).all(axis=1).sum())
        steps = " -> ".join(str(d) for d in shared)
        text += f"; plain rises at every step ({steps}) in {rising} of {len(plain)} seeds"
    return text


def _basis(single: int, compared: int, seeds: int, limit: float) -> str:
    """What the verdict's noise rests on: how many of the nets compared ran once, and the threshold."""
    if single == compared:
        return "; the verdict rests on one seed per net"
    beyond = f"so a change counts beyond {_times(NOISE_FACTOR)}"
    if single:
        return f"; {single} of the {compared} nets compared ran once, {beyond} the pooled std of the others ({limit:.1f} points)"
    return f"; {seeds} or more seeds per net, {beyond} their pooled std ({limit:.1f} points)"


def _trend(rise: float, limit: float) -> str:
    if rise > limit:
        return "rises"
    return "falls" if rise < -limit else "stays level"


def plus_minus(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f}" if seeds < 2 else f"{mean:.2f} ± {std:.2f}"


def rows(nets: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["net", "seeds", "epochs", "final test err %", "best test err %", "final train err %"]
    header += ["params", "wall time"]
    compared = "ref_mean" in nets.columns
    if compared:
        header += ["reference train err %", "vs reference"]
    body = []
    for n in nets.to_dict("records"):
        seeds = int(n["seeds"])
        errors = [
            plus_minus(n[f"{c}_mean"], n[f"{c}_std"], seeds)
            for c in ("final_test_error", "best_test_error", "final_train_error")
        ]
        params = f"{int(float(n['params'])):,}" if str(n["params"]).strip() not in ("", "nan") else ""
        wall = duration(n["wall_seconds_mean"])
        row = [str(n["label"]), str(seeds), str(int(n["epochs"])), *errors, params, wall]
        if compared:
            row += _vs_reference(n)
        body.append(row)
    return header, body


def _vs_reference(n: dict[Any, Any]) -> list[str]:
    if math.isnan(n["ref_mean"]):
        return ["(no such net)", ""]
    runs = int(n["ref_runs"])
    ref = plus_minus(n["ref_mean"], n["ref_std"], runs) + f" ({runs} run{'s' if runs > 1 else ''})"
    z = "no spread to compare" if math.isnan(n["ref_z"]) else f"{n['ref_z']:+.1f} std"
    return [ref, z]


def left_out(group: Group) -> list[str]:
    """One line per run the means leave out: who, its status, and how far it got."""
    lines = []
    for r in group.left_out.to_dict("records"):
        status = r["status"] or "unknown status"
        done = (
            f"{r['epochs_done'] or 0} of {r['epochs']} epochs"
            if r["epochs"]
            else f"{r['epochs_done'] or 0} epochs"
        )
        lines.append(f"{net_name(r)} seed {r['seed']} ({r['run_id']}): {status}, {done}")
    return lines


def markdown(group: Group, nets: pd.DataFrame) -> str:
    header, body = rows(nets)
    lines = [f"**{group.heading}**", ""] if group.heading else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += [f"- left out: {line}" for line in left_out(group)]
    seeds = per_seed(group)
    return "\n".join(lines) + f"\n\n{verdict(nets)}\n" + (f"\n{seeds}\n" if seeds else "")


def _times(factor: float) -> str:
    return {1.0: "once", 2.0: "twice", 3.0: "three times"}.get(factor, f"{factor:g} times")
