"""He et al. Figure 6 (error curves per architecture) and the degradation curve (error vs depth).

Figures are built with matplotlib's object API (no pyplot, no display needed) and returned, so tests
can read back exactly what was drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from resdepth import analysis, results
from resdepth.analysis import Group, Loaded, diverged_ids, final_rows, groups, per_net
from resdepth.diagnose.figures import write_figures
from resdepth.errors import UserError
from resdepth.models import CLASSIC_DEPTHS
from resdepth.style import PALETTE, figure_path, save

# He et al. 2016, Table 6: CIFAR-10 test error (%) of their ResNets (best of 5 runs for 110).
PAPER_RESNET_TEST = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
PANEL_TITLES = {"plain": "plain", "resnet": "ResNet", "classic": "classic nets"}


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


def curves_figure(group: Group, x: str = "iteration") -> Figure:
    """Error curves of one recipe: a panel per family, a colour per depth, mean over runs with a band."""
    m = group.metrics
    diverged = diverged_ids(group)
    panels = [p for p in ("plain", "resnet", "classic") if (m["arch"].map(_panel) == p).any()]
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
        ax.legend(handles=handles, fontsize="small", loc="upper right")
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(0, y_top(m))
    return fig


def depth_figure(group: Group, paper: bool = False) -> Figure:
    """Final errors against depth for one recipe, plain and ResNet, mean ± std over runs."""
    nets = per_net(final_rows(group.metrics))
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    styles = {"plain": ("#d62728", "s", "plain"), "resnet": ("#1f77b4", "o", "ResNet")}
    for ax, column, title in (
        (axes[0], "final_train_error", "final training error"),
        (axes[1], "final_test_error", "final test error"),
    ):
        for arch, (colour, marker, name) in styles.items():
            sub = nets[nets["arch"] == arch].sort_values("depth")
            if sub.empty:
                continue
            ax.errorbar(
                sub["depth"].to_numpy(float),
                sub[f"{column}_mean"].to_numpy(float),
                yerr=sub[f"{column}_std"].to_numpy(float),
                color=colour,
                marker=marker,
                capsize=3,
                linewidth=2,
                label=name,
            )
        for n in nets[nets["arch"].isin(CLASSIC_DEPTHS)].itertuples():
            mean = getattr(n, f"{column}_mean")
            ax.errorbar(
                [n.depth],
                [mean],
                yerr=[getattr(n, f"{column}_std")],
                color="gray",
                marker="D",
                capsize=3,
                linestyle="none",
            )
            ax.annotate(str(n.label), (n.depth, mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if paper and column == "final_test_error":
            ax.plot(
                list(PAPER_RESNET_TEST),
                list(PAPER_RESNET_TEST.values()),
                linestyle="none",
                marker="*",
                markersize=11,
                color="black",
                label="He et al. 2016, Table 6 (ResNet, full training)",
            )
        depths = sorted(set(nets["depth"].astype(int)) | (set(PAPER_RESNET_TEST) if paper else set()))
        ax.set_xticks(depths)
        ax.set_xlabel("depth (weighted layers)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a sweep of classic nets alone has only annotations
            ax.legend(fontsize="small")
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(bottom=0)
    epochs = int(nets["epochs"].max())
    fig.suptitle(f"degradation: error after {epochs} epochs vs depth (mean ± std over seeds)", fontsize=10)
    return fig


def write(
    loaded: Loaded, out: Path | None, x: str = "iteration", paper: bool = False, include_partial: bool = False
) -> list[Path]:
    """The error curves and the degradation curve of each recipe: `curves.png` and `depth.png` for a
    folder of one recipe, `curves-<recipe>.png` and so on for several."""
    if x not in ("iteration", "epoch"):
        raise UserError(f"--x must be iteration or epoch, got {x!r}")
    written = []
    for group in groups(loaded, include_partial):
        if group.metrics.empty:
            continue
        suffix = f"-{group.slug}" if group.slug else ""
        for name, fig in (("curves", curves_figure(group, x)), ("depth", depth_figure(group, paper))):
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
) -> list[Path]:
    """Every figure a results folder (or a lone metrics.csv) has data for: the error curves and the
    degradation curve, and the diagnostics figures where `resdepth diagnose` has run."""
    diagnostics = results.read_diagnostics(results_path) if results_path.is_dir() else {}
    written = []
    if not diagnostics or not results_path.is_dir() or (results_path / results.METRICS).is_file():
        written += write(analysis.load(results_path, where=where), out, x, paper, include_partial)
    return written + write_figures(results_path, diagnostics, out)
