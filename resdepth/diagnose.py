"""Why ResNets work, measured: gradients per layer, layer responses (He et al. Fig. 7), lesions
(Veit et al. 2016) and the identity argument, on fresh nets or on a sweep's checkpoints.

Every measurement runs in fp32 on batches that are not augmented. Gradients are taken in train mode,
as training sees them (BatchNorm on batch statistics); everything else in eval mode, as a test sees
the net.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from resdepth import results
from resdepth.data.augment import Normalizer
from resdepth.data.sources import SHAPES
from resdepth.data.store import Dataset, load
from resdepth.errors import UserError
from resdepth.models import NetSpec, build_model, validate
from resdepth.models.resnet import BasicBlock, Bottleneck, ResNet
from resdepth.train import EVAL_BATCH, load_checkpoint

WHAT = ("grads", "responses", "lesion", "identity")
GRAD_BATCHES = 4  # mini-batches of 128 training images whose gradient norms are averaged
BATCH = 128
LESION_SAMPLES = 8  # random draws of k deleted blocks, for each k
LESION_MAX_K = 8
Block = BasicBlock | Bottleneck


@dataclass
class Net:
    """One net to diagnose: a fresh one, or a run's checkpoint."""

    spec: NetSpec
    seed: int
    state: str  # "init" or "epoch N"
    model: ResNet
    run_id: str = ""

    @property
    def key(self) -> dict[str, object]:
        """The columns every diagnostics row starts with."""
        return {"net": self.spec.name, "arch": self.spec.arch, "depth": self.spec.depth,
                "norm": self.spec.norm, "activation": self.spec.activation, "seed": self.seed,
                "state": self.state, "run_id": self.run_id}  # fmt: skip


def fresh(spec: NetSpec, seed: int) -> Net:
    """The net as a run with this seed starts (the sweep seeds torch the same way before building)."""
    if spec.arch not in ("plain", "resnet"):
        raise UserError(f"diagnose measures plain and resnet nets, not {spec.arch!r}")
    validate(spec)
    torch.manual_seed(seed)
    model = build_model(spec)
    assert isinstance(model, ResNet)
    return Net(spec, seed, "init", model.eval())


def from_results(folder: Path) -> Iterator[tuple[Net, Net, dict[str, str]]]:
    """(at init, trained) for every plain/resnet run of a results folder that has a checkpoint."""
    runs = results.read_runs(folder)
    if not runs:
        raise UserError(f"{folder} has no {results.RUNS}; give a results folder a sweep wrote")
    found = False
    for run_id, row in runs.items():
        if row["arch"] not in ("plain", "resnet"):
            continue
        state = load_checkpoint(folder / "checkpoints" / f"{run_id}.pt", run_id)
        if state is None:
            continue
        channels, size, classes = SHAPES[row["dataset"]]
        spec = NetSpec(row["arch"], int(row["depth"]), row["family"], int(row["width"]), row["shortcut"],
                       classes, channels, size, row.get("norm") or "bn", row.get("activation") or "relu")  # fmt: skip
        init = fresh(spec, int(row["seed"]))
        init.run_id = run_id
        trained = copy.deepcopy(init)
        trained.model.load_state_dict(state["model"])
        trained.state = f"epoch {int(state['epoch'])}"
        found = True
        yield init, trained, row
    if not found:
        raise UserError(f"{folder} has no checkpoint of a plain or resnet run to diagnose")


# --- 1. gradient norms per layer --------------------------------------------------------------


def weighted_layers(model: ResNet) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
    """Convs and the classifier from input to output; projection shortcuts are not layers of depth."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear) and "shortcut" not in name]  # fmt: skip


def grad_norms(net: Net, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, object]]:
    """The L2 norm of each layer's weight gradient, averaged over mini-batches, in train mode."""
    model = copy.deepcopy(net.model).train()  # train-mode BN would move the net's running stats
    layers = weighted_layers(model)
    sums = [0.0] * len(layers)
    batches = 0
    # Saturated sigmoids without BN make gradients denormal, which CPUs compute 10x slower;
    # flushed to zero they still read as vanished.
    flushed = torch.set_flush_denormal(True)
    try:
        for i in range(0, min(len(y), GRAD_BATCHES * BATCH), BATCH):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i : i + BATCH]), y[i : i + BATCH]).backward()
            for j, (_, m) in enumerate(layers):
                assert m.weight.grad is not None
                sums[j] += float(m.weight.grad.norm())
            batches += 1
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    return [{**net.key, "layer": j + 1, "name": name, "grad_norm": sums[j] / batches,
             "weight_norm": float(m.weight.detach().norm())} for j, (name, m) in enumerate(layers)]  # fmt: skip


