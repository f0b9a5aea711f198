"""The fast path computes what the textbook loop computes; `resdepth bench` runs end to end."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from resdepth.benchmarks import bench, textbook
from resdepth.config import CROP_PADDING
from resdepth.data.augment import Normalizer, crop_flip
from resdepth.errors import InvalidNet
from resdepth.models import NetSpec, build_model
from resdepth.step import Engine, update


def test_same_loss_and_same_update_on_a_fixed_batch_in_fp32() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (16,), generator=g)
    torch.manual_seed(0)
    ours = build_model(NetSpec("resnet", 8))
    torch.manual_seed(0)
    ref = build_model(NetSpec("resnet", 8))
    ours = ours.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=True)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    normalize = Normalizer(textbook.CIFAR_MEAN, textbook.CIFAR_STD, "cpu")
    x_ref = torch.stack([(img.float() / 255 - textbook.AugmentedImages(images, labels).mean)
                         / textbook.AugmentedImages(images, labels).std for img in images])  # fmt: skip
    torch.testing.assert_close(normalize(images), x_ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the batch's mistakes as the textbook counts them, before its step
        ref_wrong = int((copy.deepcopy(ref)(x_ref).argmax(1) != labels).sum())
    loss, wrong = update(ours, opt, images, labels, normalize, "fp32")
    ref_loss = textbook.step(ref, ref_opt, x_ref, labels)
    assert abs(loss.item() - ref_loss) < 1e-4
    assert int(wrong) == ref_wrong
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_batched_and_per_sample_augmentation_have_the_same_distribution() -> None:
    image = torch.randint(
        0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    n = 4000
    batched = crop_flip(image.expand(n, -1, -1, -1), torch.Generator().manual_seed(2), CROP_PADDING)[
        0
    ].float()
    random.seed(3)
    ds = textbook.AugmentedImages(image.expand(n, -1, -1, -1), torch.zeros(n, dtype=torch.long))
    per_sample = torch.stack([ds[i][0] for i in range(n)])
    per_sample = (per_sample * ds.std + ds.mean) * 255  # back to pixels
    # The mean augmented image (a blur of crops and mirrors) agrees to within sampling noise.
    assert (batched.mean(0) - per_sample.mean(0)).abs().mean() < 3.0
    # Both leave about the same share of padding (zeros) in the crops.
    assert abs((batched == 0).float().mean() - (per_sample.round() == 0).float().mean()) < 0.01


@pytest.mark.slow
def test_bench_command_runs_end_to_end(cli) -> None:
    r = cli(
        "bench", "--arch", "resnet", "--depth", "8,14", "--seconds", "0.5", "--precision", "fp32", "--json"
    )
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert [(m["arch"], m["depth"], m["precision"]) for m in data["runs"]] == [
        ("resnet", 8, "fp32"), ("resnet", 14, "fp32"),
    ]  # fmt: skip
    assert all(m["resdepth"] > 0 and m["textbook"] > 0 for m in data["runs"])
    # The figures name what produced them: the card or processor, torch, and the step engine.
    assert data["hardware"] and data["torch"] == torch.__version__
    assert {m["engine"] for m in data["runs"]} == {"graphs" if torch.cuda.is_available() else "eager"}
    assert data["paper_sweep_seconds"]["resdepth"] > 0


def test_bench_bad_input(cli) -> None:
    r = cli("bench", "--arch", "vgg16")
    assert r.code == 2 and "bench measures plain and resnet" in r.err
    r = cli("bench", "--pack", "1,0", "--depth", "8")
    assert r.code == 2 and "--pack takes positive numbers of runs, got 1,0" in r.err


def test_bench_pack_times_every_k_with_all_runs_images(cli) -> None:
    r = cli("bench", "--pack", "1,2", "--arch", "resnet", "--depth", "8", "--seconds", "0.2", "--precision",
            "fp32", "--json")  # fmt: skip
    assert r.code == 0, r.err
    data = json.loads(r.out)
    (net,) = data["packs"]
    assert net["label"] == "ResNet-8" and net["precision"] == "fp32" and set(net["rates"]) == {"1", "2"}
    assert all(rate > 0 for rate in net["rates"].values()) and data["hardware"]


def test_pack_auto_is_1_on_a_cpu_and_the_fastest_measured_k_that_fits_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timed: list[tuple[str, list[int], bool]] = []

    def rates(spec, device, precision, seconds, packs, engine, batch):  # type: ignore[no-untyped-def]
        timed.append((spec.name, packs, engine.compile))
        return bench.PackRates(spec.name, str(device), precision, "graphs", {1: 100.0, 2: 180.0, 4: 170.0})

    def memory(spec, batch, device):  # type: ignore[no-untyped-def]
        if batch > 4 * 128:  # as if eight runs at once did not fit this GPU
            raise InvalidNet("too big")

    monkeypatch.setattr(bench, "pack_rates", rates)
    monkeypatch.setattr(bench, "check_memory", memory)
    spec, gpu, compiled = (
        NetSpec("resnet", 56),
        torch.device("cuda"),
        Engine(compile=True),
    )  # cuda: only named
    assert bench.auto_pack(spec, 8, 128, torch.device("cpu"), "bf16", compiled) == 1 and timed == []
    assert bench.auto_pack(spec, 1, 128, gpu, "bf16", compiled) == 1 and timed == []  # nothing to pack
    assert bench.auto_pack(spec, 3, 128, gpu, "bf16", compiled) == 2
    assert bench.auto_pack(spec, 8, 128, gpu, "bf16", compiled) == 2
    assert timed == [("ResNet-56", [1, 2], False), ("ResNet-56", [1, 2, 4], False)]  # never compiled
