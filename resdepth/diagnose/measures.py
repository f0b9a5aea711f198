"""Why ResNets work, measured on one net: gradients per layer, layer responses (He et al. Fig. 7),
lesions (Veit et al. 2016), the identity argument, the scale of the residual stream and logits, and
shattered gradients (Balduzzi et al. 2017), the gradient carried by paths of each length (Veit
et al. 2016) and the loss landscape (Li et al. 2018).

Every measurement runs in fp32 on batches that are not augmented. Gradients are taken in train mode,
as training sees them (BatchNorm on batch statistics); everything else in eval mode, as a test sees
the net. Each returns rows of its diagnostics CSV (`registry.REGISTRY` names its columns).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from resdepth.data.augment import Normalizer
from resdepth.data.store import Dataset
from resdepth.errors import UserError
from resdepth.models import NetSpec, build_model
from resdepth.models.resnet import BasicBlock, Block, Bottleneck, ResNet
from resdepth.train import EVAL_BATCH

GRAD_BATCHES = 4  # mini-batches of 128 training images whose gradient norms are averaged
BATCH = 128
GROWN_LAYERS = 6  # `identity` grows a net by one zeroed basic block (2 layers) in each of 3 stages
Rows = list[dict[str, object]]
LESION_SAMPLES = 8  # random draws of k deleted blocks, for each k
LESION_MAX_K = 8
# Called as (done, total) after each of the points a long measurement evaluates: a progress bar.
Tick = Callable[[int, int], None]


def _quiet(done: int, total: int) -> None:
    pass


@dataclass
class Net:
    """One net to diagnose: a fresh one, or a run's checkpoint."""

    spec: NetSpec
    seed: int
    state: str  # "init" or "epoch N"
    model: ResNet
    run_id: str = ""
    recipe: str = ""  # in a folder of several recipes, how this run's differs (see analysis.groups)
    start: ResNet | None = None  # a trained net's initial weights, rebuilt from its seed (None: fresh)

    @property
    def label(self) -> str:
        """The net's name; with its recipe when the folder holds several, so none are averaged."""
        return f"{self.spec.name} [{self.recipe}]" if self.recipe else self.spec.name

    @property
    def key(self) -> dict[str, object]:
        """The columns every diagnostics row starts with."""
        s = self.spec
        return {
            "net": self.label,
            "arch": s.arch,
            "depth": s.depth,
            "norm": s.norm,
            "activation": s.activation,
            "seed": self.seed,
            "state": self.state,
            "run_id": self.run_id,
        }


# --- 1. gradient norms per layer --------------------------------------------------------------