# --- 2. layer responses (He et al. Fig. 7) ----------------------------------------------------


def response_points(model: ResNet) -> list[tuple[str, nn.Module]]:
    """The output of every 3x3 conv after its BN, before the nonlinearity or the addition."""
    points: list[tuple[str, nn.Module]] = (
        [("stem", model.stem[1])] if model.stem[0].kernel_size == (3, 3) else []
    )
    for s, stage in enumerate(model.stages(), start=1):
        for b, block in enumerate(stage):
            if isinstance(block, BasicBlock):
                points += [(f"stage{s}.{b}.bn1", block.bn1), (f"stage{s}.{b}.bn2", block.bn2)]
            elif isinstance(block, Bottleneck):
                points.append((f"stage{s}.{b}.bn2", block.bn2))
    return points


@torch.no_grad()
def responses(net: Net, x: torch.Tensor) -> list[dict[str, object]]:
    """The std of each 3x3 layer's response over all test images, positions and channels."""
    points = response_points(net.model)
    moments = [torch.zeros(3, dtype=torch.float64) for _ in points]

    def hook(i: int) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def record(_: nn.Module, __: Any, out: torch.Tensor) -> None:
            # Read at once: the in-place ReLU that follows would overwrite the tensor.
            o = out.double()
            moments[i] += torch.stack(
                [torch.tensor(float(o.numel()), dtype=torch.float64), o.sum(), (o * o).sum()]
            )

        return record

    handles = [m.register_forward_hook(hook(i)) for i, (_, m) in enumerate(points)]
    try:
        net.model.eval()
        for i in range(0, len(x), EVAL_BATCH):
            net.model(x[i : i + EVAL_BATCH])
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i, (name, _) in enumerate(points):
        n, s, ss = moments[i].tolist()
        rows.append({**net.key, "layer": i + 1, "name": name, "std": max(ss / n - (s / n) ** 2, 0.0) ** 0.5})
    return rows


# --- 3. lesions (Veit et al. 2016) ------------------------------------------------------------


class _Deleted(nn.Module):
    """A block without its residual branch: what is left is its shortcut (and the activation after
    the addition); for a plain block, nothing (the identity), which needs equal shapes."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.block.shortcut is None:
            return x
        # clone: the in-place ReLU must not write into x, which an identity shortcut passes through
        out: torch.Tensor = self.block.relu(self.block.shortcut(x).clone())
        return out


def blocks(model: ResNet) -> list[tuple[nn.Sequential, int, bool]]:
    """(stage, index, deletable in a plain net too): a block that keeps its input's shape."""
    out = []
    for stage in model.stages():
        for i, block in enumerate(stage):
            assert isinstance(block, BasicBlock | Bottleneck)
            same = (
                block.conv1.stride == (1, 1) and block.conv1.in_channels == last_layers(block)[0].out_channels
            )
            out.append((stage, i, bool(same)))
    return out


def last_layers(block: Block) -> tuple[nn.Conv2d, nn.Module]:
    """The residual branch's last conv and the normalisation after it."""
    return (block.conv3, block.bn3) if isinstance(block, Bottleneck) else (block.conv2, block.bn2)


@contextmanager
def deleted(model: ResNet, which: list[tuple[nn.Sequential, int, bool]]) -> Iterator[None]:
    saved = [(stage, i, stage[i]) for stage, i, _ in which]
    for stage, i, block in saved:
        assert isinstance(block, BasicBlock | Bottleneck)
        stage[i] = _Deleted(block)
    try:
        yield
    finally:
        for stage, i, original in saved:
            stage[i] = original


