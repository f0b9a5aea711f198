"""`--pack K`: runs that differ only in their seed train as one K-times-wider model, and each gets the
numbers, the rows, the run id and the checkpoint it gets alone (within fp32 round-off: a grouped
convolution sums its weight gradient in another order than K separate ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import resdepth
import resdepth.train
import resdepth.writer
from resdepth import planner, results
from resdepth.config import SweepConfig
from resdepth.data.augment import Normalizer
from resdepth.data.store import load
from resdepth.device import on_device
from resdepth.models import NetSpec, build_model
from resdepth.pack import Pack
from resdepth.planner import packs
from resdepth.results import Status
from resdepth.runs import expand
from resdepth.state import PlannedRun
from resdepth.step import make_optimizer, update
from resdepth.train import Diverged, Member, train_group, train_run

CPU = torch.device("cpu")
NUMBERS = ["run_id", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error"]


def one_net(spec: NetSpec, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return on_device(build_model(spec), CPU)


# net: (spec, steps, precision). The 50-layer bottleneck net is so sensitive to its weights (a change
# of 1e-7 of each moves its next step's stem by 1e-3, packed or not) that only its first step is compared.
NETS = {
    "ResNet, option A": (NetSpec("resnet", 8), 2, "fp32"),
    "ResNet, option A, bf16": (NetSpec("resnet", 8), 2, "bf16"),
    "plain": (NetSpec("plain", 8), 2, "fp32"),
    "ResNet, option B": (NetSpec("resnet", 8, shortcut="B"), 2, "fp32"),
    "no BN, tanh": (NetSpec("resnet", 8, norm="none", activation="tanh"), 2, "fp32"),
    "imagenet family": (NetSpec("resnet", 18, family="imagenet", width=8), 2, "fp32"),
    "imagenet family, bottlenecks": (NetSpec("resnet", 50, family="imagenet", width=4), 1, "fp32"),
}


# A packed net runs grouped convolutions where a run alone runs plain ones: other kernels, which sum
# in another order. In fp32 that moves a loss by about 1e-7; in bf16, where a CPU with AVX512-BF16
# or AMX multiplies in bf16 itself, a loss by up to 2e-4 and a weight by 1.1e-4 in two steps (seen
# on an AVX512-BF16 EPYC), where another run's weights differ by a tenth.
LOSS_TOLERANCE = {"fp32": 1e-5, "bf16": 1e-3}
WEIGHT_TOLERANCE = {"fp32": 1e-5, "bf16": 5e-4}
GRADIENT_TOLERANCE = {"fp32": 0.05, "bf16": 0.25}


@pytest.mark.parametrize("net", list(NETS))
def test_packed_steps_give_each_run_the_weights_it_gets_alone(net: str) -> None:
    (spec, steps, precision), lrs = NETS[net], (0.02, 0.01, 0.002)  # each run its own lr, as in warm-up
    alone = [one_net(spec, seed) for seed in range(3)]
    packed_runs = [one_net(spec, seed) for seed in range(3)]
    optimizers = [make_optimizer(m.parameters(), 0.1, 0.9, 1e-4) for m in packed_runs]
    pack = Pack(packed_runs, optimizers, expand(SweepConfig(), {"cifar10": 50_000})[0], CPU)
    pack.optimizer.set_lr(lrs)
    normalize = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), CPU)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):  # a second step goes through the momentum buffers
        images = torch.randint(0, 256, (3, 16, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (3, 16), generator=g)
        losses, wrong = update(pack.model, pack.optimizer, images, labels, normalize, precision)
        assert losses.shape == wrong.shape == (3,)
        for k, model in enumerate(alone):
            opt = getattr(model, "opt", None) or make_optimizer(model.parameters(), lrs[k], 0.9, 1e-4)
            model.opt = opt  # type: ignore[assignment]
            loss, _ = update(model, opt, images[k], labels[k], normalize, precision)
            assert loss.item() == pytest.approx(losses[k].item(), rel=LOSS_TOLERANCE[precision])
    pack.unpack(lrs)
    for k in range(3):
        mine, theirs = packed_runs[k].state_dict(), alone[k].state_dict()
        assert mine.keys() == theirs.keys()
        # Within 1e-5 of the weights' scale (a BN scale is 1): a parameter that starts at 0, a BN
        # shift, is only its updates, whose gradient sums 16k terms that nearly cancel.
        for name, tensor in theirs.items():
            tol = WEIGHT_TOLERANCE[precision]
            torch.testing.assert_close(mine[name], tensor, rtol=tol, atol=tol, msg=name)
        moved = [torch.ne(mine[n], one_net(spec, k).state_dict()[n]).any() for n in theirs if "weight" in n]
        assert any(moved)  # the weights did change
        buffers = [optimizers[k].state[p]["momentum_buffer"] for p in packed_runs[k].parameters()]
        expected = [alone[k].opt.state[p]["momentum_buffer"] for p in alone[k].parameters()]  # type: ignore[union-attr]
        # Gradients, each within a share of its largest: the second is taken at weights that differ
        # by round-off, which the net amplifies (in fp32 0.14% seen on an AVX2 CPU at one thread,
        # 1.3% with option B on an AVX512 one, whose kernels sum in another order; in bf16 7.9%);
        # a wrong run's is 100%.
        for b, e in zip(buffers, expected, strict=True):
            assert (b - e).abs().max().item() <= GRADIENT_TOLERANCE[precision] * e.abs().max().item()
        assert optimizers[k].param_groups[0]["lr"] == lrs[k]


TINY = {
    "dataset": "synthetic",
    "arch": ["resnet"],
    "depth": [8],
    "batch_size": 50,
    "epochs": 3,
    "lr": 0.05,
    "seeds": [0, 1, 2],
    "train_subset": 800,
    "test_subset": 100,
    "warmup": "always",
    "threads": 1,
    # fp32 on every CPU: `auto` is bf16 where the CPU multiplies in bf16 (AMX, AVX512-BF16), where
    # 48 packed steps drift from unpacked ones by 3e-3 of a loss (seen), not the 4e-4 of fp32
    "precision": "fp32",
}


def rows(out: Path) -> pd.DataFrame:
    return results.read_metrics(out).sort_values(["run_id", "epoch"]).reset_index(drop=True)


@pytest.mark.slow
def test_a_packed_sweep_writes_the_rows_ids_and_checkpoints_of_an_unpacked_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A warm-up that ends on synthetic data, at another iteration for each seed (16, 18 and 21, in
    # the 48): the runs of a group then step at different learning rates.
    monkeypatch.setattr(resdepth.train, "WARMUP_ERROR", 86.0)
    # Their last checkpoints are compared below: kept, not turned into final weights.
    monkeypatch.setattr(resdepth.writer, "keep_final_weights", lambda *_: False)
    apart, together = tmp_path / "apart", tmp_path / "together"
    assert {o.status for o in resdepth.sweep(None, out=str(apart), **TINY)} == {Status.COMPLETED}
    outcomes = resdepth.sweep(None, out=str(together), pack="3", **TINY)
    assert [o.status for o in outcomes] == [Status.COMPLETED] * 3
    a, b = rows(apart), rows(together)
    assert list(a["run_id"]) == list(b["run_id"]) and len(a) == 9
    assert list(a["epoch"]) == list(b["epoch"]) and list(a["lr"]) == list(b["lr"])
    # The first step differs by 1e-7; 48 steps grow that as any round-off grows (as another thread
    # count does, docs/guarantees.md): here to about 4e-4 of a loss, and an image or two.
    for col in ("train_loss", "test_loss"):
        assert ((a[col] - b[col]).abs() / a[col]).max() <= 1e-3, col
    for col, images in (("train_error", 800), ("test_error", 100)):
        assert (a[col] - b[col]).abs().max() <= 2 * 100 / images, col
    ends = set()
    for ckpt in (together / "checkpoints").glob("*.pt"):
        mine = torch.load(ckpt, weights_only=True)
        theirs = torch.load(apart / "checkpoints" / ckpt.name, weights_only=True)
        assert mine.keys() == theirs.keys() and mine["epoch"] == theirs["epoch"] == 3
        assert mine["schedule"] == theirs["schedule"]
        assert {k: v.shape for k, v in mine["model"].items()} == {
            k: v.shape for k, v in theirs["model"].items()
        }
        assert mine["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"]
        ends.add(mine["schedule"]["warmup_end"])
    assert len(ends) > 1, "every run left its warm-up at one iteration: per-run rates went untested"
    runs = pd.read_csv(together / "runs.csv")
    assert set(runs["status"]) == {"completed"} and "pack" not in runs.columns  # never part of a run


def test_a_run_that_diverges_leaves_its_group_and_the_others_train_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = resdepth.train.build

    def seed_1_broken(cfg, data, device):  # type: ignore[no-untyped-def]
        model = real(cfg, data, device)
        if cfg.seed == 1:
            with torch.no_grad():
                model.fc.weight.fill_(float("nan"))
        return model

    monkeypatch.setattr(resdepth.train, "build", seed_1_broken)
    whole = load("synthetic")
    cfgs = expand(SweepConfig(**{**TINY, "arch": ["resnet"], "epochs": 3}), {"synthetic": 800})
    seen: list[tuple[int, str]] = []  # (seed, what it reported), in order
    members = [
        Member(
            c,
            c.split(whole),
            tmp_path / f"{c.run_id}.pt",
            on_epoch=lambda r, s=c.seed: seen.append((s, f"epoch {r.epoch}")),
            on_end=lambda why, s=c.seed: seen.append((s, why or "done")),
        )
        for c in cfgs
    ]
    diverged = train_group(members, CPU)
    assert (
        list(diverged) == [cfgs[1].run_id]
        and diverged[cfgs[1].run_id] == "training loss became nan in epoch 1"
    )
    # Its row of epoch 1 is written, its end reported at once; the two others train on, packed.
    assert seen[:4] == [
        (0, "epoch 1"),
        (1, "epoch 1"),
        (2, "epoch 1"),
        (1, "training loss became nan in epoch 1"),
    ]
    assert seen[4:] == [(s, f"epoch {e}") for e in (2, 3) for s in (0, 2)] + [(0, "done"), (2, "done")]
    assert not (tmp_path / f"{cfgs[1].run_id}.pt").exists()
    for c in (cfgs[0], cfgs[2]):
        assert torch.load(tmp_path / f"{c.run_id}.pt", weights_only=True)["epoch"] == 3
    # Alone, the broken run diverges just the same (and saves nothing).
    with pytest.raises(Diverged, match="training loss became nan in epoch 1"):
        train_run(cfgs[1], cfgs[1].split(whole), CPU, tmp_path / "alone.pt", lambda r: None)
    assert not (tmp_path / "alone.pt").exists()


def test_packs_are_runs_that_differ_only_in_their_seed_and_keep_their_partners() -> None:
    cfgs = expand(
        SweepConfig(arch=["plain", "resnet"], depth=[20, 32], seeds=[0, 1, 2, 3, 4]), {"cifar10": 50_000}
    )
    state = {("plain", 20, 0): (0, True), ("plain", 20, 4): (2, False), ("resnet", 32, 3): (3, False)}
    planned = [PlannedRun(c, 0, *state.get((c.arch, c.depth, c.seed), (0, False))) for c in cfgs]
    groups = [[(p.cfg.arch, p.cfg.depth, p.cfg.seed) for p in g] for g in packs(planned, 2)]
    assert groups[:4] == [
        [("plain", 20, 1)],  # its partner, seed 0, is done: it trains alone, as it did before
        [("plain", 20, 2), ("plain", 20, 3)],
        [("plain", 20, 4)],
        [("plain", 32, 0), ("plain", 32, 1)],
    ]
    assert [("resnet", 32, 2)] in groups and [("resnet", 32, 3)] in groups  # partners, an epoch apart
    assert sum(len(g) for g in groups) == 19
    alone = packs(planned, 1)  # --pack 1: the plan's order, one run at a time
    assert [g[0] for g in alone] == [p for p in planned if not p.finished] and {len(g) for g in alone} == {1}


def test_pack_auto_times_the_deepest_net_left_where_a_group_could_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, int, int]] = []

    def timed(spec, most, batch, device, precision, engine):  # type: ignore[no-untyped-def]
        asked.append((spec.name, most, batch))
        return 2

    monkeypatch.setattr(planner, "auto_pack", timed)
    options = {**TINY, "arch": ["plain", "resnet"], "depth": [8, 14], "seeds": [0, 1, 2], "pack": "auto"}
    with planner.prepare(SweepConfig(**options, out=str(tmp_path / "a")), dry_run=True) as plan:
        assert plan.cfg.pack == "auto" and asked == []  # a dry run times nothing
    with planner.prepare(SweepConfig(**options, out=str(tmp_path / "a"))) as plan:
        assert plan.cfg.pack == "2" and plan.sweep.pack == 2 and "seeds packed 2 to a model" in plan.where
    assert asked == [("plain-14", 3, 50)]
    one_seed = {**options, "seeds": [0], "out": str(tmp_path / "b")}
    with planner.prepare(SweepConfig(**one_seed)) as plan:
        assert plan.cfg.pack == "1"  # nothing to pack: nothing timed
    with planner.prepare(SweepConfig(**{**options, "arch": ["lenet5"], "out": str(tmp_path / "c")})) as plan:
        assert plan.cfg.pack == "1"  # a classic net trains alone
    assert len(asked) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pack", "0"], "--pack takes a positive number or auto, got '0'"),
        (["--pack", "two"], "--pack takes a positive number or auto, got 'two'"),
        (["--pack", "2", "--arch", "resnet,lenet5"], "--pack is for the plain and residual nets; lenet5 trains alone (--pack 1)"),
    ],
)  # fmt: skip
def test_a_pack_that_cannot_be_is_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    r = cli("sweep", "--dataset", "synthetic", "--out", str(tmp_path / "o"), *args)
    assert r.code == 2 and message in r.err and "Traceback" not in r.err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_group_killed_between_renaming_its_checkpoints_resumes_to_its_uninterrupted_rows(
    tmp_path: Path,
) -> None:
    args = ["sweep", "--dataset", "synthetic", "--arch", "resnet", "--depth", "8", "--seeds", "0,1,2",
            "--epochs", "3", "--train-subset", "400", "--test-subset", "100", "--batch-size", "100",
            "--threads", "1", "--pack", "3"]  # fmt: skip
    clean, killed = tmp_path / "clean", tmp_path / "killed"

    def sweep(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "resdepth", *args, "--out", str(out)]
        return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)

    assert sweep(clean).returncode == 0
    # Killed (SIGKILL) after epoch 2's first checkpoint is renamed into place, not the other two.
    assert sweep(killed, RESDEPTH_FAULT="mid-commit:2").returncode == -9
    epochs = sorted(torch.load(p, weights_only=True)["epoch"] for p in (killed / "checkpoints").glob("*.pt"))
    assert epochs == [1, 1, 2]
    assert sweep(killed).returncode == 0
    for folder in ("checkpoints", "weights"):  # no marker and no waiting checkpoint left
        assert sorted(p.name for p in (killed / folder).iterdir()) == sorted(
            p.name for p in (clean / folder).iterdir()
        )
    pd.testing.assert_frame_equal(rows(clean)[NUMBERS], rows(killed)[NUMBERS], check_exact=True)
