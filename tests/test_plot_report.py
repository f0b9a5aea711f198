"""Figures and tables read back against hand-made CSVs with known answers."""

from __future__ import annotations

import io
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resdepth import analysis, plot, results, tables
from resdepth.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

# (arch, depth, final train error per seed): plain degrades with depth, ResNet improves.
KNOWN = {("plain", 20): [10.0, 12.0], ("plain", 56): [20.0, 22.0], ("resnet", 20): [9.0, 11.0],
         ("resnet", 56): [6.0, 8.0]}  # fmt: skip


def write_results(folder: Path, finals: dict[tuple[str, int], list[float]], epochs: int = 3,
                  diverge: tuple[str, int] | None = None, recipe: dict[str, object] | None = None,
                  status: str = "completed", logged: int | None = None) -> None:  # fmt: skip
    """metrics.csv and runs.csv of a fake sweep: errors fall linearly to the given final values.
    `recipe` adds run fields (dataset, epochs, ...); `logged` epochs of `epochs` are written."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = recipe or {}
    tag = "".join(f"{k}{v}" for k, v in recipe.items())
    for (arch, depth), per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            run_id = f"{arch}{depth}s{seed}{tag}"
            for epoch in range(1, (logged or epochs) + 1):
                train = final + 10.0 * (epochs - epoch)
                loss = float("nan") if diverge == (arch, depth) and epoch == epochs else 1.0
                results.append_metrics(folder, {
                    "run_id": run_id, "arch": arch, "depth": depth, "family": "cifar", "width": 16,
                    "shortcut": "A", "norm": "bn", "activation": "relu", "dataset": "cifar10", "seed": seed,
                    "epoch": epoch,
                    "iteration": 100 * epoch, "lr": 0.1, "train_loss": loss, "train_error": train,
                    "test_error": train + 5.0, "test_loss": 1.0, "epoch_seconds": 2.0,
                    "images_per_second": 1000.0, **recipe,
                })  # fmt: skip
            ended = "diverged" if diverge == (arch, depth) else status
            results.write_run(folder, {"run_id": run_id, "arch": arch, "depth": depth, "seed": seed,
                                       "params": 1000 * depth, "status": ended, "epochs": epochs,
                                       "epochs_done": logged or epochs, **recipe})  # fmt: skip


def only(folder: Path, include_partial: bool = False) -> analysis.Group:
    """The one recipe of a folder."""
    (group,) = analysis.groups(analysis.load(folder), include_partial)
    return group


@pytest.fixture
def known(tmp_path: Path) -> analysis.Group:
    write_results(tmp_path, KNOWN)
    return only(tmp_path)


def test_report_numbers_are_means_and_stds_over_seeds(known: analysis.Group) -> None:
    nets = tables.table(known).set_index("label")
    assert list(nets.index) == ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]
    assert nets.loc["plain-56", "final_train_error_mean"] == pytest.approx(21.0)
    assert nets.loc["plain-56", "final_train_error_std"] == pytest.approx(np.std([20, 22], ddof=1))
    assert nets.loc["ResNet-56", "final_test_error_mean"] == pytest.approx(12.0)
    assert nets.loc["ResNet-56", "best_test_error_mean"] == pytest.approx(12.0)
    assert nets.loc["ResNet-20", "seeds"] == 2 and nets.loc["ResNet-20", "params"] == 20_000
    assert nets.loc["plain-20", "wall_seconds_mean"] == pytest.approx(6.0)


def test_verdict_says_reproduced_with_the_numbers(known: analysis.Group) -> None:
    text = tables.verdict(tables.table(known))
    assert text == (
        "degradation reproduced: plain training error rises with depth (20: 11.0% -> 56: 21.0%), "
        "ResNet's falls (20: 10.0% -> 56: 7.0%); 2 or more seeds per net, so a change counts beyond twice "
        "their pooled std (2.8 points)"
    )


def test_verdict_when_the_deeper_resnet_lags_a_little(tmp_path: Path) -> None:
    write_results(tmp_path, {("plain", 8): [31.7], ("plain", 32): [52.7], ("resnet", 8): [31.5],
                             ("resnet", 32): [32.8]})  # fmt: skip
    assert tables.verdict(tables.table(only(tmp_path))) == (
        "degradation reproduced: plain training error rises with depth (8: 31.7% -> 32: 52.7%), "
        "ResNet's rises far less, 1.3 points (8: 31.5% -> 32: 32.8%); the verdict rests on one seed per net"
    )
    write_results(tmp_path / "b", {("plain", 8): [31.7, 31.9], ("plain", 32): [52.7, 52.9],
                                   ("resnet", 8): [31.5], ("resnet", 32): [32.8]})  # fmt: skip
    assert tables.verdict(tables.table(only(tmp_path / "b"))).endswith(
        "; 2 of the 4 nets compared ran once, so a change counts beyond twice the pooled std of the others (1.0 points)"
    )


def test_a_net_that_ran_once_leaves_the_noise_measured_on_the_others(tmp_path: Path) -> None:
    # plain-56 ran once; the other three nets' seeds spread by std 3: a 2.5-point rise is within it.
    write_results(tmp_path, {("plain", 20): [8.0, 14.0, 11.0], ("plain", 56): [13.5], ("resnet", 20): [7.0, 13.0, 10.0],
                             ("resnet", 56): [7.0, 13.0, 10.0]})  # fmt: skip
    nets = tables.table(only(tmp_path))
    assert tables.threshold(nets) == (pytest.approx(6.0), 1)
    assert tables.verdict(nets).startswith("not enough evidence: the plain rise (2.5 points) is within")


def test_verdict_says_not_reproduced_and_why_or_that_it_cannot_tell(tmp_path: Path) -> None:
    write_results(tmp_path, {("plain", 20): [10.0], ("plain", 56): [10.5], ("resnet", 20): [9.0],
                             ("resnet", 56): [8.0]})  # fmt: skip
    text = tables.verdict(tables.table(only(tmp_path)))
    assert text.startswith("not reproduced: the deeper plain net does not train worse")
    assert "3 epochs may be too short" in text
    single = tmp_path / "single"
    single.mkdir()
    write_results(single, {("plain", 20): [10.0], ("resnet", 20): [9.0]})
    assert tables.verdict(tables.table(only(single))) == (
        "no verdict: degradation is a change with depth, and plain and resnet share fewer than two depths (20)"
    )
    resnet_only = tmp_path / "resnet-only"
    resnet_only.mkdir()
    write_results(resnet_only, {("resnet", 20): [9.0], ("resnet", 56): [8.0]})
    assert (
        tables.verdict(tables.table(only(resnet_only)))
        == "no verdict: the sweep needs both plain and resnet runs"
    )


def test_markdown_report_is_a_table_and_a_verdict(known: analysis.Group) -> None:
    text = tables.markdown(known, tables.table(known))
    lines = text.splitlines()
    assert lines[0].startswith("| net | seeds |") and lines[1].startswith("|---|")
    assert "| plain-56 | 2 | 3 | 26.00 ± 1.41 |" in text
    nets = tables.table(known).assign(wall_seconds_mean=57_400.0)  # a paper-recipe net on a CPU
    assert {row[-1] for row in tables.rows(nets)[1]} == {"15 h 57 min"}  # 15.94 h, rounded not cut
    assert lines[-3].startswith("degradation reproduced")
    assert lines[-1] == "per seed (0, 1), 20 -> 56 layers: plain +10.0, +10.0; ResNet -3.0, -3.0 points"


def test_per_seed_line_shows_what_the_means_hide(cli, tmp_path: Path) -> None:
    """Plain rises on average at every step, but not in seed 1; ResNet's mean is level, its seeds are not."""
    finals = {("plain", 8): [30.0, 32.0, 31.0], ("plain", 14): [35.0, 31.0, 36.0],
              ("plain", 20): [40.0, 41.0, 42.0], ("resnet", 8): [30.0, 31.0, 32.0],
              ("resnet", 14): [29.0, 30.0, 31.0], ("resnet", 20): [31.0, 29.0, 32.5]}  # fmt: skip
    write_results(tmp_path / "three", finals)
    line = (
        "per seed (0, 1, 2), 8 -> 20 layers: plain +10.0, +9.0, +11.0; ResNet +1.0, -2.0, +0.5 points; "
        "plain rises at every step (8 -> 14 -> 20) in 2 of 3 seeds"
    )
    assert tables.per_seed(only(tmp_path / "three")) == line
    r = cli("report", str(tmp_path / "three"))
    assert r.code == 0 and " ".join(r.out.split()).endswith(line)
    # Seed 2 lacks plain-14: the end-to-end changes still count it, the steps do not.
    write_results(tmp_path / "gap", {k: v[:2] if k == ("plain", 14) else v for k, v in finals.items()})
    assert tables.per_seed(only(tmp_path / "gap", include_partial=True)).endswith("in 1 of 2 seeds")
    write_results(tmp_path / "one", {k: v[:1] for k, v in finals.items()})
    assert tables.per_seed(only(tmp_path / "one")) == ""


