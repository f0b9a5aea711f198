"""Every network resdepth can build, named by one `NetSpec`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from resdepth.errors import InvalidNet
from resdepth.models.classic import alexnet, lenet5, vgg16
from resdepth.models.resnet import (
    ACTIVATIONS,
    DEFAULT_SHORTCUT,
    DEFAULT_WIDTH,
    FAMILIES,
    NORMS,
    SHORTCUTS,
    ResNet,
    layout,
)

RESIDUAL_ARCHS = ("plain", "resnet")  # the two nets the paper compares, built by resnet.py
PLAIN, RESNET = RESIDUAL_ARCHS
NOT_APPLICABLE = "-"  # a classic net's value for the residual nets' model options (runs.csv, tables)
CLASSIC_DEPTHS = {"lenet5": 5, "alexnet": 8, "vgg16": 16}
ARCHS = RESIDUAL_ARCHS + tuple(CLASSIC_DEPTHS)
# The size each classic net was designed for; used when no dataset fixes the input.
ORIGINAL_INPUT = {"lenet5": (1, 32), "alexnet": (3, 227), "vgg16": (3, 224)}
CLASSIC_BUILDERS = {"lenet5": lenet5, "alexnet": alexnet, "vgg16": vgg16}


@dataclass(frozen=True)
class NetSpec:
    """What to build. For the classic nets `depth` is fixed and family/width/shortcut/norm/activation
    are unused."""

    arch: str
    depth: int
    family: str = "cifar"
    width: int | None = None
    shortcut: str | None = None
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    norm: str = "bn"
    activation: str = "relu"

    @property
    def resolved_width(self) -> int:
        return self.width if self.width is not None else DEFAULT_WIDTH.get(self.family, 16)

    @property
    def resolved_shortcut(self) -> str:
        return self.shortcut or DEFAULT_SHORTCUT.get(self.family, "A")

    @property
    def name(self) -> str:
        """The label used in tables and legends, e.g. `plain-20`, `ResNet-56 (no BN, sigmoid)`, `lenet5`."""
        if self.arch in CLASSIC_DEPTHS:
            return self.arch
        name = f"{'ResNet' if self.arch == RESNET else 'plain'}-{self.depth}"
        variant = ["no BN"] if self.norm == "none" else []
        variant += [self.activation] if self.activation not in ("relu", NOT_APPLICABLE) else []
        return f"{name} ({', '.join(variant)})" if variant else name


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise InvalidNet(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


def validate(spec: NetSpec) -> None:
    """The one check of a spec: an InvalidNet for anything that cannot be built, before allocating."""
    check_arch(spec.arch)
    if spec.arch in CLASSIC_DEPTHS:
        if spec.depth != CLASSIC_DEPTHS[spec.arch]:
            raise InvalidNet(f"{spec.arch} has a fixed depth of {CLASSIC_DEPTHS[spec.arch]}")
        return
    for name, value, valid in (
        ("family", spec.family, FAMILIES),
        ("norm", spec.norm, NORMS),
        ("activation", spec.activation, tuple(ACTIVATIONS)),
        ("shortcut", spec.resolved_shortcut, SHORTCUTS),
    ):
        if value not in valid:
            raise InvalidNet(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    if spec.resolved_width < 1:
        raise InvalidNet(f"width must be a positive number of channels, got {spec.resolved_width}")
    layout(spec.family, spec.depth, spec.resolved_width)


def build_model(spec: NetSpec) -> nn.Module:
    validate(spec)
    if spec.arch in CLASSIC_BUILDERS:
        return CLASSIC_BUILDERS[spec.arch](spec.num_classes, spec.in_channels, spec.input_size)
    return ResNet(
        layout(spec.family, spec.depth, spec.resolved_width),
        residual=spec.arch == RESNET,
        shortcut=spec.resolved_shortcut,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        input_size=spec.input_size,
        stem_width=spec.resolved_width,
        norm=spec.norm,
        act=spec.activation,
    )


def specs(
    archs: list[str],
    depths: list[int],
    *,
    family: str = "cifar",
    width: int | None = None,
    shortcut: str | None = None,
    norm: str = "bn",
    activation: str = "relu",
    shape: tuple[int, int, int] | None = None,
    input_size: int | None = None,
    classes: int | None = None,
) -> list[NetSpec]:
    """Every arch x depth (a classic net at its fixed depth), validated. `shape` is a dataset's
    (channels, size, classes); without one, a residual net sees CIFAR-10 and a classic net the input
    it was designed for. `input_size` and `classes` override either."""
    for a in archs:
        check_arch(a)
    out = []
    for a in archs:
        if shape is not None:
            channels, size, n_classes = shape
        elif a in CLASSIC_DEPTHS:
            channels, size = ORIGINAL_INPUT[a]
            n_classes = 10 if a == "lenet5" else 1000
        else:
            channels, size, n_classes = 3, 32, 10
        for d in [CLASSIC_DEPTHS[a]] if a in CLASSIC_DEPTHS else depths:
            spec = NetSpec(
                a,
                d,
                family=family,
                width=width,
                shortcut=shortcut,
                num_classes=classes or n_classes,
                in_channels=channels,
                input_size=input_size or size,
                norm=norm,
                activation=activation,
            )
            validate(spec)
            out.append(spec)
    return out
