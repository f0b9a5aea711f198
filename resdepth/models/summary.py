"""Parameter and multiply-accumulate counts, per top-level part of a network, and memory estimates."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from resdepth.errors import InvalidNet
from resdepth.models import CLASSIC_DEPTHS, NetSpec, build_model
from resdepth.models.resnet import SMALL_INPUT, layout


@dataclass
class Part:
    """One row of `describe`: a stem, a stage, a pool, a classifier, or a classic net's layer."""

    name: str
    shape: tuple[int, ...]  # output (C, H, W) or (features,)
    blocks: int | None
    params: int
    macs: int

    @property
    def shape_text(self) -> str:
        """HxWxC as in the course notes, or the feature count for flat outputs."""
        if len(self.shape) == 3:
            c, h, w = self.shape
            return f"{h}x{w}x{c}"
        return "x".join(str(s) for s in self.shape)


@dataclass
class Summary:
    spec: NetSpec
    parts: list[Part] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(p.params for p in self.parts)

    @property
    def macs(self) -> int:
        return sum(p.macs for p in self.parts)

    def to_json(self) -> dict[str, object]:
        s = self.spec
        out: dict[str, object] = {
            "arch": s.arch,
            "name": s.name,
            "depth": s.depth,
            "family": None if s.arch in CLASSIC_DEPTHS else s.family,
            "input": [s.in_channels, s.input_size, s.input_size],
            "params": self.params,
            "macs": self.macs,
        }
        if s.arch in CLASSIC_DEPTHS:
            out["layers"] = [
                {"name": p.name, "shape": p.shape_text, "params": p.params, "macs": p.macs}
                for p in self.parts
            ]
        else:
            out["width"] = s.resolved_width
            out["shortcut"] = s.resolved_shortcut
            out["stages"] = [
                {"blocks": p.blocks, "channels": p.shape[0], "size": p.shape[1]}
                for p in self.parts
                if p.blocks is not None
            ]
        return out


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summarize(spec: NetSpec) -> Summary:
    """Build the net and run one image through it, recording each top-level part's output and cost."""
    check_memory(spec, batch_size=1)
    model = build_model(spec).eval()
    macs: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for top, child in model.named_children():

        def record_shape(_m: nn.Module, _i: object, out: torch.Tensor, top: str = top) -> None:
            shapes[top] = tuple(out.shape[1:])

        hooks.append(child.register_forward_hook(record_shape))
        macs[top] = 0
        for leaf in child.modules():
            if isinstance(leaf, (nn.Conv2d, nn.Linear)):

                def count(m: nn.Module, _i: object, out: torch.Tensor, top: str = top) -> None:
                    if isinstance(m, nn.Conv2d):
                        kh, kw = m.kernel_size
                        per_output = m.in_channels // m.groups * kh * kw
                    else:
                        per_output = m.in_features  # type: ignore[assignment]
                    macs[top] += out[0].numel() * per_output

                hooks.append(leaf.register_forward_hook(count))
    with torch.no_grad():
        model(torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size))
    for h in hooks:
        h.remove()
    summary = Summary(spec)
    for top, child in model.named_children():
        blocks = len(child) if top.startswith("stage") and isinstance(child, nn.Sequential) else None
        summary.parts.append(Part(top, shapes[top], blocks, count_params(child), macs[top]))
    return summary


def estimate_training_bytes(spec: NetSpec, batch_size: int) -> int:
    """A rough upper bound of what training needs (weights, grads, momentum, saved activations).

    Computed from the layout alone, so an absurd depth is refused before anything is allocated.
    The classic nets are small enough that they are never refused.
    """
    if spec.arch in CLASSIC_DEPTHS:
        return 0
    lay = layout(spec.family, spec.depth, spec.resolved_width)
    size = spec.input_size if spec.input_size <= SMALL_INPUT else spec.input_size // 4
    basic = lay.block == "basic"
    convs = 2 if basic else 3
    params = 0
    activations = 0
    for i, (blocks, planes) in enumerate(zip(lay.blocks, lay.widths, strict=True)):
        size = size if i == 0 else max(1, (size + 1) // 2)
        out_ch = planes * lay.expansion
        per_block = 18 * planes * planes if basic else 9 * planes * planes + 2 * planes * out_ch
        params += blocks * per_block
        # conv output, BN output and ReLU output are kept for the backward pass.
        activations += blocks * convs * 3 * out_ch * size * size
    return 4 * (3 * params + batch_size * activations)


# The most training may need on a CPU, whatever the host: twice the estimate for the paper's deepest
# net (ResNet-1202 at batch 128: 17 GiB), and below what an absurd depth asks (a 200,002-layer net
# needs 57 GiB at batch 1). A rule that read the host's memory would refuse a sweep on one machine
# and accept it on another. On a CUDA device the limit is that GPU's memory.
MEMORY_LIMIT = 32 * 2**30


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_memory(spec: NetSpec, batch_size: int, device: torch.device | None = None) -> None:
    """Refuse a net whose estimate exceeds MEMORY_LIMIT, or, on a CUDA device, that GPU's memory."""
    needed = estimate_training_bytes(spec, batch_size)
    limit, what = MEMORY_LIMIT, f"resdepth's limit of {gib(MEMORY_LIMIT)}"
    if device is not None and device.type == "cuda":
        limit = torch.cuda.get_device_properties(device).total_memory
        what = f"the {gib(limit)} of {torch.cuda.get_device_name(device)}"
    if needed > limit:
        raise InvalidNet(
            f"{spec.name} would need about {gib(needed)} to train at batch {batch_size}, more than "
            f"{what}; choose a smaller depth, width or batch"
        )
