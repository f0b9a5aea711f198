"""`resdepth diagnose` and the model options it needs, checked on small nets with known answers."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resdepth import diagnose as dg
from resdepth import results
from resdepth.checkpoints import save_checkpoint
from resdepth.config import SweepConfig
from resdepth.data.store import load
from resdepth.diagnose.registry import read, write
from resdepth.diagnose.summaries import lesion as lesion_line
from resdepth.models import NetSpec, build_model
from resdepth.models.summary import count_params
from resdepth.results import EpochRecord
from resdepth.runs import expand, milestones_text
from resdepth.train import train_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic() -> dg.Inputs:
    return dg.inputs(load("synthetic").split(None, None, 0, None))


def trained(arch: str, depth: int = 14, epochs: int = 3) -> dg.Net:
    """A net trained on the synthetic task as a sweep would train it (same seed, same init)."""
    data = load("synthetic").split(None, None, 0, None)
    cfg = expand(SweepConfig(arch=[arch], depth=[depth], dataset="synthetic", epochs=epochs, batch_size=100,
                             warmup="always"), {"synthetic": 2000})[0]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        train_run(cfg, data, torch.device("cpu"), Path(folder) / "c.pt", lambda r: None)
        state = torch.load(Path(folder) / "c.pt", weights_only=True)
    net = dg.fresh(NetSpec(arch, depth), 0)
    net.model.load_state_dict(state["model"])
    net.state = f"epoch {epochs}"
    return net


# --- model options ----------------------------------------------------------------------------


def test_norm_none_drops_exactly_the_batchnorm_parameters() -> None:
    # ResNet-20 has 19 BN layers over 16/32/64 channels: 2 * (16 * 7 + 32 * 6 + 64 * 6) = 1,376 parameters.
    assert count_params(build_model(NetSpec("resnet", 20))) == 269_722
    bare = build_model(NetSpec("resnet", 20, norm="none"))
    assert count_params(bare) == 269_722 - 1_376
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bare.modules())


@pytest.mark.parametrize(("activation", "kind"), [("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)])
def test_activation_replaces_every_relu(activation: str, kind: type[nn.Module]) -> None:
    model = build_model(NetSpec("plain", 8, activation=activation))
    assert sum(isinstance(m, kind) for m in model.modules()) == 1 + 3  # the stem and one per block
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_run_id_keeps_old_ids_and_changes_with_norm_and_activation() -> None:
    cfg = dict(
        arch=["resnet"],
        depth=[8],
        dataset="synthetic",
        epochs=2,
        seeds=[0],
        train_subset=1000,
        precision="fp32",
    )
    (paper,) = expand(SweepConfig(**cfg), {"synthetic": 1000})  # type: ignore[arg-type]
    assert paper.run_id == "88d7c447a85b"  # the id this run had before the options existed
    ids = {expand(SweepConfig(**cfg, norm=n, activation=a), {"synthetic": 1000})[0].run_id  # type: ignore[arg-type]
           for n in ("bn", "none") for a in ("relu", "tanh", "sigmoid")}  # fmt: skip
    assert len(ids) == 6 and paper.run_id in ids


def test_sweep_records_the_options_in_both_csvs(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = cli("sweep", "--dataset", "synthetic", "--arch", "plain", "--depth", "8", "--epochs", "1",
            "--norm", "none", "--activation", "tanh", "--out", str(out))  # fmt: skip
    assert r.code == 0, r.err
    m = results.read_metrics(out)
    assert (m["norm"].tolist(), m["activation"].tolist()) == (["none"], ["tanh"])
    assert "plain-8 (no BN, tanh)" in r.out
    bad = cli("sweep", "--dataset", "synthetic", "--norm", "layer", "--out", str(tmp_path / "b"))
    assert bad.code == 2 and "unknown norm 'layer'; valid: bn, none" in bad.err


# --- the four measurements --------------------------------------------------------------------


def test_gradients_vanish_with_sigmoid_and_no_bn_but_not_with_bn(synthetic: dg.Inputs) -> None:
    def ratio(spec: NetSpec) -> float:
        rows = dg.grad_norms(dg.fresh(spec, 0), synthetic.train_x, synthetic.train_y)
        assert [r["layer"] for r in rows] == list(range(1, 15))  # 13 convs and the classifier
        return float(rows[0]["grad_norm"]) / float(rows[-1]["grad_norm"])  # type: ignore[arg-type]

    assert ratio(NetSpec("plain", 14)) > 0.1
    assert ratio(NetSpec("resnet", 14)) > 0.1
    assert ratio(NetSpec("plain", 14, norm="none", activation="sigmoid")) < 1e-6


def test_responses_are_the_std_after_bn_of_every_3x3_layer(synthetic: dg.Inputs) -> None:
    net = dg.fresh(NetSpec("resnet", 20), 0)
    rows = dg.responses(net, synthetic.test_x)
    assert len(rows) == 19  # the stem and two per block
    assert [r["name"] for r in rows[:3]] == ["stem", "stage1.0.bn1", "stage1.0.bn2"]
    with torch.no_grad():
        stem = net.model.stem[1](net.model.stem[0](synthetic.test_x)).double()
    assert rows[0]["std"] == pytest.approx(float(stem.std(unbiased=False)), rel=1e-6)


def test_identity_is_exact_for_resnets_and_impossible_for_plain_nets(synthetic: dg.Inputs) -> None:
    for spec in (NetSpec("resnet", 8), NetSpec("resnet", 8, norm="none")):
        (row,) = dg.identity(dg.fresh(spec, 0), synthetic.test_x, synthetic.test_y)
        assert row["bitwise_equal"] is True and row["max_abs_diff"] == 0.0 and row["grown_to"] == 14
    (plain,) = dg.identity(dg.fresh(NetSpec("plain", 8), 0), synthetic.test_x, synthetic.test_y)
    assert plain["max_abs_diff"] > 0.01
    assert plain["grown_output_spread"] == 0.0  # a zeroed plain block outputs nothing of its input


def test_scale_is_the_std_of_the_stream_and_the_logits_in_train_mode(synthetic: dg.Inputs) -> None:
    net = dg.fresh(NetSpec("resnet", 8), 0)
    rows = dg.scale(net, synthetic.train_x, synthetic.train_y)
    assert [r["name"] for r in rows] == ["stem", "stage1", "stage2", "stage3", "pool", "logits"]
    # By hand: the same forward, stage by stage, in train mode, on the same 4 batches of 128.
    model = copy.deepcopy(net.model).train()
    stds: dict[str, list[float]] = {}
    losses = []
    with torch.no_grad():
        for i in range(0, 512, 128):
            x, y = synthetic.train_x[i : i + 128], synthetic.train_y[i : i + 128]
            h = model.stem(x)
            stds.setdefault("stem", []).append(float(h.double().std()))
            for k, stage in enumerate(model.stages(), start=1):
                h = stage(h)
                stds.setdefault(f"stage{k}", []).append(float(h.double().std()))
            logits = model.fc(torch.flatten(model.pool(h), 1))
            stds.setdefault("logits", []).append(float(logits.double().std()))
            losses.append(float(F.cross_entropy(logits, y)))
    for r in rows:
        if r["name"] in stds:
            assert r["std"] == pytest.approx(sum(stds[str(r["name"])]) / 4, rel=1e-6), r["name"]
    assert rows[0]["loss"] == pytest.approx(sum(losses) / 4, rel=1e-6)
    # A block whose branch is zero adds nothing: the stream leaves stage 1 as the stem made it.
    for block in net.model.stage1:
        block.zero_residual_()
    zeroed = dg.scale(net, synthetic.train_x, synthetic.train_y)
    assert zeroed[1]["std"] == pytest.approx(zeroed[0]["std"], rel=1e-12)


def test_the_residual_stream_and_the_logits_grow_with_depth_at_initialisation(synthetic: dg.Inputs) -> None:
    def at(spec: NetSpec) -> dict[str, float]:
        rows = dg.scale(dg.fresh(spec, 0), synthetic.train_x, synthetic.train_y)
        return {str(r["name"]): float(r["std"]) for r in rows} | {"loss": float(rows[0]["loss"])}  # type: ignore[arg-type]

    r8, r56, p56 = at(NetSpec("resnet", 8)), at(NetSpec("resnet", 56)), at(NetSpec("plain", 56))
    assert r56["stage3"] > 1.5 * r8["stage3"]  # 27 blocks add more than 3
    assert r56["logits"] > r8["logits"] and r56["loss"] > r8["loss"]
    assert p56["stage3"] < r56["stage3"] / 2  # a plain net's stream is renormalised by every BN


@pytest.mark.slow
def test_correlations_of_gradients_tell_smooth_from_white_noise() -> None:
    from resdepth.diagnose.measures import LINE_POINTS, correlations

    t = torch.linspace(0, 1, LINE_POINTS).reshape(-1, 1)
    noise = torch.randn(LINE_POINTS, 1, generator=torch.Generator().manual_seed(0))
    r_smooth, r_white, r_brown = (dict(correlations(g)) for g in (torch.sin(6 * t), noise, noise.cumsum(0)))
    assert r_smooth[1] > 0.99 and abs(r_white[1]) < 0.15 and r_brown[1] > 0.9
    # Vectors (an image's gradients): the same vector everywhere is r = 1; independent ones, about 0.
    same = torch.randn(1, 3072).expand(LINE_POINTS, -1)
    assert dict(correlations(same))[1] == pytest.approx(1.0)
    assert abs(dict(correlations(torch.randn(LINE_POINTS, 3072)))[1]) < 0.01


def test_shattered_gradients_reproduce_balduzzi_et_al_toy() -> None:
    """Their Fig. 1 and 2: a rectifier net's input gradients decorrelate with depth about like 2^-L,
    white noise by 24 layers; a ResNet's with BN stay correlated (brown noise), falling slowly."""
    from resdepth.diagnose.measures import toy_shatter

    def r(depth: int, residual: bool) -> float:
        return sum(dict(toy_shatter(depth, residual, seed=s))[1] for s in range(3)) / 3

    plain = {d: r(d, False) for d in (1, 4, 8, 24)}
    resnet = {d: r(d, True) for d in (1, 4, 8, 24, 50)}
    assert plain[1] > 0.9 and plain[4] < 0.9 and plain[8] < 0.6 and abs(plain[24]) < 0.2
    assert resnet[24] > 0.45 and resnet[50] > 0.35 and resnet[50] < resnet[8] < resnet[1]
    assert all(resnet[d] > plain[d] for d in (4, 8, 24))