@torch.no_grad()
def error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = sum(int((model(x[i : i + EVAL_BATCH]).argmax(1) != y[i : i + EVAL_BATCH]).sum())
                for i in range(0, len(y), EVAL_BATCH))  # fmt: skip
    return 100.0 * wrong / len(y)


def lesions(net: Net, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> list[dict[str, object]]:
    """Test error intact, without each single block, and without k random blocks (k = 1..8).

    Random deletions draw from the blocks that keep their shape, which a plain net can lose too; a
    residual net's downsampling blocks are deleted only singly (their shortcut remains).
    """
    model = net.model
    every = blocks(model)
    rows: list[dict[str, object]] = [{**net.key, "kind": "intact", "block": "", "k": 0, "sample": 0,
                                      "error": error(model, x, y)}]  # fmt: skip
    for n, entry in enumerate(every, start=1):
        if not entry[2] and model.residual is False:
            continue  # a plain block that changes the shape has nothing to leave behind
        with deleted(model, [entry]):
            rows.append({**net.key, "kind": "single", "block": n, "k": 1, "sample": 0,
                         "error": error(model, x, y)})  # fmt: skip
    pool = [e for e in every if e[2]]
    rng = random.Random(seed)
    for k in range(1, min(LESION_MAX_K, len(pool)) + 1):
        for sample in range(LESION_SAMPLES):
            with deleted(model, rng.sample(pool, k)):
                rows.append({**net.key, "kind": "random", "block": "", "k": k, "sample": sample,
                             "error": error(model, x, y)})  # fmt: skip
    return rows


# --- 4. identity ------------------------------------------------------------------------------


def grown(net: Net) -> ResNet:
    """The net with one more block at the end of every stage, whose last normalisation (or, with
    no normalisation, last conv) is zero: a residual block then adds nothing to its shortcut."""
    spec = net.spec
    if spec.family != "cifar":
        raise UserError("the identity check grows cifar-family nets (6 layers: one block per stage)")
    bigger = NetSpec(spec.arch, spec.depth + 6, spec.family, spec.width, spec.shortcut, spec.num_classes,
                     spec.in_channels, spec.input_size, spec.norm, spec.activation)  # fmt: skip
    torch.manual_seed(net.seed)
    model = build_model(bigger)
    assert isinstance(model, ResNet)
    missing, unexpected = model.load_state_dict(net.model.state_dict(), strict=False)
    assert not unexpected
    for stage in model.stages():
        block = stage[len(stage) - 1]
        assert isinstance(block, BasicBlock | Bottleneck)
        conv, norm = last_layers(block)
        zeroed = norm if isinstance(norm, nn.BatchNorm2d) else conv
        with torch.no_grad():
            for p in zeroed.parameters():
                p.zero_()
    return model.eval()


@torch.no_grad()
def identity(net: Net, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, object]]:
    """Outputs of the net and of the net grown by zeroed blocks, on the same test images."""
    big = grown(net)
    net.model.eval()
    diff = 0.0
    spread = 0.0
    for i in range(0, len(x), EVAL_BATCH):
        a, b = net.model(x[i : i + EVAL_BATCH]), big(x[i : i + EVAL_BATCH])
        diff = max(diff, float((a - b).abs().max()))
        spread = max(spread, float(b.std(0).max()))  # 0 when the grown net ignores its input
    return [{**net.key, "grown_to": net.spec.depth + 6, "max_abs_diff": diff, "bitwise_equal": diff == 0.0,
             "grown_output_spread": spread, "error": error(net.model, x, y), "grown_error": error(big, x, y)}]  # fmt: skip


# --- running them -----------------------------------------------------------------------------


