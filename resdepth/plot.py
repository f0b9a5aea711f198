"""He et al. Figure 6 (error curves per architecture) and the degradation curve (error vs depth).

Figures are built with matplotlib's object API (no pyplot, no display needed) and returned, so tests
can read back exactly what was drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from resdepth import analysis, results
from resdepth.analysis import (
    PARTIAL_MARK,
    Group,
    Loaded,
    diverged_ids,
    final_rows,
    groups,
    matching,
    per_net,
    reference_note,
)
from resdepth.diagnose.registry import read, write_figures
from resdepth.errors import UserError
from resdepth.models import CLASSIC_DEPTHS, PLAIN, RESIDUAL_ARCHS, RESNET
from resdepth.runs import PAPER_EPOCHS
from resdepth.style import PALETTE, figure_path, save

# He et al. 2016, Table 6: CIFAR-10 test error (%) of their ResNets (best of 5 runs for 110).
PAPER_RESNET_TEST = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
PANEL_TITLES = {PLAIN: "plain", RESNET: "ResNet", "classic": "classic nets"}


def _panel(arch: str) -> str:
    return "classic" if arch in CLASSIC_DEPTHS else arch


def colours(metrics: pd.DataFrame) -> dict[str, str]:
    """One colour per depth (the same in every panel); classic nets after the depths, by name."""
    keys = [str(d) for d in sorted(metrics.loc[~metrics["arch"].isin(CLASSIC_DEPTHS), "depth"].unique())]
    keys += sorted(metrics.loc[metrics["arch"].isin(CLASSIC_DEPTHS), "arch"].unique())
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}


def _colour_key(arch: str, depth: int) -> str:
    return arch if arch in CLASSIC_DEPTHS else str(int(depth))


def y_top(metrics: pd.DataFrame) -> float:
    """The paper shows 0-20%: keep that window when errors end below it, else widen to fit the ends."""
    finals = final_rows(metrics)
    worst = float(np.nanmax(finals[["train_error", "test_error"]].to_numpy()))
    return float(min(100.0, max(20.0, np.ceil(worst * 1.25 / 10) * 10)))


def paper_markers(ax: Axes) -> None:
    """He et al.'s Table 6 ResNet test errors, as black stars."""
    ax.plot(
        list(PAPER_RESNET_TEST),
        list(PAPER_RESNET_TEST.values()),
        linestyle="none",
        marker="*",
        markersize=11,
        color="black",
        zorder=5,
        label=f"He et al. 2016, Table 6 (ResNet, {PAPER_EPOCHS} epochs)",
    )


