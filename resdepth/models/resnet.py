"""Plain and residual networks of He et al. 2016, built from one description.

A plain net is the residual net with every shortcut removed and nothing else changed: both are built
by the same code, and `residual=False` only leaves each block's `shortcut` as None. That is what makes
the degradation experiment a controlled one.

The options here are checked once, by `resdepth.models.validate`; this module builds what it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from resdepth.errors import InvalidNet

FAMILIES = ("cifar", "imagenet")
SHORTCUTS = ("A", "B")
# Model options for the diagnostics (why ResNets work): the paper's nets are bn + relu.
NORMS = ("bn", "none")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
DEFAULT_SHORTCUT = {"cifar": "A", "imagenet": "B"}
DEFAULT_WIDTH = {"cifar": 16, "imagenet": 64}  # §4.2: 16 filters in the first stage; Table 1: 64

# He et al. Table 1: (block kind, blocks per stage) for the ImageNet depths, as in torchvision.
IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# Inputs this small get the CIFAR-style stem: a 7x7/2 conv and a max-pool would leave nothing to learn.
SMALL_INPUT = 64

NormLayer = Callable[[int], nn.Module]  # channels -> normalisation
ActLayer = Callable[[], nn.Module]


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A: identity that subsamples by striding and zero-pads the new channels (no parameters)."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(kind: str, in_ch: int, out_ch: int, stride: int, norm_layer: NormLayer) -> nn.Module:
    """Identity where shapes agree; option A (pad) or B (1x1 projection + norm) where they change."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(stride, out_ch - in_ch)
    return nn.Sequential(conv1x1(in_ch, out_ch, stride), norm_layer(out_ch))


class Block(nn.Module):
    """What every block shares: its geometry, its optional shortcut, and the zeroing of its branch."""

    expansion: ClassVar[int]  # output channels per `planes`
    act: nn.Module  # ReLU, or the --activation asked for
    shortcut: nn.Module | None

    def last_layers(self) -> tuple[nn.Conv2d, nn.Module]:
        """The residual branch's last conv and the normalisation after it."""
        raise NotImplementedError

    @property
    def keeps_shape(self) -> bool:
        """Whether the output has the input's shape (no stride, no new channels): such a block can
        be deleted from a plain net too."""
        first: nn.Conv2d = next(m for m in self.modules() if isinstance(m, nn.Conv2d))
        return first.stride == (1, 1) and first.in_channels == self.last_layers()[0].out_channels

    @torch.no_grad()
    def zero_residual_(self) -> None:
        """Make the residual branch output zero: its last normalisation's scale and shift, or without
        normalisation its last conv. A residual block then adds nothing to its shortcut."""
        conv, norm = self.last_layers()
        for p in (norm if isinstance(norm, nn.BatchNorm2d) else conv).parameters():
            p.zero_()


