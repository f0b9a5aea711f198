"""Tables and numbers of README.md and docs/ that come from the shipped results folders, rendered by
the code of `resdepth report` so that no number of a result is typed by hand: whole lines between
`<!-- results:NAME -->` and `<!-- /results -->`, and numbers inside a sentence between
`<!-- value:NAME -->` and `<!-- /value -->`. `make docs` rewrites them, and a test fails when a page
differs from what the results folders give today."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import pandas as pd

from resdepth import results, tables
from resdepth.analysis import final_rows
from resdepth.diagnose import registry as diagnostics
from resdepth.diagnose.summaries import grads as grads_line
from resdepth.diagnose.summaries import landscape as landscape_line
from resdepth.diagnose.summaries import lesion as lesion_line
from resdepth.diagnose.summaries import path_gradients
from resdepth.diagnose.summaries import paths as paths_line
from resdepth.diagnose.summaries import responses as responses_line
from resdepth.diagnose.summaries import scale as scale_line
from resdepth.diagnose.summaries import shatter as shatter_line
from resdepth.models import NetSpec
from resdepth.progress import duration

REFERENCE = Path("results") / "reference"
# He et al.'s Table 6 and published reproductions of the full recipe (one run; five seeds trained
# on a 45k/5k split; one run), test error in %: what the paper table sets beside our runs.
PUBLISHED = {
    ("resnet", 20): ("8.75", "8.04; 8.51 ± 0.22; 8.23"),
    ("plain", 20): ("— (Fig. 6 only)", "9.69; 9.78 ± 0.13; 9.35"),
    ("resnet", 56): ("6.97", "7.40 ± 0.27 (five seeds)"),
    ("plain", 56): ("— (Fig. 6 only)", "12.95 ± 0.22 (five seeds)"),
}
# bf16 on a 2-core CPU with AMX against fp32 on the 2-core AVX2-only EPYC, at 8 and 32 layers:
# throughput measured when bf16 became the default (those runs were not kept).
AMX_SPEEDUP = (3.2, 4.5)
BLOCK = re.compile(r"(<!-- results:([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.DOTALL)
VALUE = re.compile(r"(<!-- value:([\w-]+) -->)(.*?)(<!-- /value -->)")


def _head(*names: str) -> list[str]:
    """A markdown table's first two lines: its header and the separator under every column."""
    return ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]


def _recipe(root: Path, name: str) -> tables.Recipe:
    (recipe,) = tables.report(root / REFERENCE / name)
    return recipe


def _mean(root: Path, name: str) -> Callable[[str, int, str], str]:
    """`mean(arch, depth, column)`: a net's mean ± std over seeds, as `resdepth report` writes it."""
    nets = _recipe(root, name).nets
    assert nets is not None
    by = {(n["arch"], int(n["depth"])): n for n in nets.to_dict("records")}

    def mean(arch: str, depth: int, column: str) -> str:
        n = by[(arch, depth)]
        return tables.plus_minus(n[f"{column}_mean"], n[f"{column}_std"], n["seeds"])

    return mean


def course_means(root: Path) -> str:
    """Final errors by layers, plain and ResNet, mean ± std over seeds."""
    mean = _mean(root, "course")
    lines = _head("layers", "plain, train", "ResNet, train", "plain, test", "ResNet, test")
    for depth in sorted(set(_train_errors(root, "course").columns.get_level_values("depth"))):
        cells = [
            mean(a, depth, m) for m in ("final_train_error", "final_test_error") for a in ("plain", "resnet")
        ]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _net(arch: str, depth: object) -> str:
    return f"{'ResNet' if arch == 'resnet' else 'plain'}-{depth}"


