"""The networks: exact parameter counts, shapes, layouts, and that plain = residual minus shortcuts."""

from __future__ import annotations

import json

import pytest
import torch

from resdepth.errors import InvalidNet
from resdepth.models import NetSpec, build_model, summary
from resdepth.models.resnet import PadShortcut, layout
from resdepth.models.summary import count_params, summarize

CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.mark.parametrize("arch", ["plain", "resnet"])
@pytest.mark.parametrize(("depth", "params"), CIFAR_PARAMS.items())
def test_cifar_family_parameter_counts(arch: str, depth: int, params: int) -> None:
    assert count_params(build_model(NetSpec(arch, depth))) == params


def test_resnet_1202_parameter_count() -> None:
    assert count_params(build_model(NetSpec("resnet", 1202))) == 19_421_274


@pytest.mark.parametrize(("depth", "params"), [(18, 11_173_962), (34, 21_282_122)])
def test_imagenet_family_on_32px_parameter_counts(depth: int, params: int) -> None:
    assert count_params(build_model(NetSpec("resnet", depth, family="imagenet"))) == params


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        (NetSpec("lenet5", 5, in_channels=1), 61_706),
        (NetSpec("alexnet", 8, num_classes=1000, input_size=227), 62_378_344),
        (NetSpec("vgg16", 16, num_classes=1000, input_size=224), 138_357_544),
        # torchvision's resnet50 at ImageNet size: the bottleneck layout is exact.
        (NetSpec("resnet", 50, family="imagenet", num_classes=1000, input_size=224), 25_557_032),
    ],
)
def test_classic_and_imagenet_size_parameter_counts(spec: NetSpec, params: int) -> None:
    assert count_params(build_model(spec)) == params


@pytest.mark.parametrize(
    "spec",
    [
        NetSpec("plain", 20),
        NetSpec("resnet", 20),
        NetSpec("resnet", 18, family="imagenet"),
        NetSpec("plain", 50, family="imagenet", num_classes=100),
        NetSpec("resnet", 18, family="imagenet", num_classes=1000, input_size=224),
        NetSpec("lenet5", 5, in_channels=1),
        NetSpec("lenet5", 5, in_channels=1, input_size=28),
        NetSpec("alexnet", 8, num_classes=1000, input_size=227),
        NetSpec("vgg16", 16),
        NetSpec("vgg16", 16, num_classes=1000, input_size=224),
    ],
    ids=lambda s: f"{s.name}-{s.family}-{s.input_size}px",
)
def test_forward_pass_gives_one_logit_per_class(spec: NetSpec) -> None:
    model = build_model(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(2, spec.in_channels, spec.input_size, spec.input_size))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("depth", "blocks"), [(20, (3, 3, 3)), (56, (9, 9, 9)), (18, (3, 3, 2)), (34, (6, 5, 5)), (8, (1, 1, 1))]
)
def test_cifar_layout_spreads_blocks_over_three_stages(depth: int, blocks: tuple[int, ...]) -> None:
    assert layout("cifar", depth).blocks == blocks
    assert layout("cifar", depth).widths == (16, 32, 64)


def test_imagenet_layouts_are_torchvisions() -> None:
    assert layout("imagenet", 34).blocks == (3, 4, 6, 3)
    assert layout("imagenet", 152).block == "bottleneck"
    assert layout("imagenet", 152).blocks == (3, 8, 36, 3)
    assert layout("imagenet", 50).widths == (64, 128, 256, 512)  # the family's width, not CIFAR's 16


def _structure(model: torch.nn.Module) -> list[tuple[str, str]]:
    return [
        (name, type(m).__name__)
        for name, m in model.named_modules()
        if "shortcut" not in name and name  # the root differs by nothing but the flag
    ]


@pytest.mark.parametrize("spec", [("cifar", 32, "A"), ("imagenet", 18, "B"), ("imagenet", 50, "B")])
def test_plain_and_residual_differ_only_in_the_shortcut(spec: tuple[str, int, str]) -> None:
    family, depth, shortcut = spec
    plain = build_model(NetSpec("plain", depth, family, shortcut=shortcut))
    res = build_model(NetSpec("resnet", depth, family, shortcut=shortcut))
    assert _structure(plain) == _structure(res)
    assert not any("shortcut" in n for n, _ in plain.named_modules())
    assert sum("shortcut" in n for n, _ in res.named_modules() if n.count(".") == 2) == sum(
        layout(family, depth).blocks
    )


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(stride=2, extra_channels=16)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_option_b_adds_projection_parameters_only_where_shapes_change() -> None:
    a = count_params(build_model(NetSpec("resnet", 20, shortcut="A")))
    b = count_params(build_model(NetSpec("resnet", 20, shortcut="B")))
    # two projections: 16->32 and 32->64 (1x1 conv + BN)
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_summary_of_resnet20_has_the_papers_stage_shapes() -> None:
    s = summarize(NetSpec("resnet", 20))
    stages = [p for p in s.parts if p.blocks is not None]
    assert [p.shape_text for p in stages] == ["32x32x16", "16x16x32", "8x8x64"]
    assert [p.blocks for p in stages] == [3, 3, 3]
    assert s.params == 269_722
    assert s.macs == 40_551_040  # about 41M, as He et al. report for ResNet-20
    data = s.to_json()
    assert data["stages"] == [
        {"blocks": 3, "channels": 16, "size": 32},
        {"blocks": 3, "channels": 32, "size": 16},
        {"blocks": 3, "channels": 64, "size": 8},
    ]
    json.dumps(data)


def test_lenet5_layers_shrink_as_in_the_course_notes() -> None:
    s = summarize(NetSpec("lenet5", 5, in_channels=1))
    shapes = {p.name: p.shape_text for p in s.parts}
    assert shapes["conv1"] == "28x28x6"
    assert shapes["pool2"] == "5x5x16"
    assert shapes["fc3"] == "10"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (NetSpec("plain", 7), "even depth >= 8"),
        (NetSpec("plain", 0), "even depth >= 8"),
        (NetSpec("resnet", -20), "even depth >= 8"),
        (NetSpec("resnet", 20, family="imagenet"), "18, 34, 50, 101, 152"),
        (NetSpec("resnet", 20, family="mobile"), "valid: cifar, imagenet"),
        (NetSpec("vgg16", 19), "fixed depth of 16"),
    ],
)
def test_unbuildable_specs_explain_what_is_valid(spec: NetSpec, message: str) -> None:
    with pytest.raises(InvalidNet, match=message):
        build_model(spec)


def test_absurd_depth_is_refused_before_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused by the fixed memory rule, whatever the host's memory: nothing is built."""

    def no_build(spec: NetSpec) -> None:
        raise AssertionError(f"{spec.name} was built")

    monkeypatch.setattr(summary, "build_model", no_build)
    with pytest.raises(InvalidNet, match=r"ResNet-200002 would need about 57\.4 GiB .* limit of 32\.0 GiB"):
        summarize(NetSpec("resnet", 200_002))