def test_a_plain_net_shatters_its_gradients_on_images_and_a_resnet_does_not(synthetic: dg.Inputs) -> None:
    """At initialisation, on a line between two images: ResNet-20's gradients stay alike from point
    to point, plain-20's much less, and each decorrelates with distance along the line."""
    from resdepth.diagnose.measures import shatter

    rows = {
        arch: {
            int(r["lag"]): float(r["correlation"])
            for r in shatter(dg.fresh(NetSpec(arch, 20), 0), synthetic.test_x)
        }  # type: ignore[arg-type]
        for arch in ("plain", "resnet")
    }
    assert rows["resnet"][1] > 0.8 and rows["plain"][1] < rows["resnet"][1] - 0.2
    for r in rows.values():
        assert r[1] > r[8] > r[64]


def test_paths_of_each_length_are_counted_binomially_and_followed_one_at_a_time(synthetic: dg.Inputs) -> None:
    """Veit et al.'s path lengths: C(n, k) paths of length k, 2^n in all; gating the backward pass
    to one path leaves the forward pass unchanged; with every residual branch zeroed, only the path
    through no branch (k = 0) carries a gradient to the input."""
    from resdepth.diagnose.measures import PATH_BATCH, PATH_SAMPLES, _path_gradient, one_path, paths

    net = dg.fresh(NetSpec("resnet", 14), 0)  # 6 blocks, 2 of them option-A downsampling
    x, y = synthetic.train_x, synthetic.train_y
    model = copy.deepcopy(net.model).train()
    with torch.no_grad():
        whole = model(x[:32])
        with one_path(model, {0, 3}):
            gated = model(x[:32])
    assert torch.equal(whole, gated)
    rows = pd.DataFrame(paths(net, x, y))
    counts = rows.groupby("k")["paths"].first()
    assert list(counts.index) == list(range(7)) and list(counts) == [1, 6, 15, 20, 15, 6, 1]
    assert counts.sum() == 2**6 and (rows.groupby("k").size() == PATH_SAMPLES).all()
    # Paired draws: the one path through no branch and the one through all are each measured once
    # per draw, on that draw's batch, so the two ends of a draw share their images.
    ends = rows[rows["k"].isin([0, 6])].pivot(index="sample", columns="k", values="grad_norm")
    third = slice(3 * PATH_BATCH, 4 * PATH_BATCH)
    assert ends.loc[3, 0] == pytest.approx(_path_gradient(model, set(), x[third], y[third]), rel=1e-6)
    assert ends.loc[3, 6] == pytest.approx(_path_gradient(model, set(range(6)), x[third], y[third]), rel=1e-6)
    assert ends.loc[3, 0] != ends.loc[4, 0]  # another draw, other images
    for block in net.model.modules():
        if hasattr(block, "zero_residual_"):
            block.zero_residual_()
    zeroed = pd.DataFrame(paths(net, x, y)).groupby("k")["grad_norm"].max()
    assert zeroed[0] > 0 and (zeroed[1:] == 0).all()
    assert paths(dg.fresh(NetSpec("plain", 14), 0), x, y) == []  # one path: nothing to compare


