"""The tables and numbers that come from `resdepth diagnose`'s reference folders: the start of
training (start), fresh nets (init) and the trained nets of Figure 6 (longer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from resdepth import results
from resdepth.diagnose import registry as diagnostics
from resdepth.diagnose.measures import LESION_MAX_K
from resdepth.diagnose.summaries import MEAN_K_BOUNDS, PATH_INTERVAL, path_gradients
from resdepth.diagnose.summaries import grads as grads_line
from resdepth.diagnose.summaries import landscape as landscape_line
from resdepth.diagnose.summaries import lesion as lesion_line
from resdepth.diagnose.summaries import paths as paths_line
from resdepth.diagnose.summaries import responses as responses_line
from resdepth.diagnose.summaries import scale as scale_line
from resdepth.diagnose.summaries import shatter as shatter_line
from resdepth.docblocks.markdown import REFERENCE, figure, head, net_name
from resdepth.models import NetSpec


def start_table(root: Path) -> str:
    """The start of training, per net over seeds: its first and last 20 iterations, and when its
    loss first fell below 2.0 in each seed (ln 10 = 2.30 is chance)."""
    rows = diagnostics.read(root / REFERENCE / "start")["start"]
    last = int(rows["iteration"].max())
    lines = head(
        "net", "seeds", "loss, its 1-20", "its until loss < 2.0, per seed", f"loss, its {last - 19}-{last}",
        f"train error %, its {last - 19}-{last}", f"train error %, its 1-{last}",
    )  # fmt: skip
    for net, runs in rows.groupby("net", sort=False):
        by_seed = runs.groupby("seed")
        first, end = (runs[runs["iteration"] == i].set_index("seed") for i in (20, last))
        below = [
            str(int(g.loc[g["loss"] < 2.0, "iteration"].min())) if (g["loss"] < 2.0).any() else "-"
            for _, g in by_seed
        ]
        n = len(by_seed)

        def spread(values: pd.Series, decimals: int, n: int = n) -> str:
            return (
                f"{values.mean():.{decimals}f}"
                if n < 2
                else f"{values.mean():.{decimals}f} ± {values.std():.{decimals}f}"
            )

        lines.append(
            f"| {net} | {n} | {spread(first['loss'], 2)} | {', '.join(below)} | {spread(end['loss'], 2)} "
            f"| {spread(end['error'], 1)} | {spread(by_seed['error'].mean(), 1)} |"
        )
    return "\n".join(lines)


# --- fresh nets (results/reference/init: `resdepth diagnose --arch ... --out` on nets at init) ------


def _init(root: Path, name: str, **where: str) -> pd.DataFrame:
    """A measurement's rows of the shipped fresh nets, those with the given column values."""
    rows = diagnostics.read(root / REFERENCE / "init")[name]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows


def init_shatter(root: Path) -> str:
    """The correlation of input gradients one point apart, by depth, plain and ResNet, with and
    without BN (ReLU), mean over seeds."""
    r = (
        _init(root, "shatter", activation="relu")
        .query("lag == 1")
        .groupby(["depth", "arch", "norm"])["correlation"]
        .mean()
    )
    kinds = [("plain", "bn"), ("resnet", "bn"), ("plain", "none"), ("resnet", "none")]
    lines = head("layers", "plain, BN", "ResNet, BN", "plain, no BN", "ResNet, no BN")
    for depth in sorted({int(d) for d, _, _ in r.index}):
        lines.append(f"| {depth} | " + " | ".join(f"{r[(depth, a, n)]:.3f}" for a, n in kinds) + " |")
    return "\n".join(lines)


def _shatter_half(root: Path) -> str:
    """How far apart, in points of the line, the gradients of ResNet-56 and plain-20 (BN) stop being
    alike: the first lag whose mean correlation is below 0.5."""
    f = _init(root, "shatter", activation="relu", norm="bn")
    means = f.groupby(["arch", "depth", "lag"], as_index=False)["correlation"].mean()

    def first(arch: str, depth: int) -> int:
        below = means[(means["arch"] == arch) & (means["depth"] == depth) & (means["correlation"] < 0.5)]
        return int(below["lag"].min())

    return (
        f"ResNet-56's correlation drops below 0.5 at a distance of {first('resnet', 56)} points (of 256), "
        f"plain-20's at {first('plain', 20)}"
    )


