"""Figures of `resdepth diagnose`: gradients per layer, layer responses (He et al. Fig. 7), lesions
(Veit et al. 2016 Fig. 3 and 5), the identity check, signal scale, shattered gradients (Balduzzi
et al. 2017), the gradient by path length (Veit et al. Fig. 6) and the loss landscape (Li et al.
2018); each averaged over seeds.

Colour is depth, as in the error curves; plain nets are dashed, ResNets solid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from resdepth.config import SweepConfig
from resdepth.diagnose.measures import BATCH, GRAD_BATCHES, GROWN_LAYERS, LINE_POINTS
from resdepth.diagnose.summaries import path_gradients
from resdepth.models import RESNET
from resdepth.style import PALETTE, new_figure
from resdepth.train import PROGRESS_EVERY

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CLASSES = 10  # the nets measured classify CIFAR-10: chance is 90% error, a loss of ln 10


# The landscape's 1-D curves, by the CSV's `kind`, and what their x axis is.
LANDSCAPE_CURVES = {
    "1d": "α along a filter-normalised random direction",
    "path": "t on the straight line from init (0) to the trained weights (1)",
}


def _style(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """net label -> (colour by depth, line style by arch)."""
    depths = sorted(frame["depth"].astype(int).unique())
    colour = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(depths)}
    nets = frame.drop_duplicates("net")
    return {
        str(net): (colour[int(depth)], "-" if arch == RESNET else "--")
        for net, depth, arch in zip(nets["net"], nets["depth"], nets["arch"], strict=True)
    }


def _variant(norm: str, activation: str) -> str:
    return f"{'BN' if norm == 'bn' else 'no BN'}, {activation}"


def grads_figure(grads: pd.DataFrame) -> Figure:
    """Weight-gradient norm per layer, from input to output: one panel per state and variant, three
    panels to a row. A gradient that vanished to exactly 0 is drawn at 1e-30."""
    g = grads.assign(
        variant=[_variant(n, a) for n, a in zip(grads["norm"], grads["activation"], strict=True)]
    )
    states = sorted(g["state"].unique(), key=lambda s: (s != "init", s))
    panels = [
        (s, v)
        for s in states
        for v in dict.fromkeys(g["variant"])
        if ((g["state"] == s) & (g["variant"] == v)).any()
    ]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = new_figure(figsize=(5.2 * cols, 3.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    style = _style(g)
    for ax, (state, variant) in zip(axes, panels, strict=False):
        sub = g[(g["state"] == state) & (g["variant"] == variant)]
        for net, layers in sub.groupby("net", sort=False):
            mean = layers.groupby("layer")["grad_norm"].mean().clip(lower=1e-30)
            colour, line = style[str(net)]
            ax.plot(mean.index, mean.to_numpy(), color=colour, linestyle=line, label=str(net))
        ax.set_yscale("log")
        ax.set_title(
            f"{variant}: {'at initialisation' if state == 'init' else f'trained ({state})'}", fontsize=9
        )
        ax.set_xlabel("layer (1 = first conv, last = classifier)")
        ax.set_ylabel(f"‖∂loss/∂W‖, mean of {GRAD_BATCHES} batches")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("gradient norm per layer: plain (dashed) vs ResNet (solid)", fontsize=10)
    return fig


def responses_figure(responses: pd.DataFrame) -> Figure:
    """He et al. Fig. 7: std of each 3x3 layer's response, in layer order and sorted by magnitude."""
    trained = responses[responses["state"] != "init"]
    frame = trained if not trained.empty else responses
    fig = new_figure(figsize=(11, 4.2), layout="constrained")
    by_layer, by_size = fig.subplots(1, 2)
    style = _style(frame)
    for net, rows in frame.groupby("net", sort=False):
        std = rows.groupby("layer")["std"].mean()
        colour, line = style[str(net)]
        by_layer.plot(std.index, std.to_numpy(), color=colour, linestyle=line, label=str(net))
        ranked = np.sort(std.to_numpy())[::-1]
        by_size.plot(np.arange(1, len(ranked) + 1), ranked, color=colour, linestyle=line, label=str(net))
    by_layer.set_xlabel("layer index (original order)")
    by_size.set_xlabel("layer index (sorted by magnitude)")
    for ax in (by_layer, by_size):
        ax.set_ylabel("std of response")
        ax.grid(alpha=0.3)
    by_layer.legend(fontsize="small")
    state = "trained nets" if not trained.empty else "at initialisation"
    fig.suptitle(
        f"layer responses on the test set, after BN and before the nonlinearity ({state})", fontsize=10
    )
    return fig