def test_a_landscape_direction_is_filter_normalised_and_zero_for_biases_and_bn() -> None:
    from resdepth.diagnose.measures import direction

    model = dg.fresh(NetSpec("resnet", 20), 0).model
    d = direction(model, torch.Generator().manual_seed(0))
    for name, p in model.named_parameters():
        if p.dim() == 1:  # BN scales and shifts, the classifier's bias
            assert not d[name].any(), name
        else:  # each conv filter and each classifier row: its weights' norm, another direction
            assert torch.allclose(
                d[name].flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5
            )
            assert not torch.allclose(d[name], p.detach())


def test_a_landscape_of_a_linear_model_has_its_known_shape() -> None:
    """One input, two classes, weights (1, -1): each row of a filter-normalised direction is +1 or
    -1, so along it the logit margin is 2 + (d0 - d1) a, and the loss log(1 + exp(-margin))."""
    from resdepth.diagnose.measures import direction, loss_and_error, moved

    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    x, y = torch.ones(1, 1), torch.zeros(1, dtype=torch.long)
    d = direction(model, torch.Generator().manual_seed(3))
    signs = d["weight"].flatten()
    assert set(signs.abs().tolist()) == {1.0}
    for a in (-1.0, -0.5, 0.0, 0.5, 1.0):
        with moved(model, [(a, d)]):
            loss, _ = loss_and_error(model, x, y)
        margin = 2 + float(signs[0] - signs[1]) * a
        assert loss == pytest.approx(float(F.softplus(torch.tensor(-margin))), rel=1e-6)
    assert torch.equal(model.weight, torch.tensor([[1.0], [-1.0]]))  # put back exactly