def init_scale(root: Path) -> str:
    """The signal before the first step, BN and ReLU, mean over seeds (`resdepth diagnose`'s line)."""
    f = _init(root, "scale", norm="bn", activation="relu")
    f = f[f["depth"] > 8]
    lines = head("net", "stream std, last stage", "logit std", "loss before the first step")
    table = scale_line(f).to_dict("index")
    for arch in ("plain", "resnet"):
        for depth in sorted(set(f["depth"])):
            n = table[(net_name(arch, depth), "init")]
            lines.append(
                f"| {net_name(arch, depth)} | {n['stream std (last stage)']:.2f} | {n['logit std']:.2f} | {n['loss']:.2f} |"
            )
    return "\n".join(lines)


def _scale_ratios(root: Path) -> str:
    """ResNet-56's and ResNet-110's stream std over ResNet-20's."""
    table = scale_line(_init(root, "scale", norm="bn", activation="relu"))["stream std (last stage)"]
    base = table[("ResNet-20", "init")]
    return " and ".join(f"{table[(f'ResNet-{d}', 'init')] / base:.2f}" for d in (56, 110))


def init_grads(root: Path) -> str:
    """The first layer's gradient norm over the classifier's, by activation and BN, mean over seeds."""
    f = _init(root, "grads")
    nets = [("plain", 20), ("plain", 56), ("resnet", 20), ("resnet", 56)]
    lines = head("activation, BN", *(net_name(a, d) for a, d in nets))
    for activation in ("relu", "tanh", "sigmoid"):
        for norm in ("bn", "none"):
            rows = f[(f["activation"] == activation) & (f["norm"] == norm)]
            ratio = grads_line(rows)["first / classifier"]
            first = grads_line(rows)["first layer"]
            cells = []
            for arch, depth in nets:
                label = NetSpec(arch, depth, norm=norm, activation=activation).name
                if first[(label, "init")] == 0:
                    cells.append("0 (underflow)")
                else:
                    cells.append(figure(ratio[(label, "init")]))
            lines.append(f"| {activation}, {'BN' if norm == 'bn' else 'no BN'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _branch_factor(grad: pd.Series) -> float:
    """What one path's gradient is multiplied by for each residual branch it passes, on average:
    from the path through no branch (k = 0) to the one through all n."""
    n = int(grad.index.max())
    return float((grad[n] / grad[0]) ** (1 / n))


@dataclass(frozen=True)
class PathSummary:
    """Where one net's gradient sits among its paths, mean over seeds: one path's gradient through
    no residual branch (k = 0) and through all n, its mean factor per branch, and `resdepth
    diagnose`'s line (the k carrying most, the mean k of the whole gradient, the k holding 90%)."""

    blocks: int
    through_none: float
    through_all: float
    factor: float
    most: int
    mean_k: float
    mean_k_interval: tuple[float, float]
    k90: int

    def mean_k_text(self) -> str:
        low, high = self.mean_k_interval
        return f"{self.mean_k:.1f} ({low:.1f}-{high:.1f})"


def _path_summaries(f: pd.DataFrame) -> dict[tuple[str, str], PathSummary]:
    """A `PathSummary` per (net, state)."""
    per_k = path_gradients(f).reset_index()
    out = {}
    for line in paths_line(f).reset_index().to_dict("records"):
        grad = per_k[(per_k["net"] == line["net"]) & (per_k["state"] == line["state"])].set_index("k")["grad"]
        n = int(line["blocks"])
        out[(str(line["net"]), str(line["state"]))] = PathSummary(
            blocks=n,
            through_none=float(grad[0]),
            through_all=float(grad[n]),
            factor=_branch_factor(grad),
            most=int(line["k carrying most"]),
            mean_k=float(line["mean k of the gradient"]),
            mean_k_interval=(float(line[MEAN_K_BOUNDS[0]]), float(line[MEAN_K_BOUNDS[1]])),
            k90=int(line["k holding 90%"]),
        )
    return out


def _init_branch_factor(root: Path, net: str) -> str:
    return f"{_path_summaries(_init(root, 'paths', net=net))[(net, 'init')].factor:.2f}"


def _plain_single_range(root: Path, depth: int) -> str:
    """The test error of a trained plain net with one of its blocks deleted, lowest to highest."""
    f = _trained(root)["lesion"]
    single = f[(f["arch"] == "plain") & (f["depth"] == depth) & (f["kind"] == "single")]["error"]
    return f"{single.min():.0f} to {single.max():.0f}%"


def paths_table(f: pd.DataFrame) -> str:
    """The gradient one path carries, by its length k: at the ends of k and its mean factor per
    residual branch, and where the whole gradient sits (`resdepth diagnose`'s line) against the
    binomial centre n/2 where it would sit if every path carried the same; mean over seeds."""
    lines = head(
        "net", "blocks n", "one path's gradient, k = 0", "k = n", "factor a branch", "k carrying most",
        f"mean k of the gradient ({PATH_INTERVAL[1] - PATH_INTERVAL[0]}% interval)", "n/2", "k holding 90%",
    )  # fmt: skip
    if f.empty:  # no ResNet measured (yet)
        return "\n".join(lines)
    for (net, _), p in _path_summaries(f).items():
        lines.append(
            f"| {net} | {p.blocks} | {p.through_none:.2g} | {p.through_all:.2g} | {p.factor:.2f} "
            f"| {p.most} | {p.mean_k_text()} | {p.blocks / 2:g} | {p.k90} |"
        )
    return "\n".join(lines)


# --- trained nets (results/reference/longer: `resdepth diagnose` on its runs' final weights) -----

TRAINED = "longer"


def _trained(root: Path) -> dict[str, pd.DataFrame]:
    """Every measurement's rows of the trained reference nets, their completed runs only (as each
    ends and, where measured, as it starts): an unfinished run's checkpoint is not a trained net."""
    folder = root / REFERENCE / TRAINED
    done = [i for i, run in results.read_runs(folder).items() if run["status"] == results.Status.COMPLETED]
    return {name: rows[rows["run_id"].isin(done)] for name, rows in diagnostics.read(folder).items()}


def _trained_paths(root: Path, net: str) -> str:
    """Where a trained ResNet's gradient sits: `is multiplied by 0.42 with each residual branch ...`."""
    trained = [
        p
        for (n, state), p in _path_summaries(_trained(root)["paths"]).items()
        if n == net and state != "init"
    ]
    if not trained:
        raise ValueError(f"no trained {net} in {TRAINED}'s paths.csv: `resdepth diagnose` it first")
    p = trained[0]
    return (
        f"is multiplied by {p.factor:.2f} with each residual branch it passes, so the whole gradient "
        f"comes from paths through {p.mean_k:.1f} of the {p.blocks} blocks on average "
        f"({p.mean_k_interval[0]:.1f} to {p.mean_k_interval[1]:.1f} over resamples of the draws; "
        f"{p.blocks / 2:g} if every path carried the same), 90% of it from paths through at most {p.k90}"
    )


def _nets(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(net, trained state) of a measurement's nets, by depth, plain before ResNet: a line each, the
    mean over its seeds (completed runs of one config end at the same epoch)."""
    trained = rows[rows["state"] != "init"].drop_duplicates(["net", "state"]).sort_values(["depth", "arch"])
    return list(zip(trained["net"], trained["state"], strict=True))


def trained_landscape(root: Path) -> str:
    """Around the trained weights (Li et al.): the loss there, half a filter's norm away and at the
    plane's corners, and on the straight line from init its start, the highest loss and where it
    lies, and its end (BN there on the statistics of the landscape's images, not the running ones)."""
    f = _trained(root)["landscape"]
    summary = landscape_line(f).to_dict("index")
    lines = head(
        "net", "loss at the weights", "error % there", "loss near |α| = 0.5", "loss at the plane's corners",
        "loss at init", "highest loss from init to trained (at t)", "loss at t = 1",
    )  # fmt: skip
    for net, state in _nets(f):
        n = summary[(net, state)]
        rows = f[(f["net"] == net) & (f["state"] == state)]
        error = rows[(rows["kind"] == "1d") & (rows["alpha"] == 0)]["error"].mean()
        path = rows[rows["kind"] == "path"].groupby("alpha")["loss"].mean()
        corners = n["loss at the plane's corners"]
        lines.append(
            f"| {net} | {n['loss']:.3f} | {error:.1f} | {n['loss near |α| = 0.5']:.2f} | {corners:.0f} "
            f"| {path.iloc[0]:.2f} | {path.max():.2f} (t = {path.idxmax():.2f}) | {path.iloc[-1]:.3f} |"
        )
    return "\n".join(lines)


def trained_shatter(root: Path) -> str:
    """The correlation of neighbouring input gradients at init and trained, 1 and 8 points apart."""
    f = _trained(root)["shatter"]
    r = shatter_line(f).to_dict("index")
    lines = head("net", "r at lag 1, init", "trained", "r at lag 8, init", "trained")
    for net, state in _nets(f):
        cells = [r[(net, s)][f"r at lag {lag}"] for lag in (1, 8) for s in ("init", state)]
        lines.append(f"| {net} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


LESION_KS = (1, 2, 3)  # random deletions shown beside the most measured (all of a 20-layer net's)


def trained_lesion(root: Path) -> str:
    """Test error with blocks deleted from the trained nets (Veit et al.): each shape-keeping block
    in turn (the blocks a plain net can lose), each downsampling block of a ResNet in turn, and k
    random shape-keeping blocks at once (mean of the draws), up to the most measured: all of a
    20-layer net's, 8 of a 56-layer net's."""
    f = _trained(root)["lesion"]
    r = lesion_line(f).to_dict("index")
    random = f[f["kind"] == "random"].groupby(["net", "state", "k"])["error"].mean()
    lines = head(
        "net", "test error %", "one shape-keeping block deleted: mean", "worst", "one downsampling block deleted (block)",
        *(f"{k} random deleted" for k in LESION_KS), f"most random deleted (k, at most {LESION_MAX_K})",
    )  # fmt: skip
    for net, state in _nets(f):
        n = r[(net, state)]
        cells = [f"{n[c]:.1f}" for c in ("intact error", "mean single", "worst single")]
        down = f[(f["net"] == net) & (f["state"] == state) & (f["kind"] == "downsampling")]
        cells.append(
            ", ".join(f"{e:.1f} ({int(b)})" for b, e in zip(down["block"], down["error"], strict=True)) or "-"
        )
        cells += [f"{random[(net, state, k)]:.1f}" for k in LESION_KS]
        cells.append(f"{n['error, k deleted']:.1f} ({int(n['k deleted'])})")
        lines.append(f"| {net} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def trained_signal(root: Path) -> str:
    """Before and after training: the first layer's gradient over the classifier's, the layers'
    responses (He et al. Fig. 7) and the residual stream's scale."""
    measured = _trained(root)
    ratio = grads_line(measured["grads"])["first / classifier"]
    responses = responses_line(measured["responses"])["mean std"]
    stream = scale_line(measured["scale"])["stream std (last stage)"]
    lines = head(
        "net", "first layer's gradient / classifier's, init", "trained", "mean response std, trained",
        "stream std, last stage, init", "trained",
    )  # fmt: skip
    for net, state in _nets(measured["grads"]):
        cells = [ratio[(net, "init")], ratio[(net, state)], responses[(net, state)]]
        cells += [stream[(net, "init")], stream[(net, state)]]
        lines.append(f"| {net} | " + " | ".join(figure(float(c)) for c in cells) + " |")
    return "\n".join(lines)


def _identity_broken(root: Path) -> str:
    """The range over nets of the largest change of a logit when a fresh net with tanh or sigmoid is
    grown by zeroed blocks (with ReLU a ResNet's logits do not change at all)."""
    f = _init(root, "identity")
    changed = f[f["activation"] != "relu"].groupby("net")["max_abs_diff"].max()
    return f"{figure(changed.min())} to {figure(changed.max())}"


def _plain_grown_error(root: Path) -> str:
    """The test error of fresh plain nets (ReLU) grown by zeroed blocks: chance, whatever their own."""
    f = _init(root, "identity", arch="plain", activation="relu")
    return f"{f['grown_error'].mean():.0f}%"


def _start_end_range(root: Path, net: str) -> str:
    """The range over seeds of a net's training error at the start's last iteration."""
    rows = diagnostics.read(root / REFERENCE / "start")["start"]
    end = rows[(rows["net"] == net) & (rows["iteration"] == rows["iteration"].max())]["error"]
    return f"{end.min():.0f}-{end.max():.0f}%"


VALUES: dict[str, Callable[[Path], str]] = {
    "start-resnet-end-range": lambda root: _start_end_range(root, "ResNet-56"),
    "init-shatter-half": _shatter_half,
    "init-scale-ratios": _scale_ratios,
    "init-identity-broken": _identity_broken,
    "init-identity-plain": lambda root: _plain_grown_error(root),
    "init-paths-factor-56": lambda root: _init_branch_factor(root, "ResNet-56"),
    "trained-paths-resnet-56": lambda root: _trained_paths(root, "ResNet-56"),
    "trained-plain-20-single": lambda root: _plain_single_range(root, 20),
    "trained-plain-56-single": lambda root: _plain_single_range(root, 56),
}


BLOCKS: dict[str, Callable[[Path], str]] = {
    "start": start_table,
    "init-shatter": init_shatter,
    "init-scale": init_scale,
    "init-grads": init_grads,
    "init-paths": lambda root: paths_table(_init(root, "paths")),
    "trained-paths": lambda root: paths_table(_trained(root)["paths"]),
    "trained-landscape": trained_landscape,
    "trained-shatter": trained_shatter,
    "trained-lesion": trained_lesion,
    "trained-signal": trained_signal,
}
