"""One SGD step, and the three ways it can execute: eagerly, through torch.compile, or as a CUDA graph.

All three compute the same step (the tests compare them); they differ in what the host does per step.
A CIFAR ResNet's kernels are tiny, so on a GPU the time goes into launching several hundred of them
one by one from Python, not into the arithmetic. A CUDA graph records the whole step (normalise,
forward, backward, SGD update) once and then replays it with a single launch; torch.compile fuses
batch norm, ReLU and the casts into fewer kernels. Neither changes the recipe, so neither is part of
a run's id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resdepth.config import CROP_PADDING
from resdepth.data.augment import Normalizer, crop_flip
from resdepth.errors import UserError

# Eager steps before a CUDA graph is captured: cuDNN times its algorithms, the momentum buffers and
# the compiled kernels come into being, none of which may happen during capture.
WARM_STEPS = 3


@dataclass(frozen=True)
class Engine:
    """How a run's training steps execute on its device (never what they compute)."""

    compile: bool = False  # torch.compile the model for full batches
    cuda_graphs: bool = True  # replay full batches from a CUDA graph when the device is CUDA

    @classmethod
    def asked(cls, compile: bool, cuda_graphs: bool | None, device: torch.device, executor: str) -> Engine:
        """What the options ask for (CUDA graphs by default); graphs asked for by name where runs train
        on this machine without CUDA is a one-line error."""
        if cuda_graphs and executor == "local" and device.type != "cuda":
            raise UserError(f"--cuda-graphs needs a CUDA device, and this machine trains on {device}")
        return cls(compile=compile, cuda_graphs=cuda_graphs is not False)

    @property
    def label(self) -> str:
        return (
            "+".join(name for name, on in (("compile", self.compile), ("graphs", self.cuda_graphs)) if on)
            or "eager"
        )


DEFAULT_ENGINE = Engine()


def autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast, or nothing. No weight-cast cache: each weight is cast once per forward anyway,
    and a cache that outlives a CUDA graph capture would point into the graph's memory."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return nullcontext()


def make_optimizer(
    params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    """The paper's SGD. On CUDA the fused kernel (one launch for all parameters, and the only SGD that
    takes its learning rate from a device tensor, which a CUDA graph needs); elsewhere foreach."""
    params = list(params)
    fused = params[0].device.type == "cuda"
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        foreach=not fused,
        fused=fused,
    )


MOMENTUM = "momentum_buffer"  # what torch's SGD keeps per parameter, and so PackedSGD


class PackedSGD(torch.optim.Optimizer):
    """The paper's SGD for a packed group (`resdepth.models.packed`): each run its own learning rate.

    The update is torch's SGD, step for step (weight decay added to the gradient, then momentum, the
    first step's buffer the gradient itself), but the learning rate is a tensor of one value per
    run, applied to each run's part of every parameter. Runs in warm-up leave it on their own
    iterations, so the learning rates of a group can differ. The rates live on the device, so a
    CUDA graph that replays the step reads the current ones.
    """

    def __init__(
        self, params: Iterable[nn.Parameter], runs: int, momentum: float, weight_decay: float
    ) -> None:
        params = list(params)
        super().__init__(params, {"momentum": momentum, "weight_decay": weight_decay})
        self.runs = runs
        self.lr = torch.zeros(runs, device=params[0].device)
        self._lr_views = {p: self.lr.view(runs, *(1,) * p.dim()) for p in params}

    def set_lr(self, lrs: Sequence[float]) -> None:
        self.lr.copy_(torch.tensor(lrs, dtype=self.lr.dtype))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads: list[torch.Tensor] = [p.grad for p in params]  # type: ignore[misc]
            if group["weight_decay"]:
                grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
            for p, grad in zip(params, grads, strict=True):
                state = self.state[p]
                if MOMENTUM not in state:
                    state[MOMENTUM] = torch.clone(grad).detach()
                else:
                    state[MOMENTUM].mul_(group["momentum"]).add_(grad)
                runs_first = p.unflatten(0, (self.runs, -1))
                buf = state[MOMENTUM].unflatten(0, (self.runs, -1))
                runs_first.addcmul_(buf, self._lr_views[p], value=-1)


def run_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of a run's batch, or of each run's in a packed group (logits (K, N, classes),
    labels (K, N)): one loss per run, so each run's gradient is the one it has alone."""
    if labels.dim() == 1:
        return F.cross_entropy(logits.float(), labels)
    return F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none").mean(-1)