def test_a_landscape_changes_nothing_of_the_net_and_walks_from_init_to_trained(
    synthetic: dg.Inputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdepth.diagnose import measures

    monkeypatch.setattr(measures, "LANDSCAPE_POINTS", 5)
    monkeypatch.setattr(measures, "LANDSCAPE_GRID", 3)
    net = trained("resnet", depth=8, epochs=1)
    net.start = dg.fresh(NetSpec("resnet", 8), 0).model
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    rows = pd.DataFrame(measures.landscape(net, synthetic.train_x, synthetic.train_y))
    after = net.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics alike
    assert rows.groupby("kind").size().to_dict() == {"1d": 5, "2d": 9, "path": 5}
    assert set(rows["direction_seed"]) == {0} and set(rows["images"]) == {min(500, len(synthetic.train_y))}
    one = rows[rows["kind"] == "1d"].set_index("alpha")["loss"]
    path = rows[rows["kind"] == "path"].set_index("alpha")["loss"]
    assert one[0.0] < min(one[-1.0], one[1.0])  # a trained net sits in a valley
    # Along the path BN normalises with the statistics of the net at that point, on these images: at
    # t = 0 the fresh net's loss as a train-mode step on them sees it, at t = 1 the trained net's.
    x, y = synthetic.train_x[:500], synthetic.train_y[:500]
    with torch.no_grad():
        first_step = float(F.cross_entropy(copy.deepcopy(net.start).train()(x), y))
    assert path[0.0] == pytest.approx(first_step, rel=1e-3)
    ends = copy.deepcopy(net.model)
    measures.set_bn_statistics(ends, x)
    assert path[1.0] == pytest.approx(measures.loss_and_error(ends, x, y)[0], rel=1e-5)
    assert path[1.0] == pytest.approx(one[0.0], rel=0.05)  # its own statistics, close to its running ones
    from resdepth.diagnose.summaries import landscape

    line = landscape(rows).iloc[0]
    assert line["loss"] == pytest.approx(one[0.0]) and line["loss near |α| = 0.5"] == pytest.approx(
        (one[-0.5] + one[0.5]) / 2
    )
    from resdepth.diagnose.figures import landscape_figure

    two = pd.concat([rows.assign(**net.key), rows.assign(**{**net.key, "net": "plain-8", "arch": "plain"})])
    fig = landscape_figure(two)  # a panel for α, one for t, a contour plot per net, nothing else drawn
    drawn = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_xlabel()[:2] for ax in drawn] == ["α ", "t ", "α", "α"]
    assert [ax.get_title() for ax in drawn[2:]] == ["ResNet-8 (epoch 1)", "plain-8 (epoch 1)"]
    assert [len(ax.get_lines()) for ax in drawn[:2]] == [2, 2]