def curves_figure(group: Group, x: str = "iteration", reference: Group | None = None) -> Figure:
    """Error curves of one recipe: a panel per family, a colour per depth, mean over runs with a band;
    `reference` (runs of the same recipe) draws each net's reference test error as a grey band."""
    m = group.metrics
    ref = reference.metrics if reference is not None else m.iloc[:0]
    diverged = diverged_ids(group)
    panels = [p for p in (*RESIDUAL_ARCHS, "classic") if (m["arch"].map(_panel) == p).any()]
    fig = Figure(figsize=(5.5 * len(panels), 4.5), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    palette = colours(m)
    # The paper's axis is in units of 1e4 iterations; short runs read better in plain iterations.
    scale = 1e4 if x == "iteration" and m["iteration"].max() >= 1e4 else 1.0
    for ax, panel in zip(axes, panels, strict=True):
        sub = m[m["arch"].map(_panel) == panel]
        for _, net in sub.groupby(["arch", "depth", "label"], sort=True):
            first = net.iloc[0]
            name = str(first["label"])
            colour = palette[_colour_key(str(first["arch"]), int(first["depth"]))]
            stats = net.groupby(x)[["train_error", "test_error"]].agg(["mean", "std"]).sort_index()
            xs = stats.index.to_numpy(dtype=float) / scale
            several = net["run_id"].nunique() > 1
            theirs = ref[(ref["arch"] == first["arch"]) & (ref["depth"] == first["depth"])]
            if not theirs.empty:
                r = theirs.groupby(x)["test_error"].agg(["mean", "std"]).sort_index()
                rx, rm, rs = (
                    r.index.to_numpy(dtype=float) / scale,
                    r["mean"].to_numpy(),
                    r["std"].fillna(0).to_numpy(),
                )
                ax.fill_between(rx, rm - rs, rm + rs, color="0.6", alpha=0.3, linewidth=0, zorder=0)
                ax.plot(rx, rm, color="0.5", linewidth=0.8, zorder=0)
            for column, style, width in (("train_error", "--", 1.0), ("test_error", "-", 2.2)):
                mean = stats[(column, "mean")].to_numpy()
                suffix = " (diverged)" if set(net["run_id"]) & diverged else ""
                ax.plot(
                    xs,
                    mean,
                    style,
                    color=colour,
                    linewidth=width,
                    label=f"{name}{suffix}" if column == "test_error" else None,
                )
                if several:
                    std = stats[(column, "std")].fillna(0).to_numpy()
                    ax.fill_between(xs, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        ax.set_title(PANEL_TITLES[panel])
        ax.set_xlabel({1e4: "iter. (1e4)", 1.0: "iterations"}[scale] if x == "iteration" else "epoch")
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        handles += [
            Line2D([], [], color="black", linestyle="--", linewidth=1.0, label="train error"),
            Line2D([], [], color="black", linestyle="-", linewidth=2.2, label="test error"),
        ]
        if not ref.empty:
            label = f"{_reference_name(group, reference)} test error"
            handles.append(Line2D([], [], color="0.6", linewidth=6, alpha=0.5, label=label))
        ax.legend(handles=handles, fontsize="small", loc="upper right")
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(0, y_top(m))
    return fig


METRICS = {"train": "final_train_error", "test": "final_test_error"}
FAMILY_STYLE = {"plain": ("#d62728", "s", "plain"), "resnet": ("#1f77b4", "o", "ResNet")}


def _by_depth(nets: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depths, means and stds of `column` from `per_net` rows of one family, sorted by depth."""
    nets = nets.sort_values("depth")
    depths, mean, std = (nets[c].to_numpy(float) for c in ("depth", f"{column}_mean", f"{column}_std"))
    return depths, mean, std


def depth_figure(group: Group, paper: bool = False) -> Figure:
    """Final errors against depth for one recipe, plain and ResNet, mean ± std over runs."""
    nets = per_net(final_rows(group.metrics))
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, column, title in (
        (axes[0], "final_train_error", "final training error"),
        (axes[1], "final_test_error", "final test error"),
    ):
        for arch, (colour, marker, name) in FAMILY_STYLE.items():
            sub = nets[nets["arch"] == arch]
            if sub.empty:
                continue
            xs, ys, spread = _by_depth(sub, column)
            several = sub.sort_values("depth")["seeds"].to_numpy() > 1
            ax.errorbar(
                xs,
                ys,
                yerr=np.where(several, spread, np.nan),  # no bar where one run measured no spread
                color=colour,
                marker=marker,
                capsize=3,
                linewidth=2,
                label=f"{name}, {_runs_text(sub['seeds'])}",
            )
        for n in nets[nets["arch"].isin(CLASSIC_DEPTHS)].itertuples():
            mean = getattr(n, f"{column}_mean")
            ax.errorbar(
                [n.depth],
                [mean],
                yerr=[getattr(n, f"{column}_std") if cast(int, n.seeds) > 1 else np.nan],
                color="gray",
                marker="D",
                capsize=3,
                linestyle="none",
            )
            ax.annotate(str(n.label), (n.depth, mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if paper and column == "final_test_error":
            paper_markers(ax)
        depths = sorted(set(nets["depth"].astype(int)) | (set(PAPER_RESNET_TEST) if paper else set()))
        ax.set_xticks(depths)
        ax.set_xlabel("depth (weighted layers)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a sweep of classic nets alone has only annotations
            ax.legend(fontsize="small")
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(
        f"degradation: error {trained(group)} vs depth (mean of runs, ± std where several)", fontsize=10
    )
    return fig


def trained(group: Group) -> str:
    """How long the drawn runs trained, "after 164 epochs", and where runs that did not complete are
    in the means (--include-partial), the range of their epochs and that they are there."""
    last = final_rows(group.metrics)["epoch"]
    lo, hi = int(last.min()), int(last.max())
    text = f"after {hi} epochs" if lo == hi else f"after {lo} to {hi} epochs"
    if group.metrics["label"].str.endswith(PARTIAL_MARK).any():
        text += " (runs that did not complete included)"
    return text


def layers_figure(
    group: Group, metric: str = "train", paper: bool = False, reference: Group | None = None
) -> Figure:
    """The course's picture: final error against the number of layers, plain and ResNet side by side
    on one error axis. A line through the mean of the runs, a band of ±1 std where there are several,
    a dot per run; `reference` (runs of the same recipe) as a grey band behind."""
    column = METRICS[metric]
    finals = final_rows(group.metrics).rename(
        columns={"test_error": "final_test_error", "train_error": "final_train_error"}
    )
    nets = per_net(final_rows(group.metrics))
    ref = per_net(final_rows(reference.metrics)) if reference is not None else None
    families = [a for a in FAMILY_STYLE if (nets["arch"] == a).any()]
    if not families:
        raise UserError("layers.png needs plain or resnet runs")
    fig = Figure(figsize=(5.2 * len(families), 4.4), layout="constrained")
    axes = fig.subplots(1, len(families), sharey=True, squeeze=False)[0]
    top = float(finals[column].max())
    for ax, arch in zip(axes, families, strict=True):
        colour, marker, name = FAMILY_STYLE[arch]
        sub = nets[nets["arch"] == arch]
        depths, mean, std = _by_depth(sub, column)
        if ref is not None and not (r := ref[ref["arch"] == arch]).empty:
            top = max(top, _reference_band(ax, r, column, _reference_name(group, reference)))
        if (sub["seeds"] > 1).any():
            ax.fill_between(depths, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0, zorder=2)
        ax.plot(
            depths,
            mean,
            color=colour,
            marker=marker,
            linewidth=2.2,
            zorder=3,
            label=f"{name}, {_runs_text(sub['seeds'])}",
        )
        dots = finals[finals["arch"] == arch]
        ax.plot(
            dots["depth"].to_numpy(float),
            dots[column].to_numpy(float),
            linestyle="none",
            marker=".",
            color=colour,
            alpha=0.6,
            zorder=4,
            label="each run",
        )
        if paper and arch == RESNET:
            _paper_marks(ax, metric)
        ticks = sorted(
            set(depths.astype(int)) | (set(PAPER_RESNET_TEST) if paper and metric == "test" else set())
        )
        _layers_panel(ax, name, ticks)
    _layers_frame(fig, metric, top, f"{trained(group)} against the number of layers")
    return fig


def _reference_band(ax: Axes, runs: pd.DataFrame, column: str, name: str) -> float:
    """The reference's mean in grey, with a band of ±1 std where it has several runs, behind this
    panel's runs; returns the band's top."""
    depths, mean, std = _by_depth(runs, column)
    label = f"{name}, {_runs_text(runs['seeds'])}"
    if (runs["seeds"] > 1).any():
        ax.fill_between(depths, mean - std, mean + std, color="0.6", alpha=0.35, linewidth=0, zorder=1)
        label += ", ±1 std"
    ax.plot(depths, mean, color="0.45", linewidth=1.2, zorder=1, label=label)
    return float(np.nanmax(mean + np.nan_to_num(std)))


def _paper_marks(ax: Axes, metric: str) -> None:
    """He et al.'s test errors on the ResNet panel; a note instead where training error is drawn."""
    if metric == "test":
        paper_markers(ax)
    else:
        ax.annotate(
            "He et al. give test errors only (--metric test)",
            (0.02, 0.02),
            xycoords="axes fraction",
            fontsize=7,
            color="0.3",
        )


def _reference_name(group: Group, reference: Group | None) -> str:
    """ "reference", or "fp32 reference" for one of another precision (the only difference it may have)."""
    return (reference_note(group, reference) if reference is not None else "") or "reference"


def _layers_panel(ax: Axes, name: str, ticks: list[int]) -> None:
    """One family's panel: the depths drawn as ticks, with a margin that does not hide the end dots."""
    ax.set_xticks(ticks)
    margin = 0.06 * (max(ticks) - min(ticks) + 8)
    ax.set_xlim(min(ticks) - margin, max(ticks) + margin)
    ax.set_xlabel("number of layers")
    ax.set_title(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def _layers_frame(fig: Figure, metric: str, top: float, title: str) -> None:
    """The shared error axis (from 0, so that rises are not exaggerated) and the figure's title."""
    what = "training" if metric == "train" else "test"
    fig.axes[0].set_ylabel(f"final {what} error (%)")
    fig.axes[0].set_ylim(0, top * 1.15 + 1)
    fig.suptitle(f"final {what} error {title}", fontsize=10)


def recipes_figure(recipes: list[Group], metric: str = "train") -> Figure:
    """The layers picture of several recipes on shared axes, asked for with `--compare-recipes`: one
    colour per recipe, labelled by the settings in which it differs, a band of ±1 std where it has
    several runs. Each recipe's means are its own; nothing is averaged across recipes."""
    column = METRICS[metric]
    tables = [(g.heading, per_net(final_rows(g.metrics))) for g in recipes if not g.metrics.empty]
    families = [a for a in FAMILY_STYLE if any((t["arch"] == a).any() for _, t in tables)]
    if len(tables) < 2 or not families:
        raise UserError("--compare-recipes needs plain or resnet runs of two or more recipes in the folder")
    fig = Figure(figsize=(5.2 * len(families), 4.6), layout="constrained")
    axes = fig.subplots(1, len(families), sharey=True, squeeze=False)[0]
    top = 0.0
    for ax, arch in zip(axes, families, strict=True):
        _, marker, name = FAMILY_STYLE[arch]
        for i, (heading, nets) in enumerate(tables):
            sub = nets[nets["arch"] == arch]
            if sub.empty:
                continue
            depths, mean, std = _by_depth(sub, column)
            colour = PALETTE[i % len(PALETTE)]
            if (sub["seeds"] > 1).any():
                ax.fill_between(depths, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
            ax.plot(
                depths,
                mean,
                color=colour,
                marker=marker,
                linewidth=2,
                label=f"{heading} ({_runs_text(sub['seeds'])})",
            )
            top = max(top, float(np.nanmax(mean + np.nan_to_num(std))))
        _layers_panel(
            ax, name, sorted({int(d) for _, t in tables for d in t.loc[t["arch"] == arch, "depth"]})
        )
    _layers_frame(fig, metric, top, "against the number of layers, one line per recipe")
    return fig


def _runs_text(seeds: pd.Series) -> str:
    """`1 run`, `mean of 3 runs`, `mean of 1-3 runs`: what a line of runs per point stands for."""
    low, high = int(seeds.min()), int(seeds.max())
    if high == 1:
        return "1 run"
    return f"mean of {low if low == high else f'{low}-{high}'} runs"


def write(
    loaded: Loaded,
    out: Path | None,
    x: str = "iteration",
    paper: bool = False,
    include_partial: bool = False,
    metric: str = "train",
    reference: Loaded | None = None,
    compare_recipes: bool = False,
) -> list[Path]:
    """The error curves, the degradation curve and the course's layers picture of each recipe:
    `curves.png`, `depth.png`, `layers.png` for a folder of one recipe, `curves-<recipe>.png` and so
    on for several. With `reference`, each recipe is drawn over the reference's runs of that recipe
    (a recipe the reference lacks is refused). `compare_recipes` adds `layers-recipes.png`, the only
    figure where recipes share axes."""
    if x not in ("iteration", "epoch"):
        raise UserError(f"--x must be iteration or epoch, got {x!r}")
    if metric not in METRICS:
        raise UserError(f"--metric must be train or test, got {metric!r}")
    recipes = groups(loaded, include_partial)
    written = []
    if compare_recipes:
        written.append(
            save(recipes_figure(recipes, metric), figure_path(loaded.folder, out, "layers-recipes"))
        )
    for group in recipes:
        if group.metrics.empty:
            continue
        ref = matching(group, reference) if reference is not None else None
        suffix = f"-{group.slug}" if group.slug else ""
        figures = {
            "curves": curves_figure(group, x, reference=ref),
            "depth": depth_figure(group, paper),
        }
        if group.metrics["arch"].isin(list(FAMILY_STYLE)).any():
            figures["layers"] = layers_figure(group, metric, paper, reference=ref)
        for name, fig in figures.items():
            if group.heading:
                fig.suptitle(f"{fig.get_suptitle()}\n{group.heading}".strip(), fontsize=10)
            written.append(save(fig, figure_path(loaded.folder, out, name + suffix)))
    return written


def write_all(
    results_path: Path,
    out: Path | None,
    *,
    x: str = "iteration",
    paper: bool = False,
    where: Iterable[str] = (),
    include_partial: bool = False,
    metric: str = "train",
    reference: Path | None = None,
    compare_recipes: bool = False,
) -> list[Path]:
    """Every figure a results folder (or a lone metrics.csv) has data for: the error curves, the
    degradation curve and the layers picture, and the diagnostics figures where `resdepth diagnose`
    has run."""
    diagnostics = read(results_path) if results_path.is_dir() else {}
    written = []
    if (results_path / results.METRICS).is_file() or not diagnostics:
        ref = analysis.load(reference) if reference is not None else None
        loaded = analysis.load(results_path, where=where)
        written += write(
            loaded,
            out,
            x,
            paper,
            include_partial,
            metric,
            ref,
            compare_recipes=compare_recipes,
        )
        if not written and not diagnostics:
            raise UserError(
                f"nothing to draw: none of the {len(loaded.runs)} runs in {loaded.folder} is known to have "
                "completed (resdepth report lists them); --include-partial draws them"
            )
    return written + write_figures(results_path, diagnostics, out)