@dataclass
class Inputs:
    """Normalised training images (for gradients) and test images (for the rest), fp32."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def inputs(data: Dataset) -> Inputs:
    normalize = Normalizer(data.mean, data.std, "cpu")
    n = GRAD_BATCHES * BATCH
    return Inputs(normalize(data.train_x[:n]), data.train_y[:n], normalize(data.test_x), data.test_y)


def measure(net: Net, data: Inputs, what: list[str]) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    if "grads" in what:
        out["grads"] = grad_norms(net, data.train_x, data.train_y)
    if "responses" in what:
        out["responses"] = responses(net, data.test_x)
    if "lesion" in what:
        out["lesion"] = lesions(net, data.test_x, data.test_y)
    if "identity" in what:
        out["identity"] = identity(net, data.test_x, data.test_y)
    return out


def diagnose_results(
    folder: Path, what: list[str], data_dir: str | None, test_subset: int | None,
    progress: Callable[[str], None],
) -> dict[str, list[dict[str, object]]]:  # fmt: skip
    """Gradients at init and at the checkpoint; the rest on the trained nets only."""
    tables: dict[str, list[dict[str, object]]] = {w: [] for w in what}
    datasets: dict[str, Dataset] = {}
    for init, trained, row in from_results(folder):
        name = row["dataset"]
        if name not in datasets:
            datasets[name] = load(name, data_dir, offline=True)
        subset = test_subset or _int(row.get("test_subset"))
        split = datasets[name].split(_int(row.get("train_subset")), _int(row.get("val_split")),
                                     init.seed, subset)  # fmt: skip
        data = inputs(split)
        progress(f"{trained.spec.name} seed {trained.seed} ({trained.run_id}, {trained.state})")
        if "grads" in what:
            tables["grads"] += grad_norms(init, data.train_x, data.train_y)
        for key, rows in measure(trained, data, what).items():
            tables[key] += rows
    return tables


def diagnose_fresh(
    specs: list[NetSpec], seeds: list[int], what: list[str], data: Dataset, progress: Callable[[str], None]
) -> dict[str, list[dict[str, object]]]:
    tables: dict[str, list[dict[str, object]]] = {w: [] for w in what}
    batches = inputs(data)
    for spec in specs:
        for seed in seeds:
            net = fresh(spec, seed)
            progress(f"{spec.name} seed {seed} (init)")
            for key, rows in measure(net, batches, what).items():
                tables[key] += rows
    return tables


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def summaries(tables: dict[str, list[dict[str, object]]]) -> dict[str, pd.DataFrame]:
    """One line per net and state for each measurement, mean over seeds: what the terminal shows."""
    out: dict[str, pd.DataFrame] = {}
    for name, rows in tables.items():
        if not rows:
            continue
        f = pd.DataFrame(rows)
        keys = ["net", "state"]
        if name == "grads":
            first = f[f["layer"] == 1].groupby(keys)["grad_norm"].mean()
            last = f[f["layer"] == f.groupby(["net", "state", "seed"])["layer"].transform("max")]
            last_mean = last.groupby(keys)["grad_norm"].mean()
            out[name] = pd.DataFrame({"first layer": first, "classifier": last_mean,
                                      "first / classifier": first / last_mean})  # fmt: skip
        elif name == "responses":
            g = f.groupby(keys)["std"]
            out[name] = pd.DataFrame({"mean std": g.mean(), "max std": g.max()})
        elif name == "lesion":
            g = f.groupby(["net", "state", "kind"])["error"]
            table = g.mean().unstack("kind")
            table["worst single"] = f[f["kind"] == "single"].groupby(keys)["error"].max()
            top = f[f["kind"] == "random"]
            top = top[top["k"] == top.groupby(["net", "state"])["k"].transform("max")]
            table["k deleted"] = top.groupby(keys)["k"].max()
            table["error, k deleted"] = top.groupby(keys)["error"].mean()
            out[name] = table.rename(columns={"intact": "intact error", "single": "mean single"}).drop(
                columns=["random"], errors="ignore"
            )
        elif name == "identity":
            by = f.groupby(keys)
            out[name] = pd.DataFrame({"grown to": by["grown_to"].first(), "max |Δlogit|": by["max_abs_diff"].max(),
                                      "error": by["error"].mean(), "grown error": by["grown_error"].mean()})  # fmt: skip
        out[name] = out[name].reindex(pd.MultiIndex.from_frame(f[keys].drop_duplicates()))  # measured order
    return out