def test_lesions_on_trained_nets(synthetic: dg.Inputs) -> None:
    resnet, plain = trained("resnet"), trained("plain")
    rows = pd.DataFrame(dg.lesions(resnet, synthetic.test_x, synthetic.test_y))
    intact = float(rows.loc[rows["kind"] == "intact", "error"].iloc[0])
    assert intact < 10.0
    single = rows[rows["kind"] == "single"]
    # ResNet-14's blocks 1-6, two a stage: the first of stages 2 and 3 downsample, a kind apart
    assert list(single["block"]) == [1, 2, 4, 6]
    assert list(rows.loc[rows["kind"] == "downsampling", "block"]) == [3, 5]
    # Smooth: half its single deletions, downsampling blocks included, cost a ResNet little.
    assert (rows.loc[rows["kind"].isin(["single", "downsampling"]), "error"] < intact + 10).sum() >= 3
    p = pd.DataFrame(dg.lesions(plain, synthetic.test_x, synthetic.test_y))
    p_single = p[p["kind"] == "single"]
    assert list(p_single["block"]) == [1, 2, 4, 6]  # a plain net loses the same blocks, no others
    # The summary's mean over single deletions is over those blocks alone, in both nets.
    line = lesion_line(pd.concat([rows, p]))
    assert line.loc[(resnet.label, resnet.state), "mean single"] == pytest.approx(single["error"].mean())
    assert pd.isna(line.loc[(plain.label, plain.state), "mean downsampling"])
    assert p_single["error"].max() >= 85.0  # a plain net without one of its blocks is at chance
    # Deleting blocks whose residual branch is zero is no lesion at all: the grown net keeps its error.
    big = dg.grown(resnet)
    every = dg.blocks(big)
    assert dg.error(big, synthetic.test_x, synthetic.test_y) == intact
    with dg.deleted(big, [every[2], every[5], every[8]]):  # the last block of each stage
        assert dg.error(big, synthetic.test_x, synthetic.test_y) == intact
    with dg.deleted(big, [every[1]]):
        assert dg.error(big, synthetic.test_x, synthetic.test_y) != intact