class BasicBlock(Block):
    """Two 3x3 convs. With a shortcut the second activation comes after the addition (He et al. Fig. 2)."""

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int,
        shortcut: nn.Module | None,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.act = act_layer()
        self.shortcut = shortcut

    def last_layers(self) -> tuple[nn.Conv2d, nn.Module]:
        return self.conv2, self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class Bottleneck(Block):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision does), 1x1 expand by 4."""

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int,
        shortcut: nn.Module | None,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, out_ch)
        self.bn3 = norm_layer(out_ch)
        self.act = act_layer()
        self.shortcut = shortcut

    def last_layers(self) -> tuple[nn.Conv2d, nn.Module]:
        return self.conv3, self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


BLOCKS: dict[str, type[Block]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class Layout:
    """Where a depth puts its blocks: the one fact the degradation experiment varies."""

    block: str  # "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1)
    blocks: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # channels entering each stage's 3x3 convs

    @property
    def expansion(self) -> int:
        return BLOCKS[self.block].expansion


def layout(family: str, depth: int, width: int | None = None) -> Layout:
    """Map a depth (weighted layers: convs + the final linear) to stages, or explain why it can't.
    WIDTH, the first stage's, defaults to the family's (`DEFAULT_WIDTH`)."""
    if family not in FAMILIES:
        raise InvalidNet(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    width = DEFAULT_WIDTH[family] if width is None else width
    if family == "cifar":
        if depth < 8 or depth % 2:
            raise InvalidNet(
                f"depth {depth} cannot be built in the cifar family: it needs an even depth >= 8 "
                "(6n+2 gives the paper's nets: 20, 32, 44, 56, 110, 1202)"
            )
        total = (depth - 2) // 2
        base, extra = divmod(total, 3)
        blocks = tuple(base + (1 if i < extra else 0) for i in range(3))
        return Layout("basic", blocks, (width, 2 * width, 4 * width))
    if depth not in IMAGENET_LAYOUTS:
        valid = ", ".join(str(d) for d in IMAGENET_LAYOUTS)
        raise InvalidNet(f"depth {depth} is not an imagenet-family depth; valid: {valid}")
    block, blocks = IMAGENET_LAYOUTS[depth]
    scale = width / 64
    return Layout(block, blocks, tuple(int(w * scale) for w in IMAGENET_WIDTHS))


def norm_factory(kind: str) -> NormLayer:
    """BatchNorm, or nothing at all for `--norm none` (the net then rests on He init alone)."""
    return nn.BatchNorm2d if kind == "bn" else (lambda _channels: nn.Identity())


def activation_factory(kind: str) -> ActLayer:
    return (lambda: nn.ReLU(inplace=True)) if kind == "relu" else ACTIVATIONS[kind]


class ResNet(nn.Module):
    """stem -> stage1..stageN -> global average pool -> linear; top-level children in that order.

    `describe` walks the top-level children, so each one is a row of the summary table.
    """

    def __init__(
        self,
        lay: Layout,
        *,
        residual: bool,
        shortcut: str,
        num_classes: int,
        in_channels: int,
        input_size: int,
        stem_width: int,
        norm: str,
        act: str,
    ) -> None:
        super().__init__()
        self.layout = lay
        self.residual = residual
        self.activation = act  # its name, for the init gain (a block's `act` is the layer)
        self.shortcut_kind = shortcut
        self.norm_layer = norm_factory(norm)
        self.act_layer = activation_factory(act)
        if input_size <= SMALL_INPUT:
            self.stem = nn.Sequential(
                conv3x3(in_channels, stem_width), self.norm_layer(stem_width), self.act_layer()
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False),
                self.norm_layer(stem_width),
                self.act_layer(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        self.in_ch = stem_width
        for i, (n_blocks, planes) in enumerate(zip(lay.blocks, lay.widths, strict=True)):
            self.add_module(f"stage{i + 1}", self._make_stage(planes, n_blocks, stride=1 if i == 0 else 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.in_ch, num_classes)
        self._init_weights()

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """`blocks` blocks of `planes`; the first one carries the stride (and the shortcut that
        adapts the shape), the others keep their input's shape."""
        block_cls = BLOCKS[self.layout.block]
        out_ch = planes * block_cls.expansion
        layers: list[nn.Module] = []
        for j in range(blocks):
            s = stride if j == 0 else 1
            sc = (
                make_shortcut(self.shortcut_kind, self.in_ch, out_ch, s, self.norm_layer)
                if self.residual
                else None
            )
            layers.append(block_cls(self.in_ch, planes, s, sc, self.norm_layer, self.act_layer))
            self.in_ch = out_ch
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """He init (gain of the net's activation), BN at scale 1 and shift 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=self.activation)  # type: ignore[arg-type]  # one of ACTIVATIONS
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> Sequence[nn.Sequential]:
        return [getattr(self, f"stage{i + 1}") for i in range(len(self.layout.blocks))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages():
            x = stage(x)
        return self.fc(torch.flatten(self.pool(x), 1))
