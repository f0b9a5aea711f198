"""K runs of one net as one model whose layers are K times wider and grouped (`--pack K`).

A CIFAR ResNet's kernels are too small to fill a GPU. Packing K runs that differ only in their seed
makes every kernel K times larger without mixing them: run k owns channel group k of every layer.

- a conv becomes one grouped conv (groups x K), so group k sees only run k's channels;
- batch norm normalises per channel, so each run keeps its own statistics;
- option A's zero padding pads each run's channels, not the end of the packed tensor;
- the final linear layer is one batched matrix product, a (out, in) matrix per run.

Every packed tensor is the K runs' tensors concatenated along dimension 0 (a scalar buffer, the
batch count of batch norm, is the same in every run): that one rule packs weights, momentum
buffers and batch-norm statistics, and unpacks them into each run's own checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from resdepth.errors import InvalidNet
from resdepth.models.resnet import PadShortcut

# Layers that act on each channel (or each element) alone: they need no change to be packed.
PER_CHANNEL = (nn.Identity, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.MaxPool2d, nn.AdaptiveAvgPool2d)


class PackedPad(nn.Module):
    """Option A's shortcut for K runs: each run's channels padded with zeros of its own."""

    def __init__(self, pad: PadShortcut, runs: int) -> None:
        super().__init__()
        self.stride, self.extra_channels, self.runs = pad.stride, pad.extra_channels, runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        n, c, h, w = x.shape
        grouped = x.reshape(n, self.runs, c // self.runs, h, w)
        padded = F.pad(grouped, (0, 0, 0, 0, 0, self.extra_channels))
        return padded.reshape(n, -1, h, w).contiguous(memory_format=torch.channels_last)


class PackedLinear(nn.Module):
    """K linear layers, each on its run's features: (N, K x in) -> (N, K x out)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.runs = len(layers)
        self.weight = nn.Parameter(torch.cat([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.cat([m.bias.detach() for m in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.runs
        weight = self.weight.view(k, -1, self.weight.shape[1])  # (K, out, in)
        per_run = x.view(len(x), k, -1).transpose(0, 1)  # (K, N, in)
        out = torch.baddbmm(self.bias.view(k, 1, -1), per_run, weight.transpose(1, 2))
        return out.transpose(0, 1).reshape(len(x), -1)


def _packed_conv(layers: Sequence[nn.Conv2d]) -> nn.Conv2d:
    m, k = layers[0], len(layers)
    conv = nn.Conv2d(
        m.in_channels * k,
        m.out_channels * k,
        m.kernel_size,  # type: ignore[arg-type]
        stride=m.stride,  # type: ignore[arg-type]
        padding=m.padding,  # type: ignore[arg-type]
        dilation=m.dilation,  # type: ignore[arg-type]
        groups=m.groups * k,
        bias=m.bias is not None,
        device=m.weight.device,
    )
    return conv


def _packed_norm(layers: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    m = layers[0]
    return nn.BatchNorm2d(m.num_features * len(layers), m.eps, m.momentum, device=m.weight.device)


def _pack_layer(layers: Sequence[nn.Module]) -> nn.Module:
    """One layer of K runs, packed (its tensors are copied in by `load_packed`)."""
    m = layers[0]
    if isinstance(m, nn.Conv2d):
        return _packed_conv(layers)  # type: ignore[arg-type]
    if isinstance(m, nn.BatchNorm2d) and m.affine and m.track_running_stats:
        return _packed_norm(layers)  # type: ignore[arg-type]
    if isinstance(m, nn.Linear) and m.bias is not None:
        return PackedLinear(layers)  # type: ignore[arg-type]
    if isinstance(m, PadShortcut):
        return PackedPad(m, len(layers))
    if type(m) in PER_CHANNEL:
        return copy.deepcopy(m)
    raise InvalidNet(f"--pack cannot pack a {type(m).__name__} layer; use --pack 1 for this net")


def _pack_children(packed: nn.Module, runs: Sequence[nn.Module]) -> None:
    """Replace every leaf of `packed` (a copy of runs[0]) by the K runs' leaves packed."""
    for name, child in list(packed.named_children()):
        layers = [getattr(r, name) for r in runs]
        if any(True for _ in child.children()):
            _pack_children(child, layers)
        else:
            setattr(packed, name, _pack_layer(layers))


class PackedNet(nn.Module):
    """K runs of one net in one module: images (K, N, C, H, W) in, logits (K, N, classes) out."""

    def __init__(self, runs: Sequence[nn.Module]) -> None:
        super().__init__()
        if len({tuple((k, v.shape) for k, v in r.state_dict().items()) for r in runs}) != 1:
            raise ValueError("only runs of one net can be packed")
        self.runs = len(runs)
        self.net = copy.deepcopy(runs[0])
        _pack_children(self.net, runs)
        self.load_packed(runs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n, c, h, w = x.shape
        side_by_side = x.transpose(0, 1).reshape(n, k * c, h, w).contiguous(memory_format=torch.channels_last)
        return self.net(side_by_side).view(n, k, -1).transpose(0, 1)

    @torch.no_grad()
    def load_packed(self, runs: Sequence[nn.Module]) -> None:
        """Copy the runs' weights and statistics into this model."""
        states = [r.state_dict() for r in runs]
        for name, tensor in self.net.state_dict().items():
            tensor.copy_(pack_tensors([s[name] for s in states]))

    @torch.no_grad()
    def unpack_into(self, runs: Sequence[nn.Module]) -> None:
        """Copy this model's weights and statistics back into each run's own model."""
        mine = self.net.state_dict()
        for k, run in enumerate(runs):
            for name, tensor in run.state_dict().items():
                tensor.copy_(unpack_tensor(mine[name], self.runs, k))


def pack_tensors(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The runs' tensors as one packed tensor: concatenated along dimension 0 (a scalar is shared)."""
    if tensors[0].dim() == 0:
        return tensors[0]
    return torch.cat(list(tensors))


def unpack_tensor(packed: torch.Tensor, runs: int, k: int) -> torch.Tensor:
    """Run k's part of a packed tensor (a view)."""
    if packed.dim() == 0:
        return packed
    return packed.unflatten(0, (runs, -1))[k]