def weighted_layers(model: ResNet) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
    """Convs and the classifier from input to output; projection shortcuts are not layers of depth."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and "shortcut" not in name
    ]


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
    return [
        {
            **net.key,
            "layer": j + 1,
            "name": name,
            "grad_norm": sums[j] / batches,
            "weight_norm": float(m.weight.detach().norm()),
        }
        for j, (name, m) in enumerate(layers)
    ]


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
        out: torch.Tensor = self.block.act(self.block.shortcut(x).clone())
        return out


class BlockRef(NamedTuple):
    """Where a block sits, and whether a plain net could lose it too (it keeps its input's shape)."""

    stage: nn.Sequential
    position: int
    keeps_shape: bool


def blocks(model: ResNet) -> list[BlockRef]:
    out = []
    for stage in model.stages():
        for i, block in enumerate(stage):
            assert isinstance(block, Block)
            out.append(BlockRef(stage, i, block.keeps_shape))
    return out


@contextmanager
def deleted(model: ResNet, which: list[BlockRef]) -> Iterator[None]:
    with replaced(which, lambda _, block: _Deleted(block)):
        yield


@contextmanager
def replaced(which: list[BlockRef], wrap: Callable[[int, Block], nn.Module]) -> Iterator[None]:
    """The blocks `which` names stand in as `wrap(n, block)` (n: their place in `which`) meanwhile."""
    saved = [(ref.stage, ref.position, ref.stage[ref.position]) for ref in which]
    for n, (stage, i, block) in enumerate(saved):
        assert isinstance(block, Block)
        stage[i] = wrap(n, block)
    try:
        yield
    finally:
        for stage, i, original in saved:
            stage[i] = original


def error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return loss_and_error(model, x, y)[1]


def lesions(
    net: Net, x: torch.Tensor, y: torch.Tensor, seed: int = 0, tick: Tick = _quiet
) -> list[dict[str, object]]:
    """Test error intact, without each single block, and without k random blocks (k = 1..8).

    Random deletions draw from the blocks that keep their shape, which a plain net can lose too; a
    residual net's downsampling blocks are deleted only singly (their shortcut remains), as kind
    `downsampling`, so that a mean over `single` compares like with like across plain and residual.
    """
    model = net.model
    every = blocks(model)
    singles = [
        (n, entry) for n, entry in enumerate(every, start=1) if entry.keeps_shape or model.residual
    ]  # a plain block that changes the shape has nothing to leave behind
    pool = [e for e in every if e.keeps_shape]
    draws = [
        (k, sample) for k in range(1, min(LESION_MAX_K, len(pool)) + 1) for sample in range(LESION_SAMPLES)
    ]
    total = 1 + len(singles) + len(draws)
    rows: list[dict[str, object]] = []

    def point(kind: str, block: object, k: int, sample: int) -> None:
        rows.append(
            {**net.key, "kind": kind, "block": block, "k": k, "sample": sample, "error": error(model, x, y)}
        )
        tick(len(rows), total)

    point("intact", "", 0, 0)
    for n, entry in singles:
        with deleted(model, [entry]):
            point("single" if entry.keeps_shape else "downsampling", n, 1, 0)
    rng = random.Random(seed)
    for k, sample in draws:
        with deleted(model, rng.sample(pool, k)):
            point("random", "", k, sample)
    return rows


# --- 4. identity ------------------------------------------------------------------------------


def grown(net: Net) -> ResNet:
    """The net with one more block at the end of every stage, whose last normalisation (or, with
    no normalisation, last conv) is zero: a residual block then adds nothing to its shortcut."""
    spec = net.spec
    if spec.family != "cifar":
        raise UserError(
            f"the identity check grows cifar-family nets ({GROWN_LAYERS} layers: one block per stage)"
        )
    bigger = replace(spec, depth=spec.depth + GROWN_LAYERS)
    torch.manual_seed(net.seed)
    model = build_model(bigger)
    assert isinstance(model, ResNet)
    missing, unexpected = model.load_state_dict(net.model.state_dict(), strict=False)
    assert not unexpected
    for stage in model.stages():
        block = stage[len(stage) - 1]
        assert isinstance(block, Block)
        block.zero_residual_()
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
    return [
        {
            **net.key,
            "grown_to": net.spec.depth + GROWN_LAYERS,
            "max_abs_diff": diff,
            "bitwise_equal": diff == 0.0,
            "grown_output_spread": spread,
            "error": error(net.model, x, y),
            "grown_error": error(big, x, y),
        }
    ]


# --- 5. signal scale: the residual stream and the logits -------------------------------------------


def scale_points(model: ResNet) -> list[tuple[str, nn.Module]]:
    """Where the signal is measured: the stem's output, each stage's end (a ResNet's residual stream),
    the pooled features and the logits."""
    stages = [(f"stage{i}", stage) for i, stage in enumerate(model.stages(), start=1)]
    return [("stem", model.stem), *stages, ("pool", model.pool), ("logits", model.fc)]


@torch.no_grad()
def scale(net: Net, x: torch.Tensor, y: torch.Tensor) -> Rows:
    """The std and root mean square of the signal at each `scale_points` point, and the cross-entropy
    of the logits, in train mode (as the first training step sees the net), mean of mini-batches.

    Each block of a ResNet adds its branch's output to the stream, so at initialisation (every BN at
    scale 1) the stream's scale grows with the number of blocks, and so do the logits and the loss.
    """
    model = copy.deepcopy(net.model).train()  # train-mode BN would move the net's running stats
    points = scale_points(model)
    sums = [[0.0, 0.0] for _ in points]
    seen: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.double())) for _, m in points]
    loss, batches = 0.0, 0
    try:
        for i in range(0, min(len(y), GRAD_BATCHES * BATCH), BATCH):
            seen.clear()
            logits = model(x[i : i + BATCH])
            loss += float(F.cross_entropy(logits, y[i : i + BATCH]))
            for j, out in enumerate(seen):
                sums[j][0] += float(out.std())
                sums[j][1] += float(out.pow(2).mean().sqrt())
            batches += 1
    finally:
        for h in handles:
            h.remove()
    return [
        {
            **net.key,
            "layer": j + 1,
            "name": name,
            "std": sums[j][0] / batches,
            "rms": sums[j][1] / batches,
            "loss": loss / batches,
        }
        for j, (name, _) in enumerate(points)
    ]


