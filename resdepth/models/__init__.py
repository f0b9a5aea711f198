"""Every network resdepth can build, named by one `NetSpec`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from resdepth.errors import UserError
from resdepth.models.classic import alexnet, lenet5, vgg16
from resdepth.models.resnet import ACTIVATIONS, DEFAULT_SHORTCUT, FAMILIES, NORMS, build_resnet, layout

RESIDUAL_ARCHS = ("plain", "resnet")
CLASSIC_DEPTHS = {"lenet5": 5, "alexnet": 8, "vgg16": 16}
ARCHS = RESIDUAL_ARCHS + tuple(CLASSIC_DEPTHS)
# The size each classic net was designed for; used when no dataset fixes the input.
ORIGINAL_INPUT = {"lenet5": (1, 32), "alexnet": (3, 227), "vgg16": (3, 224)}


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
        return self.width if self.width is not None else (16 if self.family == "cifar" else 64)

    @property
    def resolved_shortcut(self) -> str:
        return self.shortcut or DEFAULT_SHORTCUT.get(self.family, "A")

    @property
    def name(self) -> str:
        """The label used in tables and legends, e.g. `plain-20`, `ResNet-56 (no BN, sigmoid)`, `lenet5`."""
        if self.arch in CLASSIC_DEPTHS:
            return self.arch
        name = f"{'ResNet' if self.arch == 'resnet' else 'plain'}-{self.depth}"
        variant = ["no BN"] if self.norm == "none" else []
        variant += [self.activation] if self.activation not in ("relu", "-") else []
        return f"{name} ({', '.join(variant)})" if variant else name


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise UserError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


def validate(spec: NetSpec) -> None:
    """Raise a UserError for a spec that cannot be built, without allocating anything."""
    check_arch(spec.arch)
    if spec.arch in CLASSIC_DEPTHS:
        if spec.depth != CLASSIC_DEPTHS[spec.arch]:
            raise UserError(f"{spec.arch} has a fixed depth of {CLASSIC_DEPTHS[spec.arch]}")
        return
    if spec.family not in FAMILIES:
        raise UserError(f"unknown family {spec.family!r}; valid: {', '.join(FAMILIES)}")
    if spec.norm not in NORMS:
        raise UserError(f"unknown norm {spec.norm!r}; valid: {', '.join(NORMS)}")
    if spec.activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {spec.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    layout(spec.family, spec.depth, spec.resolved_width)


def build_model(spec: NetSpec) -> nn.Module:
    validate(spec)
    if spec.arch == "lenet5":
        return lenet5(spec.num_classes, spec.in_channels, spec.input_size)
    if spec.arch == "alexnet":
        return alexnet(spec.num_classes, spec.in_channels, spec.input_size)
    if spec.arch == "vgg16":
        return vgg16(spec.num_classes, spec.in_channels, spec.input_size)
    return build_resnet(
        residual=spec.arch == "resnet",
        depth=spec.depth,
        family=spec.family,
        width=spec.width,
        shortcut=spec.shortcut,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        input_size=spec.input_size,
        norm=spec.norm,
        act=spec.activation,
    )