# --- the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_diagnose_a_sweep_writes_csvs_and_figures_that_plot_redraws(cli, tmp_path: Path) -> None:
    out = tmp_path / "r"
    sweep = cli("sweep", "--dataset", "synthetic", "--depth", "8", "--epochs", "1", "--out", str(out))
    assert sweep.code == 0, sweep.err
    r = cli("diagnose", str(out), "--test-subset", "200")
    assert r.code == 0, r.err
    tables = read(out)
    assert set(tables) == {"grads", "responses", "lesion", "identity", "scale", "shatter", "paths"}
    for name in ("grads", "scale", "shatter"):  # at init and trained
        assert set(tables[name]["state"]) == {"init", "epoch 1"}
    assert set(tables["identity"]["state"]) == {"epoch 1"}
    assert set(tables["grads"]["net"]) == {"plain-8", "ResNet-8"}
    for name in ("grads", "responses", "lesion", "identity", "scale", "shatter", "paths"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
    again = cli("plot", str(out))
    assert again.code == 0 and "curves.png" in again.out and "lesion.png" in again.out
    plain = tables["shatter"][tables["shatter"]["arch"] == "plain"]
    only = cli("diagnose", str(out), "--arch", "resnet", "--depth", "8", "--seeds", "0", "--what", "shatter")
    assert only.code == 0, only.err
    assert "plain-8" not in only.out and "ResNet-8" in only.out
    shatter = read(out)["shatter"]  # the ResNet's rows measured again, the plain net's kept
    pd.testing.assert_frame_equal(
        shatter[shatter["arch"] == "plain"].reset_index(drop=True), plain.reset_index(drop=True)
    )
    assert len(shatter) == len(tables["shatter"])


def test_a_damaged_number_in_a_diagnostics_csv_is_an_error_naming_its_line(cli, tmp_path: Path) -> None:
    shipped = (ROOT / "results" / "reference" / "init" / "diagnostics" / "shatter.csv").read_text()
    lines = shipped.splitlines(keepends=True)
    (tmp_path / "diagnostics").mkdir()
    damaged = [*lines[:2], lines[2].replace(",0.877726\n", ",0.87x726\n"), *lines[3:]]
    assert damaged != lines
    (tmp_path / "diagnostics" / "shatter.csv").write_text("".join(damaged))
    r = cli("plot", str(tmp_path), "--out", str(tmp_path / "figures"))
    assert r.code == 2, r.err
    message = f"{tmp_path / 'diagnostics' / 'shatter.csv'} line 3: correlation is '0.87x726', not a number"
    assert message in r.err and len(r.err.strip().splitlines()) == 1


def test_diagnose_fresh_nets_as_json(cli, tmp_path: Path) -> None:
    r = cli("diagnose", "--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--what", "identity",
            "--out", str(tmp_path), "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert '"bitwise_equal": true' in r.out
    assert (tmp_path / "diagnostics" / "identity.csv").is_file()
    assert not (tmp_path / "diagnostics" / "grads.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--what", "grads,saliency"],
            "--what takes grads, responses, lesion, identity, scale, shatter, paths, landscape, start; got 'saliency'",
        ),
        (["--arch", "vgg16"], "diagnose measures plain and resnet nets, not 'vgg16'"),
        (["--depth", "9"], "depth 9 cannot be built"),
        (["--activation", "gelu"], "unknown activation 'gelu'"),
        (["--test-subset", "0"], "--test-subset must be a positive number"),
        (["--seeds", "-1"], "--seeds are whole numbers from 0 to 4294967295, got -1"),
        (["--seeds", "0,4294967296"], "--seeds are whole numbers from 0 to 4294967295, got 4294967296"),
    ],
)
def test_bad_diagnose_input_is_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    r = cli("diagnose", "--dataset", "synthetic", "--out", str(tmp_path / "o"), *args)
    assert r.code == 2 and message in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_diagnose_refuses_folders_without_runs_or_checkpoints(cli, tmp_path: Path) -> None:
    r = cli("diagnose", str(tmp_path))
    assert r.code == 2 and "has no runs.csv" in r.err
    (cfg,) = expand(SweepConfig(arch=["resnet"], depth=[8], dataset="synthetic"), {"synthetic": 2000})
    results.write_run(
        tmp_path, {**cfg.fields(), "run_id": cfg.run_id, "milestones": milestones_text(cfg.milestones)}
    )
    r = cli("diagnose", str(tmp_path))
    assert r.code == 2 and "has no weights or checkpoint of a plain or resnet run to diagnose" in r.err
    r = cli("diagnose", str(tmp_path), "--arch", "plain", "--seeds", "0,1")
    assert (
        r.code == 2
        and "has no weights or checkpoint of a plain or resnet run of arch plain and seed 0, 1" in r.err
    )
    r = cli("diagnose", str(tmp_path), "--seeds", ",")
    assert r.code == 2 and "--seeds needs at least one value" in r.err
    # Weights of another net under the run's name: skipped with a warning, never loaded into it.
    bad = {"run_id": cfg.run_id, "epoch": 1, "iteration": 20, "model": {"fc.weight": torch.zeros(3, 3)}}
    save_checkpoint(results.run_file(tmp_path, results.WEIGHTS, cfg.run_id), bad)
    with pytest.warns(UserWarning, match=f"skipping run {cfg.run_id}: its weights do not fit ResNet-8"):
        r = cli("diagnose", str(tmp_path))
    assert r.code == 2 and "has no weights or checkpoint of a plain or resnet run to diagnose" in r.err
    r = cli("diagnose", str(tmp_path), "--out", str(tmp_path / "elsewhere"))
    assert r.code == 2 and "--out is for fresh nets" in r.err


def test_measuring_some_runs_again_replaces_their_rows_where_they_stood_and_keeps_every_other_row(
    tmp_path: Path,
) -> None:
    key = {"net": "ResNet-20", "arch": "resnet", "depth": 20, "norm": "bn", "activation": "relu", "seed": 0}

    def rows(run_id: str, state: str, correlation: float) -> list[dict[str, object]]:
        return [
            {**key, "state": state, "run_id": run_id, "lag": lag, "correlation": correlation}
            for lag in (1, 2)
        ]

    path = write(
        tmp_path, "shatter", rows("a", "init", 0.5) + rows("a", "epoch 5", 0.25) + rows("b", "epoch 9", 1 / 3)
    )
    b_lines = [line for line in path.read_text().splitlines() if ",b," in line]
    write(tmp_path, "shatter", rows("a", "init", 0.5) + rows("a", "epoch 30", 0.75))  # run a, trained further
    table = read(tmp_path)["shatter"]
    assert list(zip(table["run_id"], table["state"], strict=True)) == [
        ("a", "init"), ("a", "init"), ("a", "epoch 30"), ("a", "epoch 30"), ("b", "epoch 9"), ("b", "epoch 9")
    ]  # fmt: skip
    assert [line for line in path.read_text().splitlines() if ",b," in line] == b_lines  # as written
    fresh = tmp_path / "fresh"  # fresh nets are no folder's runs: measured again, their file is new
    write(fresh, "shatter", rows("", "init", 0.5))
    write(fresh, "shatter", [{**r, "net": "plain-20", "arch": "plain"} for r in rows("", "init", 0.25)])
    assert set(read(fresh)["shatter"]["net"]) == {"plain-20"}