def seeds_table(root: Path, name: str, means: bool = False) -> str:
    """Final training error of every net in every seed; with `means`, their mean ± std and the
    final test error's."""
    errors = _train_errors(root, name)
    seeds = list(errors.index)
    header = ["net", *(f"seed {s}" for s in seeds), *(["mean ± std", "final test error"] if means else [])]
    lines = _head(*header)
    mean = _mean(root, name)
    columns = cast("list[tuple[str, int]]", errors.columns.to_list())  # a MultiIndex: (arch, depth)
    nets = sorted(columns, key=lambda c: (c[0] != "plain", c[1]))
    for arch, depth in nets:
        cells = [_net(arch, depth), *(f"{errors.loc[s, (arch, depth)]:.2f}" for s in seeds)]
        if means:
            cells += [mean(arch, depth, m) for m in ("final_train_error", "final_test_error")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(root: Path, name: str) -> str:
    """What `resdepth report` concludes of a reference folder, and its line per seed."""
    recipe = _recipe(root, name)
    return (
        f"`resdepth report results/reference/{name}`: *{recipe.verdict}*; *{tables.per_seed(recipe.group)}*."
    )


def depth_scan(root: Path) -> str:
    """The course's seed 0 at every depth it and course-scan trained, and the deepest nets over seeds."""
    errors = _train_errors(root, "course", "course-scan")
    depths = sorted(set(errors.columns.get_level_values("depth")))
    deepest = errors[("plain", depths[-1])].dropna().index
    header = [str(d) for d in depths] + [f"{depths[-1]}, seeds {deepest.min()}-{deepest.max()}"]
    lines = _head("layers", *header)
    mean = _mean(root, "course-scan")
    for arch in ("plain", "resnet"):
        cells = [f"{errors.loc[0, (arch, d)]:.2f}" for d in depths] + [
            mean(arch, depths[-1], "final_train_error")
        ]
        lines.append(f"| {'ResNet' if arch == 'resnet' else 'plain'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- numbers inside sentences ------------------------------------------------------------------


def _train_errors(root: Path, *names: str) -> pd.DataFrame:
    """Final training error of the completed runs of these folders: a row per seed, a column per
    (arch, depth)."""
    finals = pd.concat([final_rows(_recipe(root, name).group.metrics) for name in names])
    return finals.pivot(index="seed", columns=["arch", "depth"], values="train_error")


def _change(root: Path, names: tuple[str, ...], arch: str, shallow: int, deep: int) -> pd.Series:
    """Each seed's change of final training error from `shallow` to `deep` layers."""
    errors = _train_errors(root, *names)
    return (errors[(arch, deep)] - errors[(arch, shallow)]).dropna()


def _listed(values: Iterable[float], spec: str = "+.1f") -> str:
    """`+1.0, -1.8 and -3.9`."""
    items = [format(v, spec) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _span(values: Iterable[float], decimals: int = 1) -> str:
    """`10.7 to 16.2`: the smallest and largest size of a change, whichever its sign."""
    sizes = [abs(v) for v in values]
    return f"{min(sizes):.{decimals}f} to {max(sizes):.{decimals}f}"


def _minutes(root: Path, name: str) -> pd.Series:
    """Each seed's training time, the sum of its runs' epoch times, in minutes."""
    return final_rows(_recipe(root, name).group.metrics).groupby("seed")["wall_seconds"].sum() / 60


def _median_minutes(root: Path, name: str) -> float:
    """A seed's time with each net at its median over seeds."""
    finals = final_rows(_recipe(root, name).group.metrics)
    return float(finals.groupby(["arch", "depth"])["wall_seconds"].median().sum() / 60)


def _noise(root: Path, name: str) -> float:
    """The change the report's verdict counts as beyond seed-to-seed noise."""
    nets = _recipe(root, name).nets
    assert nets is not None
    depths = tables.shared_depths(nets)
    return tables.threshold(nets[nets["depth"].isin([depths[0], depths[-1]])])[0]


def _completed(root: Path, name: str) -> dict[tuple[str, int, str], dict[str, str]]:
    """The completed runs of a folder by (arch, depth, precision)."""
    return {
        (r["arch"], int(r["depth"]), r["precision"]): r
        for r in results.read_runs(root / REFERENCE / name).values()
        if r["status"] == results.Status.COMPLETED
    }


def _epochs(root: Path, name: str, arch: str, depth: int, precision: str) -> pd.DataFrame:
    """A run's rows by epoch, any status."""
    run = next(
        r for r in results.read_runs(root / REFERENCE / name).values()
        if (r["arch"], int(r["depth"]), r["precision"]) == (arch, depth, precision)
    )  # fmt: skip
    metrics = results.read_metrics(root / REFERENCE / name)
    return metrics[metrics["run_id"] == run["run_id"]].set_index("epoch").sort_index()


def _precision_gap(root: Path) -> pd.DataFrame:
    """plain-20 in bf16 minus plain-20 in fp32, epoch by epoch, from the second epoch at the lower
    learning rate (the first still moves with the drop) to the last the fp32 run reached."""
    bf16, fp32 = (_epochs(root, "paper", "plain", 20, p) for p in ("bf16", "fp32"))
    after = _drops(fp32)[0] + 1
    shared = [e for e in fp32.index if e > after and e in bf16.index]
    return bf16.loc[shared, ["test_error", "train_error"]] - fp32.loc[shared, ["test_error", "train_error"]]


def _drops(rows: pd.DataFrame) -> list[int]:
    """The epochs at whose end the learning rate was divided (the next epoch's lr is lower)."""
    lr = rows["lr"]
    return [int(e) for e, nxt in zip(lr.index[:-1], lr.index[1:], strict=True) if lr[nxt] < lr[e]]


def paper_drops(root: Path) -> str:
    """Test error of each paper run around its learning-rate drops, over its last 40 epochs, and at
    its best and last epochs."""
    lines = _head(
        "run", "lr 0.1, last epoch", "first drop: next two epochs", "second drop: before -> after",
        "last 40 epochs", "best (epoch)", "final", "train, at the first drop -> final",
    )  # fmt: skip
    for arch, depth, precision in [("resnet", 20, "fp32"), ("plain", 20, "bf16"), ("plain", 20, "fp32")]:
        rows = _epochs(root, "paper", arch, depth, precision)
        test, first = rows["test_error"], _drops(rows)
        second = first[1] if len(first) > 1 else None
        last = rows.index[-1]
        tail = test.loc[max(1, last - 39) :]
        net = f"{_net(arch, depth)}, {precision}" + ("" if last == 164 else f", to epoch {last}")
        lines.append(
            f"| {net} | {test[first[0]]:.2f} (epoch {first[0]}) "
            f"| {test[first[0] + 1]:.2f}, {test[first[0] + 2]:.2f} "
            f"| {f'{test[second]:.2f} -> {test[second + 1]:.2f} (epoch {second})' if second else ''} "
            f"| {tail.min():.2f} to {tail.max():.2f} | {test.min():.2f} ({test.index.to_list()[int(test.to_numpy().argmin())]}) "
            f"| {test[last]:.2f} | {rows['train_error'][first[0]]:.2f} -> {rows['train_error'][last]:.2f} |"
        )
    return "\n".join(lines)


# `experiments/quick.toml` with `--seeds 0,1,2` in bf16 on a 2-core CPU with AMX, when bf16 became
# the default (those runs were not kept): final (train, test) error %, mean and std over the seeds.
QUICK_BF16 = {
    ("plain", 8): ((32.67, 1.10), (34.97, 0.40)),
    ("plain", 32): ((53.73, 1.28), (54.67, 0.15)),
    ("resnet", 8): ((32.38, 0.78), (34.97, 1.25)),
    ("resnet", 32): ((33.05, 3.71), (36.60, 3.21)),
}


def _quick_fp32(root: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """The shipped quick demo's (train, test) final error means by net."""
    nets = _recipe(root, "quick").nets
    assert nets is not None
    return {
        (n["arch"], int(n["depth"])): (n["final_train_error_mean"], n["final_test_error_mean"])
        for n in nets.to_dict("records")
    }


def quick_bf16(root: Path) -> str:
    """The quick demo in bf16 beside the shipped fp32 runs."""
    fp32 = _quick_fp32(root)
    lines = _head("net", "train, bf16", "bf16 - fp32", "test, bf16", "bf16 - fp32")
    for (arch, depth), ((train, train_std), (test, test_std)) in QUICK_BF16.items():
        lines.append(
            f"| {_net(arch, depth)} | {train:.2f} ± {train_std:.2f} | {train - fp32[(arch, depth)][0]:+.2f} "
            f"| {test:.2f} ± {test_std:.2f} | {test - fp32[(arch, depth)][1]:+.2f} |"
        )
    return "\n".join(lines)


def _quick_rises(root: Path) -> str:
    """8 -> 32 layers, training error, in both precisions."""
    fp32 = _quick_fp32(root)

    def rise(arch: str, bf16: bool) -> float:
        if bf16:
            return QUICK_BF16[(arch, 32)][0][0] - QUICK_BF16[(arch, 8)][0][0]
        return fp32[(arch, 32)][0] - fp32[(arch, 8)][0]

    return (
        f"plain 8 -> 32: {rise('plain', True):+.1f} points of training error in bf16, "
        f"{rise('plain', False):+.1f} in fp32; ResNet: {rise('resnet', True):+.1f} and {rise('resnet', False):+.1f}"
    )


def _quick_largest(root: Path) -> str:
    """The largest bf16 - fp32 difference of the quick demo's means."""
    fp32 = _quick_fp32(root)
    gaps = [
        (abs(QUICK_BF16[net][i][0] - fp32[net][i]), net, kind)
        for net in QUICK_BF16
        for i, kind in enumerate(("training", "test"))
    ]
    size, (arch, depth), kind = max(gaps)
    return f"{size:.2f} points, {_net(arch, depth)}'s {kind} error"


# How each paper run trained, epochs first to last: its sweeps/ files record when the command
# changed (`--jobs 2 --threads 1` from ResNet-20's epoch 57; plain-20 fp32 alone on two threads from
# its epoch 118, where its throughput steps up).
PAPER_PHASES = (
    ("resnet", 20, "fp32", 1, 56, "alone, one thread (the other core did other work)"),
    ("resnet", 20, "fp32", 57, 164, "beside plain-20, one thread each"),
    ("plain", 20, "fp32", 1, 117, "beside ResNet-20, one thread each"),
    ("plain", 20, "fp32", 118, 143, "alone, two threads"),
    ("plain", 20, "bf16", 1, 164, "alone, two threads"),
)


def paper_phases(root: Path) -> str:
    """What each part of a paper run cost: time, and the median epoch and speed (training only,
    evaluation excluded: the measure `bench` gives); the longest epoch shows a pause."""
    lines = _head("run", "epochs", "how", "time", "median epoch", "median img/s", "longest epoch")
    for arch, depth, precision, first, last, how in PAPER_PHASES:
        rows = _epochs(root, "paper", arch, depth, precision).loc[first:last]
        seconds = rows["epoch_seconds"]
        lines.append(
            f"| {_net(arch, depth)}, {precision} | {first}-{last} | {how} | {duration(seconds.sum())} "
            f"| {duration(seconds.median())} | {rows['images_per_second'].median():,.0f} "
            f"| {duration(seconds.max())} (epoch {seconds.index.to_list()[int(seconds.to_numpy().argmax())]}) |"
        )
    return "\n".join(lines)


def start_table(root: Path) -> str:
    """The start of training, per net over seeds: its first and last 20 iterations, and when its
    loss first fell below 2.0 in each seed (ln 10 = 2.30 is chance)."""
    rows = diagnostics.read(root / REFERENCE / "start")["start"]
    last = int(rows["iteration"].max())
    lines = _head(
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


def _figure(value: float) -> str:
    """Two significant digits below 0.1, then two decimals, then whole numbers from 100: 0.0061,
    0.30, 3.02, 1,051."""
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.2g}"


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
    lines = _head("layers", "plain, BN", "ResNet, BN", "plain, no BN", "ResNet, no BN")
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
    lines = _head("net", "stream std, last stage", "logit std", "loss before the first step")
    table = scale_line(f).to_dict("index")
    for arch in ("plain", "resnet"):
        for depth in sorted(set(f["depth"])):
            n = table[(_net(arch, depth), "init")]
            lines.append(
                f"| {_net(arch, depth)} | {n['stream std (last stage)']:.2f} | {n['logit std']:.2f} | {n['loss']:.2f} |"
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
    lines = _head("activation, BN", *(_net(a, d) for a, d in nets))
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
                    cells.append(_figure(ratio[(label, "init")]))
            lines.append(f"| {activation}, {'BN' if norm == 'bn' else 'no BN'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paths_table(root: Path, folder: str) -> str:
    """The gradient one path carries, by its length k: at the ends of k and its mean factor per
    residual branch, and where the whole gradient sits (`resdepth diagnose`'s line) against the
    binomial centre n/2 where it would sit if every path carried the same; mean over seeds."""
    f = diagnostics.read(root / REFERENCE / folder)["paths"]
    per_k = path_gradients(f).reset_index()
    lines = _head(
        "net", "blocks n", "one path's gradient, k = 0", "k = n", "factor a branch", "k carrying most",
        "mean k of the gradient", "n/2", "k holding 90%",
    )  # fmt: skip
    for line in paths_line(f).reset_index().to_dict("records"):
        grad = per_k[(per_k["net"] == line["net"]) & (per_k["state"] == line["state"])].set_index("k")["grad"]
        n = int(line["blocks"])
        lines.append(
            f"| {line['net']} | {n} | {grad[0]:.2g} | {grad[n]:.2g} | {(grad[n] / grad[0]) ** (1 / n):.2f} "
            f"| {int(line['k carrying most'])} | {line['mean k of the gradient']:.1f} | {n / 2:g} "
            f"| {int(line['k holding 90%'])} |"
        )
    return "\n".join(lines)


# --- trained nets (results/reference/longer: `resdepth diagnose` on its runs' final weights) -----

TRAINED = "longer"


def _trained(root: Path, name: str) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """A measurement's rows of the trained reference nets, and (net, its trained state) by depth,
    plain before ResNet."""
    rows = diagnostics.read(root / REFERENCE / TRAINED)[name]
    trained = rows[rows["state"] != "init"].drop_duplicates("net").sort_values(["depth", "arch"])
    return rows, list(zip(trained["net"], trained["state"], strict=True))


def trained_landscape(root: Path) -> str:
    """Around the trained weights (Li et al.): the loss there, half a filter's norm away and at the
    plane's corners, and on the straight line from init the highest loss and where it lies."""
    f, nets = _trained(root, "landscape")
    summary = landscape_line(f).to_dict("index")
    lines = _head(
        "net", "loss at the weights", "error % there", "loss near |α| = 0.5", "loss at the plane's corners",
        "loss at init", "highest loss from init to trained (at t)",
    )  # fmt: skip
    for net, state in nets:
        n = summary[(net, state)]
        rows = f[f["net"] == net]
        error = rows[(rows["kind"] == "1d") & (rows["alpha"] == 0)]["error"].mean()
        path = rows[rows["kind"] == "path"].groupby("alpha")["loss"].mean()
        corners = n["loss at the plane's corners"]
        lines.append(
            f"| {net} | {n['loss']:.3f} | {error:.1f} | {n['loss near |α| = 0.5']:.2f} | {corners:.0f} "
            f"| {path.iloc[0]:.2f} | {path.max():.2f} (t = {path.idxmax():.2f}) |"
        )
    return "\n".join(lines)


def trained_shatter(root: Path) -> str:
    """The correlation of neighbouring input gradients at init and trained, 1 and 8 points apart."""
    f, nets = _trained(root, "shatter")
    r = shatter_line(f).to_dict("index")
    lines = _head("net", "r at lag 1, init", "trained", "r at lag 8, init", "trained")
    for net, state in nets:
        cells = [r[(net, s)][f"r at lag {lag}"] for lag in (1, 8) for s in ("init", state)]
        lines.append(f"| {net} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def trained_lesion(root: Path) -> str:
    """Test error with blocks deleted from the trained nets (Veit et al.): one at a time, and k at
    random (a plain net has no block it can lose at random: most change the shape)."""
    f, nets = _trained(root, "lesion")
    r = lesion_line(f).to_dict("index")
    lines = _head(
        "net", "test error %", "one block deleted: mean", "worst", "k random blocks deleted", "error"
    )
    for net, state in nets:
        n = r[(net, state)]
        k = "" if pd.isna(n["k deleted"]) else f"{int(n['k deleted'])} | {n['error, k deleted']:.1f}"
        lines.append(
            f"| {net} | {n['intact error']:.1f} | {n['mean single']:.1f} | {n['worst single']:.1f} | {k or ' | '} |"
        )
    return "\n".join(lines)


def trained_signal(root: Path) -> str:
    """Before and after training: the first layer's gradient over the classifier's, the layers'
    responses (He et al. Fig. 7) and the residual stream's scale."""
    f, nets = _trained(root, "grads")
    ratio = grads_line(f)["first / classifier"]
    responses = responses_line(_trained(root, "responses")[0])["mean std"]
    stream = scale_line(_trained(root, "scale")[0])["stream std (last stage)"]
    lines = _head(
        "net", "first layer's gradient / classifier's, init", "trained", "mean response std, trained",
        "stream std, last stage, init", "trained",
    )  # fmt: skip
    for net, state in nets:
        cells = [ratio[(net, "init")], ratio[(net, state)], responses[(net, state)]]
        cells += [stream[(net, "init")], stream[(net, state)]]
        lines.append(f"| {net} | " + " | ".join(_figure(float(c)) for c in cells) + " |")
    return "\n".join(lines)


def _identity_broken(root: Path) -> str:
    """The range over nets of the largest change of a logit when a fresh net with tanh or sigmoid is
    grown by zeroed blocks (with ReLU a ResNet's logits do not change at all)."""
    f = _init(root, "identity")
    changed = f[f["activation"] != "relu"].groupby("net")["max_abs_diff"].max()
    return f"{_figure(changed.min())} to {_figure(changed.max())}"


def _plain_grown_error(root: Path) -> str:
    """The test error of fresh plain nets (ReLU) grown by zeroed blocks: chance, whatever their own."""
    f = _init(root, "identity", arch="plain", activation="relu")
    return f"{f['grown_error'].mean():.0f}%"


def _seed0_change(root: Path, names: tuple[str, ...], arch: str, depth: int) -> str:
    """Where seed 0's net of this depth ends against the 8-layer one: `4.6 points below`."""
    return _points(_change(root, names, arch, 8, depth)[0])


def _points(change: float) -> str:
    return f"{abs(change):.1f} points {'below' if change < 0 else 'above'}"


def _paper(root: Path, arch: str, depth: int, precision: str) -> float:
    return float(_completed(root, "paper")[(arch, depth, precision)]["final_test_error"])


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
    "quick-minutes": lambda root: _listed(_minutes(root, "quick"), ".0f"),
    "quick-minutes-seed0": lambda root: f"{_minutes(root, 'quick')[0]:.0f}",
    "quick-plain-8-32": lambda root: _span(_change(root, ("quick",), "plain", 8, 32), 0),
    "quick-resnet-8-32-seed1": lambda root: f"{_change(root, ('quick',), 'resnet', 8, 32)[1]:.1f}",
    "course-per-seed": lambda root: tables.per_seed(_recipe(root, "course").group),
    "quick-bf16-rises": _quick_rises,
    "quick-bf16-largest": _quick_largest,
    "course-plain-8-26": lambda root: _span(_change(root, ("course",), "plain", 8, 26), 0),
    "course-resnet-8-26": lambda root: _span(_change(root, ("course",), "resnet", 8, 26), 0),
    "course-plain-8-14": lambda root: _listed(_change(root, ("course",), "plain", 8, 14)),
    "course-plain-14-26": lambda root: _span(_change(root, ("course",), "plain", 14, 26)),
    "course-resnet-8-14": lambda root: _span(_change(root, ("course",), "resnet", 8, 14)),
    "course-resnet-14-26": lambda root: _listed(_change(root, ("course",), "resnet", 14, 26)),
    "course-noise": lambda root: f"{_noise(root, 'course'):.1f}",
    "course-minutes": lambda root: _listed(_minutes(root, "course"), ".0f"),
    "course-median-minutes": lambda root: f"{_median_minutes(root, 'course'):.0f}",
    "course-amx-minutes": lambda root: " and ".join(
        f"{_median_minutes(root, 'course') / x:.0f}" for x in reversed(AMX_SPEEDUP)
    ),
    "amx-speedup": lambda root: f"{AMX_SPEEDUP[0]} to {AMX_SPEEDUP[1]}",
    "scan-plain-8-32": lambda root: _span(_change(root, ("course", "course-scan"), "plain", 8, 32)),
    "scan-resnet-26-32": lambda root: _listed(_change(root, ("course", "course-scan"), "resnet", 26, 32)),
    "scan-resnet-8-32": lambda root: _listed(_change(root, ("course", "course-scan"), "resnet", 8, 32)),
    "course-resnet-14-seed0": lambda root: _seed0_change(root, ("course",), "resnet", 14),
    "course-resnet-20-seed0": lambda root: _seed0_change(root, ("course",), "resnet", 20),
    "scan-resnet-32-seed0": lambda root: _seed0_change(root, ("course", "course-scan"), "resnet", 32),
    "scan-plain-32-seed0": lambda root: _seed0_change(root, ("course", "course-scan"), "plain", 32),
    "paper-plain-fp32-epochs": lambda root: f"{_epochs(root, 'paper', 'plain', 20, 'fp32').index[-1]}",
    "paper-plain-bf16-time": lambda root: duration(
        _epochs(root, "paper", "plain", 20, "bf16")["epoch_seconds"].sum()
    ),
    "paper-resnet-20": lambda root: f"{_paper(root, 'resnet', 20, 'fp32'):.2f}",
    "paper-plain-above-resnet": lambda root: (
        f"{_paper(root, 'plain', 20, 'bf16') - _paper(root, 'resnet', 20, 'fp32'):.2f}"
    ),
    "paper-precision-epochs": lambda root: (
        f"{_precision_gap(root).index[0]}-{_precision_gap(root).index[-1]}"
    ),
    "paper-precision-test": lambda root: f"{_precision_gap(root)['test_error'].mean():.2f}",
    "paper-precision-test-range": lambda root: (
        f"{_precision_gap(root)['test_error'].min():+.2f} to {_precision_gap(root)['test_error'].max():+.2f}"
    ),
    "paper-precision-train": lambda root: (
        f"{abs(m := _precision_gap(root)['train_error'].mean()):.2f} points {'below' if m < 0 else 'above'}"
    ),
    "paper-resnet-vs-table6": lambda root: (
        f"{abs(_paper(root, 'resnet', 20, 'fp32') - float(PUBLISHED[('resnet', 20)][0])):.2f}"
    ),
}


def _runs_in_order(folder: Path) -> list[dict[str, str]]:
    """A folder's runs.csv rows, completed first, then by depth, ResNet before plain, and seed."""
    return sorted(
        results.read_runs(folder).values(),
        key=lambda r: (
            r["status"] != results.Status.COMPLETED,
            int(r["depth"]),
            r["arch"] != "resnet",
            int(r["seed"]),
        ),
    )


def speed_table(root: Path, name: str) -> str:
    """What each completed run of a reference folder cost: its median epoch (training and the test
    pass) and training throughput, the whole run at that median (what it costs with no pause and
    nothing beside it that the median does not already hold), and its wall time as it happened."""
    folder = root / REFERENCE / name
    by_run = results.read_metrics(folder).groupby("run_id")
    epoch, speed = by_run["epoch_seconds"].median(), by_run["images_per_second"].median()
    lines = _head(
        "net", "seed", "precision, processor", "threads", "median epoch", "median img/s",
        "epochs x median epoch", "wall time",
    )  # fmt: skip
    for r in _runs_in_order(folder):
        if r["status"] != results.Status.COMPLETED:
            continue
        i = r["run_id"]
        lines.append(
            f"| {_net(r['arch'], r['depth'])} | {r['seed']} | {r['precision']}, {r['cpu']} | {r['threads']} "
            f"| {duration(epoch[i])} | {speed[i]:,.0f} | {duration(epoch[i] * int(r['epochs_done']))} "
            f"| {duration(float(r['wall_seconds']))} |"
        )
    return "\n".join(lines)


def runs_table(root: Path, name: str, published: dict[tuple[str, int], tuple[str, str]] | None = None) -> str:
    """Every run of a reference folder, completed first: its final errors (beside Table 6 and the
    reproductions, for `published`), and what it cost: precision, processor, threads, wall time and
    the median speed of its epochs."""
    folder = root / REFERENCE / name
    runs = _runs_in_order(folder)
    speed = results.read_metrics(folder).groupby("run_id")["images_per_second"].median()
    header = ["net", "seed", "test", "train", *(["Table 6", "reproductions"] if published else [])]
    header += ["precision, processor", "threads", "wall time", "median img/s"]
    lines = _head(*header)
    for r in runs:
        net = f"{'ResNet' if r['arch'] == 'resnet' else 'plain'}-{r['depth']}"
        done = r["status"] == results.Status.COMPLETED
        test = f"{float(r['final_test_error']):.2f}"
        cells = [
            net if done else f"{net}, {r['status']} at epoch {r['epochs_done']} of {r['epochs']}",
            r["seed"],
        ]
        cells += [f"**{test}**" if done else test, f"{float(r['final_train_error']):.2f}"]
        if published:
            cells += published.get((r["arch"], int(r["depth"])), ("", "")) if done else ("", "")
        fast = "fast bf16" if r["cpu_bf16"] == "yes" else "no fast bf16"
        cells += [f"{r['precision']}, {r['cpu']} ({fast})", r["threads"], duration(float(r["wall_seconds"]))]
        cells.append(f"{speed[r['run_id']]:,.0f}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "course-means": course_means,
    "course-seeds": lambda root: seeds_table(root, "course"),
    "course-verdict": lambda root: verdict(root, "course"),
    "course-scan": depth_scan,
    "quick-seeds": lambda root: seeds_table(root, "quick", means=True),
    "quick-verdict": lambda root: verdict(root, "quick"),
    "quick-bf16": quick_bf16,
    "paper-runs": lambda root: runs_table(root, "paper", PUBLISHED),
    "paper-drops": paper_drops,
    "paper-phases": paper_phases,
    "longer-runs": lambda root: runs_table(root, "longer"),
    "longer-speed": lambda root: speed_table(root, "longer"),
    "start": start_table,
    "init-shatter": init_shatter,
    "init-scale": init_scale,
    "init-grads": init_grads,
    "init-paths": lambda root: paths_table(root, "init"),
    "trained-paths": lambda root: paths_table(root, TRAINED),
    "trained-landscape": trained_landscape,
    "trained-shatter": trained_shatter,
    "trained-lesion": trained_lesion,
    "trained-signal": trained_signal,
}


def render(text: str, root: Path) -> str:
    """`text` with every results block and value rendered anew from the results folders under `root`."""

    def block(m: re.Match[str]) -> str:
        if m.group(2) not in BLOCKS:
            raise ValueError(f"no results block named {m.group(2)!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[m.group(2)](root)}\n{m.group(4)}"

    def value(m: re.Match[str]) -> str:
        if m.group(2) not in VALUES:
            raise ValueError(f"no results value named {m.group(2)!r} (known: {', '.join(VALUES)})")
        return f"{m.group(1)}{VALUES[m.group(2)](root)}{m.group(4)}"

    return VALUE.sub(value, BLOCK.sub(block, text))


def pages(root: Path) -> list[Path]:
    """The pages that may hold results blocks: the README and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
