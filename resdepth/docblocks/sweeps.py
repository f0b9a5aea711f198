"""The tables and numbers that come from the sweeps' reference folders (course, quick, paper,
longer): final errors, seeds, verdicts, the depth scan, the paper runs' drops and phases, and what
each run cost; with the published numbers and measured constants they are set beside."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import pandas as pd

from resdepth import results, tables
from resdepth.analysis import final_rows
from resdepth.docblocks.markdown import REFERENCE, head, listed, net_name, points, span
from resdepth.progress import duration

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


def means_table(root: Path, name: str) -> str:
    """Final errors by layers, plain and ResNet, mean ± std over the completed seeds."""
    mean = _mean(root, name)
    lines = head("layers", "plain, train", "ResNet, train", "plain, test", "ResNet, test")
    for depth in sorted(set(_train_errors(root, name).columns.get_level_values("depth"))):
        cells = [
            mean(a, depth, m) for m in ("final_train_error", "final_test_error") for a in ("plain", "resnet")
        ]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seeds_table(root: Path, name: str, means: bool = False) -> str:
    """Final training error of every net in every seed; with `means`, their mean ± std and the
    final test error's."""
    errors = _train_errors(root, name)
    seeds = list(errors.index)
    header = ["net", *(f"seed {s}" for s in seeds), *(["mean ± std", "final test error"] if means else [])]
    lines = head(*header)
    mean = _mean(root, name)
    columns = cast("list[tuple[str, int]]", errors.columns.to_list())  # a MultiIndex: (arch, depth)
    nets = sorted(columns, key=lambda c: (c[0] != "plain", c[1]))
    for arch, depth in nets:
        cells = [net_name(arch, depth), *(f"{errors.loc[s, (arch, depth)]:.2f}" for s in seeds)]
        if means:
            cells += [mean(arch, depth, m) for m in ("final_train_error", "final_test_error")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(root: Path, name: str) -> str:
    """What `resdepth report` concludes of a reference folder, and its line per seed."""
    recipe = _recipe(root, name)
    seeds = tables.per_seed(recipe.group)  # empty where `report` prints no per-seed line
    return f"`resdepth report results/reference/{name}`: *{recipe.verdict}*" + (
        f"; *{seeds}*." if seeds else "."
    )


def depth_scan(root: Path) -> str:
    """The course's seed 0 at every depth it and course-scan trained, and the deepest nets over seeds."""
    errors = _train_errors(root, "course", "course-scan")
    depths = sorted(set(errors.columns.get_level_values("depth")))
    deepest = errors[("plain", depths[-1])].dropna().index
    header = [str(d) for d in depths] + [f"{depths[-1]}, seeds {deepest.min()}-{deepest.max()}"]
    lines = head("layers", *header)
    mean = _mean(root, "course-scan")
    for arch in ("plain", "resnet"):
        cells = [f"{errors.loc[0, (arch, d)]:.2f}" for d in depths] + [
            mean(arch, depths[-1], "final_train_error")
        ]
        lines.append(f"| {'ResNet' if arch == 'resnet' else 'plain'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _train_errors(root: Path, *names: str) -> pd.DataFrame:
    """Final training error of the completed runs of these folders: a row per seed, a column per
    (arch, depth)."""
    finals = pd.concat([final_rows(_recipe(root, name).group.metrics) for name in names])
    return finals.pivot(index="seed", columns=["arch", "depth"], values="train_error")


def _change(root: Path, names: tuple[str, ...], arch: str, shallow: int, deep: int) -> pd.Series:
    """Each seed's change of final training error from `shallow` to `deep` layers."""
    errors = _train_errors(root, *names)
    return (errors[(arch, deep)] - errors[(arch, shallow)]).dropna()


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


def _completed_runs(root: Path, name: str) -> list[dict[str, str]]:
    """A reference folder's runs.csv rows of its completed runs."""
    runs = results.read_runs(root / REFERENCE / name).values()
    return [r for r in runs if r["status"] == results.Status.COMPLETED]


def _completed(root: Path, name: str) -> dict[tuple[str, int, str], dict[str, str]]:
    """The completed runs of a folder by (arch, depth, precision)."""
    return {(r["arch"], int(r["depth"]), r["precision"]): r for r in _completed_runs(root, name)}


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
    lines = head(
        "run", "lr 0.1, last epoch", "first drop: next two epochs", "second drop: before -> after",
        "last 40 epochs", "best (epoch)", "final", "train, at the first drop -> final",
    )  # fmt: skip
    for arch, depth, precision in [("resnet", 20, "fp32"), ("plain", 20, "bf16"), ("plain", 20, "fp32")]:
        rows = _epochs(root, "paper", arch, depth, precision)
        test, first = rows["test_error"], _drops(rows)
        second = first[1] if len(first) > 1 else None
        last = rows.index[-1]
        tail = test.loc[max(1, last - 39) :]
        net = f"{net_name(arch, depth)}, {precision}" + ("" if last == 164 else f", to epoch {last}")
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
    lines = head("net", "train, bf16", "bf16 - fp32", "test, bf16", "bf16 - fp32")
    for (arch, depth), ((train, train_std), (test, test_std)) in QUICK_BF16.items():
        lines.append(
            f"| {net_name(arch, depth)} | {train:.2f} ± {train_std:.2f} | {train - fp32[(arch, depth)][0]:+.2f} "
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
    return f"{size:.2f} points, {net_name(arch, depth)}'s {kind} error"


# How each paper run trained, epochs first to last (`None`: up to the last epoch logged, for a run
# under way): its sweeps/ files record when the command changed (`--jobs 2 --threads 1` from
# ResNet-20's epoch 57; plain-20 fp32 alone on two threads from its epoch 118, where its throughput
# steps up).
PAPER_PHASES: tuple[tuple[str, int, str, int, int | None, str], ...] = (
    ("resnet", 20, "fp32", 1, 56, "alone, one thread (the other core did other work)"),
    ("resnet", 20, "fp32", 57, 164, "beside plain-20, one thread each"),
    ("plain", 20, "fp32", 1, 117, "beside ResNet-20, one thread each"),
    ("plain", 20, "fp32", 118, 143, "alone, two threads"),
    ("plain", 20, "bf16", 1, 164, "alone, two threads"),
    ("plain", 56, "fp32", 1, None, "beside ResNet-56, one thread each (under way)"),
    ("resnet", 56, "fp32", 1, 19, "beside plain-56, one thread each"),
    ("resnet", 56, "fp32", 20, None, "alone, two threads, on an AMD EPYC with AVX512-BF16 (under way)"),
)


def paper_phases(root: Path) -> str:
    """What each part of a paper run cost: time, and the median epoch and speed (training only,
    evaluation excluded: the measure `bench` gives); the longest epoch shows a pause."""
    lines = head("run", "epochs", "how", "time", "median epoch", "median img/s", "longest epoch")
    for arch, depth, precision, first, last, how in PAPER_PHASES:
        rows = _epochs(root, "paper", arch, depth, precision).loc[first:last]
        seconds = rows["epoch_seconds"]
        lines.append(
            f"| {net_name(arch, depth)}, {precision} | {first}-{rows.index[-1]} | {how} | {duration(seconds.sum())} "
            f"| {duration(seconds.median())} | {rows['images_per_second'].median():,.0f} "
            f"| {_longest(seconds)} |"
        )
    return "\n".join(lines)


def _reached(root: Path, name: str, depth: int) -> str:
    """How far the runs of a depth have trained, of their epochs: `each at epoch 21 of 164`, or
    furthest first: `ResNet-56 at epoch 60 of 164, plain-56 at 19`."""
    runs = [r for r in results.read_runs(root / REFERENCE / name).values() if int(r["depth"]) == depth]
    runs.sort(key=lambda r: -int(r["epochs_done"]))
    lead, *rest = runs
    if all(r["epochs_done"] == lead["epochs_done"] for r in rest):
        return f"each at epoch {lead['epochs_done']} of {lead['epochs']}"
    others = ", ".join(f"{net_name(r['arch'], depth)} at {r['epochs_done']}" for r in rest)
    return f"{net_name(lead['arch'], depth)} at epoch {lead['epochs_done']} of {lead['epochs']}, {others}"


def _checkpoint_sizes(root: Path, name: str) -> str:
    """What the shipped checkpoints weigh in the history every clone downloads: `7.0 MB each`."""
    sizes = sorted(
        {round(f.stat().st_size / 1e6, 1) for f in (root / REFERENCE / name / "checkpoints").glob("*.pt")}
    )
    if not sizes:
        raise ValueError(f"{name} ships no checkpoint to weigh")
    return f"{sizes[0]:.1f} MB each" if len(sizes) == 1 else f"{listed(sizes, '.1f')} MB"


def paper_progress(root: Path, depth: int = 56, every: int = 5) -> str:
    """The paper's plain and ResNet of one depth side by side (fp32), every few epochs and at the
    last each reached: how far apart they are at the same point of the schedule while they train
    (blank where one has not got there yet)."""
    nets = [_epochs(root, "paper", arch, depth, "fp32") for arch in ("plain", "resnet")]
    ends = {int(rows.index[-1]) for rows in nets}
    lines = head(
        "epoch", "lr", f"plain-{depth}, train", f"ResNet-{depth}, train", f"plain-{depth}, test",
        f"ResNet-{depth}, test",
    )  # fmt: skip
    for epoch in sorted({1, *range(every, max(ends) + 1, every), *ends}):
        lr = next(rows.loc[epoch, "lr"] for rows in nets if epoch in rows.index)
        cells = [
            f"{rows.loc[epoch, column]:.2f}" if epoch in rows.index else ""
            for column in ("train_error", "test_error")
            for rows in nets
        ]
        lines.append(f"| {epoch} | {lr} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _longest(seconds: pd.Series) -> str:
    """A run's longest epoch and which it was, from its epoch times by epoch: where a pause or a
    neighbour on the machine shows."""
    return f"{duration(seconds.max())} (epoch {seconds.idxmax()})"


def _seed0_change(root: Path, names: tuple[str, ...], arch: str, depth: int) -> str:
    """Where seed 0's net of this depth ends against the 8-layer one: `4.6 points below`."""
    return points(_change(root, names, arch, 8, depth)[0])


def _first_epoch_56(root: Path) -> str:
    """The paper's 56-layer pair after its first epoch (lr 0.1, fp32, seed 0): mean training error."""
    plain, resnet = (
        _epochs(root, "paper", arch, 56, "fp32")["train_error"].loc[1] for arch in ("plain", "resnet")
    )
    return f"ResNet-56 {resnet:.2f}%, plain-56 {plain:.2f}%"


def _against_20(root: Path, arch: str, depth: int, epoch: int) -> str:
    """A paper net against the 20-layer net of its kind at the same point of the schedule (fp32,
    seed 0), as published logs give them: the mean of the five epochs up to `epoch`, training error
    then test: `8.2% against ResNet-20's 9.9% (test 14.6% and 14.4%)`."""
    deep, shallow = (_epochs(root, "paper", arch, d, "fp32").loc[epoch - 4 : epoch] for d in (depth, 20))
    if min(len(deep), len(shallow)) < 5:
        raise ValueError(
            f"paper's {net_name(arch, depth)} or {net_name(arch, 20)} has not reached epoch {epoch}"
        )
    train, test = ((deep[c].mean(), shallow[c].mean()) for c in ("train_error", "test_error"))
    return (
        f"{train[0]:.1f}% against {net_name(arch, 20)}'s {train[1]:.1f}% "
        f"(test {test[0]:.1f}% and {test[1]:.1f}%)"
    )


def _paper(root: Path, arch: str, depth: int, precision: str) -> float:
    return float(_completed(root, "paper")[(arch, depth, precision)]["final_test_error"])


def _gap(root: Path, name: str, upper: tuple[str, int], lower: tuple[str, int]) -> str:
    """How far one net, `(arch, depth)`, ends above another (completed runs of one precision, the
    folder's), to two decimals, since two nets can end level: `1.57 points in test error and 2.43
    in training error`; once more than one seed has completed, the mean, and it says so."""
    runs = [r for r in _completed_runs(root, name) if (r["arch"], int(r["depth"])) in (upper, lower)]
    if len({r["precision"] for r in runs}) > 1:
        raise ValueError(
            f"{name}: {net_name(*upper)} and {net_name(*lower)} mix precisions; their mean is no net's"
        )

    def values(net: tuple[str, int], column: str) -> list[float]:
        return [float(r[column]) for r in runs if (r["arch"], int(r["depth"])) == net]

    def gap(column: str) -> float:
        high, low = values(upper, column), values(lower, column)
        return sum(high) / len(high) - sum(low) / len(low)

    seeds = min(len(values(upper, "final_test_error")), len(values(lower, "final_test_error")))
    mean = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    return f"{gap('final_test_error'):.2f} points in test error and {gap('final_train_error'):.2f} in training error{mean}"


def _stays_below(root: Path, name: str, arch: str, deep: int, shallow: int, seed: int = 0) -> str:
    """From which epoch one seed's deeper net trains below its shallower one to the end (completed
    runs): `epoch 15 of 30`. Where the deeper net ends above, the sentence quoting this is wrong,
    so it is an error, not a phrase."""
    folder = root / REFERENCE / name
    ids = {
        int(r["depth"]): r["run_id"]
        for r in _completed_runs(root, name)
        if (r["arch"], int(r["seed"])) == (arch, seed) and int(r["depth"]) in (deep, shallow)
    }
    if len(ids) != 2:
        raise ValueError(f"{name}: no completed {arch}-{deep} and {arch}-{shallow} of seed {seed}")
    metrics = results.read_metrics(folder)
    error = {d: metrics[metrics["run_id"] == i].set_index("epoch")["train_error"] for d, i in ids.items()}
    below = error[deep] < error[shallow]
    if not below.iloc[-1]:
        raise ValueError(f"{name}: seed {seed}'s {arch}-{deep} ends above {arch}-{shallow} in training error")
    above = [int(e) for e in below.index if not below[e]]
    first = above[-1] + 1 if above else int(below.index[0])
    return f"epoch {first} of {int(below.index[-1])}"


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
    nothing beside it that the median does not already hold), its wall time as it happened, and its
    longest epoch (where a pause or other work on the machine shows)."""
    folder = root / REFERENCE / name
    by_run = results.read_metrics(folder).groupby("run_id")
    epoch, speed = by_run["epoch_seconds"].median(), by_run["images_per_second"].median()
    lines = head(
        "net", "seed", "precision, processor", "threads", "median epoch", "median img/s",
        "epochs x median epoch", "wall time", "longest epoch",
    )  # fmt: skip
    for r in _runs_in_order(folder):
        if r["status"] != results.Status.COMPLETED:
            continue
        i = r["run_id"]
        lines.append(
            f"| {net_name(r['arch'], r['depth'])} | {r['seed']} | {r['precision']}, {r['cpu']} | {r['threads']} "
            f"| {duration(epoch[i])} | {speed[i]:,.0f} | {duration(epoch[i] * int(r['epochs_done']))} "
            f"| {duration(float(r['wall_seconds']))} "
            f"| {_longest(by_run.get_group(i).set_index('epoch')['epoch_seconds'])} |"
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
    lines = head(*header)
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
        # one label per machine the run trained on, in order (`no fast bf16 + fast bf16`)
        fast = results.MACHINES_JOIN.join(
            "fast bf16" if v == "yes" else "no fast bf16" for v in r["cpu_bf16"].split(results.MACHINES_JOIN)
        )
        cells += [f"{r['precision']}, {r['cpu']} ({fast})", r["threads"], duration(float(r["wall_seconds"]))]
        cells.append(f"{speed[r['run_id']]:,.0f}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


VALUES: dict[str, Callable[[Path], str]] = {
    "longer-20-gap": lambda root: _gap(root, "longer", ("plain", 20), ("resnet", 20)),
    "longer-plain-56-above-20": lambda root: _gap(root, "longer", ("plain", 56), ("plain", 20)),
    "longer-resnet-20-above-56": lambda root: _gap(root, "longer", ("resnet", 20), ("resnet", 56)),
    "longer-resnet-56-below-20": lambda root: _stays_below(root, "longer", "resnet", 56, 20),
    "longer-plain-56-test": lambda root: (
        f"{float(_completed(root, 'longer')[('plain', 56, 'fp32')]['final_test_error']):.1f}%"
    ),
    "quick-minutes": lambda root: listed(_minutes(root, "quick"), ".0f"),
    "quick-minutes-seed0": lambda root: f"{_minutes(root, 'quick')[0]:.0f}",
    "quick-plain-8-32": lambda root: span(_change(root, ("quick",), "plain", 8, 32), 0),
    "quick-resnet-8-32-seed1": lambda root: f"{_change(root, ('quick',), 'resnet', 8, 32)[1]:.1f}",
    "course-per-seed": lambda root: tables.per_seed(_recipe(root, "course").group),
    "quick-bf16-rises": _quick_rises,
    "quick-bf16-largest": _quick_largest,
    "paper-56-first-epoch": _first_epoch_56,
    "course-plain-8-26": lambda root: span(_change(root, ("course",), "plain", 8, 26), 0),
    "course-resnet-8-26": lambda root: span(_change(root, ("course",), "resnet", 8, 26), 0),
    "course-plain-8-14": lambda root: listed(_change(root, ("course",), "plain", 8, 14)),
    "course-plain-14-26": lambda root: span(_change(root, ("course",), "plain", 14, 26)),
    "course-resnet-8-14": lambda root: span(_change(root, ("course",), "resnet", 8, 14)),
    "course-resnet-14-26": lambda root: listed(_change(root, ("course",), "resnet", 14, 26)),
    "course-noise": lambda root: f"{_noise(root, 'course'):.1f}",
    "course-minutes": lambda root: listed(_minutes(root, "course"), ".0f"),
    "course-median-minutes": lambda root: f"{_median_minutes(root, 'course'):.0f}",
    "course-amx-minutes": lambda root: " and ".join(
        f"{_median_minutes(root, 'course') / x:.0f}" for x in reversed(AMX_SPEEDUP)
    ),
    "amx-speedup": lambda root: f"{AMX_SPEEDUP[0]} to {AMX_SPEEDUP[1]}",
    "scan-plain-8-32": lambda root: span(_change(root, ("course", "course-scan"), "plain", 8, 32)),
    "scan-resnet-26-32": lambda root: listed(_change(root, ("course", "course-scan"), "resnet", 26, 32)),
    "scan-resnet-8-32": lambda root: listed(_change(root, ("course", "course-scan"), "resnet", 8, 32)),
    "course-resnet-14-seed0": lambda root: _seed0_change(root, ("course",), "resnet", 14),
    "course-resnet-20-seed0": lambda root: _seed0_change(root, ("course",), "resnet", 20),
    "scan-resnet-32-seed0": lambda root: _seed0_change(root, ("course", "course-scan"), "resnet", 32),
    "scan-plain-32-seed0": lambda root: _seed0_change(root, ("course", "course-scan"), "plain", 32),
    "paper-plain-fp32-epochs": lambda root: f"{_epochs(root, 'paper', 'plain', 20, 'fp32').index[-1]}",
    "paper-plain-bf16-time": lambda root: duration(
        _epochs(root, "paper", "plain", 20, "bf16")["epoch_seconds"].sum()
    ),
    "paper-56-reached": lambda root: _reached(root, "paper", 56),
    "paper-resnet-56-epoch-40": lambda root: _against_20(root, "resnet", 56, 40),
    "paper-plain-56-epoch-19": lambda root: _against_20(root, "plain", 56, 19),
    "paper-checkpoint-sizes": lambda root: _checkpoint_sizes(root, "paper"),
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


BLOCKS: dict[str, Callable[[Path], str]] = {
    "course-means": lambda root: means_table(root, "course"),
    "course-seeds": lambda root: seeds_table(root, "course"),
    "course-verdict": lambda root: verdict(root, "course"),
    "course-scan": depth_scan,
    "quick-seeds": lambda root: seeds_table(root, "quick", means=True),
    "quick-verdict": lambda root: verdict(root, "quick"),
    "quick-bf16": quick_bf16,
    "paper-runs": lambda root: runs_table(root, "paper", PUBLISHED),
    "paper-drops": paper_drops,
    "paper-phases": paper_phases,
    "paper-56-progress": paper_progress,
    "longer-runs": lambda root: runs_table(root, "longer"),
    "longer-speed": lambda root: speed_table(root, "longer"),
    "longer-means": lambda root: means_table(root, "longer"),
    "longer-verdict": lambda root: verdict(root, "longer"),
}