@pytest.mark.slow
def test_start_of_training_reports_the_loss_the_training_loop_sees(cli, tmp_path: Path) -> None:
    r = cli("diagnose", "--dataset", "synthetic", "--arch", "plain,resnet", "--depth", "8", "--seeds", "0,1",
            "--what", "start", "--iterations", "20", "--out", str(tmp_path))  # fmt: skip
    assert r.code == 0, r.err
    start = read(tmp_path)["start"]
    assert set(start["net"]) == {"plain-8", "ResNet-8"} and set(start["seed"]) == {0, 1}
    # 2,000 images at batch 128: 16 iterations an epoch, so a report at each epoch's end until 20.
    assert sorted(set(start["iteration"])) == [16, 32]
    assert set(start["lr"]) == {0.1}  # the paper's schedule: 164 epochs, no drop this early
    assert (tmp_path / "figures" / "start.png").stat().st_size > 10_000
    assert "its to loss < 2" in r.out
    # Each report over a whole epoch is that epoch's training loss, as a sweep logs it.
    (cfg,) = expand(
        SweepConfig(arch=["resnet"], depth=[8], dataset="synthetic", precision="fp32"), {"synthetic": 2000}
    )
    epochs: list[EpochRecord] = []
    with tempfile.TemporaryDirectory() as folder:
        train_run(
            cfg.replace(epochs=2),
            load("synthetic"),
            torch.device("cpu"),
            Path(folder) / "c.pt",
            epochs.append,
        )
    ours = start[(start["net"] == "ResNet-8") & (start["seed"] == 0)].sort_values("iteration")
    assert ours["loss"].iloc[0] == pytest.approx(epochs[0].train_loss, rel=1e-6)
    assert ours["error"].iloc[0] == pytest.approx(epochs[0].train_error)
    refused = cli("diagnose", str(tmp_path), "--what", "start")
    assert refused.code == 2 and "--what start trains fresh nets" in refused.err


def test_the_landscape_says_how_long_it_will_take_before_it_starts(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resdepth.diagnose import measures

    monkeypatch.setattr(measures, "LANDSCAPE_GRID", 3)
    r = cli("diagnose", "--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--what", "landscape",
            "--out", str(tmp_path))  # fmt: skip
    assert r.code == 0, r.err
    lines = r.err.splitlines()
    at = lines.index("measuring ResNet-8 seed 0 (init)")
    assert lines[at + 1].startswith(
        "measuring ResNet-8's landscape: 60 points on 500 images, about "
    )  # 51 + 9
    assert len(read(tmp_path)["landscape"]) == 60
    r = cli("diagnose", "--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--what", "paths",
            "--out", str(tmp_path))  # fmt: skip
    assert r.code == 0, r.err
    assert "measuring ResNet-8's paths: 128 gradients of 16 images, about " in r.err  # 3 blocks: (3 + 1) x 32


@pytest.mark.parametrize(
    ("name", "arch", "count"),
    [
        ("landscape", "resnet", 51 + 9),  # 1-D and a 3 x 3 plane, no path for a fresh net
        ("paths", "resnet", (3 + 1) * 32),  # ResNet-8's 3 blocks: k = 0..3, 32 draws each
        ("lesion", "plain", 1 + 1 + 8),  # intact, its one block that keeps the shape, k = 1 x 8 draws
    ],
)
def test_a_measurement_that_takes_a_while_ticks_once_a_row_up_to_its_total(
    synthetic: dg.Inputs, monkeypatch: pytest.MonkeyPatch, name: str, arch: str, count: int
) -> None:
    from resdepth.diagnose import measures
    from resdepth.diagnose.registry import measured

    monkeypatch.setattr(measures, "LANDSCAPE_GRID", 3)
    ticks: list[tuple[int, int]] = []
    rows = measured(name)(
        dg.fresh(NetSpec(arch, 8), 0), synthetic, lambda done, total: ticks.append((done, total))
    )
    assert len(rows) == count
    assert ticks == [(done, count) for done in range(1, count + 1)]


def test_bars_draw_on_a_terminal_and_nothing_elsewhere() -> None:
    import io

    from rich.console import Console

    from resdepth.progress import bars

    for terminal, shown, drawn in [(True, True, True), (True, False, False), (False, True, False)]:
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=100)
        with bars(console, shown) as step:
            for done in range(1, 4):
                step("ResNet-8 seed 0 (init): paths", done, 3)
                console.print("a line", highlight=False)  # the lines around the bars still print
        text = out.getvalue()
        assert text.count("a line") == 3
        assert ("ResNet-8 seed 0 (init): paths" in text) is drawn, (terminal, shown)