def update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Normalizer,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise a uint8 batch, forward, backward, SGD update: the part of a step a CUDA graph holds.

    Returns the batch's loss and its count of wrong predictions, left on the device (no sync); for
    a packed group (images (K, N, C, H, W)), one of each per run.
    """
    x = normalize(images)
    if x.dim() == 4:  # one run's batch; a packed group's (5-d) is laid out by its packed model
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(images.device, precision):
        logits = model(x)
    loss = run_losses(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
    optimizer.step()
    return loss.detach(), (logits.argmax(-1) != labels).sum(-1)


Augment = torch.Generator | Sequence[torch.Generator] | None  # a run's draws, each packed run's, or none


def augment(images: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
    """§4.2's crops and flips, drawn from the run's generator (or each packed run's from its own)."""
    if isinstance(generator, torch.Generator):
        return crop_flip(images, generator, CROP_PADDING)[0]
    return torch.stack([crop_flip(run, g, CROP_PADDING)[0] for run, g in zip(images, generator, strict=True)])


class Stepper:
    """A run's training steps under an `Engine`; owns the compiled model and the CUDA graph.

    Only full batches of `batch_size` go through the compiled model or the graph: an epoch's last,
    smaller batch runs eagerly on the plain model, which costs less than compiling or capturing a
    second shape. Augmentation stays outside the graph, so its random draws are the eager ones.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        normalize: Normalizer,
        precision: str,
        engine: Engine,
        batch_size: int,
    ) -> None:
        device = next(model.parameters()).device
        self.model, self.optimizer, self.normalize, self.precision = model, optimizer, normalize, precision
        self.batch_size = batch_size
        self.fast: nn.Module = torch.compile(model) if engine.compile else model  # type: ignore[assignment]
        self.graphed = engine.cuda_graphs and device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.steps = 0
        self.lr_value: float | tuple[float, ...] | None = None
        self.lr: torch.Tensor | None = None
        # A graph replays the lr it captured: make that a tensor we can refill (PackedSGD's is one).
        if self.graphed and not isinstance(optimizer, PackedSGD):
            self.lr = torch.zeros((), device=device)
            for group in optimizer.param_groups:
                group["lr"] = self.lr

    @property
    def warm_steps(self) -> int:
        """Steps before every step costs the same: compilation, cuDNN timing, then the capture."""
        return WARM_STEPS + 1 if self.graphed else 1

    def set_lr(self, lr: float | tuple[float, ...]) -> None:
        """The learning rate of the next steps: one per run for a packed group."""
        if lr == self.lr_value:
            return
        self.lr_value = lr
        if isinstance(lr, tuple) or isinstance(self.optimizer, PackedSGD):
            assert isinstance(self.optimizer, PackedSGD), "one learning rate per run is for a packed group"
            self.optimizer.set_lr(lr if isinstance(lr, tuple) else (lr,) * self.optimizer.runs)
        elif self.lr is not None:
            self.lr.fill_(lr)
        else:
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: Augment
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step; the returned loss and count stay on the device, and a graphed step's are
        overwritten by the next step, so read or accumulate them before calling again."""
        if generator is not None:
            images = augment(images, generator)
        if labels.shape[-1] != self.batch_size:
            return update(self.model, self.optimizer, images, labels, self.normalize, self.precision)
        self.steps += 1
        if not self.graphed:
            return update(self.fast, self.optimizer, images, labels, self.normalize, self.precision)
        if self.graph is None:
            if self.steps <= WARM_STEPS:
                return self._on_side_stream(images, labels)
            self._capture(images, labels)
        self.static_images.copy_(images)
        self.static_labels.copy_(labels)
        assert self.graph is not None
        self.graph.replay()
        return self.static_loss, self.static_wrong

    def _on_side_stream(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Warm-up steps run on a side stream, as CUDA graph capture requires of them."""
        side = torch.cuda.Stream(images.device)
        side.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(side):
            out = update(self.fast, self.optimizer, images, labels, self.normalize, self.precision)
        torch.cuda.current_stream(images.device).wait_stream(side)
        return out

    def _capture(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.static_images, self.static_labels = images.clone(), labels.clone()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_loss, self.static_wrong = update(
                self.fast,
                self.optimizer,
                self.static_images,
                self.static_labels,
                self.normalize,
                self.precision,
            )