def test_curves_figure_draws_the_csv_means_with_paper_styles(known: analysis.Group) -> None:
    fig = plot.curves_figure(known, x="epoch")
    plain, resnet = fig.axes
    assert plain.get_title() == "plain" and resnet.get_title() == "ResNet"
    lines = {(ln.get_label(), ln.get_linestyle()): ln for ln in plain.get_lines()}
    test56 = lines[("plain-56", "-")]
    np.testing.assert_allclose(test56.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(test56.get_ydata(), [46.0, 36.0, 26.0])  # mean of seeds, train + 5
    trains = [ln for ln in plain.get_lines() if ln.get_linestyle() == "--"]
    np.testing.assert_allclose(trains[1].get_ydata(), [41.0, 31.0, 21.0])
    assert trains[1].get_linewidth() < test56.get_linewidth()
    # the same colour for the same depth in both panels
    res56 = next(ln for ln in resnet.get_lines() if ln.get_label() == "ResNet-56")
    assert res56.get_color() == test56.get_color()
    # a +-1 std band per line when there are several seeds
    band = plain.collections[0].get_paths()[0].vertices
    # plain-20 train: mean 11 + 20 at epoch 1, +-std of (10, 12)
    assert band[:, 1].max() == pytest.approx(31.0 + np.std([10, 12], ddof=1))
    assert plain.get_ylim()[0] == 0


def test_depth_figure_and_paper_markers(known: analysis.Group) -> None:
    fig = plot.depth_figure(known, paper=True)
    train_ax, test_ax = fig.axes
    plain = next(c for c in train_ax.containers if c.get_label() == "plain, mean of 2 runs")
    plain_line = plain.lines[0]
    np.testing.assert_allclose(plain_line.get_xdata(), [20, 56])
    np.testing.assert_allclose(plain_line.get_ydata(), [11.0, 21.0])
    (bars,) = plain.lines[2]  # ± the std of the two seeds, sqrt(2)
    np.testing.assert_allclose(
        [seg[:, 1] for seg in bars.get_segments()], [[9.586, 12.414], [19.586, 22.414]], atol=1e-3
    )
    paper = next(ln for ln in test_ax.get_lines() if ln.get_label().startswith("He et al. 2016"))
    np.testing.assert_allclose(paper.get_ydata(), [8.75, 7.51, 7.17, 6.97, 6.43])


def test_a_net_that_ran_once_gets_no_error_bar(tmp_path: Path) -> None:
    write_results(tmp_path, {("plain", 20): [10.0, 12.0], ("plain", 56): [20.0], ("resnet", 20): [9.0],
                             ("resnet", 56): [6.0]})  # fmt: skip
    train_ax = plot.depth_figure(only(tmp_path)).axes[0]
    plain = next(c for c in train_ax.containers if c.get_label() == "plain, mean of 1-2 runs")
    (bars,) = plain.lines[2]
    at20, at56 = bars.get_segments()
    assert np.ptp(at20[:, 1]) == pytest.approx(2 * np.sqrt(2)) and at56.size == 0  # one run: no spread
    assert {c.get_label() for c in train_ax.containers} == {"plain, mean of 1-2 runs", "ResNet, 1 run"}


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_command_writes_valid_images(cli, tmp_path: Path) -> None:
    write_results(tmp_path, KNOWN)
    r = cli("plot", str(tmp_path))
    assert r.code == 0
    assert _png_size(tmp_path / "figures" / "curves.png") == (1320, 540)
    assert _png_size(tmp_path / "figures" / "depth.png") == (1200, 504)
    r = cli("plot", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "f.svg"), "--paper")
    assert r.code == 0
    assert (tmp_path / "f-curves.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "f-depth.svg").is_file()


def test_diverged_run_is_drawn_up_to_divergence_and_marked(tmp_path: Path) -> None:
    write_results(tmp_path, KNOWN, diverge=("plain", 56))
    default = [ln.get_label() for ln in plot.curves_figure(only(tmp_path)).axes[0].get_lines()]
    assert not any(str(label).startswith("plain-56") for label in default)  # left out of the means
    fig = plot.curves_figure(only(tmp_path, include_partial=True))
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "plain-56 * (diverged)" in labels


def test_a_sweep_of_classic_nets_alone_plots_without_warnings(tmp_path: Path) -> None:
    write_results(tmp_path, {("lenet5", 5): [1.0], ("vgg16", 16): [20.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot.depth_figure(only(tmp_path))
    assert [t.get_text() for t in fig.axes[0].texts] == ["lenet5", "vgg16"]


def test_classic_nets_get_their_own_panel(tmp_path: Path) -> None:
    write_results(tmp_path, {**KNOWN, ("lenet5", 5): [1.0]})
    fig = plot.curves_figure(only(tmp_path))
    assert [ax.get_title() for ax in fig.axes] == ["plain", "ResNet", "classic nets"]
    assert "lenet5" in [ln.get_label() for ln in fig.axes[2].get_lines()]


@pytest.mark.parametrize("command", ["plot", "report"])
def test_bad_results_are_one_line(cli, tmp_path: Path, command: str) -> None:
    r = cli(command, str(tmp_path / "missing"))
    assert r.code == 2 and "does not exist" in r.err
    (tmp_path / "metrics.csv").write_text("")
    r = cli(command, str(tmp_path))
    assert r.code == 2 and "no finished epoch" in r.err
    (tmp_path / "metrics.csv").write_text("step,loss\n1,0.5\n")
    r = cli(command, str(tmp_path))
    assert r.code == 2 and "lacks resdepth's columns" in r.err
    header = ",".join(results.METRICS_COLUMNS)
    (tmp_path / "metrics.csv").write_text(header + "\nabc,plain,20,cif")  # truncated
    r = cli(command, str(tmp_path))
    assert r.code == 2 and "no finished epoch" in r.err
    (tmp_path / "runs.csv").write_text(",".join(results.RUNS_COLUMNS) + "\n")
    r = cli(command, str(tmp_path / "runs.csv"))
    assert r.code == 2 and f"lists runs; give its folder, {tmp_path}, or the metrics.csv beside it" in r.err
    assert all("Traceback" not in x for x in (r.err, r.out))


def test_partial_sweep_is_reported(tmp_path: Path) -> None:
    write_results(tmp_path, {("plain", 20): [10.0], ("resnet", 20): [9.0]}, epochs=2)
    write_results(tmp_path, {("plain", 56): [30.0]}, epochs=2, logged=1, status="interrupted")
    group = only(tmp_path)
    assert "plain-56" not in set(tables.table(group)["label"])
    assert tables.left_out(group) == ["plain-56 seed 0 (plain56s0): interrupted, 1 of 2 epochs"]
    nets = tables.table(only(tmp_path, include_partial=True)).set_index("label")
    assert nets.loc["plain-56 *", "epochs"] == 1
    assert plot.trained(group) == "after 2 epochs"
    # A verdict is a claim about depth: never from a mean of a run stopped early.
    write_results(tmp_path, {("resnet", 56): [8.0]}, epochs=2)
    partial = tables.table(only(tmp_path, include_partial=True))
    assert tables.verdict(partial) == (
        "no verdict: plain-56 * include runs that did not complete; the verdict compares completed runs "
        "(without --include-partial)"
    )
    assert tables.verdict(tables.table(only(tmp_path))).startswith(
        "no verdict: degradation is a change with depth"
    )
    # A figure of means that hold a partial run says so in its title.
    fig = plot.layers_figure(only(tmp_path, include_partial=True))
    assert fig.get_suptitle() == (
        "final training error after 1 to 2 epochs (runs that did not complete included) against the number of layers"
    )


def test_plot_rejects_an_unknown_format(tmp_path: Path) -> None:
    write_results(tmp_path, KNOWN)
    with pytest.raises(UserError, match="must end in .png, .pdf, .svg"):
        plot.write(analysis.load(tmp_path), tmp_path / "x.jpg")


# --- recipes: never average unlike runs ----------------------------------------------------------

THREE = {("plain", 20): [10.0, 11.0, 12.0], ("plain", 56): [20.0, 21.0, 22.0],
         ("resnet", 20): [9.0, 10.0, 11.0], ("resnet", 56): [8.0, 9.0, 10.0]}  # fmt: skip


def test_a_mixed_folder_gives_one_table_per_recipe_and_an_unflipped_verdict(cli, tmp_path: Path) -> None:
    # Three seeds of a finished CIFAR-10 sweep, and a CIFAR-100 ResNet-56 killed after 1 of 3 epochs
    # whose error (42.5%) would have flipped the CIFAR-10 verdict had the two been averaged.
    write_results(tmp_path, THREE, recipe={"dataset": "cifar10"})
    write_results(tmp_path, {("resnet", 56): [22.5]}, recipe={"dataset": "cifar100"}, status="interrupted",
                  logged=1)  # fmt: skip
    found = analysis.groups(analysis.load(tmp_path))
    assert [g.heading for g in found] == ["dataset=cifar10", "dataset=cifar100"]
    cifar10, cifar100 = found
    nets = tables.table(cifar10).set_index("label")
    assert nets.loc["ResNet-56", "seeds"] == 3 and nets.loc["ResNet-56", "final_train_error_mean"] == 9.0
    assert tables.verdict(tables.table(cifar10)).startswith("degradation reproduced")
    assert cifar100.metrics.empty  # the partial run is in no mean
    assert tables.left_out(cifar100) == [
        "ResNet-56 seed 0 (resnet56s0datasetcifar100): interrupted, 1 of 3 epochs"
    ]
    r = cli("report", str(tmp_path))
    assert r.code == 0, r.err
    assert "final errors (mean ± std over seeds): dataset=cifar10" in r.out
    assert "dataset=cifar100: no run known to have completed" in r.out
    assert "9.00 ± 1.00" in r.out  # three seeds show their spread
    assert "left out: ResNet-56 seed 0 (resnet56s0datasetcifar100): interrupted, 1 of 3 epochs" in r.out
    assert "42.5" not in r.out
    partial = cli("report", str(tmp_path), "--where", "dataset=cifar100", "--include-partial")
    assert partial.code == 0 and "ResNet-56 *" in partial.out and "42.50" in partial.out
    assert "dataset=cifar10:" not in partial.out and "plain-20" not in partial.out
    bad = cli("report", str(tmp_path), "--where", "colour=red")
    assert bad.code == 2 and "--where takes KEY=VALUE with KEY one of run_id, arch" in bad.err
    drawn = cli("plot", str(tmp_path))
    assert drawn.code == 0
    assert (tmp_path / "figures" / "curves-dataset-cifar10.png").is_file()
    assert not (tmp_path / "figures" / "curves-dataset-cifar100.png").exists()  # nothing completed to draw
    # --where keeps one recipe, still named as one of the folder's two: its figures never overwrite
    # the plain names another --where would also write.
    (kept,) = analysis.groups(analysis.load(tmp_path, where=["dataset=cifar10"]))
    assert kept.heading == "dataset=cifar10" and kept.slug == "dataset-cifar10"


def test_recipes_share_axes_only_when_asked(cli, tmp_path: Path) -> None:
    write_results(tmp_path, {("plain", 20): [10.0, 12.0], ("plain", 56): [20.0, 22.0]}, recipe={"lr": 0.1})
    write_results(tmp_path, {("plain", 20): [30.0], ("plain", 56): [40.0]}, recipe={"lr": 0.01})
    fig = plot.recipes_figure(analysis.groups(analysis.load(tmp_path)))
    (ax,) = fig.axes
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()}
    assert lines == {"lr=0.1 (mean of 2 runs)": [11.0, 21.0], "lr=0.01 (1 run)": [30.0, 40.0]}
    assert cli("plot", str(tmp_path)).code == 0
    assert not (tmp_path / "figures" / "layers-recipes.png").exists()  # never unless asked
    assert cli("plot", str(tmp_path), "--compare-recipes").code == 0
    assert _png_size(tmp_path / "figures" / "layers-recipes.png") == (624, 552)
    alone = cli("plot", str(tmp_path), "--where", "lr=0.1", "--compare-recipes")
    assert (
        alone.code == 2 and "--compare-recipes needs plain or resnet runs of two or more recipes" in alone.err
    )


def test_runs_sharing_a_seed_number_are_still_counted(tmp_path: Path) -> None:
    write_results(tmp_path, {("plain", 20): [10.0]}, recipe={"lr": 0.1})
    write_results(tmp_path, {("plain", 20): [30.0]}, recipe={"lr": 0.05})
    found = analysis.groups(analysis.load(tmp_path))
    assert [g.heading for g in found] == ["lr=0.1", "lr=0.05"]
    assert [float(tables.table(g)["final_train_error_mean"].iloc[0]) for g in found] == [10.0, 30.0]


def test_the_verdict_says_not_enough_evidence_when_the_rise_is_within_the_noise(tmp_path: Path) -> None:
    # plain rises 1.5 points; each net's three seeds spread by 3 points (std 3): noise wins.
    write_results(tmp_path, {("plain", 20): [7.0, 10.0, 13.0], ("plain", 56): [8.5, 11.5, 14.5],
                             ("resnet", 20): [7.0, 10.0, 13.0], ("resnet", 56): [7.0, 10.0, 13.0]})  # fmt: skip
    nets = tables.table(only(tmp_path))
    assert tables.threshold(nets) == (pytest.approx(6.0), 3)
    assert tables.verdict(nets) == (
        "not enough evidence: the plain rise (1.5 points) is within the seed-to-seed noise: plain training "
        "error stays level with depth (20: 10.0% -> 56: 11.5%), ResNet's stays level (20: 10.0% -> 56: 10.0%); "
        "3 or more seeds per net, so a change counts beyond twice their pooled std (6.0 points) "
        "(3 epochs may be too short: the paper trains 164)"
    )
    clear = tmp_path / "clear"
    clear.mkdir()
    write_results(clear, THREE)
    assert tables.verdict(tables.table(only(clear))).endswith(
        "3 or more seeds per net, so a change counts beyond twice their pooled std (2.0 points)"
    )


def test_a_warmed_up_net_is_labelled_where_its_recipe_warms_up_only_some(tmp_path: Path) -> None:
    write_results(tmp_path, {("resnet", 56): [8.0]}, recipe={"warmup": False})
    write_results(tmp_path, {("resnet", 110): [7.0]}, recipe={"warmup": True})
    (group,) = analysis.groups(analysis.load(tmp_path))  # one recipe: warmup=auto decides per depth
    assert sorted(set(group.metrics["label"])) == ["ResNet-110 (warm-up)", "ResNet-56"]


def test_a_net_run_with_and_without_warm_up_is_never_one_net(cli, tmp_path: Path) -> None:
    # Two sweeps into one folder, --warmup always and --warmup none: two recipes, each net once in each.
    write_results(tmp_path / "mine", THREE, recipe={"warmup": True})
    write_results(tmp_path / "mine", {k: [v[0] + 5.0] for k, v in THREE.items()}, recipe={"warmup": False})
    write_results(tmp_path / "mine", {("vgg16", 16): [30.0]}, recipe={"warmup": False})  # never warmed up
    warm, cold = analysis.groups(analysis.load(tmp_path / "mine"))
    assert (warm.heading, cold.heading) == ("warmup=True", "warmup=False")
    assert tables.table(warm)["seeds"].tolist() == [3, 3, 3, 3, 1]  # the classic net joins both
    assert tables.table(cold)["final_train_error_mean"].tolist() == [15.0, 25.0, 14.0, 13.0, 30.0]
    # A reference warmed up where these runs were not is another recipe: refused, naming the nets.
    write_results(tmp_path / "ref", THREE, recipe={"warmup": True})
    refused = cli("report", str(tmp_path / "mine"), "--reference", str(tmp_path / "ref"))
    assert refused.code == 2
    assert "warm-up of ResNet-20, ResNet-56, plain-20, plain-56" in refused.err


def test_runs_missing_from_runs_csv_have_an_unknown_recipe_and_status(cli, tmp_path: Path) -> None:
    write_results(tmp_path, KNOWN)
    (tmp_path / results.RUNS).unlink()
    group = only(tmp_path)  # one recipe, all settings but the net's and data's unknown
    drawn = cli("plot", str(tmp_path / "metrics.csv"))
    assert drawn.code == 2 and "--include-partial draws them" in drawn.err
    for form in ("markdown", "csv"):  # nothing to print is said, never an empty success
        empty = cli("report", str(tmp_path), "--format", form)
        assert empty.code == 2 and "--include-partial reports them" in empty.err and not empty.out
    assert group.settings["epochs"] == "" and group.settings["lr"] == ""
    assert group.metrics.empty and len(tables.left_out(group)) == 8
    assert tables.left_out(group)[0] == "plain-20 seed 0 (plain20s0): unknown status, 3 epochs"
    nets = tables.table(only(tmp_path, include_partial=True)).set_index("label")
    assert nets.loc["plain-56 *", "final_train_error_mean"] == pytest.approx(21.0)
    # Beside recorded runs they are a recipe of their own, never in the recorded runs' means.
    net = {"family": "cifar", "width": 16, "shortcut": "A", "norm": "bn", "activation": "relu"}
    write_results(tmp_path, {("plain", 20): [30.0]}, recipe={**net, "dataset": "cifar10", "epochs": 3})
    recorded, unknown = analysis.groups(analysis.load(tmp_path), include_partial=True)
    assert unknown.heading == "recipe not recorded (runs missing from runs.csv)"
    assert tables.table(recorded)["final_train_error_mean"].tolist() == [30.0]
    # Unrecorded runs of two datasets: two recipes, told apart by what metrics.csv says.
    write_results(tmp_path / "two", KNOWN)
    write_results(tmp_path / "two", {("plain", 20): [50.0]}, recipe={"dataset": "cifar100"})
    (tmp_path / "two" / results.RUNS).unlink()
    headings = [g.heading for g in analysis.groups(analysis.load(tmp_path / "two"), include_partial=True)]
    assert headings == [
        f"dataset={d}, recipe not recorded (runs missing from runs.csv)" for d in ("cifar10", "cifar100")
    ]
    # A folder whose runs are left out still draws its diagnostics, and says nothing is left to draw.
    (tmp_path / "two" / "diagnostics").mkdir()
    shutil.copy(
        ROOT / "results" / "reference" / "start" / "diagnostics" / "start.csv",
        tmp_path / "two" / "diagnostics",
    )
    assert [p.name for p in plot.write_all(tmp_path / "two", tmp_path / "figs")] == ["start.png"]


# --- the course's picture, and reference results -------------------------------------------------


def test_layers_figure_draws_the_mean_the_runs_and_the_reference(tmp_path: Path) -> None:
    write_results(tmp_path / "mine", THREE)
    write_results(tmp_path / "ref", {k: [v[0] + 1.0, v[2] - 1.0] for k, v in THREE.items()})
    mine, ref = only(tmp_path / "mine"), only(tmp_path / "ref")
    fig = plot.layers_figure(mine, "train", reference=ref)
    plain, resnet = fig.axes
    assert (plain.get_title(), resnet.get_title()) == ("plain", "ResNet")
    assert plain.get_xlabel() == "number of layers" and plain.get_ylabel() == "final training error (%)"
    lines = {ln.get_label(): ln for ln in plain.get_lines()}
    mean = lines["plain, mean of 3 runs"]
    np.testing.assert_allclose(mean.get_xdata(), [20, 56])
    np.testing.assert_allclose(mean.get_ydata(), [11.0, 21.0])
    np.testing.assert_allclose(sorted(lines["each run"].get_ydata()), [10, 11, 12, 20, 21, 22])
    np.testing.assert_allclose(lines["reference, mean of 2 runs, ±1 std"].get_ydata(), [11.0, 21.0])
    band = plain.collections[0].get_paths()[0].vertices  # the reference band, drawn first (behind)
    assert band[:, 1].max() == pytest.approx(21.0 + np.std([21.0, 21.0], ddof=1) + 0.0)
    test = plot.layers_figure(mine, "test", paper=True)
    stars = next(ln for ln in test.axes[1].get_lines() if ln.get_label().startswith("He et al."))
    np.testing.assert_allclose(stars.get_ydata(), [8.75, 7.51, 7.17, 6.97, 6.43])
    assert test.axes[0].get_ylabel() == "final test error (%)"


def test_plot_draws_layers_png_with_one_to_five_seeds(cli, tmp_path: Path) -> None:
    for seeds in (1, 5):
        folder = tmp_path / f"s{seeds}"
        finals = {
            (a, d): [10.0 + d / 10 + s for s in range(seeds)]
            for a in ("plain", "resnet")
            for d in (8, 14, 20, 32)
        }
        write_results(folder, finals)
        r = cli("plot", str(folder), "--metric", "test", "--paper")
        assert r.code == 0, r.err
        assert _png_size(folder / "figures" / "layers.png") == (1248, 528)
    assert cli("plot", str(tmp_path / "s1"), "--metric", "loss").code == 2


def test_report_against_a_reference_of_the_same_recipe_and_refusing_another(cli, tmp_path: Path) -> None:
    write_results(tmp_path / "mine", THREE, recipe={"dataset": "cifar10", "precision": "bf16"})
    write_results(tmp_path / "ref", {k: [v[0] + 1.0, v[2] - 1.0] for k, v in THREE.items()},
                  recipe={"dataset": "cifar10", "precision": "bf16"})  # fmt: skip
    r = cli("report", str(tmp_path / "mine"), "--reference", str(tmp_path / "ref"))
    assert r.code == 0, r.err
    # plain-56: mine 21.0; the reference's runs 21.0 and 21.0 have no spread to compare with.
    assert "21.00 ± 0.00 (2 runs)" in r.out and "no spread to compare" in r.out
    nets = tables.with_reference(tables.table(only(tmp_path / "mine")), only(tmp_path / "ref"))
    assert nets["ref_mean"].tolist() == [11.0, 21.0, 10.0, 9.0]
    write_results(tmp_path / "spread", {k: [v[0], v[2]] for k, v in THREE.items()},
                  recipe={"dataset": "cifar10", "precision": "bf16"})  # fmt: skip
    spread = tables.with_reference(tables.table(only(tmp_path / "mine")), only(tmp_path / "spread"))
    assert spread["ref_z"].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0])  # same means, std sqrt(2)
    # Trained on a CPU without fast bf16: compared across precision alone, and said so.
    write_results(tmp_path / "fp32", THREE, recipe={"dataset": "cifar10", "precision": "fp32"})
    across = cli("report", str(tmp_path / "mine"), "--reference", str(tmp_path / "fp32"))
    assert across.code == 0, across.err
    assert "compared with the fp32 reference: the one difference a reference may have" in across.out
    assert (
        "compared with the fp32 reference"
        in cli(
            "report", str(tmp_path / "mine"), "--reference", str(tmp_path / "fp32"), "--format", "markdown"
        ).out
    )
    as_csv = cli("report", str(tmp_path / "mine"), "--reference", str(tmp_path / "fp32"), "--format", "csv")
    rows = pd.read_csv(io.StringIO(as_csv.out))
    assert rows["reference"].tolist() == ["fp32 reference"] * 4  # what the ref_ columns compare with
    fig = plot.layers_figure(only(tmp_path / "mine"), reference=only(tmp_path / "fp32"))
    assert "fp32 reference, mean of 3 runs, ±1 std" in [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert cli("plot", str(tmp_path / "mine"), "--reference", str(tmp_path / "fp32")).code == 0
    # Any other difference is refused, precision or not.
    write_results(tmp_path / "other", THREE, recipe={"dataset": "cifar100", "precision": "fp32"})
    for command in ("report", "plot"):
        refused = cli(command, str(tmp_path / "mine"), "--reference", str(tmp_path / "other"))
        assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1
        assert (
            "holds no run of this recipe" in refused.err
            and "dataset cifar10 here, cifar100 there" in refused.err
        )


def test_durations_are_rounded_to_their_last_unit() -> None:
    from resdepth.progress import duration

    assert [duration(s) for s in (41.6, 185, 3599.4, 3599.6, 7_620, 57_400, 57_330)] == [
        "42 s", "3 min 05 s", "59 min 59 s", "1 h 00 min", "2 h 07 min", "15 h 57 min", "15 h 56 min",
    ]  # fmt: skip