def test_a_tiny_gradient_is_written_as_measured_and_only_an_exact_zero_as_zero(tmp_path: Path) -> None:
    """A path through 27 trained branches carries a gradient of about 1e-12: the CSV must keep it, or
    the docs would call it an underflow (an exact 0, drawn at 1e-30) and its factor per branch 0."""
    key = {"net": "ResNet-56", "arch": "resnet", "depth": 56, "norm": "bn", "activation": "relu", "seed": 0}
    norms = [3.14159265e-9, 0.0, 0.0123456789, 12.3456789]
    rows = [
        {
            **key,
            "state": "epoch 30",
            "run_id": "a",
            "blocks": 27,
            "k": 27,
            "paths": 1,
            "sample": i,
            "grad_norm": g,
        }
        for i, g in enumerate(norms)
    ]
    path = write(tmp_path, "paths", rows)
    assert [line.rsplit(",", 1)[1] for line in path.read_text().splitlines()[1:]] == [
        "3.14159e-09", "0.0", "0.0123457", "12.345679"
    ]  # fmt: skip
    assert list(read(tmp_path)["paths"]["grad_norm"]) == [3.14159e-9, 0.0, 0.0123457, 12.345679]


def test_the_shipped_fresh_net_diagnostics_are_what_diagnose_writes(real_data: Path, tmp_path: Path) -> None:
    """results/reference/init, whose tables docs/why-resnets-work.md renders, is reproduced by its
    command: checked on its 8-layer nets of seed 0 (the 56- and 110-layer ones take minutes)."""
    shipped = read(ROOT / "results" / "reference" / "init")
    dg.run(specs=[NetSpec("plain", 8), NetSpec("resnet", 8)], seeds=[0], what=["shatter", "scale"],
           data_dir=str(real_data), out=tmp_path, offline=True)  # fmt: skip
    for name, value in (("shatter", "correlation"), ("scale", "std")):
        ours = read(tmp_path)[name]
        theirs = shipped[name]
        theirs = theirs[theirs["net"].isin(["plain-8", "ResNet-8"]) & (theirs["seed"] == 0)]
        assert len(ours) == len(theirs) > 0
        # to 1e-4: the CPU's vector kernels (AVX2, AVX512) sum in their own order, which moves a
        # correlation near 0 by 1e-5 (seen between the AVX2 EPYC that wrote them and an AVX512 one)
        np.testing.assert_allclose(ours[value].to_numpy(), theirs[value].to_numpy(), rtol=1e-4, atol=1e-4)


def test_the_mean_path_length_comes_with_the_spread_of_its_draws() -> None:
    """The interval on the mean k: none where every draw is alike, around the mean where draws
    differ, and draws resampled within their own seed (a seed's weight in the mean stays fixed)."""
    from resdepth.diagnose.summaries import mean_k_interval
    from resdepth.diagnose.summaries import paths as paths_line

    def rows(grads: dict[tuple[int, int], list[float]]) -> pd.DataFrame:
        return pd.DataFrame(
            [{"net": "ResNet-x", "state": "init", "run_id": None, "seed": seed, "sample": sample, "blocks": 2,
              "k": k, "paths": [1, 2, 1][k], "grad_norm": g}
             for (seed, sample), by_k in grads.items() for k, g in enumerate(by_k)]
        )  # fmt: skip

    alike = rows({(0, s): [1.0, 1.0, 1.0] for s in range(4)})  # shares 1:2:1, mean k 1
    assert mean_k_interval(alike) == pytest.approx((1.0, 1.0))
    # Seed 0's draws carry their gradient on short paths, seed 1's on long ones: resampled within
    # each seed, every resample has both, so the pooled mean k never leaves the two seeds' middle.
    split = rows(
        {**{(0, s): [1.0, 1.0, 0.0] for s in range(4)}, **{(1, s): [0.0, 1.0, 1.0] for s in range(4)}}
    )
    assert mean_k_interval(split) == pytest.approx((1.0, 1.0))
    noisy = rows({(0, s): [1.0, 1.0, float(s)] for s in range(4)})  # the long path's share varies
    low, high = mean_k_interval(noisy)
    assert low < paths_line(noisy).iloc[0]["mean k of the gradient"] < high