# --- 6. shattered gradients (Balduzzi et al. 2017) ----------------------------------------------

LINE_POINTS = 256  # inputs evenly spaced on a line, as Balduzzi et al.'s 1-D inputs
LAGS = (1, 2, 4, 8, 16, 32, 64, 128)  # distances along the line, in points, whose gradients are compared


def correlations(grads: torch.Tensor) -> list[tuple[int, float]]:
    """The correlation of the gradients at points `lag` apart along the line, averaged over the line,
    for each of `LAGS`: 1 for a gradient that changes smoothly (brown noise), 0 for white noise.
    `grads` is (points, features); a 1-D input's gradients are (points, 1), and are correlated as a
    sequence (Pearson's r of the sequence with itself shifted), an image's as vectors (Pearson's r of
    each pair of neighbouring gradients, over pixels)."""
    g = grads.double()
    out = []
    for lag in LAGS:
        a, b = g[:-lag], g[lag:]
        if g.shape[1] == 1:
            a, b = a - a.mean(), b - b.mean()
            r = (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300)
        else:
            a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
            r = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)).mean()
        out.append((lag, float(r)))
    return out


def line_gradients(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The gradient of each point's output (its first output, a logit) with respect to that point,
    in train mode: BatchNorm normalises over the line of points, as in Balduzzi et al. (who train
    with it), so each point's output depends on the others too, and the gradient counts that."""
    model = copy.deepcopy(model).train()  # train-mode BN would move the net's running stats
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    return grad.reshape(len(x), -1)


def shatter(net: Net, x: torch.Tensor) -> Rows:
    """Shattered gradients on a line through image space: `LINE_POINTS` evenly spaced from one test
    image to another, and the correlation of their input gradients `LAGS` points apart."""
    t = torch.linspace(0, 1, LINE_POINTS).reshape(-1, 1, 1, 1)
    line = x[0] + t * (x[1] - x[0])
    return [
        {**net.key, "lag": lag, "correlation": r} for lag, r in correlations(line_gradients(net.model, line))
    ]


def toy_net(depth: int, residual: bool, norm: bool, width: int = 200) -> nn.Sequential:
    """Balduzzi et al.'s toy: a rectifier net from one input to one output, `width` units a layer,
    He init, zero biases; `depth` layers, each `relu(BN(W h))`, or as residual blocks
    `h + W relu(BN(h))`. Without BN and with zero biases such a net is linear on each side of 0, so
    the toy keeps BN (the shattering needs a bias or a normalisation to break that)."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(width, width)
            self.norm = nn.BatchNorm1d(width) if norm else nn.Identity()
            nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
            nn.init.zeros_(self.linear.bias)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            if residual:
                return h + self.linear(F.relu(self.norm(h)))
            return F.relu(self.norm(self.linear(h)))

    first, last = nn.Linear(1, width), nn.Linear(width, 1)
    for layer in (first, last):
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    return nn.Sequential(first, *(Block() for _ in range(depth)), last)


def toy_shatter(depth: int, residual: bool, norm: bool = True, seed: int = 0) -> list[tuple[int, float]]:
    """The toy's gradients along `LINE_POINTS` inputs evenly spaced on [-2, 2], as `correlations`."""
    torch.manual_seed(seed)
    x = torch.linspace(-2, 2, LINE_POINTS).reshape(-1, 1)
    return correlations(line_gradients(toy_net(depth, residual, norm), x))


# --- 7. short paths (Veit et al. 2016) -----------------------------------------------------------

# Random sets of k blocks per path length k, each measured on its own batch of training images,
# the same batch for every k: the draws are paired across k, so that what varies along k is the
# path, not the images (32 x 16 = the 512 training images `inputs` holds).
PATH_SAMPLES = 32
PATH_BATCH = 16


class _Attached(nn.Module):
    """A shortcut fed the block's own input, whatever the block passes it: the branch can then be
    given a detached copy while the gradient still flows through the shortcut."""

    def __init__(self, shortcut: nn.Module, x: torch.Tensor) -> None:
        super().__init__()
        self.shortcut, self.x = shortcut, x

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.shortcut(self.x)
        return out


class _Detached(nn.Module):
    def __init__(self, shortcut: nn.Module) -> None:
        super().__init__()
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.shortcut(x.detach())
        return out


class _OnePath(nn.Module):
    """A residual block whose forward is unchanged and whose backward goes through its residual
    branch only (`branch`) or through its shortcut only: Veit et al.'s way to follow one path."""

    def __init__(self, block: Block, branch: bool) -> None:
        super().__init__()
        self.block, self.branch = block, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.block.shortcut
        assert shortcut is not None
        self.block.shortcut = _Detached(shortcut) if self.branch else _Attached(shortcut, x)
        try:
            out: torch.Tensor = self.block(x if self.branch else x.detach())
        finally:
            self.block.shortcut = shortcut
        return out


@contextmanager
def one_path(model: ResNet, through: set[int]) -> Iterator[None]:
    """Every block gated to one path: through its branch for the blocks numbered in `through`
    (0-based, input to output), its shortcut for the others."""
    with replaced(blocks(model), lambda n, block: _OnePath(block, n in through)):
        yield


def paths(net: Net, x: torch.Tensor, y: torch.Tensor, seed: int = 0, tick: Tick = _quiet) -> Rows:
    """The gradient that reaches the input through paths of each length k (Veit et al. 2016 Fig. 6):
    forward as usual, backward through the residual branches of k random blocks and the shortcuts of
    the others, `PATH_SAMPLES` draws of k blocks for each k, draw s on the s-th batch of
    `PATH_BATCH` training images whatever k (paired), in train mode as `grads`. The norm of the
    loss's gradient at the input, per image, and the number of paths of that length, C(n, k).
    Option-A downsampling blocks count as blocks: their shortcut path is the subsampling and
    zero-padding, which passes the gradient of the first channels only. A plain net has one path
    (all branches) and no rows."""
    if not net.model.residual:
        return []
    model = copy.deepcopy(net.model).train()  # train-mode BN would move the net's running stats
    n, rng, rows = len(blocks(model)), random.Random(seed), []
    for k in range(n + 1):
        for sample in range(PATH_SAMPLES):
            at = sample * PATH_BATCH % max(1, len(y) - PATH_BATCH + 1)
            norm = _path_gradient(
                model, set(rng.sample(range(n), k)), x[at : at + PATH_BATCH], y[at : at + PATH_BATCH]
            )
            rows.append(
                {
                    **net.key,
                    "blocks": n,
                    "k": k,
                    "paths": math.comb(n, k),
                    "sample": sample,
                    "grad_norm": norm,
                }
            )
            tick(len(rows), (n + 1) * PATH_SAMPLES)
    return rows


def _path_gradient(model: ResNet, through: set[int], x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean norm, per image, of the loss's gradient at the input along the path `through`."""
    images = x.detach().clone().requires_grad_(True)
    with one_path(model, through):
        loss = F.cross_entropy(model(images), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, images)
    return float(grad.flatten(1).norm(dim=1).mean())


def paths_seconds(net: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[str, float]:
    """How many gradients `paths` takes for this net, and about how long: one timed here."""
    if not net.model.residual:
        return "no paths but one (a plain net)", 0.0
    model = copy.deepcopy(net.model).train()
    n = len(blocks(model))
    started = time.perf_counter()
    _path_gradient(model, set(range(n // 2)), x[:PATH_BATCH], y[:PATH_BATCH])
    count = (n + 1) * PATH_SAMPLES
    return f"{count} gradients of {PATH_BATCH} images", count * (time.perf_counter() - started)


# --- 8. the loss landscape (Li et al. 2018) -------------------------------------------------------

LANDSCAPE_POINTS = 51  # 1-D: evenly spaced on [-1, 1], and along the path from init (on [0, 1])
LANDSCAPE_GRID = 15  # 2-D: a grid of 15 x 15 on [-1, 1]^2
LANDSCAPE_IMAGES = 500  # the fixed, unaugmented training images every point is evaluated on


def direction(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random Gaussian direction with the shapes of the model's parameters, filter-normalised (Li
    et al. §4): each filter (a conv's output channel, a linear layer's row) scaled to the norm of the
    same filter of the weights; zero for biases and BN parameters (every 1-D parameter)."""
    out = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            out[name] = torch.zeros_like(p)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        scale = p.detach().flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1).clamp_min(1e-30)
        out[name] = d * scale.reshape(-1, *([1] * (p.dim() - 1)))
    return out


@torch.no_grad()
def loss_and_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and error (%) in eval mode: BN on its running statistics, which stay."""
    model.eval()
    loss, wrong = 0.0, 0
    for i in range(0, len(y), EVAL_BATCH):
        logits = model(x[i : i + EVAL_BATCH])
        loss += float(F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum"))
        wrong += int((logits.argmax(1) != y[i : i + EVAL_BATCH]).sum())
    return loss / len(y), 100.0 * wrong / len(y)


@contextmanager
def moved(model: nn.Module, steps: list[tuple[float, dict[str, torch.Tensor]]]) -> Iterator[None]:
    """The model's weights plus a sum of steps (coefficient, direction), put back exactly after."""
    saved = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            for coefficient, d in steps:
                p.add_(d[name], alpha=coefficient)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(saved[name])


def landscape(net: Net, x: torch.Tensor, y: torch.Tensor, seed: int = 0, tick: Tick = _quiet) -> Rows:
    """Li et al.'s loss landscape around the net's weights, on `LANDSCAPE_IMAGES` fixed training
    images in eval mode: along one filter-normalised random direction (`LANDSCAPE_POINTS` on [-1, 1]),
    on the plane of two (`LANDSCAPE_GRID` squared points), the directions drawn from `seed` and
    `seed + 1`; and for a trained net, along the straight line from its initial weights (t = 0) to
    its trained ones (t = 1), BN's statistics measured anew at every point (`_on_path`)."""
    model = copy.deepcopy(net.model).eval()
    x, y = x[:LANDSCAPE_IMAGES], y[:LANDSCAPE_IMAGES]
    first = direction(model, torch.Generator().manual_seed(seed))
    second = direction(model, torch.Generator().manual_seed(seed + 1))
    key = {**net.key, "direction_seed": seed, "images": len(y)}
    total = landscape_points(net)
    rows: Rows = []

    def point(kind: str, a: float, b: float, loss_error: tuple[float, float]) -> None:
        loss, err = loss_error
        rows.append({**key, "kind": kind, "alpha": a, "beta": b, "loss": loss, "error": err})
        tick(len(rows), total)

    def at(steps: list[tuple[float, dict[str, torch.Tensor]]]) -> tuple[float, float]:
        with moved(model, steps):
            return loss_and_error(model, x, y)

    for a in _evenly(-1, 1, LANDSCAPE_POINTS):
        point("1d", a, 0.0, at([(a, first)]))
    grid = _evenly(-1, 1, LANDSCAPE_GRID)
    for a in grid:
        for b in grid:
            point("2d", a, b, at([(a, first), (b, second)]))
    if net.start is not None:
        for t in _evenly(0, 1, LANDSCAPE_POINTS):
            point("path", t, 0.0, _on_path(net, t, x, y))
    return rows


def _evenly(start: float, end: float, points: int) -> list[float]:
    """Evenly spaced points, exact where they should be (0, 0.5: a float32 linspace misses them)."""
    return [round(start + (end - start) * i / (points - 1), 9) for i in range(points)]


def landscape_points(net: Net) -> int:
    """1-D, 2-D, and the path from init for a trained net."""
    return LANDSCAPE_POINTS + LANDSCAPE_GRID**2 + (LANDSCAPE_POINTS if net.start is not None else 0)


def landscape_seconds(net: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[str, float]:
    """How many points `landscape` evaluates for this net, and about how long it will take: one
    point timed here, as the measurement will evaluate it."""
    points = landscape_points(net)
    passes = points + (LANDSCAPE_POINTS if net.start is not None else 0)  # the path's measure BN first
    started = time.perf_counter()
    loss_and_error(copy.deepcopy(net.model), x[:LANDSCAPE_IMAGES], y[:LANDSCAPE_IMAGES])
    return f"{points} points on {len(y[:LANDSCAPE_IMAGES])} images", passes * (time.perf_counter() - started)


def _on_path(net: Net, t: float, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and error at (1 - t) init + t trained: the weights blended, BN's running statistics those
    of the blended net on `x`. A blend of two nets' statistics is neither net's: at t = 0 a fresh
    BN's (mean 0, variance 1) would pass its input through unnormalised, and a loss barrier on the
    line could be the blend's, not the net's."""
    assert net.start is not None
    start = dict(net.start.named_parameters())
    between = copy.deepcopy(net.model)
    with torch.no_grad():
        for name, p in between.named_parameters():
            p.copy_(torch.lerp(start[name], p, t))
    set_bn_statistics(between, x)
    return loss_and_error(between, x, y)


def set_bn_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Every BN layer's running mean and variance set to those of its input on `x`, in one pass (the
    statistics of the whole batch, as a train-mode step on it normalises with)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, exactly its statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


# --- the measurements by name -------------------------------------------------------------------


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