def lesion_figure(lesion: pd.DataFrame) -> Figure:
    """Test error without one block (by position; a ResNet's downsampling blocks ringed), and
    without k random blocks."""
    fig = new_figure(figsize=(11, 4.2), layout="constrained")
    single_ax, random_ax = fig.subplots(1, 2)
    style = _style(lesion)
    for net, rows in lesion.groupby("net", sort=False):
        colour, line = style[str(net)]
        intact = rows.loc[rows["kind"] == "intact", "error"].mean()
        one = rows[rows["kind"].isin(["single", "downsampling"])]
        single = one.groupby("block")["error"].mean()
        blocks = single.index.to_numpy(float)
        single_ax.plot(
            blocks, single.to_numpy(), color=colour, linestyle=line, marker="o", markersize=3,
            label=f"{net} (intact {intact:.1f}%)",
        )  # fmt: skip
        down = one[one["kind"] == "downsampling"].groupby("block")["error"].mean()
        single_ax.scatter(
            down.index.to_numpy(float), down.to_numpy(), s=60, facecolors="none", edgecolors=colour
        )
        random = rows[rows["kind"] == "random"].groupby("k")["error"]
        mean, std = random.mean(), random.std(ddof=0).fillna(0)
        ks = np.concatenate([[0], mean.index.to_numpy(float)])
        values = np.concatenate([[intact], mean.to_numpy()])
        random_ax.plot(ks, values, color=colour, linestyle=line, marker="o", markersize=3, label=str(net))
        random_ax.fill_between(
            ks[1:], (mean - std).to_numpy(), (mean + std).to_numpy(), color=colour, alpha=0.15
        )
    single_ax.set_xlabel("deleted block (ringed: a ResNet's downsampling block)")
    random_ax.set_xlabel("number of random blocks deleted (shape-keeping blocks)")
    for ax in (single_ax, random_ax):
        ax.axhline(100.0 * (1 - 1 / CLASSES), color="gray", linewidth=0.8, linestyle=":")  # chance
        ax.set_ylabel("test error (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    single_ax.legend(fontsize="x-small")
    fig.suptitle("lesion study (Veit et al. 2016): blocks deleted at test time; dotted = chance", fontsize=10)
    return fig


def identity_figure(identity: pd.DataFrame) -> Figure:
    """Test error of each net and of the net grown by zeroed blocks; bars labelled with max |Δ|."""
    nets = identity.groupby("net", sort=False).agg(
        error=("error", "mean"),
        grown_error=("grown_error", "mean"),
        diff=("max_abs_diff", "max"),
        grown_to=("grown_to", "first"),
    )
    fig = new_figure(figsize=(max(6.0, 1.6 * len(nets)), 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(nets))
    ax.bar(x - 0.2, nets["error"], width=0.4, color="#1f77b4", label="the net")
    ax.bar(
        x + 0.2,
        nets["grown_error"],
        width=0.4,
        color="#ff7f0e",
        label=f"grown by zeroed blocks (+{GROWN_LAYERS} layers)",
    )
    tops = np.maximum(nets["error"].to_numpy(float), nets["grown_error"].to_numpy(float))
    for i, (diff, top) in enumerate(zip(nets["diff"].to_numpy(float), tops, strict=True)):
        ax.annotate(
            f"max |Δlogit| {diff:.2g}",
            (i, top),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(x, [str(n) for n in nets.index], fontsize=8)
    ax.set_ylabel("test error (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    fig.suptitle(
        "identity: a ResNet grown by blocks with zero last BN scale computes the same function", fontsize=10
    )
    return fig


def scale_figure(scale: pd.DataFrame) -> Figure:
    """The std of the signal from the stem through each stage's end (the residual stream) to the
    logits: one panel per state (at initialisation, trained), mean over seeds."""
    from matplotlib.ticker import ScalarFormatter

    states = sorted(scale["state"].unique(), key=lambda s: (s != "init", s))
    fig = new_figure(figsize=(max(7.0, 5.6 * len(states)), 4.4), layout="constrained")
    axes = fig.subplots(1, len(states), squeeze=False)[0]
    style = _style(scale)
    for ax, state in zip(axes, states, strict=True):
        sub = scale[scale["state"] == state]
        for net, rows in sub.groupby("net", sort=False):
            std = rows.groupby(["layer", "name"])["std"].mean().reset_index()
            colour, line = style[str(net)]
            ax.plot(
                std["layer"],
                std["std"],
                color=colour,
                linestyle=line,
                marker="o",
                markersize=3,
                label=str(net),
            )
            ax.set_xticks(std["layer"], std["name"], fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="y", which="both", labelsize=7)
        ax.set_title("at initialisation" if state == "init" else f"trained ({state})", fontsize=9)
        ax.set_ylabel(f"std of the signal (train mode, {GRAD_BATCHES} batches of {BATCH})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(
        "signal scale at the stem, each stage's end and the logits: plain (dashed), ResNet (solid)",
        fontsize=10,
    )
    return fig


def start_figure(start: pd.DataFrame) -> Figure:
    """The first iterations of training: mean loss over seeds per net, the band from the best to the
    worst seed; chance (ln 10) dotted. A colour per net, so that two variants of one depth differ."""
    fig = new_figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.subplots()
    style = _style(start)
    for i, (net, rows) in enumerate(start.groupby("net", sort=False)):
        by = rows.groupby("iteration")["loss"]
        colour, line = PALETTE[i % len(PALETTE)], style[str(net)][1]
        seeds = rows["seed"].nunique()
        ax.plot(
            by.mean().index,
            by.mean().to_numpy(),
            color=colour,
            linestyle=line,
            label=f"{net} ({seeds} seed{'s' if seeds > 1 else ''})",
        )
        if seeds > 1:
            ax.fill_between(
                by.min().index, by.min().to_numpy(), by.max().to_numpy(), color=colour, alpha=0.15
            )
    ax.axhline(float(np.log(CLASSES)), color="gray", linewidth=0.8, linestyle=":")
    ax.annotate(
        "chance: ln 10",
        (0.99, float(np.log(CLASSES))),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        fontsize=8,
        color="gray",
    )
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"training loss, mean of the last {PROGRESS_EVERY} mini-batches")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(
        f"the start of training at lr {SweepConfig().lr:g} (He et al. §4.2): band from the best to the worst seed",
        fontsize=10,
    )
    return fig


def shatter_figure(shatter: pd.DataFrame) -> Figure:
    """Balduzzi et al.'s shattered gradients: the correlation of input gradients one point apart on a
    line through image space against depth, plain against ResNet (left), and against the distance
    along the line for each net of one variant, the paper's where measured (right); one row per
    state, mean over seeds."""
    states = sorted(shatter["state"].unique(), key=lambda s: (s != "init", s))
    depths = shatter["depth"].nunique() > 1  # a panel against depth needs two depths
    fig = new_figure(figsize=(11.0 if depths else 5.5, 4.2 * len(states)), layout="constrained")
    axes = fig.subplots(len(states), 2 if depths else 1, squeeze=False)
    style = _style(shatter)
    for row, state in zip(axes, states, strict=True):
        by_lag = row[-1]
        sub = shatter[shatter["state"] == state].assign(
            variant=lambda f: [_variant(n, a) for n, a in zip(f["norm"], f["activation"], strict=True)]
        )
        if depths:
            _shatter_by_depth(row[0], sub)
        shown = "BN, relu" if "BN, relu" in set(sub["variant"]) else str(sub["variant"].iloc[0])
        for net, rows in sub[sub["variant"] == shown].groupby("net", sort=False):
            r = rows.groupby("lag")["correlation"].mean()
            colour, line = style[str(net)]
            by_lag.plot(
                r.index, r.to_numpy(), color=colour, linestyle=line, marker="o", markersize=3, label=str(net)
            )
        by_lag.set_xscale("log", base=2)
        by_lag.set_xlabel(f"distance along the line (points of {LINE_POINTS})")
        by_lag.set_ylabel(f"r of the gradients ({shown})")
        for ax in row:
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_ylim(-0.2, 1.05)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small")
            ax.set_title("at initialisation" if state == "init" else f"trained ({state})", fontsize=9)
    fig.suptitle(
        "shattered gradients: 1 is a smooth gradient (brown noise),"
        + (" " if depths else "\n")  # one panel wide: two lines
        + "0 white noise (Balduzzi et al. 2017)",
        fontsize=10,
    )
    return fig


def _shatter_by_depth(ax: Axes, sub: pd.DataFrame) -> None:
    """The correlation of neighbouring gradients against depth, a line per arch and variant."""
    first = sub[sub["lag"] == sub["lag"].min()]
    for (arch, variant), rows in first.groupby(["arch", "variant"], sort=False):
        r = rows.groupby("depth")["correlation"].mean()
        line = "-" if arch == RESNET else "--"
        label = f"{'ResNet' if arch == RESNET else 'plain'} ({variant})"
        ax.plot(r.index, r.to_numpy(), linestyle=line, marker="o", label=label)
    ax.set_xlabel("layers")
    ax.set_ylabel(f"r of gradients {int(first['lag'].min())} point apart")


def paths_figure(paths: pd.DataFrame) -> Figure:
    """Veit et al. 2016 Fig. 6: how many paths have each length k (a), the gradient one path of
    length k carries to the input (b), and their product, the share of the whole gradient carried
    by paths of length k (c); one line per net and state, mean over seeds and samples."""
    g = path_gradients(paths).reset_index()
    fig = new_figure(figsize=(14.0, 4.2), layout="constrained")
    count, each, total = fig.subplots(1, 3)
    style = _style(paths)
    for (net, state), rows in g.groupby(["net", "state"], sort=False):
        colour, line = style[str(net)]
        label = f"{net}" + ("" if state == "init" else f" ({state})")
        share = rows["paths"].astype(float) / rows["paths"].astype(float).sum()
        count.plot(rows["k"], share, color=colour, linestyle=line, label=label)
        each.plot(
            rows["k"], rows["grad"], color=colour, linestyle=line, marker="o", markersize=2, label=label
        )
        total.plot(rows["k"], rows["share"], color=colour, linestyle=line, label=label)
    each.set_yscale("log")
    for ax, title in (
        (count, "(a) share of the paths that have length k"),
        (each, "(b) gradient norm at the input, one path of length k"),
        (total, "(c) share of the whole gradient, all paths of length k"),
    ):
        ax.set_xlabel("path length k (residual branches on the path)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(
        "the gradient by path length through a ResNet's blocks (Veit et al. 2016, Fig. 6)", fontsize=10
    )
    return fig


def landscape_figure(landscape: pd.DataFrame) -> Figure:
    """Li et al. 2018: the training loss along one filter-normalised direction, along the path from
    init (each its own panel: α and t are different axes), and a contour plot of the plane of two
    directions for each net (Fig. 5), their levels shared so that nets compare; mean over seeds."""
    nets = list(dict.fromkeys(landscape["net"].astype(str)))
    states = list(dict.fromkeys(landscape["state"].astype(str)))
    panels = [
        (n, s)
        for n in nets
        for s in states
        if not landscape[
            (landscape["net"] == n) & (landscape["state"] == s) & (landscape["kind"] == "2d")
        ].empty
    ]
    curves = [(k, x) for k, x in LANDSCAPE_CURVES.items() if (landscape["kind"] == k).any()]
    count = len(curves) + len(panels)
    columns = min(3, count)
    fig = new_figure(figsize=(4.6 * columns, 4.0 * -(-count // columns)), layout="constrained")
    axes = fig.subplots(-(-count // columns), columns, squeeze=False).flatten()
    style = _style(landscape)
    for ax, (kind, xlabel) in zip(axes, curves, strict=False):
        for (net, state), rows in landscape[landscape["kind"] == kind].groupby(["net", "state"], sort=False):
            r = rows.groupby("alpha")["loss"].mean()
            colour, line = style[str(net)]
            ax.plot(r.index, r.to_numpy(), color=colour, linestyle=line, label=f"{net} ({state})")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"training loss ({int(landscape['images'].iloc[0])} images, eval mode)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    planes = landscape[landscape["kind"] == "2d"]
    levels = (
        np.geomspace(max(planes["loss"].min(), 1e-3), planes["loss"].max(), 12) if not planes.empty else None
    )
    for ax, (net, state) in zip(axes[len(curves) :], panels, strict=False):
        grid = planes[(planes["net"] == net) & (planes["state"] == state)].pivot_table(
            index="beta", columns="alpha", values="loss"
        )
        contour = ax.contour(
            grid.columns,
            grid.index,
            grid.to_numpy(),
            levels=levels,
            norm="log",
            cmap="viridis",
            linewidths=0.9,
        )
        ax.clabel(contour, fontsize=6, fmt="%.2g")
        ax.set_title(f"{net} ({state})", fontsize=9)
        ax.set_xlabel("α")
        ax.set_ylabel("β")
        ax.set_aspect("equal")
    for ax in axes[count:]:
        ax.set_axis_off()
    fig.suptitle("loss landscape, filter-normalised random directions (Li et al. 2018)", fontsize=10)
    return fig
